"""``terril simulate``: serve simulated inverters and meters over Modbus until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agent.errors import ConfigError
from agent.sim.config import build_servers, describe, load_config
from agent.sim.server import SimServer

log = logging.getLogger("agent.sim")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="simulator YAML, e.g. config/simulator.example.yaml"
    )


async def _serve(servers: list[SimServer], time_factor: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[SimServer] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
        log.info("simulating (time x%g): %s", time_factor, describe(servers))
        await stop.wait()
    finally:
        for server in reversed(started):
            await server.stop()
        log.info("simulator stopped")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("simulator configuration"), file=sys.stderr)
        return 2
    servers = build_servers(cfg)
    try:
        asyncio.run(_serve(servers, cfg.time_factor))
    except (OSError, RuntimeError) as exc:
        log.error("simulator cannot serve: %s", exc)
        return 1
    return 0
