"""``terril scan HOST[:PORT]``: which devices answer at an address, before writing any config.

SunSpec devices are listed with their models; for a unit with no SunSpec map, the
identity guards of the shipped register profiles are asked (one read per distinct
identification register) and the profiles that accept the device are suggested.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from agent.devices.identify import suggest
from agent.devices.sunspec import scan
from agent.errors import TerrilError
from agent.modbus.pool import LinkPool


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", metavar="HOST[:PORT]", help="inverter, datalogger or gateway (port 502 by default)")
    parser.add_argument("--unit", type=int, action="append", metavar="N",
                        help="Modbus unit id to look at (repeatable; default 1)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each answer (default 3)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or "]" in port:  # no port, or a bare IPv6 address
        return address.strip("[]"), 502
    return host.strip("[]"), int(port)


async def scan_units(host: str, port: int, units: list[int], timeout: float) -> list[dict[str, Any]]:
    pool = LinkPool(source="scan")
    found: list[dict[str, Any]] = []
    try:
        link = pool.tcp(host, port, timeout)
        for unit in units:
            reader = pool.unit(link, unit)
            try:
                devices = await scan(reader)
            except TerrilError as exc:
                entry: dict[str, Any] = {"unit": unit, "error": str(exc)}
                profiles = await suggest(reader)
                if profiles:
                    entry["profiles"] = [{"driver": p.profile, "model": p.model, "found": p.shown} for p in profiles]
                found.append(entry)
                continue
            for d in devices:
                found.append({
                    "unit": unit,
                    "base": d.base,
                    "logical_device": d.logical_index,
                    "kind": d.kind,
                    **d.identity.to_dict(),
                    "models": [{"id": m.id, "length": m.length, "address": m.address} for m in d.models],
                })
    finally:
        await pool.close()
    return found


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        host, port = _split(args.address)
    except ValueError:
        print(f"scan: {args.address!r} is not HOST or HOST:PORT", file=sys.stderr)
        return 2
    units = args.unit or [1]
    found = asyncio.run(scan_units(host, port, units, args.timeout))
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        for entry in found:
            where = f"{host}:{port} unit {entry['unit']}"
            if "error" in entry:
                if "profiles" in entry:
                    print(f"{where}: no SunSpec map; a register profile fits:")
                    for fit in entry["profiles"]:
                        print(f"    driver: {fit['driver']:<16} ({fit['found']})")
                else:
                    print(f"{where}: nothing found ({entry['error']})")
                continue
            models = ", ".join(f"{m['id']} (L={m['length']})" for m in entry["models"])
            print(f"{where}, SunSpec map at {entry['base']}, logical device {entry['logical_device']}: "
                  f"{entry['kind'] or 'unknown kind'}")
            for key in ("manufacturer", "model", "serial", "firmware", "rated_power_w"):
                if key in entry:
                    print(f"    {key:<14} {entry[key]}")
            print(f"    models         {models}")
    return 0 if any("error" not in e or "profiles" in e for e in found) else 1
