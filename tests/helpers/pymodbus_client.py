#!/usr/bin/python3
"""A pymodbus 3.0 client for streetbox's simulator tests: reads a JSON list of operations on
stdin, runs them in order against --tcp PORT (127.0.0.1) or --rtu PATH, prints a JSON list
of results: {"ok": true, "values": [...]} / {"ok": false, "exception": code} / {"ok": false, "error": "..."}.
"""
import argparse
import json
import logging
import sys

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

# pymodbus imports pyserial only when a serial client connects (Debian: python3-serial);
# importing it here makes scripts/system-deps.sh's check (--check-imports) see it.
import serial  # noqa: F401

if "--check-imports" in sys.argv:
    sys.exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int)
    p.add_argument("--rtu")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--timeout", type=float, default=2)
    args = p.parse_args()
    ops = json.load(sys.stdin)
    if args.tcp is not None:
        client = ModbusTcpClient("127.0.0.1", port=args.tcp, timeout=args.timeout)
    else:
        client = ModbusSerialClient(args.rtu, baudrate=args.baud, bytesize=8, parity="N", stopbits=1, timeout=args.timeout)
    client.connect()
    results = []
    for o in ops:
        try:
            u = o["unit"]
            name = o["op"]
            if name == "read_holding":
                r = client.read_holding_registers(o["address"], o["count"], slave=u)
            elif name == "read_input":
                r = client.read_input_registers(o["address"], o["count"], slave=u)
            elif name == "read_coils":
                r = client.read_coils(o["address"], o["count"], slave=u)
            elif name == "read_discrete":
                r = client.read_discrete_inputs(o["address"], o["count"], slave=u)
            elif name == "write_register":
                r = client.write_register(o["address"], o["value"], slave=u)
            elif name == "write_registers":
                r = client.write_registers(o["address"], o["values"], slave=u)
            elif name == "write_coil":
                r = client.write_coil(o["address"], o["value"], slave=u)
            else:
                raise ValueError(name)
            if isinstance(r, ExceptionResponse):
                results.append({"ok": False, "exception": r.exception_code})
            elif hasattr(r, "isError") and r.isError():
                results.append({"ok": False, "error": str(r)})
            elif hasattr(r, "registers"):
                results.append({"ok": True, "values": list(r.registers)})
            elif hasattr(r, "bits"):
                results.append({"ok": True, "values": [bool(b) for b in r.bits[: o.get("count", 1)]]})
            else:
                results.append({"ok": True})
        except Exception as exc:  # pylint: disable=broad-except
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    client.close()
    print(json.dumps(results))


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    main()
