"""The core: the station's truth (connectors, sessions, faults, limits). No OCPP, no bytes."""
