"""Checks of a key's value against the other keys (validated here, once, for every writer)."""

from __future__ import annotations

from typing import Any

from ..registry import KeyContext
from ..value_types import InvalidValue, Source


def check_phase_rotation(value: tuple[str, ...], ctx: KeyContext) -> str | None:
    connectors = ctx.get("NumberOfConnectors")
    seen: set[int] = set()
    for item in value:
        connector = int(item.split(".")[0])
        if connector > connectors:
            return f"connector {connector} does not exist (this station has {connectors})"
        if connector in seen:
            return f"connector {connector} is listed twice"
        seen.add(connector)
    return None


def check_security_profile(value: int, ctx: KeyContext) -> str | None:
    current = ctx.get("SecurityProfile")
    # OCPP 1.6 security whitepaper: a backend may only raise the profile. An installer on
    # site (WebUI, CLI, config file) may also lower it, e.g. to recover a station.
    if ctx.source is Source.OCPP and value <= current:
        return f"the security profile can only be raised over OCPP (current: {current})"
    # Profile 3 authenticates with the charge point certificate instead of HTTP Basic.
    if value in (1, 2) and not ctx.is_set("AuthorizationKey"):
        return f"security profile {value} needs an AuthorizationKey; set it first"
    # Whitepaper: profiles 2 and 3 only with a CentralSystemRootCertificate, 3 only with a charge
    # point certificate (None: no certificate store is running, e.g. a command-line tool; the
    # daemon's OCPP client provides the answers).
    if ctx.source is Source.OCPP and value >= 2 and ctx.get("CentralSystemRootCertificateInstalled") is False:
        return f"security profile {value} needs a CentralSystemRootCertificate; install one first"
    if ctx.source is Source.OCPP and value == 3 and ctx.get("ChargePointCertificateInstalled") is False:
        return ("security profile 3 needs a valid charge point certificate; have the station sign one first "
                "(ExtendedTriggerMessage SignChargePointCertificate, CertificateSigned)")
    return None


def check_activation_code(value: Any, ctx: KeyContext) -> str | None:
    return "every product feature of stationd is enabled; no activation code is needed"


def grid_phase_connection_shape(value: Any) -> None:
    if not (isinstance(value, list) and sorted(value) == [1, 2, 3] and all(type(v) is int for v in value)):
        raise InvalidValue("must be a JSON array ordering the phases 1, 2 and 3, e.g. [1,2,3] or [2,3,1]")


def connector_count(ctx: KeyContext) -> int:
    return int(ctx.get("NumberOfConnectors"))
