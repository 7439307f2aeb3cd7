"""File servers on 127.0.0.1 for the transfer and firmware-update tests.

``HttpFiles``: an aiohttp server that serves files (honouring Range unless told not to), can
cut a download short, asks for Basic credentials on ``/private/``, and takes uploads (PUT on
``/upload/``; on ``/form/`` PUT answers 405 and a multipart POST is taken). ``FtpFiles``:
pyftpdlib in a thread, plain FTP or explicit FTPS (TLS_FTPHandler), recording every command and
able to cut the first downloads short.
"""

from __future__ import annotations

import base64
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

with warnings.catch_warnings():  # pyftpdlib is built on asyncore/asynchat (deprecated in 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

USER, PASSWORD = "fw-reader", "s3cret-pw"


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict
    body: bytes = b""


@dataclass
class HttpFiles:
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True  # False: Range headers are ignored (always 200 with the whole file)
    cut: list[int] = field(default_factory=list)  # the next GETs send only this many bytes, then drop
    fail: list[int] = field(default_factory=list)  # the next GETs answer these statuses
    requests: list[HttpRequest] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    ssl_context: object | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/files/{name}", self._get)
        app.router.add_get("/private/{name}", self._private)
        app.router.add_put("/upload/{name}", self._put)
        app.router.add_put("/form/{name}", self._refuse_put)
        app.router.add_post("/form/", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl_context else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        return self.base

    async def stop(self) -> None:
        await self._runner.cleanup()

    def _record(self, request: web.Request, body: bytes = b"") -> None:
        self.requests.append(HttpRequest(request.method, request.path, dict(request.headers), body))

    async def _private(self, request: web.Request) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self._record(request)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="files"'})
        return await self._get(request)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        if self.fail:
            return web.Response(status=self.fail.pop(0))
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        start, status, headers = 0, 200, {}
        asked = request.headers.get("Range", "")
        if self.ranges and asked.startswith("bytes=") and asked.endswith("-"):
            start = int(asked[6:-1])
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        if self.cut:
            await response.write(body[:self.cut.pop(0)])
            request.transport.close()  # the connection drops mid-file
            return response
        await response.write(body)
        await response.write_eof()
        return response

    async def _put(self, request: web.Request) -> web.Response:
        body = await request.read()
        self._record(request, body)
        self.uploads[request.match_info["name"]] = body
        return web.Response(status=201)

    async def _refuse_put(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.Response(status=405, headers={"Allow": "POST"})

    async def _post(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        self._record(request)
        async for part in reader:
            if part.filename:
                self.uploads[part.filename] = await part.read()
        return web.Response(status=200, text="stored")


class _CutFile:
    """A file that ends after ``limit`` bytes although it is longer (a server losing it)."""

    def __init__(self, raw, limit: int):
        self._raw, self._left = raw, limit

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(size)
        self._left -= len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._raw, name)


class FtpFiles:
    """pyftpdlib on 127.0.0.1 in a thread; ``root`` holds the files. With ``pki`` it is explicit
    FTPS and requires TLS on control and data connections."""

    def __init__(self, root: Path, *, pki=None, rest: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.commands: list[tuple[str, str]] = []
        self.cut: list[int] = []  # the next RETRs end after this many bytes (with 226)
        files = self

        class Filesystem(AbstractedFS):
            def open(self, filename, mode):
                raw = super().open(filename, mode)
                if "r" in mode and files.cut:
                    return _CutFile(raw, files.cut.pop(0))
                return raw

        base = TLS_FTPHandler if pki is not None else FTPHandler

        class Handler(base):
            def pre_process_command(self, line, cmd, arg):
                files.commands.append((cmd, arg if cmd != "PASS" else "***"))
                if cmd == "REST" and not rest:
                    self.respond("502 Command not implemented.")
                    return
                return super().pre_process_command(line, cmd, arg)

        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.root), perm="elradfmwMT")
        authorizer.add_anonymous(str(self.root))
        Handler.authorizer = authorizer
        Handler.abstracted_fs = Filesystem
        Handler.use_sendfile = False
        Handler.auth_failed_timeout = 0.05  # answer a wrong password at once
        Handler.banner = "stationd test FTP"
        if pki is not None:
            Handler.certfile, Handler.keyfile = str(pki.cert_path), str(pki.key_path)
            Handler.tls_control_required = Handler.tls_data_required = True
            Handler.ssl_context = None  # built per server class
        self._ioloop = IOLoop()
        self.server = FTPServer(("127.0.0.1", 0), Handler, ioloop=self._ioloop)
        self.port = self.server.address[1]
        self.scheme = "ftps" if pki is not None else "ftp"
        self.base = f"{self.scheme}://{USER}:{PASSWORD}@127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-ftp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self.server.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def commands_named(self, name: str) -> list[str]:
        return [arg for cmd, arg in self.commands if cmd == name]
