"""German texts of the WebUI: every module here has ``GERMAN`` (English text -> German text).

A module per part of the WebUI, so that each page's texts sit in one place; :func:`german`
merges them (a text defined twice must have the same translation).
"""

from __future__ import annotations

import importlib
import pkgutil


def german() -> dict[str, str]:
    merged: dict[str, str] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        table = importlib.import_module(f"{__name__}.{module}").GERMAN
        for english, translated in table.items():
            if merged.setdefault(english, translated) != translated:
                raise ValueError(f"two German texts for {english!r}: {merged[english]!r} and {translated!r}")
    return merged
