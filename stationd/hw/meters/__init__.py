"""Energy meters over Modbus (RTU or TCP): register maps as data, the reader and its poller.

* :mod:`.maps` — one declarative register map per meter model (SDM630, EM24, EM340, ABB_B23,
  JANITZA_UMG96RM, JANITZA_UMG604, ISKRA_WM3M4).
* :mod:`.codec` — register ⇄ value conversion (shared with ``firmware_sim.meters``) and the
  read planner.
* :mod:`.reader` — ``MeterReader`` (one meter → ``MeterSample``) and ``connect_client``.
* :mod:`.poller` — ``MeterPoller`` (online/offline supervision).
"""

from .codec import BlockRead, MeterError, decode_fields, encode_fields, plan_reads
from .maps import METER_MAPS, DataType, Field, MeterMap, WordOrder, get_map
from .poller import MeterPoller
from .reader import (
    MeterIdentity,
    MeterReader,
    MeterSample,
    RtuLink,
    TcpLink,
    connect_client,
)

__all__ = [
    "METER_MAPS",
    "BlockRead",
    "DataType",
    "Field",
    "MeterError",
    "MeterIdentity",
    "MeterMap",
    "MeterPoller",
    "MeterReader",
    "MeterSample",
    "RtuLink",
    "TcpLink",
    "WordOrder",
    "connect_client",
    "decode_fields",
    "encode_fields",
    "get_map",
    "plan_reads",
]
