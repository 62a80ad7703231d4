"""``terril rollup --since DATE [--until DATE] -c ingest.yaml``: (re)compute daily energy.

For a backfill after an import of old data, a long outage of an agent, or a
change of timezone. Re-running over days already computed is harmless: the
rows are overwritten with the same timestamps (see ``agent.central.rollup``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, timedelta
from zoneinfo import ZoneInfoNotFoundError

log = logging.getLogger(__name__)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-10-25") from None


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="ingest config file (YAML)")
    parser.add_argument("--since", type=_date, required=True, help="first local day to compute (YYYY-MM-DD)")
    parser.add_argument("--until", type=_date, help="last local day to compute (default: today)")
    parser.add_argument("--timezone", help="override rollup.timezone of the config (e.g. Europe/Paris)")


def run(args: argparse.Namespace) -> int:
    from agent.central.config import load_ingest_config
    from agent.central.influxql import InfluxQueryError, InfluxUnavailable
    from agent.central.performance.daily import performance_job_for
    from agent.central.rollup import client_from_config, line_writer, run_rollup, today_in
    from agent.errors import ConfigError

    try:
        config = load_ingest_config(args.config)
    except ConfigError as exc:
        print(exc.report("ingest configuration"), file=sys.stderr)
        return 2
    tz = args.timezone or config.rollup.timezone
    try:
        until = args.until or today_in(tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"terril rollup: timezone {tz!r} is not a known IANA zone", file=sys.stderr)
        return 2
    if until < args.since:
        print(f"terril rollup: --until {until} is before --since {args.since}", file=sys.stderr)
        return 2
    client = client_from_config(config.influxdb)
    try:
        written = run_rollup(
            client,
            line_writer(client),
            args.since,
            until,
            tz,
            config.rollup.territory_consumption_wh_per_year,
        )
        print(f"energy_daily: {written} point(s) written for {args.since}..{until} ({tz})")
        job = performance_job_for(config, client, line_writer(client), tz)
        last_complete = min(until, today_in(tz) - timedelta(days=1))
        if job is not None and last_complete >= args.since:
            written = job.run(args.since, last_complete)
            print(f"performance_daily, string_daily, technology_daily: {written} point(s) written for "
                  f"{args.since}..{last_complete} (complete days)")
    except (InfluxQueryError, InfluxUnavailable) as exc:
        print(f"terril rollup: {exc}", file=sys.stderr)
        return 1
    return 0
