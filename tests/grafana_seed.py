"""A simulated town, written into InfluxDB, with the truths the dashboards must show.

The Grafana tests need data whose right answers are known *without* asking
InfluxDB: this module simulates the physics (sun, roofs, consumption), writes
what the edge would have recorded (lifetime counters, power, states, events,
agent health, the daily rollups), and keeps the simulated energy so a test can
compare a dashboard's number with the truth computed here in Python.

Time is fixed, not "now": the seed ends at ``DAY_EVAL`` (Monday 28 October 2024,
15:00 in Paris, the day after the autumn DST change) so that the 25-hour local
day of 27 October is inside the raw data. Grafana's backend renders
``$timeFilter`` as absolute epoch milliseconds, so evaluating a dashboard "at"
``DAY_EVAL`` is exactly what Grafana does when its clock shows that instant.

Device names are unique only within a site, as in real towns: ``maison-dupont`` and
``ferme-leroy`` each have an inverter called ``onduleur`` (both healthy and producing), and
``ecole-jaures`` and ``coop-terril`` each have an ``onduleur-2`` (both faulted). A query that
groups by device alone merges them, and the key-number and alert tests see it.

Known faults seeded (the alert tests expect exactly these):
* ``onduleur-2`` of ``ecole-jaures`` in FAULT (SunSpec St 7, Evt1 GROUND_FAULT bit, event rows) from 11:00 today,
  and ``onduleur-2`` of ``coop-terril`` in FAULT from 14:00 today;
* ``sports-ond2`` silent (no reading) from 13:30 today while its agent is up;
* ``sports-ond1`` string ``2`` dead (0 W) while string ``1`` produces;
* agent ``eglise`` offline from 13:00 today (``agent.up`` = 0), and a 2-hour gap on 26 October;
* agent ``vestiaires`` offline since 26 October 15:00, two days before "now": its last ``agent``
  row is the ``up`` = 0 of that instant, and its inverter has been silent since;
* agent ``ecole-jaures`` spool growing (flaky 4G) from 13:30 today;
* ``media-ond1`` lifetime counter reset (inverter replaced) on 25 October at 12:02.
"""

from __future__ import annotations

import itertools
import math
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.central.points import make_point
from agent.schema import (
    STATE_FAULT,
    STATE_MPPT,
    STATE_SLEEPING,
    TERRITORY_SITE,
)

PARIS = ZoneInfo("Europe/Paris")
UTC = UTC

RAW_START = datetime(2024, 10, 24, 0, 0, tzinfo=PARIS)
DAY_EVAL = datetime(2024, 10, 28, 15, 0, tzinfo=PARIS)
"""End of the seeded data and the daytime evaluation instant ("now")."""
NIGHT_EVAL = datetime(2024, 10, 28, 5, 0, tzinfo=PARIS)
"""A night-time evaluation instant: inverters asleep, some still answering."""
YEAR_START = date(2024, 1, 1)
STEP_S = 300
"""Poll interval of the simulated edge (the real one polls every 10 s; 5 min keeps the seed small)."""
SUB_STEPS = 5
"""Physics is integrated each minute; readings are taken every ``STEP_S``."""

TERRITORY_CONSUMPTION_WH_PER_YEAR = 36_000_000_000.0
"""Annual consumption reference of the territory (DESIGN.md rollup config example)."""

GROUND_FAULT_BIT = 1  # SunSpec Evt1 bit 0


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def local_day(t: datetime) -> date:
    return t.astimezone(PARIS).date()


def local_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=PARIS)


def sun_shape(t: datetime) -> float:
    """Clear-sky production shape, 0 at night. Late October in Pas-de-Calais: sun 06:30-16:30 UTC."""
    u = t.astimezone(UTC)
    hours = u.hour + u.minute / 60 + u.second / 3600
    x = (hours - 6.5) / 10.0
    if x <= 0 or x >= 1:
        return 0.0
    return math.sin(math.pi * x) ** 1.5


def awake(t: datetime) -> bool:
    """Inverters wake a little before the sun reaches the panels and sleep a while after it leaves.

    Hence the last evening reading holds the day's final counter value, and a day's energy is
    all in readings of that day.
    """
    u = t.astimezone(UTC)
    hours = u.hour + u.minute / 60
    return 6.0 <= hours <= 17.0


WEATHER = {date(2024, 10, 24): 0.55, date(2024, 10, 25): 0.8, date(2024, 10, 26): 0.35,
           date(2024, 10, 27): 0.7, date(2024, 10, 28): 0.9}


@dataclass(frozen=True)
class InverterSim:
    device: str
    peak_w: float
    counter_start_wh: float
    night_reporter: bool = False
    """Answers Modbus at night (state SLEEPING, 0 W); others are simply unreachable after dusk."""
    dead_string: str | None = None
    fault_from: datetime | None = None
    silent_from: datetime | None = None
    reset_at: datetime | None = None
    strings: tuple[str, ...] = ("1", "2")


@dataclass(frozen=True)
class SiteSim:
    slug: str
    name: str
    owner: str
    peak_power_w: float
    panels: int
    inverters: tuple[InverterSim, ...]
    meter: str | None = None
    day_load_w: float = 0.0
    night_load_w: float = 0.0
    offline: tuple[tuple[datetime, datetime], ...] = ()
    flaky_from: datetime | None = None
    latitude: float = 50.43
    longitude: float = 2.83


BATTERY_AT = ("ecole-jaures", "onduleur-2")
"""A hybrid inverter with a battery (power and state of charge only: no counters, so the rollups are unchanged)."""


def _t(d: int, h: int, m: int = 0) -> datetime:
    return datetime(2024, 10, d, h, m, tzinfo=PARIS)


SITES: tuple[SiteSim, ...] = (
    SiteSim("mairie", "Hôtel de ville", "commune", 36_000, 120,
            (InverterSim("mairie-ond1", 36_000, 41_250_000.0, night_reporter=True),),
            meter="mairie-compteur", day_load_w=14_000, night_load_w=3_000),
    SiteSim("ecole-jaures", "École Jean-Jaurès", "commune", 60_000, 200,
            (InverterSim("ecole-ond1", 30_000, 18_000_000.0),
             InverterSim("onduleur-2", 30_000, 17_500_000.0, night_reporter=True, fault_from=_t(28, 11))),
            flaky_from=_t(28, 13, 30)),
    SiteSim("salle-sports", "Salle des sports", "commune", 100_000, 330,
            (InverterSim("sports-ond1", 50_000, 60_000_000.0, dead_string="2", night_reporter=True),
             InverterSim("sports-ond2", 50_000, 61_000_000.0, silent_from=_t(28, 13, 30))),
            meter="sports-compteur", day_load_w=22_000, night_load_w=6_000),
    SiteSim("eglise", "Église Saint-Martin", "commune", 9_000, 30,
            (InverterSim("eglise-ond1", 9_000, 5_000_000.0),),
            offline=((_t(26, 10), _t(26, 12)), (_t(28, 13), DAY_EVAL + timedelta(hours=1)))),
    SiteSim("mediatheque", "Médiathèque", "commune", 24_000, 80,
            (InverterSim("media-ond1", 24_000, 9_000_000.0, reset_at=_t(25, 12, 2)),)),
    SiteSim("maison-dupont", "Toit Dupont", "citizen", 6_000, 18,
            (InverterSim("onduleur", 6_000, 2_100_000.0),)),
    SiteSim("ferme-leroy", "Ferme Leroy", "citizen", 30_000, 90,
            (InverterSim("onduleur", 30_000, 11_000_000.0, night_reporter=True),)),
    SiteSim("coop-terril", "Centrale citoyenne du terril", "cooperative", 250_000, 700,
            (InverterSim("coop-ond1", 125_000, 90_000_000.0),
             InverterSim("onduleur-2", 125_000, 88_000_000.0, night_reporter=True, fault_from=_t(28, 14)))),
    SiteSim("vestiaires", "Vestiaires du stade", "commune", 12_000, 40,
            (InverterSim("vestiaires-ond1", 12_000, 3_000_000.0),),
            offline=((_t(26, 15), DAY_EVAL + timedelta(hours=1)),)),
)

EXPECTED_FIRING_AT_DAY: dict[str, set[tuple[tuple[str, str], ...]]] = {
    "terril-inverter-fault": {(("device", "onduleur-2"), ("site", "ecole-jaures")),
                              (("device", "onduleur-2"), ("site", "coop-terril"))},
    "terril-comm-loss": {(("device", "sports-ond2"), ("site", "salle-sports")),
                         (("device", "eglise-ond1"), ("site", "eglise")),
                         (("device", "vestiaires-ond1"), ("site", "vestiaires"))},
    "terril-no-production": {(("device", "onduleur-2"), ("site", "ecole-jaures")),
                             (("device", "onduleur-2"), ("site", "coop-terril"))},
    "terril-dead-string": {(("device", "sports-ond1"), ("site", "salle-sports"), ("string", "2"))},
    "terril-agent-offline": {(("site", "eglise"),), (("site", "vestiaires"),)},
    "terril-spool-growing": {(("site", "ecole-jaures"),)},
}
"""Alert instances (sorted label pairs) that must fire at ``DAY_EVAL``, and no others."""

EXPECTED_FIRING_AT_NIGHT: dict[str, set[tuple[tuple[str, str], ...]]] = {
    "terril-agent-offline": {(("site", "vestiaires"),)},
}
"""At night (27 October 22:30, 28 October 05:00) only the agent dead since 26 October fires:
daylight rules are silent, and an agent that is down stays an alert day and night."""


def _in(t: datetime, spans: tuple[tuple[datetime, datetime], ...]) -> bool:
    return any(a <= t < b for a, b in spans)


@dataclass
class DeviceTrace:
    """What the simulator knows about one inverter at each reading instant."""

    times: list[datetime] = field(default_factory=list)
    energy_wh: list[float] = field(default_factory=list)
    """Physical energy produced since RAW_START (the truth)."""
    counter_wh: list[float | None] = field(default_factory=list)
    """What the device's lifetime counter shows (None: not readable)."""
    recorded: list[bool] = field(default_factory=list)
    """True when a reading reached InfluxDB."""


@dataclass
class Town:
    """The seeded data (as line protocol) and the truths computed while simulating."""

    lines: list[str] = field(default_factory=list)
    traces: dict[tuple[str, str], DeviceTrace] = field(default_factory=dict)
    """(site, device) -> trace: a device name alone is not unique across sites."""
    daily: dict[tuple[str, date], dict[str, float]] = field(default_factory=dict)
    """energy_daily rows as written: (site, local day) -> fields."""

    # ---------------------------------------------------------------- truths

    def energy_between(self, site: str, device: str, start: datetime, end: datetime) -> float:
        """Physical energy of *device* measured by readings in [start, end] (last minus first reading)."""
        tr = self.traces[(site, device)]
        idx = [i for i, t in enumerate(tr.times) if start <= t <= end and tr.recorded[i]]
        if not idx:
            return 0.0
        return tr.energy_wh[idx[-1]] - tr.energy_wh[idx[0]]

    def reported_between(self, site: str, device: str, start: datetime, end: datetime) -> bool:
        tr = self.traces[(site, device)]
        return any(start <= t <= end and r for t, r in zip(tr.times, tr.recorded, strict=False))

    def today_energy_by_site(self, at: datetime) -> dict[str, float]:
        """Energy since local midnight per site, for the sites with at least one reading today."""
        start = local_midnight(local_day(at))
        out: dict[str, float] = {}
        for (site, device) in self.traces:
            if self.reported_between(site, device, start, at):
                out[site] = out.get(site, 0.0) + self.energy_between(site, device, start, at)
        return out

    def daily_sum(self, site: str, name: str, first: date, last: date) -> float:
        return sum(v.get(name, 0.0) for (s, d), v in self.daily.items() if s == site and first <= d <= last)


def _sim_site(site: SiteSim, town: Town) -> None:
    minute = timedelta(seconds=STEP_S // SUB_STEPS)
    n_steps = int((DAY_EVAL.astimezone(UTC) - RAW_START.astimezone(UTC)).total_seconds() // STEP_S) + 1
    inv_energy = {inv.device: 0.0 for inv in site.inverters}
    imp = 4_000_000.0
    exp = 1_500_000.0
    uptime = 86_400.0 * 12
    poll_ok = 1_000_000
    poll_err = 10
    spool = 0
    was_online = True
    for inv in site.inverters:
        town.traces[(site.slug, inv.device)] = DeviceTrace()

    def weather(t: datetime) -> float:
        return WEATHER[local_day(t)]

    def inverter_power(inv: InverterSim, t: datetime) -> float:
        if inv.fault_from is not None and t >= inv.fault_from:
            return 0.0
        p = inv.peak_w * 0.8 * weather(t) * sun_shape(t)
        if inv.dead_string is not None:
            p *= (len(inv.strings) - 1) / len(inv.strings)
        return p

    def site_load(t: datetime) -> float:
        return site.day_load_w if 7 <= t.astimezone(PARIS).hour < 19 else site.night_load_w

    t = RAW_START.astimezone(UTC)  # UTC: aware-datetime arithmetic in Europe/Paris is wall-clock arithmetic
    for _ in range(n_steps):
        online = not _in(t, site.offline)
        ts = ms(t)
        # --- agent health (the ingest writes up=0 once, from the agent's last will)
        if online:
            if site.flaky_from is not None and t > site.flaky_from:
                spool += 30
            town.lines.append(make_point("agent", {"site": site.slug}, {
                "up": 1, "uptime_s": uptime, "spool_depth": spool, "spool_dropped": 0,
                "poll_ok": poll_ok, "poll_errors": poll_err, "rss_bytes": 42_000_000,
                "spool_unacked": 2, "spool_unacked_oldest_s": 1.0, "rows_resent": 0}, ts).to_line())
        elif was_online:
            town.lines.append(make_point("agent", {"site": site.slug}, {"up": 0}, ts).to_line())
        was_online = online
        total_p = 0.0
        for inv in site.inverters:
            p = inverter_power(inv, t)
            total_p += p
            tr = town.traces[(site.slug, inv.device)]
            counter: float | None = inv.counter_start_wh + inv_energy[inv.device]
            if inv.reset_at is not None and t >= inv.reset_at:
                counter = inv_energy[inv.device] - reset_energy[(site.slug, inv.device)]
            answers = awake(t) or inv.night_reporter
            silent = inv.silent_from is not None and t >= inv.silent_from
            recorded = online and answers and not silent
            tr.times.append(t)
            tr.energy_wh.append(inv_energy[inv.device])
            tr.counter_wh.append(counter)
            tr.recorded.append(recorded)
            if recorded:
                faulted = inv.fault_from is not None and t >= inv.fault_from
                state = STATE_FAULT if faulted else (STATE_MPPT if p > 0 else STATE_SLEEPING)
                dc = p / 0.97
                fields: dict[str, float | int | str] = {
                    "ac_power_w": round(p, 3), "ac_energy_wh": round(float(counter or 0), 3),
                    "dc_power_w": round(dc, 3), "dc_voltage_v": 620.0 if p > 0 else 0.0,
                    "ac_voltage_an_v": 231.0, "ac_voltage_bn_v": 230.0, "ac_voltage_cn_v": 232.0,
                    "ac_frequency_hz": 50.0, "ac_current_a": round(p / 693.0, 3),
                    "temp_cabinet_c": 18.0 + p / inv.peak_w * 20, "temp_heatsink_c": 20.0 + p / inv.peak_w * 30,
                    "state": state, "events": GROUND_FAULT_BIT if faulted else 0,
                }
                town.lines.append(make_point("inverter", {"site": site.slug, "device": inv.device},
                                             fields, ts).to_line())
                if (site.slug, inv.device) == BATTERY_AT:  # charges with a tenth of the production, else discharges
                    town.lines.append(make_point("battery", {"site": site.slug, "device": inv.device}, {
                        "power_w": round(-p / 10, 3) if p > 0 else 800.0,
                        "state_of_charge": 0.8 if p > 0 else 0.3}, ts).to_line())
                for s in inv.strings:
                    sp = 0.0 if s == inv.dead_string else (dc / (len(inv.strings) - (1 if inv.dead_string else 0)))
                    town.lines.append(make_point("mppt", {"site": site.slug, "device": inv.device, "string": s}, {
                        "dc_power_w": round(sp, 3), "dc_voltage_v": 0.0 if sp == 0 else 620.0,
                        "dc_current_a": round(sp / 620.0, 4)}, ts).to_line())
        if site.meter is not None and online:
            town.lines.append(make_point("meter", {"site": site.slug, "device": site.meter}, {
                "power_w": round(site_load(t) - total_p, 3), "energy_import_wh": round(imp, 3),
                "energy_export_wh": round(exp, 3), "ac_frequency_hz": 50.0}, ts).to_line())
        # --- integrate the physics until the next reading
        for _sub in range(SUB_STEPS):
            a, b = t, t + minute
            load = site_load(a)
            prod = 0.0
            for inv in site.inverters:
                e = (inverter_power(inv, a) + inverter_power(inv, b)) / 2 * minute.total_seconds() / 3600
                inv_energy[inv.device] += e
                if inv.reset_at is not None and a < inv.reset_at <= b:
                    reset_energy[(site.slug, inv.device)] = inv_energy[inv.device]
                # the meter sees what the roof really produces (a silent inverter still produces)
                prod += e
            net = load * minute.total_seconds() / 3600 - prod
            if net > 0:
                imp += net
            else:
                exp += -net
            t = b
        uptime += STEP_S
        poll_ok += len(site.inverters)
        if any(i.silent_from is not None and t > i.silent_from for i in site.inverters):
            poll_err += 1


reset_energy: dict[tuple[str, str], float] = {}


def _counter_days(readings: list[tuple[datetime, float]]) -> dict[date, float]:
    """Sum of non-negative counter increments of the intervals between consecutive readings, per local day.

    This is what a correct rollup computes from lifetime counters: a counter that
    goes backwards (reset, replacement) contributes nothing instead of a huge negative.
    """
    out: dict[date, float] = {}
    for (t0, c0), (t1, c1) in itertools.pairwise(readings):
        # readings fall on a grid aligned to local midnight: an interval belongs to the day it ends in,
        # the one ending exactly at midnight to the day before
        if t1 - t0 > timedelta(hours=18) and c1 != c0:
            raise AssertionError("the seed never has a producing gap that long")
        day = local_day(t1 - timedelta(milliseconds=1))
        out[day] = out.get(day, 0.0) + max(0.0, c1 - c0)
    return out


def _meter_readings(town_lines: list[str], device: str, name: str) -> list[tuple[datetime, float]]:
    out = []
    for line in town_lines:
        if line.startswith("meter,") and f"device={device}" in line:
            _head, fields, ts = line.rsplit(" ", 2)
            for kv in fields.split(","):
                k, v = kv.split("=")
                if k == name:
                    out.append((datetime.fromtimestamp(int(ts) / 1000, UTC), float(v)))
    return out


def _synthetic_day(site: SiteSim, d: date) -> dict[str, float]:
    """Rollup rows before the raw data: deterministic, plausible, simple."""
    doy = d.timetuple().tm_yday
    hours = 1.0 + 3.5 * math.sin(math.pi * (doy - 1) / 366) ** 2
    weather = 0.55 + 0.4 * ((doy * 37) % 11) / 10
    row = {"production_wh": round(site.peak_power_w * hours * weather, 3)}
    if site.meter is not None:
        cons = site.day_load_w * 12 + site.night_load_w * 12
        self_use = 0.6 * min(row["production_wh"], cons)
        row["import_wh"] = round(cons - self_use, 3)
        row["export_wh"] = round(row["production_wh"] - self_use, 3)
        row["consumption_wh"] = round(row["production_wh"] + row["import_wh"] - row["export_wh"], 3)
    return row


def build_town() -> Town:
    reset_energy.clear()
    town = Town()
    for site in SITES:
        _sim_site(site, town)
        town.lines.append(make_point("site_info", {"site": site.slug}, {
            "peak_power_w": site.peak_power_w, "panels": site.panels, "owner": site.owner, "name": site.name,
            "latitude": site.latitude, "longitude": site.longitude}, ms(RAW_START)).to_line())
    # fault transitions
    for site in SITES:
        for inv in site.inverters:
            if inv.fault_from is not None:
                town.lines.append(make_point("event", {"site": site.slug, "device": inv.device, "code": "GROUND_FAULT"},
                                             {"active": 1, "text": "Ground fault"}, ms(inv.fault_from)).to_line())
    town.lines.append(make_point("event", {"site": "mairie", "device": "mairie-ond1", "code": "OVER_TEMP"},
                                 {"active": 1, "text": "Over temperature"}, ms(_t(25, 13))).to_line())
    town.lines.append(make_point("event", {"site": "mairie", "device": "mairie-ond1", "code": "OVER_TEMP"},
                                 {"active": 0, "text": "Over temperature"}, ms(_t(25, 13, 20))).to_line())
    # energy_daily: synthetic before the raw data, computed from the counters during it
    d = YEAR_START
    while d < RAW_START.date():
        for site in SITES:
            town.daily[(site.slug, d)] = _synthetic_day(site, d)
        d += timedelta(days=1)
    for site in SITES:
        per_day: dict[date, dict[str, float]] = {}
        for inv in site.inverters:
            tr = town.traces[(site.slug, inv.device)]
            readings = [(t, float(c)) for t, c, r in zip(tr.times, tr.counter_wh, tr.recorded, strict=False) if r and c]
            for day, wh in _counter_days(readings).items():
                row = per_day.setdefault(day, {"production_wh": 0.0})
                row["production_wh"] += wh
        if site.meter is not None:
            for name, key in (("energy_import_wh", "import_wh"), ("energy_export_wh", "export_wh")):
                for day, wh in _counter_days(_meter_readings(town.lines, site.meter, name)).items():
                    per_day.setdefault(day, {"production_wh": 0.0})[key] = wh
        for day, row in per_day.items():
            if "import_wh" in row:
                row["consumption_wh"] = row["production_wh"] + row["import_wh"] - row["export_wh"]
            town.daily[(site.slug, day)] = {k: round(v, 3) for k, v in row.items()}
    days = sorted({d for (_s, d) in town.daily})
    for d in days:
        rows = [town.daily[(s.slug, d)] for s in SITES if (s.slug, d) in town.daily]
        terr = {k: round(sum(r.get(k, 0.0) for r in rows), 3)
                for k in ("production_wh", "consumption_wh", "import_wh", "export_wh")}
        # the rollup's rule: the annual reference times the day's length over a mean year (23 h and 25 h days)
        hours = (local_midnight(d + timedelta(days=1)).astimezone(UTC) - local_midnight(d).astimezone(UTC)
                 ).total_seconds() / 3600
        terr["reference_consumption_wh"] = round(TERRITORY_CONSUMPTION_WH_PER_YEAR * hours / (365.25 * 24), 3)
        town.daily[(TERRITORY_SITE, d)] = terr
    for (slug, d), row in town.daily.items():
        town.lines.append(make_point("energy_daily", {"site": slug}, row, ms(local_midnight(d))).to_line())
    for year, row in territory_balance_rows().items():
        town.lines.append(make_point("territory_balance", {"commune": TERRITORY_SITE}, row,
                                     ms(local_midnight(date(year, 1, 1)))).to_line())
    return town


BALANCE_YEARS = {  # year: (electricity consumption, renewable production, monitored production), Wh
    2019: (36.0e9, 5.4e9, None),
    2020: (34.5e9, 6.0e9, None),
    2021: (35.5e9, 6.9e9, 0.21e9),
    2022: (35.0e9, 7.7e9, 0.48e9),
    2023: (34.0e9, 8.5e9, 0.52e9),
}
TARGET_YEAR, TARGET_SHARE, BASELINE_YEAR = 2050, 1.0, 2019
FLEET_YIELD = 950.0  # kWh/kWp/year
MEDIAN_ROOF_W = 36000.0


def territory_balance_rows() -> dict[int, dict[str, float]]:
    """What ``terril territory import`` writes for the territory: open-data years, then the target path."""
    baseline = BALANCE_YEARS[BASELINE_YEAR][1] / BALANCE_YEARS[BASELINE_YEAR][0]
    rows: dict[int, dict[str, float]] = {}
    for year in range(BASELINE_YEAR, TARGET_YEAR + 1):
        row = {"target_share": baseline + (TARGET_SHARE - baseline) * (year - BASELINE_YEAR)
               / (TARGET_YEAR - BASELINE_YEAR)}
        if year in BALANCE_YEARS:
            consumed, renewable, monitored = BALANCE_YEARS[year]
            row.update(consumption_wh=consumed, renewable_production_wh=renewable, renewable_share=renewable / consumed)
            if monitored is not None:
                row["monitored_production_wh"] = monitored
            missing = TARGET_SHARE * consumed - renewable
            row.update(missing_wh=missing, missing_peak_power_w=missing / FLEET_YIELD,
                       missing_roofs=missing / FLEET_YIELD / MEDIAN_ROOF_W, fleet_yield_kwh_per_kwp=FLEET_YIELD)
        rows[year] = row
    return rows


# ---------------------------------------------------------------- InfluxDB 1.x HTTP helpers


def write_lines(url: str, db: str, lines: list[str], batch: int = 5000) -> None:
    for i in range(0, len(lines), batch):
        body = "\n".join(lines[i:i + batch]).encode()
        req = urllib.request.Request(f"{url}/write?db={db}&precision=ms", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 204, resp.read()


def iter_chunks(lines: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(lines), size):
        yield lines[i:i + size]
