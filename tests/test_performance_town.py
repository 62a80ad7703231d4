"""Yield analytics end to end: a synthetic town in a real InfluxDB 1.6.7, the real job, the real dashboard and rules.

The town (``tests/performance_town.py``): 8 inverters, 4 orientations, 3 sites
of one commune, 30 days of counters shaped by a clear-sky simulation x a
weather factor shared by the town x noise. ``ecole/ond-3`` loses 20 % from day
10; string 3 of ``mairie/ond-1`` dies on day 20.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.central.influxql import InfluxQLClient
from agent.central.performance.analytics import RuleSettings
from agent.central.performance.daily import PerformanceJob
from agent.central.rollup import line_writer
from grafana import build
from tests.fixtures.influx import InfluxServer
from tests.grafana_eval import evaluate_rule, has_data, interval_s, panel_range, render
from tests.performance_town import (
    DAYS,
    DEAD_FROM,
    DEAD_STRING,
    DEGRADED,
    DEGRADED_FROM,
    TZ,
    Town,
    build_town,
    local_midnight,
    sunny,
    town_inventory,
)

DB = "terril"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def town() -> Town:
    return build_town()


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory, town: Town) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("perf-influx")).start()
    try:
        server.create_database(DB)
        for i in range(0, len(town.lines), 20000):
            status, body = server.write_lines(DB, town.lines[i:i + 20000])
            assert status == 204, body
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def analysed(influx: InfluxServer, town: Town) -> int:
    client = InfluxQLClient(influx.url, DB)
    job = PerformanceJob(client, line_writer(client), town_inventory(), TZ)
    return job.run(town.days[0], town.days[-1])


Rows = dict[tuple[str, ...], list[dict[str, Any]]]


def _per_day(influx: InfluxServer, measurement: str, fields: str, group: str) -> Rows:
    answer = influx.query(f'SELECT {fields} FROM "{measurement}" GROUP BY {group}', DB)
    out = {}
    for s in answer["results"][0].get("series", []):
        key = tuple(s["tags"][t.strip().strip('"')] for t in group.split(","))
        out[key] = [dict(zip(s["columns"], row, strict=True)) for row in s["values"]]
    return out


@pytest.fixture(scope="module")
def perf(influx: InfluxServer, analysed: int) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    return _per_day(influx, "performance_daily", "*", '"site", "device"')


def test_rows_are_stamped_at_local_midnight_one_per_day(perf: dict[tuple[str, ...], list[dict[str, Any]]],
                                                         town: Town, analysed: int) -> None:
    midnights = [int(local_midnight(d).timestamp() * 1000) for d in town.days]
    assert len(perf) == 8 + 3
    for key, rows in perf.items():
        assert [r["time"] for r in rows] == midnights, key
    assert analysed == (8 + 3) * DAYS + 6 * DAYS + 3 * DAYS  # + strings + technologies


def test_specific_yield_equals_the_truth(perf: dict[tuple[str, ...], list[dict[str, Any]]], town: Town) -> None:
    for device, truth in town.energy_wh.items():
        rows = perf[device]
        for d, row in enumerate(rows):
            assert row["energy_wh"] == pytest.approx(truth[d], rel=1e-6), (device, d)
            assert row["yield_kwh_per_kwp"] == pytest.approx(truth[d] / town.peak_w[device], rel=0.005)
    for site in ("mairie", "ecole", "salle"):
        peak = sum(p for (s, _), p in town.peak_w.items() if s == site)
        for d, row in enumerate(perf[(site, "_site")]):
            truth = sum(e[d] for (s, _), e in town.energy_wh.items() if s == site)
            assert row["yield_kwh_per_kwp"] == pytest.approx(truth / peak, rel=0.005)


def test_degraded_inverter_index_and_flag(perf: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    rows = perf[DEGRADED]
    for d, row in enumerate(rows):
        if d >= DEGRADED_FROM:
            assert row["performance_index"] == pytest.approx(0.80, abs=0.04), d
        else:
            assert row["underperforming"] == 0, d
    flagged = [d for d, row in enumerate(rows) if row["underperforming"] == 1]
    assert flagged and flagged[0] <= 14 and flagged == list(range(flagged[0], DAYS))
    # "since" names the first low sunny day of the episode, day 10, also past the rule's 14-day lookback
    first = int(f"{(datetime(2026, 5, 4) + timedelta(days=DEGRADED_FROM)):%Y%m%d}")
    assert {rows[d]["underperforming_since"] for d in flagged} == {first}
    assert flagged[-1] - DEGRADED_FROM > RuleSettings().lookback_days


def test_healthy_inverters_stay_near_one_and_are_never_flagged(
        perf: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    healthy = [k for k in perf if k[1] != "_site" and k not in (DEGRADED, DEAD_STRING[:2])]
    assert len(healthy) == 6
    for key in healthy:
        for d, row in enumerate(perf[key]):
            assert row["performance_index"] == pytest.approx(1.0, abs=0.06), (key, d)
            assert row["underperforming"] == 0, (key, d)
            assert row["peers"] == 7 and 0.1 < row["clear_sky_ratio"] < 1.2
            assert (row["peers_clear_sky_ratio"] >= 0.4) == sunny(d), (key, d)
    dead = perf[DEAD_STRING[:2]]
    assert all(r["performance_index"] == pytest.approx(1.0, abs=0.06) for r in dead[:DEAD_FROM])
    assert all(r["performance_index"] == pytest.approx(2 / 3, abs=0.05) for r in dead[DEAD_FROM:])
    assert dead[-1]["underperforming"] == 1 and all(r["underperforming"] == 0 for r in dead[:DEAD_FROM])
    assert all(r["underperforming"] == 0 for r in perf[("salle", "_site")])


def test_dead_string_is_found_and_only_it(influx: InfluxServer, analysed: int) -> None:
    strings = _per_day(influx, "string_daily", "*", '"site", "device", "string"')
    assert len(strings) == 6
    for key, rows in strings.items():
        failing = [d for d, r in enumerate(rows) if r.get("failing") == 1]
        if key == DEAD_STRING:
            sunny_after = [d for d in range(DEAD_FROM, DAYS) if sunny(d)]
            assert failing and failing[0] == sunny_after[1], failing  # its 2nd sunny day dead
            assert rows[-1]["sibling_ratio"] < 0.01
        else:
            assert not failing, key
            assert all(0.9 < r["sibling_ratio"] < 1.1 for r in rows[:DEAD_FROM]), key


def test_technology_rows(influx: InfluxServer, analysed: int, town: Town) -> None:
    tech = _per_day(influx, "technology_daily", "*", '"technology"')
    assert set(tech) == {("HJT",), ("mono-PERC",), ("poly",)}
    hjt_devices = [("mairie", "ond-3"), ("salle", "ond-1")]
    for d, row in enumerate(tech[("HJT",)]):
        energy = sum(town.energy_wh[k][d] for k in hjt_devices)
        assert row["energy_wh"] == pytest.approx(energy, rel=1e-6)
        assert row["yield_kwh_per_kwp"] == pytest.approx(energy / 29000.0, rel=1e-6)


def test_rerun_is_idempotent(influx: InfluxServer, town: Town, perf: dict[tuple[str, ...], list[dict[str, Any]]],
                             caplog: pytest.LogCaptureFixture) -> None:
    """The daily job's window (the last day) writes what the backfill wrote; inventory gaps are logged once."""
    client = InfluxQLClient(influx.url, DB)
    inventory = town_inventory()
    # ecole loses its position, salle/ond-2 its array: no index invented for them, everything else still runs
    from dataclasses import replace
    sites = list(inventory.sites)
    sites[2] = replace(sites[2], arrays=sites[2].arrays[:1])
    job = PerformanceJob(client, lambda points: None, type(inventory)(tuple(sites)), TZ)
    with caplog.at_level(logging.WARNING, logger="agent.central.performance.daily"):
        rows = [r for chunk in job.compute(town.days[-1], town.days[-1]) for r in chunk]
        rows += [r for chunk in job.compute(town.days[-2], town.days[-1]) for r in chunk]
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1 and "inverter ond-2 of site salle is in no array" in told[0], told
    by_key = {(r.tags["site"], r.tags["device"]): r.fields for r in rows
              if r.measurement == "performance_daily" and r.day.day == town.days[-1]}
    assert "performance_index" not in by_key[("salle", "ond-2")] and "yield_kwh_per_kwp" not in by_key[
        ("salle", "ond-2")]
    same = by_key[DEGRADED]
    assert same["performance_index"] != perf[DEGRADED][-1]["performance_index"]  # peers changed: salle/ond-2 left
    assert same["underperforming"] == 1
    # the last day alone, 19 days into the episode, still names its first day (from the stored row before)
    assert same["underperforming_since"] == perf[DEGRADED][-1]["underperforming_since"] == 20260514


# --------------------------------------------------------------------------- Grafana on the same data


def _dash() -> dict[str, Any]:
    return json.loads((ROOT / "grafana" / "dashboards" / "performance.json").read_text(encoding="utf-8"))


def _rules() -> dict[str, dict[str, Any]]:
    import yaml
    doc = yaml.safe_load((ROOT / "grafana" / "provisioning" / "alerting" / "terril-rules.yaml").read_text("utf-8"))
    return {r["uid"]: r for g in doc["groups"] for r in g["rules"]}


EVAL = local_midnight(datetime(2026, 6, 3).date()) + timedelta(hours=9)
"""The morning after the town's last day (2 June): its rows are the newest."""


def test_every_performance_dashboard_query_returns_data(influx: InfluxServer, analysed: int, town: Town) -> None:
    dash = _dash()
    variables = {"site": DEAD_STRING[0], "device": DEAD_STRING[1]}  # it has strings too
    ran = 0
    for p in dash["panels"]:
        rng = panel_range(dash, p, EVAL)
        for t in p["targets"]:
            answer = influx.query(render(t["query"], rng, interval_s(rng, p.get("interval")), variables), DB)
            assert has_data(answer), p["title"]
            ran += 1
    assert ran == 8
    # the month ranking holds the truth: June has 2 days of the town, sum of the daily yields
    p = next(p for p in dash["panels"] if p["title"].startswith("Inverters this month"))
    answer = influx.query(render(p["targets"][0]["query"], panel_range(dash, p, EVAL), 60, {}), DB)
    rows = {(s["tags"]["site"], s["tags"]["device"]): dict(zip(s["columns"], s["values"][0], strict=True))
            for s in answer["results"][0]["series"]}
    june = [i for i, d in enumerate(town.days) if d.month == 6]
    for key, row in rows.items():
        truth = sum(town.energy_wh[key][i] for i in june) / town.peak_w[key]
        assert row["yield_kwh_per_kwp"] == pytest.approx(truth, rel=0.005), key
        assert row["underperforming"] == (1 if key in (DEGRADED, DEAD_STRING[:2]) else 0), key


def test_alert_rules_fire_for_the_degraded_inverter_and_the_dead_string_only(influx: InfluxServer,
                                                                              analysed: int) -> None:
    rules = _rules()
    query = lambda q: influx.query(q, DB)  # noqa: E731
    firing, queries = evaluate_rule(rules["terril-underperforming"], EVAL, query)
    assert firing == {(("device", DEGRADED[1]), ("site", DEGRADED[0])),
                      (("device", DEAD_STRING[1]), ("site", DEAD_STRING[0]))}
    assert all(has_data(query(q)) for q in queries)
    firing, _ = evaluate_rule(rules["terril-string-failing"], EVAL, query)
    assert firing == {(("device", DEAD_STRING[1]), ("site", DEAD_STRING[0]), ("string", DEAD_STRING[2]))}
    # Before the string died only the degraded inverter fires; before day 10, nothing.
    day = datetime(2026, 5, 4).date()
    firing, _ = evaluate_rule(rules["terril-underperforming"], local_midnight(day + timedelta(days=DEAD_FROM))
                              + timedelta(hours=9), query)
    assert firing == {(("device", DEGRADED[1]), ("site", DEGRADED[0]))}
    firing, _ = evaluate_rule(rules["terril-underperforming"], local_midnight(day + timedelta(days=DEGRADED_FROM))
                              + timedelta(hours=9), query)
    assert firing == set()
    assert build.DAILY_ROWS_LOOKBACK_S == 3 * 86400


# --------------------------------------------------------------------------- the real commands on real files


def _sites_yaml(town_inv: Any, extra_sites: str = "") -> str:
    lines = ["territory:", "  name: Loos-en-Gohelle", "  timezone: Europe/Paris",
             '  communes: [{insee: "62528", name: Loos-en-Gohelle}]', "sites:"]
    for site in town_inv.sites:
        lines += [f"  - slug: {site.slug}", f"    name: {site.slug}", "    owner: commune",
                  f'    commune: "{site.commune}"', f"    latitude: {site.latitude}",
                  f"    longitude: {site.longitude}", "    arrays:"]
        for a in site.arrays:
            lines.append(f"      - {{name: {a.name}, inverter: {a.inverter}, peak_power_w: {a.peak_power_w}, "
                         f"tilt: {a.tilt}, azimuth: {a.azimuth}, technology: {a.technology}}}")
    return "\n".join(lines) + "\n" + extra_sites


def test_terril_rollup_since_and_check_config_with_an_inventory_file(
        influx: InfluxServer, town: Town, perf: Rows, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    influx.create_database("cli")
    for i in range(0, len(town.lines), 20000):
        status, body = influx.write_lines("cli", town.lines[i:i + 20000])
        assert status == 204, body
    (tmp_path / "sites.yaml").write_text(_sites_yaml(town_inventory()), encoding="utf-8")
    ingest = tmp_path / "ingest.yaml"
    ingest.write_text(f"influxdb: {{api: v1, url: '{influx.url}', database: cli}}\ninventory: sites.yaml\n",
                      encoding="utf-8")
    assert main(["rollup", "-c", str(ingest), "--since", str(town.days[0]), "--until", str(town.days[-1])]) == 0
    out = capsys.readouterr().out
    assert "performance_daily, string_daily, technology_daily: 600 point(s) written" in out, out
    cli = _per_day(influx_db(influx, "cli"), "performance_daily", "*", '"site", "device"')
    assert cli.keys() == perf.keys()
    for key, rows in perf.items():
        assert [r.get("performance_index") for r in cli[key]] == pytest.approx(
            [r.get("performance_index") for r in rows], rel=1e-9), key
    # check-config names what the analytics miss, once each
    (tmp_path / "sites.yaml").write_text(_sites_yaml(town_inventory(), (
        "  - slug: eglise\n    name: Eglise\n    owner: commune\n    arrays:\n"
        "      - {name: nef, inverter: ond-1, peak_power_w: 6000, tilt: 30, azimuth: 180}\n")), encoding="utf-8")
    assert main(["check-config", str(ingest)]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("note: yield analytics:")]
    assert notes == ["note: yield analytics: sites[3] (eglise): no latitude/longitude: no clear-sky expectation, "
                     "no performance index"], notes


class influx_db:  # a view of the server on another database, for _per_day
    def __init__(self, server: InfluxServer, db: str) -> None:
        self.server, self.db = server, db

    def query(self, q: str, db: str) -> dict[str, Any]:
        return self.server.query(q, self.db)


def test_the_scheduled_rollup_job_writes_yesterdays_analytics(influx: InfluxServer, town: Town, perf: Rows,
                                                             tmp_path: Path) -> None:
    """Rollup.from_config (what the ingest schedules) runs the analytics for complete days: yesterday, not today."""
    from agent.central.config import load_ingest_config
    from agent.central.rollup import Rollup

    influx.create_database("job")
    for i in range(0, len(town.lines), 20000):
        status, body = influx.write_lines("job", town.lines[i:i + 20000])
        assert status == 204, body
    (tmp_path / "sites.yaml").write_text(_sites_yaml(town_inventory()), encoding="utf-8")
    ingest = tmp_path / "ingest.yaml"
    ingest.write_text(f"influxdb: {{api: v1, url: '{influx.url}', database: job}}\ninventory: sites.yaml\n",
                      encoding="utf-8")
    job = Rollup.from_config(load_ingest_config(ingest))
    assert job.performance is not None
    last = town.days[-1]
    job.run_once(now=local_midnight(last) + timedelta(days=1, hours=0, minutes=5))  # 00:05 the day after
    rows = _per_day(influx_db(influx, "job"), "performance_daily", "*", '"site", "device"')
    assert set(rows) == set(perf)
    for key, got in rows.items():
        # yesterday (the town's last day) only: today is not complete
        assert [r["time"] for r in got] == [perf[key][-1]["time"]], key
        assert got[-1]["energy_wh"] == pytest.approx(perf[key][-1]["energy_wh"], rel=1e-9)
    assert rows[DEGRADED][-1]["underperforming"] == 1
