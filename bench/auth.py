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

The bulk figures are the median of 3 runs (quick, smoke: 1), each on a new database. Sizes: 100,000
entries and 100,000 decisions (quick: 20,000 decisions; smoke: 1,000 entries, 1,000 decisions,
not meaningful). :func:`decision_samples` and :func:`csv_round_trips` measure at any size:
:mod:`bench.scaling` uses them from 1,000 to 1,000,000 entries (above the station's capacity of
100,000: the list and the whitelist are then opened with a larger one).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from stationd.auth.authorizer import Authorizer
from stationd.auth.cache import AuthCache
from stationd.auth.csv_io import export_csv, import_csv
from stationd.auth.id_tag_info import IdTagInfo
from stationd.auth.local_list import LocalList
from stationd.auth.whitelist import MAX_ENTRIES, Entry, Whitelist
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.storage import Database

from .common import percentile
from .figures import Figure
from .mode import Mode

__all__ = ["CsvTimes", "all_samples", "cache_size", "csv_round_trips", "decision_samples", "run"]

CACHE_SIZE = 10_000  # the AuthCache's capacity; smaller lists get a cache of a tenth of their size
UNKNOWN_CARDS = 20_000
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


def run(mode: Mode) -> list[Figure]:
    size = mode.pick(full=100_000, quick=100_000, smoke=1_000)  # list, whitelist, CSV rows, SendLocalList
    decisions = mode.pick(full=100_000, quick=20_000, smoke=1_000)
    warm_up = mode.pick(full=2_000, quick=2_000, smoke=100)  # per phase
    repeats = mode.pick(full=3, quick=1, smoke=1)
    figures = _decision_figures(size, decisions, warm_up)
    figures += _csv_figures(size, repeats)
    figures += _send_local_list(size, repeats)
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


def cache_size(size: int) -> int:
    return min(CACHE_SIZE, size // 10)


def decision_samples(size: int, count: int, warm_up: int) -> dict[str, list[int]]:
    """ns of each of ``count`` offline decisions by kind (see EXPECTED) over a local list and a
    whitelist of ``size`` entries each and :func:`cache_size` cache entries, after ``warm_up``
    decisions per phase."""
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    future, past = now + timedelta(days=365), now - timedelta(days=30)
    taken: set[str] = set()
    list_ids = _uids(rng, size, taken)
    cache_ids = _uids(rng, cache_size(size), taken)
    whitelist_ids = _uids(rng, size, taken)
    unknown_ids = _uids(rng, UNKNOWN_CARDS, taken)
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
            capacity = max(size, MAX_ENTRIES)  # above the station's: only to see how a lookup scales
            local_list = LocalList(db, capacity=capacity)
            if local_list.apply("Full", 1, entries) != "Accepted":
                raise RuntimeError(f"the local list was not accepted: {local_list.last_failure}")
            cache = AuthCache(db, clock=clock)
            for uid in cache_ids:  # up to 10,000 backend answers (about 1 s on the non-durable connection)
                cache.update(uid, IdTagInfo("Accepted", future))
            whitelist = Whitelist(db, clock=clock, capacity=capacity)
            whitelist.replace_all(wl_entries)
            authorizer = Authorizer(store, local_list, cache, whitelist, clock)
            if (cache.count(), local_list.count(), whitelist.count()) != (len(cache_ids), size, size):
                raise RuntimeError("the sources were not filled as planned")

            samples: dict[str, list[int]] = {kind: [] for kind in EXPECTED}
            ocpp_count = round(count * OCPP_SHARE)
            for whitelist_source, mix, n in (("OCPP", OCPP_MIX, ocpp_count), ("Local", LOCAL_MIX, count - ocpp_count)):
                if not store.set("WhitelistSource", whitelist_source, Source.LOCAL).ok:
                    raise RuntimeError(f"WhitelistSource {whitelist_source} refused")
                plan = _plan(rng, mix, pools, n)
                warm = _plan(rng, mix, pools, warm_up)
                asyncio.run(_time_decisions(authorizer, warm, None))
                asyncio.run(_time_decisions(authorizer, plan, samples))
        finally:
            db.close()
    return samples


def all_samples(samples: dict[str, list[int]]) -> list[int]:
    return [ns for values in samples.values() for ns in values]


def _decision_figures(size: int, count: int, warm_up: int) -> list[Figure]:
    samples = decision_samples(size, count, warm_up)
    every = all_samples(samples)
    per_kind = "; ".join(f"{kind} {len(v):,}: p50 {percentile(v, 50) / 1e3:.1f}, p99 {percentile(v, 99) / 1e3:.1f}"
                         for kind, v in samples.items() if v)
    note = (f"{len(every):,} offline decisions (after {2 * warm_up:,} warm-up), list {size:,}, cache "
            f"{cache_size(size):,}, whitelist {size:,}; {OCPP_SHARE:.0%} WhitelistSource OCPP, the rest Local; "
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


@dataclass
class CsvTimes:
    rows: int
    megabytes: float
    imports: list[float] = field(default_factory=list)  # s, one per run
    exports: list[float] = field(default_factory=list)

    def how(self) -> str:
        return (f"median of {len(self.imports)} (each {self.rows:,} rows, {self.megabytes:.1f} MB, "
                f"fresh durable database)")


def csv_round_trips(rows: int, repeats: int) -> CsvTimes:
    """``repeats`` times: import a ``rows``-row file into an empty whitelist of a fresh durable
    database, then export it (byte-identical, checked)."""
    data = _csv_file(rows)
    times = CsvTimes(rows, len(data) / 1e6)
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-csv-") as directory:
            db = Database.open(directory)  # durable, as the daemon and the CLI open it
            try:
                whitelist = Whitelist(db, capacity=max(rows, MAX_ENTRIES))
                seconds, result = _timed(import_csv, whitelist, data, True)
                if not result.ok or result.summary is None or result.summary.added != rows:  # type: ignore[union-attr]
                    raise RuntimeError(f"import failed: {result}")
                times.imports.append(seconds)
                seconds, exported = _timed(export_csv, whitelist)
                if exported != data:
                    raise RuntimeError("the export differs from the imported file")
                times.exports.append(seconds)
            finally:
                db.close()
    return times


def _csv_figures(rows: int, repeats: int) -> list[Figure]:
    times = csv_round_trips(rows, repeats)
    return [
        Figure("csv_import_100k_s", round(statistics.median(times.imports), 3), "s", "< 2",
               f"import_csv Replace into an empty whitelist, {times.how()}; runs: {_runs(times.imports)}"),
        Figure("csv_export_100k_s", round(statistics.median(times.exports), 3), "s", "< 1",
               f"export_csv, byte-identical to the import, {times.how()}; runs: {_runs(times.exports)}"),
    ]


# --------------------------------------------------------------------------- SendLocalList
def _send_local_list(rows: int, repeats: int) -> list[Figure]:
    rng = random.Random(SEED + 2)
    expiry = datetime(2031, 1, 1, tzinfo=UTC)
    entries = []
    for index, uid in enumerate(_uids(rng, rows, set())):
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
                    if (stored.version, stored.count()) != (1, rows):
                        raise RuntimeError(f"stored list: version {stored.version}, {stored.count()} entries")
                finally:
                    check.close()
    how = f"median of {repeats}, {rows:,} entries, fresh durable database"
    return [
        Figure("sendlocallist_full_100k_s", round(statistics.median(applied), 3), "s", "< 3",
               f"LocalList.apply('Full', 1, entries), {how}; runs: {_runs(applied)}"),
        Figure("sendlocallist_request_100k_s", round(statistics.median(requested), 3), "s", None,
               f"LocalList.apply_request(payload) incl. IdTagInfo.from_ocpp, {how}; runs: {_runs(requested)}"),
    ]


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)
