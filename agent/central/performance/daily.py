"""Daily yield analytics: ``performance_daily``, ``string_daily`` and ``technology_daily`` rows.

What Grafana (and anyone) can rely on
-------------------------------------
* Rows are stamped at the first instant of the local day, like ``energy_daily``
  (``agent.central.rollup``): a re-run overwrites them, never duplicates.
* ``performance_daily`` (tags ``site``, ``device``; ``device=_site`` for the
  site as a whole): ``energy_wh`` from the lifetime counters (the rollup's
  exact arithmetic), ``peak_power_w`` and ``yield_kwh_per_kwp`` when the
  inventory gives arrays, ``expected_clear_sky_wh`` and ``clear_sky_ratio``
  when the arrays have an orientation and the site a position,
  ``performance_index``, ``peers_clear_sky_ratio`` and ``peers`` when enough
  peers (the other inverters, or sites, of the same commune) have a ratio that
  day, ``underperforming`` (0/1) wherever there is an index, and
  ``underperforming_since`` (YYYYMMDD) while it is 1: the first low day of the
  episode, carried from the previous day's row (stored, for a run's first day)
  so that an episode longer than the lookback keeps its first day.
  A ``_site`` row's ratio counts the inverters that have an expectation
  (energy of those / their expectation); its ``energy_wh`` counts all of them.
* ``string_daily`` (tags ``site``, ``device``, ``string``): each MPPT string's
  DC energy, its siblings' median and the ratio of the two; ``failing`` = 1
  when the ratio stayed below 1 - ``string_threshold`` (default 0.5) on the
  inverter's 2 most recent sunny days (peers' median clear-sky ratio ≥ 0.4).
* ``technology_daily`` (tag ``technology``): energy, peak power and specific
  yield of all arrays of one technology (an inverter fed by arrays of several
  technologies is split in proportion to their peak power).
* Only complete days are analysed (a partial day's ratio would be meaningless):
  the rollup job writes yesterday's rows after midnight.

Each run recomputes ``lookback_days`` (14) before its first day, without
writing them, so the underperformance rule sees the same history whether the
day is computed by the 5-minute job or by a backfill.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any

from agent.central.influxql import quote_ident, time_ms
from agent.central.performance.analytics import (
    DayIndex,
    RuleSettings,
    StringDay,
    clear_sky_ratio,
    peer_indexes,
    sibling_ratios,
    string_failing,
    underperformance,
)
from agent.central.performance.model import ClearSkyModel, ModelSettings
from agent.central.performance.plan import InventoryLike, Plan, peer_problems, plan_from_inventory
from agent.central.points import Point, make_point
from agent.central.rollup import (
    CHUNK_DAYS,
    DEFAULT_MAX_GAP,
    CounterSpec,
    LocalDay,
    QueryClient,
    Writer,
    _fetch_counter,
    attribute_to_days,
    local_days,
)
from agent.schema import (
    ENERGY_DAILY,
    INVERTER,
    MPPT,
    PERFORMANCE_DAILY,
    SITE_DEVICE,
    STRING_DAILY,
    TECHNOLOGY_DAILY,
)

log = logging.getLogger(__name__)

INVERTER_ENERGY = CounterSpec(INVERTER.name, INVERTER.field("ac_energy_wh").name, "energy_wh")
STRING_ENERGY = CounterSpec(MPPT.name, MPPT.field("dc_energy_wh").name, "energy_wh")
STRING_TAGS = ("site", "device", "string")

Key = tuple[str, str]
"""(site, device); device is ``_site`` for a whole site."""


@dataclass
class Energies:
    """Daily energy (Wh) per inverter and per string, by day index."""

    inverters: dict[Key, dict[int, float]]
    strings: dict[tuple[str, str, str], dict[int, float]]


def fetch_energies(client: QueryClient, days: Sequence[LocalDay], max_gap: timedelta = DEFAULT_MAX_GAP) -> Energies:
    """Energy per inverter and per MPPT string and day, from the lifetime counters (``rollup`` arithmetic)."""
    max_gap_ms = int(max_gap.total_seconds() * 1000)
    inverters: dict[Key, dict[int, float]] = {}
    for key, window in _fetch_counter(client, INVERTER_ENERGY, days, max_gap_ms).items():
        inverters[(key[0], key[1])] = attribute_to_days(window, days, max_gap_ms)
    strings: dict[tuple[str, str, str], dict[int, float]] = {}
    for key, window in _fetch_counter(client, STRING_ENERGY, days, max_gap_ms, STRING_TAGS).items():
        strings[(key[0], key[1], key[2])] = attribute_to_days(window, days, max_gap_ms)
    return Energies(inverters, strings)


@dataclass(frozen=True)
class Row:
    """One analytics row before it becomes a point."""

    measurement: str
    tags: dict[str, str]
    day: LocalDay
    fields: dict[str, float | int]

    def to_point(self) -> Point:
        return make_point(self.measurement, self.tags, dict(self.fields), self.day.start_ms)


def _yyyymmdd(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _impossible_day(energy: float, peak_power_w: float | None) -> str | None:
    """Why an inverter's day cannot be true, or None: more than a whole site's day
    (``energy_daily`` bounds, the rollup's rule), or a specific yield beyond the schema's."""
    site_day = ENERGY_DAILY.field("production_wh").bounds
    if site_day is not None and energy not in site_day:
        return f"outside {site_day.low:g} to {site_day.high:g} Wh"
    yield_bounds = PERFORMANCE_DAILY.field("yield_kwh_per_kwp").bounds
    if peak_power_w and yield_bounds is not None and energy / peak_power_w not in yield_bounds:
        return f"{energy / peak_power_w:g} kWh/kWp, above {yield_bounds.high:g}"
    return None


def plausible_energies(plan: Plan, energies: Energies, days: Sequence[LocalDay],
                       impossible: Callable[[str], None] | None = None) -> tuple[Energies, set[tuple[str, int]]]:
    """*energies* without the inverter-days that cannot be true (a counter that jumped by 1e15 Wh),
    and the (site, day index) pairs they spoil: those sites' rows of those days are not written.

    The ingest accepts any lifetime counter up to ``MAX_LIFETIME_WH``; one such jump would
    otherwise become its peers' median, its site's row and its technology's total.
    """
    kept: dict[Key, dict[int, float]] = {}
    spoiled: set[tuple[str, int]] = set()
    for key, by_day in energies.inverters.items():
        p = plan.inverters.get(key)
        kept[key] = {}
        for i, energy in by_day.items():
            why = _impossible_day(energy, p.peak_power_w if p is not None else None)
            if why is None:
                kept[key][i] = energy
                continue
            spoiled.add((key[0], i))
            if impossible is not None:
                impossible(f"inverter {key[1]} of site {key[0]}: {days[i].day} energy {energy:g} Wh is impossible "
                           f"({why}): that day is left out of its and its site's analytics")
    return Energies(kept, energies.strings), spoiled


def analyse(plan: Plan, energies: Energies, days: Sequence[LocalDay], first_written: int,
            model: ClearSkyModel, rules: RuleSettings, unknown_inverter: Callable[[Key], None] | None = None,
            previous_since: dict[Key, date] | None = None,
            impossible: Callable[[str], None] | None = None) -> list[Row]:
    """Rows for ``days[first_written:]``; the days before are history for the rules. Pure but for the model's cache.

    *previous_since*: ``underperforming_since`` as stored for the day before the first written
    one, for the roofs flagged that day (so a long episode keeps its first day).
    *impossible*: told of each inverter-day left out (:func:`plausible_energies`).
    """
    energies, spoiled = plausible_energies(plan, energies, days, impossible)
    dates = [d.day for d in days]
    per_kwp = model.wh_per_kwp([o for p in plan.inverters.values() for o, _ in p.orientations], dates)

    # Expected energy of every planned inverter with a complete expectation.
    expected: dict[Key, dict[int, float]] = {}
    for key, planned in plan.inverters.items():
        if planned.complete and planned.orientations:
            expected[key] = {i: sum(per_kwp[(o, d)] * peak / 1000.0 for o, peak in planned.orientations)
                             for i, d in enumerate(dates)}
    for key in sorted(energies.inverters):
        if key not in plan.inverters and unknown_inverter is not None:
            unknown_inverter(key)

    rows: list[Row] = []
    inv_fields: dict[tuple[Key, int], dict[str, float | int]] = {}
    ratios: dict[tuple[Key, int], float | None] = {}
    # ------------------------------------------------------------------ per inverter and per site, per day
    site_sums: dict[tuple[str, int], list[float]] = {}  # energy all, energy with expectation, expected
    for key, by_day in energies.inverters.items():
        p = plan.inverters.get(key)
        for i, energy in by_day.items():
            f: dict[str, float | int] = {"energy_wh": energy}
            sums = site_sums.setdefault((key[0], i), [0.0, 0.0, 0.0])
            sums[0] += energy
            if p is not None and p.peak_power_w > 0:
                f["peak_power_w"] = p.peak_power_w
                f["yield_kwh_per_kwp"] = energy / p.peak_power_w
            exp = expected.get(key, {}).get(i)
            ratio = clear_sky_ratio(energy, exp)
            if exp is not None and ratio is not None:
                f["expected_clear_sky_wh"] = exp
                f["clear_sky_ratio"] = ratio
                sums[1] += energy
                sums[2] += exp
            ratios[(key, i)] = ratio
            inv_fields[(key, i)] = f
    for (site, i), (energy, energy_expected, exp_sum) in site_sums.items():
        if (site, i) in spoiled:
            continue
        f = {"energy_wh": energy}
        sp = plan.sites.get(site)
        if sp is not None and sp.peak_power_w:
            f["peak_power_w"] = sp.peak_power_w
            f["yield_kwh_per_kwp"] = energy / sp.peak_power_w
        ratio = clear_sky_ratio(energy_expected, exp_sum if exp_sum > 0 else None)
        if ratio is not None:
            f["expected_clear_sky_wh"] = exp_sum
            f["clear_sky_ratio"] = ratio
        ratios[((site, SITE_DEVICE), i)] = ratio
        inv_fields[((site, SITE_DEVICE), i)] = f

    def commune_of(key: Key) -> str | None:
        sp = plan.sites.get(key[0])
        return sp.commune if sp is not None else None

    # ------------------------------------------------------------------ peer index per day
    keys_of_day: dict[int, list[Key]] = {}
    for k, j in inv_fields:
        keys_of_day.setdefault(j, []).append(k)
    history: dict[Key, list[DayIndex]] = {}
    flagged_since: dict[Key, date | None] = {}
    for i, d in enumerate(dates):
        day_keys = keys_of_day.get(i, [])
        for level in (False, True):  # inverters against inverters, sites against sites
            keys = [k for k in day_keys if (k[1] == SITE_DEVICE) == level]
            groups = {k: c for k in keys if (c := commune_of(k)) is not None}
            indexes = peer_indexes({k: ratios.get((k, i)) for k in keys}, groups, rules.min_peers)
            for k in keys:
                pi = indexes.get(k)
                f = inv_fields[(k, i)]
                if pi is not None:
                    f["performance_index"] = pi.index
                    f["peers_clear_sky_ratio"] = pi.peers_median
                    f["peers"] = pi.peers
                history.setdefault(k, []).append(
                    DayIndex(d, pi.index if pi else None, pi.peers_median if pi else None))
                if pi is not None:
                    verdict = underperformance(history[k], rules)
                    f["underperforming"] = int(verdict.underperforming)
                    since = verdict.since
                    if since is not None:
                        # An episode that goes on keeps its first day, even past the rule's lookback:
                        # carried from the day before (in memory, or as stored for the run's first day).
                        before = flagged_since.get(k) if i > first_written else (previous_since or {}).get(k)
                        if before is not None and before < since:
                            since = before
                        f["underperforming_since"] = _yyyymmdd(since)
                    flagged_since[k] = since
    for ((site, device), i), f in sorted(inv_fields.items()):
        if i >= first_written:
            rows.append(Row(PERFORMANCE_DAILY.name, {"site": site, "device": device}, days[i], f))

    rows.extend(_string_rows(plan, energies, days, first_written, inv_fields, rules))
    rows.extend(_technology_rows(plan, energies, days, first_written))
    return rows


def _string_rows(plan: Plan, energies: Energies, days: Sequence[LocalDay], first_written: int,
                 inv_fields: dict[tuple[Key, int], dict[str, float | int]], rules: RuleSettings) -> list[Row]:
    by_inverter: dict[Key, dict[str, dict[int, float]]] = {}
    for (site, device, string), by_day in energies.strings.items():
        by_inverter.setdefault((site, device), {})[string] = by_day
    rows: list[Row] = []
    for key, strings in sorted(by_inverter.items()):
        p = plan.inverters.get(key)
        names = sorted(strings, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))  # 2 before 10
        peaks = p.string_peak_power_w if p is not None else None
        if peaks is not None and len(peaks) != len(names):
            peaks = None  # the inventory's list does not match the strings reported: compare as equals
        sunny_history: dict[str, list[tuple[int, float]]] = {n: [] for n in names}
        for i in range(len(days)):
            today = {n: StringDay(strings[n][i], peaks[k] if peaks else None)
                     for k, n in enumerate(names) if i in strings[n]}
            siblings = sibling_ratios(today)
            peers_median = inv_fields.get((key, i), {}).get("peers_clear_sky_ratio")
            sunny = peers_median is not None and float(peers_median) >= rules.sunny_ratio
            for n, sd in today.items():
                f: dict[str, float | int] = {"energy_wh": sd.energy_wh}
                if n in siblings:
                    ratio, median_wh = siblings[n]
                    f["sibling_ratio"] = ratio
                    f["siblings_median_wh"] = median_wh
                    if sunny:
                        sunny_history[n].append((i, ratio))
                recent = [r for j, r in sunny_history[n] if i - j <= rules.lookback_days]
                if recent:
                    f["failing"] = int(string_failing(recent, rules))
                if i >= first_written:
                    rows.append(Row(STRING_DAILY.name, {"site": key[0], "device": key[1], "string": n}, days[i], f))
    return rows


def _technology_rows(plan: Plan, energies: Energies, days: Sequence[LocalDay], first_written: int) -> list[Row]:
    sums: dict[tuple[str, int], list[float]] = {}
    for key, by_day in energies.inverters.items():
        tp = plan.inverters.get(key)
        if tp is None or tp.peak_power_w <= 0:
            continue
        for i, energy in by_day.items():
            if i < first_written:
                continue
            for tech, peak in tp.technologies:
                s = sums.setdefault((tech, i), [0.0, 0.0])
                s[0] += energy * peak / tp.peak_power_w
                s[1] += peak
    return [Row(TECHNOLOGY_DAILY.name, {"technology": tech}, days[i],
                {"energy_wh": e, "peak_power_w": peak, "yield_kwh_per_kwp": e / peak})
            for (tech, i), (e, peak) in sorted(sums.items())]


# --------------------------------------------------------------------------- the job


def stored_since(client: QueryClient, day: LocalDay) -> dict[Key, date]:
    """``underperforming_since`` of the rows stored for *day* (only flagged rows carry it)."""
    field_name, m = quote_ident("underperforming_since"), quote_ident(PERFORMANCE_DAILY.name)
    (result,) = client.query_many([f"SELECT last({field_name}) FROM {m} WHERE time >= {time_ms(day.start_ms)} "
                                   f"AND time < {time_ms(day.end_ms)} GROUP BY \"site\", \"device\""])
    out: dict[Key, date] = {}
    for series in result:
        site, device = series.tags.get("site", ""), series.tags.get("device", "")
        for row in series.values:
            value = row[1]
            if isinstance(value, int) and not isinstance(value, bool) and 19000101 <= value <= 29991231:
                try:
                    out[(site, device)] = date(value // 10000, value // 100 % 100, value % 100)
                except ValueError:
                    continue
    return out


@dataclass(frozen=True)
class _EmptyInventory:
    sites: tuple[()] = ()


_NO_INVENTORY = _EmptyInventory()


@dataclass
class PerformanceJob:
    """Computes and writes the analytics of complete local days; one instance per ingest process.

    Keeps the clear-sky model's cache and remembers which inventory gaps it
    already logged, so each is named once, not every 5 minutes.
    """

    client: QueryClient
    write: Writer
    inventory: InventoryLike | Callable[[], InventoryLike | None]
    """The inventory, or a function returning its current version (re-read when the file changed)."""
    timezone: str = "Europe/Paris"
    model: ClearSkyModel | None = None
    rules: RuleSettings = field(default_factory=RuleSettings)
    max_gap: timedelta = DEFAULT_MAX_GAP
    _told: set[str] = field(default_factory=set, init=False, repr=False)
    _plan: Plan | None = field(default=None, init=False, repr=False)
    _planned_from: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = ClearSkyModel(self.timezone)

    def _tell(self, problem: str) -> None:
        if problem not in self._told:
            self._told.add(problem)
            log.warning("yield analytics: %s", problem)

    def plan(self) -> Plan:
        """The plan of the current inventory (rebuilt when it changed); its gaps logged once each."""
        inventory = self.inventory() if callable(self.inventory) else self.inventory
        if inventory is None:
            inventory = _NO_INVENTORY
        if self._plan is None or inventory is not self._planned_from:
            self._plan = plan_from_inventory(inventory)
            self._planned_from = inventory
            for problem in [*self._plan.problems, *peer_problems(self._plan, self.rules.min_peers)]:
                self._tell(problem)
        return self._plan

    def compute(self, since: date, until: date) -> Iterable[list[Row]]:
        """Rows of since..until (both included), a chunk of days at a time."""
        plan = self.plan()
        assert self.model is not None
        day = since
        while day <= until:
            last = min(until, day + timedelta(days=CHUNK_DAYS - 1))
            lookback = self.rules.lookback_days
            days = local_days(day - timedelta(days=lookback), last, self.timezone)
            energies = fetch_energies(self.client, days, self.max_gap)
            yield analyse(plan, energies, days, lookback, self.model, self.rules,
                          lambda k: self._tell(f"inverter {k[1]} of site {k[0]} is in no array of the inventory: "
                                               "its energy counts in its site's row, it gets no yield or index"),
                          stored_since(self.client, days[lookback - 1]) if lookback > 0 else None,
                          self._tell)
            day = last + timedelta(days=1)

    def run(self, since: date, until: date) -> int:
        """Compute and write since..until; return the points written. Raises when InfluxDB fails."""
        written = 0
        for rows in self.compute(since, until):
            points = [r.to_point() for r in rows]
            if not points:
                continue
            rejected: Any = self.write(points)
            if isinstance(rejected, list) and rejected:
                log.warning("yield analytics: InfluxDB refused %d of %d point(s): %s", len(rejected), len(points),
                            rejected[0])
            written += len(points) - (len(rejected) if isinstance(rejected, list) else 0)
        return written

    def __call__(self, since: date, until: date) -> int:
        """The rollup's hook: complete days only (until is clamped by the caller to yesterday)."""
        if until < since:
            return 0
        return self.run(since, until)


def performance_job_for(config: Any, client: QueryClient, write: Writer,
                        timezone: str | None = None) -> PerformanceJob | None:
    """The analytics job for an ingest config, or None (one log line) when it cannot run.

    It needs the inventory the config names (``inventory:``) and pvlib (the
    ``central`` extra). Without them the energy rollups run as before.
    """
    if getattr(config, "inventory", None) is None:
        return None
    from agent.central.inventory import inventory_for

    if inventory_for(config) is None:
        return None
    if importlib.util.find_spec("pvlib") is None:  # looked up, not imported: the import waits for the first run
        log.warning("yield analytics disabled: pvlib is not installed (pip install 'terril[central]')")
        return None
    tz = timezone or config.rollup.timezone
    model, rules = settings_from_config(getattr(config, "performance", None))
    return PerformanceJob(client, write, lambda: inventory_for(config), tz, ClearSkyModel(tz, model), rules)


def settings_from_config(section: Any) -> tuple[ModelSettings, RuleSettings]:
    """The model's and the rules' settings from the ingest config's ``performance:`` section (None: defaults)."""
    if section is None:
        return ModelSettings(), RuleSettings()
    model = ModelSettings(**{f.name: getattr(section, f.name) for f in fields(ModelSettings)})
    rules = RuleSettings(**{f.name: getattr(section, f.name) for f in fields(RuleSettings)})
    return model, rules
