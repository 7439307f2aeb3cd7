"""The station's WebSocket connection to its backend (OCPP-J 1.6 transport, security profiles 0-3).

Three layers:

* :func:`connection_url` - Endpoint + BoxId → the URL the station connects to.
* :func:`open_connection` - one attempt: URL, credentials and TLS from the configuration store,
  subprotocol ``ocpp1.6`` required, every failure turned into a :class:`ConnectFailed` with a
  reason a technician can act on and, where the OCPP 1.6 security whitepaper names one, the
  security event to report.
* :class:`ConnectionManager` - forever: connect, run the OCPP session on the connection, wait
  (:class:`~stationd.ocpp_client.backoff.Backoff`), reconnect; reconnect at once when a key
  that defines the connection changes; the SecurityProfile fallback of the whitepaper.

Decisions
---------
**The scheme: security profiles 2 and 3 upgrade, nothing downgrades.** Profiles 2 and 3 always
connect with ``wss://``; an Endpoint written ``ws://`` is upgraded (logged once per endpoint and
profile), so a backend that raises SecurityProfile from 1 to 2 needs no second
ChangeConfiguration of the Endpoint. Profiles 0 and 1 connect with the Endpoint's scheme:
``ws://`` as SPEC.md §2 says, and a ``wss://`` Endpoint keeps TLS (server certificate verified
as in profile 2, logged once) instead of being downgraded - a downgrade would send the profile 1
password in clear text to a server the installer meant to reach over TLS (the Authorization
header leaves with the very first request), and many backends terminate TLS in front of a
"profile 1" setup. An explicit port stays as written; without one the scheme's default applies
(80/443).

**Profile 3** is TLS with client authentication (whitepaper): the station presents its charge
point certificate (``client_certificate``, from
:mod:`stationd.ocpp_client.charge_point_certificate`) and sends no HTTP Basic header; the
backend's certificate is verified as in profile 2. Without a usable certificate an attempt fails
at once, and a raise to 3 on trial falls back like any other.

**Redirects are not followed.** The backend must see exactly the configured chargebox id
(SPEC.md §2) and the credentials go only where the Endpoint points; a 3xx answer is a failure
whose reason names the new location. No HTTP proxy from the environment is used either.

**No WebSocket compression** (permessage-deflate off), for the reason TLS compression is off:
frames may carry secrets (AuthorizationKey in ChangeConfiguration) next to data an attacker
chooses. Frames above :data:`MAX_MESSAGE_SIZE` (8 MiB) close the connection (the RPC layer refuses
frames above its own, smaller limit with a CALLERROR first).

**Pings.** ``ping_interval`` = WebSocketPingInterval (0 disables pings) and ``ping_timeout`` =
the same interval: a pong that does not come within one interval closes the connection
(close code 1011, "keepalive ping timeout"), which ends the session and starts the reconnect.
The value is read at each connection attempt; a change applies to the next connection.

**SecurityProfile fallback** (whitepaper, OCPP-NOTES §6, TC_083). When the *backend* raises
SecurityProfile (ChangeConfiguration, Source.OCPP), the raise is on trial: the station
reconnects with the new profile; if that first attempt fails, the manager writes the previous
profile back (Source.LOCAL, which may lower it), logs why and reconnects with it. Once a
connection with the new profile succeeded, the trial is over and the profile is never lowered
automatically. The trial and the last confirmed profile are kept in a small JSON file in the
data directory (``state_file``, written atomically), so a restart between the raise and the
first connection keeps the fallback. A change made on site (Source.LOCAL: WebUI, CLI, config
file) is the installer's decision and is never on trial.

**Security events** go to ``on_event(name, details)``; a failure that repeats with the same
event is reported once until a connection succeeds or the failure changes, so a station that
cannot reach its backend for days does not fill the event queue with thousands of copies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)

from .. import __version__
from ..config.value_types import Source
from .backoff import Backoff
from .errors import ConnectFailed
from .rpc import WEBSOCKET_MAX_SIZE
from .tls import (
    FAILED_TO_AUTHENTICATE,
    ClientCertificate,
    classify_tls_error,
    client_context,
)

log = logging.getLogger("stationd.ocpp.connection")

SUBPROTOCOL = "ocpp1.6"
MAX_MESSAGE_SIZE = WEBSOCKET_MAX_SIZE  # the RPC layer answers frames above its own limit
USER_AGENT = f"stationd/{__version__}"

#: Keys whose change makes the station reconnect at once (aliases resolve to them).
RECONNECT_KEYS = ("SecurityProfile", "AuthorizationKey", "BoxId", "Endpoint")
#: Name of the state file in the data directory (the SecurityProfile trial, see the module doc).
STATE_FILE_NAME = "ocpp-connection.json"

RECONFIGURATION = "ReconfigurationOfSecurityParameters"

_PLACEHOLDER = re.compile(r"\{boxid\}", re.IGNORECASE)  # {BoxId}, {BoxID}, {boxid}
# RFC 3986 pchar without pct-encoded: these may stand in a path segment as they are.
_PATH_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"
_SCHEME_NOTED: set[tuple[str, int]] = set()


# ---- URL and credentials --------------------------------------------------------------------

def connection_scheme(endpoint_scheme: str, security_profile: int) -> str:
    """``wss`` for security profiles 2 and 3 or a ``wss://`` Endpoint, else ``ws`` (module docstring)."""
    if security_profile not in (0, 1, 2, 3):
        raise ConnectFailed(f"unsupported security profile {security_profile!r} (supported: 0, 1, 2, 3)")
    return "wss" if security_profile >= 2 or endpoint_scheme.lower() == "wss" else "ws"


def connection_url(endpoint: str, box_id: str, *, security_profile: int | None = None) -> str:
    """The URL the station connects to.

    A ``{BoxId}`` placeholder (any case: ``{BoxID}``, ``{boxid}``) is replaced by the chargebox
    id; without one the id becomes a new last path segment (``ws://h/ocpp`` and ``ws://h/ocpp/``
    both give ``ws://h/ocpp/<id>``; a query string stays after the path). Characters that may
    stand in a path segment stay as they are, others (``| / ? # %``, space, non-ASCII) are
    percent-encoded. With ``security_profile`` 2 or 3 the scheme becomes ``wss`` (see the module
    docstring; 0 and 1 keep the Endpoint's scheme); a fragment is dropped (meaningless in a
    WebSocket URL)."""
    if not endpoint or not endpoint.strip():
        raise ConnectFailed("no backend URL configured (Endpoint is empty)")
    if not box_id:
        raise ConnectFailed("no chargebox id configured (BoxId is empty)")
    segment = quote(box_id, safe=_PATH_SEGMENT_SAFE)
    try:
        parts = urlsplit(endpoint.strip())
    except ValueError as exc:
        raise ConnectFailed(f"invalid backend URL {endpoint!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ConnectFailed(f"invalid backend URL {endpoint!r}: the scheme must be ws:// or wss://")
    if not parts.netloc:
        raise ConnectFailed(f"invalid backend URL {endpoint!r}: no host")
    if security_profile is not None:
        scheme = connection_scheme(scheme, security_profile)
    path, query = parts.path, parts.query
    if _PLACEHOLDER.search(path) or _PLACEHOLDER.search(query):
        path = _PLACEHOLDER.sub(lambda _: segment, path)
        query = _PLACEHOLDER.sub(lambda _: quote(box_id, safe=""), query)
    else:
        path = path.rstrip("/") + "/" + segment
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def basic_authorization(box_id: str, authorization_key_hex: str) -> str:
    """``Basic base64(<box id>:<password bytes>)``; the password is the *decoded* hex key
    (whitepaper, TC_085), so it may hold any byte - which is why the header is built here and
    not by an HTTP library that would take text."""
    password = bytes.fromhex(authorization_key_hex)
    token = base64.b64encode(box_id.encode("utf-8") + b":" + password).decode("ascii")
    return f"Basic {token}"


@dataclass(frozen=True)
class Target:
    """Where and how the next attempt connects (no secret in it)."""

    url: str
    security_profile: int
    box_id: str
    endpoint: str

    @property
    def secure(self) -> bool:
        return self.url.startswith("wss:")

    @property
    def scheme_differs(self) -> bool:
        """The Endpoint's scheme was upgraded (profile 2 or 3 on a ws:// Endpoint)."""
        return urlsplit(self.endpoint.strip()).scheme.lower() != urlsplit(self.url).scheme


def connection_target(store: Any) -> Target:
    """The URL and profile the store's configuration gives; ConnectFailed when incomplete."""
    profile = int(store.get("SecurityProfile"))
    endpoint = store.get("Endpoint") or ""
    box_id = store.get("BoxId") or ""
    return Target(connection_url(endpoint, box_id, security_profile=profile), profile, box_id, endpoint)


# ---- one connection attempt -----------------------------------------------------------------

class _Connect(connect):
    """websockets' connect without redirects (see the module docstring)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


async def open_connection(
    store: Any,
    *,
    ca_file: Path | None,
    client_certificate: ClientCertificate | None = None,
    rng: random.Random | None = None,
    ping_interval: float | None = None,
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 5.0,
    max_size: int = MAX_MESSAGE_SIZE,
) -> ClientConnection:
    """Open the WebSocket to the backend as the store's configuration says; the caller closes it.

    - URL: :func:`connection_target` (Endpoint, BoxId, the profile's scheme).
    - Subprotocol ``ocpp1.6`` offered and required: an answer without it is closed and
      refused (``ConnectFailed("backend did not accept subprotocol ocpp1.6")``).
    - Profile 1 and 2: ``Authorization: Basic`` with the decoded AuthorizationKey.
    - Profile 2 and 3 (and a ``wss://`` Endpoint with profile 0/1): TLS as
      :func:`stationd.ocpp_client.tls.client_context` with ``ca_file`` as the trust anchors
      (None: the system store; a path that does not exist: ConnectFailed).
    - Profile 3: ``client_certificate`` as TLS client certificate, no Authorization header;
      None: ConnectFailed.
    - ``ping_interval``: None reads WebSocketPingInterval (0 → no pings); ``ping_timeout`` is
      the same interval.
    - ``rng`` is accepted for the callers' convenience and not used: the WebSocket key must be
      unpredictable and comes from ``secrets`` inside websockets.

    Raises :class:`ConnectFailed` for every failure it can name; anything else is a bug and
    propagates."""
    del rng
    target = connection_target(store)
    headers: dict[str, str] = {}
    if target.security_profile in (1, 2):
        key = store.get("AuthorizationKey")
        if not key:
            raise ConnectFailed(f"security profile {target.security_profile} needs an AuthorizationKey; none is set")
        headers["Authorization"] = basic_authorization(target.box_id, key)
    if target.security_profile == 3 and client_certificate is None:
        raise ConnectFailed("security profile 3 needs a charge point certificate that is valid now; none is "
                            "installed (SignCertificate / CertificateSigned)")
    tls: dict[str, Any] = {}
    if target.secure:
        tls["ssl"] = client_context(ca_file, client_certificate if target.security_profile == 3 else None)
    _note_scheme(target)
    if ping_interval is None:
        ping_interval = float(store.get("WebSocketPingInterval"))
    interval = ping_interval if ping_interval and ping_interval > 0 else None
    try:
        ws = await _Connect(
            target.url,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=headers,
            user_agent_header=USER_AGENT,
            compression=None,
            proxy=None,
            open_timeout=open_timeout,
            ping_interval=interval,
            ping_timeout=interval,
            close_timeout=close_timeout,
            max_size=max_size,
            **tls,
        )
    except ConnectFailed:
        raise
    except Exception as exc:  # classified below; the unknown ones propagate
        failure = classify_failure(exc, url=target.url, open_timeout=open_timeout)
        if failure is None:
            raise
        raise failure from exc
    if ws.subprotocol != SUBPROTOCOL:
        with contextlib.suppress(Exception):
            await ws.close(1002, f"subprotocol {SUBPROTOCOL} required")
        raise ConnectFailed(f"backend did not accept subprotocol {SUBPROTOCOL}")
    return ws


def _note_scheme(target: Target) -> None:
    if target.security_profile >= 2 and not target.scheme_differs:
        return
    if target.security_profile < 2 and not target.secure:
        return
    if (target.endpoint, target.security_profile) in _SCHEME_NOTED:
        return
    _SCHEME_NOTED.add((target.endpoint, target.security_profile))
    if target.scheme_differs:
        log.warning("Endpoint %s: security profile %d connects with wss:// (TLS); using %s",
                    target.endpoint, target.security_profile, target.url)
    else:
        log.warning("Endpoint %s is wss://: security profile %d connects with TLS as the URL asks (server "
                    "certificate verified), never downgraded to ws://", target.endpoint, target.security_profile)


def classify_failure(exc: BaseException, *, url: str = "", open_timeout: float | None = None) -> ConnectFailed | None:
    """A failed attempt as a ConnectFailed (reason, security event, HTTP status); None when the
    exception is not a connection failure we know (a bug: let it show)."""
    host_port = _host_port(url)
    if isinstance(exc, ConnectFailed):
        return exc
    if isinstance(exc, InvalidStatus):
        response = exc.response
        status = response.status_code
        phrase = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in (401, 403):
            return ConnectFailed(f"backend refused our credentials ({phrase})",
                                 security_event=FAILED_TO_AUTHENTICATE, status=status)
        if 300 <= status < 400:
            where = response.headers.get("Location", "?")
            return ConnectFailed(f"backend redirects to {where} ({phrase}); the station does not follow redirects: "
                                 "set Endpoint to the new URL", status=status)
        if status == 404:
            return ConnectFailed(f"backend does not know this URL or chargebox id ({phrase})", status=status)
        if status == 400:
            return ConnectFailed(f"backend refused the WebSocket handshake ({phrase}); does it accept "
                                 f"subprotocol {SUBPROTOCOL} on this URL?", status=status)
        if status >= 500:
            return ConnectFailed(f"backend unavailable ({phrase})", status=status)
        return ConnectFailed(f"backend refused the WebSocket handshake ({phrase})", status=status)
    if isinstance(exc, ssl.SSLError):  # before OSError: SSLError is one
        return classify_tls_error(exc)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        within = f" within {open_timeout:g} s" if open_timeout else ""
        return ConnectFailed(f"no answer from the backend {host_port}{within} (timeout)")
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(f"cannot resolve the backend's host name {_host(url)}: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed(f"connection refused by {host_port} (no backend listening)")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, EOFError, InvalidMessage)):
        during = "TLS or WebSocket handshake" if url.lower().startswith("wss:") else "WebSocket handshake"
        return ConnectFailed(f"backend {host_port} closed the connection during the {during}")
    if isinstance(exc, InvalidURI):
        return ConnectFailed(f"invalid backend URL: {exc}")
    if isinstance(exc, SecurityError):
        return ConnectFailed(f"refused for safety: {exc}")
    if isinstance(exc, InvalidHandshake):
        return ConnectFailed(f"invalid WebSocket handshake answer from the backend: {exc}")
    if isinstance(exc, OSError):
        return ConnectFailed(f"network error connecting to {host_port}: {exc.strerror or exc}")
    return None


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _host_port(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return "?"
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- the persistent SecurityProfile trial ---------------------------------------------------

@dataclass
class ProfileState:
    """What must survive a restart: the last profile a connection succeeded with, and a raise
    on trial (``trial_profile``, to fall back to ``previous_profile`` if its first connection
    fails)."""

    confirmed_profile: int | None = None
    trial_profile: int | None = None
    previous_profile: int | None = None

    @classmethod
    def load(cls, path: Path | None) -> ProfileState:
        if path is None or not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            trial = data.get("trial") or {}
            return cls(_int_or_none(data.get("confirmed_profile")), _int_or_none(trial.get("profile")),
                       _int_or_none(trial.get("previous")))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring unreadable connection state %s: %s", path, exc)
            return cls()

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        trial = None
        if self.trial_profile is not None:
            trial = {"profile": self.trial_profile, "previous": self.previous_profile}
        _write_atomically(path, json.dumps({"confirmed_profile": self.confirmed_profile, "trial": trial}, indent=1))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---- the manager ----------------------------------------------------------------------------

@dataclass
class ConnectionStatus:
    """The connection as the WebUI dashboard shows it (a snapshot: :attr:`ConnectionManager.status`)."""

    state: str = "idle"  # idle | connecting | connected | waiting | stopped
    url: str | None = None
    security_profile: int | None = None
    attempts: int = 0  # connection attempts since start
    failures: int = 0  # failed attempts since start
    consecutive_failures: int = 0
    last_failure: str | None = None  # reason of the last failed attempt
    last_failure_at: datetime | None = None
    last_disconnect: str | None = None  # why the last open connection ended
    connected_since: datetime | None = None  # None while not connected
    stable: bool = False  # the session called mark_stable() on this connection
    next_attempt_in: float | None = None  # seconds of the current wait


Session = Callable[[ClientConnection], Awaitable[None]]
EventCallback = Callable[[str, str], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ConnectionManager:
    """Keeps the station connected to its backend.

    ``await manager.run(session)`` runs until :meth:`stop` (or cancellation): open a connection
    (:func:`open_connection`), run ``session(conn)`` until it returns or raises (the connection
    was lost, or closed by the manager), wait ``backoff.next_delay()`` and reconnect. The
    session should end when the connection closes (websockets raises ConnectionClosed from
    recv/send); if it has not ended ``session_close_grace`` seconds after the close, it is
    cancelled.

    - Backoff: :meth:`Backoff.from_store` (the Retry* keys). The series is reset by
      :meth:`mark_stable` (the OCPP session calls it when BootNotification is accepted), by a
      session that lasted ``stable_after`` seconds, and by a change of a reconnecting key.
    - A change of a key in :data:`RECONNECT_KEYS` reconnects at once, without backoff: an open
      connection is closed after ``reconnect_grace`` seconds (time for the session to send the
      ChangeConfiguration.conf that caused it), a wait is cut short.
    - SecurityProfile fallback and security events: see the module docstring.
    - ``ca_file`` (a path or a function giving it) and ``client_certificate`` (profile 3) are
      read at each attempt.
    - ``sleep`` (backoff waits and the reconnect grace), ``clock`` (wall time for the
      dashboard), ``monotonic`` (durations) and ``rng`` (backoff) are injected. Only the
      protocol-level timeouts (open/close timeouts, pings, ``session_close_grace``) run on the
      event loop's own clock, as websockets' do.
    - :attr:`status` is a snapshot for the WebUI: attempts, failures, last failure reason,
      connected since, the current wait.
    """

    def __init__(
        self,
        store: Any,
        *,
        ca_file: Path | None | Callable[[], Path | None] = None,
        client_certificate: Callable[[], ClientCertificate | None] = lambda: None,
        state_file: Path | None = None,
        on_event: EventCallback | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        ping_interval: float | None = None,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 5.0,
        stable_after: float = 60.0,
        reconnect_grace: float = 1.0,
        session_close_grace: float = 5.0,
    ):
        self._store = store
        self._ca_file = ca_file
        self._client_certificate = client_certificate
        self._state_file = state_file
        self._on_event = on_event
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self.backoff = backoff if backoff is not None else Backoff.from_store(store, self._rng)
        self._ping_interval = ping_interval
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._stable_after = stable_after
        self._reconnect_grace = reconnect_grace
        self._session_close_grace = session_close_grace

        self._status = ConnectionStatus()
        self._state = ProfileState.load(state_file)
        current = int(store.get("SecurityProfile"))
        if self._state.trial_profile is not None and self._state.trial_profile != current:
            log.info("dropping the SecurityProfile %s trial: the profile is now %d", self._state.trial_profile, current)
            self._clear_trial()
        self._generation = 0  # bumped by every reconnecting key change
        self._wake = asyncio.Event()
        self._conn: ClientConnection | None = None
        self._closer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._running = False
        self._stopping = False
        self._falling_back: str | None = None  # the reason, while we write the previous profile back
        self._last_event: str | None = None  # for "report a repeated failure once"
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- for the OCPP session and the WebUI ---------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        return dataclasses.replace(self._status)

    @property
    def profile_state(self) -> ProfileState:
        return dataclasses.replace(self._state)

    @property
    def connection(self) -> ClientConnection | None:
        return self._conn

    def mark_stable(self) -> None:
        """The backend accepted us (BootNotification Accepted): the next loss starts a new
        backoff series."""
        self.backoff.reset()
        self._status.stable = True

    def request_reconnect(self, why: str) -> None:
        """Close the current connection (after the grace) and reconnect at once."""
        self._reconfigured(why)

    async def stop(self) -> None:
        """Close the connection and make :meth:`run` return (after an attempt in progress ends)."""
        self._stopping = True
        self._wake.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(1001, "station shutting down")

    # ---- the loop -----------------------------------------------------------------------

    async def run(self, session: Session) -> None:
        if self._running:
            raise RuntimeError("ConnectionManager.run() is already running")
        self._running, self._stopping = True, False
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        unsubscribe = self._store.subscribe(self._on_change, RECONNECT_KEYS)
        try:
            while not self._stopping:
                self._wake.clear()
                generation = self._generation
                conn = await self._attempt()
                if self._stopping:
                    if conn is not None:
                        await self._close(conn, 1001, "station shutting down")
                    break
                if conn is None:
                    if self._generation == generation:  # a fallback or key change skips the wait
                        await self._wait(self.backoff.next_delay())
                    continue
                if self._generation != generation:
                    await self._close(conn, 1000, "configuration changed while connecting")
                    self._connection_ended("configuration changed while connecting")
                    continue
                await self._serve(conn, session)
                if self._generation == generation and not self._stopping:
                    await self._wait(self.backoff.next_delay())
        finally:
            unsubscribe()
            for task in list(self._tasks):
                task.cancel()
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await self._close(conn, 1001, "station shutting down")
            self._status.state, self._status.connected_since, self._status.next_attempt_in = "stopped", None, None
            self._running = False

    async def _attempt(self) -> ClientConnection | None:
        status = self._status
        status.state, status.next_attempt_in, status.stable = "connecting", None, False
        status.attempts += 1
        profile = int(self._store.get("SecurityProfile"))
        status.security_profile = profile
        try:
            status.url = connection_target(self._store).url
        except ConnectFailed:
            status.url = None
        try:
            ca_file = self._ca_file() if callable(self._ca_file) else self._ca_file  # may change at run time
            certificate = self._client_certificate() if profile == 3 else None
            conn = await open_connection(self._store, ca_file=ca_file, client_certificate=certificate, rng=self._rng,
                                         ping_interval=self._ping_interval, open_timeout=self._open_timeout,
                                         close_timeout=self._close_timeout)
        except ConnectFailed as failure:
            self._failed(failure, profile)
            return None
        except Exception as exc:  # a bug must not end the station's connection loop
            log.exception("unexpected error while connecting to the backend")
            self._failed(ConnectFailed(f"unexpected error while connecting: {type(exc).__name__}: {exc}"), profile)
            return None
        self._connected(profile)
        return conn

    def _failed(self, failure: ConnectFailed, profile: int) -> None:
        status = self._status
        status.state = "waiting"
        status.failures += 1
        status.consecutive_failures += 1
        status.last_failure, status.last_failure_at = failure.reason, self._clock()
        log.warning("connection to the backend failed (attempt %d, %s, security profile %d): %s",
                    status.attempts, status.url or "no URL", profile, failure.reason)
        if failure.security_event and failure.security_event != self._last_event:
            self._emit(failure.security_event, failure.reason)
        self._last_event = failure.security_event
        self._fall_back_if_on_trial(profile, failure.reason)

    def _connected(self, profile: int) -> None:
        status = self._status
        status.state, status.connected_since = "connected", self._clock()
        status.consecutive_failures = 0
        self._last_event = None
        log.info("connected to the backend %s (security profile %d, subprotocol %s)", status.url, profile, SUBPROTOCOL)
        changed = self._state.confirmed_profile != profile
        self._state.confirmed_profile = profile
        if self._state.trial_profile is not None and self._state.trial_profile == profile:
            log.info("security profile %d confirmed: the first connection with it succeeded; no fallback from now on",
                     profile)
            self._state.trial_profile = self._state.previous_profile = None
            changed = True
        if changed:
            self._save_state()

    async def _serve(self, conn: ClientConnection, session: Session) -> None:
        self._conn = conn
        started = self._monotonic()
        task = asyncio.ensure_future(session(conn))
        closed = asyncio.ensure_future(conn.wait_closed())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # closed under the session: give it a moment to notice
                await asyncio.wait({task}, timeout=self._session_close_grace)
            if not task.done():
                log.warning("the OCPP session did not end %.0f s after the connection closed; cancelling it",
                            self._session_close_grace)
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                problem = task.exception()
                if not isinstance(problem, ConnectionClosed):
                    log.error("the OCPP session failed; reconnecting", exc_info=problem)
        finally:
            closed.cancel()
            if not task.done():  # we are being cancelled
                task.cancel()
            self._conn = None
            await self._close(conn, 1000, "")
            lasted = self._monotonic() - started
            if lasted >= self._stable_after:
                self.backoff.reset()
            self._connection_ended(_close_description(conn), lasted)

    def _connection_ended(self, why: str, lasted: float | None = None) -> None:
        status = self._status
        status.state, status.connected_since, status.stable = "waiting", None, False
        status.last_disconnect = why
        if lasted is not None:
            log.warning("connection to the backend closed after %.0f s: %s", lasted, why)

    async def _close(self, conn: ClientConnection, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await conn.close(code, reason)

    async def _wait(self, delay: float) -> None:
        if self._wake.is_set() or self._stopping:
            return
        self._status.state, self._status.next_attempt_in = "waiting", delay
        log.info("reconnecting to the backend in %.1f s", delay)
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            self._status.next_attempt_in = None

    # ---- configuration changes ----------------------------------------------------------

    def _on_change(self, change: Any) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._handle_change, change)
        else:
            self._handle_change(change)

    def _handle_change(self, change: Any) -> None:
        if change.key == "SecurityProfile":
            self._profile_changed(change)
        if self._running:
            self._reconfigured(f"{change.key} changed")

    def _reconfigured(self, why: str) -> None:
        self._generation += 1
        self.backoff.reset()
        self._wake.set()
        conn = self._conn
        if conn is None or self._loop is None:
            return
        log.info("%s: reconnecting to the backend", why)
        if self._closer is not None and not self._closer.done():
            return

        async def close_later() -> None:
            if self._reconnect_grace > 0:
                await self._sleep(self._reconnect_grace)
            if self._conn is conn:
                await self._close(conn, 1000, f"reconnecting: {why}")

        self._closer = self._loop.create_task(close_later())
        self._tasks.add(self._closer)
        self._closer.add_done_callback(self._tasks.discard)

    def _profile_changed(self, change: Any) -> None:
        old, new, source = change.old, change.new, change.source
        details = f"SecurityProfile changed from {old} to {new} ({source.value})"
        if self._falling_back is not None:
            details += f": fallback, the first connection with {old} failed ({self._falling_back})"
        self._emit(RECONFIGURATION, details)
        if self._falling_back is not None:
            return
        if source is Source.OCPP and old is not None and new > old:
            self._state.trial_profile, self._state.previous_profile = int(new), int(old)
            self._save_state()
            log.info("security profile raised from %d to %d by the backend: if the first connection with %d fails, "
                     "the station falls back to %d", old, new, new, old)
        elif self._state.trial_profile is not None:
            self._clear_trial()

    def _fall_back_if_on_trial(self, profile: int, reason: str) -> None:
        state = self._state
        if state.trial_profile is None or state.trial_profile != profile or state.previous_profile is None:
            return
        previous = state.previous_profile
        self._clear_trial()
        log.warning("security profile %d: the first connection with it failed (%s); falling back to security "
                    "profile %d", profile, reason, previous)
        self._falling_back = reason
        try:
            result = self._store.set("SecurityProfile", str(previous), Source.LOCAL)
        finally:
            self._falling_back = None
        if not result.ok:
            log.error("cannot fall back to security profile %d: %s", previous, result.reason)

    def _clear_trial(self) -> None:
        self._state.trial_profile = self._state.previous_profile = None
        self._save_state()

    def _save_state(self) -> None:
        try:
            self._state.save(self._state_file)
        except OSError as exc:
            log.error("cannot write the connection state %s: %s", self._state_file, exc)

    def _emit(self, name: str, details: str) -> None:
        log.info("security event %s: %s", name, details)
        if self._on_event is None:
            return
        try:
            self._on_event(name, details)
        except Exception:  # the application's queue must not break the connection
            log.exception("on_event(%s) failed", name)


def _close_description(conn: ClientConnection) -> str:
    with contextlib.suppress(Exception):
        return str(conn.protocol.close_exc)
    return "connection closed"
