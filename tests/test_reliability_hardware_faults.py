"""The hardware_faults reliability category, short run: every fault kind on a serial and a CAN
controller against the real daemon; each reported, the station safe, recovered, no session lost."""

from __future__ import annotations

import pytest

from reliability.hardware_faults import KINDS, MOMENTS, SERIAL, CAN, Bench, campaign, try_fault

pytestmark = pytest.mark.slow


async def test_the_short_run_survives_every_fault():
    tally = await campaign(long=False, seed=7)
    assert tally.failures == []
    assert tally.tried >= 2 * len(KINDS) and tally.passed and tally.lost == 0


async def test_a_pulled_line_while_stopping_closes_the_session_once_after_the_link_returns(tmp_path):
    import random

    line = next(k for k in KINDS if k.name == "line pulled")
    async with Bench(tmp_path) as bench:
        assert "stopping" in MOMENTS
        note = await try_fault(bench, line, "stopping", CAN, random.Random(3))
        assert "Faulted" in note
        assert [s for s in bench.statuses(CAN) if s[0] == "Faulted"] == [("Faulted", "OtherError", "ControllerLinkLost")]
        assert bench.alive and bench.row(SERIAL)["status"] == "Available"
