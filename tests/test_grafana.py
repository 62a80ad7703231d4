"""Grafana dashboards and alert rules, proved on a real InfluxDB 1.6.7 seeded with a simulated town.

Grafana itself cannot be installed here; ``tests/grafana_eval.py`` renders the
queries the way Grafana does and evaluates the alert expressions, and
``tests/grafana_seed.py`` knows the right answers independently of InfluxDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.central.points import make_point
from agent.schema import MEASUREMENTS, TERRITORY_SITE
from grafana import build
from tests.fixtures.influx import InfluxServer
from tests.grafana_eval import (
    evaluate_rule,
    has_data,
    interval_s,
    panel_range,
    render,
    to_series,
)
from tests.grafana_seed import (
    DAY_EVAL,
    EXPECTED_FIRING_AT_DAY,
    EXPECTED_FIRING_AT_NIGHT,
    NIGHT_EVAL,
    PARIS,
    SITES,
    STEP_S,
    Town,
    build_town,
    local_midnight,
    ms,
)

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DB = "terril"
PROVED_ON_PERFORMANCE_TOWN = {"dashboards": {"performance"}, "rules": {"terril-underperforming",
                                                                         "terril-string-failing"}}
"""The yield analytics' dashboard and rules read daily analytics rows this town has no inventory for: they are
run against the synthetic town of ``tests/test_performance_town.py`` instead."""
VARIABLES = {"site": "ecole-jaures", "device": "onduleur-2"}
"""Building dashboard selection: the faulted inverter has events, strings, agent trouble — every panel has data.
Its name is shared with an inverter of another site, so the panels must select by site and device."""


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "alerting" / "terril-rules.yaml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.extend(p.get("panels", []) if p["type"] == "row" else [p])
    return out


@pytest.fixture(scope="module")
def town() -> Town:
    return build_town()


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory, town: Town) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("grafana-influx")).start()
    try:
        server.create_database(DB)
        for i in range(0, len(town.lines), 5000):
            status, body = server.write_lines(DB, town.lines[i:i + 5000])
            assert status == 204, body
        yield server
    finally:
        server.stop()


def run_panel(influx: InfluxServer, dash: dict[str, Any], panel: dict[str, Any], target: dict[str, Any],
              now: datetime = DAY_EVAL, variables: dict[str, str] | None = None, db: str = DB) -> dict[str, Any]:
    rng = panel_range(dash, panel, now)
    q = render(target["query"], rng, interval_s(rng, panel.get("interval")), variables or VARIABLES)
    return influx.query(q, db)


def find_panel(dash_name: str, title: str) -> tuple[dict[str, Any], dict[str, Any]]:
    dash = _dashboards()[dash_name]
    matches = [p for p in _panels(dash) if p["title"] == title]
    assert len(matches) == 1, f"{dash_name}: panel {title!r} not found once"
    return dash, matches[0]


def single_value(answer: dict[str, Any]) -> float:
    vals = [v for r in answer["results"] for s in r.get("series", []) for row in s["values"] for v in row[1:]]
    assert len(vals) == 1, vals
    return float(vals[0])


def per_tag(answer: dict[str, Any], tag: str) -> dict[str, float]:
    return {dict(labels)[tag]: vals[-1] for labels, vals in to_series(answer).items()}  # type: ignore[misc]


# --------------------------------------------------------------------------- static checks


def test_generated_files_are_not_stale() -> None:
    stale = [str(p) for p, text in build.render_all().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python -m grafana.build`: stale {stale}"


def test_dashboards_validate_against_grafana_schema() -> None:
    schema = json.loads((GRAFANA / "schema" / "dashboard.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    dashboards = _dashboards()
    assert set(dashboards) == {"fleet", "building", "energy-positive", "public", "performance"}
    for name, dash in dashboards.items():
        errors = [f"{e.json_path}: {e.message[:120]}" for e in validator.iter_errors(dash)]
        assert not errors, f"{name}: {errors}"
    # the validator really rejects a broken dashboard
    broken = json.loads(json.dumps(dashboards["fleet"]))
    broken["panels"][0]["gridPos"]["w"] = 30
    assert list(validator.iter_errors(broken))


def test_every_panel_has_unit_title_description_id_and_provisioned_datasource() -> None:
    provisioned = _provisioned_datasource_uids()
    uids = set()
    for name, dash in _dashboards().items():
        assert dash["timezone"] == "Europe/Paris" and dash["uid"].startswith("terril-"), name
        uids.add(dash["uid"])
        ids = [p["id"] for p in _panels(dash)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), name
        for p in _panels(dash):
            where = f"{name}/{p.get('title')}"
            assert p.get("title") and p.get("description"), where
            assert p["fieldConfig"]["defaults"].get("unit"), where
            assert p["datasource"]["uid"] in provisioned, where
            assert p["targets"], where
            for t in p["targets"]:
                assert t["datasource"]["uid"] == p["datasource"]["uid"] and t["rawQuery"] is True, where
    assert len(uids) == 5
    for rule in _rules():
        for item in rule["data"]:
            assert item["datasourceUid"] in provisioned | {"__expr__"}, rule["uid"]
            if item["datasourceUid"] != "__expr__":
                assert item["model"]["rawQuery"] is True


def _provisioned_datasource_uids() -> set[str]:
    uids = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for ds in doc["datasources"]:
            assert ds["type"] == "influxdb" and ds["jsonData"].get("version", "InfluxQL") == "InfluxQL", path
            assert "$" in ds["url"], f"{path}: the URL must come from an environment variable"
            uids.add(ds["uid"])
    assert uids == {build.DS_UID, build.DS_PUBLIC_UID}
    return uids


def test_queries_use_only_schema_names() -> None:
    """Every "quoted" identifier in a query is a measurement, field, tag or alias we defined."""
    known = set(MEASUREMENTS) | {f.name for m in MEASUREMENTS.values() for f in m.fields}
    known |= {t for m in MEASUREMENTS.values() for t in m.tags}
    known |= {"d", "p", "s", "panels", "peak", "AC", "DC", "AN", "BN", "CN", "cabinet", "heatsink", "production",
              "consumption", "reference", "import", "export", "sites"}
    queries = [t["query"] for d in _dashboards().values() for p in _panels(d) for t in p["targets"]]
    queries += [i["model"]["query"] for r in _rules() for i in r["data"] if i["datasourceUid"] != "__expr__"]
    for v in _dashboards()["building"]["templating"]["list"]:
        queries.append(v["query"])
    for q in queries:
        assert "now()" not in q, f"use $timeFilter, not now(): {q}"
        unknown = set(re.findall(r'"([^"]+)"', q)) - known
        assert not unknown, f"{unknown} in {q}"


def test_public_dashboard_is_shareable_and_reads_only_aggregates() -> None:
    dash = _dashboards()["public"]
    assert dash["templating"]["list"] == []
    for p in _panels(dash):
        assert "libraryPanel" not in p and p["datasource"]["uid"] == build.DS_PUBLIC_UID
        for t in p["targets"]:
            measurements = set(re.findall(r'FROM "([^"]+)"', t["query"]))
            assert measurements and measurements <= {"energy_daily", "site_info"}, t["query"]
    for name, other in _dashboards().items():
        if name != "public":
            assert all(p["datasource"]["uid"] == build.DS_UID for p in _panels(other)), name


# --------------------------------------------------------------------------- every query on real InfluxDB


def test_every_dashboard_query_runs_and_returns_data(influx: InfluxServer) -> None:
    ran = 0
    empty = []
    for name, dash in _dashboards().items():
        if name in PROVED_ON_PERFORMANCE_TOWN["dashboards"]:
            continue
        for p in _panels(dash):
            for t in p["targets"]:
                answer = run_panel(influx, dash, p, t)
                ran += 1
                if not has_data(answer):
                    empty.append(f"{name}/{p['title']}/{t['refId']}")
    assert not empty, f"queries without data: {empty}"
    assert ran >= 40, ran


def test_template_variable_queries_list_the_seeded_sites_and_devices(influx: InfluxServer) -> None:
    variables = {v["name"]: v for v in _dashboards()["building"]["templating"]["list"]}
    assert set(variables) == {"site", "device"}
    sites = {row["value"] for row in influx.rows(variables["site"]["query"], DB)}
    assert sites == {s.slug for s in SITES}
    devices = {row["value"] for row in influx.rows(render(variables["device"]["query"], _dummy_range(), 60,
                                                          {"site": "salle-sports"}), DB)}
    assert devices == {"sports-ond1", "sports-ond2"}


def _dummy_range() -> Any:
    from tests.grafana_eval import TimeRange
    return TimeRange(DAY_EVAL, DAY_EVAL)


# --------------------------------------------------------------------------- key numbers


def test_fleet_energy_today_per_site_equals_simulated_energy(influx: InfluxServer, town: Town) -> None:
    truth = town.today_energy_by_site(DAY_EVAL)
    dash, p = find_panel("fleet", "Energy today per site")
    got = per_tag(run_panel(influx, dash, p, p["targets"][0]), "site")
    assert set(got) == set(truth)
    for site, wh in truth.items():
        assert got[site] == pytest.approx(wh, rel=1e-6, abs=0.01), site
    dash, p = find_panel("fleet", "Energy today, all sites")
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(sum(truth.values()), rel=1e-6)


def test_fleet_month_and_power_now(influx: InfluxServer, town: Town) -> None:
    first = date(2024, 10, 1)
    dash, p = find_panel("fleet", "Energy this month per site")
    got = per_tag(run_panel(influx, dash, p, p["targets"][0]), "site")
    assert TERRITORY_SITE not in got
    for s in SITES:
        assert got[s.slug] == pytest.approx(town.daily_sum(s.slug, "production_wh", first, DAY_EVAL.date()), rel=1e-9)
    dash, p = find_panel("fleet", "Fleet power now")
    now_w = single_value(run_panel(influx, dash, p, p["targets"][0]))
    # last reading of each inverter that reported in the last 15 minutes (the silent one and eglise did not)
    expected = 0.0
    for line in town.lines:
        if line.startswith("inverter,") and line.endswith(f" {int(DAY_EVAL.timestamp() * 1000)}"):
            expected += float(re.search(r"ac_power_w=([0-9.e+-]+)", line).group(1))  # type: ignore[union-attr]
    assert expected > 0 and now_w == pytest.approx(expected, rel=1e-9)
    dash, p = find_panel("fleet", "Inverters in fault")
    faulted = [(s.slug, i.device) for s in SITES for i in s.inverters if i.fault_from is not None]
    # two faulted inverters share the name onduleur-2 (two sites): counting per device name would give 1
    assert len(faulted) == 2 and len({d for _s, d in faulted}) == 1
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == len(faulted)


def _inverter_rows(town: Town, start: datetime, end: datetime) -> dict[tuple[str, str], list[float]]:
    """AC power readings of each (site, device) with start <= time <= end, read back from the seed lines."""
    out: dict[tuple[str, str], list[float]] = {}
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    for line in town.lines:
        if not line.startswith("inverter,"):
            continue
        head, _fields, ts = line.rsplit(" ", 2)
        if lo <= int(ts) <= hi:
            tags = dict(kv.split("=", 1) for kv in head.split(",")[1:])
            power = float(re.search(r"ac_power_w=([0-9.e+-]+)", line).group(1))  # type: ignore[union-attr]
            out.setdefault((tags["site"], tags["device"]), []).append(power)
    return out


def test_fleet_producing_check_sums_every_inverter_of_every_site(influx: InfluxServer, town: Town) -> None:
    """The daylight test of the alert rules is the sum of each (site, device)'s mean power over 30 minutes."""
    rows = _inverter_rows(town, DAY_EVAL - timedelta(minutes=30), DAY_EVAL)
    assert ("maison-dupont", "onduleur") in rows and ("ferme-leroy", "onduleur") in rows
    truth = sum(sum(v) / len(v) for v in rows.values())
    rule = next(r for r in _rules() if r["uid"] == "terril-no-production")
    item = next(i for i in rule["data"] if i["refId"] == "B")
    assert item["model"]["query"] == build.Q_FLEET_PRODUCING
    answer = influx.query(render(item["model"]["query"], _range_before(DAY_EVAL, 1800), 60, {}), DB)
    assert single_value(answer) == pytest.approx(truth, rel=1e-9)


def test_every_per_device_query_groups_by_site_too() -> None:
    """Device names are unique only within a site: no query may group, or label an alert, by device alone."""
    queries = [(f"{n}/{p['title']}", t["query"]) for n, d in _dashboards().items() for p in _panels(d)
               for t in p["targets"]]
    queries += [(r["uid"], i["model"]["query"]) for r in _rules() for i in r["data"] if i["datasourceUid"] != "__expr__"]
    checked = 0
    for where, q in queries:
        for clause in re.findall(r"GROUP BY ([^)]*)", q):
            if '"device"' in clause:
                checked += 1
                assert '"site"' in clause, f"{where}: GROUP BY {clause}"
        if '"device"' in q and "GROUP BY" not in q:
            assert "$site" in q, f"{where}: selects a device without its site: {q}"
    assert checked >= 10, checked
    for rule in _rules():
        if "device" in rule["annotations"]["summary"]:
            assert "$labels.site" in rule["annotations"]["summary"], rule["uid"]


def test_specific_yield_joins_to_the_right_ratio(influx: InfluxServer, town: Town) -> None:
    dash, p = find_panel("fleet", "Specific yield this month (kWh/kWp)")
    prod = {r["site"]: r["production_wh"] for r in influx.rows(render(
        p["targets"][0]["query"], panel_range(dash, p, DAY_EVAL), 60, {}), DB)}
    peak = {r["site"]: r["peak_power_w"] for r in influx.rows(render(
        p["targets"][1]["query"], panel_range(dash, p, DAY_EVAL), 60, {}), DB)}
    assert set(prod) == set(peak) == {s.slug for s in SITES}
    for s in SITES:  # what the joinByField + calculateField transformations show
        truth = town.daily_sum(s.slug, "production_wh", date(2024, 10, 1), DAY_EVAL.date()) / s.peak_power_w
        assert prod[s.slug] / peak[s.slug] == pytest.approx(truth, rel=1e-9)


@pytest.mark.parametrize("site,device", [("eglise", "eglise-ond1"), ("mediatheque", "media-ond1"),
                                         ("ferme-leroy", "onduleur"), ("salle-sports", "sports-ond1")])
def test_daily_energy_from_counters_across_dst_gap_and_reset(influx: InfluxServer, town: Town, site: str,
                                                            device: str) -> None:
    dash, p = find_panel("building", "Daily energy from the counter")
    answer = run_panel(influx, dash, p, p["targets"][0], variables={"site": site, "device": device})
    rows = answer["results"][0]["series"][0]["values"]
    got = {datetime.fromtimestamp(t / 1000, PARIS).date(): v for t, v in rows}
    # buckets start at local midnight, including around the 25-hour day of 27 October
    assert all(datetime.fromtimestamp(t / 1000, PARIS).hour == 0 for t, _ in rows)
    assert date(2024, 10, 27) in got
    one_device_site = len(next(s for s in SITES if s.slug == site).inverters) == 1
    for day in (date(2024, 10, 25), date(2024, 10, 26), date(2024, 10, 27)):
        physical = town.energy_between(site, device, local_midnight(day), local_midnight(day.replace(day=day.day + 1)))
        if one_device_site:  # the rollup row is the same computation on the same counters
            assert got[day] == pytest.approx(town.daily[(site, day)]["production_wh"], abs=0.01)
        if device == "media-ond1" and day == date(2024, 10, 25):
            # counter reset at 12:02: the pair around it is dropped, so one poll interval (5 min) is lost
            assert physical * 0.97 < got[day] < physical
        else:  # the gap of 26 October (eglise) is counted in the reading that follows it
            assert got[day] == pytest.approx(physical, abs=0.01), day


def test_energy_positive_month_year_and_share(influx: InfluxServer, town: Town) -> None:
    t = TERRITORY_SITE
    month_first, today, year_first = date(2024, 10, 1), DAY_EVAL.date(), date(2024, 1, 1)
    dash, p = find_panel("energy-positive", "Production this month")
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(
        town.daily_sum(t, "production_wh", month_first, today), rel=1e-9)
    dash, p = find_panel("energy-positive", "Consumption this month (metered buildings)")
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(
        town.daily_sum(t, "consumption_wh", month_first, today), rel=1e-9)
    # the share counts complete days: 1 January to yesterday (today's row is production so far against a whole day)
    yesterday = today - timedelta(days=1)
    share = town.daily_sum(t, "production_wh", year_first, yesterday) / town.daily_sum(
        t, "reference_consumption_wh", year_first, yesterday)
    share_with_today = town.daily_sum(t, "production_wh", year_first, today) / town.daily_sum(
        t, "reference_consumption_wh", year_first, today)
    assert share != pytest.approx(share_with_today, rel=1e-6)  # the test can tell the two apart
    dash, p = find_panel("energy-positive", "Energy-positive share this year")
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(share, rel=1e-9)
    # the last 365 days reach back before the seeded year: the same days, 1 January to yesterday
    dash, p = find_panel("energy-positive", "Share over the last 12 months")
    assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(share, rel=1e-9)
    # per calendar month: what formatTime(YYYY-MM, dashboard time zone) + groupBy(sum) show
    dash, p = find_panel("energy-positive", "Production and consumption per month")
    assert [tr["id"] for tr in p["transformations"]] == ["formatTime", "groupBy"]
    answer = run_panel(influx, dash, p, p["targets"][0])
    cols = answer["results"][0]["series"][0]["columns"]
    months: dict[str, dict[str, float]] = {}
    for row in answer["results"][0]["series"][0]["values"]:
        key = datetime.fromtimestamp(row[0] / 1000, PARIS).strftime("%Y-%m")
        for c, v in zip(cols[1:], row[1:], strict=False):
            months.setdefault(key, {}).setdefault(c, 0.0)
            months[key][c] += v or 0.0
    assert len(months) == 10
    for m in (1, 6, 10):
        first = date(2024, m, 1)
        last = today if m == 10 else date(2024, m + 1, 1).replace(day=1) - (date(2024, 2, 2) - date(2024, 2, 1))
        assert months[f"2024-{m:02d}"]["production"] == pytest.approx(town.daily_sum(t, "production_wh", first, last))
        assert months[f"2024-{m:02d}"]["consumption"] == pytest.approx(
            town.daily_sum(t, "consumption_wh", first, last))
    dash, p = find_panel("energy-positive", "Cumulative energy-positive share")
    series = run_panel(influx, dash, p, p["targets"][0])["results"][0]["series"][0]["values"]
    # one point per day: yesterday's is the complete-days share, today's counts today so far
    assert series[-2][1] == pytest.approx(share, rel=1e-9)
    assert series[-1][1] == pytest.approx(share_with_today, rel=1e-9)


def test_trajectory_panels(influx: InfluxServer) -> None:
    from tests.grafana_seed import BALANCE_YEARS, territory_balance_rows

    truth = territory_balance_rows()
    dash, p = find_panel("energy-positive", "Balance per year: consumption and renewable production")
    assert [tr["id"] for tr in p["transformations"]] == ["formatTime"]
    series = run_panel(influx, dash, p, p["targets"][0])["results"][0]["series"][0]
    got = {datetime.fromtimestamp(row[0] / 1000, PARIS).year: dict(zip(series["columns"][1:], row[1:], strict=False))
           for row in series["values"]}
    assert set(got) == set(BALANCE_YEARS)  # the target path's future years carry no balance
    for year, (consumed, renewable, monitored) in BALANCE_YEARS.items():
        assert got[year] == {"consumption_wh": consumed, "renewable_production_wh": renewable,
                             "monitored_production_wh": monitored}
    dash, p = find_panel("energy-positive", "Trajectory: renewable share and target path")
    series = run_panel(influx, dash, p, p["targets"][0])["results"][0]["series"][0]
    years = {datetime.fromtimestamp(row[0] / 1000, PARIS).year: row[1:] for row in series["values"]}
    assert sorted(years) == list(range(2019, 2051))  # the whole path, beyond the time range
    assert years[2050][1] == 1.0 and years[2019][1] == pytest.approx(5.4 / 36)
    assert years[2022][0] == pytest.approx(7.7 / 35) and years[2030][0] is None
    for title, name in (("Still missing: energy per year", "missing_wh"),
                        ("Still missing: rooftop peak power", "missing_peak_power_w"),
                        ("Still missing: roofs", "missing_roofs")):
        dash, p = find_panel("energy-positive", title)
        assert single_value(run_panel(influx, dash, p, p["targets"][0])) == pytest.approx(truth[2023][name])


def test_public_panel_figures(influx: InfluxServer, town: Town) -> None:
    t = TERRITORY_SITE
    today, year_first = DAY_EVAL.date(), date(2024, 1, 1)
    year = town.daily_sum(t, "production_wh", year_first, today)

    def value(title: str) -> dict[str, Any]:
        dash, p = find_panel("public", title)
        return run_panel(influx, dash, p, p["targets"][0])

    assert single_value(value("Produit aujourd'hui")) == pytest.approx(town.daily[(t, today)]["production_wh"])
    assert single_value(value("Produit cette année")) == pytest.approx(year, rel=1e-9)
    yesterday = today - timedelta(days=1)
    assert single_value(value("Part de la consommation couverte")) == pytest.approx(
        town.daily_sum(t, "production_wh", year_first, yesterday)
        / town.daily_sum(t, "reference_consumption_wh", year_first, yesterday), rel=1e-9)
    assert single_value(value("CO₂ évité cette année")) == pytest.approx(year / 1000 * build.CO2_KG_PER_KWH, rel=1e-9)
    assert single_value(value("Toits solaires")) == len(SITES)
    assert single_value(value("Panneaux solaires")) == sum(s.panels for s in SITES)
    assert single_value(value("Puissance installée")) == sum(s.peak_power_w for s in SITES)
    citizen = [s for s in SITES if s.owner == "citizen"]
    row = value("Toits des habitants")["results"][0]["series"][0]
    assert dict(zip(row["columns"][1:], row["values"][0][1:], strict=False)) == {
        "sites": len(citizen), "panels": sum(s.panels for s in citizen)}
    assert single_value(value("Toits des habitants : puissance installée")) == sum(s.peak_power_w for s in citizen)


SHARE_PANELS = [("energy-positive", "Energy-positive share this year"),
                ("energy-positive", "Share over the last 12 months"),
                ("energy-positive", "Cumulative energy-positive share"),
                ("public", "Part de la consommation couverte")]
REFERENCE_SETTING = "rollup.territory_consumption_wh_per_year"


def _daily_lines(town: Town, reference_from: date | None) -> list[str]:
    """The seeded energy_daily rows, with reference_consumption_wh only from *reference_from* (None: never)."""
    lines = []
    for (site, day), row in town.daily.items():
        if reference_from is None or day < reference_from:
            row = {k: v for k, v in row.items() if k != "reference_consumption_wh"}
        lines.append(make_point("energy_daily", {"site": site}, row, ms(local_midnight(day))).to_line())
    return lines


def test_share_panels_without_reference_say_what_to_configure(influx: InfluxServer, town: Town) -> None:
    """Ingest run without territory_consumption_wh_per_year: no share, and the panel says which setting is missing."""
    influx.create_database("noref")
    status, body = influx.write_lines("noref", _daily_lines(town, reference_from=None))
    assert status == 204, body
    for dash_name, title in SHARE_PANELS:
        dash, p = find_panel(dash_name, title)
        assert not has_data(run_panel(influx, dash, p, p["targets"][0], db="noref")), title
        assert REFERENCE_SETTING in p["description"], title
        no_value = p["fieldConfig"]["defaults"].get("noValue")
        assert no_value, f"{title}: shows a bare 'No data'"
        if dash_name != "public":  # the technical dashboards name the setting on the panel itself
            assert REFERENCE_SETTING in no_value, title
    # the production panels do not depend on it
    dash, p = find_panel("public", "Produit cette année")
    assert has_data(run_panel(influx, dash, p, p["targets"][0], db="noref"))


def test_share_counts_only_the_days_with_a_reference(influx: InfluxServer, town: Town) -> None:
    """Reference configured on 1 July: January-June production must not be divided by July-October consumption."""
    influx.create_database("ref_july")
    status, body = influx.write_lines("ref_july", _daily_lines(town, reference_from=date(2024, 7, 1)))
    assert status == 204, body
    t, first, yesterday = TERRITORY_SITE, date(2024, 7, 1), DAY_EVAL.date() - timedelta(days=1)
    truth = town.daily_sum(t, "production_wh", first, yesterday) / town.daily_sum(
        t, "reference_consumption_wh", first, yesterday)
    for dash_name, title in SHARE_PANELS:
        dash, p = find_panel(dash_name, title)
        answer = run_panel(influx, dash, p, p["targets"][0], db="ref_july")
        values = answer["results"][0]["series"][0]["values"]
        got = values[-2][1] if title.startswith("Cumulative") else single_value(answer)
        assert got == pytest.approx(truth, rel=1e-9), title


# --------------------------------------------------------------------------- alert rules


def test_alert_rules_fire_on_seeded_faults_only(influx: InfluxServer) -> None:
    rules = {r["uid"]: r for r in _rules() if r["uid"] not in PROVED_ON_PERFORMANCE_TOWN["rules"]}
    assert set(rules) == set(EXPECTED_FIRING_AT_DAY)
    for uid, rule in rules.items():
        firing, queries = evaluate_rule(rule, DAY_EVAL, lambda q: influx.query(q, DB))
        assert firing == EXPECTED_FIRING_AT_DAY[uid], uid
        assert all(has_data(influx.query(q, DB)) for q in queries), uid


@pytest.mark.parametrize("when", [NIGHT_EVAL, datetime(2024, 10, 27, 22, 30, tzinfo=PARIS)],
                         ids=["before-dawn", "night-after-dst"])
def test_alert_rules_stay_silent_at_night(influx: InfluxServer, when: datetime) -> None:
    """Daylight rules stay silent at night; only the agent dead since 26 October keeps firing."""
    for rule in _rules():
        firing, _queries = evaluate_rule(rule, when, lambda q: influx.query(q, DB))
        assert firing == EXPECTED_FIRING_AT_NIGHT.get(rule["uid"], set()), rule["uid"]
    # the night is a real test: some inverters still answer (asleep, 0 W) and others are unreachable
    rule = next(r for r in _rules() if r["uid"] == "terril-comm-loss")
    answer = influx.query(render(rule["data"][0]["model"]["query"], _range_before(when, 3 * 86400), 300, {}), DB)
    last = {(dict(k)["site"], dict(k)["device"]): v[-1] for k, v in to_series(answer).items()}
    assert any(v == 0 for v in last.values()) and any(v and v > 0 for v in last.values())


def _range_before(now: datetime, seconds: int) -> Any:
    from tests.grafana_eval import TimeRange
    return TimeRange(now - timedelta(seconds=seconds), now)


def test_alert_rule_provisioning_shape() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "alerting" / "terril-rules.yaml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    for rule in _rules():
        refs = {i["refId"] for i in rule["data"]}
        assert rule["condition"] in refs and re.fullmatch(r"[a-z0-9-]{1,40}", rule["uid"])
        grouped = [i for i in rule["data"] if i["datasourceUid"] != "__expr__"]
        assert any('GROUP BY' in i["model"]["query"] for i in grouped), rule["uid"]
    policies = yaml.safe_load((GRAFANA / "provisioning" / "alerting" / "policies.yaml").read_text(encoding="utf-8"))
    night = [r for r in policies["policies"][0]["routes"] if "night" in r.get("mute_time_intervals", [])]
    assert night and night[0]["object_matchers"] == [["daylight", "=", "depends"]]
    assert STEP_S == 300


# --------------------------------------------------------------------------- the real rollup agrees


def test_real_rollup_computes_the_seeded_daily_rows(influx: InfluxServer, town: Town) -> None:
    """agent.central.rollup on the same raw data writes the energy_daily rows the dashboards were proved on."""
    from agent.central.influxql import InfluxQLClient
    from agent.central.rollup import line_writer, run_rollup
    from tests.grafana_seed import RAW_START, TERRITORY_CONSUMPTION_WH_PER_YEAR

    influx.create_database("raw")
    raw = [line for line in town.lines if not line.startswith("energy_daily,")]
    for i in range(0, len(raw), 5000):
        status, body = influx.write_lines("raw", raw[i:i + 5000])
        assert status == 204, body
    client = InfluxQLClient(influx.url, "raw")
    written = run_rollup(client, line_writer(client), RAW_START.date(), DAY_EVAL.date(), "Europe/Paris",
                         TERRITORY_CONSUMPTION_WH_PER_YEAR)
    assert written > 0
    rows = influx.rows('SELECT * FROM "energy_daily" GROUP BY "site"', "raw")
    # one row per site and raw day with readings (vestiaires, dead since 26 October, has none after), plus the territory
    assert len(rows) == sum(1 for (_s, d) in town.daily if d >= RAW_START.date())
    for row in rows:
        day = datetime.fromtimestamp(row["time"] / 1000, PARIS).date()
        seeded = town.daily[(row["site"], day)]
        for name, value in seeded.items():
            # the rollup counts the energy after a counter reset from the new counter's first reading
            # (the dashboards' non_negative_difference drops that one interval): 5 minutes at most
            tol = 2_000.0 if (row["site"] in ("mediatheque", TERRITORY_SITE) and day == date(2024, 10, 25)
                              and name in ("production_wh", "consumption_wh")) else 0.05
            assert row.get(name) == pytest.approx(value, abs=tol), (row["site"], day, name)


@pytest.mark.parametrize("name", ["datasources-influxdb2.yaml", "datasources-influxdb3-core.yaml"])
def test_datasource_variants_keep_uids_and_influxql(name: str) -> None:
    doc = yaml.safe_load((GRAFANA / "examples" / name).read_text(encoding="utf-8"))
    by_uid = {ds["uid"]: ds for ds in doc["datasources"]}
    assert set(by_uid) == {build.DS_UID, build.DS_PUBLIC_UID}
    for ds in by_uid.values():
        assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["httpHeaderName1"] == "Authorization"
        assert "${TERRIL_INFLUX" in ds["secureJsonData"]["httpHeaderValue1"]


def test_building_battery_panels_show_the_selected_hybrids_battery(influx: InfluxServer) -> None:
    """Charging (negative) by day, discharging (positive) at night, state of charge as a ratio; another
    inverter of the same site has no battery and its panels stay empty."""
    dash, p = find_panel("building", "Battery power")
    values = [v for vals in to_series(run_panel(influx, dash, p, p["targets"][0])).values() for v in vals
              if v is not None]
    assert min(values) < 0 < max(values)
    dash, p = find_panel("building", "Battery state of charge")
    soc = [v for vals in to_series(run_panel(influx, dash, p, p["targets"][0])).values() for v in vals if v is not None]
    assert soc and all(0.3 <= v <= 0.8 for v in soc)
    other = run_panel(influx, dash, p, p["targets"][0], variables={"site": "ecole-jaures", "device": "ecole-ond1"})
    assert not has_data(other)
