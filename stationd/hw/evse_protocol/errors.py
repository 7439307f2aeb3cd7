"""Errors raised by the EVSE controller protocol codec and links."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A message cannot be encoded or decoded (unknown type, wrong length, value out of range).

    ``reason`` is a short human-readable explanation, also the exception's message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkError(Exception):
    """Base class of link (transport) failures."""


class LinkTimeout(LinkError):
    """A reliable message was not acknowledged after all retransmissions."""


class LinkClosed(LinkError):
    """The link was closed locally, or the peer / device went away (end of file)."""


class LinkDown(LinkError):
    """The medium refused to carry a frame (CAN bus error, bus-off, closed bus)."""
