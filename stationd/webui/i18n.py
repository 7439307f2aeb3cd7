"""English and German: the vendor guide's labels (DESIGN §5.6) and the WebUI's own texts.

Texts are written in English in the templates and handlers and looked up here for German; a
text without a translation shows in English. The German texts live in
:mod:`stationd.webui.translations`, one module per part of the WebUI. Messages with values use ``{name}`` fields,
filled after translation: ``t("Processed: {count}", count=12)``.
"""

from __future__ import annotations

from collections.abc import Callable

from .translations import german

LANGUAGES = {"en": "English", "de": "Deutsch"}
LANGUAGE_COOKIE = "stationd_lang"

GERMAN: dict[str, str] = german()

TRANSLATIONS = {"de": GERMAN}


def translator(language: str) -> Callable[..., str]:
    table = TRANSLATIONS.get(language, {})

    def t(text: str, **fields: object) -> str:
        translated = table.get(text, text)
        return translated.format(**fields) if fields else translated

    return t


def pick_language(requested: str | None, accept_language: str | None) -> str:
    """A language the WebUI has: the requested one, else the browser's first known one, else English."""
    if requested in LANGUAGES:
        return requested
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"
