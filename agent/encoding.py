"""The written forms of what ``agent.schema`` defines: compact JSON and InfluxDB line protocol.

A reading crosses two boundaries as text: the agent writes it as JSON (into the
spool, then into a ``readings`` message), the ingest writes it as line protocol
(to InfluxDB). Both texts are written here, from the schema's field types, and
nowhere else:

* :func:`reading_json` — a :class:`~agent.schema.Reading` as compact JSON, byte
  for byte what the json module writes for ``Reading.to_dict()``, three times
  faster (the edge writes one per device per poll on a Raspberry Pi);
* :func:`line` — one line of line protocol; :func:`escape_key` and
  :func:`field_text` are the pieces the ingest's fast path reuses, so the two
  paths cannot drift apart (``tests/test_ingest_fastpath.py`` compares them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring

from agent.schema import READING_MEASUREMENT, Reading

encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
"""Compact JSON, NaN refused; built once (``json.dumps`` with options builds an encoder per call)."""

# --------------------------------------------------------------------------- a reading as JSON

_INF = float("inf")

_FIELD_TYPES: dict[str, dict[str, type]] = {
    kind: {f.name: float if f.type == "float" else int for f in spec.fields}
    for kind, spec in READING_MEASUREMENT.items()
}
"""Field name -> Python type per reading kind, from the schema, looked up once (not per value)."""

_FIELD_KEYS: dict[str, dict[str, tuple[str, bool]]] = {
    kind: {name: (encode_basestring(name) + ":", typ is float) for name, typ in types.items()}
    for kind, types in _FIELD_TYPES.items()
}
"""Field name -> (its JSON key with the colon, whether it is a float) per reading kind."""

_HEADS: dict[tuple[str, str, str | None], str] = {}
"""The text of a reading before its ``ts``, per (device, kind, string): a site has a few dozen."""

_HEADS_MAX = 4096

_float_repr = float.__repr__
_int_repr = int.__repr__
"""What the json module writes numbers with."""


def reading_json_reference(reading: Reading) -> str:
    """``Reading.to_dict`` through the json module: the definition :func:`reading_json` must match."""
    types = _FIELD_TYPES[reading.kind]
    out: dict[str, object] = {"device": reading.device, "kind": reading.kind}
    if reading.string is not None:
        out["string"] = reading.string
    out["ts"] = reading.ts
    out["fields"] = {name: types[name](value) for name, value in reading.fields.items()}
    return encode_json(out)


def _head(device: str, kind: str, string: str | None) -> str:
    key = (device, kind, string)
    head = _HEADS.get(key)
    if head is None:
        head = encode_json({"device": device, "kind": kind, **({"string": string} if string is not None else {})})
        head = head[:-1] + ","  # open object: '{"device":…,"kind":…,'
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[key] = head
    return head


def reading_json(reading: Reading) -> str:
    """``Reading.to_dict`` as compact JSON, written directly from the schema's field types.

    Byte for byte what ``json.dumps(reading.to_dict(), separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` gives (property-tested against
    :func:`reading_json_reference`), the same ``KeyError`` for a field the schema
    does not know and the same ``ValueError`` for NaN or infinity, but about three
    times faster: the keys are escaped once, the device part once per device, and
    each number is written by ``float.__repr__`` / ``int.__repr__`` as the json
    module does. A ``ts`` that is not a plain ``int`` goes through the json module.
    """
    keys = _FIELD_KEYS[reading.kind]
    ts = reading.ts
    if type(ts) is not int:
        return reading_json_reference(reading)
    parts = []
    for name, value in reading.fields.items():
        key, is_float = keys[name]
        if is_float:
            if type(value) is not float:
                value = float(value)
            if not -_INF < value < _INF:  # NaN or infinity, as the json module refuses them
                raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
            parts.append(key + _float_repr(value))
        else:
            parts.append(key + _int_repr(int(value)))
    return f'{_head(reading.device, reading.kind, reading.string)}"ts":{ts},"fields":{{{",".join(parts)}}}}}'


# --------------------------------------------------------------------------- line protocol


def escape_key(text: str) -> str:
    """A tag key, tag value or field key: backslash, comma, equals sign and space escaped."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def field_text(value: float | int | str) -> str:
    """A field value as line protocol writes it: ``"text"``, ``12i``, ``1.5`` (``repr`` of the float).

    A string field escapes only ``\\`` and ``"``: InfluxDB 1.x and 2.x read a raw newline inside
    the quotes as part of the value, but store ``\\n`` as a backslash and an n (issue 13.4).
    """
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return f"{value}i"
    return repr(float(value))


def line(measurement: str, tags: Iterable[tuple[str, str]], fields: Iterable[tuple[str, float | int | str]],
         ts_ms: int) -> str:
    """One point of line protocol; tags and fields in the order given, empty tag values left out."""
    tag_text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags if v != "")
    field_parts = ",".join(f"{escape_key(k)}={field_text(v)}" for k, v in fields)
    return f"{escape_measurement(measurement)}{tag_text} {field_parts} {ts_ms}"
