"""Power cuts (reliability/power_cuts.py): kill -9 of `stationd demo` at each kind of moment —
idle, right after a plug, with a StartTransaction / MeterValues / StopTransaction unanswered,
mid-charging, right after an unplug, at random — restarted on the same data directory against
a real central system on 127.0.0.1; and the one commit that closes a session and queues its
StopTransaction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from reliability.power_cuts import KILLS_SHORT, MOMENTS, power_cuts
from stationd.core.sessions import SessionStore
from stationd.storage import Database


@pytest.mark.slow
async def test_kill_9_at_every_moment_loses_no_transaction_message():
    result = await power_cuts(KILLS_SHORT)
    tally, report = result.tally, result.report
    assert KILLS_SHORT >= len(MOMENTS)  # every moment is tried at least once
    assert tally.failures == []
    assert tally.passed and tally.tried == KILLS_SHORT
    assert tally.lost == 0 and report.problems == []
    # The StartTransaction, MeterValues and StopTransaction whose answers were held back when the
    # station died arrive again after the restart (at least once, never lost) — and no more than
    # one message per kill arrives twice (checked per kill by power_cuts).
    assert 3 <= tally.duplicated <= KILLS_SHORT
    # The sessions the cuts interrupted were closed by the station after the restart.
    assert result.power_loss_stops >= 1
    assert report.transactions >= 5


def test_a_session_is_closed_in_the_same_commit_as_what_its_stop_listeners_write(tmp_path):
    db = Database.open(tmp_path)
    store = SessionStore(db)
    session = store.start(1, "AABBCCDD", datetime.now(UTC), 100.0)
    seen = []

    def listener(closed):
        # Another connection does not see the close yet: the listener runs inside its transaction.
        other = sqlite3.connect(tmp_path / "station.db")
        try:
            seen.append(other.execute("SELECT stopped_at FROM sessions WHERE session_id = ?",
                                      (closed.session_id,)).fetchone()[0])
        finally:
            other.close()
        db.execute("INSERT INTO station_meta (key, value) VALUES ('stop-of', ?)", (str(closed.session_id),))

    def broken(_closed):
        raise RuntimeError("a listener bug")

    store.on_stop(broken)  # logged; the session is closed all the same
    store.on_stop(listener)
    closed = store.stop(session, datetime.now(UTC), 150.0, "EVDisconnected")
    assert seen == [None]
    assert closed.stop_reason == "EVDisconnected" and not store.open_sessions()
    assert db.query("SELECT value FROM station_meta WHERE key = 'stop-of'")[0][0] == str(session.session_id)
    store.stop(session, datetime.now(UTC), 160.0, "Local")  # already closed: no second end
    assert seen == [None]
    db.close()
