"""Authorization: the offline decision (the hot path without network) and the bulk list operations.

* **decision** (``auth_decision_p50_us`` informational, ``auth_decision_p99_us`` goal):
  ``Authorizer.authorize(uid, online=False, ...)`` — what a card at the reader costs while the
  backend is unreachable — over a 100,000-entry OCPP local list, 10,000 cache entries and a
  100,000-entry technician's whitelist. The daemon's own objects (ConfigStore, LocalList,
  AuthCache, Whitelist in one SQLite database) with the station's default keys. A card is known
  to the local list *or* to the whitelist, never to both at once (``WhitelistSource`` picks one),
  so the run has two phases: WhitelistSource OCPP (70 % of the decisions: local list hits —
  accepted, blocked, expired —, cache hits, unknown cards) and WhitelistSource Local (30 %:
  whitelist hits, cache hits, unknown). Every call is timed alone with
  ``time.perf_counter_ns`` around ``await authorize(...)`` inside one ``asyncio.run`` (the
  coroutine runs to completion without suspending: ``ask_backend`` is never called offline,
  which the benchmark checks), after 2,000 warm-up calls; every decision is checked against the
  source and outcome the card was set up for. Garbage collection stays on, as in the daemon.
* **csv_import_100k_s**: ``import_csv(whitelist, data, replace=True)`` of a 100,000-row CSV file
  into an empty whitelist of a fresh, durable database (``synchronous=FULL``: the import is on
  disk when it returns), parsing included.
* **csv_export_100k_s**: ``export_csv`` of that whitelist; the export must equal the imported
  file byte for byte (the file is written in the export's own form).
* **sendlocallist_full_100k_s**: ``LocalList.apply("Full", 1, entries)`` with 100,000 entries
  (idTag, IdTagInfo) into a fresh, durable database; checked afterwards through a second
  connection. ``sendlocallist_request_100k_s`` (informational) is the same through
  ``apply_request`` from the request's JSON payload (IdTagInfo parsing included).

The bulk figures are the median of 3 runs (quick: 1), each on a new database.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from stationd.auth.authorizer import Authorizer
from stationd.auth.cache import AuthCache
from stationd.auth.csv_io import export_csv, import_csv
from stationd.auth.id_tag_info import IdTagInfo
from stationd.auth.local_list import LocalList
from stationd.auth.whitelist import Entry, Whitelist
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.storage import Database

from .common import percentile
from .figures import Figure

__all__ = ["run"]

DECISIONS, QUICK_DECISIONS = 100_000, 20_000
WARM_UP = 2_000
LIST_SIZE = 100_000
CACHE_SIZE = 10_000
WHITELIST_SIZE = 100_000
ROWS = 100_000  # CSV and SendLocalList
REPEATS, QUICK_REPEATS = 3, 1
SEED = 1851
UTC = timezone.utc

# What a decision finds, and the share of each kind in its phase.
OCPP_MIX = {"list accepted": 0.50, "list blocked": 0.05, "list expired": 0.05, "cache": 0.25, "unknown": 0.15}
LOCAL_MIX = {"whitelist accepted": 0.55, "whitelist blocked": 0.05, "cache": 0.25, "unknown": 0.15}
OCPP_SHARE = 0.7
EXPECTED = {  # kind -> (accepted, source), with the default keys (AllowOfflineTxForUnknownId false)
    "list accepted": (True, "local list"), "list blocked": (False, "local list"),
    "list expired": (False, "local list"), "whitelist accepted": (True, "whitelist"),
    "whitelist blocked": (False, "whitelist"), "cache": (True, "cache"), "unknown": (False, "offline rule"),
}


def run(quick: bool) -> list[Figure]:
    decisions = QUICK_DECISIONS if quick else DECISIONS
    repeats = QUICK_REPEATS if quick else REPEATS
    figures = _decisions(decisions)
    figures += _csv(repeats)
    figures += _send_local_list(repeats)
    return figures


# --------------------------------------------------------------------------- card UIDs
def _uids(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """Distinct card UIDs as a reader reports them: 4-byte (80 %) and 7-byte (20 %) lower-case hex."""
    found: list[str] = []
    while len(found) < count:
        uid = f"{rng.getrandbits(32):08x}" if rng.random() < 0.8 else f"{rng.getrandbits(56):014x}"
        if uid not in taken:
            taken.add(uid)
            found.append(uid)
    return found


# --------------------------------------------------------------------------- decisions
class _Clock:
    """The real time, as the daemon's core clock."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


def _decisions(count: int) -> list[Figure]:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    future, past = now + timedelta(days=365), now - timedelta(days=30)
    taken: set[str] = set()
    list_ids = _uids(rng, LIST_SIZE, taken)
    cache_ids = _uids(rng, CACHE_SIZE, taken)
    whitelist_ids = _uids(rng, WHITELIST_SIZE, taken)
    unknown_ids = _uids(rng, 20_000, taken)
    # The local list: 90 % accepted (a third of them with an expiry date, a fifth with a parent),
    # 5 % blocked, 5 % accepted but expired. Which idTags have which state is remembered.
    kinds_of_list: dict[str, list[str]] = {"list accepted": [], "list blocked": [], "list expired": []}
    entries = []
    for index, uid in enumerate(list_ids):
        roll = index % 20
        if roll == 0:
            info, kind = IdTagInfo("Blocked"), "list blocked"
        elif roll == 1:
            info, kind = IdTagInfo("Accepted", past), "list expired"
        else:
            info = IdTagInfo("Accepted", future if index % 3 == 0 else None,
                             f"fleet-{index % 50}" if index % 5 == 0 else None)
            kind = "list accepted"
        kinds_of_list[kind].append(uid)
        entries.append((uid, info))
    wl_entries, wl_kinds = [], {"whitelist accepted": [], "whitelist blocked": []}
    for index, uid in enumerate(whitelist_ids):
        blocked = index % 20 == 0
        wl_entries.append(Entry(uid, None, future if index % 4 == 0 else None, "blocked" if blocked else "accepted"))
        wl_kinds["whitelist blocked" if blocked else "whitelist accepted"].append(uid)
    pools = {**kinds_of_list, **wl_kinds, "cache": cache_ids, "unknown": unknown_ids}

    with tempfile.TemporaryDirectory(prefix="bench-auth-") as directory:
        data_dir = Path(directory)
        store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": "1"})
        db = Database.open(data_dir, durable=False)  # setup speed only: a decision never touches the database
        try:
            clock = _Clock()
            local_list = LocalList(db)
            if local_list.apply("Full", 1, entries) != "Accepted":
                raise RuntimeError(f"the local list was not accepted: {local_list.last_failure}")
            cache = AuthCache(db, clock=clock)
            for uid in cache_ids:  # 10,000 backend answers (about 1 s on the non-durable connection)
                cache.update(uid, IdTagInfo("Accepted", future))
            whitelist = Whitelist(db, clock=clock)
            whitelist.replace_all(wl_entries)
            authorizer = Authorizer(store, local_list, cache, whitelist, clock)
            if cache.count() != CACHE_SIZE or local_list.count() != LIST_SIZE or whitelist.count() != WHITELIST_SIZE:
                raise RuntimeError("the sources were not filled as planned")

            samples: dict[str, list[int]] = {kind: [] for kind in EXPECTED}
            ocpp_count = round(count * OCPP_SHARE)
            for whitelist_source, mix, n in (("OCPP", OCPP_MIX, ocpp_count), ("Local", LOCAL_MIX, count - ocpp_count)):
                if not store.set("WhitelistSource", whitelist_source, Source.LOCAL).ok:
                    raise RuntimeError(f"WhitelistSource {whitelist_source} refused")
                plan = _plan(rng, mix, pools, n)
                warm = _plan(rng, mix, pools, WARM_UP)
                asyncio.run(_time_decisions(authorizer, warm, None))
                asyncio.run(_time_decisions(authorizer, plan, samples))
        finally:
            db.close()

    every = [ns for values in samples.values() for ns in values]
    per_kind = "; ".join(f"{kind} {len(v):,}: p50 {percentile(v, 50) / 1e3:.1f}, p99 {percentile(v, 99) / 1e3:.1f}"
                         for kind, v in samples.items() if v)
    note = (f"{len(every):,} offline decisions (after {2 * WARM_UP:,} warm-up), list {LIST_SIZE:,}, cache "
            f"{CACHE_SIZE:,}, whitelist {WHITELIST_SIZE:,}; {OCPP_SHARE:.0%} WhitelistSource OCPP, the rest Local; "
            f"max {max(every) / 1e3:.0f} µs; per kind (µs): {per_kind}")
    return [
        Figure("auth_decision_p50_us", round(percentile(every, 50) / 1e3, 2), "µs", None, note),
        Figure("auth_decision_p99_us", round(percentile(every, 99) / 1e3, 2), "µs", "< 100", note),
    ]


def _plan(rng: random.Random, mix: dict[str, float], pools: dict[str, list[str]], n: int) -> list[tuple[str, str]]:
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n)
    return [(kind, rng.choice(pools[kind])) for kind in kinds]


async def _never_asked(id_tag: str) -> IdTagInfo | None:
    raise AssertionError(f"the backend was asked about {id_tag} in an offline decision")


async def _time_decisions(authorizer: Authorizer, plan: list[tuple[str, str]],
                          samples: dict[str, list[int]] | None) -> None:
    authorize = authorizer.authorize
    clock = time.perf_counter_ns
    wrong = []
    for kind, uid in plan:
        start = clock()
        decision = await authorize(uid, online=False, ask_backend=_never_asked)
        elapsed = clock() - start
        if samples is not None:
            samples[kind].append(elapsed)
        if (decision.accepted, decision.source) != EXPECTED[kind]:
            wrong.append(f"{uid} ({kind}): {decision.accepted}, {decision.source}")
    if wrong:
        raise RuntimeError(f"{len(wrong)} decisions not as planned, e.g. {wrong[:3]}")


# --------------------------------------------------------------------------- CSV
def _csv_file(rows: int) -> bytes:
    """A whitelist file in the export's own form (CRLF, expiry without zone, lower-case UIDs):
    every 10th row with a GID, every 8th with an expiry, every 20th blocked."""
    rng = random.Random(SEED + 1)
    lines = ["UID,GID,Expiry,Authorization"]
    for index, uid in enumerate(_uids(rng, rows, set())):
        gid = f"group-{index % 100}" if index % 10 == 0 else ""
        expiry = f"2031-{index % 12 + 1:02d}-01T12:00:00" if index % 8 == 0 else ""
        lines.append(f"{uid},{gid},{expiry},{'blocked' if index % 20 == 0 else 'accepted'}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _timed(action: Callable[..., object], *args: object) -> tuple[float, object]:
    gc.collect()
    start = time.perf_counter()
    result = action(*args)
    return time.perf_counter() - start, result


def _csv(repeats: int) -> list[Figure]:
    data = _csv_file(ROWS)
    imports, exports = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-csv-") as directory:
            db = Database.open(directory)  # durable, as the daemon and the CLI open it
            try:
                whitelist = Whitelist(db)
                seconds, result = _timed(import_csv, whitelist, data, True)
                if not result.ok or result.summary is None or result.summary.added != ROWS:  # type: ignore[union-attr]
                    raise RuntimeError(f"import failed: {result}")
                imports.append(seconds)
                seconds, exported = _timed(export_csv, whitelist)
                if exported != data:
                    raise RuntimeError("the export differs from the imported file")
                exports.append(seconds)
            finally:
                db.close()
    how = f"median of {repeats} (each {ROWS:,} rows, {len(data) / 1e6:.1f} MB, fresh durable database)"
    return [
        Figure("csv_import_100k_s", round(statistics.median(imports), 3), "s", "< 2",
               f"import_csv Replace into an empty whitelist, {how}; runs: {_runs(imports)}"),
        Figure("csv_export_100k_s", round(statistics.median(exports), 3), "s", "< 1",
               f"export_csv, byte-identical to the import, {how}; runs: {_runs(exports)}"),
    ]


# --------------------------------------------------------------------------- SendLocalList
def _send_local_list(repeats: int) -> list[Figure]:
    rng = random.Random(SEED + 2)
    expiry = datetime(2031, 1, 1, tzinfo=UTC)
    entries = []
    for index, uid in enumerate(_uids(rng, ROWS, set())):
        status = "Blocked" if index % 20 == 0 else "Accepted"
        entries.append((uid, IdTagInfo(status, expiry if index % 3 == 0 else None,
                                       f"fleet-{index % 50}" if index % 5 == 0 else None)))
    payload = {"listVersion": 1, "updateType": "Full",
               "localAuthorizationList": [{"idTag": uid, "idTagInfo": info.to_ocpp()} for uid, info in entries]}
    applied, requested = [], []
    for _ in range(repeats):
        for timings, action in ((applied, lambda ll: ll.apply("Full", 1, entries)),
                                (requested, lambda ll: ll.apply_request(payload))):
            with tempfile.TemporaryDirectory(prefix="bench-sll-") as directory:
                db = Database.open(directory)  # durable
                try:
                    local_list = LocalList(db)
                    seconds, status = _timed(action, local_list)
                    if status != "Accepted":
                        raise RuntimeError(f"SendLocalList {status}: {local_list.last_failure}")
                    timings.append(seconds)
                finally:
                    db.close()
                check = Database.open(directory)  # what another connection (or a restart) sees
                try:
                    stored = LocalList(check)
                    if (stored.version, stored.count()) != (1, ROWS):
                        raise RuntimeError(f"stored list: version {stored.version}, {stored.count()} entries")
                finally:
                    check.close()
    how = f"median of {repeats}, {ROWS:,} entries, fresh durable database"
    return [
        Figure("sendlocallist_full_100k_s", round(statistics.median(applied), 3), "s", "< 3",
               f"LocalList.apply('Full', 1, entries), {how}; runs: {_runs(applied)}"),
        Figure("sendlocallist_request_100k_s", round(statistics.median(requested), 3), "s", None,
               f"LocalList.apply_request(payload) incl. IdTagInfo.from_ocpp, {how}; runs: {_runs(requested)}"),
    ]


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)
