"""Handlers of the backend's calls, one module per OCPP 1.6 feature profile.

Each handler is ``async def handler(client, payload) -> dict | HandlerResult``; ``client`` is the
OcppClient (store, core, outbox, status, call, …). A handler raises CallError for a protocol
error and NotImplementedError for an action the station knows but does not support.
"""

from __future__ import annotations

from . import core_profile, local_auth, remote_trigger, reservation, smart_charging
from . import diagnostics as diagnostics_handlers
from . import firmware_management, get_log, security

HANDLERS = {**core_profile.HANDLERS, **local_auth.HANDLERS, **remote_trigger.HANDLERS, **reservation.HANDLERS,
            **smart_charging.HANDLERS, **diagnostics_handlers.HANDLERS, **firmware_management.HANDLERS,
            **security.HANDLERS, **get_log.HANDLERS}
