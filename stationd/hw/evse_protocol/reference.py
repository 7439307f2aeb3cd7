"""Renders the table sections of docs/evse-protocol.md from the protocol's data tables.

The document marks each generated section with ``<!-- generated:NAME -->`` …
``<!-- /generated:NAME -->``. Refresh them with

    python -m stationd.hw.evse_protocol.reference --update docs/evse-protocol.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .can_link import CAN_FUNCTIONS, can_id
from .can_tp import segment
from .enums import ENUMS, FAULT_BITS, CpState, LockState, MessageType, RcdState, Sender
from .messages import SPECS, Heartbeat, SetCurrent, Status, encode
from .pdu import FLAG_SYN, Pdu
from .serial_link import encode_frame
from .timing import RETRIES, TIMINGS

_DIRECTION = {Sender.STATION: "station → controller", Sender.CONTROLLER: "controller → station"}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _hex(data: bytes) -> str:
    return data.hex(" ")


def messages() -> str:
    function = {t: f.code for f in CAN_FUNCTIONS for t in f.types}
    overview = _table(
        ["type", "message", "direction", "default delivery", "answered by", "CAN function", "size (bytes)"],
        [[f"0x{s.type:02X}", s.cls.__name__, _DIRECTION[s.sender], "reliable" if s.reliable else "unreliable",
          s.answer, str(function[s.type]),
          str(s.fixed_size) if s.max_size == s.fixed_size else f"{s.fixed_size + s.tail.min_size}–{s.max_size}"]
         for s in SPECS.values()],
    )
    parts = [overview]
    for s in SPECS.values():
        rows = [["0", "1", "u8", "", "type", f"0x{s.type:02X}", ""]]
        offset = 1
        for f in s.fields:
            size = str(f.wire.size) if f.wire.size is not None else "n"
            rows.append([str(offset), size, f.wire.type_name, f.unit, f"`{f.name}`", f.doc, f.range])
            offset += f.wire.size or 0
        parts.append(f"#### 0x{s.type:02X} {s.cls.__name__} ({_DIRECTION[s.sender]})\n\n{s.cls.__doc__}\n\n"
                     + _table(["offset", "size", "type", "unit", "field", "meaning", "range"], rows))
    return "\n\n".join(parts)


def enums() -> str:
    parts = []
    for enum in ENUMS:
        if enum is MessageType:
            continue
        extra = hasattr(next(iter(enum)), "value_doc")
        header = ["value", "name", "meaning"] + (["Event.value"] if extra else [])
        rows = [[str(int(m)), m.name, m.doc] + ([m.value_doc] if extra else []) for m in enum]
        parts.append(f"#### {enum.__name__}\n\n{enum.__doc__}\n\n" + _table(header, rows))
    return "\n\n".join(parts)


def faults() -> str:
    return _table(
        ["bit", "mask", "name", "meaning", "opens contactor", "latched"],
        [[str(f.bit), f"0x{1 << f.bit:04X}", f.name, f.meaning, "yes" if f.opens_contactor else "no",
          "yes" if f.latched else "no"] for f in FAULT_BITS],
    )


def can_functions() -> str:
    return _table(
        ["function", "identifiers (node 1 … 63)", "sender", "carries"],
        [[str(f.code), f"0x{can_id(f.code, 1):03X} … 0x{can_id(f.code, 63):03X}", f.sender.name.lower(),
          f.name + ": " + ", ".join(SPECS[t].cls.__name__ for t in f.types)
          + (" + link acknowledgements" if f.carries_acks else "")] for f in CAN_FUNCTIONS],
    )


def timing() -> str:
    rows = [[t.name, f"{t.seconds * 1000:g} ms", t.rule] for t in TIMINGS]
    rows.append(["RETRIES", str(RETRIES), "retransmissions before LinkTimeout (so 6 transmissions in all)"])
    return _table(["name", "value", "rule"], rows)


def examples() -> str:
    heartbeat = Pdu(0, 0, 0, encode(Heartbeat(counter=1))).pack()
    command = Pdu(0x2A, 0, FLAG_SYN, encode(SetCurrent(amps=16.0))).pack()
    ack = Pdu(0, 0x2A, 0, b"").pack()
    status = Pdu(0, 0, 0, encode(Status(
        cp_state=CpState.C, pp_current_a=32, pwm_duty_permille=266, offered_current_a=16.0,
        contactor_commanded=True, contactor_closed=True, lock_state=LockState.LOCKED, rcd_state=RcdState.OK,
        temperature_c=31.5, door_open=False, faults=frozenset(), uptime_s=3600))).pack()
    status_id = can_id(4, 1)
    lines = [
        "Heartbeat(counter=1), unreliable:",
        f"    message      {_hex(encode(Heartbeat(counter=1)))}",
        f"    PDU          {_hex(heartbeat)}",
        f"    serial line  {_hex(encode_frame(heartbeat))}",
        f"    CAN, node 1  0x{can_id(1, 1):03X}  [{len(segment(heartbeat)[0])}]  {_hex(segment(heartbeat)[0])}",
        "",
        "SetCurrent(amps=16.0), reliable, seq 0x2A, first frame after start-up (SYN):",
        f"    PDU          {_hex(command)}",
        f"    serial line  {_hex(encode_frame(command))}",
        "  its acknowledgement from the controller:",
        f"    PDU          {_hex(ack)}",
        f"    serial line  {_hex(encode_frame(ack))}",
        f"    CAN, node 1  0x{can_id(2, 1):03X}  [{len(segment(ack)[0])}]  {_hex(segment(ack)[0])}",
        "",
        "Status (state C, 32 A cable, 16 A offered, contactor closed, locked, 31.5 °C, uptime 3600 s):",
        f"    PDU          {_hex(status)}",
        f"    serial line  {_hex(encode_frame(status))}",
    ]
    lines += [f"    CAN, node 1  0x{status_id:03X}  [{len(f)}]  {_hex(f)}" for f in segment(status)]
    return "```text\n" + "\n".join(lines) + "\n```"


SECTIONS = {
    "messages": messages, "enums": enums, "faults": faults, "can-functions": can_functions,
    "timing": timing, "examples": examples,
}


def render(name: str) -> str:
    return f"<!-- generated:{name} -->\n{SECTIONS[name]()}\n<!-- /generated:{name} -->"


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.DOTALL)


def stale_sections(text: str) -> list[str]:
    """Names of generated sections that are missing from ``text`` or differ from the code."""
    return [name for name in SECTIONS if render(name) not in text]


def update(text: str) -> str:
    for name in SECTIONS:
        text = _pattern(name).sub(lambda _m, n=name: render(n), text)
    return text


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--update":
        path = Path(argv[1])
        path.write_text(update(path.read_text()))
        return 0
    for name in SECTIONS:
        print(render(name), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
