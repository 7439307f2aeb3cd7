"""Multipart uploads (certificates, the whitelist CSV, firmware): CSRF first, bounded reads.

A ``multipart/form-data`` POST is not read by the guard (it would have to buffer the body),
so its CSRF token is checked here, before any file data is read: the ``X-CSRF-Token`` header,
or else the form's **first** part, which must be the ``csrf_token`` field (put the hidden
input first in the form). Then each part is read in chunks and refused as soon as it is
larger than its limit, so an oversized upload never sits in memory.

Two ways to use it::

    # small files and fields, all in memory (certificates, CSV):
    form = await read_form(request, {"certificate": 64 * 1024, "key": 64 * 1024})
    form["certificate"].data  # bytes (an Upload); a plain field is a str

    # large files, streamed (firmware): parts() checks CSRF and yields the remaining parts
    async for part in parts(request):
        if part.name == "package":
            await copy_part(part, limit, handle.write)

``UploadRefused`` (str(): the reason, for the page) is raised for a part over its limit, an
unknown part, too many parts, a body that is not multipart or one that ends before the form's
end (a cut upload: a clear 400, not an internal error); ``web.HTTPForbidden`` for a
missing or wrong CSRF token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .guard import CSRF_FIELD, SESSION_KEY, csrf_ok

CHUNK = 16 * 1024
FIELD_LIMIT = 4 * 1024  # a plain text field of an upload form
MAX_PARTS = 16
CSRF_LIMIT = 256
# What aiohttp raises when a body ends before its multipart end (a cut connection, a chunked
# body whose last chunk comes too early, a Content-Length larger than what was sent).
INCOMPLETE = (ValueError, HttpProcessingError, asyncio.IncompleteReadError, ConnectionError)
INCOMPLETE_MESSAGE = "the upload is incomplete or malformed (the request ended before the end of the form); try again"


class UploadRefused(ValueError):
    """An upload the station does not accept; str() says why, for the page. ``too_large``: a
    part went over its limit (HTTP 413)."""

    def __init__(self, message: str, *, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class Upload:
    name: str  # the form field's name
    filename: str | None
    data: bytes


async def parts(request: web.Request) -> AsyncIterator[BodyPartReader]:
    """The parts after the CSRF check (the token part itself is not yielded)."""
    if not request.content_type.startswith("multipart/"):
        raise UploadRefused("expected a file upload (multipart/form-data)")
    reader = await request.multipart()
    session = request[SESSION_KEY]
    header = request.headers.get("X-CSRF-Token")
    first = True
    count = 0
    while True:
        try:
            part = await reader.next()
        except INCOMPLETE:
            raise UploadRefused(INCOMPLETE_MESSAGE) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise UploadRefused("nested multipart bodies are not accepted")
        if first and header is None:
            token = (await read_part(part, CSRF_LIMIT)).decode("utf-8", "replace") if part.name == CSRF_FIELD else ""
            if not csrf_ok(request, session, token):
                raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")
            first = False
            continue
        if first and not csrf_ok(request, session, None):
            raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")
        first = False
        count += 1
        if count > MAX_PARTS:
            raise UploadRefused(f"at most {MAX_PARTS} form fields")
        yield part
    if first:  # an empty body: nothing carried a token
        raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")


async def copy_part(part: BodyPartReader, limit: int, write: Callable[[bytes], object]) -> int:
    """Stream a part to ``write`` in chunks; UploadRefused once it passes ``limit`` bytes."""
    size = 0
    while True:
        try:
            chunk = await part.read_chunk(CHUNK)
        except INCOMPLETE:
            raise UploadRefused(INCOMPLETE_MESSAGE) from None
        if not chunk:
            return size
        size += len(chunk)
        if size > limit:
            raise UploadRefused(f"{part.name}: larger than {_size(limit)}", too_large=True)
        write(chunk)


async def read_part(part: BodyPartReader, limit: int) -> bytes:
    buffer = bytearray()
    await copy_part(part, limit, buffer.extend)
    return bytes(buffer)


async def read_form(request: web.Request, limits: Mapping[str, int], *,
                    field_limit: int = FIELD_LIMIT) -> dict[str, Upload | str]:
    """Every part in memory: a file part (``filename`` given) as :class:`Upload`, limited by
    ``limits[name]``; a plain field as text up to ``field_limit`` bytes. A part named neither
    in ``limits`` nor sent as a plain field is refused."""
    form: dict[str, Upload | str] = {}
    async for part in parts(request):
        name = part.name or ""
        if part.filename is None and name not in limits:
            form[name] = (await read_part(part, field_limit)).decode("utf-8", "replace")
        elif name in limits:
            form[name] = Upload(name, part.filename, await read_part(part, limits[name]))
        else:
            raise UploadRefused(f"{name or 'a part'}: not a field of this form")
    return form


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
