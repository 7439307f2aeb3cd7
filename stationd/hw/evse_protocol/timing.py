"""Timing rules of the EVSE controller protocol (one table; the document is rendered from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    rule: str


TIMINGS: tuple[Timing, ...] = (
    Timing("STATUS_PERIOD", 1.0, "controller sends Status at least this often, and at once on every change"),
    Timing("HEARTBEAT_PERIOD", 0.5, "station sends Heartbeat this often"),
    Timing("HEARTBEAT_TIMEOUT", 2.0,
           "controller without Heartbeat this long: PWM off, contactor open, HeartbeatTimeout"),
    Timing("CONTROLLER_SILENCE", 3.0, "station without any frame from a controller this long: controller lost"),
    Timing("SAFETY_OPEN", 0.1, "controller opens the contactor within this time after C/D → A/B/E/F or an RCD trip"),
    Timing("PWM_STOP_FORCE_OPEN", 6.0, "PWM stopped but the vehicle stays in C/D: controller opens after this"),
    Timing("ACK_TIMEOUT", 0.1, "link: retransmit a reliable frame after this without acknowledgement"),
    Timing("REASSEMBLY_TIMEOUT", 0.2, "CAN: a segmented message not completed within this gap is discarded"),
)

_BY_NAME = {t.name: t.seconds for t in TIMINGS}
STATUS_PERIOD_S = _BY_NAME["STATUS_PERIOD"]
HEARTBEAT_PERIOD_S = _BY_NAME["HEARTBEAT_PERIOD"]
HEARTBEAT_TIMEOUT_S = _BY_NAME["HEARTBEAT_TIMEOUT"]
CONTROLLER_SILENCE_S = _BY_NAME["CONTROLLER_SILENCE"]
SAFETY_OPEN_S = _BY_NAME["SAFETY_OPEN"]
PWM_STOP_FORCE_OPEN_S = _BY_NAME["PWM_STOP_FORCE_OPEN"]
ACK_TIMEOUT_S = _BY_NAME["ACK_TIMEOUT"]
REASSEMBLY_TIMEOUT_S = _BY_NAME["REASSEMBLY_TIMEOUT"]
#: Retransmissions of a reliable frame before LinkTimeout (so 1 + RETRIES transmissions).
RETRIES = 5
