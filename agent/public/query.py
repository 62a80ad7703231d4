"""What InfluxDB says at one instant: the few figures the public site needs, as plain data.

Everything is read at ``at`` (``terril public build --at``), never after it,
so a page built for a past instant shows what a visitor saw then:

* finished local days come from the rollup's ``energy_daily`` rows (days
  before today's local midnight);
* today comes from the inverters' lifetime counters up to ``at``, with the
  rollup's own arithmetic (``agent.central.rollup.attribute_to_days``): the
  interval from the last reading before midnight is split in time, so today
  gets its share and the night gap of a sleeping inverter gives zero. The
  reading before midnight is looked for over two days only (a roof silent
  for longer contributes from its first reading of today);
* power now: the latest ``ac_power_w`` of each inverter that reported in
  the 15 minutes before ``at``.

All of it is one batch of InfluxQL statements (a handful of HTTP requests,
see ``agent.central.influxql``), whose cost does not grow with the number of
raw readings except for today's first/last selectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.central.influxql import Series, quote_ident, quote_string, time_ms
from agent.central.rollup import (
    MEAN_YEAR_MS,
    PRODUCTION,
    REFERENCE,
    CounterWindow,
    LocalDay,
    QueryClient,
    counter_increase,
    day_start_ms,
    local_days,
)
from agent.schema import AGENT, ENERGY_DAILY, INVERTER, TERRITORY_SITE, is_slug

POWER_FRESH = timedelta(minutes=15)
"""An inverter's power counts in "power now" when it reported this recently."""
BEFORE_MIDNIGHT = timedelta(days=2)
"""How far back the reading before today's midnight is looked for."""
CHART_DAYS = 30
RECENT = timedelta(days=45)
"""A roof's latest production day is looked for this far back (an unbounded ``last()`` scans every shard)."""

_AC_POWER = quote_ident(INVERTER.field("ac_power_w").name)
_AC_ENERGY = quote_ident(INVERTER.field("ac_energy_wh").name)
_INVERTER = quote_ident(INVERTER.name)
_DAILY = quote_ident(ENERGY_DAILY.name)
_PROD = quote_ident(PRODUCTION)
_REF = quote_ident(REFERENCE)
_TERRITORY = quote_string(TERRITORY_SITE)
_AGENT = quote_ident(AGENT.name)
_UPTIME = quote_ident(AGENT.field("uptime_s").name)
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TerritoryDay:
    """One local day of the territory: production and the consumption reference (None when unknown)."""

    day: date
    production_wh: float | None
    reference_wh: float | None


@dataclass
class SiteFacts:
    """One site as InfluxDB knows it at ``at`` (its slug is private: see agent.public.model)."""

    slug: str
    power_now_w: float | None = None
    """Sum over the inverters that reported in the last 15 minutes; None when none did."""
    today_wh: float = 0.0
    year_wh: float = 0.0
    total_wh: float = 0.0
    last_reading_ms: int | None = None
    """Latest inverter reading up to ``at`` (looked for over today and the two days before)."""
    last_day: date | None = None
    """Latest finished local day with a production row, in the last 45 days."""
    daily: dict[date, float] = field(default_factory=dict)
    """Production of the last 30 local days, today (partial) included."""
    last_health_ms: int | None = None
    """Latest agent health row up to ``at`` (last 24 h): the agent is alive even while its inverters sleep."""


@dataclass(frozen=True)
class Facts:
    at: datetime
    """The instant the site describes, in the rollup's timezone."""
    timezone: str
    sites: dict[str, SiteFacts]
    territory: tuple[TerritoryDay, ...]
    """Every local day from 1 January of last year to today (partial, up to ``at``), in order."""
    total_wh: float
    first_day: date | None
    """First local day with production (the start of "since the first reading")."""
    host_daily: dict[date, float]
    """Daily production of the newborn panels' site, from the earliest birth on (empty without one)."""

    @property
    def today(self) -> date:
        return self.at.date()


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _by_site(result: list[Series]) -> dict[str, list[list[object]]]:
    """Rows per site tag; ``_territory`` is not a slug, so the town-wide row is left out here."""
    out: dict[str, list[list[object]]] = {}
    for s in result:
        site = s.tags.get("site", "")
        if is_slug(site):
            out.setdefault(site, []).extend(s.values)
    return out


def _by_device(result: list[Series]) -> dict[tuple[str, str], tuple[int, float]]:
    out: dict[tuple[str, str], tuple[int, float]] = {}
    for s in result:
        site, device = s.tags.get("site", ""), s.tags.get("device", "")
        if not (is_slug(site) and is_slug(device)) or not s.values:
            continue
        t, v = s.values[0][0], _number(s.values[0][1])
        if isinstance(t, int) and v is not None:
            out[(site, device)] = (t, v)
    return out


def fetch_facts(
    client: QueryClient,
    at: datetime,
    tz: str,
    reference_wh_per_year: float | None = None,
    host_site: str | None = None,
    host_since: date | None = None,
) -> Facts:
    """Query InfluxDB for everything the public site shows at *at* (timezone-aware).

    *reference_wh_per_year* prorates today's consumption reference up to *at*
    (the rollup writes the whole day's share). *host_site*/*host_since*: the
    newborn panels' site and the earliest birth, for the panels' own figures.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    zone = ZoneInfo(tz)
    at = at.astimezone(zone)
    at_ms = _ms(at)
    today = at.date()
    (today_day,) = local_days(today, today, tz)
    midnight = today_day.start_ms
    year_start = day_start_ms(date(today.year, 1, 1), zone)
    history_start = day_start_ms(date(today.year - 1, 1, 1), zone)
    chart_start = day_start_ms(today - timedelta(days=CHART_DAYS - 1), zone)
    before_start = midnight - int(BEFORE_MIDNIGHT.total_seconds() * 1000)
    recent_start = day_start_ms(today - RECENT, zone)
    up_to_at = f"time <= {time_ms(at_ms)}"

    fresh_start = at_ms - int(POWER_FRESH.total_seconds() * 1000)
    today_so_far = f"time >= {time_ms(midnight)} AND {up_to_at} GROUP BY site, device"
    statements = [
        f"SELECT last({_AC_POWER}) FROM {_INVERTER} WHERE time > {time_ms(fresh_start)} AND {up_to_at}"
        " GROUP BY site, device",
        f"SELECT last({_AC_ENERGY}) FROM {_INVERTER} WHERE time >= {time_ms(before_start)}"
        f" AND time < {time_ms(midnight)} GROUP BY site, device",
        f"SELECT first({_AC_ENERGY}) FROM {_INVERTER} WHERE {today_so_far}",
        f"SELECT last({_AC_ENERGY}) FROM {_INVERTER} WHERE {today_so_far}",
        f"SELECT {_PROD}, {_REF} FROM {_DAILY} WHERE site = {_TERRITORY} AND time >= {time_ms(history_start)}"
        f" AND time < {time_ms(midnight)}",
        f"SELECT sum({_PROD}) FROM {_DAILY} WHERE time >= {time_ms(year_start)}"
        f" AND time < {time_ms(midnight)} GROUP BY site",
        f"SELECT sum({_PROD}) FROM {_DAILY} WHERE time < {time_ms(midnight)} GROUP BY site",
        f"SELECT {_PROD} FROM {_DAILY} WHERE time >= {time_ms(chart_start)}"
        f" AND time < {time_ms(midnight)} GROUP BY site",
        f"SELECT sum({_PROD}) FROM {_DAILY} WHERE site = {_TERRITORY} AND time < {time_ms(midnight)}",
        f"SELECT first({_PROD}) FROM {_DAILY} WHERE site = {_TERRITORY} AND time < {time_ms(midnight)}",
        f"SELECT last({_PROD}) FROM {_DAILY} WHERE time >= {time_ms(recent_start)}"
        f" AND time < {time_ms(midnight)} GROUP BY site",
        f"SELECT last({_UPTIME}) FROM {_AGENT} WHERE time > {time_ms(at_ms - DAY_MS)} AND {up_to_at} GROUP BY site",
    ]
    if host_site is not None and host_since is not None:
        statements.append(
            f"SELECT {_PROD} FROM {_DAILY} WHERE site = {quote_string(host_site)}"
            f" AND time >= {time_ms(day_start_ms(host_since, zone))} AND time < {time_ms(midnight)}"
        )
    results = client.query_many(statements)

    sites: dict[str, SiteFacts] = {}

    def site(slug: str) -> SiteFacts:
        return sites.setdefault(slug, SiteFacts(slug))

    def local_date(ms: object) -> date | None:
        return datetime.fromtimestamp(ms / 1000, zone).date() if isinstance(ms, int) else None

    for (slug, _device), (_t, watts) in _by_device(results[0]).items():
        s = site(slug)
        s.power_now_w = (s.power_now_w or 0.0) + max(watts, 0.0)

    before, firsts, lasts = (_by_device(results[i]) for i in (1, 2, 3))
    for key, last in lasts.items():
        first = firsts.get(key, last)
        window = CounterWindow(before=before.get(key), firsts={0: first}, lasts={0: last})
        s = site(key[0])
        s.today_wh += _today_energy(window, today_day)
        s.last_reading_ms = max(s.last_reading_ms or 0, last[0])
    for (slug, _device), (t, _v) in before.items():
        s = site(slug)
        s.last_reading_ms = max(s.last_reading_ms or 0, t)

    territory_rows: dict[date, tuple[float | None, float | None]] = {}
    for series in results[4]:
        for row in series.values:
            d = local_date(row[0])
            if d is not None:
                territory_rows[d] = (_number(row[1]), _number(row[2]))

    for slug, rows in _by_site(results[5]).items():
        site(slug).year_wh = _number(rows[0][1]) or 0.0
    for slug, rows in _by_site(results[6]).items():
        site(slug).total_wh = _number(rows[0][1]) or 0.0
    for slug, rows in _by_site(results[7]).items():
        for row in rows:
            d, wh = local_date(row[0]), _number(row[1])
            if d is not None and wh is not None:
                site(slug).daily[d] = wh
    for slug, rows in _by_site(results[10]).items():
        site(slug).last_day = local_date(rows[0][0])

    today_total = 0.0
    for s in sites.values():
        s.year_wh += s.today_wh
        s.total_wh += s.today_wh
        if s.today_wh or (s.last_reading_ms is not None and s.last_reading_ms >= midnight):
            s.daily[today] = s.today_wh
        today_total += s.today_wh

    territory: list[TerritoryDay] = []
    for day in local_days(date(today.year - 1, 1, 1), today, tz):
        if day.day == today:
            has_today = any(s.last_reading_ms is not None and s.last_reading_ms >= midnight for s in sites.values())
            reference = (reference_wh_per_year * (at_ms - midnight) / MEAN_YEAR_MS
                         if reference_wh_per_year is not None else None)
            territory.append(TerritoryDay(today, today_total if has_today else None, reference))
        else:
            prod, ref = territory_rows.get(day.day, (None, None))
            territory.append(TerritoryDay(day.day, prod, ref))

    total_rows = results[8]
    total = (_number(total_rows[0].values[0][1]) or 0.0) if total_rows and total_rows[0].values else 0.0
    first_rows = results[9]
    first_day = local_date(first_rows[0].values[0][0]) if first_rows and first_rows[0].values else None
    if first_day is None and today_total > 0:
        first_day = today

    host_daily: dict[date, float] = {}
    for slug, rows in _by_site(results[11]).items():
        if rows and isinstance(rows[0][0], int):
            site(slug).last_health_ms = rows[0][0]

    if len(results) > 12:
        for series in results[12]:
            for row in series.values:
                d, wh = local_date(row[0]), _number(row[1])
                if d is not None and wh is not None:
                    host_daily[d] = wh
        if host_site in sites and sites[host_site].today_wh:
            host_daily[today] = sites[host_site].today_wh

    return Facts(at, tz, sites, tuple(territory), total + today_total, first_day, host_daily)


def _today_energy(window: CounterWindow, today: LocalDay) -> float:
    """Energy of today up to the last reading: the rollup's split of the midnight interval, plus first→last."""
    energy = 0.0
    first, last = window.firsts[0], window.lasts[0]
    if window.before is not None:
        b = window.before
        span = first[0] - b[0]
        if span > 0:
            energy += counter_increase(b[1], first[1]) * (first[0] - today.start_ms) / span
    if last[0] > first[0]:
        energy += counter_increase(first[1], last[1])
    return energy


def territory_sum(days: Sequence[TerritoryDay], since: date, until: date) -> tuple[float, float | None]:
    """Production and reference over since..until (included); reference None when a day with production lacks it."""
    production = 0.0
    reference = 0.0
    complete = True
    any_reference = False
    for d in days:
        if since <= d.day <= until:
            production += d.production_wh or 0.0
            if d.reference_wh is None:
                if d.production_wh:
                    complete = False
            else:
                reference += d.reference_wh
                any_reference = True
    return production, (reference if complete and any_reference else None)
