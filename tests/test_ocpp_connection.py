"""The station's connection to its backend: URL, security profiles, failures, backoff, reconnects.

Everything runs against real servers on 127.0.0.1: the simulated central system
(firmware_sim.central_system), a throwaway PKI, and a few raw servers for what a well-behaved
server never does (no subprotocol, no pong, redirects, old TLS, foreign cipher suites). Backoff
waits go through a fake sleep that records the delay and returns almost at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import socket
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import serve

from firmware_sim.central_system import CentralSystem
from firmware_sim.test_pki import ThrowawayPKI, create_test_pki
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.ocpp_client.backoff import Backoff
from stationd.ocpp_client.connection import (
    FAILED_TO_AUTHENTICATE,
    RECONFIGURATION,
    STATE_FILE_NAME,
    SUBPROTOCOL,
    ConnectionManager,
    basic_authorization,
    classify_failure,
    connection_url,
    open_connection,
)
from stationd.ocpp_client.errors import ConnectFailed

CBID = "TE-1"
# 16 bytes that are not valid UTF-8: the server can only accept them if it got the decoded bytes.
KEY = bytes.fromhex("00ff10fe20fd30fc40fb50fa60f970f8")
KEY_HEX = KEY.hex()
WRONG_KEY_HEX = "11" * 16


# ---- helpers ------------------------------------------------------------------------------

def make_store(endpoint: str, *, profile: int = 0, key_hex: str | None = KEY_HEX, box_id: str = CBID) -> ConfigStore:
    store = ConfigStore(installation={"BoxId": box_id, "Endpoint": endpoint, "SecurityProfile": "0"})
    if key_hex is not None:
        assert store.set("AuthorizationKey", key_hex, Source.OCPP).ok
    if profile:
        assert store.set("SecurityProfile", str(profile), Source.LOCAL).ok
    return store


class FakeSleep:
    """Records every wait and returns after a tiny real pause (keeps the loops from spinning)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)


async def until(probe: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := probe()):
            await asyncio.sleep(0.01)
        return result


async def hold(conn: ClientConnection) -> None:
    """A session that only keeps the connection until it closes."""
    async for _ in conn:
        pass


@contextlib.asynccontextmanager
async def running(manager: ConnectionManager, session: Any = hold) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(manager.run(session))
    try:
        yield task
    finally:
        await manager.stop()
        try:
            await asyncio.wait_for(task, 5)
        finally:
            if not task.done():
                task.cancel()


def manager_for(store: ConfigStore, **kwargs: Any) -> tuple[ConnectionManager, FakeSleep, list[tuple[str, str]]]:
    sleep, events = FakeSleep(), []
    kwargs.setdefault("reconnect_grace", 0)
    kwargs.setdefault("open_timeout", 3)
    kwargs.setdefault("close_timeout", 1)
    manager = ConnectionManager(store, sleep=sleep, rng=random.Random(7),
                                on_event=lambda name, details: events.append((name, details)), **kwargs)
    return manager, sleep, events


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPKI:
    return create_test_pki(tmp_path_factory.mktemp("pki"))


def tls_server_context(pki: ThrowawayPKI) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_path, pki.key_path)
    return context


@contextlib.contextmanager
def blocking_tls_server(context: ssl.SSLContext):
    """A TLS server in a thread (blocking ssl sends its alerts; asyncio's server just resets).
    Yields the port; one handshake attempt."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def serve_one() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):
                context.wrap_socket(conn, server_side=True)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(5)
        listener.close()


@contextlib.asynccontextmanager
async def raw_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        # Swallow even the cancellation at teardown (asyncio logs a cancelled handler as an error).
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def websocket_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a WebSocket handshake by hand (101 with subprotocol ocpp1.6)."""
    request = (await reader.readuntil(b"\r\n\r\n")).decode()
    key = next(line.split(":", 1)[1].strip() for line in request.split("\r\n")
               if line.lower().startswith("sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    writer.write((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
    await writer.drain()


# ---- connection_url and credentials -------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "box_id", "profile", "expected"), [
    ("ws://h:9000/ocpp", "TE-1", None, "ws://h:9000/ocpp/TE-1"),
    ("ws://h:9000/ocpp/", "TE-1", None, "ws://h:9000/ocpp/TE-1"),
    ("ws://h", "TE-1", None, "ws://h/TE-1"),
    ("ws://h/ocppj/v1.6/{BoxID}", "14452", None, "ws://h/ocppj/v1.6/14452"),
    ("ws://h/a/{BoxId}/b", "X", None, "ws://h/a/X/b"),
    ("ws://h/a/{boxid}", "X", None, "ws://h/a/X"),
    ("ws://h/ocpp?tenant=7", "TE-1", None, "ws://h/ocpp/TE-1?tenant=7"),
    ("ws://h/ocpp", "a|b c", None, "ws://h/ocpp/a%7Cb%20c"),
    ("ws://h/ocpp", "id:1+2@x=y*", None, "ws://h/ocpp/id:1+2@x=y*"),  # pchar stays as is
    ("ws://h/ocpp", "a/b", None, "ws://h/ocpp/a%2Fb"),
    ("ws://h:8443/ocpp", "TE-1", 0, "ws://h:8443/ocpp/TE-1"),
    ("ws://h/ocpp", "TE-1", 1, "ws://h/ocpp/TE-1"),
    ("wss://h/ocpp", "TE-1", 1, "wss://h/ocpp/TE-1"),  # never downgraded
    ("ws://h:9000/ocpp", "TE-1", 2, "wss://h:9000/ocpp/TE-1"),
    ("WSS://[::1]:9000/ocpp#frag", "TE-1", 2, "wss://[::1]:9000/ocpp/TE-1"),
])
def test_connection_url(endpoint: str, box_id: str, profile: int | None, expected: str) -> None:
    assert connection_url(endpoint, box_id, security_profile=profile) == expected


@pytest.mark.parametrize(("endpoint", "box_id", "words"), [
    ("", "TE-1", "Endpoint is empty"),
    ("ws://h/ocpp", "", "BoxId is empty"),
    ("http://h/ocpp", "TE-1", "ws:// or wss://"),
])
def test_connection_url_refuses_incomplete_configuration(endpoint: str, box_id: str, words: str) -> None:
    with pytest.raises(ConnectFailed, match=words):
        connection_url(endpoint, box_id)


def test_basic_authorization_uses_the_decoded_key_bytes() -> None:
    header = basic_authorization("TE-1", KEY_HEX)
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]) == b"TE-1:" + KEY


def test_classify_plain_network_failures() -> None:
    dns = classify_failure(socket.gaierror(-2, "Name or service not known"), url="ws://backend.example/ocpp/X")
    assert dns is not None and "cannot resolve the backend's host name backend.example" in dns.reason
    assert dns.security_event is None
    timeout = classify_failure(TimeoutError("timed out during opening handshake"), url="wss://h/o/X", open_timeout=10)
    assert timeout is not None and timeout.reason == "no answer from the backend h:443 within 10 s (timeout)"
    assert classify_failure(ValueError("a bug")) is None


# ---- backoff ------------------------------------------------------------------------------

def test_backoff_defaults_nine_random_waits_then_fixed() -> None:
    backoff = Backoff(10, 6, 9, random.Random(42))
    reference = random.Random(42)
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays[:9] == [10 + reference.uniform(0, 6) for _ in range(9)]
    assert all(10 <= d <= 16 for d in delays[:9]) and len(set(delays[:9])) == 9
    assert delays[9:] == [16.0, 16.0, 16.0]
    backoff.reset()
    assert 10 <= backoff.next_delay() <= 16 and backoff.attempt == 1


def test_backoff_edge_values() -> None:
    assert [Backoff(5, 3, 0, random.Random(1)).next_delay() for _ in range(2)] == [8.0, 8.0]
    fixed = Backoff(5, 0, 3, random.Random(1))
    assert [fixed.next_delay() for _ in range(4)] == [5.0] * 4


def test_backoff_follows_the_retry_keys() -> None:
    store = make_store("ws://127.0.0.1:1/ocpp")
    backoff = Backoff.from_store(store, random.Random(3))
    first = [backoff.next_delay() for _ in range(10)]
    assert all(10 <= d <= 16 for d in first[:9]) and first[9] == 16
    for name, value in (("RetryBackoffWaitMinimum", "30"), ("RetryBackoffRandomRange", "2"), ("RetryRepeatTimes", "2")):
        assert store.set(name, value, Source.OCPP).ok
    assert backoff.next_delay() == 32.0  # a running series takes the change from its next wait on
    backoff.reset()  # the next series (a change also applies to the next wait of a running one)
    second = [backoff.next_delay() for _ in range(4)]
    assert all(30 <= d <= 32 for d in second[:2]) and second[2:] == [32.0, 32.0]


# ---- one attempt: profiles 0 and 1 --------------------------------------------------------

async def test_profile_0_connects_with_subprotocol_to_endpoint_slash_id() -> None:
    async with CentralSystem(security_profile=0) as cs:
        store = make_store(cs.url, key_hex=None, box_id="TE|1")
        ws = await open_connection(store, ca_file=None, ping_interval=0)
        try:
            assert ws.subprotocol == SUBPROTOCOL
            await cs.wait_connected("TE|1")
            (handshake,) = cs.handshakes("TE|1")
            assert (handshake.status, handshake.path, handshake.user) == (101, "/ocpp/TE%7C1", None)
            assert SUBPROTOCOL in handshake.subprotocols
            assert "Authorization" not in ws.request.headers  # profile 0 sends no credentials
        finally:
            await ws.close()


async def test_backend_without_the_subprotocol_is_refused() -> None:
    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:  # offers no subprotocol: answers without one
        port = server.sockets[0].getsockname()[1]
        store = make_store(f"ws://127.0.0.1:{port}/ocpp", key_hex=None)
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(store, ca_file=None, ping_interval=0)
    assert failure.value.reason == "backend did not accept subprotocol ocpp1.6"


async def test_profile_1_sends_the_decoded_hex_key() -> None:
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as cs:
        ws = await open_connection(make_store(cs.url, profile=1), ca_file=None, ping_interval=0)
        try:
            await cs.wait_connected(CBID)
            (handshake,) = cs.handshakes(CBID)
            assert (handshake.status, handshake.user) == (101, CBID)
        finally:
            await ws.close()


async def test_profile_1_wrong_key_is_refused_with_the_security_event() -> None:
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as cs:
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(make_store(cs.url, profile=1, key_hex=WRONG_KEY_HEX), ca_file=None)
    assert failure.value.status == 401
    assert failure.value.security_event == FAILED_TO_AUTHENTICATE
    assert "backend refused our credentials (HTTP 401" in failure.value.reason


async def test_wrong_key_is_retried_with_backoff_without_crashing() -> None:
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as cs:
        manager, sleep, events = manager_for(make_store(cs.url, profile=1, key_hex=WRONG_KEY_HEX))
        async with running(manager) as task:
            await until(lambda: len(cs.handshakes(CBID)) >= 4)
            assert not task.done()
        assert {h.status for h in cs.handshakes(CBID)} == {401}
        assert len(sleep.delays) >= 3 and all(10 <= d <= 16 for d in sleep.delays)
        assert events == [(FAILED_TO_AUTHENTICATE, events[0][1])]  # reported once, not per attempt
        status = manager.status
        assert status.failures >= 4 and status.attempts >= 4 and status.connected_since is None
        assert status.last_failure is not None and "credentials" in status.last_failure


async def test_refused_tcp_and_silent_backend_give_plain_reasons() -> None:
    port = free_port()
    with pytest.raises(ConnectFailed) as refused:
        await open_connection(make_store(f"ws://127.0.0.1:{port}/ocpp"), ca_file=None)
    assert refused.value.reason == f"connection refused by 127.0.0.1:{port} (no backend listening)"
    assert refused.value.security_event is None

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with raw_server(silent) as port:
        with pytest.raises(ConnectFailed) as timeout:
            await open_connection(make_store(f"ws://127.0.0.1:{port}/ocpp"), ca_file=None, open_timeout=0.3)
    assert "timeout" in timeout.value.reason and timeout.value.security_event is None


async def test_redirects_are_not_followed() -> None:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 301 Moved Permanently\r\nLocation: ws://127.0.0.1:1/elsewhere\r\n"
                     b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_server(redirect) as port:
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(make_store(f"ws://127.0.0.1:{port}/ocpp", profile=1), ca_file=None)
    assert failure.value.status == 301
    assert "redirects to ws://127.0.0.1:1/elsewhere" in failure.value.reason


# ---- one attempt: profile 2 ---------------------------------------------------------------

async def test_profile_2_connects_with_tls_and_basic_auth(pki: ThrowawayPKI, caplog: pytest.LogCaptureFixture) -> None:
    async with CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={CBID: KEY}) as cs:
        assert cs.url.startswith("wss://")
        # The Endpoint says ws://; profile 2 upgrades to wss://, and says so once.
        store = make_store(cs.url.replace("wss://", "ws://"), profile=2)
        for _ in range(2):
            ws = await open_connection(store, ca_file=pki.ca_path, ping_interval=0)
            try:
                tls = ws.transport.get_extra_info("ssl_object")
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.compression() is None
                await cs.wait_connected(CBID)
                assert cs.handshakes(CBID)[-1].user == CBID
            finally:
                await ws.close()
    upgrades = [r for r in caplog.records if "connects with wss://" in r.getMessage()]
    assert len(upgrades) == 1


async def test_profile_1_on_a_wss_endpoint_keeps_tls(pki: ThrowawayPKI) -> None:
    async with CentralSystem(security_profile=1, ssl_context=pki.server_context, passwords={CBID: KEY}) as cs:
        ws = await open_connection(make_store(cs.url, profile=1), ca_file=pki.ca_path, ping_interval=0)
        try:
            assert ws.transport.get_extra_info("ssl_object") is not None
            assert cs.handshakes(CBID)[-1].user == CBID
        finally:
            await ws.close()


@pytest.mark.parametrize(("key_type", "server_ciphers", "expected"), [
    ("ec", None, {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"}),
    ("rsa", None, {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"}),
    ("rsa", "AES128-GCM-SHA256:AES256-GCM-SHA384", {"AES128-GCM-SHA256", "AES256-GCM-SHA384"}),  # TLS_RSA_*
])
async def test_profile_2_over_tls_1_2_uses_the_whitepaper_suites(tmp_path: Path, key_type: str,
                                                                  server_ciphers: str | None,
                                                                  expected: set[str]) -> None:
    server_pki = create_test_pki(tmp_path, key_type=key_type)
    server = tls_server_context(server_pki)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    if server_ciphers:
        server.set_ciphers(server_ciphers)
    async with CentralSystem(security_profile=2, ssl_context=server, passwords={CBID: KEY}) as cs:
        ws = await open_connection(make_store(cs.url, profile=2), ca_file=server_pki.ca_path, ping_interval=0)
        try:
            name, version, _ = ws.transport.get_extra_info("cipher")
            assert version == "TLSv1.2" and name in expected
        finally:
            await ws.close()


@pytest.mark.parametrize(("names", "words"), [
    ({"other_ca": True}, "certificate"),
    ({"common_name": "elsewhere", "dns_names": ("elsewhere.example",), "ip_addresses": ()}, "mismatch"),
    ({"expired": True}, "expired"),
])
async def test_profile_2_refuses_a_bad_certificate(tmp_path: Path, pki: ThrowawayPKI, names: dict[str, Any],
                                                   words: str) -> None:
    other_ca = names.pop("other_ca", False)
    server_pki = create_test_pki(tmp_path / "server", **names)
    trusted = pki.ca_path if other_ca else server_pki.ca_path
    async with CentralSystem(security_profile=2, ssl_context=server_pki.server_context, passwords={CBID: KEY}) as cs:
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(make_store(cs.url, profile=2), ca_file=trusted)
        assert cs.handshakes(CBID) == []  # refused before any HTTP: the password never left
    assert failure.value.security_event == "InvalidCentralSystemCertificate"
    assert failure.value.reason.startswith("backend certificate not accepted: ")
    assert words in failure.value.reason


async def test_profile_2_with_a_missing_ca_file_is_a_configuration_failure(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailed, match="CA certificate file .* does not exist"):
        await open_connection(make_store("wss://127.0.0.1:1/ocpp", profile=2), ca_file=tmp_path / "none.pem")


async def test_profile_2_tls_version_and_cipher_problems_have_their_events(pki: ThrowawayPKI) -> None:
    old = tls_server_context(pki)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with blocking_tls_server(old) as port, pytest.raises(ConnectFailed) as version:
        await open_connection(make_store(f"wss://127.0.0.1:{port}/ocpp", profile=2), ca_file=pki.ca_path)
    assert version.value.security_event == "InvalidTLSVersion", version.value.reason

    foreign = tls_server_context(pki)
    foreign.maximum_version = ssl.TLSVersion.TLSv1_2
    foreign.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with blocking_tls_server(foreign) as port, pytest.raises(ConnectFailed) as cipher:
        await open_connection(make_store(f"wss://127.0.0.1:{port}/ocpp", profile=2), ca_file=pki.ca_path)
    assert cipher.value.security_event == "InvalidTLSCipherSuite", cipher.value.reason


async def test_profile_2_against_a_plain_server_fails_without_a_security_event(pki: ThrowawayPKI) -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_server(plain_http) as port:
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(make_store(f"ws://127.0.0.1:{port}/ocpp", profile=2), ca_file=pki.ca_path)
    assert failure.value.security_event is None
    assert "did not answer with TLS" in failure.value.reason


# ---- the manager: reconnects, SecurityProfile changes and fallback -------------------------

async def test_profile_raised_0_to_1_while_connected_reconnects_with_basic_auth(tmp_path: Path) -> None:
    async with CentralSystem(security_profile=0) as cs:  # records credentials, requires none
        store = make_store(cs.url)
        manager, sleep, events = manager_for(store, state_file=tmp_path / STATE_FILE_NAME)
        async with running(manager):
            await cs.wait_connected(CBID)
            assert cs.handshakes(CBID)[0].user is None
            assert store.set("SecurityProfile", "1", Source.OCPP).ok
            await until(lambda: len(cs.handshakes(CBID)) == 2 and cs.connected(CBID))
            assert cs.handshakes(CBID)[1].user == CBID
            await until(lambda: manager.status.state == "connected")
        assert sleep.delays == []  # reconnected at once, no backoff
        assert [name for name, _ in events] == [RECONFIGURATION]
        assert manager.profile_state.confirmed_profile == 1 and manager.profile_state.trial_profile is None
        assert json.loads((tmp_path / STATE_FILE_NAME).read_text()) == {"confirmed_profile": 1, "trial": None}


async def test_raise_1_to_2_that_fails_falls_back_to_1(tmp_path: Path, pki: ThrowawayPKI,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as cs:  # no TLS on this port
        store = make_store(cs.url, profile=1)
        manager, sleep, events = manager_for(store, ca_file=pki.ca_path, state_file=tmp_path / STATE_FILE_NAME)
        async with running(manager):
            await cs.wait_connected(CBID)
            assert store.set("SecurityProfile", "2", Source.OCPP).ok
            await until(lambda: store.get("SecurityProfile") == 1)
            await until(lambda: len(cs.handshakes(CBID)) == 2 and cs.connected(CBID))
        assert [h.status for h in cs.handshakes(CBID)] == [101, 101]
        assert [name for name, _ in events] == [RECONFIGURATION, RECONFIGURATION]
        assert "fallback" in events[1][1] and "from 2 to 1" in events[1][1]
        assert manager.status.last_failure is not None and manager.status.attempts == 3
        assert sleep.delays == []
        assert manager.profile_state.trial_profile is None
        assert "falling back to security profile 1" in caplog.text


async def test_after_a_successful_connection_with_2_a_failure_does_not_fall_back(
        tmp_path: Path, pki: ThrowawayPKI) -> None:
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as plain, \
            CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={CBID: KEY}) as secure:
        store = make_store(plain.url, profile=1)
        manager, sleep, events = manager_for(store, ca_file=pki.ca_path, state_file=tmp_path / STATE_FILE_NAME)
        async with running(manager):
            await plain.wait_connected(CBID)
            # The backend moves the station to its TLS endpoint and raises the profile.
            assert store.set("Endpoint", secure.url, Source.OCPP).ok
            assert store.set("SecurityProfile", "2", Source.OCPP).ok
            await secure.wait_connected(CBID)
            await until(lambda: manager.profile_state.confirmed_profile == 2)
            await secure.stop()  # the backend goes away
            await until(lambda: manager.status.failures >= 3)
            assert store.get("SecurityProfile") == 2
        assert len(sleep.delays) >= 3
        assert [name for name, _ in events] == [RECONFIGURATION]
        assert json.loads((tmp_path / STATE_FILE_NAME).read_text()) == {"confirmed_profile": 2, "trial": None}


async def test_a_raise_on_trial_survives_a_restart(tmp_path: Path, pki: ThrowawayPKI) -> None:
    state_file = tmp_path / STATE_FILE_NAME
    state_file.write_text(json.dumps({"confirmed_profile": 1, "trial": {"profile": 2, "previous": 1}}))
    async with CentralSystem(security_profile=1, passwords={CBID: KEY}) as cs:
        store = make_store(cs.url, profile=2)  # the raise was stored; the station restarted before connecting
        manager, sleep, events = manager_for(store, ca_file=pki.ca_path, state_file=state_file)
        async with running(manager):
            await cs.wait_connected(CBID)
        assert store.get("SecurityProfile") == 1
        assert manager.status.attempts == 2 and sleep.delays == []
        assert [name for name, _ in events] == [RECONFIGURATION] and "fallback" in events[0][1]
        assert json.loads(state_file.read_text()) == {"confirmed_profile": 1, "trial": None}


async def test_a_local_change_is_never_on_trial(tmp_path: Path) -> None:
    store = make_store(f"ws://127.0.0.1:{free_port()}/ocpp")  # nobody listens: the manager keeps trying
    manager, _, events = manager_for(store, state_file=tmp_path / STATE_FILE_NAME)
    async with running(manager):
        await until(lambda: manager.status.failures >= 1)
        # No await between the writes: the manager sees them before any new attempt.
        assert store.set("SecurityProfile", "1", Source.LOCAL).ok
        assert manager.profile_state.trial_profile is None
        assert store.set("SecurityProfile", "2", Source.OCPP).ok
        assert (manager.profile_state.trial_profile, manager.profile_state.previous_profile) == (2, 1)
        assert json.loads((tmp_path / STATE_FILE_NAME).read_text())["trial"] == {"profile": 2, "previous": 1}
        assert store.set("SecurityProfile", "1", Source.LOCAL).ok  # the installer decides: no trial any more
        assert manager.profile_state.trial_profile is None
    assert [name for name, _ in events] == [RECONFIGURATION] * 3


async def test_missing_pong_closes_and_reconnects() -> None:
    connections = 0

    async def no_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        await websocket_accept(reader, writer)
        connections += 1
        await asyncio.sleep(30)  # never reads again: no pong, no close frame

    async with raw_server(no_pong) as port:
        store = make_store(f"ws://127.0.0.1:{port}/ocpp")
        manager, sleep, _ = manager_for(store, ping_interval=0.2, close_timeout=0.2)
        async with running(manager):
            await until(lambda: connections >= 2)
            assert "keepalive ping timeout" in (manager.status.last_disconnect or "")
        assert len(sleep.delays) >= 1 and 10 <= sleep.delays[0] <= 16


async def test_a_reconnecting_key_change_cuts_the_backoff_wait_short() -> None:
    waits: list[float] = []
    release = asyncio.Event()

    async def endless_sleep(delay: float) -> None:
        waits.append(delay)
        await release.wait()  # an hour, as far as this test cares

    async with CentralSystem(security_profile=0) as cs:
        store = make_store(f"ws://127.0.0.1:{free_port()}/ocpp")
        manager = ConnectionManager(store, sleep=endless_sleep, rng=random.Random(1), reconnect_grace=0,
                                    open_timeout=3)
        async with running(manager):
            await until(lambda: manager.status.state == "waiting" and waits)
            assert store.set("Endpoint", cs.url, Source.OCPP).ok
            await cs.wait_connected(CBID, timeout=2)
            assert len(waits) == 1  # the one wait was interrupted, no second wait
            release.set()


async def test_a_reconnecting_key_change_while_connected_reconnects_at_once() -> None:
    async with CentralSystem(security_profile=0) as cs:
        store = make_store(cs.url)
        manager, sleep, _ = manager_for(store)
        async with running(manager):
            await cs.wait_connected(CBID)
            assert store.set("chargeboxidentity", "TE-2", Source.OCPP).ok  # an alias of BoxId
            await cs.wait_connected("TE-2")
            await cs.wait_disconnected(CBID)
        assert sleep.delays == []
        assert [h.path for h in cs.handshakes()] == ["/ocpp/TE-1", "/ocpp/TE-2"]


async def test_lost_connections_back_off_and_mark_stable_restarts_the_series() -> None:
    async with CentralSystem(security_profile=0) as cs:
        store = make_store(cs.url)
        holder: dict[str, ConnectionManager] = {}
        stable = {"on": False}

        async def session(conn: ClientConnection) -> None:
            if stable["on"]:
                holder["m"].mark_stable()
            await hold(conn)

        manager, sleep, _ = manager_for(store)
        holder["m"] = manager
        async with running(manager, session):
            for expected in (1, 2, 3):  # unstable connections: the series goes on
                await until(lambda: cs.connected(CBID) and manager.status.state == "connected")
                await cs.disconnect(CBID)
                await until(lambda expected=expected: manager.backoff.attempt == expected)
            stable["on"] = True
            for _ in range(2):  # stable ones: every loss starts a new series
                await until(lambda: cs.connected(CBID) and manager.status.stable)
                await cs.disconnect(CBID)
                await until(lambda: manager.status.state != "connected")
                await until(lambda: manager.backoff.attempt == 1)
        assert len(sleep.delays) >= 5 and all(10 <= d <= 16 for d in sleep.delays)


async def test_a_failing_session_does_not_end_the_loop() -> None:
    calls = 0

    async def broken(conn: ClientConnection) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in the session")

    async with CentralSystem(security_profile=0) as cs:
        manager, sleep, _ = manager_for(make_store(cs.url))
        async with running(manager, broken) as task:
            await until(lambda: calls >= 3)
            assert not task.done()
        assert len(sleep.delays) >= 2
