"""MQTT message in, InfluxDB points out — or the reason it cannot be stored.

Pure functions, no I/O: the ingest calls :func:`message_to_points` for every
message and either batches the points or dead-letters the message. Every
check of DESIGN.md ("MQTT contract", "InfluxDB contract") lives here, so the
golden cases in ``tests/cases/ingest/`` pin the whole mapping down.

A message is never half-refused silently: when some readings of a message are
valid and others are not, the valid ones are written and the message is also
dead-lettered with the reasons of the others (the dead letter carries the whole
original payload, so nothing is lost).

Speed (an agent draining its spool sends 500 readings per message): a reading
is checked once and its line protocol written directly by
:func:`agent.central.fastpath.fast_reading_line`, which handles the common case — a tag set and a set
of field names already seen valid, values of the exact JSON type the schema
wants — with one dictionary look-up per field. Anything else goes through the
full checks (:func:`_reading_point`), which give the precise reason or the same
line; ``tests/test_ingest_fastpath.py`` proves both paths write the same text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agent.central.fastpath import Prefixes, fast_reading_line, learn
from agent.central.points import Point, encode_line, make_point
from agent.central.rollup import COUNTERS
from agent.schema import (
    AGENT,
    EVENT_CODE_RE,
    INFO_SITE_KEYS,
    MAX_TEXT_CHARS,
    MESSAGE_ID_KEY,
    MESSAGE_ID_RE,
    READING_KINDS,
    READING_MEASUREMENT,
    SCHEMA_VERSION,
    SITE_INFO,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    FieldValueError,
    check_text,
    coerce_field,
    is_slug,
    out_of_bounds,
    parse_topic,
    short,
)

MIN_TS_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: anything older is a clock that was never set."""
MAX_FUTURE_MS = 10 * 60 * 1000
"""A reading more than 10 minutes in the future comes from a clock that is wrong."""
MAX_READINGS_PER_MESSAGE = 10_000
DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024
"""Twice the biggest legitimate message (a backlog of 500 readings, ~250 kB), under the broker's 1 MB packet limit."""


@dataclass(frozen=True)
class Decoded:
    """What one message becomes: line protocol to write and, if anything was refused, the reasons."""

    site: str | None
    lines: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())
    oldest_counter_ms: int | None = None
    """Oldest timestamp of an inverter or meter reading (their counters feed the daily rollup)."""
    rebuild: Callable[[], tuple[Point, ...]] | None = field(default=None, repr=False, compare=False)
    message_id: str | None = None
    """The agent's id of the message (``readings`` and ``events``), echoed on ``<site>/ack`` once stored."""

    @property
    def points(self) -> tuple[Point, ...]:
        """The stored lines as :class:`Point` objects, rebuilt by the full checks (tests, tools; not the hot path)."""
        return self.rebuild() if self.rebuild is not None else ()

    @property
    def reason(self) -> str | None:
        """Dead-letter reason (None when the whole message is stored)."""
        if not self.problems:
            return None
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{self.problems[0]} (and {len(self.problems) - 1} more problem(s))"


def _from_points(site: str, points: tuple[Point, ...]) -> Decoded:
    return Decoded(site, tuple(encode_line(p) for p in points), rebuild=lambda: points)


def _with_problems(decoded: Decoded, problems: list[str]) -> Decoded:
    """*decoded* stored, and also dead-lettered for the values it left out."""
    return dataclasses.replace(decoded, problems=tuple(problems)) if problems else decoded


class _Invalid(ValueError):
    """The message as a whole cannot be stored."""


def _reject(site: str | None, reason: str) -> Decoded:
    return Decoded(site=site, problems=(reason,))


def _no_constants(name: str) -> float:
    raise _Invalid(f"JSON constant {name} is not allowed")


_orjson: ModuleType | None
try:  # optional speed-up of the central side (the `central` extra); the agent never needs it
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the installation
    _orjson = None


def _parse_json(payload: bytes) -> Any:
    """The payload as JSON. orjson (when installed) parses the valid ones about 2x faster;
    anything it refuses goes through the standard parser, which names the problem."""
    if _orjson is not None:
        try:
            return _orjson.loads(payload)
        except _orjson.JSONDecodeError:
            pass  # the standard parser below gives the reason (or accepts what orjson's limits refuse)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise _Invalid("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise _Invalid(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # int too large to convert, and _Invalid from _no_constants
        raise _Invalid(str(exc) if isinstance(exc, _Invalid) else f"payload is not JSON: {exc}") from None


def _check_ts(value: Any, now_ms: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{where}ts must be an integer (epoch ms), got {_short(value)}")
    if value < MIN_TS_MS:
        raise _Invalid(f"{where}ts {value} is before 2000-01-01")
    if value > now_ms + MAX_FUTURE_MS:
        raise _Invalid(f"{where}ts {value} is more than 10 minutes in the future")
    return value


def _check_text(value: str, where: str) -> None:
    try:
        check_text(value, where)
    except FieldValueError as exc:
        raise _Invalid(str(exc)) from None


_short = short


def _envelope(data: Any, topic_site: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Invalid(f"payload must be a JSON object, got {type(data).__name__}")
    v = data.get("v")
    if v != SCHEMA_VERSION or isinstance(v, bool):
        raise _Invalid(f"unknown schema version v={_short(v)} (this ingest knows v={SCHEMA_VERSION})")
    site = data.get("site")
    if site != topic_site:
        raise _Invalid(f"payload site {_short(site)} differs from topic site {topic_site!r}")
    return data


def _typed_fields(
    measurement: str, raw: Any, where: str, problems: list[str]
) -> dict[str, float | int | str]:
    """Check that every field is a schema field of the right type (:func:`agent.schema.coerce_field`), in range.

    A value of the right type outside its physically possible range (``FieldSpec.bounds``)
    is left out and its reason appended to *problems*: the other fields of the reading
    are stored, the message is dead-lettered. Anything else refuses the whole reading.
    """
    if not isinstance(raw, dict) or not raw:
        raise _Invalid(f"{where}fields must be a non-empty object")
    spec = READING_MEASUREMENT.get(measurement) or {"agent": AGENT, "site_info": SITE_INFO}[measurement]
    out: dict[str, float | int | str] = {}
    implausible: list[str] = []
    for name, raw_value in raw.items():
        try:
            value = coerce_field(spec, name, raw_value)
        except FieldValueError as exc:
            raise _Invalid(f"{where}{exc}") from None
        reason = out_of_bounds(spec, name, value)
        if reason is not None:
            implausible.append(where + reason)
            continue
        out[name] = value
    if not out:
        raise _Invalid("; ".join(implausible))
    problems.extend(implausible)
    return out


def _reading_point(site: str, reading: Any, now_ms: int, where: str, problems: list[str]) -> Point:
    if not isinstance(reading, dict):
        raise _Invalid(f"{where}must be an object, got {type(reading).__name__}")
    unknown = sorted(set(reading) - {"device", "kind", "string", "ts", "fields"})
    if unknown:
        raise _Invalid(f"{where}unknown key(s) {', '.join(map(repr, unknown))}")
    device = reading.get("device")
    if not is_slug(device):
        raise _Invalid(f"{where}device {_short(device)} is not a slug")
    kind = reading.get("kind")
    if kind not in READING_KINDS:
        raise _Invalid(f"{where}kind {_short(kind)} is not one of {', '.join(READING_KINDS)}")
    tags = {"site": site, "device": device}
    string = reading.get("string")
    if kind == "mppt":
        if not is_slug(string):
            raise _Invalid(f"{where}mppt reading needs a string id (slug), got {_short(string)}")
        tags["string"] = string
    elif string is not None:
        raise _Invalid(f"{where}string is only for mppt readings")
    ts = _check_ts(reading.get("ts"), now_ms, where)
    fields = _typed_fields(kind, reading.get("fields"), where, problems)
    return make_point(READING_MEASUREMENT[kind].name, tags, fields, ts)


_COUNTER_KINDS = frozenset(k for k, m in READING_MEASUREMENT.items() if m.name in {c.measurement for c in COUNTERS})
"""Reading kinds whose lifetime counters feed ``energy_daily`` (late ones make the rollup reach back)."""


def _readings(site: str, data: dict[str, Any], now_ms: int) -> Decoded:
    readings = data.get("readings")
    if not isinstance(readings, list) or not readings:
        raise _Invalid("readings must be a non-empty list")
    if len(readings) > MAX_READINGS_PER_MESSAGE:
        raise _Invalid(f"more than {MAX_READINGS_PER_MESSAGE} readings in one message")
    extra = sorted(set(data) - {"v", "site", "readings", MESSAGE_ID_KEY})
    if extra:
        raise _Invalid(f"unknown key(s) {', '.join(map(repr, extra))}")
    lines: list[str] = []
    problems: list[str] = []
    prefixes: Prefixes = {}
    oldest: int | None = None
    fast = fast_reading_line
    min_ts, max_ts = MIN_TS_MS, now_ms + MAX_FUTURE_MS
    for i, reading in enumerate(readings):
        line = fast(reading, min_ts, max_ts, prefixes)
        if line is None:
            implausible: list[str] = []
            try:
                point = _reading_point(site, reading, now_ms, f"readings[{i}]: ", implausible)
            except _Invalid as exc:
                problems.append(str(exc))
                continue
            problems.extend(implausible)
            line = encode_line(point)
            if not implausible:
                learn(reading, line, prefixes)
        lines.append(line)
        if reading["kind"] in _COUNTER_KINDS:
            ts = reading["ts"]
            if oldest is None or ts < oldest:
                oldest = ts

    def rebuild() -> tuple[Point, ...]:
        points = []
        for i, reading in enumerate(readings):
            try:
                points.append(_reading_point(site, reading, now_ms, f"readings[{i}]: ", []))
            except _Invalid:
                pass
        return tuple(points)

    return Decoded(site, tuple(lines), tuple(problems), oldest, rebuild)


def _event(site: str, data: dict[str, Any], now_ms: int) -> Decoded:
    device = data.get("device")
    if not is_slug(device):
        raise _Invalid(f"device {_short(device)} is not a slug")
    code = data.get("code")
    if not isinstance(code, str) or not EVENT_CODE_RE.fullmatch(code):
        raise _Invalid(f"code {_short(code)} must match {EVENT_CODE_RE.pattern}")
    active = data.get("active")
    if not isinstance(active, bool):
        raise _Invalid(f"active must be true or false, got {_short(active)}")
    text = data.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise _Invalid(f"text must be a string of at most {MAX_TEXT_CHARS} characters")
    _check_text(text, "text")
    ts = _check_ts(data.get("ts"), now_ms, "")
    point = make_point("event", {"site": site, "device": device, "code": code},
                       {"active": int(active), "text": text}, ts)
    return _from_points(site, (point,))


def _health(site: str, data: dict[str, Any], now_ms: int) -> Decoded:
    """Agent metrics at the top level of the health payload; per-device detail is not stored."""
    ts = _check_ts(data.get("ts"), now_ms, "") if "ts" in data else now_ms
    metrics = {k: v for k, v in data.items() if k in AGENT.fields_by_name and k != "up"}
    if not metrics:
        raise _Invalid("health carries none of the agent metrics")
    problems: list[str] = []
    point = make_point("agent", {"site": site}, _typed_fields("agent", metrics, "", problems), ts)
    return _with_problems(_from_points(site, (point,)), problems)


def _info(site: str, data: dict[str, Any], now_ms: int) -> Decoded:
    ts = _check_ts(data.get("ts"), now_ms, "") if "ts" in data else now_ms
    site_fields = {k: data[k] for k in INFO_SITE_KEYS if data.get(k) is not None}
    devices = data.get("devices", [])
    if not isinstance(devices, list):
        raise _Invalid("devices must be a list")
    if not site_fields:
        return Decoded(site)  # inventory only: nothing for site_info, nothing wrong either
    problems: list[str] = []
    point = make_point("site_info", {"site": site}, _typed_fields("site_info", site_fields, "", problems), ts)
    return _with_problems(_from_points(site, (point,)), problems)


def _status(site: str, payload: bytes, now_ms: int) -> Decoded:
    text = payload.decode("utf-8", errors="replace").strip()
    if text == STATUS_ONLINE:
        up = 1
    elif text == STATUS_OFFLINE:
        up = 0
    else:
        raise _Invalid(f"status must be {STATUS_ONLINE!r} or {STATUS_OFFLINE!r}, got {_short(text)}")
    return _from_points(site, (make_point("agent", {"site": site}, {"up": up}, now_ms),))


def _message_id(data: Any) -> str | None:
    """The message id of a ``readings`` or ``events`` payload, None when it has none (an older agent)."""
    if not isinstance(data, dict) or MESSAGE_ID_KEY not in data:
        return None
    value = data[MESSAGE_ID_KEY]
    if not isinstance(value, str) or not MESSAGE_ID_RE.fullmatch(value):
        raise _Invalid(f"id {_short(value)} must match {MESSAGE_ID_RE.pattern}")
    return value


_ACKED_KINDS = frozenset({"readings", "events"})

_JSON_KINDS = {"readings": _readings, "events": _event, "health": _health, "info": _info}


def message_to_points(
    topic: str,
    payload: bytes,
    now_ms: int,
    root: str = "terril",
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    retained: bool = False,
) -> Decoded:
    """Turn one MQTT message into points; ``problems`` says what could not be stored and why.

    ``now_ms`` is the receive time: it bounds timestamps from the future and
    stamps ``status`` messages (which carry no time of their own), and ``health``
    or ``info`` without ``ts`` — unless *retained*: a retained copy the broker
    re-sends on subscribe happened earlier, so only what carries its own time is stored.
    """
    parsed = parse_topic(topic, root)
    if parsed is None:
        return _reject(None, f"topic {topic!r} is not {root}/<site>/<kind>")
    site, kind = parsed
    if not is_slug(site):
        return _reject(None, f"topic site {site!r} is not a slug")
    if len(payload) > max_payload_bytes:
        return _reject(site, f"payload of {len(payload)} bytes exceeds the {max_payload_bytes}-byte cap")
    message_id: str | None = None
    try:
        if kind == "status":
            return _status(site, payload, now_ms)
        raw = _parse_json(payload)
        if kind in _ACKED_KINDS:
            # Read first, so that a message dead-lettered for another reason is acknowledged too:
            # the agent must not resend garbage for ever.
            message_id = _message_id(raw)
        data = _envelope(raw, site)
        if retained and "ts" not in data:
            raise _Invalid("retained copy without ts: the broker re-sent it, its time is unknown")
        decoded = _JSON_KINDS[kind](site, data, now_ms)
    except _Invalid as exc:
        return dataclasses.replace(_reject(site, str(exc)), message_id=message_id)
    except ValueError as exc:  # make_point's own checks: should not happen after ours, but never crash
        return dataclasses.replace(_reject(site, f"cannot build point: {exc}"), message_id=message_id)
    if not decoded.lines and not decoded.problems and kind != "info":
        return dataclasses.replace(_reject(site, "message holds nothing to store"), message_id=message_id)
    return dataclasses.replace(decoded, message_id=message_id) if message_id is not None else decoded
