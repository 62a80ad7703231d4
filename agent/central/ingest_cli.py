"""``terril ingest -c /etc/terril/ingest.yaml``: run the central ingest until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from agent.errors import ConfigError

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="ingest config (YAML)")


def run(args: argparse.Namespace) -> int:
    from agent.central.config import load_ingest_config
    from agent.central.ingest import Ingest

    try:
        config = load_ingest_config(args.config)
    except ConfigError as exc:
        print(exc.report("ingest configuration"), file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Ingest(config).run(stop)
    return 0
