"""The WebUI against hostile clients: every route without a session, CSRF and Origin, forged and
replayed session cookies, brute force, and upload bombs.

Routes come from the app's own router (:data:`stationd.webui.pages.ROUTE_TABLES`). Session
expiry by time (30 min idle, 12 h absolute) cannot be waited for in a run: it is tried on the
daemon's :class:`~stationd.webui.sessions.SessionStore` with an injected clock; against the daemon
a session ends by logout and by a password change elsewhere, and a forged cookie gets nothing.

Upload bombs go over raw HTTPS (a client that lies about Content-Length, or streams a chunked
body without one): a CSV of millions of rows, CSVs over the limit, firmware over the limit, a
gzip "package" of zeros, a package whose tar header expands into a huge name (tarfile reads such
headers whole), a controller image over the limit. Each must be refused with a clear message,
the daemon's resident memory sampled during the upload must stay within :data:`RSS_GROWTH_LIMIT`
and nothing may be left in ``<data dir>/uploads``.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import ssl
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .security_rig import Rig, WebClient
from .security_secrets import WEBUI_PASSWORD
from .tally import Tally

MiB = 1024 * 1024
RSS_GROWTH_LIMIT = 160 * MiB  # the largest in-memory upload is 16 MiB; ten times that is "bounded"
CHUNK = 256 * 1024


# ---- access ------------------------------------------------------------------------------------

def routes() -> list[tuple[str, str]]:
    from stationd.webui.pages import ROUTE_TABLES

    return sorted({(route.method, route.path) for table in ROUTE_TABLES for route in table
                   if "{" not in route.path and route.method in ("GET", "POST")})


async def without_session(rig: Rig, tally: Tally) -> None:
    client = rig.web_client()
    try:
        client.http.cookie_jar.update_cookies({"stationd_session": "forged-" + "A" * 43})
        for method, path in routes():
            if path == "/login":
                continue
            if method == "GET":
                status, text = await client.get(path, allow_redirects=False)
                ok = status == 401 or (status == 303 and path != "/login")
            else:
                status, text = await client.post(path, {"x": "1"}, csrf=False, allow_redirects=False)
                ok = status in (401, 403)
            if ok:
                tally.ok()
            else:
                tally.lost += 1
                tally.failed(f"WebUI {method} {path} without a session (forged cookie): HTTP {status}: ACCEPTED")
    finally:
        await client.close()
    tally.notes.append(f"WebUI: {len(routes()) - 2} routes of the router refused without a session")


async def csrf_and_origin(rig: Rig, client: WebClient, tally: Tally) -> None:
    posts = [path for method, path in routes() if method == "POST" and path not in ("/login",)]
    for path in posts:
        await client.get("/profile")
        missing, _ = await client.post(path, {"x": "1"}, csrf=False, allow_redirects=False)
        wrong, _ = await client.post(path, {"x": "1", "csrf_token": "wrong"}, csrf=False, allow_redirects=False)
        foreign, _ = await client.post(path, {"x": "1"}, headers={"Origin": "https://evil.example"},
                                       allow_redirects=False)
        if missing == wrong == foreign == 403:
            tally.ok()
        else:
            tally.lost += 1
            tally.failed(f"WebUI POST {path}: no CSRF token {missing}, wrong token {wrong}, foreign Origin "
                         f"{foreign} (403 expected each)")
    tally.notes.append(f"WebUI: CSRF (missing, wrong) and a foreign Origin refused on {len(posts)} POST routes")


async def session_ends(rig: Rig, tally: Tally) -> None:
    from stationd.webui.sessions import ABSOLUTE_TIMEOUT_S, IDLE_TIMEOUT_S, SessionStore

    first, second = rig.web_client(), rig.web_client()
    try:
        await first.login(WEBUI_PASSWORD)
        await second.login(WEBUI_PASSWORD)
        token = first.session_cookie()
        await first.get("/logout")  # the logout form and its CSRF token
        status, text = await first.post("/logout", {})
        check(tally, status == 200 and 'action="/login"' in text, f"WebUI: logout failed (HTTP {status})", lost=False)
        replay = rig.web_client()
        replay.http.cookie_jar.update_cookies({"stationd_session": token or "none"})
        status, _ = await replay.get("/api/status", allow_redirects=False)
        await replay.close()
        check(tally, status == 401, f"WebUI: a session cookie replayed after logout: HTTP {status}")
        status, _ = await second.get("/api/status", allow_redirects=False)
        check(tally, status == 200, f"WebUI: a second session does not work (HTTP {status})", lost=False)
    finally:
        await first.close()
        await second.close()

    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    store = SessionStore(clock)
    idle, used = store.create("admin", must_change_password=False), store.create("admin", must_change_password=False)
    clock.now = IDLE_TIMEOUT_S - 1
    store.get(used.token)
    clock.now = IDLE_TIMEOUT_S + 1
    check(tally, store.get(idle.token) is None and store.get(used.token) is used,
          "WebUI: an idle session outlived IDLE_TIMEOUT_S (or a used one ended)")
    while clock.now < ABSOLUTE_TIMEOUT_S + 60:
        clock.now += 60
        store.get(used.token)
    check(tally, store.get(used.token) is None, "WebUI: a session in use outlived ABSOLUTE_TIMEOUT_S")


async def brute_force(rig: Rig, tally: Tally, long: bool) -> None:
    """Wrong passwords lock the client out; then even the right one is refused (429)."""
    attacker = rig.web_client()
    try:
        statuses = [(await attacker.login(f"guess-{n:04d}"))[0] for n in range(12 if long else 6)]
        status, text = await attacker.login(WEBUI_PASSWORD)
        if status == 200 and "Dashboard" in text:
            tally.lost += 1
        check(tally, status == 429 and 429 in statuses and all(s in (401, 429) for s in statuses),
              f"WebUI brute force: wrong passwords answered {statuses}, then the right one {status} (429 expected)",
              lost=False)
    finally:
        await attacker.close()


def check(tally: Tally, ok: bool, why: str, *, lost: bool = True) -> None:
    if ok:
        tally.ok()
    else:
        tally.lost += int(lost)
        tally.failed(why)


# ---- upload bombs ------------------------------------------------------------------------------

class RssPeak:
    """The daemon's peak resident memory while the ``with`` block runs (sampled every 20 ms)."""

    def __init__(self, rig: Rig) -> None:
        self.rig, self.start, self.peak = rig, rig.rss(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rig.rss())
            except (OSError, ValueError):
                return
            time.sleep(0.02)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.start)


async def raw_upload(rig: Rig, client: WebClient, path: str, fields: dict[str, str], file_field: str,
                     filename: str, chunks: Iterator[bytes], *, declared: int | None = None,
                     cut: bool = False) -> tuple[int, str]:
    """POST a multipart form over raw HTTPS: chunked (no Content-Length), or with the Content-Length
    ``declared`` whatever the body's real size; ``cut``: the body ends before the form's end.
    CSRF by header. (status, body); status 0 when the server answered nothing."""
    boundary = "reliability-bomb-7f3a9"
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{rig.webui_port}\r\nOrigin: {rig.webui}\r\n"
               f"Cookie: stationd_session={client.session_cookie()}\r\nX-CSRF-Token: {client.csrf}\r\n"
               f"Accept: application/json\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
               f"{length}\r\nConnection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.webui_port, ssl=client.ssl,
                                                   server_hostname="127.0.0.1")

    def framed(data: bytes) -> bytes:
        if declared is not None or not data:  # an empty chunk would end a chunked body
            return data
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    try:
        writer.write(request + framed(head))
        for chunk in chunks:
            writer.write(framed(chunk))
            await writer.drain()
        writer.write((b"" if cut else framed(tail)) + (b"" if declared is not None else b"0\r\n\r\n"))
        await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass  # the server answered early and closed: read what it said
    try:
        return await asyncio.wait_for(read_answer(reader), 60)
    except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, ValueError) as problem:
        return 0, f"no answer: {problem!r}"
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One HTTP/1.1 answer: (status, body) — read by its Content-Length, not until the server closes."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    return status, (await reader.readexactly(length)).decode(errors="replace")


def repeat(data: bytes, total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = data[:min(len(data), total - sent)]
        sent += len(piece)
        yield piece


def csv_rows(total: int) -> Iterator[bytes]:
    """Whitelist CSV of short valid-looking rows (a header first), about ``total`` bytes."""
    yield b"uid,name,authorization,expiry\r\n"
    block, n, sent = [], 0, 0
    while sent < total:
        block.append(f"{n:08x},,Accepted,\r\n".encode())
        n += 1
        if len(block) == 8192:
            data = b"".join(block)
            sent += len(data)
            block = []
            yield data
    if block:
        yield b"".join(block)


def longname_bomb(name_bytes: int, kind: bytes = tarfile.GNUTYPE_LONGNAME) -> Iterator[bytes]:
    """A tar whose first member has a GNU long name (or a pax header, ``kind``) of ``name_bytes``
    bytes: one small header that tarfile reads whole into memory when it reads the member list."""
    info = tarfile.TarInfo("././@LongLink")
    info.type = kind
    info.size = name_bytes
    yield info.tobuf(tarfile.GNU_FORMAT)
    yield from repeat(b"a" * CHUNK, name_bytes)
    yield b"\0" * ((-name_bytes) % 512)
    member = tarfile.TarInfo("x")
    yield member.tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024


def gzip_zeros(size: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as archive:
        zeros = b"\0" * MiB
        for _ in range(size // MiB):
            archive.write(zeros)
    return out.getvalue()


@dataclass(frozen=True)
class Bomb:
    name: str
    path: str
    fields: dict[str, str]
    file_field: str
    make: object  # () -> Iterator[bytes]
    statuses: tuple[int, ...]  # a refusal
    words: tuple[str, ...]  # the clear message says one of these (lower case)
    declared: int | None = None
    cut: bool = False


def bombs(long: bool) -> list[Bomb]:
    from stationd.hw.flashing import HEADER_SIZE, MAX_IMAGE_SIZE
    from stationd.webui.pages.software import MAX_PACKAGE_BYTES
    from stationd.webui.pages.users import MAX_CSV_BYTES

    scale = 4 if long else 1
    gz = gzip_zeros(1024 * MiB if long else 256 * MiB)  # about 1/1000 of that
    cases = [
        Bomb("CSV of 1.3 million rows (15.9 MiB, under the size limit)", "/users/list/import", {"mode": "replace"},
             "file", lambda: csv_rows(MAX_CSV_BYTES - 128 * 1024), (400,), ("too many entries", "at most")),
        Bomb(f"CSV of {MAX_CSV_BYTES // MiB + 4 * scale} MiB, chunked", "/users/list/import", {"mode": "update"},
             "file", lambda: csv_rows(MAX_CSV_BYTES + 4 * scale * MiB), (413,), ("too large",)),
        Bomb("CSV declaring 1 GiB", "/users/list/import", {"mode": "update"}, "file",
             lambda: csv_rows(64 * 1024), (413,), ("too large",), declared=1024 * MiB),
        Bomb("CSV upload cut off before the end of the form", "/users/list/import", {"mode": "update"}, "file",
             lambda: csv_rows(256 * 1024), (400,), ("incomplete",), cut=True),
        Bomb("firmware upload cut off before the end of the form", "/software/upload", {}, "package",
             lambda: repeat(b"\0" * CHUNK, 4 * MiB), (400,), ("incomplete",), cut=True),
        Bomb("firmware declaring 600 MiB", "/software/upload", {}, "package",
             lambda: repeat(b"\0" * CHUNK, MiB), (413,), ("too large",), declared=600 * MiB),
        Bomb(f"gzip package of {len(gz) // 1024} KiB expanding to {1024 if long else 256} MiB of zeros",
             "/software/upload", {}, "package", lambda: iter([gz]), (400,), ("gzip", "not a package")),
        Bomb(f"tar package with a {48 * scale} MiB long-name header", "/software/upload", {}, "package",
             lambda: longname_bomb(48 * scale * MiB), (400,), ("refused",)),
        Bomb(f"controller image of {(HEADER_SIZE + MAX_IMAGE_SIZE) // MiB + 1} MiB, chunked",
             "/station/components/flash", {"target": "all"}, "image",
             lambda: repeat(b"\xff" * CHUNK, HEADER_SIZE + MAX_IMAGE_SIZE + MiB), (413, 400), ("too large", "larger")),
    ]
    if long:
        cases.append(Bomb("tar package with a 400 MiB pax header", "/software/upload", {}, "package",
                          lambda: longname_bomb(400 * MiB, tarfile.XHDTYPE), (400,), ("refused",)))
        cases.append(Bomb(f"firmware of {MAX_PACKAGE_BYTES // MiB + 8} MiB, chunked", "/software/upload", {}, "package",
                          lambda: repeat(b"\0" * CHUNK, MAX_PACKAGE_BYTES + 8 * MiB), (413,), ("too large",)))
    return cases


async def upload_bombs(rig: Rig, client: WebClient, tally: Tally, long: bool) -> None:
    uploads = rig.data_dir / "uploads"
    for bomb in bombs(long):
        await client.get("/software")  # a fresh page: the session's CSRF token
        begun = time.monotonic()
        with RssPeak(rig) as rss:
            status, text = await raw_upload(rig, client, bomb.path, bomb.fields, bomb.file_field, "bomb.bin",
                                            bomb.make(), declared=bomb.declared, cut=bomb.cut)
        left = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
        problems = []
        if status not in bomb.statuses:
            problems.append(f"HTTP {status} (expected {bomb.statuses}): {text[:160]!r}")
            if 200 <= status < 300:
                tally.lost += 1
        elif not any(word in text.lower() for word in bomb.words):
            problems.append(f"no clear message ({' / '.join(bomb.words)}): {text[:160]!r}")
        if rss.growth > RSS_GROWTH_LIMIT:
            problems.append(f"the daemon's memory grew by {rss.growth // MiB} MiB (limit {RSS_GROWTH_LIMIT // MiB})")
        if left:
            problems.append(f"left in uploads/: {left}")
        if not rig.alive():
            problems.append("the daemon died")
        if problems:
            tally.failed(f"upload bomb {bomb.name}: " + "; ".join(problems))
        else:
            tally.ok(f"upload bomb {bomb.name}: HTTP {status}, memory +{rss.growth // MiB} MiB, "
                     f"{time.monotonic() - begun:.1f} s")
        if not rig.alive():
            return


async def run_webui(rig: Rig, tally: Tally, long: bool) -> None:
    begun = time.monotonic()
    await without_session(rig, tally)
    client = rig.web_client()
    try:
        status, _ = await client.login(WEBUI_PASSWORD)
        if status != 200:
            tally.failed(f"WebUI: login with the changed password failed (HTTP {status})")
            return
        await client.get("/profile")
        await client.post("/profile", {"level": "Expert", "language": "en"})
        await csrf_and_origin(rig, client, tally)
        await session_ends(rig, tally)
        tally.notes.append(f"WebUI access cases took {time.monotonic() - begun:.1f} s")
        await upload_bombs(rig, client, tally, long)
        await brute_force(rig, tally, long)
        status, _ = await client.get("/api/status", allow_redirects=False)
        check(tally, status == 200, f"WebUI: a session from before the lockout stopped working (HTTP {status})",
              lost=False)
    finally:
        await client.close()
