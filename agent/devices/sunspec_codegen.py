"""The fast path of SunSpec decoding: each device's layout compiled, then one decoding function generated.

``agent.devices.sunspec_mapping`` binds SunSpec points to terril fields and
decodes them field by field (:meth:`~agent.devices.sunspec_mapping.BoundField.value`,
the reference). This module turns a bound layout into straight-line Python once
per device, after discovery: :func:`compile_fields` places each field among the
poll's read requests (a typed :class:`CompiledField`), :func:`build_decoder`
writes and compiles the function. Tests prove both give exactly the reference's
values (``tests/test_sunspec_compiled.py``, ``tests/test_sunspec_generated.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, cast

from agent.devices.sunspec_mapping import BoundField, power_factor_ratio
from agent.devices.sunspec_types import TYPES
from agent.modbus.plan import RegisterBlock, Table

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

    A NamedTuple: typed and named for readers, yet unpacked like the plain tuple it
    was by :func:`build_decoder`, and compared and hashed by value (layouts are cached).
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
    namespace: dict[str, object] = {"_sfget": _SCALES.get, "_NO": _NO_SCALE, "_pf": power_factor_ratio}
    lines = ["def decode(block, table):", "    get = block.get"]
    for i, (address, count) in enumerate(requests):
        lines += [f"    c{i} = get(table, {address}, {count})", f"    if c{i} is None:", "        return None"]
    groups = (fields, *strings)
    scale_vars = _scale_factor_lines(groups, lines)
    outs = []
    for gi, group in enumerate(groups):
        out = f"o{gi}"
        outs.append(out)
        lines.append(f"    {out} = {{}}")
        for fi, f in enumerate(group):
            if f.request < 0:  # the reference path
                ref = f"_b{gi}_{fi}"
                namespace[ref] = f.bound
                lines += [f"    v = {ref}.value(block, table)", "    if v is not None:",
                          f"        {out}[{f.field!r}] = v"]
            else:
                lines += _field_lines(f, out, scale_vars)
    lines.append(f"    return {outs[0]}, [{', '.join(outs[1:])}]")
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<sunspec decoder>", "exec"), namespace)
    decoder = cast(GeneratedDecoder, namespace["decode"])
    setattr(decoder, "source", source)  # noqa: B010 - for tests and for reading what runs; not a declared attribute
    return decoder


def _scale_factor_lines(groups: tuple[tuple[CompiledField, ...], ...], lines: list[str]) -> dict[tuple[int, int], int]:
    """One line per scale factor register used (decoded once per poll); its variables' number per register."""
    scale_vars: dict[tuple[int, int], int] = {}
    for group in groups:
        for f in group:
            sf_at = (f.sf_request, f.sf_offset)
            if f.request >= 0 and f.conversion != 1 and f.scalable and f.sf_request >= 0 and sf_at not in scale_vars:
                k = scale_vars[sf_at] = len(scale_vars)
                lines.append(f"    m{k}, d{k}, s{k} = _sfget(c{f.sf_request}[{f.sf_offset}] & 0xFFFF, _NO)")
    return scale_vars


def _field_lines(f: CompiledField, out: str, scale_vars: dict[tuple[int, int], int]) -> list[str]:
    """The source that decodes one integer field placed in the responses into ``out[field]``."""
    ci, off = f.request, f.offset
    if f.size == 1:
        raw, half = f"(c{ci}[{off}] & 0xFFFF)", 0x8000
    else:
        raw, half = f"((c{ci}[{off}] & 0xFFFF) << 16 | (c{ci}[{off + 1}] & 0xFFFF))", 0x8000_0000
    lines = [f"    r = {raw}"]
    value = f"((r ^ {half}) - {half})" if f.signed else "r"  # two's complement without a branch
    condition = f"r != {f.sentinel}"
    key = repr(f.field)
    if f.conversion == 1:
        return [*lines, f"    if {condition}:", f"        {out}[{key}] = {value}"]
    if f.scalable and f.sf_request >= 0:
        k = scale_vars[(f.sf_request, f.sf_offset)]
        condition += f" and m{k} is not None"
        scaled, sf_expr = f"{value} * m{k} / d{k}", f"s{k}"
    elif f.scalable and f.sf_fixed is not None:
        sf = f.sf_fixed
        if -10 <= sf <= 10:
            mul, div, _ = _scale_of(sf)
            scaled = f"{value} * {mul!r} / {div!r}"
        else:  # outside what the table holds: the reference path's formula
            scaled = f"float({value} * 10**{sf})" if sf >= 0 else f"round({value} * 10.0**{sf}, {-sf})"
        sf_expr = repr(sf)
    else:
        scaled, sf_expr = f"float({value})", "None"
    if f.conversion == 2:
        scaled = f"_pf({scaled}, {f.units!r}, {sf_expr})"
    return [*lines, f"    if {condition}:", f"        {out}[{key}] = {scaled}"]
