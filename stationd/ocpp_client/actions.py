"""The OCPP 1.6 actions, by direction.

* :data:`KNOWN_ACTIONS` — what a central system may send to the station (CS → CP): the
  requests of all six 1.6 feature profiles (Core, Firmware Management, Local Auth List
  Management, Reservation, Smart Charging, Remote Trigger) plus the Security Whitepaper ones.
* :data:`STATION_ACTIONS` — what the station sends (CP → CS), whitepaper ones included.

``DataTransfer`` is in both. Every action has a request and a response schema in the ``ocpp``
package (``ocpp/v16/schemas/<Action>.json`` and ``<Action>Response.json``); that is checked
when :mod:`stationd.ocpp_client.schemas` loads them.
"""

from __future__ import annotations

#: CS → CP, [S16] chapter 5 (Core, Firmware Management, Local Auth List Management,
#: Reservation, Smart Charging, Remote Trigger).
SPEC_CS_TO_CP = frozenset({
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "ClearChargingProfile",
    "DataTransfer", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
})

#: CS → CP, OCPP 1.6 Security Whitepaper ([WP] chapter 4).
WHITEPAPER_CS_TO_CP = frozenset({
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds",
    "GetLog", "InstallCertificate", "SignedUpdateFirmware",
})

#: CP → CS, [S16] chapter 4.
SPEC_CP_TO_CS = frozenset({
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification",
    "StopTransaction",
})

#: CP → CS, OCPP 1.6 Security Whitepaper.
WHITEPAPER_CP_TO_CS = frozenset({
    "LogStatusNotification", "SecurityEventNotification", "SignCertificate", "SignedFirmwareStatusNotification",
})

#: Actions the station answers (incoming CALLs it knows). Anything else → ``NotImplemented``,
#: except the CP → CS actions, which are 1.6 actions the station recognises but does not
#: accept from a peer → ``NotSupported``.
KNOWN_ACTIONS: frozenset[str] = SPEC_CS_TO_CP | WHITEPAPER_CS_TO_CP

#: Actions the station may send with :meth:`RpcEndpoint.call`.
STATION_ACTIONS: frozenset[str] = SPEC_CP_TO_CS | WHITEPAPER_CP_TO_CS

#: Every OCPP 1.6 action (both directions, whitepaper included).
ALL_ACTIONS: frozenset[str] = KNOWN_ACTIONS | STATION_ACTIONS

__all__ = ["ALL_ACTIONS", "KNOWN_ACTIONS", "STATION_ACTIONS"]
