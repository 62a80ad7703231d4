"""Daily energy rollups: the ``energy_daily`` measurement, per site and for the territory.

What Grafana (and anyone) can rely on
-------------------------------------
* One row per site and **local day** (timezone configurable, default
  Europe/Paris), tag ``site``; the town-wide row has ``site=_territory``.
* The row's timestamp is the **first instant of the local day** (local
  midnight, in UTC): 2026-10-25 in Paris is stored at 2026-10-24T22:00:00Z.
  ``GROUP BY time(1d) tz('Europe/Paris')`` therefore puts each row in its own
  day, and a re-run writes the same series and timestamp again, which
  InfluxDB treats as an overwrite: rollups are idempotent, never duplicated.
* Fields, all floats in Wh (see ``agent.schema.ENERGY_DAILY``):
  - ``production_wh``: sum over the site's inverters of the increase of
    ``inverter.ac_energy_wh`` during the day;
  - ``import_wh`` / ``export_wh``: increase of ``meter.energy_import_wh`` /
    ``meter.energy_export_wh`` (sum over the site's meters);
  - ``battery_charge_wh`` / ``battery_discharge_wh``: increase of
    ``battery.energy_charge_wh`` / ``battery.energy_discharge_wh`` (sum over the
    site's batteries, e.g. a Sungrow SH hybrid's);
  - ``consumption_wh`` = production + import - export + discharge - charge, only
    for sites with a meter (``import_wh`` present; a meter without an export
    counter counts export as 0; a metered site without inverter data counts
    production as 0, a site without a battery charge and discharge as 0): what
    the battery gave the building was consumed, what it took was not. It is not
    clamped: a negative value reveals missing inverter data;
  - ``_territory``: the sum of each field over the sites that have it, plus
    ``reference_consumption_wh`` = annual reference × day length / (365.25 × 24 h):
    a 23 h day gets 23/8766 of the year, a 25 h day 25/8766. The mean year of
    the Julian calendar makes 365 normal years and one leap year sum to the
    reference within 0.07 %, and ties the share to elapsed time like the energy.
* A field is written only when at least one reading interval of a counter of
  that kind touches the day; a day with no data has no row (never a 0).
  Today's row is partial and is overwritten by each run until the day ends.

How a day's energy is computed (and why it is exact)
----------------------------------------------------
Energy comes from the lifetime counters, never from integrating power. For
each counter series (one field of one device) the consecutive readings
``(t0, v0), (t1, v1) …`` define intervals, and each interval carries the
counter increase ``inc(v_prev, v)``:

* ``v >= v_prev``: ``v − v_prev``;
* **reset** — ``v < v_prev / 2`` (inverter replaced, counter restarted from
  zero): ``v``, the energy counted since the restart (exact when the device
  produced nothing between its last old reading and the restart, which is the
  case for a replacement). InfluxQL's ``non_negative_difference`` would lose
  it, which is one reason the arithmetic is not done in InfluxQL;
* a smaller decrease (a bad read, or a replacement counter that does not
  start from zero): 0, and the next interval counts from the lower value.
  Never a negative.

An interval inside one day belongs to that day. An interval that spans one or
more day boundaries — the normal midnight crossing, or a gap (link down,
inverter asleep) across midnight — is **split linearly in time** between the
days it covers. This is exact when the power was constant over the gap (a
sleeping inverter: zero; a night base load) and always conserves energy: the
days' shares add up to the counter difference. Attributing the whole interval
to the day of the next reading (what ``SELECT sum(d) FROM (SELECT
non_negative_difference(…))`` does) would move the energy of a night gap
entirely into the next day. Intervals longer than ``max_gap`` (45 days) are
dropped: their shape is unknown and bounding them keeps every query bounded.

Why this is cheap enough to run every 5 minutes: inside a day the sum of the
increases telescopes to ``last − first`` unless the counter decreased. So the
server is asked, per counter field and per day, only for each series' first
and last reading (InfluxQL selectors keep the reading's own timestamp), the
last reading before the window, the first after it, and the few points where
the counter decreased (``difference() < 0``, computed server side). Only for a
device-day with a decrease are the raw readings fetched and summed in Python.
For ~50 devices over "yesterday and today" that is 7 statements per counter
field (35 in all) in 5 HTTP requests, returning a few hundred numbers; the
only scan of raw points (``difference()``) runs inside InfluxDB.

The readings of day D determine its row together with the nearest reading
before D and after D, whatever window a run covers: a backfill, the 5-minute
job and a re-run all write the same values.

The 5-minute job covers yesterday and today, which is enough as long as a
counter's gaps are short: an interval across midnight is closed while both
its days are still in the window. A longer gap (a meter silent from day 1
noon to day 4 noon) is closed by a reading when its first days have left the
window, and its share of days 1 and 2 would never be written. So before each
run the job asks, per counter series, for the last reading before the window
and the first inside it; when they are more than ``days_back`` local days
apart, the run reaches back to the day of the earlier one (at most
``max_gap``, 45 days, like every interval). Each such gap is extended once
per process, not at every run while its closing reading stays in the window.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from agent.central.influxql import InfluxQLClient, Series, quote_ident, quote_string, time_ms
from agent.central.points import Point, make_point
from agent.errors import TerrilError
from agent.schema import BATTERY, ENERGY_DAILY, INVERTER, METER, TERRITORY_SITE, is_slug

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Paris"
MEAN_YEAR_MS = 365.25 * 24 * 3600 * 1000
"""Length of the year the annual consumption reference is spread over (see module docstring)."""
RESET_RATIO = 0.5
"""A counter that falls below this fraction of its previous value restarted from zero."""
DEFAULT_MAX_GAP = timedelta(days=45)
CHUNK_DAYS = 31
"""Days computed per round of queries during a backfill."""

PRODUCTION = ENERGY_DAILY.field("production_wh").name
CONSUMPTION = ENERGY_DAILY.field("consumption_wh").name
IMPORT = ENERGY_DAILY.field("import_wh").name
EXPORT = ENERGY_DAILY.field("export_wh").name
REFERENCE = ENERGY_DAILY.field("reference_consumption_wh").name
CHARGE = ENERGY_DAILY.field("battery_charge_wh").name
DISCHARGE = ENERGY_DAILY.field("battery_discharge_wh").name


@dataclass(frozen=True)
class CounterSpec:
    """A lifetime counter field and the ``energy_daily`` field its daily increase feeds."""

    measurement: str
    field: str
    daily_field: str


COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec(INVERTER.name, INVERTER.field("ac_energy_wh").name, PRODUCTION),
    CounterSpec(METER.name, METER.field("energy_import_wh").name, IMPORT),
    CounterSpec(METER.name, METER.field("energy_export_wh").name, EXPORT),
    CounterSpec(BATTERY.name, BATTERY.field("energy_charge_wh").name, CHARGE),
    CounterSpec(BATTERY.name, BATTERY.field("energy_discharge_wh").name, DISCHARGE),
)

Sample = tuple[int, float]
"""A counter reading: (epoch ms, value in Wh)."""


class QueryClient(Protocol):
    def query_many(self, statements: Sequence[str], params: dict[str, str] | None = None) -> list[list[Series]]: ...


class DailyExtension(Protocol):
    """More rows from each chunk of daily rows, and the territory's annual reference (when it knows one).

    ``agent.central.territory.daily.CommuneDaily`` adds a row per commune and takes the
    reference from the imported open data; without it, the reference is the config's constant.
    """

    def reference_wh_per_year(self) -> float | None: ...

    def extra_points(self, rows: Sequence[DailyEnergy]) -> list[Point]: ...


Writer = Callable[[list[Point]], object]
"""Writes points to InfluxDB and raises when it could not; may return the list of
points refused one by one (``agent.central.writers.InfluxWriter.write`` does)."""


# --------------------------------------------------------------------------- local days


@dataclass(frozen=True)
class LocalDay:
    """One calendar day in a timezone, as the half-open UTC interval [start_ms, end_ms)."""

    day: date
    start_ms: int
    end_ms: int

    @property
    def length_ms(self) -> int:
        """86 400 000 ms, or 23 h / 25 h on the days the clocks change."""
        return self.end_ms - self.start_ms


def day_start_ms(day: date, zone: ZoneInfo) -> int:
    """Epoch ms of the first instant of *day* in *zone* (local midnight).

    zoneinfo resolves a midnight that a DST jump skips (fold=0) to the first
    instant after the jump, which is indeed where that day begins.
    """
    return round(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def local_days(since: date, until: date, tz: str) -> list[LocalDay]:
    """Every local day from *since* to *until*, both included."""
    if until < since:
        raise ValueError(f"until ({until}) is before since ({since})")
    zone = ZoneInfo(tz)
    days = []
    d = since
    while d <= until:
        nxt = d + timedelta(days=1)
        days.append(LocalDay(d, day_start_ms(d, zone), day_start_ms(nxt, zone)))
        d = nxt
    return days


def today_in(tz: str, now: datetime | None = None) -> date:
    """The local date of *now* (default: the current time) in *tz*."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz)).date()


def reference_share_wh(reference_wh_per_year: float, day: LocalDay) -> float:
    """The day's share of an annual reference, proportional to the day's length."""
    return reference_wh_per_year * day.length_ms / MEAN_YEAR_MS


# --------------------------------------------------------------------------- counter arithmetic


def site_consumption(fields: dict[str, float]) -> float:
    """A metered site's consumption from its daily fields: production + import - export + discharge - charge."""
    return (fields.get(PRODUCTION, 0.0) + fields[IMPORT] - fields.get(EXPORT, 0.0)
            + fields.get(DISCHARGE, 0.0) - fields.get(CHARGE, 0.0))


def counter_increase(previous: float, current: float) -> float:
    """Energy counted between two consecutive readings of a lifetime counter (never negative)."""
    if current >= previous:
        return current - previous
    if current < previous * RESET_RATIO:
        return current  # restarted from zero: everything it shows was counted since
    return 0.0


def increase_over(samples: Sequence[Sample]) -> float:
    """Sum of :func:`counter_increase` over consecutive readings (sorted by time)."""
    total = 0.0
    for (_, a), (_, b) in itertools.pairwise(samples):
        total += counter_increase(a, b)
    return total


@dataclass
class CounterWindow:
    """What the server told about one counter series over a window of days."""

    before: Sample | None = None
    """Last reading before the first day (within max_gap)."""
    after: Sample | None = None
    """First reading at or after the end of the last day (within max_gap)."""
    firsts: dict[int, Sample] = field(default_factory=dict)
    """Day index -> first reading of the day."""
    lasts: dict[int, Sample] = field(default_factory=dict)
    intra: dict[int, float] = field(default_factory=dict)
    """Day index -> increase from the first to the last reading of the day."""


def attribute_to_days(window: CounterWindow, days: Sequence[LocalDay], max_gap_ms: int) -> dict[int, float]:
    """Energy per day index for one counter; a day absent from the result has no data.

    Intervals inside a day count whole; an interval spanning day boundaries is
    split in proportion to the time it spends in each day (module docstring).
    """
    out: dict[int, float] = {}

    def add_interval(a: Sample, b: Sample) -> None:
        span = b[0] - a[0]
        if span <= 0 or span > max_gap_ms:
            return
        energy = counter_increase(a[1], b[1])
        for i, day in enumerate(days):
            overlap = min(b[0], day.end_ms) - max(a[0], day.start_ms)
            if overlap > 0:
                out[i] = out.get(i, 0.0) + energy * overlap / span

    previous = window.before
    for i in range(len(days)):
        first = window.firsts.get(i)
        last = window.lasts.get(i)
        if first is None or last is None:
            continue
        if previous is not None:
            add_interval(previous, first)
        if last[0] > first[0]:
            out[i] = out.get(i, 0.0) + window.intra.get(i, last[1] - first[1])
        previous = last
    if previous is not None and window.after is not None:
        add_interval(previous, window.after)
    return out


# --------------------------------------------------------------------------- queries

SeriesKey = tuple[str, ...]
"""(site, device); (site, device, string) for MPPT strings"""
DEVICE_TAGS = ("site", "device")


def _series_key(s: Series, tags: tuple[str, ...] = DEVICE_TAGS) -> SeriesKey | None:
    key = tuple(s.tags.get(t, "") for t in tags)
    if not all(is_slug(v) for v in key):
        return None  # not written by terril's ingest (which validates slugs)
    return key


def _samples(s: Series) -> list[Sample]:
    out = []
    for row in s.values:
        t, v = row[0], row[1]
        if isinstance(t, int) and isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((t, float(v)))
    return out


def _where_time(start_ms: int, end_ms: int) -> str:
    return f"time >= {time_ms(start_ms)} AND time < {time_ms(end_ms)}"


def _fetch_counter(
    client: QueryClient, counter: CounterSpec, days: Sequence[LocalDay], max_gap_ms: int,
    tags: tuple[str, ...] = DEVICE_TAGS,
) -> dict[SeriesKey, CounterWindow]:
    """One round of statements for one counter field over consecutive days, per series of *tags*."""
    m, f = quote_ident(counter.measurement), quote_ident(counter.field)
    start, end = days[0].start_ms, days[-1].end_ms
    group = "GROUP BY " + ", ".join(tags)
    statements = [
        f"SELECT last({f}) FROM {m} WHERE {_where_time(start - max_gap_ms, start)} {group}",
        f"SELECT first({f}) FROM {m} WHERE {_where_time(end, end + max_gap_ms)} {group}",
        f"SELECT d FROM (SELECT difference({f}) AS d FROM {m} {group}) "
        f"WHERE {_where_time(start, end)} AND d < 0 {group}",
    ]
    for day in days:
        statements.append(f"SELECT first({f}) FROM {m} WHERE {_where_time(day.start_ms, day.end_ms)} {group}")
        statements.append(f"SELECT last({f}) FROM {m} WHERE {_where_time(day.start_ms, day.end_ms)} {group}")
    results = client.query_many(statements)

    windows: dict[SeriesKey, CounterWindow] = {}

    def each(result: list[Series]) -> list[tuple[CounterWindow, list[Sample], SeriesKey]]:
        rows = []
        for s in result:
            key = _series_key(s, tags)
            if key is not None:
                rows.append((windows.setdefault(key, CounterWindow()), _samples(s), key))
        return rows

    for w, samples, _ in each(results[0]):
        w.before = samples[0] if samples else None
    for w, samples, _ in each(results[1]):
        w.after = samples[0] if samples else None
    drops: dict[SeriesKey, list[int]] = {key: [t for t, _ in samples] for _, samples, key in each(results[2])}
    for i in range(len(days)):
        for w, samples, _ in each(results[3 + 2 * i]):
            if samples:
                w.firsts[i] = samples[0]
        for w, samples, _ in each(results[4 + 2 * i]):
            if samples:
                w.lasts[i] = samples[0]

    # A decrease inside a day breaks "last - first": sum that device-day's raw readings.
    raw_statements: list[str] = []
    raw_targets: list[tuple[CounterWindow, int]] = []
    for key, times in drops.items():
        w = windows[key]
        for i in range(len(days)):
            first, last = w.firsts.get(i), w.lasts.get(i)
            if first is None or last is None or not any(first[0] < t <= last[0] for t in times):
                continue
            where_series = " AND ".join(f"{quote_ident(t)} = {quote_string(v)}" for t, v in zip(tags, key, strict=True))
            raw_statements.append(
                f"SELECT {f} FROM {m} WHERE {where_series} "
                f"AND time >= {time_ms(first[0])} AND time <= {time_ms(last[0])}"
            )
            raw_targets.append((w, i))
    if raw_statements:
        for (w, i), result in zip(raw_targets, client.query_many(raw_statements), strict=False):
            w.intra[i] = increase_over(sorted(s for series in result for s in _samples(series)))
    return windows


# --------------------------------------------------------------------------- daily rows


@dataclass(frozen=True)
class DailyEnergy:
    """One ``energy_daily`` row."""

    site: str
    day: LocalDay
    fields: dict[str, float]

    def to_point(self) -> Point:
        return make_point(ENERGY_DAILY.name, {"site": self.site}, self.fields, self.day.start_ms)


@dataclass(frozen=True)
class Excluded:
    """A site-day left out of ``energy_daily`` (and of the territory's total) because its energy is impossible."""

    site: str
    day: date
    reason: str


def _impossible(fields: dict[str, float]) -> str | None:
    """Why a site's day cannot be true (a counter that jumped by 1e308: ``ENERGY_DAILY`` bounds), or None."""
    for name, value in fields.items():
        bounds = ENERGY_DAILY.field(name).bounds
        if bounds is not None and value not in bounds:
            return f"{name} {value:g} Wh is outside {bounds.low:g} to {bounds.high:g} Wh"
    return None


def _rows_for_chunk(
    client: QueryClient, days: Sequence[LocalDay], reference_wh_per_year: float | None, max_gap_ms: int,
    excluded: list[Excluded],
) -> list[DailyEnergy]:
    # per (day index, site): daily field -> Wh
    totals: dict[tuple[int, str], dict[str, float]] = {}
    for counter in COUNTERS:
        for (site, _device), window in _fetch_counter(client, counter, days, max_gap_ms).items():
            for i, energy in attribute_to_days(window, days, max_gap_ms).items():
                row = totals.setdefault((i, site), {})
                row[counter.daily_field] = row.get(counter.daily_field, 0.0) + energy

    rows: list[DailyEnergy] = []
    for i, day in enumerate(days):
        territory: dict[str, float] = {}
        for (j, site), fields in sorted(totals.items()):
            if j != i:
                continue
            if IMPORT in fields:
                fields[CONSUMPTION] = site_consumption(fields)
            impossible = _impossible(fields)
            if impossible:
                excluded.append(Excluded(site, day.day, impossible))
                continue  # one site's broken counters never stop the other sites' rows nor the total
            for name, value in fields.items():
                territory[name] = territory.get(name, 0.0) + value
            rows.append(DailyEnergy(site, day, fields))
        if reference_wh_per_year is not None:
            territory[REFERENCE] = reference_share_wh(reference_wh_per_year, day)
        if territory:
            rows.append(DailyEnergy(TERRITORY_SITE, day, territory))
    return rows


def compute_daily(
    client: QueryClient,
    since: date,
    until: date,
    tz: str = DEFAULT_TIMEZONE,
    reference_wh_per_year: float | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> list[DailyEnergy]:
    """``energy_daily`` rows of every site and of the territory, for local days since..until (included)."""
    days = local_days(since, until, tz)
    max_gap_ms = int(max_gap.total_seconds() * 1000)
    rows: list[DailyEnergy] = []
    for k in range(0, len(days), CHUNK_DAYS):
        rows.extend(_rows_for_chunk(client, days[k : k + CHUNK_DAYS], reference_wh_per_year, max_gap_ms, []))
    return rows


def run_rollup(
    client: QueryClient,
    write: Writer,
    since: date,
    until: date | None = None,
    tz: str = DEFAULT_TIMEZONE,
    reference_wh_per_year: float | None = None,
    now: datetime | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    reported: set[tuple[str, date]] | None = None,
    extension: DailyExtension | None = None,
) -> int:
    """Compute and write ``energy_daily`` for since..until (default: today); return points written.

    With an *extension*, its reference replaces *reference_wh_per_year* when it has one, and its
    extra points (one row per commune) are written with each chunk.

    Days are computed and written a chunk (a month) at a time, so a long
    backfill keeps memory flat and leaves the finished months written if it is
    interrupted. A site-day whose energy is impossible is left out with a warning
    (once per site and day when the caller keeps *reported* across runs).
    """
    reported = set() if reported is None else reported
    last = until if until is not None else today_in(tz, now)
    days = local_days(since, last, tz)
    max_gap_ms = int(max_gap.total_seconds() * 1000)
    written = 0
    if extension is not None:
        reference_wh_per_year = extension.reference_wh_per_year() or reference_wh_per_year
    for k in range(0, len(days), CHUNK_DAYS):
        chunk = days[k : k + CHUNK_DAYS]
        excluded: list[Excluded] = []
        rows = _rows_for_chunk(client, chunk, reference_wh_per_year, max_gap_ms, excluded)
        points = [r.to_point() for r in rows]
        if extension is not None:
            points.extend(extension.extra_points(rows))
        for x in excluded:
            if (x.site, x.day) not in reported:
                reported.add((x.site, x.day))
                log.warning("rollup: site %s left out of %s (and of the territory's total): %s; "
                            "its counters hold impossible values", x.site, x.day, x.reason)
        if points:
            rejected = write(points)
            if isinstance(rejected, list) and rejected:  # agent.central.writers returns the refused points
                log.warning("rollup: InfluxDB refused %d of %d point(s): %s", len(rejected), len(points), rejected[0])
            written += len(points) - (len(rejected) if isinstance(rejected, list) else 0)
        log.debug("rollup %s..%s: %d point(s)", chunk[0].day, chunk[-1].day, len(points))
    return written


def line_writer(client: InfluxQLClient) -> Writer:
    """A writer that POSTs the points' line protocol to ``/write`` (all InfluxDB versions)."""

    def write(points: list[Point]) -> None:
        client.write_lines([p.to_line() for p in points])

    return write


# --------------------------------------------------------------------------- scheduled job


@dataclass
class Rollup:
    """The job the ingest schedules every ``rollup.every`` seconds: yesterday and today.

    Call it (``rollup()``) from the scheduler: it never raises, and logs one
    line when it starts failing and one when it works again. ``days_back=1``
    recomputes yesterday too, so readings that arrive late (an agent draining
    its spool after a night offline) still land in the right day. For older
    late data the caller passes ``since`` (the ingest passes the oldest local
    day it stored readings for since the last run); ``terril rollup --since``
    remains the tool for a backfill.
    """

    client: QueryClient
    write: Writer
    timezone: str = DEFAULT_TIMEZONE
    reference_wh_per_year: float | None = None
    days_back: int = 1
    max_gap: timedelta = DEFAULT_MAX_GAP
    performance: Callable[[date, date], int] | None = None
    """Yield analytics of complete days (``agent.central.performance.daily.PerformanceJob``), if configured."""
    extension: Callable[[QueryClient], DailyExtension | None] | None = None
    """Called at each run (the open data may have been imported since): ``agent.central.territory.daily``."""
    failing: bool = field(default=False, init=False)
    _gaps_done: frozenset[tuple[str, str, str, int]] = field(default=frozenset(), init=False, repr=False)
    """Gaps (site, device, counter field, time of the reading before) already extended back to."""
    _reported: set[tuple[str, date]] = field(default_factory=set, init=False, repr=False)
    """Site-days already logged as left out (impossible energy): one warning each, not one per run."""

    def run_once(self, now: datetime | None = None, since: date | None = None) -> int:
        """Compute and write the last ``days_back`` days (or from *since* if earlier) and today; raise on failure.

        Reaches further back when a counter's gap that ends in the window began before it
        (module docstring): the days of the gap get their share as a backfill would give them.
        """
        today = today_in(self.timezone, now)
        first = today - timedelta(days=self.days_back)
        if since is not None:
            first = min(first, since)
        gap_day, gaps = self._long_gaps(first, today)
        if gap_day is not None and gap_day < first:
            log.info("rollup: a counter gap ends in %s..%s; recomputing from %s", first, today, gap_day)
            first = gap_day
        extension = self.extension(self.client) if self.extension is not None else None
        written = run_rollup(self.client, self.write, first, today, self.timezone, self.reference_wh_per_year,
                             max_gap=self.max_gap, reported=self._reported, extension=extension)
        self._gaps_done = gaps
        if self.performance is not None:
            written += self.performance(first, today - timedelta(days=1))
        return written

    def _long_gaps(self, first: date, today: date) -> tuple[date | None, frozenset[tuple[str, str, str, int]]]:
        """The local day of the earliest not-yet-extended long gap closed in first..today, and all such gaps."""
        zone = ZoneInfo(self.timezone)
        start = day_start_ms(first, zone)
        end = day_start_ms(today + timedelta(days=1), zone)
        max_gap_ms = int(self.max_gap.total_seconds() * 1000)
        statements = []
        for counter in COUNTERS:
            m, f = quote_ident(counter.measurement), quote_ident(counter.field)
            statements.append(f"SELECT last({f}) FROM {m} WHERE {_where_time(start - max_gap_ms, start)} "
                              "GROUP BY site, device")
            statements.append(f"SELECT first({f}) FROM {m} WHERE {_where_time(start, end)} GROUP BY site, device")
        results = self.client.query_many(statements)
        earliest: date | None = None
        gaps = set()
        for k, counter in enumerate(COUNTERS):
            before = {key: samples[0] for s in results[2 * k]
                      if (key := _series_key(s)) is not None and (samples := _samples(s))}
            for s in results[2 * k + 1]:
                key, samples = _series_key(s), _samples(s)
                if key is None or not samples or key not in before:
                    continue
                before_day = datetime.fromtimestamp(before[key][0] / 1000, zone).date()
                closing_day = datetime.fromtimestamp(samples[0][0] / 1000, zone).date()
                if (closing_day - before_day).days <= self.days_back:
                    continue  # closed while its first day was still in the job's window
                gap = (key[0], key[1], counter.field, before[key][0])
                gaps.add(gap)
                if gap not in self._gaps_done and (earliest is None or before_day < earliest):
                    earliest = before_day
        return earliest, frozenset(gaps)

    def __call__(self, now: datetime | None = None, since: date | None = None) -> int:
        try:
            written = self.run_once(now, since)
        except (TerrilError, OSError, ValueError) as exc:
            if not self.failing:
                log.warning("daily energy rollup failed, will retry at the next run: %s", exc)
            self.failing = True
            return 0
        if self.failing:
            log.info("daily energy rollup works again (%d point(s) written)", written)
        self.failing = False
        return written

    @classmethod
    def from_config(cls, config: Any, write: Writer | None = None) -> Rollup:
        """Build the job from an ``IngestConfig`` (``agent.central.config``).

        Without *write*, points go through ``/write`` of the same database.
        """
        from agent.central.performance.daily import performance_job_for
        from agent.central.territory.daily import extension_for

        client = client_from_config(config.influxdb)
        write = write or line_writer(client)
        return cls(
            client=client,
            write=write,
            timezone=config.rollup.timezone,
            reference_wh_per_year=config.rollup.territory_consumption_wh_per_year,
            extension=extension_for(config, write),
            performance=performance_job_for(config, client, write),
        )


def client_from_config(influx: Any) -> InfluxQLClient:
    """An InfluxQL client for the ingest's ``influxdb`` section.

    api v1: ``database`` with optional username/password; api v2 (2.x, 3.x):
    the ``bucket`` through its DBRP mapping (3.x: the database), with the token.
    The same mapping serves ``/write`` for :func:`line_writer`. Queries get at
    least 60 s: a month of backfill is heavier than a batch write.
    """

    def secret(value: Any) -> str | None:
        if value is None:
            return None
        return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)

    timeout = max(float(influx.timeout), 60.0)
    if getattr(influx, "api", "v1") == "v2":
        database = influx.bucket
        return InfluxQLClient(influx.url, database, token=secret(influx.token), timeout=timeout)
    return InfluxQLClient(
        influx.url,
        influx.database,
        username=influx.username,
        password=secret(influx.password),
        retention_policy=influx.retention_policy,
        timeout=timeout,
    )
