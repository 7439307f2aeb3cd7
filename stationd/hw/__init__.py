"""Hardware edge: EVSE controllers (serial, CAN), energy meters (Modbus), RFID reader."""
