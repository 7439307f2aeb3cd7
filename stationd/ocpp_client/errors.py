"""Errors of the OCPP client, shared by the connection, the RPC layer and the outbox."""

from __future__ import annotations

# OCPP-J 1.6 (§4.2.3, table 7) error codes, with the 1.6 spellings.
ERROR_CODES = frozenset({
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError", "FormationViolation",
    "PropertyConstraintViolation", "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError",
})


class OcppError(Exception):
    """Base of the OCPP client's errors."""


class CallError(OcppError):
    """The peer answered a CALL with a CALLERROR (or we answer one with it)."""

    def __init__(self, code: str, description: str = "", details: dict | None = None):
        super().__init__(f"{code}: {description}" if description else code)
        self.code, self.description, self.details = code, description, details or {}


class CallTimeout(OcppError):
    """No answer to a CALL within the timeout (the connection may still be up)."""


class ConnectionLost(OcppError):
    """The connection went away while a CALL waited for its answer, or before it was sent."""


class ConnectFailed(OcppError):
    """A connection attempt failed; ``reason`` says why in the field's words."""

    def __init__(self, reason: str, *, security_event: str | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason, self.security_event, self.status = reason, security_event, status
