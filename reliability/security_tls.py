"""The TLS matrix of security profile 2 against the running demo.

Each bad backend is a real TLS server on 127.0.0.1 with one thing wrong — a certificate from a CA
the station does not trust, an expired certificate or one for another host name (both issued by
the trusted CA), a server that speaks only TLS 1.1, one that speaks only TLS 1.0 — and a client
that checks nothing shakes hands with it first, so the server demonstrably works. The station is sent there with
``stationd config set Endpoint`` while it runs; the case holds when it never completes a
handshake, tries again (at least twice, backoff 1–2 s), logs the refusal with its reason, and
stays alive; afterwards it goes back to the good backend and reconnects with its state
(SecurityProfile 2). A SecurityProfile downgrade by ChangeConfiguration must be Rejected and
change nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from .security_rig import BOX, HandshakeServer, Rig, bad_server_context, permissive_handshake, server_context
from .tally import Tally

RETRIES = 2  # handshake attempts a refused backend must see (the station keeps retrying)


@dataclass(frozen=True)
class BadBackend:
    name: str
    context: ssl.SSLContext
    log_words: tuple[str, ...]  # what the station's log line must say (lower case, any one of them)
    old_tls: bool = False


def backends(rig: Rig, long: bool) -> list[BadBackend]:
    from firmware_sim.test_pki import create_test_pki

    folder = rig.directory / "bad-backends"
    cases = [
        BadBackend("untrusted CA", server_context(create_test_pki(folder / "stranger")),
                   ("unable to get local issuer", "self-signed", "unknown ca")),
        BadBackend("expired certificate", bad_server_context(rig.pki, folder / "expired", expired=True),
                   ("expired",)),
        BadBackend("wrong host name", bad_server_context(rig.pki, folder / "elsewhere", host="elsewhere.example",
                                                         ips=()),
                   ("hostname mismatch", "ip address mismatch", "mismatch")),
        BadBackend("TLS 1.1 only", server_context(rig.pki, old_tls=ssl.TLSVersion.TLSv1_1),
                   ("tls version refused",), old_tls=True),
        BadBackend("TLS 1.0 only", server_context(rig.pki, old_tls=ssl.TLSVersion.TLSv1),
                   ("tls version refused",), old_tls=True),
    ]
    if long:
        foreign = server_context(rig.pki)
        foreign.maximum_version = ssl.TLSVersion.TLSv1_2
        foreign.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
        cases.append(BadBackend("TLS 1.2 with a foreign cipher suite only", foreign, ("cipher suite refused",)))
        cases.append(BadBackend("untrusted CA, RSA key", server_context(
            create_test_pki(folder / "stranger-rsa", key_type="rsa")), ("unable to get local issuer", "self-signed")))
    return cases


async def try_backend(rig: Rig, backend: BadBackend, tally: Tally) -> None:
    server = HandshakeServer(backend.context)
    try:
        version = await asyncio.to_thread(permissive_handshake, server.port, old_tls=backend.old_tls)
        if version is None:
            tally.failed(f"TLS {backend.name}: the bad backend itself does not work (no handshake with a client "
                         "that checks nothing): nothing tested")
            return
        deadline = time.monotonic() + 5  # the server thread's side of that handshake ends a moment later
        while server.completed < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        server.attempts = server.completed = 0
        mark = len(rig.log_text())
        code, output = await rig.config_set("Endpoint", server.url)
        if code != 0:
            tally.failed(f"TLS {backend.name}: stationd config set Endpoint failed: {output.strip()}")
            return
        deadline = time.monotonic() + 20
        while server.attempts < RETRIES and time.monotonic() < deadline and rig.alive():
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # the refusal's log line follows the handshake
        new_log = rig.log_text()[mark:].lower()
        problems = []
        if server.completed:
            problems.append(f"the station completed {server.completed} TLS handshake(s): ACCEPTED")
            tally.lost += 1
        if server.attempts < RETRIES:
            problems.append(f"only {server.attempts} handshake attempt(s) in 20 s (no retries)")
        if not any(word in new_log for word in backend.log_words):
            problems.append(f"no log line with {' / '.join(backend.log_words)!r}")
        if not rig.alive():
            problems.append("the daemon died")
        if problems:
            tally.failed(f"TLS {backend.name}: " + "; ".join(problems))
        else:
            reason = next((line for line in new_log.splitlines() if any(w in line for w in backend.log_words)), "")
            tally.ok(f"TLS {backend.name} (a permissive client got {version}): refused {server.attempts}x, "
                     f"logged: {reason.strip()[-160:]}")
    finally:
        server.stop()


async def back_to_the_good_backend(rig: Rig, tally: Tally) -> None:
    before = len(rig.secure.handshakes(BOX))
    code, output = await rig.config_set("Endpoint", f"wss://127.0.0.1:{rig.secure.port}/ocpp")
    if code != 0:
        tally.failed(f"TLS: back to the good backend: config set failed: {output.strip()}")
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (len(rig.secure.handshakes(BOX)) > before and rig.secure.connected(BOX)):
        await asyncio.sleep(0.1)
    if not rig.secure.connected(BOX):
        tally.failed("TLS: the station did not reconnect to the good backend after the refused ones")
        return
    profile = await key_value(rig, "SecurityProfile")
    if profile != "2":
        tally.failed(f"TLS: after the refused backends SecurityProfile is {profile}, not 2")
        tally.lost += 1
        return
    tally.ok("TLS: back on the good backend with SecurityProfile 2 after the refused ones")


async def key_value(rig: Rig, key: str) -> str | None:
    answer = await rig.secure.call(BOX, "GetConfiguration", {"key": [key]})
    values = answer.get("configurationKey") or []
    return values[0].get("value") if values else None


async def downgrades(rig: Rig, tally: Tally, long: bool) -> None:
    """ChangeConfiguration SecurityProfile below 2 (and to 3 without a certificate) is Rejected."""
    values = ["1", "0"] + (["3", "-1", "2.0", " 1", "01"] if long else ["3"])
    for value in values:
        handshakes = len(rig.secure.handshakes(BOX))
        answer = await rig.secure.call(BOX, "ChangeConfiguration", {"key": "SecurityProfile", "value": value},
                                       validate=False)
        await asyncio.sleep(0.5)
        profile = await key_value(rig, "SecurityProfile")
        still = rig.secure.connected(BOX) and len(rig.secure.handshakes(BOX)) == handshakes
        if answer.get("status") == "Accepted" or profile != "2":
            tally.lost += 1
            tally.failed(f"SecurityProfile {value!r} by ChangeConfiguration: {answer}, now {profile}: ACCEPTED")
        elif answer.get("status") != "Rejected" or not still:
            tally.failed(f"SecurityProfile {value!r}: answered {answer} (not Rejected) or the connection changed")
        else:
            tally.ok()
    tally.notes.append(f"SecurityProfile downgrade by ChangeConfiguration to {', '.join(values)}: all Rejected")


async def run_matrix(rig: Rig, tally: Tally, long: bool) -> None:
    await downgrades(rig, tally, long)
    for backend in backends(rig, long):
        await try_backend(rig, backend, tally)
    await back_to_the_good_backend(rig, tally)
