"""ftp and ftps transfers (ftplib in a worker thread).

ftps is explicit FTP over TLS: AUTH TLS on the control connection (certificate chain and host
name verified), then PROT P so the data connections are encrypted too. A resume sends
``REST <bytes already here>`` before RETR; a server that refuses REST gets the whole file again.
The file's size comes from SIZE when the server answers it, so a transfer cut short is noticed
even when the server ends it with 226.

ftplib blocks, so each transfer runs in a thread. Every socket operation has the transfer's
timeout, and cancelling the transfer shuts the sockets down, so the thread ends promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import TransferError
from .files import PartFile
from .tls import client_context, tls_reason
from .urls import TransferUrl, scrub

log = logging.getLogger("stationd.transfer")

CHUNK = 64 * 1024
ABORT_WAIT_S = 5.0  # how long a cancelled transfer waits for its thread to notice
T = TypeVar("T")


class _Aborted(Exception):
    pass


class _Tracked:
    """ftplib's connect, telling ``on_socket`` about the control socket before it waits for the
    server's greeting (so an abort can shut it down while it waits)."""

    on_socket: Callable[[socket.socket], None]

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address=None) -> str:
        self.host, self.port = host, port
        sys.audit("ftplib.connect", self, self.host, self.port)
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.af = self.sock.family
        self.on_socket(self.sock)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class _FTP(_Tracked, ftplib.FTP):
    pass


class _FTPS(_Tracked, ftplib.FTP_TLS):
    pass


class _Session:
    """One FTP control connection in a worker thread; ``abort()`` may be called from any thread."""

    def __init__(self, url: TransferUrl, timeout_s: float, ca_file: Path | None):
        self.url, self.timeout_s = url, timeout_s
        self.context = client_context(ca_file) if url.scheme == "ftps" else None
        self.stage = "connect"
        self._aborted = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.ftp: ftplib.FTP | None = None

    # ---- from the event loop ------------------------------------------------------------
    def abort(self) -> None:
        self._aborted.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    # ---- in the worker thread -----------------------------------------------------------
    def _track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
        if self._aborted.is_set():
            self.abort()
            raise _Aborted()

    def open(self) -> ftplib.FTP:
        if self.context is not None:
            ftp: _FTP | _FTPS = _FTPS(context=self.context, timeout=self.timeout_s)
        else:
            ftp = _FTP(timeout=self.timeout_s)
        ftp.on_socket = self._track
        self.ftp = ftp
        self.stage = "connect"
        ftp.connect(self.url.host, self.url.port)
        if isinstance(ftp, ftplib.FTP_TLS):
            self.stage = "tls"
            ftp.auth()
            self._track(ftp.sock)
        self.stage = "login"
        ftp.login(self.url.user or "anonymous", self.url.password or ("anonymous@" if not self.url.user else ""))
        self.stage = "transfer"
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        ftp.voidcmd("TYPE I")
        return ftp

    def data_connection(self, command: str) -> socket.socket:
        assert self.ftp is not None
        conn = self.ftp.transfercmd(command)
        self._track(conn)
        return conn

    def close(self, polite: bool) -> None:
        if self.ftp is None:
            return
        if polite:
            with contextlib.suppress(Exception):
                self.ftp.quit()
        with contextlib.suppress(Exception):
            self.ftp.close()


def _end_data(conn: socket.socket) -> None:
    if isinstance(conn, ssl.SSLSocket):
        with contextlib.suppress(OSError, ValueError):
            conn.unwrap()
    conn.close()


def _size(ftp: ftplib.FTP, path: str) -> int | None:
    try:
        return ftp.size(path)
    except (ftplib.error_perm, ftplib.error_reply, ValueError):
        return None  # no SIZE command, or the file is missing (RETR says which)


def _download(session: _Session, part: PartFile) -> None:
    path = session.url.ftp_path
    if not path or path.endswith("/"):
        raise TransferError("the URL names a directory, not a file", retry=False)
    ftp = session.open()
    try:
        total = _size(ftp, path)
        offset = part.size
        if total is not None and offset > total:
            offset = 0  # the part file is not a beginning of this file
        if offset and offset == total:
            part.start(offset, total)
            session.close(polite=True)
            return
        if offset:
            try:
                ftp.sendcmd(f"REST {offset}")
            except ftplib.error_perm as refused:
                log.info("the FTP server refuses REST (%s); downloading the whole file again",
                         scrub(str(refused), session.url.secrets))
                offset = 0
        part.start(offset, total)
        conn = session.data_connection(f"RETR {path}")
        try:
            while data := conn.recv(CHUNK):
                part.write(data)
        finally:
            _end_data(conn)
        ftp.voidresp()  # 226: the server sent the whole file
        part.check_complete()
    except BaseException:
        session.close(polite=False)
        raise
    session.close(polite=True)


def _upload(session: _Session, source: Path, file_name: str) -> None:
    directory = session.url.ftp_path
    with open(source, "rb") as body:
        ftp = session.open()
        try:
            if directory.strip("/"):
                ftp.cwd(directory)
            conn = session.data_connection(f"STOR {file_name}")
            try:
                while chunk := body.read(CHUNK):
                    conn.sendall(chunk)
            finally:
                _end_data(conn)
            reply = ftp.voidresp()
            if not reply.startswith(("226", "250")):
                raise TransferError(f"the FTP server did not confirm the file: {reply}")
        except BaseException:
            session.close(polite=False)
            raise
        session.close(polite=True)


async def download(url: TransferUrl, part: PartFile, *, timeout_s: float, ca_file: Path | None) -> None:
    session = _Session(url, timeout_s, ca_file)
    await _run(session, lambda: _download(session, part))


async def upload(url: TransferUrl, source: Path, file_name: str, *, timeout_s: float, ca_file: Path | None) -> None:
    if not source.is_file():
        raise TransferError(f"the file to upload does not exist: {source}", retry=False)
    session = _Session(url, timeout_s, ca_file)
    await _run(session, lambda: _upload(session, source, file_name))


async def _run(session: _Session, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread; on cancellation abort it and wait a little for the thread."""
    future = asyncio.ensure_future(asyncio.to_thread(_translated, session, work))
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "not retrieved"
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        session.abort()
        await asyncio.wait({future}, timeout=ABORT_WAIT_S)
        if not future.done():
            log.warning("an FTP transfer thread of %s did not stop within %.0f s", session.url.shown, ABORT_WAIT_S)
        raise


def _translated(session: _Session, work: Callable[[], T]) -> T:
    try:
        return work()
    except TransferError:
        raise
    except _Aborted:
        raise TransferError("the transfer was cancelled") from None
    except Exception as problem:  # noqa: BLE001 - every failure becomes a reason
        raise TransferError(scrub(_reason(problem, session), session.url.secrets)) from None


def _reason(problem: BaseException, session: _Session) -> str:
    where, stage = session.url.address, session.stage
    if isinstance(problem, (ssl.SSLError, ssl.CertificateError)):
        return tls_reason(problem)
    if isinstance(problem, ftplib.Error):
        reply = str(problem).strip()
        if stage == "tls":
            return f"the FTP server does not offer TLS (AUTH TLS: {reply})"
        if stage == "login" or reply.startswith("530"):
            return f"FTP login refused: {reply}"
        if reply.startswith("550"):
            return f"the FTP server refused: {reply} (no such file or directory, or no permission)"
        if isinstance(problem, ftplib.error_temp):
            return f"the FTP server failed: {reply}"
        return f"the FTP server refused: {reply}"
    if isinstance(problem, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(problem, socket.gaierror):
        return f"cannot resolve the host name {session.url.host}"
    if isinstance(problem, TimeoutError):
        return f"no answer from {where} within {session.timeout_s:g} s"
    if isinstance(problem, EOFError):
        return f"{where} closed the connection"
    if isinstance(problem, ConnectionError):
        return f"the connection to {where} failed: {problem.strerror or type(problem).__name__}"
    if isinstance(problem, OSError):
        return f"{problem.strerror or problem}"
    return f"{type(problem).__name__}: {problem}"
