"""File transfers for UpdateFirmware and GetDiagnostics: ftp, ftps (explicit TLS), http, https.

- :func:`download` fetches a location into a file, resuming an interrupted attempt (HTTP
  Range, FTP REST), with a size cap; :func:`upload` sends a file to a location (HTTP PUT or a
  multipart POST, FTP STOR) and returns only once the server confirmed the whole file.
- Credentials in the URL (``user:password@``) are used and never logged: logs and reasons
  show the URL as :func:`redact` gives it.
- https and ftps verify the server against the system's CA store plus the ``ca_file`` the
  caller gives (the OCPP client: the installed CentralSystemRootCertificates and
  ``ocpp.ca_file``, see :mod:`.tls`).
- Every failure is a :class:`TransferError` with a specific ``reason``.
- :func:`allowed`: the callers refuse a location whose scheme the SupportedFileTransferProtocols
  key does not list.
"""

from __future__ import annotations

from .api import DEFAULT_MAX_BYTES, download, upload
from .errors import TransferError
from .urls import allowed, redact

__all__ = ["DEFAULT_MAX_BYTES", "TransferError", "allowed", "download", "redact", "upload"]
