"""The cluster protocol: JSON text messages over one WebSocket per slave (docs/load-balancing.md).

Slave → master, every second and whenever its sessions change::

    {"type": "report", "boxId": "TE-0002", "privilege": "AC05",
     "connectors": [{"connector_id": 1, "started_at": "2024-05-01T08:00:00+00:00",
                     "caps": {"connector": 32, "cable": 20}, "grid": [1, 2, 3], "phases": 3,
                     "draw_a": 15.8, "offered_a": 16, "paused_since": null,
                     "current_a": {"1": 15.8, "2": 15.7, "3": 15.8}}]}

Master → slave, after every allocation round::

    {"type": "allocation", "connectors": {"1": {"limit": 16.0, "reason": "cluster limit 32 A"}}}

Every incoming frame is checked before anything uses it: at most ``MAX_MESSAGE_BYTES``, UTF-8
text, JSON without NaN/Infinity, exactly the fields above with their types (no coercion: "16"
is not a number), finite non-negative currents within range. A frame that fails raises
:class:`ProtocolError` with a specific reason; the caller logs it and ignores the frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ..config.keys.shapes import CHARGEBOX_ID_PATTERN
from ..core.demand import ConnectorDemand

MAX_MESSAGE_BYTES = 64 * 1024  # a report of 32 connectors is ~10 kB
WEBSOCKET_MAX_SIZE = 1024 * 1024  # larger frames close the connection (websockets' own limit)
MAX_CONNECTORS = 32
MAX_CAPS = 32
MAX_AMPS = 10_000.0  # a cap or a measured current above this is nonsense
MAX_LIMIT_A = 80.0  # an allocation is 0 or 6..80 A (the PWM range)
MAX_TEXT = 200

Amps = Annotated[float, Field(ge=0.0, le=MAX_AMPS)]
Phase = Annotated[int, Field(ge=1, le=3)]
ConnectorId = Annotated[int, Field(ge=1, le=99)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class ProtocolError(ValueError):
    """A frame that is not a valid cluster message; ``str()`` is the reason for the log."""


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class DemandMessage(_Model):
    """A ``ConnectorDemand`` as JSON (what one connector of a slave asks for)."""

    connector_id: ConnectorId
    started_at: AwareDatetime | None
    caps: dict[Text, Amps] = Field(max_length=MAX_CAPS)
    grid: list[Phase] = Field(min_length=1, max_length=3)
    phases: Phase | None
    draw_a: Amps | None
    offered_a: Amps | None
    paused_since: Annotated[float, Field(ge=0.0)] | None
    current_a: dict[Phase, Amps] = Field(default_factory=dict, max_length=3)

    @field_validator("grid")
    @classmethod
    def _distinct_phases(cls, grid: list[int]) -> list[int]:
        if len(set(grid)) != len(grid):
            raise ValueError("a grid phase is listed twice")
        return grid

    def to_demand(self) -> ConnectorDemand:
        return ConnectorDemand(
            connector_id=self.connector_id, started_at=self.started_at, caps=dict(self.caps),
            grid=frozenset(self.grid), phases=self.phases, draw_a=self.draw_a, offered_a=self.offered_a,
            paused_since=self.paused_since, current_a=dict(self.current_a))


class Report(_Model):
    type: Literal["report"]
    boxId: str = Field(pattern=f"^{CHARGEBOX_ID_PATTERN}$")  # noqa: N815 - the wire name
    privilege: Literal["AC05", "AC10"]
    connectors: list[DemandMessage] = Field(max_length=MAX_CONNECTORS)

    @field_validator("connectors")
    @classmethod
    def _distinct_connectors(cls, connectors: list[DemandMessage]) -> list[DemandMessage]:
        ids = [c.connector_id for c in connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"connector ids must be distinct (got {ids})")
        return connectors

    def demands(self) -> list[ConnectorDemand]:
        return [c.to_demand() for c in self.connectors]


class LimitMessage(_Model):
    limit: Annotated[float, Field(ge=0.0, le=MAX_LIMIT_A)]
    reason: Annotated[str, Field(max_length=MAX_TEXT)]


class AllocationMessage(_Model):
    type: Literal["allocation"]
    connectors: dict[ConnectorId, LimitMessage] = Field(max_length=MAX_CONNECTORS)


Message = Report | AllocationMessage
_MESSAGE = TypeAdapter(Annotated[Message, Field(discriminator="type")])
_TYPES = {Report: "report", AllocationMessage: "allocation"}


# --- reading ------------------------------------------------------------------------------

def parse(frame: str | bytes, expected: type[Report] | type[AllocationMessage]) -> Any:
    """The message in ``frame`` if it is a valid message of the ``expected`` kind; else
    :class:`ProtocolError` with the reason."""
    if isinstance(frame, bytes):
        raise ProtocolError(f"binary frame of {len(frame)} bytes (cluster messages are JSON text)")
    size = len(frame.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than the limit of {MAX_MESSAGE_BYTES} bytes")
    try:
        message = _MESSAGE.validate_json(frame)
    except ValidationError as error:
        raise ProtocolError(_reason(error)) from None
    if not isinstance(message, expected):
        raise ProtocolError(f"unexpected message type {_TYPES[type(message)]!r} (expected {_TYPES[expected]!r})")
    return message


def _reason(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    kind = first["type"]
    if kind == "json_invalid":
        return f"not JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    if not first["loc"] and kind.endswith("_type"):
        return "not a JSON object"
    if kind == "union_tag_not_found":
        return "no message type (field 'type' is missing)"
    if kind == "union_tag_invalid":
        tag = (first.get("ctx") or {}).get("tag")
        return f"unknown message type {tag!r} (expected 'report' or 'allocation')"
    parts = first["loc"][1:] if first["loc"] and first["loc"][0] in _TYPES.values() else first["loc"]
    where = ".".join(str(part) for part in parts) or "(message)"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: {first['msg']}{more}"


# --- writing ------------------------------------------------------------------------------

def demand_json(demand: ConnectorDemand) -> dict[str, Any]:
    started = demand.started_at
    return {
        "connector_id": demand.connector_id,
        "started_at": started.isoformat() if isinstance(started, datetime) else None,
        "caps": {str(name): float(amps) for name, amps in demand.caps.items()},
        "grid": sorted(demand.grid),
        "phases": demand.phases,
        "draw_a": demand.draw_a,
        "offered_a": demand.offered_a,
        "paused_since": demand.paused_since,
        "current_a": {str(phase): float(amps) for phase, amps in sorted(demand.current_a.items())},
    }


def report_json(box_id: str, privilege: str, demands: Iterable[ConnectorDemand]) -> dict[str, Any]:
    return {"type": "report", "boxId": box_id, "privilege": privilege,
            "connectors": [demand_json(d) for d in demands]}


def allocation_json(limits: Mapping[int, tuple[float, str]]) -> dict[str, Any]:
    """``limits``: connector id → (limit in A, reason)."""
    return {"type": "allocation",
            "connectors": {str(cid): {"limit": float(amps), "reason": reason[:MAX_TEXT]}
                           for cid, (amps, reason) in sorted(limits.items())}}
