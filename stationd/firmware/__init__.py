"""Firmware updates: the update package format (docs/firmware-package.md), its builder and verifier.

:mod:`.package` builds a package (``stationd firmware pack``), verifies one against the
station's model (``stationd firmware verify``; UpdateFirmware before installing) and extracts
its payloads, re-checking every hash. :mod:`.update` runs UpdateFirmware and
SignedUpdateFirmware (one :class:`~.update.FirmwareUpdater`, the request as a :mod:`.job`),
:mod:`.signature` checks a signed update's signing certificate and signature.
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
