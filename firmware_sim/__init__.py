"""Simulated station hardware: EVSE controllers, vehicles, meters and an RFID reader."""
