"""``terril territory import|report -c ingest.yaml``: open data per commune into InfluxDB, and the balance out.

``import FILE…`` reads every file first. If any has an error (unknown format,
missing column, a number that does not parse), it prints one ``file:line:
problem`` line each, writes nothing at all and exits 2: what was imported
before stays as it was. Otherwise it writes the figures, says per commune and
year whether they are new, unchanged (the same file again) or replace those
of an older file, and refreshes the ``territory_balance`` rows.

``report [--json]`` prints the balance per commune and year, then the
territory's total; ``--json`` is the contract (DESIGN.md, "Territory open data").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import",
                         help="import open-data files (Agence ORE, Enedis, ODRÉ) for the inventory's communes")
    imp.add_argument("-c", "--config", required=True, help="ingest config file (YAML) naming the inventory")
    imp.add_argument("files", nargs="+", metavar="FILE", help="CSV files as downloaded from the portals")
    imp.add_argument("--year", type=int, help="year of an ODRÉ register file (default: from its name or dates)")
    rep = sub.add_parser("report", help="the energy balance per commune and year")
    rep.add_argument("-c", "--config", required=True, help="ingest config file (YAML) naming the inventory")
    rep.add_argument("--json", action="store_true", help="JSON (the contract) instead of a table")


def run(args: argparse.Namespace) -> int:
    from agent.central.config import load_ingest_config
    from agent.central.influxql import InfluxQueryError, InfluxUnavailable
    from agent.central.inventory import inventory_for
    from agent.central.rollup import client_from_config
    from agent.errors import ConfigError

    try:
        config = load_ingest_config(args.config)
        inventory = inventory_for(config)
    except ConfigError as exc:
        print(exc.report("configuration"), file=sys.stderr)
        return 2
    if inventory is None:
        print(f"terril territory: {args.config} names no inventory (inventory: /etc/terril/sites.yaml): "
              "the communes come from it", file=sys.stderr)
        return 2
    from agent.central.territory.report import Scope

    scope = Scope.of(inventory)
    client = client_from_config(config.influxdb)
    try:
        if args.action == "import":
            return _import(args, scope, client)
        return _report(args, scope, client)
    except (InfluxQueryError, InfluxUnavailable, ValueError) as exc:
        print(f"terril territory {args.action}: {exc}", file=sys.stderr)
        return 1


def _import(args: argparse.Namespace, scope: Any, client: Any) -> int:
    from agent.central.rollup import line_writer
    from agent.central.territory.parse import parse_file
    from agent.central.territory.report import write_balance
    from agent.central.territory.store import plan_import, read_records, write_plan

    communes = [c for c, _ in scope.communes]
    parsed = [parse_file(Path(f), communes, year=args.year) for f in args.files]
    bad = [p for p in parsed if not p.ok]
    for p in parsed:
        for line in p.warnings:
            print(f"warning: {line}", file=sys.stderr)
    if bad:
        for p in bad:
            for line in p.errors:
                print(line, file=sys.stderr)
            if p.more_errors:
                print(f"{p.path}: … and more errors (stopped after {len(p.errors)})", file=sys.stderr)
        print(f"terril territory import: {len(bad)} file(s) with errors; nothing imported", file=sys.stderr)
        return 2
    for p in parsed:
        assert p.format is not None
        years = p.years
        span = f"{years[0]}-{years[-1]}" if len(years) > 1 else (str(years[0]) if years else "none")
        extra = f", year from {p.year_from}" if p.year_from else ""
        print(f"{p.path}: {p.format.title}: {p.rows} rows, {p.kept} of the inventory's communes, "
              f"year(s) {span}{extra}")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    plan = plan_import(parsed, read_records(client, scope.timezone), scope.timezone, now)
    written = write_plan(client, line_writer(client), plan, scope.timezone)
    for o in plan.outcomes:
        b = o.block
        what = f"  {b.commune} {b.year} {b.kind} ({b.source})"
        masked = f"; unknown (masked in the file, not 0): {', '.join(o.masked)}" if o.masked else ""
        if o.status == "new":
            print(f"{what}: imported from {o.file}{masked}")
        elif o.status == "unchanged":
            print(f"{what}: unchanged ({o.file} is the file already imported"
                  f"{' as ' + o.previous.file if o.previous and o.previous.file != o.file else ''})")
        else:
            prev = o.previous
            print(f"{what}: {o.file} replaces the figures of {prev.file if prev else '?'}"
                  f" imported {prev.imported_at if prev else '?'}{masked}")
    report = write_balance(client, line_writer(client), scope)
    print(f"{written} point(s) written; territory_balance refreshed for {len(report.years)} year(s)")
    return 0


def _report(args: argparse.Namespace, scope: Any, client: Any) -> int:
    from agent.central.territory.report import read_report

    report = read_report(client, scope)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    return 0


def _mwh(value: float | None, complete: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value / 1e6:,.1f}{'' if complete else '*'}".replace(",", " ")


def _share(value: float | None, complete: bool) -> str:
    """A share from an incomplete consumption or production is marked too: it is not the truth."""
    return "—" if value is None else f"{value:.1%}{'' if complete else '*'}"


SHORT_SOURCES = {"agence_ore": "ORE", "enedis_consumption": "Enedis", "enedis_production": "Enedis",
                 "odre_register": "ODRÉ"}


def _source(text: str | None) -> str:
    """``agence_ore+enedis_consumption`` -> ``ORE+Enedis`` (the JSON has the full names)."""
    return "+".join(SHORT_SOURCES.get(s, s) for s in (text or "").split("+") if s)


def format_table(report: Any) -> str:
    """The report as a text table, one block per commune then the total; ``*`` marks an incomplete figure."""
    lines = [f"Energy balance of {report.scope.name} (MWh; * = incomplete: a sector or commune is masked "
             "or missing; — = no data)"]
    head = (f"{'year':>4}  {'electricity':>12} {'source':<10} {'gas':>10} {'renewable':>10} {'figure':<17} "
            f"{'installed kW':>12} {'monitored':>10} {'share':>7}")

    def block(title: str, balances: Any) -> None:
        lines.extend(["", title, head])
        if not balances:
            lines.append("  no data")
        for b in balances:
            share = _share(b.renewable_share, b.consumption.complete and b.production.complete)
            installed = b.installed_power.total
            lines.append(
                f"{b.year:>4}  {_mwh(b.consumption.total, b.consumption.complete):>12} "
                f"{_source(b.consumption.source):<10} {_mwh(b.gas.total, b.gas.complete):>10} "
                f"{_mwh(b.production.total, b.production.complete):>10} {b.production_figure or '':<17} "
                f"{'—' if installed is None else f'{installed / 1e3:,.0f}'.replace(',', ' '):>12} "
                f"{_mwh(b.monitored_production_wh):>10} {share:>7}")

    for insee, name in report.scope.communes:
        block(f"{name} ({insee})", report.communes[insee])
    block(f"Total: {report.scope.name}", report.territory)
    if report.scope.target_year is not None:
        latest = report.latest()
        lines.append("")
        lines.append(f"Target: {report.scope.target_share:.0%} in {report.scope.target_year}"
                     + (f" (baseline {report.scope.baseline_year}: "
                        f"{'—' if report.baseline_share is None else f'{report.baseline_share:.1%}'})"
                        if report.scope.baseline_year else ""))
        t = next((t for t in report.trajectory if latest and t.year == latest.year), None)
        if t is not None and t.missing_wh is not None:
            more = ""
            if t.missing_peak_power_w is not None:
                more = f" = {t.missing_peak_power_w / 1e3:,.0f} kWp of roofs".replace(",", " ")
                more += f" at {report.fleet_yield_kwh_per_kwp:.0f} kWh/kWp/year"
                if t.missing_roofs is not None:
                    more += f" = {t.missing_roofs:,.0f} roofs of {report.median_roof_w / 1e3:.0f} kWp".replace(",", " ")
            lines.append(f"Missing in {t.year}: {_mwh(t.missing_wh)} MWh/year{more}")
    return "\n".join(lines)
