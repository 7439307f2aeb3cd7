"""Modules imported on first use: :func:`lazy_module`.

The daemon must fit in its memory budget (BENCHMARKS.md, ``rss_mb_4_connectors``). Some
libraries are large and needed only for rare work — ``cryptography`` (about 8 MB resident:
its Rust extension and OpenSSL) only when a certificate, a signed firmware or a signed meter
reading is handled. Such a module is bound with ``x509 = lazy_module("cryptography.x509")``:
the name is used as usual (``x509.load_pem_x509_certificate(...)``, ``x509.oid.NameOID``,
``except crypto_exceptions.InvalidSignature``), and the real import happens at the first
attribute access, not when the station starts. Annotations are unaffected
(``from __future__ import annotations`` keeps them as strings).

The stand-in is a plain object that forwards attribute access; nothing is put into
``sys.modules`` before the real import, so other modules importing the same library the
ordinary way are not disturbed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module is not None else ''}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it at the first attribute access."""
    return _LazyModule(name)
