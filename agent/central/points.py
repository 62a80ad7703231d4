"""InfluxDB points and their line-protocol text, typed by ``agent.schema``.

Every writer (influxdb-client for InfluxDB 2.x/3.x/1.8+, plain ``/write`` for
older 1.x) sends the same line protocol, so one encoder serves both and the
tests compare text. Timestamps are epoch milliseconds (``precision=ms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.encoding import line
from agent.schema import MEASUREMENTS, coerce_field


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float | int | str], ...]
    ts_ms: int

    def to_line(self) -> str:
        """Line protocol with field types taken from the schema (ints get the ``i`` suffix)."""
        return encode_line(self)


def make_point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | int | str], ts_ms: int
) -> Point:
    """Build a point, coercing each field to the type the schema fixes for it (:func:`agent.schema.coerce_field`).

    Raises ValueError for an unknown measurement or field, or a value of the wrong kind.
    ``True``/``False`` given for an integer field (``active``, ``underperforming``) is written as 1/0.
    """
    spec = MEASUREMENTS.get(measurement)
    if spec is None:
        raise ValueError(f"unknown measurement {measurement!r}")
    typed: list[tuple[str, float | int | str]] = []
    for name in sorted(fields):
        value = fields[name]
        if isinstance(value, bool) and name in spec.fields_by_name and spec.field(name).type == "int":
            value = int(value)
        typed.append((name, coerce_field(spec, name, value)))
    if not typed:
        raise ValueError(f"{measurement}: a point needs at least one field")
    missing = [t for t in spec.tags if t not in tags]
    if missing:
        raise ValueError(f"{measurement}: missing tag(s) {', '.join(missing)}")
    unknown = [t for t in tags if t not in spec.tags]
    if unknown:
        raise ValueError(f"{measurement}: unknown tag(s) {', '.join(unknown)}")
    return Point(measurement, tuple(sorted(tags.items())), tuple(typed), int(ts_ms))


def encode_line(point: Point) -> str:
    """The point as one line of line protocol (:func:`agent.encoding.line`)."""
    return line(point.measurement, point.tags, point.fields, point.ts_ms)
