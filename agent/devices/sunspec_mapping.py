"""Which SunSpec points become which terril fields, and how to read them off a device.

The tables here are the only place that names SunSpec points; the field names on
the right come from ``agent.schema``. A :class:`BoundField` is a mapping placed on
one device: the point's absolute register address and its scale factor's,
computed once after discovery from the model definitions and the lengths the
device declared. A poll then only decodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

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
            return _power_factor_ratio(value, self.point.units, sf)
        return value


def _power_factor_ratio(value: float, units: str | None, sf: int | None) -> float:
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


# ---------------------------------------------------------------------- compiled decoding
#
# ``BoundField.value`` is the reference: readable, one small function per step. A
# poll of an inverter decodes ~25 values, every poll of every device, so after
# discovery each bound field is also *compiled* into a flat tuple that says where
# its registers are among the plan's requests, and :func:`build_decoder` writes one
# decoding function from them (see "generated decoding" below). It gives exactly the
# values of ``decode_fields`` (tested on every point type, sentinel and scale factor);
# any field it cannot place (a value split across two requests, a string) uses the
# reference path.

_INTEGER_TYPES: dict[str, tuple[int, bool, int]] = {
    "int16": (1, True, 0x8000),
    "uint16": (1, False, 0xFFFF),
    "count": (1, False, 0xFFFF),
    "acc16": (1, False, 0),
    "enum16": (1, False, 0xFFFF),
    "bitfield16": (1, False, 0xFFFF),
    "sunssf": (1, True, 0x8000),
    "int32": (2, True, 0x8000_0000),
    "uint32": (2, False, 0xFFFF_FFFF),
    "acc32": (2, False, 0),
    "enum32": (2, False, 0xFFFF_FFFF),
    "bitfield32": (2, False, 0xFFFF_FFFF),
}
"""size, signed, sentinel of the integer types decoded inline (must agree with ``TYPES``)."""

_CONVERSIONS: dict[str, int] = {"number": 0, "int": 1, "power_factor": 2}

class CompiledField(NamedTuple):
    """Where one field's registers sit in the poll's responses, and how to decode them.

    A NamedTuple, not a dataclass: the code generator reads it by position
    (``f[8]``) and unpacks it, and it is compared and hashed as a plain tuple.
    ``request`` is -1 for a field decoded by the reference path (a type or a
    place the generated code does not handle inline), which uses ``bound``.
    """

    field: str
    request: int
    """Index of the read request holding the value, or -1 for the reference path."""
    offset: int
    """Register offset of the value inside that request."""
    size: int
    """Registers (1 or 2)."""
    signed: bool
    sentinel: int
    """The raw value meaning "not implemented"."""
    conversion: int
    """``_CONVERSIONS`` code: plain number, integer, power factor."""
    scalable: bool
    sf_request: int
    """Request holding the scale factor register, or -1 (no scale factor register)."""
    sf_offset: int
    sf_fixed: int | None
    """A scale factor fixed by the model, when it has no register."""
    units: str | None
    bound: BoundField


def _locate(requests: list[tuple[int, int]], address: int, size: int) -> tuple[int, int] | None:
    """(request index, offset) of registers ``address..address+size-1`` inside one request."""
    for index, (start, count) in enumerate(requests):
        if start <= address and address + size <= start + count:
            return index, address - start
    return None


def compile_fields(bound: Iterable[BoundField], requests: list[tuple[int, int]]) -> tuple[CompiledField, ...]:
    """Compile bound fields against the plan's requests ((address, count) of one table, in order)."""
    out: list[CompiledField] = []
    for b in bound:
        spec = _INTEGER_TYPES.get(b.point.type)
        where = _locate(requests, b.address, b.point.size) if spec is not None else None
        sf_where = _locate(requests, b.sf_address, 1) if b.sf_address is not None else None
        if spec is None or where is None or spec[0] != b.point.size or (b.sf_address is not None and sf_where is None):
            out.append(CompiledField(b.field, -1, 0, 0, False, 0, 0, False, -1, 0, None, None, b))
            continue
        size, signed, sentinel = spec
        out.append(CompiledField(
            b.field, where[0], where[1], size, signed, sentinel, _CONVERSIONS[b.conversion],
            TYPES[b.point.type].scalable,
            sf_where[0] if sf_where is not None else -1, sf_where[1] if sf_where is not None else 0,
            b.sf_fixed, b.point.units, b,
        ))
    return tuple(out)


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


# ---------------------------------------------------------------------- generated decoding
#
# Interpreting a tuple per field at every poll, with a ``round`` for every scaled
# value, cost ~12 us per inverter poll. A layout is fixed after discovery, so
# :func:`build_decoder` writes the Python source of one
# function for the whole layout (straight-line code, one block per field) and
# compiles it once. Three things make it cheaper than the loop, each exact:
#
# * every scale factor register is decoded once per poll, not once per field
#   that uses it (model 160's modules all share the model's four);
# * ``round(raw * 10.0**sf, -sf)`` is replaced by ``raw / 10.0**-sf``: both give
#   the float nearest to the decimal ``raw x 10^sf`` (``round`` rounds the
#   slightly-off product back to that decimal; a division of two exact floats is
#   correctly rounded), and ``raw * 10.0**sf`` for sf >= 0 is ``float(raw * 10**sf)``;
# * no tuple unpacking, no per-field branches on the type: the type is known
#   when the source is written.
#
# It gives exactly the values of ``decode_fields`` (property test in
# tests/test_sunspec_compiled.py); fields it cannot place keep the reference path.

_NO_SCALE: tuple[None, None, None] = (None, None, None)

_SCALES: dict[int, tuple[float, float, int]] = {
    sf & 0xFFFF: ((float(10**sf), 1.0, sf) if sf >= 0 else (1.0, float(10**-sf), sf)) for sf in range(-10, 11)
}
"""Raw ``sunssf`` register -> (multiplier, divisor, sf) for the scale factors SunSpec allows."""

GeneratedDecoder = Callable[
    [RegisterBlock, Table], "tuple[dict[str, float | int], list[dict[str, float | int]]] | None"
]
"""``decoder(block, table)`` -> (fields, one dict per MPPT module), or None when the plan was not read in full."""


def _scale_of(sf: int) -> tuple[float, float, int]:
    return _SCALES[sf & 0xFFFF]


def build_decoder(
    requests: tuple[tuple[int, int], ...],
    fields: tuple[CompiledField, ...],
    strings: tuple[tuple[CompiledField, ...], ...],
) -> GeneratedDecoder:
    """Write and compile one decoding function for a compiled layout (see the comment above)."""
    namespace: dict[str, object] = {"_sfget": _SCALES.get, "_NO": _NO_SCALE, "_pf": _power_factor_ratio}
    lines = ["def decode(block, table):", "    get = block.get"]
    for i, (address, count) in enumerate(requests):
        lines += [f"    c{i} = get(table, {address}, {count})", f"    if c{i} is None:", "        return None"]
    scale_vars: dict[tuple[int, int], int] = {}
    for group in (fields, *strings):
        for f in group:
            if f[1] >= 0 and f[6] != 1 and f[7] and f[8] >= 0 and (f[8], f[9]) not in scale_vars:
                k = scale_vars[(f[8], f[9])] = len(scale_vars)
                lines.append(f"    m{k}, d{k}, s{k} = _sfget(c{f[8]}[{f[9]}] & 0xFFFF, _NO)")
    outs = []
    for gi, group in enumerate((fields, *strings)):
        out = f"o{gi}"
        outs.append(out)
        lines.append(f"    {out} = {{}}")
        for fi, entry in enumerate(group):
            name, ci, off, size, signed, sentinel, conversion, scalable, sfi, sfo, sf_fixed, units, b = entry
            key = repr(name)
            if ci < 0:  # the reference path
                ref = f"_b{gi}_{fi}"
                namespace[ref] = b
                lines += [f"    v = {ref}.value(block, table)", "    if v is not None:", f"        {out}[{key}] = v"]
                continue
            if size == 1:
                raw, half = f"(c{ci}[{off}] & 0xFFFF)", 0x8000
            else:
                raw, half = f"((c{ci}[{off}] & 0xFFFF) << 16 | (c{ci}[{off + 1}] & 0xFFFF))", 0x8000_0000
            lines.append(f"    r = {raw}")
            value = f"((r ^ {half}) - {half})" if signed else "r"  # two's complement without a branch
            condition = f"r != {sentinel}"
            if conversion == 1:
                lines += [f"    if {condition}:", f"        {out}[{key}] = {value}"]
                continue
            if scalable and sfi >= 0:
                k = scale_vars[(sfi, sfo)]
                condition += f" and m{k} is not None"
                scaled, sf_expr = f"{value} * m{k} / d{k}", f"s{k}"
            elif scalable and sf_fixed is not None:
                mul, div, sf = _scale_of(sf_fixed) if -10 <= sf_fixed <= 10 else (None, None, sf_fixed)
                if mul is None:  # outside what the table holds: the reference path's formula
                    scaled = (f"float({value} * 10**{sf})" if sf >= 0 else f"round({value} * 10.0**{sf}, {-sf})")
                else:
                    scaled = f"{value} * {mul!r} / {div!r}"
                sf_expr = repr(sf)
            else:
                scaled, sf_expr = f"float({value})", "None"
            if conversion == 2:
                scaled = f"_pf({scaled}, {units!r}, {sf_expr})"
            lines += [f"    if {condition}:", f"        {out}[{key}] = {scaled}"]
    lines.append(f"    return {outs[0]}, [{', '.join(outs[1:])}]")
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<sunspec decoder>", "exec"), namespace)
    decoder = cast(GeneratedDecoder, namespace["decode"])
    setattr(decoder, "source", source)  # noqa: B010 - for tests and for reading what runs; not a declared attribute
    return decoder
