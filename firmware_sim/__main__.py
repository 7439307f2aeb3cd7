"""Run the simulated car park and its control API on their own.

    python -m firmware_sim --connectors 2 --state-dir DIR --sim-api 127.0.0.1:8090 [--transport serial|can]

For benchmarks that run the daemon in another process. Prints to stdout, one per line and in
this order: each controller's pty path (connector 1, 2, …; with ``--transport can``
``can:<channel>:<node id>`` instead), the meter endpoint ``127.0.0.1:<port>`` (Modbus TCP,
device id = connector id) and the RFID reader's pty path. Then it serves until SIGINT/SIGTERM
and saves the meters' energy in the state directory.

Note: python-can's ``virtual`` bus only connects bus objects inside one process, so
``--transport can`` is useful only to a station running in this process (tests, demos).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .api import LOOPBACK_HOSTS, ControlApi
from .world import SimConnectorSpec, SimWorld


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host not in LOOPBACK_HOSTS:
        raise argparse.ArgumentTypeError(f"the control API binds only to loopback "
                                         f"({', '.join(LOOPBACK_HOSTS)}), not {host!r}")
    return host, int(port)


def _connectors(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 8:
        raise argparse.ArgumentTypeError(f"expected 1-8 connectors, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim",
                                     description="Simulated EVSE controllers, meters, RFID reader and vehicles.")
    parser.add_argument("--connectors", type=_connectors, default=2, help="number of connectors (default 2)")
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="where the meters' energy registers (and controller firmware versions) live")
    parser.add_argument("--sim-api", type=_address, default=("127.0.0.1", 8090),
                        help="control API address, loopback only (default 127.0.0.1:8090)")
    parser.add_argument("--transport", choices=("serial", "can"), default="serial",
                        help="controller transport: pty pairs (default) or python-can's in-process virtual bus")
    parser.add_argument("--can-channel", default="stationd-sim", help="virtual CAN channel (default stationd-sim)")
    parser.add_argument("--max-current", type=float, default=32.0, help="hardware limit per connector, A")
    parser.add_argument("--meter-model", default="SDM630", help="simulated meter model (default SDM630)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    specs = [SimConnectorSpec(id=n, max_current_a=args.max_current, transport=args.transport,
                              can_channel=args.can_channel, meter_model=args.meter_model)
             for n in range(1, args.connectors + 1)]
    world = SimWorld(specs, args.state_dir)
    host, port = args.sim_api
    api = ControlApi(world, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await world.start()
    try:
        await api.start()
        for spec in specs:
            if spec.transport == "serial":
                print(world.controller_port(spec.id))
            else:
                print(f"can:{spec.can_channel}:{spec.node}")
        meter_host, meter_port = world.meter_endpoint
        print(f"{meter_host}:{meter_port}")
        print(world.rfid_port, flush=True)
        logging.getLogger("firmware_sim").info("control API on %s; Ctrl-C to stop", api.url)
        await stop.wait()
    finally:
        await api.stop()
        await world.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"firmware_sim: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"firmware_sim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
