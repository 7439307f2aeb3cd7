"""http and https transfers (aiohttp): GET with Range resume; PUT, or a multipart POST.

A resume asks for ``Range: bytes=N-`` and appends only when the server answers 206 with a
Content-Range starting at N; a 200 (the server ignores ranges) or a 416 starts over.
Credentials in the URL go out as HTTP Basic authentication, never in the request line.
"""

from __future__ import annotations

import base64
import errno
import re
import ssl
from pathlib import Path

import aiohttp

from .errors import TransferError
from .files import PartFile
from .tls import client_context, tls_reason
from .urls import TransferUrl

CHUNK = 64 * 1024
CONTENT_RANGE = re.compile(r"bytes\s+(?P<start>\d+)-(?P<end>\d+)/(?P<total>\d+|\*)")
_DNS_ERROR = getattr(aiohttp, "ClientConnectorDNSError", None)


def _session(timeout_s: float) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
    return aiohttp.ClientSession(timeout=timeout, auto_decompress=False, trust_env=False)


def _auth_headers(url: TransferUrl) -> dict[str, str]:
    """HTTP Basic from the URL's user and password (UTF-8), if it has them."""
    if url.user is None and url.password is None:
        return {}
    token = base64.b64encode(f"{url.user or ''}:{url.password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _tls(url: TransferUrl, ca_file: Path | None) -> ssl.SSLContext | bool:
    return client_context(ca_file) if url.scheme == "https" else True


async def download(url: TransferUrl, part: PartFile, *, timeout_s: float, ca_file: Path | None) -> None:
    """Fill ``part`` from ``url`` (continuing at its current size when it has bytes)."""
    auth, tls = _auth_headers(url), _tls(url, ca_file)
    try:
        async with _session(timeout_s) as session:
            offset = part.size
            if offset and await _get(session, url, part, offset, auth, tls):
                return
            await _get(session, url, part, 0, auth, tls)
    except TransferError:
        raise
    except Exception as problem:  # noqa: BLE001 - every failure becomes a reason
        raise _reason(problem, url, timeout_s, part) from None


async def _get(session: aiohttp.ClientSession, url: TransferUrl, part: PartFile, offset: int,
               auth: dict[str, str], tls: ssl.SSLContext | bool) -> bool:
    """One GET from ``offset``; False when a ranged request must start over without a range."""
    headers = {**auth, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    async with session.get(url.plain, headers=headers, ssl=tls) as response:
        length = response.content_length
        if offset and response.status == 206:
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match["start"]) != offset:
                return False  # not the range asked for: start over
            total = None if match["total"] == "*" else int(match["total"])
            part.start(offset, total if total is not None else (offset + length if length is not None else None))
        elif offset and response.status == 416:
            return False
        elif response.status == 200:
            part.start(0, length)
        else:
            raise _status_error(response)
        async for chunk in response.content.iter_chunked(CHUNK):
            part.write(chunk)
        part.check_complete()
    return True


async def upload(url: TransferUrl, source: Path, file_name: str, *, timeout_s: float, ca_file: Path | None) -> None:
    """PUT to location + "/" + file_name; on 405 a multipart POST (field ``file``, that file
    name) to the location itself. Done only on a 2xx answer."""
    auth, tls = _auth_headers(url), _tls(url, ca_file)
    target = url.joined(file_name)
    try:
        async with _session(timeout_s) as session:
            with open(source, "rb") as body:
                async with session.put(target.plain, data=body, ssl=tls,
                                       headers={**auth, "Content-Type": "application/octet-stream"}) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        return
                    if response.status != 405:
                        raise _status_error(response, "PUT")
            with open(source, "rb") as body:
                form = aiohttp.FormData()
                form.add_field("file", body, filename=file_name, content_type="application/octet-stream")
                async with session.post(url.plain, data=form, headers=auth, ssl=tls) as response:
                    await response.read()
                    if not 200 <= response.status < 300:
                        raise _status_error(response, "POST")
    except TransferError:
        raise
    except FileNotFoundError:
        raise TransferError(f"the file to upload does not exist: {source}", retry=False) from None
    except Exception as problem:  # noqa: BLE001 - every failure becomes a reason
        raise _reason(problem, url, timeout_s, None) from None


def _status_error(response: aiohttp.ClientResponse, method: str = "") -> TransferError:
    text = f"HTTP {response.status} {response.reason or ''}".strip()
    if method:
        text = f"{method} refused: {text}"
    if response.status in (401, 403):
        text += " (the server refused the credentials)"
    return TransferError(text)


def _reason(problem: BaseException, url: TransferUrl, timeout_s: float, part: PartFile | None) -> TransferError:
    where = url.address
    if isinstance(problem, aiohttp.ClientConnectorCertificateError):
        return TransferError(tls_reason(problem.certificate_error))
    if isinstance(problem, aiohttp.ClientSSLError):
        cause = problem.os_error if isinstance(problem.os_error, ssl.SSLError) else problem
        return TransferError(tls_reason(cause))
    if _DNS_ERROR is not None and isinstance(problem, _DNS_ERROR):
        return TransferError(f"cannot resolve the host name {url.host}")
    if isinstance(problem, aiohttp.ClientConnectorError):
        if problem.os_error.errno == errno.ECONNREFUSED or isinstance(problem.os_error, ConnectionRefusedError):
            return TransferError(f"connection refused by {where}")
        return TransferError(f"cannot connect to {where}: {problem.os_error.strerror or problem.os_error}")
    if isinstance(problem, (aiohttp.ServerTimeoutError, TimeoutError)):
        return TransferError(f"no answer from {where} within {timeout_s:g} s")
    if isinstance(problem, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        if part is not None:
            total = f" of {part.total}" if part.total is not None else ""
            return TransferError(f"the transfer was cut after {part.received}{total} bytes")
        return TransferError(f"{where} closed the connection")
    if isinstance(problem, ssl.SSLError):
        return TransferError(tls_reason(problem))
    if isinstance(problem, ConnectionError):
        return TransferError(f"the connection to {where} failed: {problem.strerror or type(problem).__name__}")
    if isinstance(problem, OSError):
        return TransferError(f"{problem.strerror or problem}")
    return TransferError(f"{type(problem).__name__}: {problem}")
