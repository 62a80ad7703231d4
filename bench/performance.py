"""Time of the yield analytics (issue 11) next to the time of their InfluxDB queries alone; prints JSON.

Two cases, each in a fresh InfluxDB 1.6.7 on a free port, counters every 15 minutes:

* ``fleet_day``: 1,000 inverters (100 sites of 10, one commune), each with its own
  orientation (tilt 10-40°, azimuth 90-270°: the worst case, no two alike), one
  day analysed as the 5-minute job does it (the day plus the rule's 14-day lookback);
* ``inverter_year``: 1 inverter (and 2 peers), 365 days analysed as ``terril
  rollup --since`` does it (chunks of 31 days, each with its lookback).

``queries_s`` is ``fetch_energies`` alone over the same days (the InfluxDB part),
measured in the same run; ``total_s`` is ``PerformanceJob.run`` (queries, pvlib,
analytics, writing the rows) in a process that has imported pvlib already
(``pvlib_import_s``, once per ingest process, is reported apart).
Targets: fleet_day <= 30 s, inverter_year <= 10 s.

Usage: ``.venv/bin/python bench/performance.py``
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.central.influxql import InfluxQLClient
from agent.central.performance.daily import PerformanceJob, fetch_energies
from agent.central.rollup import line_writer, local_days
from tests.fixtures.influx import InfluxServer
from tests.performance_town import FakeArray, FakeInventory, FakeSite

TZ = "Europe/Paris"
DB = "terril"


def _counter_lines(site: str, device: str, first: date, days: int, peak_w: float) -> list[str]:
    """A bell-shaped day every day, 15-minute counter readings (enough for the analytics)."""
    zone = ZoneInfo(TZ)
    lines = []
    counter = 1_000_000.0
    for i in range(days):
        d = first + timedelta(days=i)
        t0 = int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)
        for k in range(96):
            hour = k / 4
            p = max(0.0, peak_w * 0.7 * (1 - ((hour - 13.5) / 7.5) ** 2))
            counter += p * 0.25
            lines.append(f"inverter,device={device},site={site} ac_energy_wh={counter:.1f} {t0 + k * 900_000}")
    return lines


def _load(influx: InfluxServer, lines: list[str]) -> None:
    for i in range(0, len(lines), 20000):
        status, body = influx.write_lines(DB, lines[i:i + 20000])
        assert status == 204, body


def _case(tmp: Path, name: str, inventory: FakeInventory, first: date, last: date, lines: list[str],
          target_s: float) -> dict[str, object]:
    influx = InfluxServer(tmp / name).start()
    try:
        influx.create_database(DB)
        _load(influx, lines)
        client = InfluxQLClient(influx.url, DB)
        job = PerformanceJob(client, line_writer(client), inventory, TZ)
        t = time.perf_counter()
        written = job.run(first, last)
        total = time.perf_counter() - t
        # The queries alone, for the same days and chunks (lookback included).
        t = time.perf_counter()
        day = first
        while day <= last:
            end = min(last, day + timedelta(days=30))
            fetch_energies(client, local_days(day - timedelta(days=job.rules.lookback_days), end, TZ))
            day = end + timedelta(days=1)
        queries = time.perf_counter() - t
    finally:
        influx.stop()
    return {"case": name, "points_written": written, "total_s": round(total, 2), "queries_s": round(queries, 2),
            "ratio_total_to_queries": round(total / queries, 2) if queries else None, "target_s": target_s,
            "pass": total <= target_s}


def main() -> int:
    rng = random.Random(11)
    day = date(2026, 6, 15)
    sites = []
    lines: list[str] = []
    for s in range(100):
        arrays = []
        for k in range(10):
            device = f"ond-{k}"
            peak = 5000.0 + 1000.0 * rng.randint(0, 20)
            arrays.append(FakeArray(f"a{k}", device, peak, float(rng.randint(10, 40)),
                                    float(rng.randint(90, 270)), rng.choice(["mono-PERC", "HJT", "poly"])))
            lines += _counter_lines(f"site-{s}", device, day, 1, peak)
        sites.append(FakeSite(f"site-{s}", "62528", 50.45 + s * 1e-4, 2.79, tuple(arrays)))
    # pvlib (with scipy) takes seconds to import, once per process: the ingest is long-lived, so the
    # cases are timed in a warm process and the import is reported on its own.
    t = time.perf_counter()
    import pvlib.location  # noqa: F401
    pvlib_import_s = round(time.perf_counter() - t, 2)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(_case(Path(tmp), "fleet_day", FakeInventory(tuple(sites)), day, day, lines, 30.0))
        first = date(2025, 1, 1)
        year_sites = []
        year_lines: list[str] = []
        for s, az in enumerate((180.0, 150.0, 210.0)):
            year_sites.append(FakeSite(f"s{s}", "62528", 50.45, 2.79,
                                       (FakeArray("toit", "ond-1", 9000.0, 30.0, az, "mono-PERC"),)))
            year_lines += _counter_lines(f"s{s}", "ond-1", first, 365, 9000.0)
        results.append(_case(Path(tmp), "inverter_year", FakeInventory(tuple(year_sites)), first,
                             first + timedelta(days=364), year_lines, 10.0))
    print(json.dumps({"bench": "performance", "pvlib_import_s": pvlib_import_s, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
