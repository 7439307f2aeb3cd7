"""Backend outages (reliability/backend_outages.py): a real central system on 127.0.0.1 closes
the WebSocket, drops TCP, drops it with a transaction CALL unanswered, and refuses handshakes
for a while, during charging sessions of `stationd demo`; nothing lost, order kept, the
reconnect backoff respected."""

from __future__ import annotations

import pytest

from reliability.backend_outages import OUTAGES, SESSIONS_SHORT, _check_backoff, backend_outages


@pytest.mark.slow
async def test_dropped_links_lose_nothing_and_keep_the_backoff():
    tally = await backend_outages(SESSIONS_SHORT)
    assert SESSIONS_SHORT >= len(OUTAGES)  # every kind of outage at least once
    assert tally.failures == []
    assert tally.passed and tally.tried == SESSIONS_SHORT and tally.lost == 0
    # the message whose answer was lost in the mid_call outage came again; at most one per drop
    assert 1 <= tally.duplicated <= SESSIONS_SHORT


class _Handshake:
    def __init__(self, at: float, status: int) -> None:
        self.monotonic, self.status = at, status


def test_the_backoff_check_catches_a_reconnect_storm():
    # accepted, dropped at 10.0, then attempts 0.1 s apart: a storm
    storm = [_Handshake(0.0, 101), _Handshake(10.1, 503), _Handshake(10.2, 503), _Handshake(10.3, 101)]
    problems, _ = _check_backoff(storm, [10.0])
    assert len(problems) == 3
    # 1 s minimum, +1 s from the third attempt of a series on (RetryRepeatTimes 2)
    polite = [_Handshake(0.0, 101), _Handshake(11.5, 503), _Handshake(13.0, 503), _Handshake(15.0, 101)]
    assert _check_backoff(polite, [10.0])[0] == []
    early_third = [_Handshake(0.0, 101), _Handshake(11.5, 503), _Handshake(13.0, 503), _Handshake(14.5, 101)]
    assert len(_check_backoff(early_third, [10.0])[0]) == 1
