"""The official SunSpec model definitions, as small frozen typed objects.

The definitions are the JSON files pysunspec2 ships (``sunspec2/models/json/
model_<id>.json``, maintained by the SunSpec Alliance). We only *read* them:
decoding is ours (``sunspec_types``), so no code in terril names a register
address — every offset comes from these definitions and every model's real
length from the device.

Offsets are in registers from the start of the model, the ``ID`` register being
offset 0 and ``L`` offset 1, so the first data point is at offset 2. Points of a
repeating group have offsets relative to the start of one group instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from agent.devices.sunspec_types import TYPES

HEADER_LENGTH = 2
"""``ID`` and ``L``: the two registers in front of every model, not counted in ``L``."""

END_MODEL_ID = 0xFFFF

Access = Literal["R", "RW"]


@dataclass(frozen=True)
class SymbolDef:
    """One enum value or bitfield bit (``value`` is the bit number for bitfields)."""

    name: str
    value: int
    label: str | None = None


@dataclass(frozen=True)
class PointDef:
    name: str
    type: str
    size: int
    offset: int
    """Registers from the start of the model (fixed points) or of the group instance (repeating)."""
    sf: str | None = None
    """Name of the ``sunssf`` point that scales this one."""
    sf_fixed: int | None = None
    """A constant scale factor given by the definition instead of a point."""
    units: str | None = None
    symbols: tuple[SymbolDef, ...] = ()
    access: Access = "R"
    label: str | None = None
    mandatory: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size

    def symbol_by_value(self, value: int) -> SymbolDef | None:
        for symbol in self.symbols:
            if symbol.value == value:
                return symbol
        return None


@dataclass(frozen=True)
class GroupDef:
    name: str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()
    count: int | str | None = None
    """None: a plain group. 0: repeats as often as the model length allows. A name: the count point."""
    length: int = 0
    """Registers of one instance (its points and its fixed-size sub-groups)."""

    @property
    def repeating(self) -> bool:
        return self.count is not None

    def point(self, name: str) -> PointDef | None:
        for point in self.points:
            if point.name == name:
                return point
        return None


@dataclass(frozen=True)
class ModelDef:
    id: int
    name: str
    label: str | None
    group: GroupDef
    """The top-level group: its points are the model's fixed points (``ID`` and ``L`` first)."""
    fixed_length: int = field(init=False)
    """Registers of the fixed part, header included: where the first repeating group starts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed_length", sum(p.size for p in self.group.points))

    @property
    def points(self) -> tuple[PointDef, ...]:
        return self.group.points

    def point(self, name: str) -> PointDef | None:
        return self.group.point(name)

    @property
    def repeating_group(self) -> GroupDef | None:
        """The model's only repeating group (e.g. model 160's ``module``), if it has exactly one."""
        repeating = [g for g in self.group.groups if g.repeating]
        return repeating[0] if len(repeating) == 1 else None

    def repeat_count(self, model_length: int) -> int:
        """How many whole instances of the repeating group fit in a model of ``L`` = *model_length*."""
        group = self.repeating_group
        if group is None or group.length == 0:
            return 0
        return max(0, (model_length + HEADER_LENGTH - self.fixed_length) // group.length)


def _fixed_sf(raw: Any) -> tuple[str | None, int | None]:
    if raw is None:
        return None, None
    if isinstance(raw, int):
        return None, raw
    try:
        return None, int(str(raw))
    except ValueError:
        return str(raw), None


def _point(raw: dict[str, Any], offset: int, model_id: int) -> PointDef:
    point_type = raw["type"]
    if point_type not in TYPES:
        raise ValueError(f"model {model_id}: point {raw['name']!r} has unknown type {point_type!r}")
    size = int(raw.get("size") or TYPES[point_type].size or 0)
    sf, sf_fixed = _fixed_sf(raw.get("sf"))
    return PointDef(
        name=raw["name"],
        type=point_type,
        size=size,
        offset=offset,
        sf=sf,
        sf_fixed=sf_fixed,
        units=raw.get("units"),
        symbols=tuple(
            SymbolDef(s["name"], int(s["value"]), s.get("label")) for s in raw.get("symbols") or ()
        ),
        access="RW" if raw.get("access") == "RW" else "R",
        label=raw.get("label"),
        mandatory=raw.get("mandatory") == "M",
    )


def _group(raw: dict[str, Any], model_id: int) -> GroupDef:
    points: list[PointDef] = []
    offset = 0
    for raw_point in raw.get("points") or ():
        point = _point(raw_point, offset, model_id)
        points.append(point)
        offset += point.size
    groups = tuple(_group(g, model_id) for g in raw.get("groups") or ())
    # Fixed-size sub-groups add to this group's length; repeating ones have no static length.
    length = offset + sum(g.length for g in groups if not g.repeating)
    count = raw.get("count")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    return GroupDef(name=raw["name"], points=tuple(points), groups=groups, count=count, length=length)


def parse_model(data: dict[str, Any]) -> ModelDef:
    """Build a :class:`ModelDef` from the JSON of one official model definition."""
    model_id = int(data["id"])
    group = _group(data["group"], model_id)
    return ModelDef(id=model_id, name=group.name, label=data["group"].get("label"), group=group)


@cache
def model_def(model_id: int) -> ModelDef | None:
    """The definition of SunSpec model *model_id*, or None for a model SunSpec does not publish
    (vendor models 64xxx mostly). Loaded once per process."""
    try:
        text = (resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return None
    return parse_model(json.loads(text))


@cache
def known_model_ids() -> tuple[int, ...]:
    """Ids of every model definition shipped by pysunspec2."""
    folder = resources.files("sunspec2") / "models" / "json"
    ids = []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith("model_") and name.endswith(".json"):
            stem = name[len("model_") : -len(".json")]
            if stem.isdigit():
                ids.append(int(stem))
    return tuple(sorted(ids))
