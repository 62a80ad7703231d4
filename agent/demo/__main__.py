"""``python -m agent.demo``: the command line of ``make demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from agent.demo.run import Demo, DemoOptions
from agent.demo.town import TOWN, choose_sites


def _start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date-time like 2025-06-21T12:00:00+02:00") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2025-06-21T12:00:00+02:00")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent.demo",
        description="Simulate a small town's solar roofs end to end: simulator, Mosquitto, one agent per "
        "site, the ingest and InfluxDB, with a live summary. Ctrl-C stops everything it started.",
    )
    p.add_argument("--sites", type=int, metavar="N", help=f"simulate the first N sites (1..{len(TOWN)}, default all)")
    p.add_argument("--time-factor", type=_positive, default=1.0, metavar="F",
                   help="simulated seconds per real second (default 1; 60 = an hour a minute)")
    p.add_argument("--start", type=_start, metavar="ISO",
                   help="simulated clock at start, e.g. 2025-06-21T12:00:00+02:00 (default: now, or today's "
                   "noon when the sun is down)")
    p.add_argument("--duration", type=_positive, metavar="SECONDS", help="stop by itself after SECONDS")
    p.add_argument("--every", type=_positive, default=5.0, metavar="SECONDS",
                   help="seconds between two summaries (default 5)")
    p.add_argument("--run-dir", type=Path, default=Path("run/demo"), metavar="DIR",
                   help="configs, logs, spools and databases (default run/demo)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sites = choose_sites(args.sites)
    except ValueError as exc:
        print(f"python -m agent.demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        sites=sites,
        run_dir=args.run_dir.resolve(),
        time_factor=args.time_factor,
        start=args.start,
        duration_s=args.duration,
        every_s=args.every,
    )
    return Demo(options).run()


if __name__ == "__main__":
    sys.exit(main())
