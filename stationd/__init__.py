"""stationd — the controller daemon of an EV charging station."""

__version__ = "0.1.0"
