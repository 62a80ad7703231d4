"""The ingest's fast path: the line of a reading shaped like one the full checks already accepted.

An agent draining its spool sends 500 readings per message, nearly all of the
same devices with the same fields. :func:`learn` remembers, per message, the
tag set of each reading the full checks (``agent.central.validate``) accepted,
and across messages each accepted set of field names as a plan built from the
schema (type, bounds, escaped key). :func:`fast_reading_line` then writes such a
reading's line protocol with one dictionary look-up per field, or returns None
and the full checks decide. ``tests/test_ingest_fastpath.py`` proves both paths
write the same text and refuse the same readings.
"""

from __future__ import annotations

from typing import Any

from agent.encoding import escape_key
from agent.schema import READING_MEASUREMENT

Prefixes = dict[tuple[Any, Any, Any], tuple[str, str]]
"""(kind, device, string) of readings accepted in this message -> (kind, line prefix up to the first space)."""

_READING_KEYS = frozenset({"device", "kind", "string", "ts", "fields"})
_FLOAT, _INT = 0, 1
_PLAN_CACHE_MAX = 4096

_FieldPlan = tuple[tuple[str, str, int, float, float], ...]
"""Per field, in line order (sorted by name): (name, ``name=`` escaped, _FLOAT or _INT, lowest, highest value)."""
_field_plans: dict[tuple[str, tuple[str, ...]], _FieldPlan | None] = {}
"""(kind, field names in payload order) -> plan; None when a field is a string (full checks)."""


def _field_plan(kind: str, names: tuple[str, ...]) -> _FieldPlan | None:
    """Built once per field set, after the full checks accepted a reading with it."""
    spec = READING_MEASUREMENT[kind]
    plan = []
    for name in sorted(names):
        fs = spec.fields_by_name[name]
        if fs.type == "str" or fs.bounds is None:
            return None
        code = _FLOAT if fs.type == "float" else _INT
        plan.append((name, escape_key(name) + "=", code, fs.bounds.low, fs.bounds.high))
    return tuple(plan)


def fast_reading_line(reading: Any, min_ts: int, max_ts: int, prefixes: Prefixes) -> str | None:
    """The line of a reading shaped like one already accepted, or None: then the full checks decide.

    Accepts exactly what the full checks (``agent.central.validate``) accept for such a reading
    and writes the same text: *prefixes* only holds (kind, device, string) triples the full
    checks accepted, and the plans only field-name sets they accepted, so what is left is the
    type, range and finiteness of each value.
    """
    if type(reading) is not dict:
        return None
    try:
        entry = prefixes.get((reading.get("kind"), reading.get("device"), reading.get("string")))
    except TypeError:  # a list or an object where a slug belongs: unhashable
        return None
    if entry is None or not reading.keys() <= _READING_KEYS:
        return None
    ts = reading.get("ts")
    if type(ts) is not int or ts < min_ts or ts > max_ts:
        return None
    fields = reading.get("fields")
    if type(fields) is not dict:
        return None
    kind, prefix = entry
    plan = _field_plans.get((kind, tuple(fields)))
    if plan is None:
        return None
    parts = []
    # The schema's bounds (all within 64 bits and 1e16) also refuse inf and nan, and leave
    # float() of an int nothing to overflow: out of bounds, the full checks say why.
    for name, key, code, low, high in plan:
        value = fields[name]
        vtype = type(value)
        if code == _FLOAT:
            if vtype is int:
                if not low <= value <= high:
                    return None
                value = float(value)
            elif vtype is not float or not low <= value <= high:
                return None
            parts.append(key + repr(value))
        else:
            if vtype is not int or not low <= value <= high:
                return None
            parts.append(f"{key}{value}i")
    return f"{prefix} {','.join(parts)} {ts}"


def learn(reading: dict[str, Any], line: str, prefixes: Prefixes) -> None:
    """Remember the tag set and field names of a reading the full checks accepted (*line* is its text)."""
    kind = reading["kind"]
    prefixes[(kind, reading.get("device"), reading.get("string"))] = (kind, line[: line.index(" ")])
    names = tuple(reading["fields"])
    if (kind, names) not in _field_plans:
        if len(_field_plans) >= _PLAN_CACHE_MAX:
            _field_plans.clear()
        _field_plans[(kind, names)] = _field_plan(kind, names)
