"""The open-data files: ``data/summary.json``, ``data/daily.csv``, ``data/sites.json``.

Their schema is documented in the README ("The public site"). They carry what
the pages show and nothing more: no consumption, import or export of any
site, no slug of an anonymous roof, no device.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from agent.public.config import PublicConfig
from agent.public.model import PublicView, Roof
from agent.public.pages import panel_href, roof_href

SCHEMA_VERSION = 1


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _roof(roof: Roof, year: int) -> dict[str, Any]:
    return {
        "slug": roof.key,
        "name": roof.name if roof.name is not None else f"Toit citoyen n° {roof.number}",
        "owner": roof.owner,
        "anonymous": roof.name is None,
        "peak_power_w": _num(roof.peak_power_w),
        "power_now_w": _num(roof.power_now_w),
        "energy_today_wh": _num(roof.today_wh),
        "energy_year_wh": _num(roof.year_wh),
        "energy_total_wh": _num(roof.total_wh),
        "yield_kwh_per_kwp_year": _num(roof.yield_kwh_per_kwp_year),
        "year": year,
        "last_reading": roof.last_reading.isoformat() if roof.last_reading else None,
        "page": {"fr": roof_href(roof, "fr"), "en": "en/" + roof_href(roof, "en")},
    }


def summary(view: PublicView, config: PublicConfig) -> dict[str, Any]:
    """The keys of DESIGN.md §Public site, plus the periods and factors they depend on."""
    year = view.at.year
    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "at": view.at.isoformat(),
        "timezone": view.timezone,
        "territory": view.territory_name,
        "last_reading": view.last_reading.isoformat() if view.last_reading else None,
        "last_contact": view.last_contact.isoformat() if view.last_contact else None,
        "stale": view.stale,
        "power_now_w": _num(view.power_now_w),
        "energy_today_wh": _num(view.energy_today_wh),
        "energy_month_wh": _num(view.energy_month_wh),
        "energy_year_wh": _num(view.energy_year_wh),
        "energy_12_months_wh": _num(view.energy_12_months_wh),
        "energy_total_wh": _num(view.energy_total_wh),
        "first_day": view.first_day.isoformat() if view.first_day else None,
        "share_of_consumption_year": _num(view.share_year, 6),
        "share_of_consumption_12_months": _num(view.share_12_months, 6),
        "target": {"year": view.target.year, "share": view.target.share} if view.target else None,
        "renewable_share": _renewable(view),
        "co2_avoided_kg_year": _num(view.co2_avoided_kg_year),
        "co2_kg_per_kwh": config.co2_kg_per_kwh,
        "co2_source": config.co2_source.get("fr"),
        "households_equivalent": _num(view.households_equivalent, 2),
        "household_kwh_per_year": config.household_kwh_per_year,
        "household_source": config.household_source.get("fr"),
        "sites": [
            {k: v for k, v in _roof(r, year).items()
             if k in ("slug", "name", "owner", "energy_year_wh", "yield_kwh_per_kwp_year")}
            for r in view.roofs
        ],
    }
    if view.newborns is not None:
        doc["newborn_panels"] = {
            "panels": view.newborns.panels,
            "given": len(view.newborns.registered),
            "energy_since_first_birth_wh": _num(view.newborns.energy_total_wh),
        }
    return doc


def sites(view: PublicView) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": SCHEMA_VERSION, "at": view.at.isoformat(),
                           "sites": [_roof(r, view.at.year) for r in view.roofs]}
    if view.newborns is not None:
        doc["newborn_panels"] = [
            {"panel": p.panel, "born_month": p.born.strftime("%Y-%m"), "first_name": p.first_name,
             "energy_since_birth_wh": _num(p.energy_wh),
             "page": {"fr": panel_href(p, "fr"), "en": "en/" + panel_href(p, "en")}}
            for p in view.newborns.registered
        ]
    return doc


def daily_csv(view: PublicView, days: list[tuple[str, float | None, float | None]]) -> str:
    """``date,production_wh,reference_consumption_wh``: the territory, one row per local day (today partial)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["date", "production_wh", "reference_consumption_wh"])
    for day, prod, ref in days:
        writer.writerow([day, "" if prod is None else f"{prod:.1f}", "" if ref is None else f"{ref:.1f}"])
    return buf.getvalue()


def to_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")


def _renewable(view: PublicView) -> dict[str, Any] | None:
    """All local renewable production / electricity consumption (grid operators' open data), latest year."""
    r = view.renewable
    if r is None or r.renewable_share is None:
        return None
    return {"year": r.year, "share": _num(r.renewable_share, 6), "complete": r.complete,
            "consumption_wh": _num(r.consumption_wh), "renewable_production_wh": _num(r.renewable_production_wh),
            "target_share_that_year": _num(r.target_share_that_year, 6), "sources": list(r.sources)}
