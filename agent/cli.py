"""The ``terril`` command: one sub-command per module, imported only when used.

Lazy imports keep ``terril agent`` on a Raspberry Pi from loading the central
parts (influxdb-client is not even installed there).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# sub-command -> module providing ``register(parser)`` and ``run(args) -> int``
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.edge.daemon", "run the edge agent (poll, spool, publish)"),
    "check-config": ("agent.config_cli", "validate an agent or ingest config file"),
    "scan": ("agent.tools.scan", "list the SunSpec devices answering at HOST[:PORT]"),
    "read": ("agent.tools.read", "poll every configured device once and print the readings"),
    "simulate": ("agent.sim.cli", "serve simulated inverters and meters over Modbus"),
    "ingest": ("agent.central.ingest_cli", "run the central ingest (MQTT -> InfluxDB)"),
    "rollup": ("agent.central.rollup_cli", "compute daily energy rollups (backfill)"),
    "broker": ("agent.central.broker", "central Mosquitto helpers (add-site)"),
    "territory": ("agent.central.territory.cli", "open data per commune: import files, report the energy balance"),
    "public": ("agent.public.cli", "build the public static site (public build)"),
}


def build_parser(argv_command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="terril", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == argv_command:  # import only the module that will run
            importlib.import_module(module_name).register(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    args = build_parser(command).parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
