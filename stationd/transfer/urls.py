"""Transfer URLs: the four schemes, the credentials in them, and how they are shown in logs.

``ftp://user:password@host:21/dir/file`` — the user and password (percent-decoded) are used to
log in and never shown: :func:`redact` gives the URL without them (and without its query, which
may carry a token), for logs and error messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .errors import TransferError

SCHEMES = {"ftp": 21, "ftps": 21, "http": 80, "https": 443}


@dataclass(frozen=True)
class TransferUrl:
    scheme: str  # ftp | ftps | http | https (lower case)
    host: str  # without brackets for an IPv6 literal
    port: int
    path: str  # as in the URL (percent-encoded), "" or starting with "/"
    query: str = ""
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, for messages about the connection."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def plain(self) -> str:
        """The URL without credentials (with its query): what is sent to an HTTP server."""
        return urlunsplit((self.scheme, self.netloc, self.path, self.query, ""))

    @property
    def shown(self) -> str:
        """The URL for logs: no credentials, the query replaced by "?…"."""
        return urlunsplit((self.scheme, self.netloc, self.path, "", "")) + ("?…" if self.query else "")

    @property
    def ftp_path(self) -> str:
        """The file's path for RETR/STOR: the URL path without its first "/", decoded
        (RFC 1738: relative to the login directory; ``ftp://host//abs`` is absolute)."""
        return unquote(self.path.removeprefix("/"))

    @property
    def secrets(self) -> list[str]:
        """The credentials, to scrub from server replies before they reach a message."""
        return [s for s in (self.password, self.user) if s]

    def joined(self, file_name: str) -> TransferUrl:
        """This URL as a directory with ``file_name`` appended (exactly one "/" between)."""
        path = self.path.rstrip("/") + "/" + quote(file_name.lstrip("/"), safe="")
        return TransferUrl(self.scheme, self.host, self.port, path, self.query, self.user, self.password)


def parse(url: str) -> TransferUrl:
    """Parse a transfer URL; TransferError (retry=False) for another scheme or no host."""
    if not isinstance(url, str) or not url.strip():
        raise TransferError("no URL given", retry=False)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as problem:
        raise TransferError(f"the URL is malformed ({problem})", retry=False) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TransferError(f"unsupported scheme {parts.scheme or '(none)'!r}: only ftp, ftps, http and https",
                            retry=False)
    if not parts.hostname:
        raise TransferError("the URL names no host", retry=False)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return TransferUrl(scheme, parts.hostname, port or SCHEMES[scheme], parts.path, parts.query, user, password)


def redact(url: str) -> str:
    """The URL as logs may show it: without user and password (and query)."""
    try:
        return parse(url).shown
    except TransferError:
        try:
            parts = urlsplit(str(url))
            netloc = parts.netloc.rpartition("@")[2]
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        except ValueError:
            return "(malformed URL)"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every credential of 3 or more characters replaced by ``***``."""
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def allowed(url: str, store) -> bool:
    """True when the URL's scheme is one of the SupportedFileTransferProtocols key's values
    (FTP, FTPS, HTTP, HTTPS); a caller refuses a location for which this is False."""
    try:
        scheme = urlsplit(str(url)).scheme.upper()
    except ValueError:
        return False
    supported = {str(p).upper() for p in (store.get("SupportedFileTransferProtocols") or ())}
    return scheme.lower() in SCHEMES and scheme in supported
