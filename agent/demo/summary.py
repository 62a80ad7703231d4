"""What the town looks like from InfluxDB: the demo's live summary.

Everything shown comes from InfluxQL queries on what the ingest stored, the
same way a Grafana panel would get it — so the summary proves the whole chain
(simulator -> agent -> Mosquitto -> ingest -> InfluxDB), not just that
processes are running. Energy today comes from the lifetime counters
(``non_negative_difference``, as DESIGN.md asks), never from integrating power.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.central.influxql import InfluxQLClient, Series, quote_ident, quote_string, time_ms
from agent.schema import TERRITORY_SITE

ONLINE_WINDOW_S = 60
"""A device counts as reporting when a reading of it is younger than this."""


@dataclass(frozen=True)
class ActiveFault:
    site: str
    device: str
    code: str
    text: str
    since_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "device": self.device, "code": self.code, "text": self.text,
                "since_ms": self.since_ms}


@dataclass
class SiteSummary:
    slug: str
    devices: list[str]
    """Names of the site's configured devices."""
    online: bool | None = None
    """The agent's retained status (``agent.up``); None before it said anything."""
    reporting: set[str] = field(default_factory=set)
    """Devices with a reading in the last ``ONLINE_WINDOW_S`` seconds."""
    power_w: float = 0.0
    energy_today_wh: float = 0.0
    readings: int = 0
    spool_depth: int | None = None
    faults: list[ActiveFault] = field(default_factory=list)

    @property
    def silent(self) -> list[str]:
        """Configured devices without a recent reading (not answering, or their agent is down)."""
        return [d for d in self.devices if d not in self.reporting]

    def to_dict(self) -> dict[str, Any]:
        return {"online": self.online, "reporting": sorted(self.reporting), "silent": self.silent,
                "power_w": round(self.power_w, 1), "energy_today_wh": round(self.energy_today_wh, 1),
                "readings": self.readings, "spool_depth": self.spool_depth,
                "faults": [f.code for f in self.faults]}


@dataclass
class TownSummary:
    sites: dict[str, SiteSummary]
    rollup_today_wh: float | None = None
    """Today's territory production as the ingest's rollup stored it (``energy_daily``), once it ran."""

    @property
    def online(self) -> int:
        return sum(1 for s in self.sites.values() if s.online)

    @property
    def power_w(self) -> float:
        return sum(s.power_w for s in self.sites.values())

    @property
    def energy_today_wh(self) -> float:
        return sum(s.energy_today_wh for s in self.sites.values())

    @property
    def readings(self) -> int:
        return sum(s.readings for s in self.sites.values())

    @property
    def spool_depth(self) -> int:
        return sum(s.spool_depth or 0 for s in self.sites.values())

    @property
    def faults(self) -> list[ActiveFault]:
        return [f for s in self.sites.values() for f in s.faults]


def statements(day_start_ms: int) -> list[str]:
    """The queries of one summary, in the order :func:`collect` reads them."""
    fresh = f"time > now() - {ONLINE_WINDOW_S}s"
    today = f"time >= {time_ms(day_start_ms)}"
    counts = [
        f'SELECT count({quote_ident(fld)}) FROM {quote_ident(m)} GROUP BY "site"'
        for m, fld in (("inverter", "ac_power_w"), ("meter", "power_w"), ("mppt", "dc_power_w"))
    ]
    return [
        'SELECT last("up") FROM "agent" GROUP BY "site"',
        'SELECT last("spool_depth") FROM "agent" GROUP BY "site"',
        f'SELECT last("ac_power_w") FROM "inverter" WHERE {fresh} GROUP BY "site", "device"',
        f'SELECT last("power_w") FROM "meter" WHERE {fresh} GROUP BY "site", "device"',
        'SELECT sum("d") FROM (SELECT non_negative_difference("ac_energy_wh") AS "d" FROM "inverter" '
        f'WHERE {today} GROUP BY "site", "device") GROUP BY "site"',
        'SELECT "active", "text" FROM "event" GROUP BY "site", "device", "code" ORDER BY time DESC LIMIT 1',
        'SELECT last("production_wh") FROM "energy_daily" WHERE "site" = '
        f"{quote_string(TERRITORY_SITE)} AND {today}",
        *counts,
    ]


def collect(client: InfluxQLClient, devices_per_site: dict[str, list[str]], day_start_ms: int) -> TownSummary:
    """Query InfluxDB once (one HTTP request) and sum it up per site."""
    results = client.query_many(statements(day_start_ms))
    up, spool, inv_power, meter_power, energy, events, rollup, *counts = results
    sites = {slug: SiteSummary(slug, list(names)) for slug, names in devices_per_site.items()}

    def each(series: list[Series]) -> list[tuple[SiteSummary, dict[str, Any], dict[str, str]]]:
        rows = []
        for s in series:
            site = sites.get(s.tags.get("site", ""))
            if site is not None:
                rows += [(site, row, s.tags) for row in s.rows()]
        return rows

    for site, row, _ in each(up):
        site.online = bool(row.get("last"))
    for site, row, _ in each(spool):
        site.spool_depth = int(row.get("last") or 0)
    for site, row, tags in each(inv_power):
        site.reporting.add(tags.get("device", ""))
        site.power_w += float(row.get("last") or 0.0)
    for site, _row, tags in each(meter_power):
        site.reporting.add(tags.get("device", ""))
    for site, row, _ in each(energy):
        site.energy_today_wh += float(row.get("sum") or 0.0)
    for site, row, tags in each(events):
        if row.get("active") == 1:
            site.faults.append(ActiveFault(tags["site"], tags.get("device", "?"), tags.get("code", "?"),
                                           str(row.get("text") or ""), int(row.get("time") or 0)))
    for result in counts:
        for site, row, _ in each(result):
            site.readings += int(row.get("count") or 0)
    rollup_rows = [row for s in rollup for row in s.rows()]
    rollup_wh = float(rollup_rows[-1]["last"]) if rollup_rows and rollup_rows[-1].get("last") is not None else None
    return TownSummary(sites, rollup_wh)


# --------------------------------------------------------------------------- text


def _kw(watts: float) -> str:
    return f"{watts / 1000:8.1f}"


def render(summary: TownSummary, *, now: datetime, sim_now: datetime, time_factor: float) -> str:
    """The block printed every few seconds: totals, one line per site, the active faults."""
    sim = f"simulated sun {sim_now:%H:%M}" + (f", time x{time_factor:g}" if time_factor != 1 else "")
    lines = [
        f"── {now:%H:%M:%S}  ({sim}) ── sites online {summary.online}/{len(summary.sites)}"
        f" · power {summary.power_w / 1000:.1f} kW · today {summary.energy_today_wh / 1000:.2f} kWh"
        f" · readings stored {summary.readings} · spool {summary.spool_depth}"
        + ("" if summary.rollup_today_wh is None else f" · rollup today {summary.rollup_today_wh / 1000:.2f} kWh"),
        f"  {'site':<24}{'agent':>8}{'devices':>9}{'kW now':>9}{'kWh today':>11}{'readings':>10}{'spool':>7}",
    ]
    for s in summary.sites.values():
        agent = "—" if s.online is None else ("online" if s.online else "OFFLINE")
        spool = "—" if s.spool_depth is None else str(s.spool_depth)
        lines.append(
            f"  {s.slug:<24}{agent:>8}{f'{len(s.reporting)}/{len(s.devices)}':>9}{_kw(s.power_w):>9}"
            f"{s.energy_today_wh / 1000:>11.2f}{s.readings:>10}{spool:>7}"
        )
    for s in summary.sites.values():
        if s.silent and s.online is not None:
            lines.append(f"  NO DATA {s.slug}: {', '.join(s.silent)} (no reading for {ONLINE_WINDOW_S} s)")
    faults = summary.faults
    if faults:
        for f in faults:
            since = datetime.fromtimestamp(f.since_ms / 1000).astimezone()
            lines.append(f"  FAULT {f.site}/{f.device}: {f.code} ({f.text}) since {since:%H:%M:%S}")
    else:
        lines.append("  no active fault")
    return "\n".join(lines)
