"""InfluxDB points and their line-protocol text, typed by ``agent.schema``.

Every writer (influxdb-client for InfluxDB 2.x/3.x/1.8+, plain ``/write`` for
older 1.x) sends the same line protocol, so one encoder serves both and the
tests compare text. Timestamps are epoch milliseconds (``precision=ms``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.schema import MEASUREMENTS


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float | int | str], ...]
    ts_ms: int

    def to_line(self) -> str:
        """Line protocol with field types taken from the schema (ints get the ``i`` suffix)."""
        return encode_line(self)


def make_point(measurement: str, tags: dict[str, str], fields: dict[str, float | int | str], ts_ms: int) -> Point:
    """Build a point, coercing each field to the type the schema fixes for it.

    Raises ValueError for an unknown measurement or field, or a value of the wrong kind.
    """
    spec = MEASUREMENTS.get(measurement)
    if spec is None:
        raise ValueError(f"unknown measurement {measurement!r}")
    typed: list[tuple[str, float | int | str]] = []
    for name in sorted(fields):
        value = fields[name]
        fs = spec.fields_by_name.get(name)
        if fs is None:
            raise ValueError(f"{measurement}: unknown field {name!r}")
        if fs.type == "str":
            if not isinstance(value, str):
                raise ValueError(f"{measurement}.{name}: expected a string, got {value!r}")
            typed.append((name, value))
        elif fs.type == "int":
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int):
                raise ValueError(f"{measurement}.{name}: expected an integer, got {value!r}")
            typed.append((name, value))
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{measurement}.{name}: expected a finite number, got {value!r}")
            typed.append((name, float(value)))
    if not typed:
        raise ValueError(f"{measurement}: a point needs at least one field")
    missing = [t for t in spec.tags if t not in tags]
    if missing:
        raise ValueError(f"{measurement}: missing tag(s) {', '.join(missing)}")
    unknown = [t for t in tags if t not in spec.tags]
    if unknown:
        raise ValueError(f"{measurement}: unknown tag(s) {', '.join(unknown)}")
    return Point(measurement, tuple(sorted(tags.items())), tuple(typed), int(ts_ms))


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _field_value(value: float | int | str) -> str:
    """A string field escapes only ``\\`` and ``"``: InfluxDB 1.x and 2.x read a raw newline inside
    the quotes as part of the value, but store ``\\n`` as a backslash and an n (issue 13.4)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return f"{value}i"
    return repr(float(value))


def encode_line(point: Point) -> str:
    tags = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in point.tags if v != "")
    fields = ",".join(f"{_escape_key(k)}={_field_value(v)}" for k, v in point.fields)
    return f"{_escape_measurement(point.measurement)}{tags} {fields} {point.ts_ms}"
