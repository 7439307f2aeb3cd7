"""OCPP 1.6J client: the station's contract with a backend (central system)."""
