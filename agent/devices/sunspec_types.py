"""SunSpec point types: one table maps each type to its size, its decoder and its sentinel.

In the spirit of pysunspec2's ``mb.point_type_info``: no code elsewhere knows how
an ``int16`` or an ``acc32`` is laid out in registers. Every decoder takes the
point's registers (big-endian 16-bit words, most significant first, as SunSpec
requires) and returns the value, or None when the registers hold the type's
"not implemented" sentinel. Decoders are pure functions and never raise on any
register content: a device can put garbage in any register.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PointValue = int | float | str
Decoder = Callable[[Sequence[int]], PointValue | None]


def _unsigned(registers: Sequence[int]) -> int:
    value = 0
    for register in registers:
        value = (value << 16) | (register & 0xFFFF)
    return value


def _signed(registers: Sequence[int]) -> int:
    bits = 16 * len(registers)
    value = _unsigned(registers)
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _integer(signed: bool, sentinel: int) -> Decoder:
    """An integer type whose raw register value *sentinel* means "not implemented"."""

    def decode(registers: Sequence[int]) -> int | None:
        raw = _unsigned(registers)
        if raw == sentinel:
            return None
        return _signed(registers) if signed else raw

    return decode


def _float(fmt: str) -> Decoder:
    """IEEE 754 big-endian; NaN (the SunSpec sentinel) and infinities decode to None."""

    def decode(registers: Sequence[int]) -> float | None:
        (value,) = struct.unpack(fmt, struct.pack(f">{len(registers)}H", *(r & 0xFFFF for r in registers)))
        return float(value) if math.isfinite(value) else None

    return decode


def printable(text: str) -> str:
    """*text* with every character that is not printable (CR, LF, ESC, other controls, line and
    paragraph separators, bidi overrides) written as its Python escape: ``"S\\r\\nERROR"``.

    A device can put anything in a string register; what it says is logged, published and
    shown, so it must never start a forged log line or hide text on a terminal (issue 13.6).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def register_text(registers: Sequence[int]) -> str | None:
    """Two characters per register; trailing NULs and spaces are padding; all NUL means missing.

    UTF-8 (invalid bytes become U+FFFD), then made :func:`printable`: the one decoder of device
    strings, SunSpec (model 1 Mn, Md, Opt, Vr, SN …) and register profiles alike.
    """
    raw = b"".join(struct.pack(">H", r & 0xFFFF) for r in registers)
    text = printable(raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip())
    return text or None


def _ipaddr(registers: Sequence[int]) -> str | None:
    raw = _unsigned(registers)
    if raw == 0:
        return None
    return ".".join(str((raw >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _ipv6addr(registers: Sequence[int]) -> str | None:
    if not any(registers):
        return None
    return ":".join(f"{r & 0xFFFF:04x}" for r in registers)


def _eui48(registers: Sequence[int]) -> str | None:
    """Four registers: one reserved, then six bytes; all 0xFF (or all zero) means missing."""
    raw = b"".join(struct.pack(">H", r & 0xFFFF) for r in registers)[-6:]
    if raw in (b"\xff" * 6, b"\x00" * 6):
        return None
    return ":".join(f"{b:02X}" for b in raw)


def _pad(registers: Sequence[int]) -> None:
    return None


@dataclass(frozen=True)
class TypeInfo:
    """How one SunSpec point type sits in registers."""

    size: int | None
    """Registers per value (None: given by the point, e.g. strings)."""
    decode: Decoder
    scalable: bool
    """True for numeric types that a scale factor applies to."""


TYPES: dict[str, TypeInfo] = {
    "int16": TypeInfo(1, _integer(True, 0x8000), True),
    "uint16": TypeInfo(1, _integer(False, 0xFFFF), True),
    "count": TypeInfo(1, _integer(False, 0xFFFF), False),
    "acc16": TypeInfo(1, _integer(False, 0), True),
    "enum16": TypeInfo(1, _integer(False, 0xFFFF), False),
    "bitfield16": TypeInfo(1, _integer(False, 0xFFFF), False),
    "sunssf": TypeInfo(1, _integer(True, 0x8000), False),
    "int32": TypeInfo(2, _integer(True, 0x8000_0000), True),
    "uint32": TypeInfo(2, _integer(False, 0xFFFF_FFFF), True),
    "acc32": TypeInfo(2, _integer(False, 0), True),
    "enum32": TypeInfo(2, _integer(False, 0xFFFF_FFFF), False),
    "bitfield32": TypeInfo(2, _integer(False, 0xFFFF_FFFF), False),
    "int64": TypeInfo(4, _integer(True, 0x8000_0000_0000_0000), True),
    "uint64": TypeInfo(4, _integer(False, 0xFFFF_FFFF_FFFF_FFFF), True),
    "acc64": TypeInfo(4, _integer(False, 0), True),
    "float32": TypeInfo(2, _float(">f"), False),
    "float64": TypeInfo(4, _float(">d"), False),
    "string": TypeInfo(None, register_text, False),
    "pad": TypeInfo(1, _pad, False),
    "ipaddr": TypeInfo(2, _ipaddr, False),
    "ipv6addr": TypeInfo(8, _ipv6addr, False),
    "eui48": TypeInfo(4, _eui48, False),
}
"""Every point type used by the official SunSpec model definitions."""

SF_RANGE = range(-10, 11)
"""Scale factors SunSpec allows; anything else is a broken register and counts as missing."""


def decode_registers(point_type: str, registers: Sequence[int]) -> PointValue | None:
    """Decode one point's registers; None for a sentinel or an unknown type."""
    info = TYPES.get(point_type)
    if info is None:
        return None
    return info.decode(registers)


def decode_scale_factor(registers: Sequence[int]) -> int | None:
    """A ``sunssf`` register: None when not implemented or outside -10..10."""
    value = TYPES["sunssf"].decode(registers)
    return value if isinstance(value, int) and value in SF_RANGE else None


def apply_scale_factor(raw: int, sf: int) -> float:
    """``raw x 10^sf`` rounded to the scale factor's precision (229.7, not 229.70000000000002)."""
    if sf >= 0:
        return float(raw * 10**sf)
    return round(raw * 10.0**sf, -sf)


def round_float32(value: float) -> float:
    """The shortest decimal that is the same float32: 229.6999969482422 -> 229.7.

    A float32 register carries ~7 significant digits; the rest of the Python float
    is binary noise. Integers up to 2**24 (a 16.7 MWh counter in Wh) stay exact.
    """
    packed = struct.pack(">f", value)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack(">f", candidate) == packed:
                return candidate
        except OverflowError:  # rounded up past the float32 range
            continue
    return value
