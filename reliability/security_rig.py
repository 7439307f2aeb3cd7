"""The station the security category tries: ``stationd demo`` as a child process (the real daemon,
its WebUI, its Modbus server, the dry-run system edge with a simulated modem) on a TLS central
system of security profile 2 on 127.0.0.1, with the throwaway test PKI — and the small tools the
cases share (a WebUI client, ``stationd config set`` while the daemon runs, a blocking TLS server
that counts handshakes, the daemon's resident memory).

Everything binds 127.0.0.1 and lives in one temporary directory; :meth:`Rig.stop` (from a
``finally``) stops the demo's whole process group and the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.common import LOOPBACK, REPO, Child, free_port, rss_bytes
from firmware_sim.central_system import CentralSystem
from firmware_sim.test_pki import ThrowawayPKI, create_test_pki

SERIAL = "SEC0000001"
BOX = f"TE-{SERIAL}"
STATIOND = [sys.executable, "-m", "stationd"]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# ---- a TLS server that only shakes hands (the bad backends of the TLS matrix) ----------------

class HandshakeServer:
    """A blocking TLS server in a thread (blocking ``ssl`` sends its alerts, asyncio's server just
    resets): accepts connections until stopped, tries one handshake on each and counts them."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.attempts = 0
        self.completed = 0  # handshakes that succeeded (a station must never complete one here)
        self._listener = socket.socket()
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen()
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="tls-handshake-server")
        self._thread.start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"wss://{LOOPBACK}:{self.port}/ocpp"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.attempts += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                tls = self.context.wrap_socket(conn, server_side=True)
                self.completed += 1
                tls.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()


def server_context(pki: ThrowawayPKI, *, old_tls: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A server with the PKI's certificate; ``old_tls``: it speaks that TLS version (1.0 or 1.1)
    and no other."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_path, pki.key_path)
    if old_tls is not None:
        with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = old_tls
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def permissive_handshake(port: int, *, old_tls: bool = False) -> str | None:
    """The TLS version a client that checks nothing gets from the server on ``port`` (None: no
    handshake) — proof that a bad backend is a working TLS server and only the station refuses it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if old_tls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("ALL:@SECLEVEL=0")
    try:
        with socket.create_connection((LOOPBACK, port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version()
    except (OSError, ssl.SSLError):
        return None


# ---- the WebUI over HTTPS, like one browser -------------------------------------------------

class WebClient:
    def __init__(self, base: str, ca_file: Path) -> None:
        self.base = base
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl),
                                          cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          timeout=aiohttp.ClientTimeout(total=300))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    def _remember(self, text: str) -> None:
        found = CSRF.search(text)
        if found:
            self.csrf = found.group(1)

    async def get(self, path: str, *, allow_redirects: bool = True) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=allow_redirects) as response:
            text = await response.text(errors="replace")
            self._remember(text)
            return response.status, text

    async def post(self, path: str, data: dict | aiohttp.FormData, *, csrf: bool = True,
                   headers: dict | None = None, allow_redirects: bool = True) -> tuple[int, str]:
        if isinstance(data, dict):
            data = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        async with self.http.post(self.base + path, data=data, headers={"Origin": self.base, **(headers or {})},
                                  allow_redirects=allow_redirects) as response:
            text = await response.text(errors="replace")
            self._remember(text)
            return response.status, text

    async def login(self, password: str) -> tuple[int, str]:
        return await self.post("/login", {"user": "admin", "password": password, "next": "/dashboard"}, csrf=False)

    def session_cookie(self) -> str | None:
        return next((c.value for c in self.http.cookie_jar if c.key == "stationd_session"), None)


# ---- the rig ---------------------------------------------------------------------------------

@dataclass
class Rig:
    """The demo on a profile 2 backend. ``secure`` is the central system it should be on."""

    directory: Path
    pki: ThrowawayPKI
    secure: CentralSystem
    authorization_key: str
    demo: Child | None = None
    webui_port: int = 0
    modbus_port: int = 0
    sim_port: int = 0
    log_file: Path = field(default=Path())
    _temp: tempfile.TemporaryDirectory | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def webui(self) -> str:
        return f"https://{LOOPBACK}:{self.webui_port}"

    @property
    def webui_ca(self) -> Path:
        return self.data_dir / "webui" / "self-signed.pem"

    def web_client(self) -> WebClient:
        return WebClient(self.webui, self.webui_ca)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def rss(self) -> int:
        assert self.demo is not None
        return rss_bytes(self.demo.pid)

    def alive(self) -> bool:
        return self.demo is not None and self.demo.proc.poll() is None

    async def config_set(self, key: str, value: str) -> tuple[int, str]:
        """``stationd config set --data-dir D KEY VALUE`` while the daemon runs (DESIGN §5.4)."""
        process = await asyncio.create_subprocess_exec(
            *STATIOND, "config", "set", "--data-dir", str(self.data_dir), key, value, cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        return process.returncode or 0, output.decode(errors="replace")

    async def wait_connected(self, cs: CentralSystem, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cs.connected(BOX):
                return True
            if not self.alive():
                return False
            await asyncio.sleep(0.1)
        return False

    async def stop(self) -> None:
        if self.demo is not None:
            self.demo.stop()
        await self.secure.stop()
        if self._temp is not None:
            self._temp.cleanup()


async def start_rig(authorization_key: str) -> Rig:
    """Start the secure central system and ``stationd demo`` on it; wait for its WebUI, its
    Modbus server and its first connection, with quick reconnects (1 to 2 s)."""
    temp = tempfile.TemporaryDirectory(prefix="reliability-security-")
    directory = Path(temp.name)
    pki = create_test_pki(directory / "pki")
    secure = CentralSystem(security_profile=2, ssl_context=pki.server_context,
                           passwords={BOX: authorization_key}, heartbeat_interval=300)
    await secure.start()
    rig = Rig(directory, pki, secure, authorization_key, _temp=temp)
    try:
        rig.webui_port, rig.modbus_port, rig.sim_port = free_port(), free_port(), free_port()
        rig.log_file = directory / "stationd-demo.log"
        log = rig.log_file.open("wb")
        rig.demo = Child([*STATIOND, "demo", "--backend", f"wss://{LOOPBACK}:{secure.port}/ocpp",
                          "--serial-number", SERIAL, "--security-profile", "2",
                          "--authorization-key", authorization_key, "--ca-file", str(pki.ca_path),
                          "--connectors", "1", "--data-dir", str(rig.data_dir),
                          "--webui", f"{LOOPBACK}:{rig.webui_port}", "--sim-api", f"{LOOPBACK}:{rig.sim_port}",
                          "--modbus", f"{LOOPBACK}:{rig.modbus_port}"],
                         name="stationd demo", stdout=log, stderr=log)
        log.close()
        if not await rig.wait_connected(secure, 60):
            raise RuntimeError(f"stationd demo did not connect to the TLS central system:\n{rig.log_text()[-3000:]}")
        for key, value in (("RetryBackoffWaitMinimum", "1"), ("RetryBackoffRandomRange", "1")):
            answer = await secure.call(BOX, "ChangeConfiguration", {"key": key, "value": value})
            if answer != {"status": "Accepted"}:
                raise RuntimeError(f"ChangeConfiguration {key}: {answer}")
        await _wait_port(rig.webui_port)
        await _wait_port(rig.modbus_port)
        deadline = time.monotonic() + 30
        while not rig.webui_ca.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return rig
    except BaseException:
        await rig.stop()
        raise


async def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {LOOPBACK}:{port}") from None
            await asyncio.sleep(0.1)


def bad_server_context(pki: ThrowawayPKI, directory: Path, *, expired: bool = False,
                       host: str = "localhost", ips: tuple[str, ...] = ("127.0.0.1", "::1")) -> ssl.SSLContext:
    """A server context whose certificate is issued by ``pki``'s CA (the one the station trusts),
    with exactly one thing wrong: ``expired`` (ended yesterday) or another host name (``host``,
    ``ips``) — so the station's refusal is for that one reason, not for an unknown issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = (now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if expired else \
        (now - dt.timedelta(minutes=5), now + dt.timedelta(days=2))
    names = [x509.DNSName(host), *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(pki.ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(pki.ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(pem) + pki.ca_certificate.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
