"""Encode SunSpec model blocks into Modbus registers, from the official model definitions.

The simulator must present register images that a real SunSpec device would:
the layout of every model comes from the JSON definitions shipped by pysunspec2
(``sunspec2/models/json/model_<id>.json``), never from register numbers written
in our code. Values are given in engineering units (W, V, Wh …); this module
chooses or applies the scale factors and writes the "not implemented" sentinel
of its type for every point that is not given, exactly as the SunSpec
specification asks, so the agent's decoder meets the same sentinels as in the field.

This is an *encoder*; the agent's decoder lives in ``agent/devices`` and is
written independently, so the two check each other in the tests (and pysunspec2's
own decoder checks both).
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

SUNS_MARKER = (0x5375, 0x6E53)
"""The two registers spelling "SunS" that start every SunSpec register map."""
END_MODEL_ID = 0xFFFF
BASE_ADDRESSES = (40000, 50000, 0)
"""Where SunSpec devices put "SunS", in the order discovery tries them."""

# Raw sentinel written for a point that is not implemented, per point type (SunSpec spec).
_SENTINEL: dict[str, int] = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "count": 0xFFFF,
    "acc16": 0,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "sunssf": 0x8000,
    "pad": 0x8000,
    "int32": 0x80000000,
    "uint32": 0xFFFFFFFF,
    "acc32": 0,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "ipaddr": 0,
    "float32": 0x7FC00000,
    "int64": 0x8000000000000000,
    "uint64": 0xFFFFFFFFFFFFFFFF,
    "acc64": 0,
    "float64": 0x7FF8000000000000,
    "ipv6addr": 0,
    "eui48": 0xFFFFFFFFFFFFFFFF,
}
# (minimum, maximum) raw integer value of a point type; the sentinel itself is excluded.
_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-0x7FFF, 0x7FFF),
    "uint16": (0, 0xFFFE),
    "count": (0, 0xFFFE),
    "acc16": (0, 0xFFFF),
    "enum16": (0, 0xFFFE),
    "bitfield16": (0, 0x7FFF),
    "sunssf": (-10, 10),
    "int32": (-0x7FFFFFFF, 0x7FFFFFFF),
    "uint32": (0, 0xFFFFFFFE),
    "acc32": (0, 0xFFFFFFFF),
    "enum32": (0, 0xFFFFFFFE),
    "bitfield32": (0, 0x7FFFFFFF),
    "int64": (-0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF),
    "uint64": (0, 0xFFFFFFFFFFFFFFFE),
    "acc64": (0, 0xFFFFFFFFFFFFFFFF),
}
_ACCUMULATORS = {"acc16", "acc32", "acc64"}
_SIGNED = {"int16", "int32", "int64", "sunssf"}
SF_CHOICES = range(-3, 11)
"""Scale factors tried, finest first, when the caller does not pin one."""


class EncodeError(ValueError):
    """A value cannot be written into its point (wrong type, out of range, unknown point)."""


@dataclass(frozen=True)
class PointDef:
    name: str
    type: str
    size: int
    """Registers taken by the point."""
    sf: str | int | None
    """Name of the scale factor point, a fixed exponent, or None."""
    fixed_value: int | None
    """Value the definition fixes (the ``ID`` point)."""
    symbols: Mapping[str, int]


@dataclass(frozen=True)
class GroupDef:
    name: str
    points: tuple[PointDef, ...]
    count: str | int
    """Repetitions: a fixed number, 0 for "as many as fit in L", or the name of the point holding it."""

    @property
    def length(self) -> int:
        return sum(p.size for p in self.points)


@dataclass(frozen=True)
class ModelDef:
    """One SunSpec model as defined by the SunSpec Alliance (top-level points and repeating groups)."""

    id: int
    name: str
    points: tuple[PointDef, ...]
    """Top-level points after the ``ID`` and ``L`` header."""
    groups: tuple[GroupDef, ...]

    @property
    def fixed_length(self) -> int:
        return sum(p.size for p in self.points)

    def point(self, name: str) -> PointDef:
        for p in self.points:
            if p.name == name:
                return p
        for g in self.groups:
            for p in g.points:
                if p.name == name:
                    return p
        raise KeyError(name)


def _point(raw: Mapping[str, Any]) -> PointDef:
    value = raw.get("value")
    return PointDef(
        name=str(raw["name"]),
        type=str(raw["type"]),
        size=int(raw["size"]),
        sf=raw.get("sf"),
        fixed_value=int(value) if isinstance(value, int) else None,
        symbols={str(s["name"]): int(s["value"]) for s in raw.get("symbols", ())},
    )


@cache
def load_model_def(model_id: int) -> ModelDef:
    """Read ``model_<id>.json`` from the installed pysunspec2 package (cached)."""
    path = importlib.resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EncodeError(f"SunSpec model {model_id} has no definition in pysunspec2") from None
    group = raw["group"]
    points = tuple(_point(p) for p in group["points"] if p["name"] not in ("ID", "L"))
    groups = []
    for g in group.get("groups", ()):
        if g.get("groups"):
            raise EncodeError(f"SunSpec model {model_id}: nested repeating groups are not supported")
        groups.append(GroupDef(str(g["name"]), tuple(_point(p) for p in g["points"]), g.get("count", 1)))
    return ModelDef(int(raw["id"]), str(group["name"]), points, tuple(groups))


def _words(value: int, size: int) -> list[int]:
    value &= (1 << (16 * size)) - 1
    return [(value >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def _fits(ptype: str, raw: int) -> bool:
    lo, hi = _RANGE[ptype]
    return lo <= raw <= hi


def _raw_number(model_id: int, p: PointDef, value: Any, sf: int) -> int:
    where = f"model {model_id} point {p.name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and value in p.symbols:
            return p.symbols[value]
        raise EncodeError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise EncodeError(f"{where}: {value!r} is not a finite number")
    scaled = value / (10.0**sf)
    raw = math.floor(scaled + 1e-9) if p.type in _ACCUMULATORS else round(scaled)
    if p.type in _ACCUMULATORS:
        if raw < 0:
            raise EncodeError(f"{where}: an accumulator cannot be negative ({value!r})")
        return int(raw) % (1 << (16 * p.size))  # accumulators roll over, as on a device
    if not _fits(p.type, int(raw)):
        raise EncodeError(f"{where}: {value!r} does not fit a {p.type} with scale factor {sf}")
    return int(raw)


def _encode_point(model_id: int, p: PointDef, value: Any, sf: int) -> list[int]:
    where = f"model {model_id} point {p.name}"
    if value is None:
        if p.type == "string":
            return [0] * p.size
        if p.type not in _SENTINEL:
            raise EncodeError(f"{where}: unknown SunSpec type {p.type!r}")
        return _words(_SENTINEL[p.type], p.size)
    if p.type == "string":
        data = str(value).encode("utf-8")
        if len(data) > 2 * p.size:
            raise EncodeError(f"{where}: {value!r} is longer than {2 * p.size} bytes")
        data = data.ljust(2 * p.size, b"\0")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if p.type == "float32":
        return _words(struct.unpack(">I", struct.pack(">f", float(value)))[0], 2)
    if p.type == "float64":
        return _words(struct.unpack(">Q", struct.pack(">d", float(value)))[0], 4)
    if p.type in ("ipaddr", "ipv6addr"):
        return _words(int(ipaddress.ip_address(value)), p.size)
    if p.type == "eui48":
        return _words(int(str(value).replace(":", "").replace("-", ""), 16), p.size)
    if p.type == "pad":
        return _words(int(value), p.size)
    return _words(_raw_number(model_id, p, value, sf), p.size)


def _choose_sf(model_id: int, sf_name: str, users: list[tuple[PointDef, float]]) -> int:
    """The finest scale factor with which every value using ``sf_name`` fits its point."""
    for sf in SF_CHOICES:
        ok = True
        for p, value in users:
            raw = round(value / (10.0**sf))
            if p.type in _ACCUMULATORS:
                ok = 0 <= raw < (1 << (16 * p.size))
            elif p.type in _RANGE:
                ok = _fits(p.type, raw)
            if not ok:
                break
        if ok:
            return sf
    names = ", ".join(p.name for p, _ in users)
    raise EncodeError(f"model {model_id}: no scale factor {sf_name} fits the values of {names}")


def encode_model(
    model_id: int,
    values: Mapping[str, Any],
    *,
    repeats: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    length: int | None = None,
) -> list[int]:
    """Registers of one model block, ``ID`` and ``L`` header included.

    ``values`` maps top-level point names to engineering values (strings for
    string points, symbol names or ints for enums/bitfields). A scale factor
    point (``W_SF``) given in ``values`` is used as is; otherwise the finest one
    that fits every value using it is chosen. Points not given get their
    "not implemented" sentinel. ``repeats`` gives the instances of each
    repeating group (``{"module": [{…}, {…}]}`` for model 160); its count point
    (``N``) is filled in. ``length`` overrides the block length ``L`` (e.g. 65
    for model 1 as SolarEdge inverters send it): the block is cut or padded.
    """
    mdef = load_model_def(model_id)
    repeats = dict(repeats or {})
    known = {p.name for p in mdef.points}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EncodeError(f"model {model_id} has no point(s) {', '.join(unknown)}")
    unknown_groups = sorted(set(repeats) - {g.name for g in mdef.groups})
    if unknown_groups:
        raise EncodeError(f"model {model_id} has no repeating group(s) {', '.join(unknown_groups)}")

    top: dict[str, Any] = dict(values)
    for g in mdef.groups:
        instances = repeats.get(g.name, ())
        if isinstance(g.count, str):
            top[g.count] = len(instances)
        elif g.count == 0:  # "as many as the block length holds"; the count point (N) says how many
            for p in mdef.points:
                if p.type == "count":
                    top[p.name] = len(instances)
        elif len(instances) not in (0, g.count):
            raise EncodeError(f"model {model_id} group {g.name} has exactly {g.count} instance(s)")
        for i, inst in enumerate(instances):
            bad = sorted(set(inst) - {p.name for p in g.points})
            if bad:
                raise EncodeError(f"model {model_id} group {g.name}[{i}] has no point(s) {', '.join(bad)}")

    # Scale factors: pinned by the caller, or chosen so every value that uses them fits.
    users: dict[str, list[tuple[PointDef, float]]] = {}
    all_values: list[tuple[PointDef, Any]] = [(p, top.get(p.name)) for p in mdef.points]
    for g in mdef.groups:
        for inst in repeats.get(g.name, ()):
            all_values += [(p, inst.get(p.name)) for p in g.points]
    for p, value in all_values:
        if isinstance(p.sf, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
            users.setdefault(p.sf, []).append((p, float(value)))
    for sf_name, sf_users in users.items():
        if top.get(sf_name) is None:
            top[sf_name] = _choose_sf(model_id, sf_name, sf_users)

    def sf_of(p: PointDef) -> int:
        if isinstance(p.sf, int):
            return p.sf
        if isinstance(p.sf, str):
            return int(top.get(p.sf) or 0)
        return 0

    body: list[int] = []
    for p in mdef.points:
        body += _encode_point(model_id, p, top.get(p.name), sf_of(p))
    for g in mdef.groups:
        for inst in repeats.get(g.name, ()):
            for p in g.points:
                body += _encode_point(model_id, p, inst.get(p.name), sf_of(p))
    if length is not None:
        body = body[:length] + [0] * max(0, length - len(body))
    return [model_id, len(body), *body]


def encode_chain(blocks: Sequence[Sequence[int]]) -> list[int]:
    """A whole SunSpec map: "SunS", the model blocks back to back, then the end marker."""
    out = list(SUNS_MARKER)
    for block in blocks:
        out += block
    out += [END_MODEL_ID, 0]
    return out


@dataclass(frozen=True)
class RegisterImage:
    """A contiguous run of holding registers starting at ``base`` (what a unit serves)."""

    base: int
    registers: tuple[int, ...]

    def read(self, address: int, count: int) -> list[int] | None:
        """The registers ``address .. address+count-1``, or None if any is outside the image."""
        start = address - self.base
        if start < 0 or count < 1 or start + count > len(self.registers):
            return None
        return list(self.registers[start : start + count])


def symbol_value(model_id: int, point: str, symbol: str) -> int:
    """Value of an enum symbol or bit number of a bitfield symbol (e.g. 103, Evt1, GROUND_FAULT -> 0)."""
    p = load_model_def(model_id).point(point)
    try:
        return p.symbols[symbol]
    except KeyError:
        raise EncodeError(
            f"model {model_id} point {point} has no symbol {symbol!r}; known: {', '.join(p.symbols)}"
        ) from None
