"""Modbus server writes that must be refused, against the running demo's server on 127.0.0.1.

The writable holding registers (docs/modbus-server.md): 257 watchdog (0..65535: no uint16 is
out of range), 258 standby (0 or 4), 259 remote lock (0 or 1), 261 and 262 current in 0.1 A
(0, or 60 up to the connector's maximum × 10). Tried with a pymodbus client: out-of-range
values by FC 6, FC 16 (one bad value in a block refuses the block), FC 22 (a mask that makes an
out-of-range value) and FC 23; writes to the read-only 260 and to unmapped addresses; a device id
with no connector; and hand-made frames of the wrong length (a byte count that does not match,
a count of 0 or over 123, a cut PDU). Each must be answered with a Modbus exception (or, for a
malformed frame, not at all) and change nothing: the holding registers read back as before, and
the server still answers.
"""

from __future__ import annotations

import asyncio
import struct

from pymodbus.client import AsyncModbusTcpClient

from .security_rig import Rig
from .tally import Tally

ILLEGAL_ADDRESS, ILLEGAL_VALUE, GATEWAY_NO_RESPONSE = 2, 3, 0x0B
HOLDING = (257, 6)  # 257..262


def out_of_range(max_deciamps: int, long: bool) -> dict[int, list[int]]:
    current = [1, 59, max_deciamps + 1, 65535] + ([2, 30, 58, max_deciamps + 10, 1000, 32768] if long else [])
    return {
        258: [1, 3, 5, 65535] + ([2, 6, 8, 100, 32768] if long else []),
        259: [2, 65535] + ([3, 10, 256, 32768] if long else []),
        261: current,
        262: current,
    }


async def expect_exception(tally: Tally, what: str, reply, codes: tuple[int, ...]) -> None:
    if reply.isError() and getattr(reply, "exception_code", None) in codes:
        tally.ok()
    else:
        tally.lost += 1
        tally.failed(f"Modbus {what}: answered {reply} (exception {codes} expected): ACCEPTED")


def frame(transaction: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


MALFORMED = {
    "FC 16 whose byte count does not match its count": bytes([16]) + struct.pack(">HHB", 261, 2, 3) + b"\x00\x64\x00",
    "FC 16 with a count of 0": bytes([16]) + struct.pack(">HHB", 261, 0, 0),
    "FC 16 with a count of 124": bytes([16]) + struct.pack(">HHB", 200, 124, 248) + b"\x00" * 248,
    "FC 16 with fewer data bytes than its byte count": bytes([16]) + struct.pack(">HHB", 261, 2, 4) + b"\x00\x64",
    "FC 6 cut after the address": bytes([6]) + struct.pack(">H", 261),
    "FC 23 with a byte count that does not match": bytes([23]) + struct.pack(">HHHHB", 257, 1, 261, 1, 4) + b"\x00\x64",
}


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(260), 1.5)
        except TimeoutError:
            return b""
    finally:
        writer.close()


async def run_modbus(rig: Rig, tally: Tally, long: bool) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=rig.modbus_port, timeout=3, retries=0)
    await client.connect()
    try:
        max_deciamps = (await client.read_input_registers(100, count=1, device_id=1)).registers[0] * 10
        before = (await client.read_holding_registers(HOLDING[0], count=HOLDING[1], device_id=1)).registers
        tried = 0
        for address, values in out_of_range(max_deciamps, long).items():
            for value in values:
                await expect_exception(tally, f"FC 6 {address} = {value}",
                                       await client.write_register(address, value, device_id=1), (ILLEGAL_VALUE,))
                await expect_exception(tally, f"FC 16 {address} = [{value}]",
                                       await client.write_registers(address, [value], device_id=1), (ILLEGAL_VALUE,))
                tried += 2
        await expect_exception(tally, "FC 16 261..262 = [120, 5] (one bad value)",
                               await client.write_registers(261, [120, 5], device_id=1), (ILLEGAL_VALUE,))
        await expect_exception(tally, "FC 16 257..263 (runs into an unmapped address)",
                               await client.write_registers(257, [15000, 4, 1, 0, 100, 0, 0], device_id=1),
                               (ILLEGAL_ADDRESS,))
        await expect_exception(tally, "FC 22 259 and=0 or=2",
                               await client.mask_write_register(address=259, and_mask=0, or_mask=2, device_id=1),
                               (ILLEGAL_VALUE,))
        await expect_exception(tally, "FC 23 write 261 = 59",
                               await client.readwrite_registers(read_address=257, read_count=1, write_address=261,
                                                                values=[59], device_id=1), (ILLEGAL_VALUE,))
        for address in [260, 256, 263, 0, 5] + ([1, 100, 1000, 65535] if long else []):
            await expect_exception(tally, f"FC 6 {address} (read-only or unmapped)",
                                   await client.write_register(address, 0, device_id=1), (ILLEGAL_ADDRESS,))
        await expect_exception(tally, "FC 6 261 = 100 to device 9 (no such connector)",
                               await client.write_register(261, 100, device_id=9), (GATEWAY_NO_RESPONSE,))
        tried += 9
        for number, (what, pdu) in enumerate(MALFORMED.items(), start=1):
            answer = await raw_exchange(rig.modbus_port, frame(number, 1, pdu))
            # nothing, or an exception answer (function code with the high bit set)
            if answer and not (len(answer) >= 9 and answer[7] & 0x80):
                tally.lost += 1
                tally.failed(f"Modbus {what}: answered {answer.hex()} (an exception or nothing expected)")
            else:
                tally.ok()
        after = (await client.read_holding_registers(HOLDING[0], count=HOLDING[1], device_id=1)).registers
        if after != before:
            tally.lost += 1
            tally.failed(f"Modbus: holding registers 257..262 changed by refused writes: {before} -> {after}")
        else:
            tally.ok(f"Modbus: {tried + len(MALFORMED)} refused writes (out-of-range values, read-only/unmapped "
                     f"addresses, wrong lengths) changed nothing: 257..262 = {after}")
    finally:
        client.close()
