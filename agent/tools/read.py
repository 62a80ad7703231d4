"""``terril read -c FILE [--json]``: poll every configured device once and show what would be published.

With ``--json`` the output is the ``readings`` payload exactly as the agent
publishes it (same field names, same units), so an installer sees what Grafana
will get before the agent is even started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from agent.edge.config import AgentConfig, load_agent_config
from agent.edge.fleet import build_pollers
from agent.edge.poller import DevicePoller, PollResult
from agent.errors import ConfigError
from agent.modbus.pool import LinkPool
from agent.schema import READING_MEASUREMENT, Reading, readings_payload


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="agent configuration file (YAML)")
    parser.add_argument("--json", action="store_true", help="print the readings payload as published")


async def poll_once(config: AgentConfig) -> list[tuple[DevicePoller, PollResult | None]]:
    """Discover and poll every configured device once, in config order."""
    pool = LinkPool(source=str(config.site.slug))
    try:
        pollers = build_pollers(config, pool)
        return [(p, await p.poll()) for p in pollers]
    finally:
        await pool.close()


def _format_value(kind: str, name: str, value: float | int) -> str:
    spec = READING_MEASUREMENT[kind].field(name)
    text = f"{value:.10g}" if isinstance(value, float) else str(value)
    return f"{text} {spec.unit}".rstrip()


def _print_reading(reading: Reading) -> None:
    label = f"  {reading.kind}" + (f" string {reading.string}" if reading.string else "")
    print(label)
    for name, value in reading.fields.items():
        print(f"    {name:<24} {_format_value(reading.kind, name, value)}")


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        config = load_agent_config(args.config)
    except ConfigError as exc:
        print(exc.report("configuration"), file=sys.stderr)
        return 2
    results = asyncio.run(poll_once(config))
    failed = 0
    readings: list[dict[str, Any]] = []
    for poller, result in results:
        if result is None:
            failed += 1
            print(f"{poller.name}: {poller.stats.status or 'no answer'}: {poller.stats.last_error}", file=sys.stderr)
            continue
        readings.extend(r.to_dict() for r in result.readings)
        if not args.json:
            ident = poller.identity
            what = " ".join(x for x in (ident.manufacturer, ident.model) if x) if ident else ""
            serial = f", serial {ident.serial}" if ident and ident.serial else ""
            print(f"{poller.name} ({what or poller.driver.kind}{serial}): {poller.stats.status}, "
                  f"{poller.stats.requests_last_poll} Modbus request(s)")
            for reading in result.readings:
                _print_reading(reading)
            for event in result.events:
                print(f"  event {event.code}: {event.text}")
    if args.json:
        print(json.dumps(readings_payload(config.site.slug, readings), ensure_ascii=False, indent=2))
    return 1 if failed else 0
