"""Firmware updates: the update package format (docs/firmware-package.md), its builder and verifier.

:mod:`.package` builds a package (``stationd firmware pack``), verifies one against the
station's model (``stationd firmware verify``; UpdateFirmware before installing) and extracts
its payloads, re-checking every hash. Downloading and installing come later.
"""

from __future__ import annotations

from .package import (
    DEFAULT_LIMITS,
    Limits,
    Manifest,
    PackageBuildError,
    PackageError,
    PayloadEntry,
    VerifiedPackage,
    build_package,
    extract_payloads,
    read_manifest,
    verify_package,
)

__all__ = [
    "DEFAULT_LIMITS", "Limits", "Manifest", "PackageBuildError", "PackageError", "PayloadEntry",
    "VerifiedPackage", "build_package", "extract_payloads", "read_manifest", "verify_package",
]
