"""The one source of truth for topics, measurements, fields, units and payloads.

Everything that crosses a process boundary — MQTT topics and JSON payloads
published by the agent, points written by the ingest, queries in the Grafana
dashboards — is named here and nowhere else. DESIGN.md is the human-readable
contract; this module is its executable form.

Rules that follow from InfluxDB (see DESIGN.md, "InfluxDB contract"):
* a field keeps one type forever, so each field declares its type here;
* units are SI and spelled in the field name (``_w``, ``_wh``, ``_v`` …);
* a missing value is omitted, never written as 0.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

SCHEMA_VERSION = 1
"""Value of ``"v"`` in every JSON payload. Bumped only on an incompatible change."""

TOPIC_ROOT = "terril"
"""Default MQTT topic root (configurable per deployment)."""
TOPIC_ROOT_PATTERN = r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*"
"""A topic root: one or more levels of letters, digits, ``_`` and ``-`` (no wildcard, no empty level).

The one rule for both sides: the agent's ``broker.topic_root`` and the
ingest's ``topic_root`` accept exactly these, and :func:`parse_topic` parses
every topic :class:`Topics` builds under any of them."""
TOPIC_ROOT_RE = re.compile(rf"^{TOPIC_ROOT_PATTERN}$")

DEADLETTER_SUBTOPIC = "_deadletter"
TERRITORY_SITE = "_territory"
"""``site`` tag value of the town-wide totals in ``energy_daily``."""

SLUG_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
SLUG_RE = re.compile(rf"^{SLUG_PATTERN}$")

DeviceKind = Literal["inverter", "meter"]
ReadingKind = Literal["inverter", "meter", "mppt", "battery"]
DEVICE_KINDS: tuple[str, ...] = ("inverter", "meter")
READING_KINDS: tuple[str, ...] = ("inverter", "meter", "mppt", "battery")

FieldType = Literal["float", "int", "str"]


def is_slug(value: object) -> TypeGuard[str]:
    """True when *value* is a site or device slug usable in topics and tags."""
    return isinstance(value, str) and SLUG_RE.fullmatch(value) is not None


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    """MQTT topic names of one site (DESIGN.md, "MQTT contract")."""

    site: str
    root: str = TOPIC_ROOT

    @property
    def readings(self) -> str:
        return f"{self.root}/{self.site}/readings"

    @property
    def events(self) -> str:
        return f"{self.root}/{self.site}/events"

    @property
    def status(self) -> str:
        return f"{self.root}/{self.site}/status"

    @property
    def health(self) -> str:
        return f"{self.root}/{self.site}/health"

    @property
    def info(self) -> str:
        return f"{self.root}/{self.site}/info"

    @property
    def ack(self) -> str:
        """Written by the ingest only: the ids of this site's messages now stored (see ``ack_payload``)."""
        return f"{self.root}/{self.site}/{ACK_SUBTOPIC}"


TOPIC_KINDS: tuple[str, ...] = ("readings", "events", "status", "health", "info")
"""What the agents publish (and the ingest subscribes to). ``ack`` flows the other way and is not one of them."""

ACK_SUBTOPIC = "ack"


def deadletter_topic(root: str = TOPIC_ROOT) -> str:
    return f"{root}/{DEADLETTER_SUBTOPIC}"


INGEST_SUBTOPIC = "_ingest"


def ingest_health_topic(client_id: str, root: str = TOPIC_ROOT) -> str:
    """``<root>/_ingest/<client_id>/health``: an ingest instance's own counters (retained).

    Four levels, so the ingest's ``<root>/+/health`` subscription never reads it back.
    """
    safe = "".join("_" if c in "/+#" else c for c in client_id)
    return f"{root}/{INGEST_SUBTOPIC}/{safe}/health"


def ingest_status_topic(client_id: str, root: str = TOPIC_ROOT) -> str:
    """``<root>/_ingest/<client_id>/status``: an ingest instance's presence, retained, with a last will.

    Every site may read ``<root>/_ingest/+/status`` (``ingest_status_filter``); only the ingest writes.
    """
    safe = "".join("_" if c in "/+#" else c for c in client_id)
    return f"{root}/{INGEST_SUBTOPIC}/{safe}/status"


def ingest_status_filter(root: str = TOPIC_ROOT) -> str:
    """The subscription that sees every ingest instance's status."""
    return f"{root}/{INGEST_SUBTOPIC}/+/status"


def is_topic_root(value: object) -> bool:
    """True when *value* is a topic root both the agent and the ingest accept (``TOPIC_ROOT_PATTERN``)."""
    return isinstance(value, str) and TOPIC_ROOT_RE.fullmatch(value) is not None


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> tuple[str, str] | None:
    """Split ``<root>/<site>/<kind>`` into ``(site, kind)``; None if it is not one of ours.

    *root* may have several levels (``ville/terril``): what follows it must be exactly two.
    """
    if not topic.startswith(root) or topic[len(root):len(root) + 1] != "/":
        return None
    parts = topic[len(root) + 1:].split("/")
    if len(parts) != 2 or parts[1] not in TOPIC_KINDS:
        return None
    return parts[0], parts[1]


STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"

# --------------------------------------------------------------------------- end-to-end acknowledgement

MESSAGE_ID_KEY = "id"
"""Optional key of ``readings`` and ``events`` payloads: the message's id, echoed in ``ack`` once stored."""
MESSAGE_ID_RE = re.compile(r"^[0-9a-z]{1,32}:[0-9,-]{1,4000}$")
"""``<agent instance>:<spool row ranges>`` (e.g. ``9f3a…:120-619,624``); its meaning is the agent's
(``agent.edge.acks``), the ingest only checks the shape and echoes it."""
ACK_PROTOCOL = 1
"""Value of ``acks`` in an ingest status: this ingest acknowledges stored messages on ``<site>/ack``."""


def ack_payload(site: str, ids: list[str]) -> dict[str, Any]:
    """The ``<root>/<site>/ack`` payload: message ids of that site now stored in InfluxDB (or dead-lettered)."""
    return {"v": SCHEMA_VERSION, "site": site, "ids": ids}


def ingest_status_payload(
    client_id: str, online: bool, session: Literal["new", "resumed"] | None = None
) -> dict[str, Any]:
    """The retained ``<root>/_ingest/<client_id>/status`` payload (the last will is the ``offline`` one).

    ``session`` is ``new`` when the broker had no session for this instance at its (re)connection:
    whatever was queued for it before is gone, and agents resend what it has not acknowledged at once.
    """
    out: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "ingest": client_id,
        "status": STATUS_ONLINE if online else STATUS_OFFLINE,
        "acks": ACK_PROTOCOL,
    }
    if session is not None:
        out["session"] = session
    return out

# --------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Bounds:
    """The physically possible range of a field, in the field's unit, both ends included.

    A value outside it is not a measurement but a broken device or a forged message:
    the ingest does not store it (it dead-letters the message with the reason), so
    one site can never push the town's totals to 1e308 or infinity.
    """

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high  # False for NaN


MAX_POWER_W = 1e8
"""Absolute cap on any power (W, VA, var) of one device or site: 100 MW, far above any roof or meter of a town."""
MAX_LIFETIME_WH = 1e16
"""Absolute cap on a lifetime energy counter: 100 MW for more than 10 000 years."""
MAX_DAY_WH = MAX_POWER_W * 25
"""What one site can produce or consume in a local day (25 h on the day the clocks go back)."""
_INT_COUNT = Bounds(0, 2**63 - 1)

UNIT_BOUNDS: dict[str, Bounds] = {
    "W": Bounds(-MAX_POWER_W, MAX_POWER_W),
    "VA": Bounds(-MAX_POWER_W, MAX_POWER_W),
    "var": Bounds(-MAX_POWER_W, MAX_POWER_W),
    "Wh": Bounds(0, MAX_LIFETIME_WH),
    "V": Bounds(-1e3, 1e6),
    "A": Bounds(-1e5, 1e5),
    "Hz": Bounds(0, 1e3),
    "°C": Bounds(-273.15, 1e3),
    "s": Bounds(0, 1e11),
    "B": Bounds(0, 2**53),
    "%": Bounds(0, 100),
}
"""Default bounds per unit; a field whose range is narrower (power factor, latitude …) names its own."""


@dataclass(frozen=True)
class FieldSpec:
    """One InfluxDB field: its name (unit suffix included), its fixed type, what it means and its possible range."""

    name: str
    type: FieldType
    unit: str
    description: str
    bounds: Bounds | None = None
    """None for strings only: every number has a range (``UNIT_BOUNDS`` unless the field names its own)."""


@dataclass(frozen=True)
class MeasurementSpec:
    name: str
    tags: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    description: str

    def field(self, name: str) -> FieldSpec:
        return self.fields_by_name[name]

    @functools.cached_property
    def fields_by_name(self) -> dict[str, FieldSpec]:
        """Built once per measurement: the ingest looks fields up for every value it stores."""
        return {f.name: f for f in self.fields}


def _f(name: str, unit: str, description: str, bounds: Bounds | None = None) -> FieldSpec:
    if bounds is None:
        if unit not in UNIT_BOUNDS:
            raise ValueError(f"field {name}: no default bounds for unit {unit!r}; give the field its own")
        bounds = UNIT_BOUNDS[unit]
    return FieldSpec(name, "float", unit, description, bounds)


def _i(name: str, unit: str, description: str, bounds: Bounds = _INT_COUNT) -> FieldSpec:
    """Integers are counts, enumerations and bit fields: never negative unless the field says so."""
    return FieldSpec(name, "int", unit, description, UNIT_BOUNDS.get(unit, bounds) if unit else bounds)


def _s(name: str, description: str) -> FieldSpec:
    return FieldSpec(name, "str", "", description)


_POWER_FACTOR = Bounds(-1, 1)
_AC_GRID_FIELDS = (
    _f("ac_current_a", "A", "AC current, sum of phases"),
    _f("ac_voltage_an_v", "V", "phase A to neutral voltage"),
    _f("ac_voltage_bn_v", "V", "phase B to neutral voltage"),
    _f("ac_voltage_cn_v", "V", "phase C to neutral voltage"),
    _f("ac_frequency_hz", "Hz", "grid frequency"),
)

INVERTER = MeasurementSpec(
    "inverter",
    ("site", "device"),
    (
        _f("ac_power_w", "W", "AC active power produced"),
        _f("ac_energy_wh", "Wh", "lifetime AC energy produced (monotonic counter)"),
        _f("ac_apparent_power_va", "VA", "AC apparent power"),
        _f("ac_reactive_power_var", "var", "AC reactive power"),
        _f("ac_power_factor", "", "power factor, ratio from -1 to 1", _POWER_FACTOR),
        *_AC_GRID_FIELDS,
        _f("dc_power_w", "W", "DC input power"),
        _f("dc_voltage_v", "V", "DC input voltage"),
        _f("dc_current_a", "A", "DC input current"),
        _f("temp_cabinet_c", "°C", "cabinet temperature"),
        _f("temp_heatsink_c", "°C", "heat sink temperature"),
        _i("state", "", "operating state (SunSpec St enumeration)", Bounds(0, 65535)),
        _i("events", "", "event bit field (SunSpec Evt1)"),
    ),
    "one inverter, one row per poll",
)

MPPT = MeasurementSpec(
    "mppt",
    ("site", "device", "string"),
    (
        _f("dc_power_w", "W", "DC power of the string"),
        _f("dc_voltage_v", "V", "DC voltage of the string"),
        _f("dc_current_a", "A", "DC current of the string"),
        _f("dc_energy_wh", "Wh", "lifetime DC energy of the string"),
    ),
    "one MPPT input (string) of an inverter (SunSpec model 160)",
)

METER = MeasurementSpec(
    "meter",
    ("site", "device"),
    (
        _f("power_w", "W", "active power at the meter, positive when importing from the grid"),
        _f("energy_import_wh", "Wh", "lifetime energy imported from the grid"),
        _f("energy_export_wh", "Wh", "lifetime energy exported to the grid"),
        _f("ac_power_factor", "", "power factor, ratio from -1 to 1", _POWER_FACTOR),
        *_AC_GRID_FIELDS,
        _i("events", "", "meter event bit field (SunSpec Evt)"),
    ),
    "one energy meter, one row per poll",
)

BATTERY = MeasurementSpec(
    "battery",
    ("site", "device"),
    (
        _f("power_w", "W", "battery power, positive when discharging (as SunSpec model 802), negative when charging"),
        _f("state_of_charge", "", "state of charge, ratio from 0 to 1", Bounds(0, 1)),
        _f("energy_charge_wh", "Wh", "lifetime energy charged into the battery (monotonic counter)"),
        _f("energy_discharge_wh", "Wh", "lifetime energy discharged from the battery (monotonic counter)"),
        _f("voltage_v", "V", "battery voltage"),
        _f("current_a", "A", "battery current, positive when discharging"),
        _f("temp_c", "°C", "battery temperature"),
    ),
    "the battery of a hybrid inverter (tags: the inverter's site and device), one row per poll",
)

EVENT = MeasurementSpec(
    "event",
    ("site", "device", "code"),
    (
        _i("active", "", "1 when the event starts, 0 when it ends", Bounds(0, 1)),
        _s("text", "human-readable description of the event"),
    ),
    "fault transitions",
)

AGENT = MeasurementSpec(
    "agent",
    ("site",),
    (
        _i("up", "", "1 while the agent is online, 0 after its last will", Bounds(0, 1)),
        _f("uptime_s", "s", "seconds since the agent started"),
        _i("spool_depth", "", "readings waiting in the spool"),
        _f("spool_oldest_s", "s", "age of the oldest spooled reading"),
        _i("spool_dropped", "", "readings dropped because the spool was full (since start of spool)"),
        _i("poll_ok", "", "successful polls since start"),
        _i("poll_errors", "", "failed polls since start"),
        _i("modbus_requests", "", "Modbus requests of the last poll round, all devices"),
        _i("publish_refused", "", "publishes refused by the broker (PUBACK failure)"),
        _i("spool_unacked", "", "spooled rows the broker accepted and the ingest has not yet acknowledged as stored"),
        _f("spool_unacked_oldest_s", "s", "how long ago the oldest of those rows was sent"),
        _i("rows_resent", "", "spool rows sent again because no acknowledgement came in time (since start)"),
        _i("rss_bytes", "B", "resident memory of the agent"),
    ),
    "agent health, every 60 s",
)

SITE_INFO = MeasurementSpec(
    "site_info",
    ("site",),
    (
        _f("peak_power_w", "W", "installed peak power (kWp x 1000)", Bounds(0, MAX_POWER_W)),
        _i("panels", "", "number of solar panels", Bounds(0, 10_000_000)),
        _s("owner", "commune, citizen, cooperative …"),
        _s("name", "display name of the site"),
        _f("latitude", "°", "site latitude", Bounds(-90, 90)),
        _f("longitude", "°", "site longitude", Bounds(-180, 180)),
    ),
    "site metadata, from the retained info message",
)

_SITE_DAY = Bounds(0, MAX_DAY_WH)
"""A site's energy of one local day (the rollup leaves out a site beyond it; the territory sums are not bounded)."""

ENERGY_DAILY = MeasurementSpec(
    "energy_daily",
    ("site",),
    (
        _f("production_wh", "Wh", "energy produced during the local day", _SITE_DAY),
        _f("consumption_wh", "Wh",
           "energy consumed: production + import - export + battery discharge - battery charge (metered sites)",
           Bounds(-2 * MAX_DAY_WH, 3 * MAX_DAY_WH)),
        _f("import_wh", "Wh", "energy imported from the grid", _SITE_DAY),
        _f("export_wh", "Wh", "energy exported to the grid", _SITE_DAY),
        _f("battery_charge_wh", "Wh", "energy charged into the site's batteries", _SITE_DAY),
        _f("battery_discharge_wh", "Wh", "energy discharged from the site's batteries", _SITE_DAY),
        _f("reference_consumption_wh", "Wh", "territory only: daily share of the annual consumption reference",
           Bounds(0, MAX_LIFETIME_WH)),
    ),
    "daily energy rollups per site and for the territory (site=_territory), local-day buckets",
)

SITE_DEVICE = "_site"
"""``device`` tag value of a whole site's row in ``performance_daily``."""

_DAY_WH = Bounds(0, MAX_DAY_WH * 1000)
"""A day's energy of a whole territory's technology or site, generously (1000 sites at the cap)."""
_DAY_YIELD = Bounds(0, 100)
"""kWh per kWp in a day: about 8 at most under a clear sky; 100 leaves room for a wrong peak power."""
_RATIO = Bounds(0, 1e9)
"""Ratios of energies: unbounded in principle (a tiny denominator), finite and never negative."""
_FLAG = Bounds(0, 1)

PERFORMANCE_DAILY = MeasurementSpec(
    "performance_daily",
    ("site", "device"),
    (
        _f("energy_wh", "Wh", "AC energy produced during the local day (lifetime counters)", _DAY_WH),
        _f("peak_power_w", "W", "peak power of the arrays the inverter (or site) feeds, from the inventory"),
        _f("yield_kwh_per_kwp", "kWh/kWp", "specific yield: energy / peak power", _DAY_YIELD),
        _f("expected_clear_sky_wh", "Wh", "expected AC energy under a clear sky (pvlib model of the arrays)",
           _DAY_WH),
        _f("clear_sky_ratio", "", "energy / expected clear-sky energy", _RATIO),
        _f("performance_index", "", "clear-sky ratio / median clear-sky ratio of the peers (same commune)", _RATIO),
        _f("peers_clear_sky_ratio", "", "median clear-sky ratio of the peers that day (>= 0.4: a sunny day)",
           _RATIO),
        _i("peers", "", "number of peers the index was computed against"),
        _i("underperforming", "", "1 when the index stayed low on 3 of the 5 most recent sunny days", _FLAG),
        _i("underperforming_since", "YYYYMMDD", "first low sunny day of the current underperformance",
           Bounds(19000101, 29991231)),
    ),
    "yield analytics per inverter and per site (device=_site), local-day buckets",
)

STRING_DAILY = MeasurementSpec(
    "string_daily",
    ("site", "device", "string"),
    (
        _f("energy_wh", "Wh", "DC energy of the MPPT string during the local day", _DAY_WH),
        _f("siblings_median_wh", "Wh", "median daily energy of the inverter's other strings (scaled to this one)",
           _DAY_WH),
        _f("sibling_ratio", "", "energy / siblings' median (per kWp when the strings' peak powers are known)",
           _RATIO),
        _i("failing", "", "1 when the string was far below its siblings on its inverter's 2 last sunny days", _FLAG),
    ),
    "MPPT string comparison per local day",
)

TECHNOLOGY_DAILY = MeasurementSpec(
    "technology_daily",
    ("technology",),
    (
        _f("energy_wh", "Wh", "AC energy of the arrays of that technology during the local day", _DAY_WH),
        _f("peak_power_w", "W", "peak power of those arrays"),
        _f("yield_kwh_per_kwp", "kWh/kWp", "specific yield of the technology that day", _DAY_YIELD),
    ),
    "specific yield per module technology (the inventory's free text), local-day buckets",
)

MEASUREMENTS: dict[str, MeasurementSpec] = {
    m.name: m for m in (INVERTER, MPPT, METER, BATTERY, EVENT, AGENT, SITE_INFO, ENERGY_DAILY, PERFORMANCE_DAILY,
                        STRING_DAILY, TECHNOLOGY_DAILY)
}

READING_MEASUREMENT: dict[str, MeasurementSpec] = {
    "inverter": INVERTER, "meter": METER, "mppt": MPPT, "battery": BATTERY,
}
"""Which measurement a reading of each ``kind`` is written to."""

# --------------------------------------------------------------------------- territory open data (yearly)

_TERRITORY_COUNT = Bounds(0, 1e12)
_TERRITORY_POWER = Bounds(0, 1e12)
"""Installed power of a commune, or what it misses: far above one device's ``MAX_POWER_W``."""
_SHARE = Bounds(0, 1e3)

TERRITORY_AMOUNTS: tuple[tuple[str, str, str, Bounds | None], ...] = (
    ("energy_wh", "Wh", "energy consumed (kind electricity, gas) or produced (kind production) in the year", None),
    ("delivery_points", "", "delivery points (consumption)", _TERRITORY_COUNT),
    ("sites", "", "production sites (Enedis production)", _TERRITORY_COUNT),
    ("power_w", "W", "installed power (ODRÉ register, kind installations)", _TERRITORY_POWER),
    ("installations", "", "installations (ODRÉ register)", _TERRITORY_COUNT),
    ("produced_wh", "Wh", "annual energy produced (ODRÉ register; often masked for small installations)", None),
    ("injected_wh", "Wh", "annual energy injected into the grid (ODRÉ register; self-consumption missing)", None),
)
"""Each amount of an open-data figure, written with ``<name>_masked``: how many of the cells it sums were
masked (secret). The value is absent when every cell was masked: unknown, never 0."""

TERRITORY_YEARLY = MeasurementSpec(
    "territory_yearly",
    ("commune", "source", "kind", "category", "edition"),
    (
        *(_f(name, unit, text, bounds) for name, unit, text, bounds in TERRITORY_AMOUNTS),
        *(_i(f"{name}_masked", "", f"masked cells summed into {name}") for name, _, _, _ in TERRITORY_AMOUNTS),
        _i("current", "", "1 while this edition (file) is the latest imported for its commune, year, source and kind"),
    ),
    "yearly open-data figures per commune (INSEE code), timestamp = 1 January of the year (local midnight); "
    "kind: electricity | gas | production | installations; category: sector or energy source",
)

TERRITORY_IMPORT = MeasurementSpec(
    "territory_import",
    ("commune", "source", "kind"),
    (
        _s("edition", "first 12 hex digits of the SHA-256 of the file the figures come from"),
        _s("file", "name of that file"),
        _s("imported_at", "when it was imported (ISO 8601)"),
        _s("year_from", "ODRÉ register: where the year came from (snapshot name, newest date, --year)"),
    ),
    "which file holds the current figures of a commune, year, source and kind (timestamp = the year)",
)

TERRITORY_BALANCE = MeasurementSpec(
    "territory_balance",
    ("commune",),
    (
        _f("consumption_wh", "Wh", "electricity consumed in the year (grid operators)"),
        _i("consumption_complete", "", "0 when a sector was masked: the consumption is a lower bound"),
        _f("renewable_production_wh", "Wh", "local renewable production in the year (grid operators)"),
        _f("monitored_production_wh", "Wh", "production of the roofs terril monitors in the year"),
        _f("renewable_share", "", "renewable production / electricity consumption", _SHARE),
        _f("target_share", "", "share on the straight path from the baseline year's share to the target", _SHARE),
        _f("missing_wh", "Wh", "renewable production still missing to reach the target share (>= 0)"),
        _f("missing_peak_power_w", "W", "the same, as rooftop peak power at the fleet's specific yield",
           _TERRITORY_POWER),
        _f("missing_roofs", "", "the same, in roofs of the fleet's median peak power", _TERRITORY_COUNT),
        _f("fleet_yield_kwh_per_kwp", "kWh/kWp", "specific yield of the monitored roofs over the last 365 days",
           Bounds(0, 1e4)),
    ),
    "the energy-positive balance per commune and for the territory (commune=_territory), per year",
)

ENERGY_DAILY_COMMUNE = MeasurementSpec(
    "energy_daily_commune",
    ("commune",),
    tuple(f for f in ENERGY_DAILY.fields),
    "daily energy of the monitored sites of one commune (INSEE code), local-day buckets; "
    "reference_consumption_wh: the day's share of the commune's latest imported annual consumption",
)

TERRITORY_MEASUREMENTS = (TERRITORY_YEARLY, TERRITORY_IMPORT, TERRITORY_BALANCE, ENERGY_DAILY_COMMUNE)
MEASUREMENTS.update({m.name: m for m in TERRITORY_MEASUREMENTS})

# SunSpec St (operating state) values, shared by models 101-103 and 111-113.
STATE_OFF = 1
STATE_SLEEPING = 2
STATE_STARTING = 3
STATE_MPPT = 4
STATE_THROTTLED = 5
STATE_SHUTTING_DOWN = 6
STATE_FAULT = 7
STATE_STANDBY = 8
STATE_NAMES = {
    STATE_OFF: "OFF",
    STATE_SLEEPING: "SLEEPING",
    STATE_STARTING: "STARTING",
    STATE_MPPT: "MPPT",
    STATE_THROTTLED: "THROTTLED",
    STATE_SHUTTING_DOWN: "SHUTTING_DOWN",
    STATE_FAULT: "FAULT",
    STATE_STANDBY: "STANDBY",
}

# Device link status published in health and used in logs.
LinkStatus = Literal["ok", "sleeping", "unreachable", "fault", "wrong_device"]
"""``wrong_device``: the device answers but is not what its driver describes (identity guard); nothing is polled."""

# --------------------------------------------------------------------------- field values

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""An InfluxDB integer field is 64 bits."""
MAX_TEXT_CHARS = 1024
"""Longest string field accepted (event text, site name)."""


class FieldValueError(ValueError):
    """A value that cannot be stored in its field; the message names ``measurement.field`` and the value."""


def short(value: object) -> str:
    """``repr`` of a value cut to 60 characters, for messages about hostile input."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_field(spec: MeasurementSpec, name: str, value: object) -> float | int | str:
    """*value* as the type the schema fixes for field *name* of *spec*, or FieldValueError saying why.

    The one definition of a field's type, used by the edge (``Reading.validate``),
    the ingest's checks (``agent.central.validate``) and the writers
    (``agent.central.points.make_point``): integers stay integers (``true`` is
    not one) within 64 bits; numbers become finite floats; strings are at most
    ``MAX_TEXT_CHARS`` characters of valid Unicode. Bounds are not checked here:
    a value of the right type out of its range is the caller's to report.
    """
    fs = spec.fields_by_name.get(name)
    if fs is None:
        raise FieldValueError(f"{name!r} is not a field of {spec.name}")
    where = f"{spec.name}.{name}"
    if fs.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldValueError(f"{where} must be an integer, got {short(value)}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise FieldValueError(f"{where} {value} does not fit in 64 bits")
        return value
    if fs.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldValueError(f"{where} must be a number, got {short(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise FieldValueError(f"{where} is too large") from None
        if not math.isfinite(number):
            raise FieldValueError(f"{where} must be finite, got {number!r}")
        return number
    if not isinstance(value, str):
        raise FieldValueError(f"{where} must be a string, got {short(value)}")
    if len(value) > MAX_TEXT_CHARS:
        raise FieldValueError(f"{where} is longer than {MAX_TEXT_CHARS} characters")
    check_text(value, where)
    return value


def check_text(value: str, where: str) -> None:
    """JSON allows lone surrogates (``"\\ud800"``) that cannot be written back as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldValueError(f"{where} holds characters that are not valid Unicode") from None


def out_of_bounds(spec: MeasurementSpec, name: str, value: float | int | str) -> str | None:
    """Why *value* (already coerced) is physically impossible for its field, or None when it is possible."""
    fs = spec.fields_by_name[name]
    if fs.bounds is None or isinstance(value, str) or value in fs.bounds:
        return None
    unit = f" {fs.unit}" if fs.unit else ""
    return (f"{spec.name}.{name} {short(value)} is impossible "
            f"(possible: {fs.bounds.low:g} to {fs.bounds.high:g}{unit})")


# --------------------------------------------------------------------------- payloads


@dataclass
class Reading:
    """One poll of one logical device (or of one MPPT string), as published and stored.

    ``fields`` holds only the values that were actually read: a value the device
    does not implement is absent, never 0. Float fields are floats; ``state`` and
    ``events`` are ints.
    """

    device: str
    kind: ReadingKind
    ts: int
    """Poll time, epoch milliseconds (UTC). Taken at the edge, so a replay overwrites itself."""
    fields: dict[str, float | int] = field(default_factory=dict)
    string: str | None = None
    """MPPT string id (``kind == "mppt"`` only): becomes the ``string`` tag."""

    def validate(self) -> None:
        """Raise ValueError if the reading breaks the schema's shape and field types.

        The tests run it on every reading a driver decodes; the ingest checks what
        it receives with the same :func:`coerce_field` (plus bounds and timestamps)
        in ``agent.central.validate``.
        """
        if not is_slug(self.device):
            raise ValueError(f"device {self.device!r} is not a slug")
        if self.kind not in READING_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {READING_KINDS}")
        if (self.kind == "mppt") != (self.string is not None):
            raise ValueError("string is required for mppt readings and only for them")
        spec = READING_MEASUREMENT[self.kind]
        for name, value in self.fields.items():
            coerce_field(spec, name, value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device, "kind": self.kind}
        if self.string is not None:
            out["string"] = self.string
        out["ts"] = self.ts
        out["fields"] = {
            name: (float(value) if READING_MEASUREMENT[self.kind].field(name).type == "float" else int(value))
            for name, value in self.fields.items()
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        return cls(
            device=data["device"],
            kind=data["kind"],
            ts=data["ts"],
            fields=dict(data["fields"]),
            string=data.get("string"),
        )


def readings_payload(site: str, readings: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``terril/<site>/readings`` payload: readings already as dicts (``Reading.to_dict``)."""
    return {"v": SCHEMA_VERSION, "site": site, "readings": readings}


@dataclass
class Event:
    """A fault transition (``terril/<site>/events``): one message per start or end of an event."""

    device: str
    ts: int
    code: str
    """Stable short name, e.g. ``GROUND_FAULT`` (SunSpec Evt1 bit name) or ``STATE_FAULT``."""
    active: bool
    text: str

    def to_payload(self, site: str) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "site": site,
            "device": self.device,
            "ts": self.ts,
            "code": self.code,
            "active": self.active,
            "text": self.text,
        }


EVENT_CODE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def health_payload(
    site: str, ts: int, metrics: dict[str, float | int], devices: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The ``terril/<site>/health`` payload (QoS 0, retained, every 60 s).

    ``metrics`` uses the field names of the ``agent`` measurement (``AGENT``):
    the ingest writes each of them as is. ``devices`` is per-device detail for
    people (status ``ok``/``sleeping``/``unreachable``/``fault``/``wrong_device``, polls ok/failed,
    Modbus requests per poll); it is not written to InfluxDB.
    """
    unknown = [k for k in metrics if k not in AGENT.fields_by_name]
    if unknown:
        raise ValueError(f"unknown agent metric(s): {', '.join(unknown)}")
    return {"v": SCHEMA_VERSION, "site": site, "ts": ts, **metrics, "devices": devices}


INFO_SITE_KEYS: tuple[str, ...] = ("name", "peak_power_w", "panels", "owner", "latitude", "longitude")
"""Keys of the retained ``info`` payload that describe the site (the ``site_info`` fields)."""


def info_payload(site: str, ts: int, site_fields: dict[str, Any], devices: list[dict[str, Any]]) -> dict[str, Any]:
    """The retained ``terril/<site>/info`` payload: site metadata and device inventory.

    ``site_fields`` holds the ``INFO_SITE_KEYS`` that are set; each entry of
    ``devices`` has ``name``, ``kind``, ``driver`` and what the device told about
    itself (``manufacturer``, ``model``, ``serial``, ``firmware``, ``rated_power_w``).
    """
    return {
        "v": SCHEMA_VERSION,
        "site": site,
        "ts": ts,
        **{k: v for k, v in site_fields.items() if k in INFO_SITE_KEYS and v is not None},
        "devices": devices,
    }
