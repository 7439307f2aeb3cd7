"""Category "security": hostile inputs against the real daemon, counted in cases.

One ``stationd demo`` (child process, its own process group) on a profile 2 TLS central system
on 127.0.0.1 (:mod:`reliability.security_rig`) is tried, in this order, by

1. :mod:`reliability.security_tls` — SecurityProfile downgrades by ChangeConfiguration, then the
   TLS matrix (untrusted CA, expired certificate, wrong host name, TLS 1.1 only, TLS 1.0 only; the long run
   adds a foreign cipher suite and an RSA stranger), then back to the good backend;
2. :mod:`reliability.security_secrets` — secrets set, the station exercised (GetConfiguration,
   GetDiagnostics upload, every WebUI page), every log, file and archive member scanned;
3. :mod:`reliability.security_webui` — every route without a session, CSRF/Origin, session end,
   upload bombs with the daemon's memory sampled, brute force last (it locks 127.0.0.1 out);
4. :mod:`reliability.security_modbus` — out-of-range and malformed Modbus writes.

A case is lost when something that must be refused was accepted, or a secret was found. The
short run takes about 60 s; the long run tries more values per case and bigger bombs.
"""

from __future__ import annotations

import asyncio
import time

from .security_modbus import run_modbus
from .security_rig import start_rig
from .security_secrets import run_scan
from .security_tls import run_matrix
from .security_webui import run_webui
from .tally import Tally

AUTHORIZATION_KEY = "Reliab1e-AuthKey-7Q"


def run(long: bool) -> Tally:
    return asyncio.run(run_async(long))


async def run_async(long: bool, parts: tuple[str, ...] = ("tls", "secrets", "webui", "modbus")) -> Tally:
    tally = Tally("security", "cases")
    started = time.monotonic()
    rig = await start_rig(AUTHORIZATION_KEY)
    seconds = {"start": time.monotonic() - started}
    try:
        for name, wanted, step in (
                ("tls", "tls" in parts, run_matrix),
                # the scan also sets the WebUI password the WebUI cases log in with
                ("secrets", "secrets" in parts or "webui" in parts, lambda r, t, _long: run_scan(r, t)),
                ("webui", "webui" in parts, run_webui),
                ("modbus", "modbus" in parts, run_modbus)):
            if wanted:
                begun = time.monotonic()
                await step(rig, tally, long)
                seconds[name] = time.monotonic() - begun
        tally.notes.append("seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items()))
        if not rig.alive():
            tally.failed(f"the daemon is not running at the end:\n{rig.log_text()[-2000:]}")
    finally:
        await rig.stop()
    return tally
