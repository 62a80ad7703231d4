"""Generate terril's Grafana dashboards and alert rules from one description.

Why code and not hand-edited JSON: every panel must carry a unit, a title, a
description, a stable id and the provisioned datasource uid, and every query
must use the field names of ``agent/schema.py``. Generating the JSON makes
those rules hold by construction; ``tests/test_grafana.py`` fails when the
committed files differ from what this script produces (run it after an edit):

    .venv/bin/python -m grafana.build          # rewrite grafana/dashboards/*.json and the alert rules
    .venv/bin/python -m grafana.build --check  # exit 1 if a committed file is stale

Queries are InfluxQL only (InfluxDB 1.x, 2.x through the v1 API + DBRP, 3 Core).
Energy comes from lifetime counters (``non_negative_difference``) or from the
``energy_daily`` rollups, never from integrating power. Queries never call
``now()``: the time range comes from ``$timeFilter``, which Grafana renders as
absolute epoch milliseconds, so the tests can evaluate a dashboard at a chosen instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from agent.schema import (
    AGENT,
    BATTERY,
    ENERGY_DAILY,
    EVENT,
    INVERTER,
    METER,
    MPPT,
    PERFORMANCE_DAILY,
    SITE_DEVICE,
    SITE_INFO,
    STATE_FAULT,
    STATE_NAMES,
    STRING_DAILY,
    TECHNOLOGY_DAILY,
    TERRITORY_BALANCE,
    TERRITORY_SITE,
)

ROOT = Path(__file__).resolve().parent
DASHBOARD_DIR = ROOT / "dashboards"
RULES_FILE = ROOT / "provisioning" / "alerting" / "terril-rules.yaml"

DS_UID = "terril-influxdb"
"""Provisioned InfluxDB datasource (technical services, full read access)."""
DS_PUBLIC_UID = "terril-influxdb-public"
"""Provisioned datasource of the Public dashboard: an InfluxDB user that may only read the aggregates."""
DS = {"type": "influxdb", "uid": DS_UID}
DS_PUBLIC = {"type": "influxdb", "uid": DS_PUBLIC_UID}
TZ = "Europe/Paris"
SCHEMA_VERSION = 39
"""Dashboard JSON model version written by Grafana 10.4 / 11.x."""

CO2_KG_PER_KWH = 0.052
"""CO2 avoided per solar kWh: the ADEME Base Empreinte average French consumption mix (about
52 gCO2e/kWh). It counts the grid electricity that local solar replaces; the panels' own
life-cycle emissions are not subtracted. Change it here and rebuild to use another factor."""

FLEET_PRODUCING_W = 1000.0
"""Daylight test of the alert rules: the whole fleet produces more than this (tune to ~1 % of town kWp)."""

# Field names, taken from the schema so a rename breaks the build rather than a dashboard.
F = INVERTER.fields_by_name
assert {"ac_power_w", "ac_energy_wh", "dc_power_w", "state", "events"} <= set(F)
INV, MPP, MET, EVT, AGT, INFO, DAILY = (m.name for m in (INVERTER, MPPT, METER, EVENT, AGENT, SITE_INFO, ENERGY_DAILY))
BAT = BATTERY.name
for _m, _names in ((MPPT, ("dc_power_w",)), (METER, ("power_w",)), (EVENT, ("active", "text")),
                   (BATTERY, ("power_w", "state_of_charge")),
                   (AGENT, ("up", "spool_depth", "spool_unacked", "spool_unacked_oldest_s", "poll_errors",
                            "poll_ok")),
                   (SITE_INFO, ("peak_power_w", "panels", "owner", "name")),
                   (ENERGY_DAILY, ("production_wh", "consumption_wh", "import_wh", "export_wh",
                                   "reference_consumption_wh"))):
    assert set(_names) <= set(_m.fields_by_name), (_m.name, _names)

BALANCE = TERRITORY_BALANCE.name
assert {"consumption_wh", "renewable_production_wh", "monitored_production_wh", "renewable_share", "target_share",
        "missing_wh", "missing_peak_power_w", "missing_roofs"} <= set(TERRITORY_BALANCE.fields_by_name)
BALANCE_TERRITORY = f"\"commune\" = '{TERRITORY_SITE}'"
YEARLY = [{"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY", "useTimezone": True}}]
"""Yearly rows sit at 1 January, local midnight: shown as the year."""
Q_BALANCE_PER_YEAR = (
    f'SELECT "consumption_wh", "renewable_production_wh", "monitored_production_wh" FROM "{BALANCE}" '
    f'WHERE {BALANCE_TERRITORY} AND $timeFilter'
)
Q_TRAJECTORY = f'SELECT "renewable_share", "target_share" FROM "{BALANCE}" WHERE {BALANCE_TERRITORY}'
"""The whole path to the target year, whatever the time range (the target lies in the future)."""
TRAJECTORY_SETUP = ("Filled by `terril territory import` (open data of the grid operators per commune) and refreshed "
                    "by every rollup; the target and baseline year come from the inventory (sites.yaml).")

SITE_RE = '"site" =~ /^$site$/'
DEVICE_RE = '"device" =~ /^$device$/'
TERRITORY = f"\"site\" = '{TERRITORY_SITE}'"

REFERENCE_SETTING = "rollup.territory_consumption_wh_per_year"
"""Ingest setting that makes the rollup write ``reference_consumption_wh``: without it, no share."""
WITH_REFERENCE = '"reference_consumption_wh" > 0'
"""Only the days the rollup gave a reference count in a share: a reference configured in June must not
divide January-to-December production by June-to-December consumption."""
Q_SHARE_COMPLETE_DAYS = (
    f'SELECT (sum("production_wh") - last("production_wh")) / '
    f'(sum("reference_consumption_wh") - last("reference_consumption_wh")) FROM "{DAILY}" '
    f'WHERE {TERRITORY} AND {WITH_REFERENCE} AND $timeFilter'
)
"""Energy-positive share over the complete days of the range: production / reference consumption.

Today's row holds the production *so far* but the *whole* day's reference, which would bias the
share low all day long (most at dawn). Grafana has no macro for "local midnight today" that both
the dashboards and the public (server-side) dashboards expand, so the query leaves out the newest
daily row of the range, ``last()``: the one the rollup refreshes every 5 minutes, today's. (In the
few minutes after midnight before the first rollup of the day, the newest row is yesterday's and
the share is one day older; it is never biased.)"""
SHARE_NOTE = ("Counts the complete days only: today's row (production so far against the whole day's "
              "reference) is left out. ")
SHARE_SETUP = (f"Needs the town's annual consumption in the ingest config ({REFERENCE_SETTING}, in Wh "
               "per year): without it the rollup writes no reference_consumption_wh and this panel has no value; "
               "days before it was set are left out.")
NO_REFERENCE = f"No reference: set {REFERENCE_SETTING}"

# --------------------------------------------------------------------------- queries (also used by the tests)

Q_ENERGY_TODAY_PER_SITE = (
    f'SELECT sum("d") FROM (SELECT non_negative_difference("ac_energy_wh") AS "d" FROM "{INV}" '
    f'WHERE $timeFilter GROUP BY "site", "device") GROUP BY "site"'
)
Q_ENERGY_TODAY_FLEET = (
    f'SELECT sum("d") FROM (SELECT non_negative_difference("ac_energy_wh") AS "d" FROM "{INV}" '
    f'WHERE $timeFilter GROUP BY "site", "device")'
)
Q_FLEET_POWER_NOW = (
    f'SELECT sum("p") FROM (SELECT last("ac_power_w") AS "p" FROM "{INV}" WHERE $timeFilter '
    f'GROUP BY "site", "device")'
)
"""Device names are unique only within a site (two buildings may each have an ``onduleur``): every
per-inverter subquery groups by site *and* device, then the outer query sums over all of them."""
Q_DAILY_FROM_COUNTERS = (
    f'SELECT sum("d") FROM (SELECT non_negative_difference("ac_energy_wh") AS "d" FROM "{INV}" '
    f"WHERE {SITE_RE} AND {DEVICE_RE} AND $timeFilter) GROUP BY time(1d) fill(none) tz('{TZ}')"
)


def _state_mappings() -> list[dict[str, Any]]:
    colors = {STATE_FAULT: "red", 4: "green", 5: "yellow", 2: "blue"}
    return [{"type": "value", "options": {
        str(code): {"text": name, "color": colors.get(code, "text"), "index": i}
        for i, (code, name) in enumerate(sorted(STATE_NAMES.items()))}}]


# --------------------------------------------------------------------------- panel helpers


class Layout:
    """Packs panels left to right, 24 columns wide, and numbers them."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> tuple[int, dict[str, int]]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        pid = self.next_id
        self.next_id += 1
        return pid, pos


def target(ref: str, query: str, ds: dict[str, str], fmt: str = "time_series", alias: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": ds, "rawQuery": True, "query": query, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def thresholds(*steps: tuple[float, str]) -> dict[str, Any]:
    # Grafana treats the first step as -Infinity whatever its value; the published JSON schema
    # types ``value`` as a number, so the base step carries 0 instead of null.
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def panel(layout: Layout, kind: str, title: str, description: str, unit: str, targets: list[dict[str, Any]],
          ds: dict[str, str], w: int = 6, h: int = 5, time_from: str | None = None, decimals: int | None = None,
          options: dict[str, Any] | None = None, transformations: list[dict[str, Any]] | None = None,
          mappings: list[dict[str, Any]] | None = None,
          steps: tuple[tuple[float, str], ...] = ((0, "green"),), interval: str | None = None,
          no_value: str | None = None) -> dict[str, Any]:
    pid, pos = layout.place(w, h)
    defaults: dict[str, Any] = {"unit": unit, "thresholds": thresholds(*steps), "color": {"mode": "thresholds"}}
    if no_value is not None:
        defaults["noValue"] = no_value
    if kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False}
    if decimals is not None:
        defaults["decimals"] = decimals
    if mappings:
        defaults["mappings"] = mappings
    p: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": ds,
        "gridPos": pos, "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options if options is not None else _default_options(kind),
    }
    if time_from:
        p["timeFrom"] = time_from
    if transformations:
        p["transformations"] = transformations
    if interval:
        p["interval"] = interval
    return p


def _default_options(kind: str) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if kind == "stat":
        return {"reduceOptions": reduce, "colorMode": "value", "graphMode": "none", "textMode": "auto",
                "justifyMode": "auto", "orientation": "auto"}
    if kind == "bargauge":
        return {"reduceOptions": reduce, "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "none"}}
    if kind == "barchart":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "orientation": "auto", "xTickLabelRotation": 0, "showValue": "auto", "stacking": "none"}
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {}


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]], time_from: str,
              variables: list[dict[str, Any]] | None = None, editable: bool = True, refresh: str = "5m",
              tags: tuple[str, ...] = ("terril",)) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": list(tags), "timezone": TZ,
        "editable": editable, "graphTooltip": 1, "fiscalYearStartMonth": 0, "weekStart": "monday",
        "liveNow": False, "refresh": refresh, "schemaVersion": SCHEMA_VERSION, "version": 1,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"hidden": False, "refresh_intervals": ["1m", "5m", "15m", "1h"],
                       "time_options": ["1h", "24h", "7d", "30d"]},
        "annotations": {"list": []}, "links": [],
        "templating": {"list": variables or []},
        "panels": panels,
    }


# --------------------------------------------------------------------------- dashboards


def fleet() -> dict[str, Any]:
    L = Layout()
    ds = DS
    panels = [
        panel(L, "stat", "Fleet power now", "Sum over all inverters of their last AC power of the last 15 minutes.",
              "watt", [target("A", Q_FLEET_POWER_NOW, ds)], ds, time_from="15m"),
        panel(L, "stat", "Energy today, all sites", "Energy produced since local midnight, from the inverters' "
              "lifetime counters (sum of non-negative differences: counter resets count nothing).",
              "watth", [target("A", Q_ENERGY_TODAY_FLEET, ds)], ds, time_from="now/d"),
        panel(L, "stat", "Energy this month, all sites", "Month-to-date production of the territory from the "
              "daily rollups (energy_daily, site _territory).", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE {TERRITORY} AND $timeFilter', ds)],
              ds, time_from="now/M"),
        panel(L, "stat", "Inverters in fault", "Inverters whose last state in the last hour is FAULT (SunSpec St 7).",
              "none", [target("A", f'SELECT count("s") FROM (SELECT last("state") AS "s" FROM "{INV}" WHERE '
                                     f'$timeFilter GROUP BY "site", "device") WHERE "s" = {STATE_FAULT}', ds)],
              ds, time_from="1h", steps=((0, "green"), (1, "red"))),
        panel(L, "bargauge", "Energy today per site", "Energy produced since local midnight per site, from the "
              "lifetime counters.", "watth", [target("A", Q_ENERGY_TODAY_PER_SITE, ds, alias="$tag_site")],
              ds, w=12, h=9, time_from="now/d"),
        panel(L, "bargauge", "Energy this month per site", "Month-to-date production per site, from the daily "
              "rollups.", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE "site" != \'{TERRITORY_SITE}\' AND '
                           f'$timeFilter GROUP BY "site"', ds, alias="$tag_site")],
              ds, w=12, h=9, time_from="now/M"),
        panel(L, "table", "Specific yield this month (kWh/kWp)", "Month-to-date production divided by the "
              "installed peak power, per site: a roof well below its neighbours is underperforming (shade, "
              "soiling, a dead string). Grafana joins the two queries on the site column.",
              "suffix: kWh/kWp",
              [target("A", f'SELECT sum("production_wh") AS "production_wh" FROM "{DAILY}" WHERE '
                           f'"site" != \'{TERRITORY_SITE}\' AND $timeFilter GROUP BY "site"', ds, fmt="table"),
               target("B", f'SELECT last("peak_power_w") AS "peak_power_w" FROM "{INFO}" GROUP BY "site"', ds,
                      fmt="table")],
              ds, w=12, h=9, time_from="now/M", decimals=2,
              transformations=[
                  {"id": "joinByField", "options": {"byField": "site", "mode": "outer"}},
                  {"id": "calculateField", "options": {
                      "mode": "binary", "alias": "yield_kwh_per_kwp", "replaceFields": False,
                      "binary": {"left": "production_wh", "operator": "/", "right": "peak_power_w"}}},
                  {"id": "organize", "options": {"excludeByName": {"Time": True, "Time 1": True, "Time 2": True}}},
              ]),
        panel(L, "table", "Inverters: state and events", "Last operating state (SunSpec St) and event bits "
              "(SunSpec Evt1, 0 = none) of every inverter in the last hour. A missing inverter has not reported "
              "for an hour.", "none",
              [target("A", f'SELECT last("state") AS "state", last("events") AS "events" FROM "{INV}" '
                           f'WHERE $timeFilter GROUP BY "site", "device"', ds, fmt="table")],
              ds, w=12, h=9, time_from="1h", mappings=_state_mappings()),
        panel(L, "timeseries", "AC power per site", "Mean AC power per site (sum of its inverters).", "watt",
              [target("A", f'SELECT sum("p") FROM (SELECT mean("ac_power_w") AS "p" FROM "{INV}" WHERE $timeFilter '
                           f'GROUP BY time($__interval), "site", "device" fill(none)) '
                           f'GROUP BY time($__interval), "site" fill(none)', ds, alias="$tag_site")],
              ds, w=24, h=9, interval="5m"),
        panel(L, "table", "Events (last 7 days)", "Last transition of each inverter event code: active = 1 means "
              "the fault is still present.", "none",
              [target("A", f'SELECT last("active") AS "active", last("text") AS "text" FROM "{EVT}" WHERE '
                           f'$timeFilter GROUP BY "site", "device", "code"', ds, fmt="table")],
              ds, w=12, h=8, time_from="7d", steps=((0, "green"), (1, "red"))),
        panel(L, "table", "Agents", "Last known health of each site's edge agent (last 30 days): up (0 = offline, "
              "from its last will), readings in its spool, of which sent but not yet acknowledged as stored by the "
              "ingest (and how long ago the oldest was sent, in seconds), failed polls since start. An agent that "
              "died days ago stays listed with up = 0.", "none",
              [target("A", f'SELECT last("up") AS "up", last("spool_depth") AS "spool_depth", '
                           f'last("spool_unacked") AS "spool_unacked", '
                           f'last("spool_unacked_oldest_s") AS "spool_unacked_oldest_s", '
                           f'last("poll_errors") AS "poll_errors" FROM "{AGT}" WHERE $timeFilter GROUP BY "site"',
                      ds, fmt="table")],
              ds, w=12, h=8, time_from="30d"),
    ]
    return dashboard("terril-fleet", "terril — Fleet", "Every site and inverter of the town: producing, silent "
                     "or faulted; today's and this month's energy; specific yield.", panels, "now-24h")


def building() -> dict[str, Any]:
    L = Layout()
    ds = DS
    w_sd = f"{SITE_RE} AND {DEVICE_RE} AND $timeFilter"
    panels = [
        panel(L, "stat", "AC power now", "Last AC power of the selected inverter (last 15 minutes).", "watt",
              [target("A", f'SELECT last("ac_power_w") FROM "{INV}" WHERE {w_sd}', ds)], ds, time_from="15m"),
        panel(L, "stat", "Energy today", "Energy produced by the selected inverter since local midnight, from its "
              "lifetime counter.", "watth",
              [target("A", f'SELECT sum("d") FROM (SELECT non_negative_difference("ac_energy_wh") AS "d" FROM '
                           f'"{INV}" WHERE {w_sd})', ds)], ds, time_from="now/d"),
        panel(L, "stat", "State", "Last operating state of the selected inverter (SunSpec St).", "none",
              [target("A", f'SELECT last("state") FROM "{INV}" WHERE {w_sd}', ds)], ds, time_from="1h",
              mappings=_state_mappings()),
        panel(L, "stat", "Site energy this month", "Month-to-date production of the selected site, from the daily "
              "rollups.", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE {SITE_RE} AND $timeFilter', ds)],
              ds, time_from="now/M"),
        panel(L, "timeseries", "AC and DC power", "Mean AC output and DC input power of the inverter.", "watt",
              [target("A", f'SELECT mean("ac_power_w") AS "AC", mean("dc_power_w") AS "DC" FROM "{INV}" WHERE '
                           f'{w_sd} GROUP BY time($__interval) fill(null)', ds)], ds, w=12, h=8, interval="5m"),
        panel(L, "timeseries", "MPPT strings", "DC power of each string (MPPT input): a string at 0 W while the "
              "others produce is dead (fuse, connector, cable).", "watt",
              [target("A", f'SELECT mean("dc_power_w") FROM "{MPP}" WHERE {w_sd} GROUP BY time($__interval), '
                           f'"string" fill(null)', ds, alias="string $tag_string")], ds, w=12, h=8, interval="5m"),
        panel(L, "timeseries", "Voltages", "AC phase-to-neutral voltages and DC input voltage.", "volt",
              [target("A", f'SELECT mean("ac_voltage_an_v") AS "AN", mean("ac_voltage_bn_v") AS "BN", '
                           f'mean("ac_voltage_cn_v") AS "CN", mean("dc_voltage_v") AS "DC" FROM "{INV}" WHERE '
                           f'{w_sd} GROUP BY time($__interval) fill(null)', ds)], ds, w=12, h=8, interval="5m"),
        panel(L, "timeseries", "Temperatures", "Cabinet and heat-sink temperatures.", "celsius",
              [target("A", f'SELECT mean("temp_cabinet_c") AS "cabinet", mean("temp_heatsink_c") AS "heatsink" '
                           f'FROM "{INV}" WHERE {w_sd} GROUP BY time($__interval) fill(null)', ds)],
              ds, w=12, h=8, interval="5m"),
        panel(L, "barchart", "Daily energy from the counter", "Energy per local day (Europe/Paris, 23 h and 25 h "
              "days included) from the lifetime counter: non-negative differences between consecutive readings, "
              "summed per day (a counter reset loses one poll interval, never adds a negative).", "watth",
              [target("A", Q_DAILY_FROM_COUNTERS, ds)], ds, w=12, h=8),
        panel(L, "table", "Events", "Fault transitions of the selected inverter.", "none",
              [target("A", f'SELECT "code", "active", "text" FROM "{EVT}" WHERE {w_sd}', ds, fmt="table")],
              ds, w=12, h=8),
        panel(L, "timeseries", "Agent: spool depth", "Readings in the site agent's spool, and those of them the "
              "broker accepted but the ingest has not yet acknowledged as stored in InfluxDB. The spool grows "
              "while the uplink is down (unacknowledged stays low) or while the ingest or InfluxDB is down "
              "(unacknowledged grows with it), and drains when they come back.", "short",
              [target("A", f'SELECT max("spool_depth") AS "spool_depth", max("spool_unacked") AS "spool_unacked" '
                           f'FROM "{AGT}" WHERE {SITE_RE} AND $timeFilter GROUP BY time($__interval) fill(null)',
                      ds)], ds, w=12, h=7, interval="5m"),
        panel(L, "timeseries", "Agent: failed polls", "Failed Modbus polls per interval (difference of the "
              "agent's counter; a restart counts nothing).", "short",
              [target("A", f'SELECT non_negative_difference(last("poll_errors")) FROM "{AGT}" WHERE {SITE_RE} AND '
                           f'$timeFilter GROUP BY time($__interval) fill(null)', ds)], ds, w=12, h=7, interval="5m"),
        panel(L, "timeseries", "Battery power", "Power of the hybrid inverter's battery: positive while it "
              "discharges into the building, negative while it charges. Empty for an inverter without a battery.",
              "watt",
              [target("A", f'SELECT mean("power_w") AS "power_w" FROM "{BAT}" WHERE {w_sd} '
                           f'GROUP BY time($__interval) fill(null)', ds)], ds, w=12, h=7, interval="5m"),
        panel(L, "timeseries", "Battery state of charge", "State of charge of the hybrid inverter's battery "
              "(0-100 %). Empty for an inverter without a battery.", "percentunit",
              [target("A", f'SELECT mean("state_of_charge") AS "state_of_charge" FROM "{BAT}" WHERE {w_sd} '
                           f'GROUP BY time($__interval) fill(null)', ds)], ds, w=12, h=7, interval="5m"),
    ]
    variables = [
        {"type": "query", "name": "site", "label": "Site", "datasource": ds, "refresh": 1, "sort": 1,
         "multi": False, "hide": 0, "description": "Site (building) slug",
         "query": f'SHOW TAG VALUES FROM "{INV}" WITH KEY = "site"'},
        {"type": "query", "name": "device", "label": "Inverter", "datasource": ds, "refresh": 1, "sort": 1,
         "multi": False, "hide": 0, "description": "Inverter of the selected site",
         "query": f'SHOW TAG VALUES FROM "{INV}" WITH KEY = "device" WHERE {SITE_RE}'},
    ]
    return dashboard("terril-building", "terril — Building", "One building in detail: AC/DC power, MPPT strings, "
                     "voltages, temperatures, events, daily energy and the health of its agent.",
                     panels, "now-7d", variables=variables)


def energy_positive() -> dict[str, Any]:
    L = Layout()
    ds = DS
    month = [{"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY-MM", "useTimezone": True}},
             {"id": "groupBy", "options": {"fields": {
                 "Time": {"aggregations": [], "operation": "groupby"},
                 "production": {"aggregations": ["sum"], "operation": "aggregate"},
                 "consumption": {"aggregations": ["sum"], "operation": "aggregate"},
                 "reference": {"aggregations": ["sum"], "operation": "aggregate"}}}}]
    panels = [
        panel(L, "stat", "Production this month", "Month-to-date production of all the town's roofs.", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE {TERRITORY} AND $timeFilter', ds)],
              ds, time_from="now/M"),
        panel(L, "stat", "Consumption this month (metered buildings)", "Month-to-date consumption of the metered "
              "municipal buildings: production + import - export + battery discharge - battery charge.", "watth",
              [target("A", f'SELECT sum("consumption_wh") FROM "{DAILY}" WHERE {TERRITORY} AND $timeFilter', ds)],
              ds, time_from="now/M"),
        panel(L, "stat", "Energy-positive share this year", "Year-to-date production divided by the territory's "
              "reference consumption (annual consumption of the whole town, spread over the days). 100 % = "
              "energy-positive. " + SHARE_NOTE + "On 1 January, with no complete day yet, it shows 0 %. "
              + SHARE_SETUP, "percentunit",
              [target("A", Q_SHARE_COMPLETE_DAYS, ds)], ds, time_from="now/y", decimals=2,
              steps=((0, "red"), (0.5, "yellow"), (1, "green")), no_value=NO_REFERENCE),
        panel(L, "stat", "Share over the last 12 months", "Production of the last 365 days divided by the reference "
              "consumption of the same days: the trajectory towards 100 %, free of the seasons. " + SHARE_NOTE
              + SHARE_SETUP, "percentunit",
              [target("A", Q_SHARE_COMPLETE_DAYS, ds)], ds, time_from="365d", decimals=2,
              steps=((0, "red"), (0.5, "yellow"), (1, "green")), no_value=NO_REFERENCE),
        panel(L, "barchart", "Production and consumption per month", "Daily rollups of the territory grouped by "
              "calendar month (Europe/Paris) in Grafana: InfluxQL cannot group by calendar month. The reference "
              f"bars appear once {REFERENCE_SETTING} is set in the ingest config.", "watth",
              [target("A", f'SELECT "production_wh" AS "production", "consumption_wh" AS "consumption", '
                           f'"reference_consumption_wh" AS "reference" FROM "{DAILY}" WHERE {TERRITORY} AND '
                           f'$timeFilter', ds, fmt="table")], ds, w=24, h=9, transformations=month),
        panel(L, "timeseries", "Cumulative energy-positive share", "Cumulative production divided by cumulative "
              "reference consumption since the start of the range, one point per day: where the town stands on "
              "its way to 100 %. Today's point counts today's production so far against the whole day's "
              "reference, so it sits a little low until midnight. " + SHARE_SETUP, "percentunit",
              [target("A", f'SELECT cumulative_sum(sum("production_wh")) / cumulative_sum(sum('
                           f'"reference_consumption_wh")) FROM "{DAILY}" WHERE {TERRITORY} AND {WITH_REFERENCE} AND '
                           f"$timeFilter GROUP BY time(1d) fill(none) tz('{TZ}')", ds)], ds, w=12, h=8,
              no_value=NO_REFERENCE),
        panel(L, "timeseries", "Daily production and consumption", "Per local day: territory production, "
              "metered consumption, imports and exports.", "watth",
              [target("A", f'SELECT "production_wh" AS "production", "consumption_wh" AS "consumption", '
                           f'"import_wh" AS "import", "export_wh" AS "export" FROM "{DAILY}" WHERE {TERRITORY} AND '
                           f'$timeFilter', ds)], ds, w=12, h=8),
        panel(L, "barchart", "Balance per year: consumption and renewable production", "Per year, for the whole "
              "territory: electricity consumption and local renewable production (solar, wind, hydro, bioenergy) "
              "from the grid operators' open data, and the production of the roofs terril monitors. "
              + TRAJECTORY_SETUP, "watth", [target("A", Q_BALANCE_PER_YEAR, ds, fmt="table")], ds, w=12, h=9,
              time_from="30y", transformations=YEARLY),
        panel(L, "barchart", "Trajectory: renewable share and target path", "Renewable share per year (local "
              "renewable production / electricity consumption) next to the target path: a straight line from "
              "the baseline year's share to the target share in the target year, every year up to the target "
              "(the whole path, whatever the time range). " + TRAJECTORY_SETUP, "percentunit",
              [target("A", Q_TRAJECTORY, ds, fmt="table")], ds, w=12, h=9, transformations=YEARLY),
        panel(L, "stat", "Still missing: energy per year", "Renewable production still missing to reach the "
              "target share, in the latest year with a known consumption: target share x consumption - renewable "
              "production. " + TRAJECTORY_SETUP, "watth",
              [target("A", f'SELECT last("missing_wh") FROM "{BALANCE}" WHERE {BALANCE_TERRITORY}', ds)], ds,
              w=8, no_value="no consumption imported"),
        panel(L, "stat", "Still missing: rooftop peak power", "The missing energy as rooftop solar peak power, "
              "at the specific yield the monitored roofs measured over the last 365 days (kWh per kWp per year).",
              "watt", [target("A", f'SELECT last("missing_peak_power_w") FROM "{BALANCE}" WHERE '
                                   f'{BALANCE_TERRITORY}', ds)], ds, w=8, no_value="no consumption imported"),
        panel(L, "stat", "Still missing: roofs", "The missing peak power in roofs the size of the fleet's median "
              "roof (the inventory's peak powers).", "none",
              [target("A", f'SELECT last("missing_roofs") FROM "{BALANCE}" WHERE {BALANCE_TERRITORY}', ds)], ds,
              w=8, decimals=0, no_value="no consumption imported"),
    ]
    return dashboard("terril-energy-positive", "terril — Energy-positive trajectory", "For elected officials: "
                     "production against the territory's consumption, per month and year, and the share covered.",
                     panels, "now/y", refresh="1h")


def public() -> dict[str, Any]:
    L = Layout()
    ds = DS_PUBLIC
    kg_per_wh = CO2_KG_PER_KWH / 1000
    site_last = f'(SELECT last("panels") AS "panels", last("peak_power_w") AS "peak" FROM "{INFO}" GROUP BY "site")'
    citizen = (f'(SELECT last("panels") AS "panels", last("peak_power_w") AS "peak" FROM "{INFO}" '
               f'WHERE "owner" = \'citizen\' GROUP BY "site")')
    panels = [
        panel(L, "stat", "Produit aujourd'hui", "Énergie solaire produite par tous les toits de la commune "
              "depuis minuit, mise à jour toutes les 5 minutes.", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE {TERRITORY} AND $timeFilter', ds)],
              ds, time_from="now/d"),
        panel(L, "stat", "Produit cette année", "Énergie solaire produite depuis le 1er janvier.", "watth",
              [target("A", f'SELECT sum("production_wh") FROM "{DAILY}" WHERE {TERRITORY} AND $timeFilter', ds)],
              ds, time_from="now/y"),
        panel(L, "stat", "Part de la consommation couverte", "Production solaire de l'année divisée par la "
              "consommation d'électricité de la commune sur les mêmes jours, jusqu'à hier (aujourd'hui n'est pas "
              "fini). Pour les administrateurs : " + SHARE_SETUP, "percentunit",
              [target("A", Q_SHARE_COMPLETE_DAYS, ds)], ds, time_from="now/y", decimals=2,
              no_value="pas encore disponible"),
        panel(L, "stat", "CO₂ évité cette année", f"Production de l'année multipliée par {CO2_KG_PER_KWH} kg CO₂e "
              "par kWh (ADEME, mix électrique moyen français) : émissions de l'électricité du réseau que les kWh "
              "solaires remplacent. Le réseau français est déjà peu carboné : le gain est modeste.",
              "masskg", [target("A", f'SELECT sum("production_wh") * {kg_per_wh:.9f} FROM "{DAILY}" WHERE '
                                     f'{TERRITORY} AND $timeFilter', ds)], ds, time_from="now/y", decimals=0),
        panel(L, "stat", "Toits solaires", "Nombre de toits équipés de panneaux suivis par la commune.", "none",
              [target("A", f'SELECT count("panels") FROM {site_last}', ds)], ds),
        panel(L, "stat", "Panneaux solaires", "Nombre de panneaux sur tous les toits.", "none",
              [target("A", f'SELECT sum("panels") FROM {site_last}', ds)], ds),
        panel(L, "stat", "Puissance installée", "Puissance crête de tous les toits.", "watt",
              [target("A", f'SELECT sum("peak") FROM {site_last}', ds)], ds),
        panel(L, "stat", "Toits des habitants", "Toits appartenant aux habitants (site_info owner = citizen) : "
              "toits et panneaux.", "none",
              [target("A", f'SELECT count("panels") AS "sites", sum("panels") AS "panels" FROM {citizen}', ds)], ds),
        panel(L, "stat", "Toits des habitants : puissance installée", "Puissance crête des toits des habitants.", "watt",
              [target("A", f'SELECT sum("peak") FROM {citizen}', ds)], ds),
        panel(L, "barchart", "Production par jour", "Énergie solaire produite chaque jour des 30 derniers jours.", "watth",
              [target("A", f'SELECT "production_wh" AS "production" FROM "{DAILY}" WHERE {TERRITORY} AND '
                           f'$timeFilter', ds, fmt="table")], ds, w=18, h=8, time_from="30d"),
    ]
    return dashboard("terril-public", "Le soleil de la ville — production solaire", "Panneau public : ce que "
                     "produisent les toits de la commune. Ne lit que les agrégats quotidiens et la liste des toits.",
                     panels, "now/y", editable=False, refresh="15m", tags=("terril", "public"))


PERF, STRD, TECH = PERFORMANCE_DAILY.name, STRING_DAILY.name, TECHNOLOGY_DAILY.name
INVERTERS_ONLY = f"\"device\" != '{SITE_DEVICE}'"
SITES_ONLY = f"\"device\" = '{SITE_DEVICE}'"
PERF_NOTE = ("Daily rows of the yield analytics (performance_daily, written after each local day ends): "
             "clear-sky expectation from the inventory's arrays (pvlib), performance index = clear-sky ratio / "
             "median ratio of the other inverters (or sites) of the same commune. ")


def _ranking(title: str, time_from: str, where: str, layout: Layout) -> dict[str, Any]:
    return panel(layout, "table", title, PERF_NOTE + "Specific yield (kWh/kWp) summed over the days of the range, "
                 "mean performance index, and the last underperformance flag (1 = low on 3 of the 5 last sunny "
                 "days). Sort by a column to rank.", "none",
                 [target("A", f'SELECT sum("yield_kwh_per_kwp") AS "yield_kwh_per_kwp", mean("performance_index") '
                              f'AS "performance_index", last("underperforming") AS "underperforming" FROM "{PERF}" '
                              f'WHERE {where} AND $timeFilter GROUP BY "site", "device"', DS, fmt="table")],
                 DS, w=12, h=9, time_from=time_from, decimals=2)


def performance() -> dict[str, Any]:
    L = Layout()
    ds = DS
    w_sd = f"{SITE_RE} AND {DEVICE_RE} AND $timeFilter"
    month = [{"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "YYYY-MM", "useTimezone": True}},
             {"id": "groupBy", "options": {"fields": {
                 "Time": {"aggregations": [], "operation": "groupby"},
                 "technology": {"aggregations": [], "operation": "groupby"},
                 "yield_kwh_per_kwp": {"aggregations": ["sum"], "operation": "aggregate"}}}}]
    panels = [
        _ranking("Inverters this month: yield and performance index", "now/M", INVERTERS_ONLY, L),
        _ranking("Inverters this year: yield and performance index", "now/y", INVERTERS_ONLY, L),
        _ranking("Sites this month: yield and performance index", "now/M", SITES_ONLY, L),
        _ranking("Sites this year: yield and performance index", "now/y", SITES_ONLY, L),
        panel(L, "barchart", "Specific yield by technology, per month", "Energy of all arrays of one module "
              "technology (the inventory's free text) divided by their peak power, summed per calendar month "
              "(Europe/Paris) in Grafana: the town's side-by-side technology comparison.", "suffix: kWh/kWp",
              [target("A", f'SELECT "yield_kwh_per_kwp" FROM "{TECH}" WHERE $timeFilter GROUP BY "technology"',
                      ds, fmt="table")], ds, w=24, h=8, transformations=month, decimals=1),
        panel(L, "barchart", "Expected clear-sky and actual energy per day", PERF_NOTE + "The selected inverter "
              "(or _site for the whole building): energy produced against what a clear sky would have given.",
              "watth",
              [target("A", f'SELECT "energy_wh" AS "energy_wh", "expected_clear_sky_wh" AS "expected_clear_sky_wh" '
                           f'FROM "{PERF}" WHERE {w_sd}', ds, fmt="table")], ds, w=12, h=8),
        panel(L, "timeseries", "Performance index per day", PERF_NOTE + "1.0 = as good as its peers; below the "
              "0.85 line on 3 of the 5 last sunny days it is flagged. The peers' median clear-sky ratio says how "
              "sunny the day was (days under 0.4 do not count).", "none",
              [target("A", f'SELECT "performance_index" AS "performance_index", "peers_clear_sky_ratio" AS '
                           f'"peers_clear_sky_ratio" FROM "{PERF}" WHERE {w_sd}', ds)], ds, w=12, h=8,
              decimals=2, steps=((0, "red"), (0.85, "green"))),
        panel(L, "table", "MPPT strings against their siblings", "Daily energy of each string of the selected "
              "inverter against the median of its other strings (string_daily). failing = 1: far below them on "
              "the inverter's 2 last sunny days (dead string, fuse, connector).", "none",
              [target("A", f'SELECT "energy_wh", "siblings_median_wh", "sibling_ratio", "failing" FROM "{STRD}" '
                           f'WHERE {w_sd} GROUP BY "string"', ds, fmt="table")], ds, w=24, h=8, decimals=2),
    ]
    variables = [
        {"type": "query", "name": "site", "label": "Site", "datasource": ds, "refresh": 1, "sort": 1,
         "multi": False, "hide": 0, "description": "Site (building) slug",
         "query": f'SHOW TAG VALUES FROM "{PERF}" WITH KEY = "site"'},
        {"type": "query", "name": "device", "label": "Inverter", "datasource": ds, "refresh": 1, "sort": 1,
         "multi": False, "hide": 0, "description": f"Inverter of the selected site, or {SITE_DEVICE} for the site",
         "query": f'SHOW TAG VALUES FROM "{PERF}" WITH KEY = "device" WHERE {SITE_RE}'},
    ]
    return dashboard("terril-performance", "terril — Yield and performance", "Is every roof producing what it "
                     "should? Specific yield, clear-sky expectation, index against the neighbours, strings, "
                     "technologies.", panels, "now-30d", variables=variables, refresh="1h")


DASHBOARDS = {"fleet": fleet, "building": building, "energy-positive": energy_positive, "public": public,
              "performance": performance}

# --------------------------------------------------------------------------- alert rules


def _q(ref: str, query: str, seconds: int) -> dict[str, Any]:
    return {"refId": ref, "relativeTimeRange": {"from": seconds, "to": 0}, "datasourceUid": DS_UID,
            "model": {"refId": ref, "rawQuery": True, "query": query, "resultFormat": "time_series",
                      "intervalMs": 60000, "maxDataPoints": 43200}}


def _reduce(ref: str, of: str, reducer: str = "last") -> dict[str, Any]:
    return {"refId": ref, "datasourceUid": "__expr__",
            "model": {"refId": ref, "type": "reduce", "expression": of, "reducer": reducer,
                      "settings": {"mode": "dropNN"}}}


def _math(ref: str, expression: str) -> dict[str, Any]:
    return {"refId": ref, "datasourceUid": "__expr__", "model": {"refId": ref, "type": "math", "expression": expression}}


def _threshold(ref: str, of: str, kind: str, value: float) -> dict[str, Any]:
    return {"refId": ref, "datasourceUid": "__expr__",
            "model": {"refId": ref, "type": "threshold", "expression": of,
                      "conditions": [{"evaluator": {"type": kind, "params": [value]}}]}}


Q_FLEET_PRODUCING = (
    f'SELECT sum("p") FROM (SELECT mean("ac_power_w") AS "p" FROM "{INV}" WHERE $timeFilter '
    f'GROUP BY "site", "device")'
)
"""Whole-fleet mean power: the sum over every (site, device) of its mean power (see ``Q_FLEET_POWER_NOW``)."""


def _rule(uid: str, title: str, condition: str, data: list[dict[str, Any]], summary: str, description: str,
          severity: str, for_: str = "10m") -> dict[str, Any]:
    return {"uid": uid, "title": title, "condition": condition, "data": data, "noDataState": "OK",
            "execErrState": "Error", "for": for_, "isPaused": False,
            "labels": {"severity": severity, "team": "technical-services", "daylight": "depends"
                       if uid in DAYLIGHT_RULES else "always"},
            "annotations": {"summary": summary, "description": description}}


DAYLIGHT_RULES = {"terril-comm-loss", "terril-no-production", "terril-dead-string"}

DAILY_ROWS_LOOKBACK_S = 3 * 86400
"""Rules on daily rows look back 3 days: yesterday's row is stamped at yesterday's local midnight
(up to 48 h old), and a missed night of the rollup must not resolve the alert."""

AGENT_OFFLINE_LOOKBACK_S = 30 * 86400
"""How far back the agent-offline rule looks for the agent's last ``up`` row. ``up`` is written only
when the agent's status changes (its last will, then ``online`` again), so the rule must see the
last change however old it is: a Pi that died on Friday evening must still be an alert on Monday.
An agent silent for longer than this leaves the range and its alert resolves (as no data); the
Fleet dashboard's Agents table still lists it."""


def alert_rules() -> dict[str, Any]:
    rules = [
        _rule("terril-inverter-fault", "Inverter in fault", "E", [
            _q("A", f'SELECT last("state") FROM "{INV}" WHERE $timeFilter GROUP BY "site", "device"', 900),
            _q("B", f'SELECT last("events") FROM "{INV}" WHERE $timeFilter GROUP BY "site", "device"', 900),
            _reduce("C", "A"), _reduce("D", "B"),
            _math("E", f"$C == {STATE_FAULT} || $D > 0"),
        ], "{{ $labels.device }} ({{ $labels.site }}) is in fault",
            "The inverter reports state FAULT (SunSpec St 7) or a non-zero Evt1 event bit field.", "critical",
            for_="5m"),
        _rule("terril-comm-loss", "Inverter not reporting", "E", [
            _q("A", f'SELECT moving_average(count("ac_power_w"), 6) FROM "{INV}" WHERE $timeFilter '
                    f'GROUP BY time(5m), "site", "device" fill(0)', 3 * 86400),
            _q("B", Q_FLEET_PRODUCING, 1800),
            _reduce("C", "A"), _reduce("D", "B"),
            _math("E", f"$C == 0 && $D > {FLEET_PRODUCING_W:g}"),
        ], "No reading from {{ $labels.device }} ({{ $labels.site }}) for 30 minutes",
            "No reading in the last six 5-minute buckets while the rest of the fleet produces (daylight). "
            "At night inverters sleep and may not answer: the rule stays silent then. A device silent for more "
            "than 3 days leaves the query range and the alert resolves as missing.", "warning"),
        _rule("terril-no-production", "Inverter not producing in daylight", "E", [
            _q("A", f'SELECT max("ac_power_w") FROM "{INV}" WHERE $timeFilter GROUP BY "site", "device"', 1800),
            _q("B", Q_FLEET_PRODUCING, 1800),
            _reduce("C", "A"), _reduce("D", "B"),
            _math("E", f"$C < 10 && $D > {FLEET_PRODUCING_W:g}"),
        ], "{{ $labels.device }} ({{ $labels.site }}) produces nothing while the fleet produces",
            "Maximum AC power under 10 W over 30 minutes while the whole fleet produces more than "
            f"{FLEET_PRODUCING_W:g} W.", "warning"),
        _rule("terril-dead-string", "MPPT string dead", "E", [
            _q("A", f'SELECT max("dc_power_w") FROM "{MPP}" WHERE $timeFilter GROUP BY "site", "device", "string"',
               1800),
            _q("B", f'SELECT max("dc_power_w") FROM "{MPP}" WHERE $timeFilter GROUP BY "site", "device"', 1800),
            _reduce("C", "A"), _reduce("D", "B"),
            _math("E", "$C < 5 && $D > 500"),
        ], "String {{ $labels.string }} of {{ $labels.device }} ({{ $labels.site }}) produces nothing",
            "The string stays under 5 W for 30 minutes while another string of the same inverter exceeds 500 W: "
            "blown fuse, loose connector or cut cable.", "warning"),
        _rule("terril-agent-offline", "Agent offline", "C", [
            _q("A", f'SELECT last("up") FROM "{AGT}" WHERE $timeFilter GROUP BY "site"', AGENT_OFFLINE_LOOKBACK_S),
            _reduce("B", "A"), _threshold("C", "B", "lt", 1),
        ], "The terril agent of {{ $labels.site }} is offline",
            "The broker published the agent's last will (agent.up = 0): power cut, SD card, or uplink down. "
            "A dead agent writes nothing more, so its last row stays up = 0 and the alert keeps firing for "
            f"{AGENT_OFFLINE_LOOKBACK_S // 86400} days, nights and weekends included.", "critical", for_="5m"),
        _rule("terril-spool-growing", "Agent spool growing", "C", [
            _q("A", f'SELECT last("spool_depth") - first("spool_depth") FROM "{AGT}" WHERE $timeFilter '
                    f'GROUP BY "site"', 1800),
            _reduce("B", "A"), _threshold("C", "B", "gt", 100),
            _q("D", f'SELECT last("spool_unacked") FROM "{AGT}" WHERE $timeFilter GROUP BY "site"', 1800),
            _reduce("E", "D"),
        ], "Readings pile up in the spool of {{ $labels.site }}",
            "More than 100 readings were added to the spool in 30 minutes. {{ $values.E.Value }} of them were accepted "
            "by the broker but not yet acknowledged as stored by the ingest: if that is most of them, the central "
            "side (ingest, InfluxDB) is not storing; otherwise the uplink (4G) is failing. Nothing is lost until "
            "the spool is full.", "warning"),
        _rule("terril-underperforming", "Inverter underperforming", "E", [
            _q("A", f'SELECT last("underperforming") FROM "{PERF}" WHERE {INVERTERS_ONLY} AND $timeFilter '
                    f'GROUP BY "site", "device"', DAILY_ROWS_LOOKBACK_S),
            _q("B", f'SELECT last("performance_index") FROM "{PERF}" WHERE {INVERTERS_ONLY} AND $timeFilter '
                    f'GROUP BY "site", "device"', DAILY_ROWS_LOOKBACK_S),
            _q("C", f'SELECT last("peers_clear_sky_ratio") FROM "{PERF}" WHERE {INVERTERS_ONLY} AND $timeFilter '
                    f'GROUP BY "site", "device"', DAILY_ROWS_LOOKBACK_S),
            _q("D", f'SELECT last("underperforming_since") FROM "{PERF}" WHERE {INVERTERS_ONLY} AND $timeFilter '
                    f'GROUP BY "site", "device"', DAILY_ROWS_LOOKBACK_S),
            _reduce("RA", "A"), _reduce("RB", "B"), _reduce("RC", "C"), _reduce("RD", "D"),
            _math("E", "$RA == 1"),
        ], "{{ $labels.device }} ({{ $labels.site }}) produces less than its neighbours",
            "Performance index {{ humanize $values.RB.Value }} (its clear-sky ratio / its peers' median "
            "{{ humanize $values.RC.Value }}) below 0.85 on 3 of the 5 last sunny days, since "
            "{{ $values.RD.Value }} (YYYYMMDD). Soiling, shade, a dead string, a failing connector or module: "
            "look at its strings and its roof. Evaluates the daily rows of the yield analytics.", "warning",
            for_="0s"),
        _rule("terril-string-failing", "MPPT string far below its siblings", "E", [
            _q("A", f'SELECT last("failing") FROM "{STRD}" WHERE $timeFilter GROUP BY "site", "device", "string"',
               DAILY_ROWS_LOOKBACK_S),
            _q("B", f'SELECT last("sibling_ratio") FROM "{STRD}" WHERE $timeFilter GROUP BY "site", "device", '
                    f'"string"', DAILY_ROWS_LOOKBACK_S),
            _reduce("RA", "A"), _reduce("RB", "B"),
            _math("E", "$RA == 1"),
        ], "String {{ $labels.string }} of {{ $labels.device }} ({{ $labels.site }}) produces far less than "
           "its siblings",
            "Its daily energy was under half the median of the inverter's other strings on its 2 last sunny "
            "days (last ratio {{ humanize $values.RB.Value }}): blown fuse, loose connector, cut cable.", "warning",
            for_="0s"),
    ]
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": "terril", "folder": "terril", "interval": "5m",
                                         "rules": rules}]}


# --------------------------------------------------------------------------- output


def render_all() -> dict[Path, str]:
    out = {DASHBOARD_DIR / f"{name}.json": json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"
           for name, fn in DASHBOARDS.items()}
    header = "# Generated by grafana/build.py: edit the script, then run `python -m grafana.build`.\n"
    out[RULES_FILE] = header + yaml.safe_dump(alert_rules(), sort_keys=False, allow_unicode=True, width=120)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs from the build")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render_all().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT.parent)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
