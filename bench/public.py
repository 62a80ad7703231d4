"""Public site: build time for a large town, and first contentful paint in a real browser; prints JSON.

Measured in one run, on one machine, with the same InfluxDB:

* ``queries_s``: the InfluxDB queries alone (``agent.public.query.fetch_facts``)
  for 100 sites x 400 days of ``energy_daily`` rows plus today's raw
  readings — the floor a build cannot go under;
* ``build_s``: the whole ``build_site`` (queries, view, 200+ pages, open data,
  atomic publish); target ≤ 2 s, and ``build_over_queries`` says what the
  rendering adds;
* ``fcp_ms``: first contentful paint of ``index.html`` served from a local
  HTTP server to headless Debian Chromium (target ≤ 500 ms), next to
  ``fcp_baseline_ms``, the paint of a one-line page in the same browser.

Median of ``--runs`` (default 5). Usage: ``.venv/bin/python bench/public.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.central.config import parse_ingest_config
from agent.central.influxql import InfluxQLClient
from agent.central.inventory import load_inventory
from agent.central.rollup import day_start_ms
from agent.public.build import build_site
from agent.public.query import fetch_facts
from tests.fixtures.influx import InfluxServer

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
AT = datetime(2026, 6, 21, 15, 0, tzinfo=ZONE)
DB = "terril"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OWNERS = ("commune", "cooperative", "citizen")


def seed(influx: InfluxServer, sites: int, days: int) -> None:
    lines: list[str] = []
    today = AT.date()
    for d in range(days, 0, -1):
        day = today - timedelta(days=d)
        ms = day_start_ms(day, ZONE)
        total = 0.0
        for s in range(sites):
            wh = 20_000.0 + 500 * s + 3000 * (d % 7)
            total += wh
            lines.append(f"energy_daily,site=site-{s:03d} production_wh={wh} {ms}")
        lines.append(f"energy_daily,site=_territory production_wh={total},reference_consumption_wh=98000000.0 {ms}")
    midnight = day_start_ms(today, ZONE)
    for s in range(sites):
        for k in range(6 * 12, 15 * 12 + 1):  # every 5 min from 06:00 to 15:00
            ms = midnight + k * 300_000
            lines.append(f"inverter,site=site-{s:03d},device=ond-1 ac_energy_wh={1e6 + k * 400.0},"
                         f"ac_power_w={4800.0} {ms}")
    for k in range(0, len(lines), 20000):
        status, body = influx.write_lines(DB, lines[k:k + 20000])
        if status != 204:
            raise RuntimeError(f"seed: HTTP {status} {body!r}")


def inventory_yaml(sites: int) -> str:
    out = ["territory:", "  name: Grande-Ville", "  communes:", '    - {insee: "62528", name: Grande-Ville}',
           "  target: {year: 2050, share: 1.0}", "sites:"]
    for s in range(sites):
        out += [f"  - slug: site-{s:03d}", f"    name: Bâtiment {s}", f"    owner: {OWNERS[s % 3]}",
                "    arrays:", f"      - {{name: toit, inverter: ond-1, peak_power_w: {9000.0 + 100 * s}, "
                f"panels: {200 if s == 0 else 30},"
                " tilt: 20.0, azimuth: 180.0}"]
    out += ["newborn_panels:", "  site: site-000", "  register: newborns.csv"]
    return "\n".join(out) + "\n"


def newborns_csv(count: int) -> str:
    rows = ["panel,born,first_name,consent"]
    for i in range(1, count + 1):
        born = date(2025, 1, 1) + timedelta(days=i * 3)
        rows.append(f"{i},{born},Enfant{i},{'true' if i % 2 else 'false'}")
    return "\n".join(rows) + "\n"


def median_time(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def first_paint(folder: Path, runs: int) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    (folder / "baseline.html").write_text("<!DOCTYPE html><html lang=en><title>b</title><p>baseline</p>",
                                          encoding="utf-8")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    fcp_js = "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
    results: dict[str, list[float]] = {"index.html": [], "baseline.html": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(runs):
                for name in results:
                    page = browser.new_page(viewport={"width": 390, "height": 844})
                    page.goto(base + name, wait_until="load")
                    page.wait_for_function(f"({fcp_js}) !== null", timeout=10_000)
                    results[name].append(float(page.evaluate(fcp_js)))
                    page.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return statistics.median(results["index.html"]), statistics.median(results["baseline.html"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--newborns", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="terril-bench-public-") as tmp_name:
        tmp = Path(tmp_name)
        influx = InfluxServer(tmp).start()
        try:
            influx.create_database(DB)
            seed(influx, args.sites, args.days)
            (tmp / "sites.yaml").write_text(inventory_yaml(args.sites), encoding="utf-8")
            (tmp / "newborns.csv").write_text(newborns_csv(args.newborns), encoding="utf-8")
            inventory = load_inventory(tmp / "sites.yaml")
            config = parse_ingest_config({"influxdb": {"api": "v1", "url": influx.url, "database": DB},
                                          "rollup": {"timezone": TZ}})
            client = InfluxQLClient(influx.url, DB, timeout=60)
            out = tmp / "site"
            build_site(config, out, at=AT, inventory=inventory, client=client)  # warm InfluxDB's caches
            queries_s = median_time(lambda: fetch_facts(client, AT, TZ, host_site="site-000",
                                                        host_since=date(2025, 1, 4)), args.runs)
            built: list[Any] = []
            build_s = median_time(lambda: built.append(build_site(config, out, at=AT, inventory=inventory,
                                                                   client=client)), args.runs)
            index_bytes = (out / "index.html").stat().st_size
            fcp_ms, fcp_baseline_ms = first_paint(out.resolve(), args.runs)
        finally:
            influx.stop()
    result = {
        "bench": "public",
        "sites": args.sites,
        "days": args.days,
        "files": built[-1].files,
        "queries_s": round(queries_s, 4),
        "build_s": round(build_s, 4),
        "build_over_queries": round(build_s / queries_s, 2),
        "build_target_s": 2.0,
        "index_bytes": index_bytes,
        "fcp_ms": round(fcp_ms, 1),
        "fcp_baseline_ms": round(fcp_baseline_ms, 1),
        "fcp_over_baseline": round(fcp_ms / fcp_baseline_ms, 2) if fcp_baseline_ms else None,
        "fcp_target_ms": 500,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
