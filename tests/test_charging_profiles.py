"""Charging profiles: from_ocpp / to_ocpp, validation reasons, ProfileStore rules, persistence."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stationd.smart_charging import (
    ChargingProfile,
    InvalidProfile,
    ProfileStore,
    check_placement,
)
from stationd.storage import MIGRATIONS, Database

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def raw(
    pid: int = 1,
    *,
    purpose: str = "TxDefaultProfile",
    stack: int = 0,
    kind: str = "Absolute",
    periods=((0, 16),),
    unit: str = "A",
    **extra,
) -> dict:
    schedule = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    if kind != "Relative":
        schedule["startSchedule"] = "2024-05-01T00:00:00Z"
    schedule.update(extra.pop("schedule", {}))
    data = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
    }
    data.update(extra)
    return data


def prof(pid: int = 1, **kw) -> ChargingProfile:
    return ChargingProfile.from_ocpp(raw(pid, **kw))


@pytest.fixture
def db(tmp_path: Path):
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def store(db: Database) -> ProfileStore:
    return ProfileStore(db)


# ---------------------------------------------------------------- from_ocpp / to_ocpp


FULL = {
    "chargingProfileId": 7,
    "transactionId": 42,
    "stackLevel": 3,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Recurring",
    "recurrencyKind": "Weekly",
    "validFrom": "2024-01-01T00:00:00Z",
    "validTo": "2025-01-01T00:00:00Z",
    "chargingSchedule": {
        "duration": 7200,
        "startSchedule": "2024-01-01T06:00:00Z",
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 11000.0, "numberPhases": 3},
            {"startPeriod": 1800, "limit": 3680.5, "numberPhases": 1},
        ],
        "minChargingRate": 1380.0,
    },
}


def test_round_trip_full_profile():
    profile = ChargingProfile.from_ocpp(FULL)
    assert profile.to_ocpp() == FULL
    assert ChargingProfile.from_ocpp(profile.to_ocpp()) == profile
    assert profile.schedule.start_schedule == datetime(2024, 1, 1, 6, tzinfo=UTC)
    assert profile.schedule.periods[1].number_phases == 1


def test_round_trip_minimal_relative():
    data = raw(kind="Relative", periods=((0, 10), (60, 8)))
    profile = ChargingProfile.from_ocpp(data)
    assert profile.to_ocpp() == {
        **data,
        "chargingSchedule": {**data["chargingSchedule"], "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10.0}, {"startPeriod": 60, "limit": 8.0}]},
    }


def test_limits_rounded_down_decimal_never_kept():
    profile = prof(periods=((0, Decimal("6.25")), (10, 2.3), (20, Decimal(16)), (30, 7.99)))
    limits = [p.limit for p in profile.schedule.periods]
    assert limits == [6.2, 2.3, 16.0, 7.9]
    assert all(type(x) is float for x in limits)
    out = profile.to_ocpp()
    assert all(type(p["limit"]) is float for p in out["chargingSchedule"]["chargingSchedulePeriod"])


def test_times_with_offset_and_fraction():
    profile = ChargingProfile.from_ocpp(raw(validFrom="2024-05-01T14:00:00.750+02:00"))
    assert profile.valid_from == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert profile.to_ocpp()["validFrom"] == "2024-05-01T12:00:00Z"


def _mutate(path, value):
    data = copy.deepcopy(raw(periods=((0, 16), (60, 10))))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "data, fragment",
    [
        (_mutate(("chargingSchedule", "chargingSchedulePeriod", 0, "startPeriod"), 5), "startPeriod 0"),
        (_mutate(("chargingSchedule", "chargingSchedulePeriod", 1, "startPeriod"), 0), "strictly ascending"),
        (_mutate(("chargingSchedule", "chargingSchedulePeriod"), []), "at least one period"),
        (_mutate(("chargingSchedule", "chargingSchedulePeriod", 0, "limit"), -1), "must not be negative"),
        (_mutate(("chargingSchedule", "chargingSchedulePeriod", 0, "numberPhases"), 4), "numberPhases"),
        (_mutate(("stackLevel",), 21), "ChargeProfileMaxStackLevel 20"),
        (_mutate(("stackLevel",), -1), "stackLevel must be >= 0"),
        (_mutate(("chargingProfilePurpose",), "Bogus"), "chargingProfilePurpose must be one of"),
        (_mutate(("chargingProfileId",), KeyError), "chargingProfileId is missing"),
        (_mutate(("chargingSchedule",), KeyError), "chargingSchedule is missing"),
        (_mutate(("chargingSchedule", "chargingRateUnit"), "kW"), "chargingRateUnit must be one of"),
        (_mutate(("chargingProfileKind",), "Recurring"), "needs recurrencyKind"),
        (_mutate(("recurrencyKind",), "Daily"), "only allowed in a Recurring"),
        (_mutate(("chargingProfileKind",), "Relative"), "must not have chargingSchedule.startSchedule"),
        (_mutate(("transactionId",), 5), "only allowed in a TxProfile"),
        (_mutate(("validTo",), "2024-01-01T00:00:00Z") | {"validFrom": "2024-01-01T00:00:00Z"}, "validFrom must be before"),
        (_mutate(("validFrom",), "yesterday"), "not a date and time"),
        (_mutate(("chargingSchedule", "duration"), -5), "duration must be >= 0"),
    ],
)
def test_validation_reasons(data, fragment):
    with pytest.raises(InvalidProfile) as raised:
        ChargingProfile.from_ocpp(data)
    assert fragment in raised.value.reason


def test_recurring_needs_start_schedule():
    data = raw(kind="Recurring", recurrencyKind="Daily")
    del data["chargingSchedule"]["startSchedule"]
    with pytest.raises(InvalidProfile, match="needs chargingSchedule.startSchedule"):
        ChargingProfile.from_ocpp(data)


def test_max_periods_and_units():
    periods = tuple((i * 60, 10) for i in range(1441))
    with pytest.raises(InvalidProfile, match="ChargingScheduleMaxPeriods 1440"):
        prof(periods=periods)
    assert len(prof(periods=periods[:1440]).schedule.periods) == 1440
    with pytest.raises(InvalidProfile, match="not allowed"):
        ChargingProfile.from_ocpp(raw(unit="W"), allowed_units=("Current",))
    assert ChargingProfile.from_ocpp(raw(unit="W"), allowed_units=("Current", "Power")).schedule.charging_rate_unit == "W"


def test_check_placement_reasons():
    tx = prof(purpose="TxProfile")
    assert "connector 0" in check_placement(prof(purpose="ChargePointMaxProfile"), 1, None)
    assert check_placement(prof(purpose="ChargePointMaxProfile"), 0, None) is None
    assert "cannot be set on connector 0" in check_placement(tx, 0, 5)
    assert "needs an active transaction" in check_placement(tx, 1, None)
    assert check_placement(tx, 1, 5) is None
    bound = prof(purpose="TxProfile", transactionId=9)
    assert "transaction 9" in check_placement(bound, 1, 5)
    assert check_placement(prof(), 0, None) is None and check_placement(prof(), 2, None) is None


# ---------------------------------------------------------------- store rules


def ids(store: ProfileStore) -> list[int]:
    return sorted(item.profile.id for item in store.all())


def test_migration_6_appended(db: Database):
    assert MIGRATIONS[5].version == 6 and db.schema_version >= 6


def test_install_rejections(store: ProfileStore):
    assert store.install(1, prof(purpose="TxProfile"), active_transaction=None).status == "Rejected"
    result = store.install(1, prof(purpose="ChargePointMaxProfile"), active_transaction=None)
    assert result.status == "Rejected" and "connector 0" in result.reason
    assert store.install(1, prof(purpose="TxProfile", transactionId=3), active_transaction=4).status == "Rejected"
    assert len(store) == 0


def test_tx_profile_bound_to_running_transaction(store: ProfileStore):
    assert store.install(1, prof(5, purpose="TxProfile"), active_transaction=77).status == "Accepted"
    assert store.get(5).profile.transaction_id == 77
    assert store.install(2, prof(6, purpose="TxProfile", stack=1), active_transaction=78).status == "Accepted"
    assert store.remove_tx_profiles(77) == 1
    assert ids(store) == [6]
    assert store.remove_tx_profiles(77) == 0


def test_same_id_replaces_even_on_other_connector(store: ProfileStore):
    store.install(1, prof(1, periods=((0, 16),)), active_transaction=None)
    result = store.install(2, prof(1, stack=4, periods=((0, 10),)), active_transaction=None)
    assert result.status == "Accepted" and "1" in result.reason
    assert [(i.connector_id, i.profile.stack_level) for i in store.all()] == [(2, 4)]


def test_same_stack_and_purpose_on_same_connector_replaces(store: ProfileStore):
    store.install(1, prof(1, stack=2), active_transaction=None)
    store.install(2, prof(2, stack=2), active_transaction=None)  # other connector: stays
    store.install(1, prof(3, stack=3), active_transaction=None)  # other stack: stays
    store.install(0, prof(4, stack=2, purpose="ChargePointMaxProfile"), active_transaction=None)
    assert ids(store) == [1, 2, 3, 4]
    store.install(1, prof(9, stack=2), active_transaction=None)
    assert ids(store) == [2, 3, 4, 9]


def test_capacity(db: Database):
    store = ProfileStore(db, max_installed=3)
    for pid in range(3):
        assert store.install(1, prof(pid, stack=pid), active_transaction=None).status == "Accepted"
    full = store.install(1, prof(10, stack=10), active_transaction=None)
    assert full.status == "Rejected" and "MaxChargingProfilesInstalled" in full.reason
    # a replacement needs no extra room
    assert store.install(1, prof(11, stack=1), active_transaction=None).status == "Accepted"
    assert ids(store) == [0, 2, 11]


def test_absolute_without_start_gets_install_time(store: ProfileStore):
    data = raw(7)
    del data["chargingSchedule"]["startSchedule"]
    store.install(1, ChargingProfile.from_ocpp(data), active_transaction=None, now=NOW)
    assert store.get(7).profile.schedule.start_schedule == NOW


@pytest.fixture
def filled(store: ProfileStore) -> ProfileStore:
    store.install(0, prof(1, purpose="ChargePointMaxProfile", stack=0), active_transaction=None)
    store.install(0, prof(2, stack=0), active_transaction=None)
    store.install(1, prof(3, stack=1), active_transaction=None)
    store.install(1, prof(4, purpose="TxProfile", stack=1), active_transaction=100)
    store.install(2, prof(5, stack=1), active_transaction=None)
    return store


def test_profiles_for(filled: ProfileStore):
    assert sorted(i.profile.id for i in filled.profiles_for(1)) == [1, 2, 3, 4]
    assert sorted(i.profile.id for i in filled.profiles_for(2)) == [1, 2, 5]
    assert sorted(i.profile.id for i in filled.profiles_for(0)) == [1, 2]


@pytest.mark.parametrize(
    "criteria, left",
    [
        ({"id": 3}, [1, 2, 4, 5]),
        ({"id": 3, "connector_id": 2}, [1, 2, 4, 5]),  # id wins over the other criteria
        ({"connector_id": 0}, [3, 4, 5]),
        ({"connector_id": 1}, [1, 2, 5]),
        ({"purpose": "TxDefaultProfile"}, [1, 4]),
        ({"stack_level": 1}, [1, 2]),
        ({"connector_id": 1, "purpose": "TxDefaultProfile", "stack_level": 1}, [1, 2, 4, 5]),
        ({}, []),
    ],
)
def test_clear_by_criteria(filled: ProfileStore, criteria, left):
    assert filled.clear(**criteria) == "Accepted"
    assert ids(filled) == left


def test_clear_unknown(filled: ProfileStore):
    assert filled.clear(id=99) == "Unknown"
    assert filled.clear(connector_id=3) == "Unknown"
    assert filled.clear(purpose="TxProfile", connector_id=2) == "Unknown"
    assert len(filled) == 5


def test_persistence_across_restart(tmp_path: Path):
    db = Database.open(tmp_path)
    store = ProfileStore(db)
    full = ChargingProfile.from_ocpp(FULL)
    store.install(1, full, active_transaction=42)
    store.install(0, prof(1, purpose="ChargePointMaxProfile", periods=((0, Decimal("31.99")),)), active_transaction=None)
    store.install(2, prof(2), active_transaction=None)
    store.clear(id=2)
    db.close()

    db = Database.open(tmp_path)
    again = ProfileStore(db)
    assert {(i.connector_id, i.profile) for i in again.all()} == {(i.connector_id, i.profile) for i in store.all()}
    assert again.get(7).profile == full
    assert again.get(1).profile.schedule.periods[0].limit == 31.9
    assert again.remove_tx_profiles(42) == 1
    db.close()
    db = Database.open(tmp_path)
    assert ids(ProfileStore(db)) == [1]
    db.close()
