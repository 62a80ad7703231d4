"""What the inventory says about each inverter, for the yield analytics; and what it fails to say.

The analytics need, per inverter: its commune (its peers), the peak power of
the arrays it feeds, their orientations (for the clear-sky model) and their
technology. Each gap is a *problem* named once, in words a technician can act
on: the analytics still run for everything else and never invent an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from agent.central.performance.model import Orientation

UNKNOWN_TECHNOLOGY = "unknown"
"""``technology`` tag of arrays the inventory gives no technology for."""


class ArrayLike(Protocol):
    """The attributes of ``agent.central.inventory.Array`` the analytics read."""

    @property
    def name(self) -> str: ...
    @property
    def inverter(self) -> str: ...
    @property
    def peak_power_w(self) -> float: ...
    @property
    def tilt(self) -> float | None: ...
    @property
    def azimuth(self) -> float | None: ...
    @property
    def technology(self) -> str | None: ...
    @property
    def commissioned(self) -> date | None: ...
    @property
    def string_peak_power_w(self) -> tuple[float, ...] | None: ...


class SiteLike(Protocol):
    """The attributes of ``agent.central.inventory.Site`` the analytics read."""

    @property
    def slug(self) -> str: ...
    @property
    def commune(self) -> str | None: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def longitude(self) -> float | None: ...
    @property
    def arrays(self) -> Sequence[ArrayLike]: ...


class InventoryLike(Protocol):
    @property
    def sites(self) -> Sequence[SiteLike]: ...


def technology_tag(technology: str | None) -> str:
    """The inventory's free text as a ``technology`` tag value: whitespace (newlines too) collapsed."""
    return " ".join((technology or "").split()) or UNKNOWN_TECHNOLOGY


@dataclass(frozen=True)
class InverterPlan:
    """One inverter as the analytics see it (the arrays feeding it merged)."""

    site: str
    device: str
    commune: str | None
    peak_power_w: float
    orientations: tuple[tuple[Orientation, float], ...]
    """(orientation, peak power W) of each array the clear-sky model can handle."""
    complete: bool
    """Every array feeding it has an orientation and the site a position: its expectation is whole."""
    technologies: tuple[tuple[str, float], ...]
    """(technology, peak power W) of each array."""
    string_peak_power_w: tuple[float, ...] | None


@dataclass(frozen=True)
class SitePlan:
    site: str
    commune: str | None
    peak_power_w: float | None


@dataclass(frozen=True)
class Plan:
    inverters: dict[tuple[str, str], InverterPlan]
    sites: dict[str, SitePlan]
    problems: tuple[str, ...]


def plan_from_inventory(inventory: InventoryLike) -> Plan:
    """Merge each site's arrays per inverter; list every gap that limits the analytics."""
    inverters: dict[tuple[str, str], InverterPlan] = {}
    sites: dict[str, SitePlan] = {}
    problems: list[str] = []
    for i, site in enumerate(inventory.sites):
        where = f"sites[{i}] ({site.slug})"
        positioned = site.latitude is not None and site.longitude is not None
        if not positioned and site.arrays:
            problems.append(f"{where}: no latitude/longitude: no clear-sky expectation, no performance index")
        if not site.arrays:
            problems.append(f"{where}: no arrays: its energy is counted, but no yield or index")
        by_inverter: dict[str, list[tuple[int, ArrayLike]]] = {}
        for j, array in enumerate(site.arrays):
            by_inverter.setdefault(array.inverter, []).append((j, array))
        for device, arrays in by_inverter.items():
            orientations = []
            complete = positioned
            for j, array in arrays:
                if array.tilt is None or array.azimuth is None:
                    problems.append(f"{where}.arrays[{j}] ({array.name}): no tilt/azimuth: "
                                    f"no clear-sky expectation for inverter {device}")
                    complete = False
                elif positioned:
                    assert site.latitude is not None and site.longitude is not None
                    o = Orientation.of(site.latitude, site.longitude, array.tilt, array.azimuth, array.technology)
                    orientations.append((o, float(array.peak_power_w)))
            strings = [a.string_peak_power_w for _, a in arrays if a.string_peak_power_w]
            inverters[(site.slug, device)] = InverterPlan(
                site=site.slug,
                device=device,
                commune=site.commune,
                peak_power_w=sum(float(a.peak_power_w) for _, a in arrays),
                orientations=tuple(orientations),
                complete=complete,
                technologies=tuple((technology_tag(a.technology), float(a.peak_power_w)) for _, a in arrays),
                string_peak_power_w=tuple(p for s in strings for p in s) if strings else None,
            )
        peak = sum(float(a.peak_power_w) for a in site.arrays) if site.arrays else None
        sites[site.slug] = SitePlan(site.slug, site.commune, peak)
    return Plan(inverters, sites, tuple(problems))


def peer_problems(plan: Plan, min_peers: int) -> list[str]:
    """Communes where too few roofs share the sky for an index: said once, never papered over with a number."""
    inverters: dict[str, int] = {}
    sites: dict[str, int] = {}
    for p in plan.inverters.values():
        if p.complete and p.orientations and p.commune is not None:
            inverters[p.commune] = inverters.get(p.commune, 0) + 1
    for site in {p.site for p in plan.inverters.values() if p.complete and p.orientations}:
        commune = plan.sites[site].commune
        if commune is not None:
            sites[commune] = sites.get(commune, 0) + 1
    out = []
    for commune in sorted(set(inverters) | set(sites)):
        if inverters.get(commune, 0) <= min_peers:
            out.append(f"commune {commune}: {inverters.get(commune, 0)} inverter(s) with a clear-sky expectation: "
                       f"an index needs {min_peers} peers, none is computed")
        elif sites.get(commune, 0) <= min_peers:
            out.append(f"commune {commune}: {sites.get(commune, 0)} site(s) with a clear-sky expectation: "
                       f"a site index needs {min_peers} peers, no _site index is computed")
    return out


def analytics_notes(inventory: InventoryLike, min_peers: int = 2) -> list[str]:
    """Everything the inventory lacks for the yield analytics, for ``terril check-config`` and the job's log."""
    plan = plan_from_inventory(inventory)
    return [*plan.problems, *peer_problems(plan, min_peers)]
