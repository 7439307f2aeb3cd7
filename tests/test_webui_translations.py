"""Every visible text of the WebUI has a German translation: the texts of ``t("...")`` calls in
the templates (parsed by Jinja) and in the page modules (parsed by ``ast``), and the menu's
labels, must all be keys of the merged ``translations.german()`` — so a new page cannot forget
its German texts."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from jinja2 import nodes

from stationd.webui import navigation, translations
from stationd.webui.templating import ENVIRONMENT

WEBUI = Path(translations.__file__).parent.parent


def template_texts() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((WEBUI / "templates").glob("*.html")):
        tree = ENVIRONMENT.parse(path.read_text(encoding="utf-8"))
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "t" and call.args \
                    and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str):
                found.setdefault(call.args[0].value, set()).add(path.name)
    return found


def _is_translator(func: ast.expr) -> bool:
    """``t(...)`` or ``translator(language)(...)``."""
    if isinstance(func, ast.Name):
        return func.id == "t"
    return isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "translator"


def page_texts() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((WEBUI / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _is_translator(node.func) and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.setdefault(node.args[0].value, set()).add(path.name)
    return found


def menu_texts() -> dict[str, set[str]]:
    labels = [section.label for section in navigation.MENU]
    labels += [page.label for section in navigation.MENU for page in section.pages]
    labels += [page.label for page in navigation.ADMIN_MENU]
    return {label: {"navigation.py"} for label in labels}


def test_the_scanners_find_texts():
    """The scanners themselves work (a broken parser would make the real test pass vacuously)."""
    assert "Dashboard" in template_texts() and "Sessions" in template_texts()
    assert "Wrong user or password." in page_texts()
    tree = ENVIRONMENT.parse('{{ t("A") }} {{ t(\'B\', n=1) }} {{ x(t("C")) }}')
    assert {c.args[0].value for c in tree.find_all(nodes.Call) if isinstance(c.node, nodes.Name)
            and c.node.name == "t"} == {"A", "B", "C"}


def test_every_visible_text_has_a_german_translation():
    german = translations.german()
    missing = {}
    for found in (template_texts(), page_texts(), menu_texts()):
        for text, where in found.items():
            if text not in german:
                missing.setdefault(text, set()).update(where)
    assert not missing, "texts without German translation:\n" + "\n".join(
        f"  {text!r} ({', '.join(sorted(where))})" for text, where in sorted(missing.items()))


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_translations_keep_the_fields_of_their_english_text():
    """A German text has the same ``{name}`` fields as its English one (else formatting fails)."""
    wrong = {english: german for english, german in translations.german().items()
             if _fields(english) != _fields(german)}
    assert not wrong, wrong
