"""The energy-positive balance per commune and year: open data, monitored roofs, the path to the target.

Per commune and year (``terril territory report``, DESIGN.md "Territory open data"):

* electricity consumption, total and by sector, from **Agence ORE** when it
  has the commune and year (it covers every distribution operator), else from
  **Enedis** (its own network only); gas consumption from Agence ORE;
* production by energy source from the **Enedis production** file, or, where
  no production file covers the commune, from the **ODRÉ register**'s annual
  energies: *produced* when every source's produced energy is known, else
  *injected* (which misses self-consumption) — the report says which;
* installed power by source from the ODRÉ register;
* ``monitored_production_wh``: terril's own roofs (``energy_daily``) in the commune;
* ``renewable_share`` = renewable production (solar, wind, hydro, bioenergy) /
  electricity consumption.

A figure nobody published is ``None`` (null), never 0; a masked sector leaves
its value ``None`` and the total ``complete: false``. The territory's total
sums the communes and is complete only when every commune's figure is.

The **trajectory** (``territory_balance``, for Grafana and the public site):
the target path runs in a straight line from the baseline year's share to
``target.share`` in ``target.year``; what is still missing each year is
``target.share x consumption - renewable production`` (never below 0), also
given as rooftop peak power at the fleet's measured specific yield and as a
number of roofs of the fleet's median size.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.central.influxql import quote_ident, quote_string, time_ms
from agent.central.points import Point, make_point
from agent.central.rollup import QueryClient, Writer, day_start_ms
from agent.central.territory.figures import FILIERES, RENEWABLE_FILIERES, SECTORS, SOURCE_LABELS, Source
from agent.central.territory.store import StoredFigure, read_figures, year_of, year_start_ms
from agent.schema import ENERGY_DAILY, TERRITORY_BALANCE, TERRITORY_SITE

if TYPE_CHECKING:
    from agent.central.inventory import Inventory

log = logging.getLogger(__name__)

TERRITORY = TERRITORY_SITE
"""``commune`` tag of the territory's rows in ``territory_balance``."""
YIELD_DAYS = 365
"""The fleet's specific yield is measured over the last year of ``energy_daily`` rows."""
MIN_YIELD_DAYS = 30
"""A roof counts in the fleet's yield once it has this many days of data (if any roof has)."""


@dataclass(frozen=True)
class Scope:
    """What the report needs from the inventory (plain data, so the arithmetic is testable alone)."""

    name: str
    timezone: str
    communes: tuple[tuple[str, str], ...]
    """(INSEE code, name), in the inventory's order."""
    site_communes: Mapping[str, str] = field(default_factory=dict)
    """Site slug -> INSEE code; sites not listed count in the first commune."""
    site_peak_w: Mapping[str, float] = field(default_factory=dict)
    target_year: int | None = None
    target_share: float | None = None
    baseline_year: int | None = None

    @classmethod
    def of(cls, inventory: Inventory) -> Scope:
        t = inventory.territory
        return cls(
            name=t.name,
            timezone=t.timezone,
            communes=tuple((c.insee, c.name) for c in t.communes),
            site_communes={s.slug: s.commune or t.communes[0].insee for s in inventory.sites},
            site_peak_w={s.slug: p for s in inventory.sites if (p := s.peak_power_w) is not None},
            target_year=t.target.year if t.target else None,
            target_share=t.target.share if t.target else None,
            baseline_year=t.baseline_year,
        )

    def commune_of(self, site: str) -> str:
        return self.site_communes.get(site, self.communes[0][0])


# --------------------------------------------------------------------------- figures of one commune and year


@dataclass(frozen=True)
class Breakdown:
    """A total and its parts (by sector or energy source); ``None`` is unknown, never 0."""

    total: float | None = None
    complete: bool = False
    parts: dict[str, float | None] = field(default_factory=dict)
    source: str | None = None
    """Which file it comes from (``agence_ore``, ``enedis_consumption`` …); None when nothing was imported."""

    def to_json(self, parts_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {"total": self.total, "complete": self.complete if self.total is not None else False,
                               parts_key: dict(self.parts), "source": self.source}
        return out


NOTHING = Breakdown()


@dataclass(frozen=True)
class Balance:
    """One commune (or the territory) in one year."""

    insee: str
    name: str
    year: int
    consumption: Breakdown = NOTHING
    gas: Breakdown = NOTHING
    production: Breakdown = NOTHING
    """By energy source; ``total`` is the *renewable* production (solar, wind, hydro, bioenergy)."""
    production_figure: str | None = None
    """``measured`` (Enedis production), ``produced`` or ``injected`` (ODRÉ register annual energies)."""
    installed_power: Breakdown = NOTHING
    monitored_production_wh: float | None = None

    @property
    def renewable_share(self) -> float | None:
        consumed, produced = self.consumption.total, self.production.total
        if consumed is None or produced is None or consumed <= 0:
            return None
        return produced / consumed

    def to_json(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "consumption_wh": self.consumption.to_json("by_sector"),
            "gas_consumption_wh": self.gas.to_json("by_sector"),
            "production_wh": {**self.production.to_json("by_filiere"), "figure": self.production_figure},
            "installed_power_w": self.installed_power.to_json("by_filiere"),
            "monitored_production_wh": self.monitored_production_wh,
            "renewable_share": self.renewable_share,
        }


def _breakdown(figures: Sequence[StoredFigure], amount: str, categories: Sequence[str], source: str,
               total_of: Sequence[str] | None = None) -> Breakdown:
    """Parts by category, and their total over *total_of* (default: every part).

    A part is None when all its cells were masked; the total sums the known parts and is
    complete only when every part is complete. A figure without categories (``total``) is the total.
    """
    parts: dict[str, float | None] = {}
    complete = True
    for f in figures:
        if amount not in f.values:
            continue
        parts[f.key.category] = f.value(amount)
        complete = complete and f.complete(amount)
    if not parts:
        return NOTHING
    summed = [c for c in parts if c in (total_of or parts) or c == "total"]
    known = [parts[c] for c in summed if parts[c] is not None]
    total = sum(v for v in known if v is not None) if known else None
    ordered = {c: parts[c] for c in (*categories, *sorted(set(parts) - set(categories))) if c in parts
               and c != "total"}
    return Breakdown(total, complete and all(parts[c] is not None for c in summed), ordered, source)


def _register_production(figures: Sequence[StoredFigure]) -> tuple[Breakdown, str]:
    """Production from the register's annual energies: produced if known for every source, else injected."""
    produced_known = all("produced_wh" in f.values and f.value("produced_wh") is not None
                         and f.complete("produced_wh") for f in figures)
    amount, figure = ("produced_wh", "produced") if produced_known else ("injected_wh", "injected")
    renamed = [StoredFigure(f.key, {"energy_wh": f.values.get(amount)}, {"energy_wh": f.masked.get(amount, 0)})
               for f in figures if amount in f.values]
    return _breakdown(renamed, "energy_wh", FILIERES, "odre_register", RENEWABLE_FILIERES), figure


def commune_balance(insee: str, name: str, year: int, figures: Sequence[StoredFigure],
                    monitored_wh: float | None) -> Balance:
    """The balance of one commune and year from its current figures (any sources)."""
    by: dict[tuple[str, Source], list[StoredFigure]] = {}
    for f in figures:
        by.setdefault((f.key.kind, f.key.source), []).append(f)
    consumption = NOTHING
    for source in ("agence_ore", "enedis_consumption"):  # the more complete source first
        found = by.get(("electricity", source))
        if found:
            consumption = _breakdown(found, "energy_wh", SECTORS, source)
            break
    gas = _breakdown(by.get(("gas", "agence_ore"), []), "energy_wh", SECTORS, "agence_ore")
    register = by.get(("installations", "odre_register"), [])
    production, figure = NOTHING, None
    if by.get(("production", "enedis_production")):
        production = _breakdown(by[("production", "enedis_production")], "energy_wh", FILIERES,
                                "enedis_production", RENEWABLE_FILIERES)
        figure = "measured"
    elif register:
        production, figure = _register_production(register)
    installed = _breakdown(register, "power_w", FILIERES, "odre_register", RENEWABLE_FILIERES)
    return Balance(insee, name, year, consumption, gas, production, figure if production.total is not None
                   or production.parts else None, installed, monitored_wh)


def _sum_breakdowns(items: Sequence[Breakdown], communes: int) -> Breakdown:
    """The territory's breakdown: sums of the communes'; complete when every commune's is."""
    present = [b for b in items if b.total is not None or b.parts]
    if not present:
        return NOTHING
    parts: dict[str, float | None] = {}
    for b in present:
        for name, value in b.parts.items():
            if value is None:
                parts.setdefault(name, None)
            else:
                parts[name] = (parts.get(name) or 0.0) + value
    totals = [b.total for b in present if b.total is not None]
    sources = sorted({b.source for b in present if b.source})
    return Breakdown(sum(totals) if totals else None,
                     len(present) == communes and all(b.complete for b in present),
                     parts, "+".join(sources) or None)


def territory_total(scope: Scope, year: int, communes: Sequence[Balance]) -> Balance:
    n = len(scope.communes)
    figures = {b.production_figure for b in communes if b.production_figure}
    monitored = [b.monitored_production_wh for b in communes if b.monitored_production_wh is not None]
    return Balance(
        TERRITORY, scope.name, year,
        _sum_breakdowns([b.consumption for b in communes], n),
        _sum_breakdowns([b.gas for b in communes], n),
        _sum_breakdowns([b.production for b in communes], n),
        "+".join(sorted(figures)) or None,
        _sum_breakdowns([b.installed_power for b in communes], n),
        sum(monitored) if monitored else None,
    )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Trajectory:
    """The target path and what is missing, per year (the territory's)."""

    year: int
    target_share: float | None
    missing_wh: float | None
    missing_peak_power_w: float | None
    missing_roofs: float | None


@dataclass(frozen=True)
class Report:
    scope: Scope
    years: tuple[int, ...]
    communes: dict[str, tuple[Balance, ...]]
    """INSEE code -> one balance per year of ``years``."""
    territory: tuple[Balance, ...]
    fleet_yield_kwh_per_kwp: float | None
    median_roof_w: float | None
    trajectory: tuple[Trajectory, ...]
    baseline_share: float | None

    def latest(self, insee: str | None = None) -> Balance | None:
        """The latest year with a known electricity consumption (of a commune, or the territory)."""
        rows = self.territory if insee is None else self.communes.get(insee, ())
        known = [b for b in rows if b.consumption.total is not None]
        return known[-1] if known else None

    def to_json(self) -> dict[str, Any]:
        s = self.scope
        return {
            "territory": {"name": s.name, "timezone": s.timezone, "baseline_year": s.baseline_year,
                          "target": None if s.target_year is None else {"year": s.target_year,
                                                                       "share": s.target_share}},
            "renewable_filieres": list(RENEWABLE_FILIERES),
            "sources": dict(SOURCE_LABELS),
            "years": list(self.years),
            "communes": [{"insee": insee, "name": name, "years": [b.to_json() for b in self.communes[insee]]}
                         for insee, name in s.communes],
            "total": {"name": s.name, "years": [b.to_json() for b in self.territory]},
            "trajectory": {
                "baseline_share": self.baseline_share,
                "fleet_yield_kwh_per_kwp": self.fleet_yield_kwh_per_kwp,
                "median_roof_peak_power_w": self.median_roof_w,
                "years": [vars(t) for t in self.trajectory],
            },
        }


def target_share(scope: Scope, baseline_share: float | None, year: int) -> float | None:
    """The straight path from the baseline year's share to the target share in the target year."""
    if scope.target_year is None or scope.target_share is None:
        return None
    start = scope.baseline_year
    if start is None or baseline_share is None or start >= scope.target_year:
        return scope.target_share if year >= scope.target_year else None
    if year < start:
        return None
    if year >= scope.target_year:
        return scope.target_share
    return baseline_share + (scope.target_share - baseline_share) * (year - start) / (scope.target_year - start)


def build_report(scope: Scope, figures: Iterable[StoredFigure], monitored: Mapping[tuple[str, int], float],
                 fleet_yield: float | None = None, years: Iterable[int] = ()) -> Report:
    """Every commune of *scope* for every year that has a figure or monitored production."""
    wanted = {c for c, _ in scope.communes}
    grouped: dict[tuple[str, int], list[StoredFigure]] = {}
    for f in figures:
        if f.key.commune in wanted:
            grouped.setdefault((f.key.commune, f.key.year), []).append(f)
    all_years = tuple(sorted({y for _, y in grouped} | {y for _, y in monitored} | set(years)))
    communes: dict[str, tuple[Balance, ...]] = {}
    for insee, name in scope.communes:
        communes[insee] = tuple(commune_balance(insee, name, y, grouped.get((insee, y), []), monitored.get((insee, y)))
                                for y in all_years)
    territory = tuple(territory_total(scope, y, [communes[c][i] for c, _ in scope.communes])
                      for i, y in enumerate(all_years))
    baseline = next((b.renewable_share for b in territory if b.year == scope.baseline_year), None)
    roofs = sorted(scope.site_peak_w.values())
    median_roof = statistics.median(roofs) if roofs else None
    trajectory = []
    path_years = set(all_years)
    if scope.target_year is not None:
        first = scope.baseline_year or (all_years[0] if all_years else scope.target_year)
        path_years |= set(range(min(first, scope.target_year), scope.target_year + 1))
    by_year = {b.year: b for b in territory}
    for y in sorted(path_years):
        b = by_year.get(y)
        missing = None
        if b is not None and scope.target_share is not None and b.consumption.total is not None:
            missing = max(0.0, scope.target_share * b.consumption.total - (b.production.total or 0.0))
        kwp_w = missing / fleet_yield if missing is not None and fleet_yield else None
        trajectory.append(Trajectory(y, target_share(scope, baseline, y), missing, kwp_w,
                                     kwp_w / median_roof if kwp_w is not None and median_roof else None))
    return Report(scope, all_years, communes, territory, fleet_yield, median_roof, tuple(trajectory), baseline)


# --------------------------------------------------------------------------- reading InfluxDB


def monitored_production(client: QueryClient, scope: Scope, years: Iterable[int]) -> dict[tuple[str, int], float]:
    """Production of the monitored roofs per (commune, local year), from ``energy_daily``."""
    years = sorted(set(years))
    if not years:
        return {}
    zone = ZoneInfo(scope.timezone)
    statements = [
        f'SELECT sum("production_wh") FROM {quote_ident(ENERGY_DAILY.name)} WHERE "site" != '
        f"{quote_string(TERRITORY_SITE)} AND time >= {time_ms(day_start_ms(date(y, 1, 1), zone))} "
        f'AND time < {time_ms(day_start_ms(date(y + 1, 1, 1), zone))} GROUP BY "site"'
        for y in years
    ]
    out: dict[tuple[str, int], float] = {}
    for y, result in zip(years, client.query_many(statements), strict=True):
        for series in result:
            site = series.tags.get("site", "")
            for row in series.values:
                if len(row) > 1 and isinstance(row[1], (int, float)):
                    key = (scope.commune_of(site), y)
                    out[key] = out.get(key, 0.0) + float(row[1])
    return out


def monitored_years(client: QueryClient, tz: str) -> list[int]:
    """Local years that have ``energy_daily`` rows (first and last row)."""
    m = quote_ident(ENERGY_DAILY.name)
    first, last = client.query_many([f'SELECT first("production_wh") FROM {m}',
                                     f'SELECT last("production_wh") FROM {m}'])
    times = [row[0] for result in (first, last) for s in result for row in s.values if isinstance(row[0], int)]
    if not times:
        return []
    return list(range(year_of(min(times), tz), year_of(max(times), tz) + 1))


def fleet_yield(client: QueryClient, scope: Scope, now: datetime | None = None) -> float | None:
    """Specific yield of the monitored roofs (kWh/kWp/year) over the last 365 days.

    Each roof's energy is scaled to a year by the days it has rows for; roofs with fewer than
    30 days count only when no roof has 30. None without peak powers or production.
    """
    now = now or datetime.now(UTC)
    end = int(now.timestamp() * 1000)
    start = int((now - timedelta(days=YIELD_DAYS)).timestamp() * 1000)
    statement = (f'SELECT sum("production_wh"), count("production_wh") FROM {quote_ident(ENERGY_DAILY.name)} '
                 f'WHERE "site" != {quote_string(TERRITORY_SITE)} AND time >= {time_ms(start)} '
                 f'AND time < {time_ms(end)} GROUP BY "site"')
    per_site: list[tuple[float, float, int]] = []
    for series in client.query_many([statement])[0]:
        peak = scope.site_peak_w.get(series.tags.get("site", ""))
        for row in series.values:
            if peak and isinstance(row[1], (int, float)) and isinstance(row[2], int) and row[2] > 0:
                per_site.append((float(row[1]) * YIELD_DAYS / row[2], peak, row[2]))
    usable = [p for p in per_site if p[2] >= MIN_YIELD_DAYS] or per_site
    peak_total = sum(p[1] for p in usable)
    if not usable or peak_total <= 0:
        return None
    return sum(p[0] for p in usable) / peak_total  # Wh/W/year = kWh/kWp/year


def read_report(client: QueryClient, scope: Scope, now: datetime | None = None) -> Report:
    """The report from what InfluxDB holds now."""
    figures = read_figures(client, scope.timezone, [c for c, _ in scope.communes])
    years = {f.key.year for f in figures} | set(monitored_years(client, scope.timezone))
    monitored = monitored_production(client, scope, years)
    return build_report(scope, figures, monitored, fleet_yield(client, scope, now), years)


# --------------------------------------------------------------------------- territory_balance rows


def balance_points(report: Report) -> list[Point]:
    """``territory_balance`` rows: per commune and year, and the territory with its trajectory."""
    tz = report.scope.timezone
    trajectory = {t.year: t for t in report.trajectory}
    points: list[Point] = []
    rows: list[tuple[str, Balance]] = [(insee, b) for insee, bs in report.communes.items() for b in bs]
    rows += [(TERRITORY, b) for b in report.territory]
    done_years: set[int] = set()
    for commune, b in rows:
        fields: dict[str, float | int | str] = {}
        if b.consumption.total is not None:
            fields["consumption_wh"] = b.consumption.total
            fields["consumption_complete"] = int(b.consumption.complete)
        if b.production.total is not None:
            fields["renewable_production_wh"] = b.production.total
        if b.monitored_production_wh is not None:
            fields["monitored_production_wh"] = b.monitored_production_wh
        if (share := b.renewable_share) is not None:
            fields["renewable_share"] = share
        if commune == TERRITORY:
            done_years.add(b.year)
            _trajectory_fields(fields, trajectory.get(b.year), report.fleet_yield_kwh_per_kwp)
        if fields:
            points.append(make_point(TERRITORY_BALANCE.name, {"commune": commune}, fields, year_start_ms(b.year, tz)))
    for t in report.trajectory:  # future years of the target path
        if t.year not in done_years:
            fields = {}
            _trajectory_fields(fields, t, None)
            if fields:
                points.append(make_point(TERRITORY_BALANCE.name, {"commune": TERRITORY}, fields,
                                         year_start_ms(t.year, tz)))
    return points


def _trajectory_fields(fields: dict[str, float | int | str], t: Trajectory | None, fleet: float | None) -> None:
    if t is None:
        return
    for name, value in (("target_share", t.target_share), ("missing_wh", t.missing_wh),
                        ("missing_peak_power_w", t.missing_peak_power_w), ("missing_roofs", t.missing_roofs),
                        ("fleet_yield_kwh_per_kwp", fleet)):
        if value is not None:
            fields[name] = value


def write_balance(client: QueryClient, write: Writer, scope: Scope, now: datetime | None = None) -> Report:
    """Recompute the report and write its ``territory_balance`` rows (after an import, from the rollup job)."""
    report = read_report(client, scope, now)
    points = balance_points(report)
    if points:
        write(points)
    return report


# --------------------------------------------------------------------------- for the public site


@dataclass(frozen=True)
class TerritoryBalance:
    """The renewable share and the target, for the public site."""

    name: str
    year: int | None
    """Latest year with a known electricity consumption (None: nothing imported)."""
    consumption_wh: float | None
    renewable_production_wh: float | None
    renewable_share: float | None
    complete: bool
    """False when a commune or a sector of that year is missing or masked."""
    target_year: int | None
    target_share: float | None
    target_share_that_year: float | None
    """Where the straight path to the target stands in ``year``."""
    sources: tuple[str, ...]


def territory_balance(config: Any, client: QueryClient, year: int | None = None,
                      now: datetime | None = None) -> TerritoryBalance | None:
    """The territory's renewable share and target for *year* (default: the latest with data up to *now*).

    *config* is the ``IngestConfig``; None when it names no inventory.
    """
    from agent.central.inventory import inventory_for

    inventory = inventory_for(config)
    return None if inventory is None else balance_for(inventory, client, year, now)


def balance_for(inventory: Inventory, client: QueryClient, year: int | None = None,
                now: datetime | None = None) -> TerritoryBalance:
    """:func:`territory_balance` for an inventory already loaded (the public site has one).

    Reads the open-data figures only: the balance does not depend on the monitored roofs or the
    fleet's yield, whose two scans of ``energy_daily`` cost the public build about a second.
    """
    scope = Scope.of(inventory)
    figures = read_figures(client, scope.timezone, [c for c, _ in scope.communes])
    report = build_report(scope, figures, {}, None, {f.key.year for f in figures})
    s = report.scope
    if year is None:
        last = now.astimezone(ZoneInfo(s.timezone)).year if now is not None else None
        known = [b for b in report.territory if b.consumption.total is not None and (last is None or b.year <= last)]
        chosen = known[-1] if known else None
    else:
        chosen = next((b for b in report.territory if b.year == year), None)
    path = {t.year: t.target_share for t in report.trajectory}
    if chosen is None:
        return TerritoryBalance(s.name, year, None, None, None, False, s.target_year, s.target_share, None, ())
    sources = tuple(x for x in (chosen.consumption.source, chosen.production.source) if x)
    return TerritoryBalance(
        s.name, chosen.year, chosen.consumption.total, chosen.production.total, chosen.renewable_share,
        chosen.consumption.complete and chosen.production.complete, s.target_year, s.target_share,
        path.get(chosen.year), sources)
