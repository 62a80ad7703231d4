"""The demo town: its sites, their simulated devices, and the config files that describe them.

One table (``TOWN``) says what the town has; everything else is derived from
it: the simulator layout (one Modbus TCP port per site, one unit id per
device), one agent config per site and the ingest config. The configs are
validated by the same loaders as a user's files before any process starts, so
a demo that starts is a demo whose files a technician could copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LATITUDE = 50.457
LONGITUDE = 2.793
TIMEZONE = "Europe/Paris"
DATABASE = "terril"

POLL_INTERVAL_S = 5
HEALTH_INTERVAL_S = 15
MODBUS_TIMEOUT_S = 1.0
"""Short, so that the silent inverter costs its neighbours on the same port little time."""


@dataclass(frozen=True)
class InverterPlan:
    name: str
    peak_power_w: float
    strings: int = 2


@dataclass(frozen=True)
class SitePlan:
    """One building (or citizen roof): its inverters and the meter at its grid connection."""

    slug: str
    name: str
    owner: str
    panels: int
    inverters: tuple[InverterPlan, ...]
    base_load_w: float
    day_load_w: float

    @property
    def peak_power_w(self) -> float:
        return sum(i.peak_power_w for i in self.inverters)

    @property
    def meter_name(self) -> str:
        return "compteur-general"

    @property
    def meter_unit(self) -> int:
        return len(self.inverters) + 1

    def device_names(self) -> list[str]:
        return [i.name for i in self.inverters] + [self.meter_name]


def _inv(name: str, kwp: float, strings: int = 2) -> InverterPlan:
    return InverterPlan(name, kwp * 1000, strings)


TOWN: tuple[SitePlan, ...] = (
    SitePlan("mairie", "Hôtel de ville", "commune", 160,
             (_inv("onduleur-toiture-sud", 36), _inv("onduleur-toiture-nord", 12)), 6000, 12000),
    SitePlan("ecole-jaures", "École Jean-Jaurès", "commune", 110,
             (_inv("onduleur-preau", 18), _inv("onduleur-classes", 15)), 3000, 9000),
    SitePlan("ecole-curie", "École Marie-Curie", "commune", 90,
             (_inv("onduleur-batiment-a", 15), _inv("onduleur-batiment-b", 12)), 2500, 8000),
    SitePlan("eglise", "Église Saint-Martin", "commune", 48,
             (_inv("onduleur-nef", 9), _inv("onduleur-sacristie", 5, strings=1)), 500, 1500),
    SitePlan("salle-lagrange", "Salle des sports Léo-Lagrange", "commune", 240,
             (_inv("onduleur-1", 30), _inv("onduleur-2", 30), _inv("onduleur-3", 12)), 4000, 10000),
    SitePlan("salle-cerdan", "Salle de sports Marcel-Cerdan", "commune", 180,
             (_inv("onduleur-est", 27), _inv("onduleur-ouest", 27)), 3000, 8000),
    SitePlan("services-techniques", "Centre technique municipal", "commune", 200,
             (_inv("onduleur-hangar", 40), _inv("onduleur-ateliers", 20)), 5000, 15000),
    SitePlan("vestiaires-stade", "Vestiaires du stade", "commune", 40,
             (_inv("onduleur-vestiaires", 8), _inv("onduleur-tribune", 4, strings=1)), 1500, 3000),
    SitePlan("mediatheque", "Médiathèque", "commune", 70,
             (_inv("onduleur-terrasse", 12), _inv("onduleur-verriere", 9)), 2000, 6000),
    SitePlan("cooperative", "Toit de la coopérative citoyenne", "cooperative", 300,
             (_inv("onduleur-a", 36), _inv("onduleur-b", 36), _inv("onduleur-c", 18)), 1000, 2000),
    SitePlan("toit-rue-des-mineurs", "Toit citoyen, rue des Mineurs", "citizen", 18,
             (_inv("onduleur", 6),), 400, 1200),
    SitePlan("toit-cite-lumiere", "Toit citoyen, cité de la Lumière", "citizen", 12,
             (_inv("onduleur", 3, strings=1),), 300, 900),
    SitePlan("panneau-par-naissance", "Un panneau par naissance", "commune", 84,
             (_inv("onduleur-naissances-1", 14), _inv("onduleur-naissances-2", 14)), 100, 200),
)
"""The town. The first sites carry the incidents, so ``--sites 2`` still shows both."""

FAULT_SITE, FAULT_DEVICE, FAULT_CODE = "mairie", "onduleur-toiture-nord", "GROUND_FAULT"
SILENT_SITE, SILENT_DEVICE = "ecole-jaures", "onduleur-preau"


def choose_sites(count: int | None) -> tuple[SitePlan, ...]:
    """The first ``count`` sites of the town (all of them by default)."""
    if count is None:
        return TOWN
    if not 1 <= count <= len(TOWN):
        raise ValueError(f"--sites must be between 1 and {len(TOWN)}, got {count}")
    return TOWN[:count]


# --------------------------------------------------------------------------- simulator


def simulator_document(sites: tuple[SitePlan, ...], ports: dict[str, int], *,
                       start_iso: str | None, time_factor: float) -> dict[str, Any]:
    """The simulator layout (``config/simulator.example.yaml`` shape): one TCP port per site."""
    servers = []
    for site in sites:
        units: list[dict[str, Any]] = [
            {"unit": n, "kind": "inverter", "name": f"{site.slug}-{inv.name}"[:63],
             "peak_power_w": inv.peak_power_w, "strings": inv.strings}
            for n, inv in enumerate(site.inverters, start=1)
        ]
        units.append({"unit": site.meter_unit, "kind": "meter", "name": f"{site.slug}-{site.meter_name}"[:63],
                      "measures": list(range(1, len(site.inverters) + 1)),
                      "base_load_w": site.base_load_w, "day_load_w": site.day_load_w})
        servers.append({"tcp": {"port": ports[site.slug]}, "units": units})
    doc: dict[str, Any] = {
        "site": {"latitude": LATITUDE, "longitude": LONGITUDE, "timezone": TIMEZONE},
        "time_factor": time_factor,
        "listen": {"host": "127.0.0.1"},
        "clouds": {"cloudiness": 0.3, "seed": 7},
        "servers": servers,
    }
    if start_iso is not None:
        doc["start"] = start_iso
    return doc


# --------------------------------------------------------------------------- agents and ingest


def agent_document(site: SitePlan, modbus_port: int, broker_port: int, spool_path: Path) -> dict[str, Any]:
    """One site's agent config (``config/agent.example.yaml`` shape)."""
    devices: list[dict[str, Any]] = []
    for unit, inv in enumerate(site.inverters, start=1):
        devices.append(_device(inv.name, "inverter", modbus_port, unit))
    devices.append(_device(site.meter_name, "meter", modbus_port, site.meter_unit))
    return {
        "site": {"slug": site.slug, "name": site.name, "peak_power_w": site.peak_power_w, "panels": site.panels,
                 "owner": site.owner, "latitude": LATITUDE, "longitude": LONGITUDE},
        "broker": {"host": "127.0.0.1", "port": broker_port, "client_id": f"terril-demo-{site.slug}"},
        "devices": devices,
        "spool": {"path": str(spool_path)},
        "health": {"interval": HEALTH_INTERVAL_S},
        "log": {"level": "INFO"},
    }


def _device(name: str, kind: str, port: int, unit: int) -> dict[str, Any]:
    return {"name": name, "kind": kind, "driver": "sunspec", "unit": unit, "interval": POLL_INTERVAL_S,
            "transport": {"type": "tcp", "host": "127.0.0.1", "port": port, "timeout": MODBUS_TIMEOUT_S}}


def ingest_document(broker_port: int, influx_url: str, inventory: Path | None = None) -> dict[str, Any]:
    """The ingest config (``config/ingest.example.yaml`` shape), InfluxDB 1.x through ``/write``."""
    doc: dict[str, Any] = {
        "broker": {"host": "127.0.0.1", "port": broker_port},
        "subscription": {"group": "terril-ingest", "client_id": "terril-ingest-demo"},
        "influxdb": {"api": "v1", "url": influx_url, "database": DATABASE},
        "batch": {"max_points": 5000, "max_delay": 1.0},
        "rollup": {"timezone": TIMEZONE, "every": 60, "territory_consumption_wh_per_year": 36_000_000_000},
    }
    if inventory is not None:
        doc["inventory"] = str(inventory)
    return doc


COMMUNE_INSEE, COMMUNE_NAME = "62528", "Loos-en-Gohelle"
NEWBORN_SITE = "panneau-par-naissance"
DEMO_NEWBORNS = (
    (1, "2024-01-12", "Léa", True), (2, "2024-02-03", "", False), (3, "2024-03-17", "Noah", True),
    (4, "2024-05-30", "Jules", False), (5, "2024-08-09", "Chloé", True), (6, "2024-11-21", "", False),
    (7, "2025-01-04", "Gabriel", True), (8, "2025-03-15", "Manon", False), (9, "2025-06-02", "Adam", True),
    (10, "2025-09-27", "Lina", True),
)
"""A few births for the newborn array; names only where the parents consented."""


def _orientation(inverter: str) -> tuple[float, float]:
    """(tilt, azimuth) of a demo array. The simulator's sun has no orientation, so every roof faces south."""
    return (15.0, 180.0) if inverter.startswith("onduleur-verriere") else (30.0, 180.0)


def inventory_document(sites: tuple[SitePlan, ...], register: str) -> dict[str, Any]:
    """The town's inventory (``config/sites.example.yaml`` shape): one array per simulated inverter."""
    docs = []
    for site in sites:
        panel_w = site.peak_power_w / site.panels
        arrays = []
        for inv in site.inverters:
            tilt, azimuth = _orientation(inv.name)
            arrays.append({"name": inv.name.removeprefix("onduleur-") or "toit", "inverter": inv.name,
                           "peak_power_w": inv.peak_power_w, "panels": max(1, round(inv.peak_power_w / panel_w)),
                           "tilt": tilt, "azimuth": azimuth, "technology": "mono-PERC",
                           "commissioned": "2021-06-15"})
        docs.append({"slug": site.slug, "name": site.name, "owner": site.owner, "commune": COMMUNE_INSEE,
                     "latitude": LATITUDE, "longitude": LONGITUDE, "arrays": arrays})
    doc: dict[str, Any] = {
        "territory": {"name": COMMUNE_NAME, "timezone": TIMEZONE,
                      "communes": [{"insee": COMMUNE_INSEE, "name": COMMUNE_NAME}],
                      "target": {"year": 2050, "share": 1.0}, "baseline_year": 2019},
        "sites": docs,
    }
    if any(site.slug == NEWBORN_SITE for site in sites):
        doc["newborn_panels"] = {"site": NEWBORN_SITE, "register": register}
    return doc


def newborn_register_text() -> str:
    lines = ["panel,born,first_name,consent"]
    lines += [f"{panel},{born},{name},{'true' if consent else 'false'}" for panel, born, name, consent in DEMO_NEWBORNS]
    return "\n".join(lines) + "\n"


def write_yaml(path: Path, document: dict[str, Any], header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {header}\n# Written by `make demo` (python -m agent.demo); rewritten at every start.\n"
    text += yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path
