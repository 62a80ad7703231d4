"""From raw facts to what the public may see: totals, shares, estimates, roofs, newborn panels.

A pure function (:func:`public_view`) with no I/O, so the privacy rules are
in one place and tested without a database:

* a citizen roof is shown by name only with ``public: true`` in the
  inventory; otherwise it is "Toit citoyen n° N" (numbered in inventory
  order among the anonymous ones), with its production only — never its
  slug, name, commune or position;
* no consumption, import or export figure of any single site is carried at
  all: the only consumption figure is the territory's reference;
* no device name, serial or address ever enters the view;
* a site that reports but is not in the inventory counts in the totals and
  is not listed (it has no owner to group it under).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from agent.central.inventory import Inventory, Newborn, Target
from agent.central.territory.report import TerritoryBalance
from agent.public.config import PublicConfig
from agent.public.query import CHART_DAYS, Facts, SiteFacts, territory_sum

Owner = Literal["commune", "cooperative", "citizen"]
OWNER_ORDER: tuple[Owner, ...] = ("commune", "cooperative", "citizen")
STALE_AFTER = timedelta(hours=1)
"""A visible notice says the figures are old when the latest reading is older than this."""


@dataclass(frozen=True)
class DayValue:
    day: date
    wh: float | None
    """None: no data that day (a gap in the chart, never a 0)."""


@dataclass(frozen=True)
class Roof:
    key: str
    """The public identifier, used in URLs and open data: the slug of a named roof, ``citoyen-N`` otherwise."""
    name: str | None
    """None for an anonymous citizen roof (the page then writes "Toit citoyen n° N")."""
    number: int | None
    """N of "Toit citoyen n° N" (anonymous roofs only)."""
    owner: Owner
    peak_power_w: float | None
    panels: int | None
    power_now_w: float | None
    today_wh: float
    year_wh: float
    total_wh: float
    last_reading: datetime | None
    silent_since: date | None
    """Set when the roof has not reported today (the day of its last reading; None if it never did)."""
    daily: tuple[DayValue, ...]

    @property
    def yield_kwh_per_kwp_year(self) -> float | None:
        if not self.peak_power_w:
            return None
        return (self.year_wh / 1000) / (self.peak_power_w / 1000)

    @property
    def has_data(self) -> bool:
        return self.last_reading is not None or self.total_wh > 0


@dataclass(frozen=True)
class NewbornPanel:
    panel: int
    born: date
    first_name: str | None
    """Only when the family consented (the inventory drops it otherwise)."""
    energy_wh: float
    """The array's production since the birth day divided by its number of panels."""


@dataclass(frozen=True)
class NewbornArray:
    panels: int
    """Panels of the array (the grid's size)."""
    registered: tuple[NewbornPanel, ...]
    energy_total_wh: float
    """The array's production since the first birth."""


@dataclass(frozen=True)
class PublicView:
    at: datetime
    territory_name: str
    timezone: str
    power_now_w: float | None
    energy_today_wh: float
    energy_month_wh: float
    energy_year_wh: float
    energy_12_months_wh: float
    energy_total_wh: float
    first_day: date | None
    share_year: float | None
    share_12_months: float | None
    target: Target | None
    co2_kg_per_kwh: float
    household_kwh_per_year: float
    last_reading: datetime | None
    """The latest inverter reading of any roof up to ``at``."""
    last_contact: datetime | None
    """The latest reading or agent health report: at night the inverters sleep, the agents still report."""
    roofs: tuple[Roof, ...]
    unlisted_sites: int
    daily: tuple[DayValue, ...]
    """The last 30 local days, today (partial) last."""
    months_this_year: tuple[float | None, ...]
    months_last_year: tuple[float | None, ...]
    newborns: NewbornArray | None
    renewable: TerritoryBalance | None = None
    """All local renewable production / electricity consumption, from the grid operators' open data
    (``terril territory import``): the latest year imported."""

    @property
    def stale(self) -> bool:
        return self.last_contact is None or self.at - self.last_contact > STALE_AFTER

    @property
    def co2_avoided_kg_year(self) -> float:
        return self.energy_year_wh / 1000 * self.co2_kg_per_kwh

    @property
    def households_equivalent(self) -> float:
        """Households whose yearly electricity the last 12 months of production would cover."""
        return self.energy_12_months_wh / 1000 / self.household_kwh_per_year

    def roofs_of(self, owner: Owner) -> tuple[Roof, ...]:
        return tuple(r for r in self.roofs if r.owner == owner)


def _roof(key: str, name: str | None, number: int | None, owner: Owner, peak: float | None, panels: int | None,
          facts: SiteFacts | None, view_at: datetime, days: Sequence[date]) -> Roof:
    f = facts or SiteFacts(key)
    last = datetime.fromtimestamp(f.last_reading_ms / 1000, view_at.tzinfo) if f.last_reading_ms else None
    silent: date | None = None
    if last is None or last.date() < view_at.date():
        silent = last.date() if last is not None else f.last_day
    return Roof(
        key=key, name=name, number=number, owner=owner, peak_power_w=peak, panels=panels,
        power_now_w=f.power_now_w, today_wh=f.today_wh, year_wh=f.year_wh, total_wh=f.total_wh,
        last_reading=last, silent_since=silent,
        daily=tuple(DayValue(d, f.daily.get(d)) for d in days),
    )


def _months(facts: Facts, year: int, until: date) -> tuple[float | None, ...]:
    totals: list[float | None] = [None] * 12
    for d in facts.territory:
        if d.day.year == year and d.day <= until and d.production_wh is not None:
            totals[d.day.month - 1] = (totals[d.day.month - 1] or 0.0) + d.production_wh
    return tuple(totals)


def _newborns(facts: Facts, inventory: Inventory, register: Sequence[Newborn]) -> NewbornArray | None:
    nb = inventory.newborn_panels
    if nb is None:
        return None
    host = inventory.site(nb.site)
    panels = inventory.newborn_array_panels() or max((n.panel for n in register), default=0)
    fraction = 1.0
    if host is not None and nb.array is not None and host.peak_power_w:
        array = next((a for a in host.arrays if a.name == nb.array), None)
        if array is not None:
            fraction = array.peak_power_w / host.peak_power_w
    ordered = sorted(facts.host_daily.items())
    shown: list[NewbornPanel] = []
    for n in register:
        since = sum(wh for d, wh in ordered if d >= n.born) * fraction
        per_panel = since / panels if panels else 0.0
        shown.append(NewbornPanel(n.panel, n.born, n.first_name if n.consent else None, per_panel))
    total = sum(wh for _, wh in ordered) * fraction
    return NewbornArray(panels, tuple(shown), total)


def public_view(facts: Facts, inventory: Inventory | None, config: PublicConfig,
                register: Sequence[Newborn] = (), territory_name: str | None = None,
                renewable: TerritoryBalance | None = None) -> PublicView:
    """Everything the pages and the open-data files show, and nothing else."""
    today = facts.today
    days = [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]

    roofs: list[Roof] = []
    listed: set[str] = set()
    anonymous = 0
    named = {s.slug for s in inventory.sites if s.public} if inventory is not None else set()
    for site in inventory.sites if inventory is not None else ():
        listed.add(site.slug)
        panels_list = [a.panels for a in site.arrays]
        panels = sum(p for p in panels_list if p is not None) if panels_list and None not in panels_list else None
        if site.public:
            roofs.append(_roof(site.slug, site.name, None, site.owner, site.peak_power_w, panels,
                               facts.sites.get(site.slug), facts.at, days))
        else:
            anonymous += 1
            key = f"citoyen-{anonymous}"
            while key in named:  # a named roof's slug may look like one: never share its page
                key += "-anonyme"
            roofs.append(_roof(key, None, anonymous, site.owner, site.peak_power_w, panels,
                               facts.sites.get(site.slug), facts.at, days))
    unlisted = sum(1 for slug in facts.sites if slug not in listed)

    by_day = {d.day: d.production_wh for d in facts.territory}
    month_start = today.replace(day=1)
    year_start = today.replace(month=1, day=1)
    twelve_start = today - timedelta(days=364)
    month_wh, _ = territory_sum(facts.territory, month_start, today)
    year_wh, year_ref = territory_sum(facts.territory, year_start, today)
    twelve_wh, twelve_ref = territory_sum(facts.territory, twelve_start, today)
    readings = [s.last_reading_ms for s in facts.sites.values() if s.last_reading_ms]
    last = datetime.fromtimestamp(max(readings) / 1000, facts.at.tzinfo) if readings else None
    contacts = readings + [s.last_health_ms for s in facts.sites.values() if s.last_health_ms]
    contact = datetime.fromtimestamp(max(contacts) / 1000, facts.at.tzinfo) if contacts else None
    powers = [s.power_now_w for s in facts.sites.values() if s.power_now_w is not None]

    newborns = _newborns(facts, inventory, register) if inventory is not None else None
    return PublicView(
        at=facts.at,
        territory_name=territory_name or (inventory.territory.name if inventory is not None else ""),
        timezone=facts.timezone,
        power_now_w=sum(powers) if powers else None,
        energy_today_wh=by_day.get(today) or 0.0,
        energy_month_wh=month_wh,
        energy_year_wh=year_wh,
        energy_12_months_wh=twelve_wh,
        energy_total_wh=facts.total_wh,
        first_day=facts.first_day,
        share_year=year_wh / year_ref if year_ref else None,
        share_12_months=twelve_wh / twelve_ref if twelve_ref else None,
        target=inventory.territory.target if inventory is not None else None,
        co2_kg_per_kwh=config.co2_kg_per_kwh,
        household_kwh_per_year=config.household_kwh_per_year,
        last_reading=last,
        last_contact=contact,
        roofs=tuple(roofs),
        unlisted_sites=unlisted,
        daily=tuple(DayValue(d, by_day.get(d)) for d in days),
        months_this_year=_months(facts, today.year, today),
        months_last_year=_months(facts, today.year - 1, today),
        newborns=newborns,
        renewable=renewable,
    )
