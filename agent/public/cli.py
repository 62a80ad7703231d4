"""``terril public build -c ingest.yaml --out DIR [--at ISO-TIME]``: write the public site once.

Exit 0 when the site was published, 2 for a bad configuration or argument,
1 when InfluxDB failed (the previous site stays in place).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-03-31T16:00:00+02:00") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (write it like 2026-03-31T16:00:00+02:00)")
    return moment


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build the static public site into DIR",
                           description="build the static public site into DIR (atomically: DIR is swapped)")
    build.add_argument("-c", "--config", required=True, help="ingest config file (YAML)")
    build.add_argument("--out", help="the site's folder (default: public.out of the config)")
    build.add_argument("--at", type=_instant, help="build the site as it was at this instant (ISO 8601 with offset)")


def run(args: argparse.Namespace) -> int:
    from agent.central.config import load_ingest_config
    from agent.central.influxql import InfluxQueryError, InfluxUnavailable
    from agent.errors import ConfigError
    from agent.public.build import build_site

    try:
        config = load_ingest_config(args.config)
    except ConfigError as exc:
        print(exc.report("ingest configuration"), file=sys.stderr)
        return 2
    public = getattr(config, "public", None)
    out = args.out or (public.out if public is not None else None)
    if not out:
        print("terril public build: give --out DIR (or public.out in the config)", file=sys.stderr)
        return 2
    try:
        built = build_site(config, out, at=args.at)
    except ConfigError as exc:
        print(exc.report("inventory"), file=sys.stderr)
        return 2
    except (InfluxQueryError, InfluxUnavailable) as exc:
        print(f"terril public build: {exc} (the previous site is unchanged)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"terril public build: cannot write the site to {out}: {exc}", file=sys.stderr)
        return 1
    print(f"public site: {built.files} file(s) written to {built.build}, {out} points to it")
    return 0
