"""The daily rollup's territory part: one row per commune, and the reference from the imported open data.

``energy_daily_commune`` (tag ``commune``, the INSEE code) sums, per local
day, the ``energy_daily`` rows of the commune's sites (the inventory says
which commune each site is in) and adds ``reference_consumption_wh``: the
day's share of the commune's electricity consumption in the **latest year
imported** for it. The territory's reference (``energy_daily`` row
``_territory``) becomes the sum of its communes' when every commune has an
imported year; otherwise the constant ``rollup.territory_consumption_wh_per_year``
stays in use, and one log line says so (and one when that changes).

These rows live in their own measurement, not as more ``site`` values of
``energy_daily``: the dashboards sum ``energy_daily`` over every site but
``_territory``, and commune rows there would count every roof twice.

Each run also refreshes ``territory_balance`` (the monitored production of
the year changes every day), before the day's rows, so it lags one run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.central.points import Point, make_point
from agent.central.rollup import DailyEnergy, DailyExtension, QueryClient, Writer, reference_share_wh
from agent.central.territory.report import Report, Scope, build_report, write_balance
from agent.central.territory.store import read_figures
from agent.errors import TerrilError
from agent.schema import ENERGY_DAILY_COMMUNE, TERRITORY_SITE

log = logging.getLogger(__name__)

REFERENCE = "reference_consumption_wh"


@dataclass(frozen=True)
class CommuneDaily:
    """One run's view: each commune's annual reference (Wh/year) and the territory's."""

    scope: Scope
    commune_reference: dict[str, float]
    territory_reference: float | None

    def reference_wh_per_year(self) -> float | None:
        return self.territory_reference

    def extra_points(self, rows: Sequence[DailyEnergy]) -> list[Point]:
        """Per day and commune: the sum of its sites' rows, and the day's share of its reference."""
        sums: dict[tuple[int, str], dict[str, float]] = {}
        days = {}
        for row in rows:
            if row.site == TERRITORY_SITE:
                continue
            key = (row.day.start_ms, self.scope.commune_of(row.site))
            days[row.day.start_ms] = row.day
            fields = sums.setdefault(key, {})
            for name, value in row.fields.items():
                fields[name] = fields.get(name, 0.0) + value
        points = []
        for start_ms, day in sorted(days.items()):
            for insee, _ in self.scope.communes:
                fields = dict(sums.get((start_ms, insee), {}))
                reference = self.commune_reference.get(insee)
                if reference is not None:
                    fields[REFERENCE] = reference_share_wh(reference, day)
                if fields:
                    points.append(make_point(ENERGY_DAILY_COMMUNE.name, {"commune": insee},
                                             dict(fields), day.start_ms))
        return points


def references(report: Report) -> tuple[dict[str, float], int | None]:
    """Each commune's latest imported electricity consumption (Wh/year), and the oldest such year."""
    out: dict[str, float] = {}
    years = []
    for insee, _ in report.scope.communes:
        latest = report.latest(insee)
        if latest is not None and latest.consumption.total is not None:
            out[insee] = latest.consumption.total
            years.append(latest.year)
    return out, (min(years) if years else None)


@dataclass
class TerritoryDaily:
    """What the ``Rollup`` job calls at each run: reads the imported figures, returns a :class:`CommuneDaily`."""

    scope: Scope
    write: Writer
    constant_wh_per_year: float | None = None
    refresh_balance: bool = True
    _said: str = field(default="", init=False)

    def __call__(self, client: QueryClient) -> DailyExtension:
        """Never raises for the open data's sake: the daily rows of the sites must be written regardless."""
        try:
            if self.refresh_balance:
                report = write_balance(client, self.write, self.scope)
            else:
                report = build_report(self.scope, read_figures(client, self.scope.timezone,
                                                               [c for c, _ in self.scope.communes]), {})
            per_commune, oldest = references(report)
        except (TerrilError, OSError, ValueError, KeyError, TypeError) as exc:
            per_commune, oldest = {}, None
            failed = f"{type(exc).__name__}: {exc}"
        else:
            failed = ""
        missing = [c for c, _ in self.scope.communes if c not in per_commune]
        territory: float | None
        if failed:
            territory = self.constant_wh_per_year
            state = "reading the imported open data failed: using rollup.territory_consumption_wh_per_year"
        elif per_commune and not missing:
            territory = sum(per_commune.values())
            state = f"imported consumption of {len(per_commune)} commune(s) (latest years, oldest {oldest})"
        elif self.constant_wh_per_year is not None:
            territory = self.constant_wh_per_year
            why = "no year imported" if not per_commune else f"no year imported for {', '.join(missing)}"
            state = f"{why}: using rollup.territory_consumption_wh_per_year"
        else:
            territory = None
            state = "no year imported and no rollup.territory_consumption_wh_per_year: no territory reference"
        if state != self._said:
            if failed:
                log.warning("daily reference consumption: %s (%s)", state, failed)
            else:
                log.info("daily reference consumption: %s", state)
            self._said = state
        return CommuneDaily(self.scope, per_commune, territory)


def extension_for(config: Any, write: Writer) -> TerritoryDaily | None:
    """The rollup's territory part for an ``IngestConfig``, or None when it names no inventory."""
    from agent.central.inventory import inventory_for

    inventory = inventory_for(config)
    if inventory is None:
        return None
    return TerritoryDaily(Scope.of(inventory), write, config.rollup.territory_consumption_wh_per_year)
