"""GetCompositeSchedule with 10 installed charging profiles of 1,440 periods each.

The profiles (:func:`profile_payloads`): profile ``j`` (0..9) is a ChargePointMaxProfile on
connector 0 when ``j % 3 == 0``, a TxDefaultProfile on connector 1 when ``j % 3 == 1`` and a
TxProfile on connector 1 when ``j % 3 == 2``; its unit is A for an even ``j`` and W for an odd
one; stackLevel ``j``; Absolute, startSchedule ``j × 7 s`` after a whole minute; 1,440 periods of
60 s (24 h), period ``i`` limited to ``6 + (7i + j) mod 26`` A (× 690 W/A for a W profile: the
same current on 3 phases at 230 V). The same recipe as
``tests/test_composite_schedule.py::test_10_profiles_1440_periods_over_24_hours``, which checks the
composite's correctness at this size (the tests cannot import ``bench``: it is not on their path).
The request: connector 1, 24 h (86,400 s), chargingRateUnit A. The answer has about 2,500
periods: the TxProfile and the cap change 7 s apart every minute.

Two levels, both reported:

* **pure** — :func:`stationd.smart_charging.composite_schedule` on the 10
  :class:`~stationd.smart_charging.InstalledProfile` items (as ``ProfileStore.profiles_for``
  gives them), window 24 h, unit A; each call timed alone (``time.perf_counter``), after warm-up
  calls; garbage collection stays on, as in the daemon. Informational:
  ``composite_schedule_pure_ms`` (median) and ``…_p99_ms``.
* **OCPP end to end** (the goal-checked ``composite_schedule_ms``) — ``stationd demo --backend
  <CS> --security-profile 0 --connectors 1`` as a subprocess (``bench.ocpp``'s helpers), the
  project's central system (:class:`firmware_sim.central_system.CentralSystem`) in the
  benchmark's event loop. After the BootNotification a vehicle is plugged in through the control
  API; the demo charges freely (CsMode 1), so a transaction starts, which the TxProfiles need. The
  central system installs the 10 profiles with SetChargingProfile (each Accepted; the station
  checks them and stores them in SQLite through its ``ProfileStore``), then sends
  GetCompositeSchedule: the first answer is validated against the 1.6 schema and checked
  (Accepted, unit A, 86,400 s, more than 1,440 periods), warm-up calls follow, then the timed
  calls. The time of a call runs from the central system's record of the outgoing CALL (taken
  just before it goes to the socket) to its record of the CALLRESULT (taken when the frame has
  arrived and been parsed as JSON): the station's receive path, request validation, the handler
  (``stationd/ocpp_client/handlers/smart_charging.py::get_composite_schedule``: the connector's
  profiles from the ``ProfileStore``, ``composite_schedule``, ``to_ocpp``), the validation of its
  own answer against the .conf schema, JSON encoding, the frame of ~100 kB both ways on
  loopback, and the central system's JSON parse. The central system does not validate the timed
  answers (``validate=False``; the first one it does). ``composite_schedule_ocpp_p99_ms`` is
  informational, and so is ``composite_answer_validation_ms``: the station's check of that
  first answer against the GetCompositeSchedule.conf schema (``schemas.validate``, what
  ``RpcEndpoint`` does before it sends a CALLRESULT) timed alone in-process — the biggest part
  of the round trip after ``composite_schedule`` itself.
* ``profile_store_load_ms`` (informational) — the handler reads the profiles from the
  ``ProfileStore``'s memory; SQLite is read once, when the store is created (daemon start).
  That load of the same 10 profiles (JSON of each row and ``ChargingProfile.from_ocpp``) is
  timed in-process on a fresh database: median of a few ``ProfileStore(db)``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firmware_sim.central_system import CALL, CALLRESULT, CentralSystem
from stationd.ocpp_client import schemas
from stationd.smart_charging import (
    CHARGE_POINT_MAX,
    ChargingProfile,
    InstalledProfile,
    ProfileStore,
    composite_schedule,
)
from stationd.storage import Database

from .common import LogCapture, percentile, summarize_problems
from .figures import Figure
from .mode import Mode

# The demo subprocess, the control API and the waits, as bench.ocpp runs them for its tap figure.
from .ocpp import START_TIMEOUT_S, _await, _await_status, _post, _problems, _since, _start_demo, _stop, _tail

__all__ = ["PERIODS", "PERIOD_S", "PROFILES", "profile_payloads", "run"]

PROFILES = 10
PERIODS = 1440
PERIOD_S = 60
HORIZON_S = 86_400  # the requested duration: 24 h
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
W_PER_A = 690  # 3 phases × 230 V
CALL_TIMEOUT_S = 30.0
T0 = datetime(2024, 5, 1, tzinfo=UTC)  # the pure call's window start


def run(mode: Mode) -> list[Figure]:
    pure_runs, pure_warmup = mode.pick(full=(200, 5), quick=(30, 2), smoke=(3, 1))
    ocpp_runs, ocpp_warmup = mode.pick(full=(50, 5), quick=(10, 2), smoke=(2, 1))
    load_runs = mode.pick(full=10, quick=3, smoke=1)  # ProfileStore loads and answer validations
    pure, pure_periods = _pure(pure_runs, pure_warmup)
    load = _store_load(load_runs)
    with LogCapture("firmware_sim") as cs_log:
        ocpp, ocpp_periods, answer = asyncio.run(_ocpp(ocpp_runs, ocpp_warmup))
    validation = _answer_validation(answer, load_runs)
    note = summarize_problems(cs_log.lines, "the central system (in-process)")
    if note:
        print(note, file=sys.stderr)
    size = f"{PROFILES} profiles × {PERIODS} periods, 24 h, unit A"
    return [
        Figure("composite_schedule_ms", _round(statistics.median(ocpp)), "ms", "< 50",
               f"median of {ocpp_runs} GetCompositeSchedule over the WebSocket (CS CALL sent → CALLRESULT "
               f"received and parsed), stationd demo subprocess, {size}, {ocpp_periods} periods in the answer; "
               f"p99 {_round(percentile(ocpp, 99))} ms; the pure composite_schedule call alone: median "
               f"{_round(statistics.median(pure))} ms, p99 {_round(percentile(pure, 99))} ms over {pure_runs}"),
        Figure("composite_schedule_ocpp_p99_ms", _round(percentile(ocpp, 99)), "ms", None,
               f"nearest rank of the {ocpp_runs} GetCompositeSchedule round trips"),
        Figure("composite_schedule_pure_ms", _round(statistics.median(pure)), "ms", None,
               f"stationd.smart_charging.composite_schedule alone, median of {pure_runs} after {pure_warmup} "
               f"warm-up calls, {size}, {pure_periods} periods"),
        Figure("composite_schedule_pure_p99_ms", _round(percentile(pure, 99)), "ms", None,
               f"nearest rank of the {pure_runs} pure calls"),
        Figure("composite_answer_validation_ms", _round(statistics.median(validation)), "ms", None,
               f"the station's check of its own GetCompositeSchedule.conf ({ocpp_periods} periods) against the "
               f"1.6 schema (schemas.validate, as RpcEndpoint does before sending), in-process, median of "
               f"{len(validation)}: part of composite_schedule_ms"),
        Figure("profile_store_load_ms", _round(statistics.median(load)), "ms", None,
               f"ProfileStore(db) reading the same {PROFILES} profiles from SQLite (daemon start), "
               f"median of {len(load)}"),
    ]


def _round(ms: float) -> float:
    return round(ms, 2)


# --------------------------------------------------------------------------- the profiles
def profile_payloads(start: datetime) -> list[tuple[int, dict[str, Any]]]:
    """(connectorId, csChargingProfiles) of the 10 profiles (see the module docstring), as a
    central system sends them; profile ``j`` starts ``j × 7 s`` after ``start``."""
    out = []
    for j in range(PROFILES):
        purpose = PURPOSES[j % 3]
        unit = "A" if j % 2 == 0 else "W"
        factor = 1 if unit == "A" else W_PER_A
        periods = [{"startPeriod": PERIOD_S * i, "limit": (6 + (i * 7 + j) % 26) * factor} for i in range(PERIODS)]
        out.append((0 if purpose == CHARGE_POINT_MAX else 1, {
            "chargingProfileId": j + 1,
            "stackLevel": j,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "startSchedule": (start + timedelta(seconds=7 * j)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "chargingSchedulePeriod": periods,
            },
        }))
    return out


def installed_profiles(start: datetime) -> list[InstalledProfile]:
    return [InstalledProfile(connector, ChargingProfile.from_ocpp(data))
            for connector, data in profile_payloads(start)]


# --------------------------------------------------------------------------- (a) the pure call
def _pure(runs: int, warmup: int) -> tuple[list[float], int]:
    profiles = installed_profiles(T0)
    times: list[float] = []
    periods = 0
    for index in range(warmup + runs):
        began = time.perf_counter()
        schedule = composite_schedule(profiles, 1, T0, HORIZON_S, "A")
        elapsed = time.perf_counter() - began
        if index >= warmup:
            times.append(elapsed * 1e3)
        periods = len(schedule.periods)
    if periods <= PERIODS:
        raise RuntimeError(f"the composite has {periods} periods, expected more than {PERIODS}")
    return times, periods


# --------------------------------------------------------------------------- the answer's own validation
def _answer_validation(answer: dict[str, Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        violation = schemas.validate(schemas.RESPONSE, "GetCompositeSchedule", answer)
        times.append((time.perf_counter() - began) * 1e3)
        if violation is not None:
            raise RuntimeError(f"the station's answer breaks the schema: {violation}")
    return times


# --------------------------------------------------------------------------- ProfileStore load
def _store_load(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-smart-store-") as tmp:
        with Database.open(tmp) as db:
            store = ProfileStore(db)
            for item in installed_profiles(T0):
                result = store.install(item.connector_id, item.profile, active_transaction=1, now=T0)
                if result.status != "Accepted":
                    raise RuntimeError(f"install of profile {item.profile.id}: {result}")
        times = []
        with Database.open(tmp) as db:
            for _ in range(runs):
                began = time.perf_counter()
                store = ProfileStore(db)
                times.append((time.perf_counter() - began) * 1e3)
                if len(store) != PROFILES:
                    raise RuntimeError(f"{len(store)} profiles loaded, expected {PROFILES}")
    return times


# --------------------------------------------------------------------------- (b) over OCPP
async def _ocpp(runs: int, warmup: int) -> tuple[list[float], int, dict[str, Any]]:
    cs = CentralSystem(path="/ocpp")
    await cs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-smart-ocpp-") as tmp:
            log_path = Path(tmp) / "demo.log"
            demo, api = _start_demo(cs.url, Path(tmp) / "data", log_path)
            try:
                result = await _ocpp_calls(cs, demo, api, runs, warmup)
            except Exception:
                print(f"bench: demo log (last lines):\n{_tail(log_path)}", file=sys.stderr)
                raise
            finally:
                await _stop(demo)
            problems = _problems(log_path)
            if problems:
                print(summarize_problems(problems, "stationd demo (smart charging)"), file=sys.stderr)
    finally:
        await cs.stop()
    return result


async def _ocpp_calls(cs: CentralSystem, demo: Any, api: int, runs: int,
                      warmup: int) -> tuple[list[float], int, dict[str, Any]]:
    boot = await _await(cs, "BootNotification", demo, timeout=START_TIMEOUT_S)
    chargebox = boot.chargebox_id
    await _await_status(cs, "Available", boot.monotonic, demo)
    plugged = time.monotonic()
    await asyncio.to_thread(_post, api, "/connectors/1/plug", {"cable_max_a": 32})
    await _await(cs, "StartTransaction", demo, _since(plugged))  # free charging: the plug starts it
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for connector, profile in profile_payloads(now):
        answer = await cs.call(chargebox, "SetChargingProfile",
                               {"connectorId": connector, "csChargingProfiles": profile}, timeout=CALL_TIMEOUT_S)
        if answer.get("status") != "Accepted":
            raise RuntimeError(f"SetChargingProfile {profile['chargingProfileId']} "
                               f"({profile['chargingProfilePurpose']}) answered {answer}")
    request = {"connectorId": 1, "duration": HORIZON_S, "chargingRateUnit": "A"}
    first = await cs.call(chargebox, "GetCompositeSchedule", request, timeout=CALL_TIMEOUT_S)  # schema-checked
    schedule = first.get("chargingSchedule") or {}
    periods = len(schedule.get("chargingSchedulePeriod", []))
    if (first.get("status") != "Accepted" or schedule.get("chargingRateUnit") != "A"
            or schedule.get("duration") != HORIZON_S or periods <= PERIODS):
        raise RuntimeError(f"GetCompositeSchedule answered status {first.get('status')}, unit "
                           f"{schedule.get('chargingRateUnit')}, duration {schedule.get('duration')}, "
                           f"{periods} periods")
    times: list[float] = []
    for index in range(warmup + runs):
        uid = f"bench-gcs-{index}"
        answer = await cs.call(chargebox, "GetCompositeSchedule", request, timeout=CALL_TIMEOUT_S, validate=False,
                               unique_id=uid)
        if answer.get("status") != "Accepted":
            raise RuntimeError(f"GetCompositeSchedule answered {answer.get('status')}")
        if index >= warmup:
            times.append(_round_trip_ms(cs, chargebox, uid))
    return times, periods, first


def _round_trip_ms(cs: CentralSystem, chargebox: str, uid: str) -> float:
    """CALL recorded going out → CALLRESULT recorded coming in, from the central system's records."""
    sent = received = None
    for record in reversed(cs.messages(chargebox)):
        if record.unique_id != uid:
            continue
        if record.direction == "in" and record.message_type_id == CALLRESULT:
            received = record.monotonic
        elif record.direction == "out" and record.message_type_id == CALL:
            sent = record.monotonic
            break
    if sent is None or received is None:
        raise RuntimeError(f"no CALL/CALLRESULT pair recorded for {uid}")
    return (received - sent) * 1e3
