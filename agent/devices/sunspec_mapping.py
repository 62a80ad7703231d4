"""Which SunSpec points become which terril fields, and how to read them off a device.

The tables here are the only place that names SunSpec points; the field names on
the right come from ``agent.schema``. A :class:`BoundField` is a mapping placed on
one device: the point's absolute register address and its scale factor's,
computed once after discovery from the model definitions and the lengths the
device declared. A poll then only decodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agent.devices.sunspec_discovery import ModelBlock
from agent.devices.sunspec_models import HEADER_LENGTH, GroupDef, ModelDef, PointDef
from agent.devices.sunspec_types import (
    TYPES,
    apply_scale_factor,
    decode_registers,
    decode_scale_factor,
    round_float32,
)
from agent.modbus.plan import RegisterBlock, RegisterSpan, Table

Conversion = Literal["number", "int", "power_factor"]
"""number: a float in the point's unit; int: state and bit fields; power_factor: percent -> ratio."""


@dataclass(frozen=True)
class FieldMap:
    point: str
    field: str
    conversion: Conversion = "number"


INVERTER_MODELS = frozenset({101, 102, 103, 111, 112, 113})
"""Inverter monitoring models: integer + scale factor (10x) and float (11x), 1/split/3 phase."""
METER_MODELS = frozenset({201, 202, 203, 204, 211, 212, 213, 214})
MPPT_MODEL = 160
NAMEPLATE_MODEL = 120

INVERTER_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("W", "ac_power_w"),
    FieldMap("WH", "ac_energy_wh"),
    FieldMap("VA", "ac_apparent_power_va"),
    FieldMap("VAr", "ac_reactive_power_var"),
    FieldMap("PF", "ac_power_factor", "power_factor"),
    FieldMap("Hz", "ac_frequency_hz"),
    FieldMap("A", "ac_current_a"),
    FieldMap("PhVphA", "ac_voltage_an_v"),
    FieldMap("PhVphB", "ac_voltage_bn_v"),
    FieldMap("PhVphC", "ac_voltage_cn_v"),
    FieldMap("DCW", "dc_power_w"),
    FieldMap("DCV", "dc_voltage_v"),
    FieldMap("DCA", "dc_current_a"),
    FieldMap("TmpCab", "temp_cabinet_c"),
    FieldMap("TmpSnk", "temp_heatsink_c"),
    FieldMap("St", "state", "int"),
    FieldMap("Evt1", "events", "int"),
)

METER_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("W", "power_w"),  # SunSpec meters: positive = import, as our schema wants
    FieldMap("TotWhImp", "energy_import_wh"),
    FieldMap("TotWhExp", "energy_export_wh"),
    FieldMap("PF", "ac_power_factor", "power_factor"),
    FieldMap("Hz", "ac_frequency_hz"),
    FieldMap("A", "ac_current_a"),
    FieldMap("PhVphA", "ac_voltage_an_v"),
    FieldMap("PhVphB", "ac_voltage_bn_v"),
    FieldMap("PhVphC", "ac_voltage_cn_v"),
    FieldMap("Evt", "events", "int"),
)

MPPT_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("DCW", "dc_power_w"),
    FieldMap("DCV", "dc_voltage_v"),
    FieldMap("DCA", "dc_current_a"),
    FieldMap("DCWH", "dc_energy_wh"),
)

STATE_POINT = "St"
EVENT_POINTS = frozenset({"Evt1", "Evt"})


@dataclass(frozen=True)
class BoundField:
    """One field placed on a device: where its point and its scale factor are."""

    field: str
    point: PointDef
    address: int
    conversion: Conversion
    sf_address: int | None = None
    sf_fixed: int | None = None

    def spans(self, table: Table, max_registers: int) -> tuple[RegisterSpan, ...]:
        """The point with its scale factor as one atomic span, so both are read in one request
        (they then belong to the same moment). When they lie too far apart for one request
        (late modules of a big model 160), two spans: better two reads than none."""
        value_span = RegisterSpan(table, self.address, self.point.size)
        if self.sf_address is None:
            return (value_span,)
        start = min(self.address, self.sf_address)
        end = max(self.address + self.point.size, self.sf_address + 1)
        if end - start <= max_registers:
            return (RegisterSpan(table, start, end - start),)
        return (RegisterSpan(table, self.sf_address, 1), value_span)

    def raw(self, block: RegisterBlock, table: Table) -> int | float | str | None:
        """The point's value before scaling, or None (not read, or a sentinel)."""
        registers = block.get(table, self.address, self.point.size)
        return None if registers is None else decode_registers(self.point.type, registers)

    def value(self, block: RegisterBlock, table: Table) -> int | float | None:
        """The field value as the schema wants it, or None when it must be omitted."""
        raw = self.raw(block, table)
        if raw is None or isinstance(raw, str):
            return None
        if self.conversion == "int":
            return int(raw)
        sf: int | None = None
        if TYPES[self.point.type].scalable and isinstance(raw, int):
            if self.sf_address is not None:
                registers = block.get(table, self.sf_address, 1)
                sf = None if registers is None else decode_scale_factor(registers)
                if sf is None:
                    return None  # a value without its scale factor means nothing
            elif self.sf_fixed is not None:
                sf = self.sf_fixed
        if sf is not None:
            value = apply_scale_factor(int(raw), sf)
        elif self.point.type == "float32":
            value = round_float32(float(raw))
        else:
            value = float(raw)
        if self.conversion == "power_factor":
            return power_factor_ratio(value, self.point.units, sf)
        return value


def power_factor_ratio(value: float, units: str | None, sf: int | None) -> float:
    """SunSpec power factor -> ratio -1..1.

    Models 10x and 20x (and 11x) give percent (units "Pct"). The float meter
    models 21x declare units "PF", a ratio, but some devices still send percent:
    a magnitude above 1 cannot be a ratio, so it is read as percent.
    """
    if units == "Pct" or abs(value) > 1.0:
        value = value / 100.0
        return round(value, -sf + 2) if sf is not None and sf < 0 else round_float32(value)
    return value


def _within(block: ModelBlock, model_offset: int, size: int) -> bool:
    """True when the registers lie inside the length the device declared (points beyond L are missing)."""
    return model_offset + size <= HEADER_LENGTH + block.length


def _bind(
    fmap: FieldMap,
    model: ModelDef,
    block: ModelBlock,
    group: GroupDef,
    group_offset: int,
) -> BoundField | None:
    """Place *fmap* on the device; None when the model lacks the point or the device cut it off."""
    point = group.point(fmap.point)
    if point is None or not _within(block, group_offset + point.offset, point.size):
        return None
    sf_address: int | None = None
    if point.sf is not None:
        sf_point, sf_group_offset = group.point(point.sf), group_offset
        if sf_point is None:  # as in pysunspec2: the group first, then the model's fixed points
            sf_point, sf_group_offset = model.point(point.sf), 0
        if sf_point is None or not _within(block, sf_group_offset + sf_point.offset, sf_point.size):
            return None
        sf_address = block.address + sf_group_offset + sf_point.offset
    return BoundField(
        field=fmap.field,
        point=point,
        address=block.address + group_offset + point.offset,
        conversion=fmap.conversion,
        sf_address=sf_address,
        sf_fixed=point.sf_fixed,
    )


def bind_fixed(fields: Iterable[FieldMap], model: ModelDef, block: ModelBlock) -> tuple[BoundField, ...]:
    """Bind mappings of the model's fixed (non-repeating) points."""
    bound = (_bind(f, model, block, model.group, 0) for f in fields)
    return tuple(b for b in bound if b is not None)


def bind_repeating(
    fields: Iterable[FieldMap], model: ModelDef, block: ModelBlock
) -> tuple[tuple[BoundField, ...], ...]:
    """Bind mappings in each instance of the model's repeating group (e.g. each model-160 module)."""
    group = model.repeating_group
    if group is None:
        return ()
    fields = tuple(fields)
    instances = []
    for index in range(model.repeat_count(block.length)):
        offset = model.fixed_length + index * group.length
        bound = (_bind(f, model, block, group, offset) for f in fields)
        instances.append(tuple(b for b in bound if b is not None))
    return tuple(instances)


def decode_fields(bound: Iterable[BoundField], block: RegisterBlock, table: Table) -> dict[str, float | int]:
    """The fields that have a value in this poll (sentinels and missing scale factors omitted)."""
    out: dict[str, float | int] = {}
    for b in bound:
        value = b.value(block, table)
        if value is not None:
            out[b.field] = value
    return out


def event_code(symbol_name: str) -> str:
    """A stable event code from a SunSpec symbol name.

    The meter definitions spell the same bit differently (``Power_Failure`` in
    model 201, ``M_EVENT_Power_Failure`` in 203): drop the prefix and upper-case,
    so a fault has one code whatever the meter model (``POWER_FAILURE``).
    """
    return symbol_name.removeprefix("M_EVENT_").upper()


def event_text(code: str, point: PointDef, bit: int, model_id: int) -> str:
    """Readable text for an event bit: the symbol's label, else its name made readable."""
    symbol = point.symbol_by_value(bit)
    label = symbol.label if symbol is not None and symbol.label else None
    if label is None:
        words = code.replace("_", " ").strip()
        label = words[:1].upper() + words[1:].lower() if words else code
    return f"{label} (SunSpec model {model_id} {point.name} bit {bit})"


def active_bits(point: PointDef, value: int, model_id: int) -> dict[str, str]:
    """Event code -> text for every bit set in *value* of the bitfield *point*."""
    events: dict[str, str] = {}
    for bit in range(point.size * 16):
        if value >> bit & 1:
            symbol = point.symbol_by_value(bit)
            code = event_code(symbol.name) if symbol is not None else f"{point.name.upper()}_BIT_{bit}"
            events[code] = event_text(code, point, bit, model_id)
    return events
