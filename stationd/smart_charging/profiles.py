"""OCPP 1.6 charging profiles as frozen dataclasses, with the checks the JSON schema cannot do.

:meth:`ChargingProfile.from_ocpp` builds a profile from the ``csChargingProfiles`` object of a
SetChargingProfile.req (or the ``chargingProfile`` of a RemoteStartTransaction.req) and
:meth:`ChargingProfile.to_ocpp` gives it back (``from_ocpp(p.to_ocpp()) == p``). A profile that
breaks a rule raises :class:`InvalidProfile`, whose ``reason`` says which rule in words; the
OCPP layer answers ``Rejected``.

Normalisation (done once, here)
    * Limits (``limit``, ``minChargingRate``) become ``float`` rounded *down* to a multiple of
      0.1 (6.25 → 6.2: never more than the central system allowed). ``Decimal`` (what the
      ``ocpp`` package hands over) is accepted and never kept (OCPP-NOTES.md §1).
    * Times become aware UTC datetimes truncated to whole seconds (all schedule arithmetic is
      in whole seconds).

Checks (beyond the schema)
    * periods: at least one, at most ``max_periods`` (ChargingScheduleMaxPeriods), the first
      starts at 0, strictly ascending; limits >= 0; numberPhases 1..3.
    * stackLevel 0..``max_stack_level`` (ChargeProfileMaxStackLevel).
    * chargingRateUnit in ``allowed_units`` (ChargingScheduleAllowedChargingRateUnit, given as
      ``"A"``/``"W"`` or ``"Current"``/``"Power"``).
    * Recurring needs recurrencyKind and startSchedule; recurrencyKind only with Recurring;
      Relative has no startSchedule; validFrom before validTo; duration >= 0.
    * transactionId only on a TxProfile.
    The rules that depend on where the profile goes (connector, running transaction) are in
    :func:`check_placement`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, NamedTuple

__all__ = [
    "CHARGE_POINT_MAX",
    "DEFAULT_MAX_PERIODS",
    "DEFAULT_MAX_STACK_LEVEL",
    "KINDS",
    "PURPOSES",
    "RECURRENCY_KINDS",
    "TX",
    "TX_DEFAULT",
    "UNITS",
    "ChargingProfile",
    "ChargingSchedule",
    "InstalledProfile",
    "InvalidProfile",
    "Period",
    "check_placement",
    "floor_tenth",
    "format_time",
    "parse_time",
]

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX)
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCY_KINDS = ("Daily", "Weekly")
UNITS = ("A", "W")
_UNIT_NAMES = {"Current": "A", "Power": "W", "A": "A", "W": "W"}
DEFAULT_MAX_STACK_LEVEL = 20  # ChargeProfileMaxStackLevel
DEFAULT_MAX_PERIODS = 1440  # ChargingScheduleMaxPeriods

_TENTH = Decimal("0.1")


class InvalidProfile(ValueError):
    """A charging profile breaks a rule; ``reason`` says which (the answer is ``Rejected``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------- helpers


def floor_tenth(value: Any, what: str = "limit") -> float:
    """``value`` (int, float, Decimal or numeric str) rounded down to a multiple of 0.1, as float.

    Floats go through ``repr`` (the JSON text they came from), so 2.3 stays 2.3.
    """
    if isinstance(value, bool):
        raise InvalidProfile(f"{what} must be a number, not a boolean")
    try:
        if isinstance(value, Decimal):
            exact = value
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidProfile(f"{what} must be finite")
            exact = Decimal(repr(value))
        elif isinstance(value, (int, str)):
            exact = Decimal(value)
        else:
            raise InvalidProfile(f"{what} must be a number, not {type(value).__name__}")
        if not exact.is_finite():
            raise InvalidProfile(f"{what} must be finite")
        return float(exact.quantize(_TENTH, rounding=ROUND_FLOOR))
    except InvalidOperation as exc:
        raise InvalidProfile(f"{what} is not a number: {value!r}") from exc


def parse_time(value: Any, what: str) -> datetime:
    """An OCPP dateTime (string or datetime) as an aware UTC datetime in whole seconds."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidProfile(f"{what} is not a date and time: {value!r}") from exc
    else:
        raise InvalidProfile(f"{what} must be a date and time string")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # OCPP times are UTC
    return moment.astimezone(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(data: Mapping[str, Any], key: str, *, required: bool, minimum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidProfile(f"{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, (float, Decimal)) and value == int(value):
            value = int(value)
        else:
            raise InvalidProfile(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidProfile(f"{key} must be >= {minimum}, got {value}")
    return value


def _choice(data: Mapping[str, Any], key: str, choices: tuple[str, ...], *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidProfile(f"{key} is missing")
        return None
    if value not in choices:
        raise InvalidProfile(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, slots=True)
class Period:
    """One chargingSchedulePeriod: from ``start_period`` s after the schedule start, ``limit``."""

    start_period: int
    limit: float
    number_phases: int | None = None

    def to_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startPeriod": self.start_period, "limit": self.limit}
        if self.number_phases is not None:
            out["numberPhases"] = self.number_phases
        return out


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    charging_rate_unit: str  # "A" or "W"
    periods: tuple[Period, ...]
    duration: int | None = None  # seconds; None = until the next schedule / forever
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None
    # start_period of each period, for bisect (derived, not part of equality)
    starts: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(p.start_period for p in self.periods))

    def to_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.duration is not None:
            out["duration"] = self.duration
        if self.start_schedule is not None:
            out["startSchedule"] = format_time(self.start_schedule)
        out["chargingRateUnit"] = self.charging_rate_unit
        out["chargingSchedulePeriod"] = [p.to_ocpp() for p in self.periods]
        if self.min_charging_rate is not None:
            out["minChargingRate"] = self.min_charging_rate
        return out


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    id: int  # chargingProfileId
    stack_level: int
    purpose: str  # PURPOSES
    kind: str  # KINDS
    schedule: ChargingSchedule
    transaction_id: int | None = None
    recurrency_kind: str | None = None  # RECURRENCY_KINDS
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    @classmethod
    def from_ocpp(
        cls,
        data: Mapping[str, Any],
        *,
        max_stack_level: int = DEFAULT_MAX_STACK_LEVEL,
        max_periods: int = DEFAULT_MAX_PERIODS,
        allowed_units: Iterable[str] = UNITS,
    ) -> ChargingProfile:
        """Build and check a profile from a ``csChargingProfiles`` dict; :class:`InvalidProfile`."""
        if not isinstance(data, Mapping):
            raise InvalidProfile("the charging profile must be an object")
        profile_id = _int(data, "chargingProfileId", required=True)
        transaction_id = _int(data, "transactionId", required=False)
        stack_level = _int(data, "stackLevel", required=True, minimum=0)
        if stack_level > max_stack_level:
            raise InvalidProfile(f"stackLevel {stack_level} is above ChargeProfileMaxStackLevel {max_stack_level}")
        purpose = _choice(data, "chargingProfilePurpose", PURPOSES, required=True)
        kind = _choice(data, "chargingProfileKind", KINDS, required=True)
        recurrency = _choice(data, "recurrencyKind", RECURRENCY_KINDS, required=False)
        valid_from = None if data.get("validFrom") is None else parse_time(data["validFrom"], "validFrom")
        valid_to = None if data.get("validTo") is None else parse_time(data["validTo"], "validTo")
        if transaction_id is not None and purpose != TX:
            raise InvalidProfile(f"transactionId is only allowed in a TxProfile, not a {purpose}")
        if valid_from is not None and valid_to is not None and valid_from >= valid_to:
            raise InvalidProfile("validFrom must be before validTo")

        raw = data.get("chargingSchedule")
        if not isinstance(raw, Mapping):
            raise InvalidProfile("chargingSchedule is missing")
        duration = _int(raw, "duration", required=False, minimum=0)
        start = None if raw.get("startSchedule") is None else parse_time(raw["startSchedule"], "startSchedule")
        unit = _choice(raw, "chargingRateUnit", UNITS, required=True)
        allowed = {_UNIT_NAMES.get(u, u) for u in allowed_units}
        if unit not in allowed:
            raise InvalidProfile(f"chargingRateUnit {unit} is not allowed (ChargingScheduleAllowedChargingRateUnit)")
        min_rate = raw.get("minChargingRate")
        min_rate = None if min_rate is None else floor_tenth(min_rate, "minChargingRate")
        if min_rate is not None and min_rate < 0:
            raise InvalidProfile("minChargingRate must not be negative")

        raw_periods = raw.get("chargingSchedulePeriod")
        if not isinstance(raw_periods, (list, tuple)) or not raw_periods:
            raise InvalidProfile("chargingSchedulePeriod needs at least one period")
        if len(raw_periods) > max_periods:
            raise InvalidProfile(
                f"{len(raw_periods)} periods are more than ChargingScheduleMaxPeriods {max_periods}"
            )
        periods: list[Period] = []
        for index, item in enumerate(raw_periods):
            if not isinstance(item, Mapping):
                raise InvalidProfile(f"chargingSchedulePeriod[{index}] must be an object")
            start_period = _int(item, "startPeriod", required=True, minimum=0)
            if "limit" not in item or item["limit"] is None:
                raise InvalidProfile(f"chargingSchedulePeriod[{index}].limit is missing")
            limit = floor_tenth(item["limit"], f"chargingSchedulePeriod[{index}].limit")
            if limit < 0:
                raise InvalidProfile(f"chargingSchedulePeriod[{index}].limit must not be negative")
            phases = _int(item, "numberPhases", required=False)
            if phases is not None and not 1 <= phases <= 3:
                raise InvalidProfile(f"chargingSchedulePeriod[{index}].numberPhases must be 1, 2 or 3")
            if index == 0 and start_period != 0:
                raise InvalidProfile("the first chargingSchedulePeriod must have startPeriod 0")
            if periods and start_period <= periods[-1].start_period:
                raise InvalidProfile("chargingSchedulePeriod startPeriods must be strictly ascending")
            periods.append(Period(start_period, limit, phases))

        if kind == "Recurring":
            if recurrency is None:
                raise InvalidProfile("a Recurring profile needs recurrencyKind")
            if start is None:
                raise InvalidProfile("a Recurring profile needs chargingSchedule.startSchedule")
        elif recurrency is not None:
            raise InvalidProfile(f"recurrencyKind is only allowed in a Recurring profile, not {kind}")
        if kind == "Relative" and start is not None:
            raise InvalidProfile("a Relative profile must not have chargingSchedule.startSchedule")

        schedule = ChargingSchedule(unit, tuple(periods), duration, start, min_rate)
        return cls(profile_id, stack_level, purpose, kind, schedule, transaction_id, recurrency, valid_from, valid_to)

    def to_ocpp(self) -> dict[str, Any]:
        """The ``csChargingProfiles`` dict (plain JSON types: ints, floats, strings)."""
        out: dict[str, Any] = {"chargingProfileId": self.id}
        if self.transaction_id is not None:
            out["transactionId"] = self.transaction_id
        out["stackLevel"] = self.stack_level
        out["chargingProfilePurpose"] = self.purpose
        out["chargingProfileKind"] = self.kind
        if self.recurrency_kind is not None:
            out["recurrencyKind"] = self.recurrency_kind
        if self.valid_from is not None:
            out["validFrom"] = format_time(self.valid_from)
        if self.valid_to is not None:
            out["validTo"] = format_time(self.valid_to)
        out["chargingSchedule"] = self.schedule.to_ocpp()
        return out


class InstalledProfile(NamedTuple):
    """A profile and the connector it is installed on (0 = the whole station)."""

    connector_id: int
    profile: ChargingProfile


def check_placement(profile: ChargingProfile, connector_id: int, active_transaction: int | None) -> str | None:
    """Why ``profile`` cannot go on ``connector_id`` now (None: it can).

    ``active_transaction``: the transactionId running on that connector (None: none).
    ChargePointMaxProfile only on connector 0; TxProfile only on a connector > 0 with an active
    transaction, whose id must match the profile's transactionId if it has one; TxDefaultProfile
    anywhere (0 = all connectors).
    """
    if isinstance(connector_id, bool) or not isinstance(connector_id, int) or connector_id < 0:
        return f"connectorId must be an integer >= 0, got {connector_id!r}"
    if profile.purpose == CHARGE_POINT_MAX and connector_id != 0:
        return "a ChargePointMaxProfile can only be set on connector 0"
    if profile.purpose == TX:
        if connector_id == 0:
            return "a TxProfile cannot be set on connector 0"
        if active_transaction is None:
            return f"a TxProfile needs an active transaction on connector {connector_id}"
        if profile.transaction_id is not None and profile.transaction_id != active_transaction:
            return (
                f"the TxProfile is for transaction {profile.transaction_id}, but transaction "
                f"{active_transaction} is running on connector {connector_id}"
            )
    return None
