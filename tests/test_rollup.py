"""Daily energy rollups against a real InfluxDB 1.6.7, on a generated town whose truth is known.

The generator integrates a per-minute power profile exactly, so the energy of
each local day is known independently of the readings. The readings (every
5 minutes, inverters asleep at night) are the lifetime counters a real device
would show, with: the autumn (25 h) and spring (23 h) DST days in
Europe/Paris, a counter reset (inverter replaced), a 4-hour gap inside a day
on an inverter and a 4-hour gap across midnight and the DST change on a meter.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import cli
from agent.central.influxql import InfluxQLClient
from agent.central.points import make_point
from agent.central.rollup import Rollup, line_writer, local_days, run_rollup
from agent.schema import TERRITORY_SITE
from tests.fixtures.influx import InfluxServer
from tests.fixtures.ports import free_port

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
POLL_S = 300
REFERENCE_WH_PER_YEAR = 36e9
WH_TOLERANCE = 0.5  # "to the watt-hour"

INVERTERS = {  # (site, device): peak W
    ("mairie", "ond-1"): 20000.0,
    ("mairie", "ond-2"): 15000.0,
    ("ecole", "ond-1"): 10000.0,
    ("eglise", "ond-1"): 5000.0,
}
METERS = {"mairie": 4000.0, "ecole": 1500.0}  # site: night base load W (meter device "compteur")


def local_s(day: date, hour: int, minute: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).timestamp())


def local_hour(t: int) -> float:
    dt = datetime.fromtimestamp(t, ZONE)
    return dt.hour + dt.minute / 60


@dataclass
class Town:
    """One generated span: 4 local days around a DST change, noon to noon."""

    days: list[date]
    """The three days under test (the middle one is the DST day)."""
    t0: int
    minutes: int
    power: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    cum: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    reset_at: int = 0
    first_after_reset_wh: float = 0.0

    def energy(self, key: tuple[str, ...], t: int) -> float:
        """Wh of the profile *key* from t0 to t (power constant within each minute)."""
        m, rest = divmod(t - self.t0, 60)
        return self.cum[key][m] + self.power[key][m] * rest / 3600 if m < self.minutes else self.cum[key][m]

    def truth(self, key: tuple[str, ...], day: date) -> float:
        (d,) = local_days(day, day, TZ)
        return self.energy(key, d.end_ms // 1000) - self.energy(key, d.start_ms // 1000)


def _generate(first_day: date) -> Town:
    rng = random.Random(first_day.toordinal())
    d0, d1, d2, d3 = (first_day + timedelta(days=k) for k in range(-1, 3))
    t0 = local_s(d0, 12)
    town = Town([d1, d2, first_day + timedelta(days=2)], t0, (local_s(d3 + timedelta(days=1), 12) - t0) // 60)
    town.days = [d1, d2, d3]
    hours = [local_hour(t0 + 60 * m) for m in range(town.minutes)]
    night = [h >= 22 or h < 6 for h in hours]
    sun = [max(0.0, math.sin(math.pi * (h - 7) / 12)) if 7 <= h <= 19 else 0.0 for h in hours]

    # The ecole inverter is replaced on the DST day: switched off right after its last poll before
    # 10:00 (what it produced after its last reading is unknowable; with 10 s polls it is at most
    # 10 s of production), a new counter starts from zero at 11:00.
    ecole_n = list(INVERTERS).index(("ecole", "ond-1"))
    first_poll = t0 + 7 * (ecole_n + 1)
    off_from = local_s(d2, 10) - (local_s(d2, 10) - first_poll) % POLL_S
    town.reset_at = local_s(d2, 11)
    for (site, device), peak in INVERTERS.items():
        clouds = [rng.uniform(0.3, 1.0) for _ in range(town.minutes)]
        p = [peak * s * c for s, c in zip(sun, clouds, strict=False)]
        if (site, device) == ("ecole", "ond-1"):
            p = [0.0 if off_from - 60 < t0 + 60 * m < town.reset_at else v for m, v in enumerate(p)]
        town.power[("inv", site, device)] = p
    for site, base in METERS.items():
        load = [base if night[m] else base + rng.uniform(0, 12000) for m in range(town.minutes)]
        pv = [sum(town.power[("inv", s, d)][m] for (s, d) in INVERTERS if s == site) for m in range(town.minutes)]
        town.power[("load", site)] = load
        town.power[("imp", site)] = [max(0.0, c - g) for c, g in zip(load, pv, strict=False)]
        town.power[("exp", site)] = [max(0.0, g - c) for c, g in zip(load, pv, strict=False)]
    for key, p in town.power.items():
        cum = [0.0]
        for v in p:
            cum.append(cum[-1] + v / 60)
        town.cum[key] = cum

    end = t0 + 60 * town.minutes
    inv_gap = (local_s(d1, 10), local_s(d1, 14))  # mairie/ond-2: 4 h without readings inside a day
    meter_gap_start = local_s(d1, 22, 30)  # mairie meter: 4 h across midnight and the DST change
    meter_gap = (meter_gap_start, meter_gap_start + 4 * 3600)
    for n, ((site, device), _) in enumerate(INVERTERS.items()):
        key = ("inv", site, device)
        base = 1_000_000.0 * (n + 1)
        for t in range(t0 + 7 * (n + 1), end, POLL_S):
            h = local_hour(t)
            if not 6.5 <= h < 20:
                continue  # inverters sleep at night and do not answer
            if (site, device) == ("mairie", "ond-2") and inv_gap[0] <= t < inv_gap[1]:
                continue
            if (site, device) == ("ecole", "ond-1"):
                if off_from < t < town.reset_at:
                    continue
                if t >= town.reset_at:
                    value = town.energy(key, t) - town.energy(key, town.reset_at)
                    if value <= 0:
                        continue  # the edge drops a 0 accumulator
                    if not town.first_after_reset_wh:
                        town.first_after_reset_wh = value
                    town.lines.append(_line("inverter", site, device, {"ac_energy_wh": value}, t))
                    continue
            town.lines.append(_line("inverter", site, device, {"ac_energy_wh": base + town.energy(key, t)}, t))
    for n, site in enumerate(METERS):
        for t in range(t0 + 11 * (n + 1), end, POLL_S):
            if site == "mairie" and meter_gap[0] <= t < meter_gap[1]:
                continue
            fields = {
                "energy_import_wh": 300_000.0 * (n + 1) + town.energy(("imp", site), t),
                "energy_export_wh": 50_000.0 * (n + 1) + town.energy(("exp", site), t),
            }
            town.lines.append(_line("meter", site, "compteur", fields, t))
    return town


def _line(measurement: str, site: str, device: str, fields: dict[str, float], t: int) -> str:
    return make_point(measurement, {"site": site, "device": device}, dict(fields), t * 1000).to_line()


@functools.cache
def town(first_day: date) -> Town:
    return _generate(first_day)


AUTUMN = date(2026, 10, 24)  # 25 October 2026 is 25 h long in Paris
SPRING = date(2026, 3, 28)  # 29 March 2026 is 23 h long


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    s = InfluxServer(tmp_path_factory.mktemp("rollup-influx")).start()
    yield s
    s.stop()


@pytest.fixture
def db(server: InfluxServer, request: pytest.FixtureRequest) -> str:
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    server.create_database(name)
    return name


def _load(server: InfluxServer, db: str, t: Town) -> InfluxQLClient:
    for k in range(0, len(t.lines), 5000):
        status, body = server.write_lines(db, t.lines[k : k + 5000])
        assert status == 204, body
    return InfluxQLClient(server.url, db)


def _daily(server: InfluxServer, db: str) -> dict[tuple[str, int], dict[str, Any]]:
    rows = server.rows("SELECT * FROM energy_daily GROUP BY site", db)
    return {(r["site"], r["time"]): {k: v for k, v in r.items() if k not in ("site", "time") and v is not None} for r in rows}


@pytest.mark.parametrize("first_day", [AUTUMN, SPRING], ids=["autumn-25h", "spring-23h"])
def test_daily_energy_equals_the_generated_truth(server: InfluxServer, db: str, first_day: date) -> None:
    t = town(first_day)
    client = _load(server, db, t)
    written = run_rollup(client, line_writer(client), t.days[0], t.days[-1], TZ, REFERENCE_WH_PER_YEAR)
    rows = _daily(server, db)
    assert written == len(rows) == 3 * 4  # 3 sites + territory, 3 days

    days = local_days(t.days[0], t.days[-1], TZ)
    assert [d.length_ms // 3_600_000 for d in days][1] == (25 if first_day == AUTUMN else 23)
    for day in days:
        for site in ("mairie", "ecole", "eglise"):
            row = rows[(site, day.start_ms)]  # stored at local midnight
            production = sum(t.truth(("inv", s, d), day.day) for (s, d) in INVERTERS if s == site)
            assert row["production_wh"] == pytest.approx(production, abs=WH_TOLERANCE), (site, day.day)
            if site in METERS:
                assert row["import_wh"] == pytest.approx(t.truth(("imp", site), day.day), abs=WH_TOLERANCE)
                assert row["export_wh"] == pytest.approx(t.truth(("exp", site), day.day), abs=WH_TOLERANCE)
                assert row["consumption_wh"] == pytest.approx(t.truth(("load", site), day.day), abs=WH_TOLERANCE)
            else:
                assert row.keys() == {"production_wh"}  # no meter: no consumption, never a 0
        territory = rows[(TERRITORY_SITE, day.start_ms)]
        for name in ("production_wh", "import_wh", "export_wh", "consumption_wh"):
            sites = [rows[(s, day.start_ms)].get(name) for s in ("mairie", "ecole", "eglise")]
            assert territory[name] == pytest.approx(sum(v for v in sites if v is not None), abs=1e-6)
        expected_ref = REFERENCE_WH_PER_YEAR * (day.length_ms / 3_600_000) / (365.25 * 24)
        assert territory["reference_consumption_wh"] == pytest.approx(expected_ref, rel=1e-12)


def test_the_scenario_defeats_the_naive_query(server: InfluxServer, db: str) -> None:
    """Guard: the DESIGN.md one-liner (non_negative_difference, summed per day) gets these days wrong,
    so the exactness above is not an accident of easy data."""
    t = town(AUTUMN)
    _load(server, db, t)
    dst_day = local_days(t.days[1], t.days[1], TZ)[0]
    assert t.first_after_reset_wh > 10  # energy that non_negative_difference throws away
    naive = server.rows(
        "SELECT sum(d) FROM (SELECT non_negative_difference(ac_energy_wh) AS d FROM inverter "
        f"WHERE site = 'ecole' GROUP BY device) WHERE time >= {dst_day.start_ms}ms AND time < {dst_day.end_ms}ms",
        db,
    )[0]["sum"]
    assert abs(naive - t.truth(("inv", "ecole", "ond-1"), dst_day.day)) > 10
    naive_import = server.rows(
        "SELECT sum(d) FROM (SELECT non_negative_difference(energy_import_wh) AS d FROM meter "
        f"WHERE site = 'mairie') WHERE time >= {dst_day.start_ms}ms AND time < {dst_day.end_ms}ms",
        db,
    )[0]["sum"]
    assert abs(naive_import - t.truth(("imp", "mairie"), dst_day.day)) > 10


def test_rerun_is_idempotent_and_independent_of_the_window(server: InfluxServer, db: str) -> None:
    t = town(AUTUMN)
    client = _load(server, db, t)
    write = line_writer(client)
    run_rollup(client, write, t.days[0], t.days[-1], TZ, REFERENCE_WH_PER_YEAR)
    first = _daily(server, db)
    run_rollup(client, write, t.days[0], t.days[-1], TZ, REFERENCE_WH_PER_YEAR)
    assert _daily(server, db) == first
    count = server.rows("SELECT count(production_wh) FROM energy_daily GROUP BY site", db)
    assert {r["site"]: r["count"] for r in count} == {"mairie": 3, "ecole": 3, "eglise": 3, TERRITORY_SITE: 3}

    # the DST day alone, then the 5-minute job ("yesterday and today") give the same rows
    run_rollup(client, write, t.days[1], t.days[1], TZ, REFERENCE_WH_PER_YEAR)
    job = Rollup(client, write, TZ, REFERENCE_WH_PER_YEAR)
    assert job.run_once(now=datetime(2026, 10, 26, 9, 0, tzinfo=ZONE)) == 8
    again = _daily(server, db)
    assert again.keys() == first.keys()
    for key, fields in first.items():
        assert again[key] == pytest.approx(fields, rel=1e-12), key


def test_scheduled_job_survives_influxdb_down_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    client = InfluxQLClient(f"http://127.0.0.1:{free_port()}", "terril", timeout=2)
    job = Rollup(client, line_writer(client), TZ)
    with caplog.at_level(logging.INFO, logger="agent.central.rollup"):
        assert job() == 0
        assert job() == 0
    failures = [r for r in caplog.records if "rollup failed" in r.getMessage()]
    assert len(failures) == 1 and "unreachable" in failures[0].getMessage()
    assert job.failing


def test_cli_backfill(server: InfluxServer, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = town(SPRING)
    _load(server, db, t)
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        f"influxdb: {{api: v1, url: '{server.url}', database: {db}}}\n"
        "rollup: {timezone: Europe/Paris, territory_consumption_wh_per_year: 36000000000}\n",
        encoding="utf-8",
    )
    assert cli.main(["rollup", "-c", str(cfg), "--since", "2026-03-28", "--until", "2026-03-30"]) == 0
    assert "12 point(s) written" in capsys.readouterr().out
    rows = _daily(server, db)
    (dst_day,) = local_days(date(2026, 3, 29), date(2026, 3, 29), TZ)
    assert rows[("eglise", dst_day.start_ms)]["production_wh"] == pytest.approx(
        t.truth(("inv", "eglise", "ond-1"), dst_day.day), abs=WH_TOLERANCE
    )

    assert cli.main(["rollup", "-c", str(cfg), "--since", "2026-03-30", "--until", "2026-03-28"]) == 2
    assert "before --since" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("influxdb: {api: v1}\nrollup: {timezone: Mars/Olympus}\n", encoding="utf-8")
    assert cli.main(["rollup", "-c", str(bad), "--since", "2026-03-28"]) == 2
    err = capsys.readouterr().err
    assert "influxdb" in err and "rollup" in err
    down = tmp_path / "down.yaml"
    down.write_text(f"influxdb: {{api: v1, url: 'http://127.0.0.1:{free_port()}', database: x}}\n", encoding="utf-8")
    assert cli.main(["rollup", "-c", str(down), "--since", "2026-03-28", "--until", "2026-03-28"]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_job_from_ingest_config_with_either_api_and_the_ingest_writer(server: InfluxServer, db: str) -> None:
    from agent.central.config import parse_ingest_config
    from agent.central.writers import make_writer

    t = town(AUTUMN)
    _load(server, db, t)
    now = datetime(2026, 10, 25, 20, 0, tzinfo=ZONE)
    v1 = parse_ingest_config({"influxdb": {"api": "v1", "url": server.url, "database": db}})
    writer = make_writer(v1.influxdb)
    try:
        assert Rollup.from_config(v1, write=writer.write).run_once(now) == 8  # Oct 24 and 25, 3 sites + territory
    finally:
        writer.close()
    first = _daily(server, db)
    # api v2: the bucket is queried (and written) through /query and /write with a Token header
    v2 = parse_ingest_config(
        {"influxdb": {"api": "v2", "url": server.url, "org": "ville", "bucket": db, "token": "s3cr3t-token"}}
    )
    job = Rollup.from_config(v2)
    assert "s3cr3t" not in repr(job)
    assert job.timezone == "Europe/Paris" and job.reference_wh_per_year is None
    assert job.run_once(now) == 8
    assert _daily(server, db) == first


def test_scheduled_job_across_a_long_gap_writes_what_a_backfill_writes(server: InfluxServer, db: str) -> None:
    """A meter silent from day 1 noon to day 4 noon: the 5-minute job, run as the readings arrive,
    must give days 1 and 2 their share of the gap, as a backfill does (not only days 3 and 4)."""
    day0 = date(2026, 5, 10)
    start, gap_from, gap_to = local_s(day0, 0), local_s(day0 + timedelta(days=1), 12), local_s(day0 + timedelta(days=4), 12)
    end = local_s(day0 + timedelta(days=5), 18)
    power_w = 1800.0  # constant import: every day's truth is power x hours
    readings = [(t, 500_000.0 + power_w * (t - start) / 3600) for t in range(start, end, POLL_S)
                if not gap_from < t < gap_to]
    client = InfluxQLClient(server.url, db)
    write = line_writer(client)
    job = Rollup(client, write, TZ)
    stored = 0
    for now_s in range(start + 3600, end + 1, 2 * 3600):  # the job every 2 h as the readings arrive
        fresh = [r for r in readings[stored:] if r[0] <= now_s]
        if fresh:
            status, body = server.write_lines(db, [_line("meter", "mairie", "compteur", {"energy_import_wh": v}, t)
                                                   for t, v in fresh])
            assert status == 204, body
            stored += len(fresh)
        job.run_once(now=datetime.fromtimestamp(now_s, ZONE))
    scheduled = _daily(server, db)
    server.query("DROP MEASUREMENT energy_daily", db)
    run_rollup(client, write, day0, day0 + timedelta(days=5), TZ)
    backfill = _daily(server, db)
    assert scheduled.keys() == backfill.keys()
    for key, fields in backfill.items():
        assert scheduled[key] == pytest.approx(fields, abs=1e-6), key
    days = local_days(day0, day0 + timedelta(days=5), TZ)
    full_days = [rows["import_wh"] for d in days[1:5] for k, rows in scheduled.items() if k == ("mairie", d.start_ms)]
    assert full_days == pytest.approx([power_w * 24] * 4, abs=WH_TOLERANCE)  # the gap, split linearly, is exact here
    assert job._gaps_done  # the gap was seen ...
    assert job.run_once(now=datetime.fromtimestamp(end, ZONE)) == 4  # ... and is not extended again: 2 days x 2 rows


# A citizen roof with a Sungrow SH hybrid: PV, a battery and the grid meter, all read through the
# inverter (device "onduleur-hybride"). One local day, hour by hour: (hours, load W, PV W, battery W
# with + = discharging); the grid covers the rest (import > 0). The battery takes 9.6 kWh during the
# day and gives back 2.4 kWh before dawn and 6 kWh in the evening.
HYBRID_DAY = [
    (6, 400, 0, 400),        # night: the battery feeds the house
    (3, 800, 1000, -200),    # morning: PV covers the house and starts charging
    (6, 500, 5000, -1500),   # midday: charging and exporting
    (3, 700, 2000, 0),       # afternoon: battery full, exporting
    (4, 2000, 0, 1500),      # evening: the battery helps, the grid tops up
    (2, 800, 0, 0),          # late: battery at its reserve, all from the grid
]
HYBRID_TRUTH = {  # Wh, computed by hand from the table above
    "production_wh": 1000 * 3 + 5000 * 6 + 2000 * 3,                    # 39 000
    "import_wh": 500 * 4 + 800 * 2,                                      # 3 600
    "export_wh": 3000 * 6 + 1300 * 3,                                    # 21 900
    "battery_charge_wh": 200 * 3 + 1500 * 6,                             # 9 600
    "battery_discharge_wh": 400 * 6 + 1500 * 4,                          # 8 400
    "consumption_wh": 400 * 6 + 800 * 3 + 500 * 6 + 700 * 3 + 2000 * 4 + 800 * 2,  # 19 500, the load
}


def _hybrid_lines(day: date, counters: dict[str, float]) -> list[str]:
    """Readings every 10 minutes through *day* (the one at its end too) as the ingest stores them."""
    lines = []
    t = local_s(day, 0)
    step = 600
    for hours, load, pv, battery in HYBRID_DAY:
        for _ in range(hours * 3600 // step):
            lines += [
                _line("inverter", "toit-citoyen", "onduleur-hybride", {"ac_energy_wh": counters["pv"]}, t),
                _line("meter", "toit-citoyen", "onduleur-hybride",
                      {"energy_import_wh": counters["imp"], "energy_export_wh": counters["exp"]}, t),
                _line("battery", "toit-citoyen", "onduleur-hybride",
                      {"energy_charge_wh": counters["chg"], "energy_discharge_wh": counters["dis"]}, t),
            ]
            grid = load - pv - battery
            wh = step / 3600
            counters["pv"] += pv * wh
            counters["imp"] += max(grid, 0) * wh
            counters["exp"] += max(-grid, 0) * wh
            counters["chg"] += max(-battery, 0) * wh
            counters["dis"] += max(battery, 0) * wh
            t += step
    return lines


def test_battery_site_consumption_counts_charge_and_discharge(server: InfluxServer, db: str) -> None:
    assert HYBRID_TRUTH["consumption_wh"] == (HYBRID_TRUTH["production_wh"] + HYBRID_TRUTH["import_wh"]
                                              - HYBRID_TRUTH["export_wh"] + HYBRID_TRUTH["battery_discharge_wh"]
                                              - HYBRID_TRUTH["battery_charge_wh"])
    first = date(2026, 6, 20)
    counters = {"pv": 99_400.0, "imp": 1_234_500.0, "exp": 4_567_800.0, "chg": 330_200.0, "dis": 307_100.0}
    lines = _hybrid_lines(first, counters) + _hybrid_lines(first + timedelta(days=1), counters)
    end = local_s(first + timedelta(days=2), 0)  # the closing reading at the second day's end
    lines += [
        _line("inverter", "toit-citoyen", "onduleur-hybride", {"ac_energy_wh": counters["pv"]}, end),
        _line("meter", "toit-citoyen", "onduleur-hybride",
              {"energy_import_wh": counters["imp"], "energy_export_wh": counters["exp"]}, end),
        _line("battery", "toit-citoyen", "onduleur-hybride",
              {"energy_charge_wh": counters["chg"], "energy_discharge_wh": counters["dis"]}, end),
        # a neighbour without a battery keeps production + import - export
        _line("inverter", "mairie", "ond-1", {"ac_energy_wh": 1000.0}, local_s(first, 8)),
        _line("inverter", "mairie", "ond-1", {"ac_energy_wh": 21000.0}, local_s(first, 18)),
        _line("meter", "mairie", "compteur", {"energy_import_wh": 500.0, "energy_export_wh": 100.0},
              local_s(first, 8)),
        _line("meter", "mairie", "compteur", {"energy_import_wh": 4500.0, "energy_export_wh": 2100.0},
              local_s(first, 18)),
    ]
    status, body = server.write_lines(db, lines)
    assert status == 204, body
    client = InfluxQLClient(server.url, db)
    run_rollup(client, line_writer(client), first, first + timedelta(days=1), TZ)
    rows = _daily(server, db)
    for day in local_days(first, first + timedelta(days=1), TZ):
        row = rows[("toit-citoyen", day.start_ms)]
        assert row == pytest.approx(HYBRID_TRUTH, abs=WH_TOLERANCE), day.day  # to the watt-hour
    day1 = local_days(first, first, TZ)[0].start_ms
    assert rows[("mairie", day1)] == pytest.approx(
        {"production_wh": 20000.0, "import_wh": 4000.0, "export_wh": 2000.0, "consumption_wh": 22000.0})
    territory = rows[(TERRITORY_SITE, day1)]
    assert territory["battery_charge_wh"] == pytest.approx(9600.0, abs=WH_TOLERANCE)
    assert territory["consumption_wh"] == pytest.approx(19500.0 + 22000.0, abs=WH_TOLERANCE)


def test_a_site_with_impossible_counters_is_left_out_and_the_others_are_written(
    server: InfluxServer, db: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13.1: counters stored before the ingest checked plausibility (1000 then 1.7e308 Wh, two
    devices: the sum is infinite) used to stop the whole run with ValueError for every site."""
    day = date(2026, 6, 10)
    (d,) = local_days(day, day, TZ)
    lines = []
    for site, device, second in [("mairie", "ond-1", 1.7e308), ("mairie", "ond-2", 1.7e308),
                                 ("eglise", "ond-1", 3e12),  # finite, but 125 MW for a day
                                 ("ecole", "ond-1", 6000.0)]:
        lines.append(make_point("inverter", {"site": site, "device": device},
                                {"ac_energy_wh": 1000.0}, d.start_ms + 3_600_000).to_line())
        lines.append(make_point("inverter", {"site": site, "device": device},
                                {"ac_energy_wh": second}, d.start_ms + 7_200_000).to_line())
    status, body = server.write_lines(db, lines)
    assert status == 204, body
    client = InfluxQLClient(server.url, db)
    job = Rollup(client, line_writer(client), TZ, days_back=0)
    now = datetime(2026, 6, 10, 20, 0, tzinfo=ZONE)
    with caplog.at_level(logging.WARNING, logger="agent.central.rollup"):
        assert job(now) == 2
        assert job(now) == 2  # the next scheduled run: same rows, no second warning
    assert not job.failing
    rows = _daily(server, db)
    assert rows == {("ecole", d.start_ms): {"production_wh": 5000.0},
                    (TERRITORY_SITE, d.start_ms): {"production_wh": 5000.0}}
    left_out = sorted(r.getMessage().split(" left out")[0] for r in caplog.records if "left out" in r.getMessage())
    assert left_out == ["rollup: site eglise", "rollup: site mairie"]
