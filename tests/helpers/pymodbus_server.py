#!/usr/bin/python3
"""An independent Modbus server for streetbox's interoperability tests (pymodbus 3.0).

Serves known register contents over TCP (--tcp PORT, 0 = any free port) or RTU on a serial
path (--rtu PATH), for the units given with --units. Prints "ready <port-or-path>" on stdout
once it listens, then serves until stdin closes or SIGTERM.

Known contents, for every served unit u (protocol addresses, zero-based):
  holding[a]  = (a * 7 + u) & 0xFFFF      for a < 1000
  input[a]    = (1000 + a + u) & 0xFFFF   for a < 1000
  coil[a]     = (a + u) % 3 == 0          for a < 1000
  discrete[a] = (a + u) % 2 == 0          for a < 1000
--values FILE (JSON) overrides: {"<unit>": {"hr": {"<addr>": [v, ...]}, "ir": {...}, "co": {...}, "di": {...}}}
"""
import argparse
import asyncio
import json
import logging
import signal
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer

# pymodbus imports these only when a serial line is opened (Debian: python3-serial,
# python3-serial-asyncio, recommends of python3-pymodbus); importing them here makes
# scripts/system-deps.sh's check (--check-imports) see exactly what the tests need.
import serial  # noqa: F401
import serial_asyncio  # noqa: F401

if "--check-imports" in sys.argv:
    sys.exit(0)

SIZE = 1000


def unit_context(unit, overrides):
    hr = [(a * 7 + unit) & 0xFFFF for a in range(SIZE)]
    ir = [(1000 + a + unit) & 0xFFFF for a in range(SIZE)]
    co = [(a + unit) % 3 == 0 for a in range(SIZE)]
    di = [(a + unit) % 2 == 0 for a in range(SIZE)]
    tables = {"hr": hr, "ir": ir, "co": co, "di": di}
    for table, by_addr in (overrides or {}).items():
        for addr, values in by_addr.items():
            for i, v in enumerate(values):
                tables[table][int(addr) + i] = v
    # zero_mode: protocol address a is block index a (pymodbus otherwise shifts by one)
    return ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, hr),
        ir=ModbusSequentialDataBlock(0, ir),
        co=ModbusSequentialDataBlock(0, co),
        di=ModbusSequentialDataBlock(0, di),
        zero_mode=True,
    )


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int)
    p.add_argument("--rtu")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--stopbits", type=int, default=1)
    p.add_argument("--parity", default="N")
    p.add_argument("--units", default="1")
    p.add_argument("--values")
    args = p.parse_args()

    overrides = {}
    if args.values:
        with open(args.values, encoding="utf-8") as f:
            overrides = json.load(f)
    units = [int(u) for u in args.units.split(",")]
    context = ModbusServerContext(
        slaves={u: unit_context(u, overrides.get(str(u))) for u in units}, single=False
    )

    if args.tcp is not None:
        server = ModbusTcpServer(
            context, address=("127.0.0.1", args.tcp), allow_reuse_address=True,
            ignore_missing_slaves=True,
        )
        task = asyncio.create_task(server.serve_forever())
        await server.serving
        port = server.server.sockets[0].getsockname()[1]
        where = str(port)
    elif args.rtu:
        server = ModbusSerialServer(
            context, framer=ModbusRtuFramer, port=args.rtu, baudrate=args.baud,
            bytesize=8, parity=args.parity, stopbits=args.stopbits,
            ignore_missing_slaves=True,
        )
        await server.start()
        task = asyncio.create_task(server.serve_forever())
        where = args.rtu
    else:
        p.error("give --tcp PORT or --rtu PATH")
        return

    print(f"ready {where}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096) else None)
    await stop.wait()
    task.cancel()
    await server.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
