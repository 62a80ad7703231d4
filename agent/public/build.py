"""Build the whole public site at one instant: query, compute the public view, render, publish.

``build_site`` is what ``terril public build`` and the ingest's scheduled job
call. A failure (InfluxDB unreachable, a bad inventory) raises before
anything is published: the previous site stays online.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.central.inventory import Inventory, Newborn, inventory_for, load_newborns
from agent.central.rollup import QueryClient, client_from_config
from agent.central.territory.report import balance_for
from agent.public.config import PublicConfig
from agent.public.model import PublicView, public_view
from agent.public.numbers import LANGS
from agent.public.opendata import daily_csv, sites, summary, to_json
from agent.public.pages import index_page, panel_href, panel_page, roof_href, roof_page
from agent.public.publish import publish
from agent.public.query import Facts, fetch_facts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltSite:
    build: Path
    """The folder written (``out`` now points to it)."""
    files: int
    view: PublicView


def render_files(view: PublicView, facts: Facts, config: PublicConfig) -> dict[str, bytes]:
    """Every file of the site, by relative path."""
    files: dict[str, bytes] = {}
    for lang in LANGS:
        prefix = "" if lang == "fr" else "en/"
        files[f"{prefix}index.html"] = index_page(view, config, lang).encode("utf-8")
        for roof in view.roofs:
            files[prefix + roof_href(roof, lang)] = roof_page(view, config, roof, lang).encode("utf-8")
        if view.newborns is not None:
            for panel in view.newborns.registered:
                files[prefix + panel_href(panel, lang)] = panel_page(view, config, view.newborns, panel,
                                                                     lang).encode("utf-8")
    days = [(d.day.isoformat(), d.production_wh, d.reference_wh) for d in facts.territory
            if d.production_wh is not None or d.reference_wh is not None]
    files["data/summary.json"] = to_json(summary(view, config))
    files["data/sites.json"] = to_json(sites(view))
    files["data/daily.csv"] = daily_csv(view, days).encode("utf-8")
    return files


def build_site(
    ingest: Any,
    out: Path | str,
    at: datetime | None = None,
    public: PublicConfig | None = None,
    client: QueryClient | None = None,
    inventory: Inventory | None = None,
) -> BuiltSite:
    """Build the site from an ``IngestConfig`` at *at* (default: now) and publish it to *out*."""
    config = public or getattr(ingest, "public", None) or PublicConfig.model_validate({"out": str(out)})
    inventory = inventory if inventory is not None else inventory_for(ingest)
    register: tuple[Newborn, ...] = ()
    if inventory is not None and inventory.newborn_panels is not None:
        register = load_newborns(inventory.newborn_panels.register)
    tz = ingest.rollup.timezone
    moment = (at or datetime.now(UTC))
    host = inventory.newborn_panels.site if inventory is not None and inventory.newborn_panels else None
    client = client or client_from_config(ingest.influxdb)
    facts = fetch_facts(
        client,
        moment,
        tz,
        reference_wh_per_year=ingest.rollup.territory_consumption_wh_per_year,
        host_site=host if register else None,
        host_since=min((n.born for n in register), default=None),
    )
    renewable = balance_for(inventory, client, now=moment) if inventory is not None else None
    view = public_view(facts, inventory, config, register, renewable=renewable)
    files = render_files(view, facts, config)
    build = publish(Path(out), files)
    return BuiltSite(build, len(files), view)
