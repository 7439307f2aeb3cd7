"""Eaton load-balancing cluster: this station as master or slave (docs/load-balancing.md).

* ``protocol``       — the JSON messages over the WebSocket, checked before use
* ``settings``       — what the LoadBalancing* keys say (limits, the master's address)
* ``building_meter`` — the building's meter (Janitza UMG 96RM / Carlo Gavazzi EM24, Modbus TCP)
* ``building_load``  — the rest of the building, estimated while the offers are settled
* ``applier``        — sets the core's "load balancing" limit
* ``master``         — the WebSocket server and the allocation rounds
* ``slave``          — reports, allocations, start and fallback currents, reconnects
* ``service``        — picks the role from the keys and restarts it when they change
"""
