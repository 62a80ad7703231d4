"""YAML register profiles for devices that do not speak SunSpec: the format, the loader, the codec.

One file per device family in ``agent/devices/profiles/<name>.yaml`` (evcc style);
``profiles/README.md`` documents every key. A profile is loaded once into frozen
pydantic models with unknown keys rejected; every mistake in a file is reported
at once, each with the file and the key path (``sdm630.yaml: registers[3].field:
…``), because a profile that decodes silently wrong is worse than none (evcc
shipped wrong scale factors that nobody noticed for months).

The codec at the bottom is pure: one table maps each value type to its size and
its decoder (as ``sunspec_types`` does for SunSpec point types), sentinels decode
to None, and scaling is done in decimal so ``2305 x 0.1`` is ``230.5``, not
``230.50000000000003``. ``encode_value`` is its inverse, for tests and simulators.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.configerrors import translate_errors
from agent.configfile import FileRefused, parse_yaml, read_text
from agent.devices.sunspec_mapping import event_code
from agent.devices.sunspec_models import model_def
from agent.devices.sunspec_types import register_text, round_float32
from agent.errors import ConfigError
from agent.modbus.plan import MODBUS_MAX_REGISTERS, Table
from agent.schema import EVENT_CODE_RE, READING_MEASUREMENT, STATE_NAMES, DeviceKind, ReadingKind

PROFILES_PACKAGE = "agent.devices"
PROFILES_FOLDER = "profiles"

ValueType = Literal["u16", "i16", "u32", "i32", "u64", "i64", "f32", "str"]
WordOrder = Literal["big", "little"]
"""``big``: most significant 16-bit word first (Modbus convention); ``little``: least significant first."""

TYPE_SIZES: dict[str, int] = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "i64": 4, "f32": 2}
"""Registers per value; ``str`` takes its ``length`` from the profile."""

STATE_BY_NAME: dict[str, int] = {name: value for value, name in STATE_NAMES.items()}

UNIT_FAMILIES: dict[str, frozenset[str]] = {
    "W": frozenset({"W", "kW", "MW"}),
    "Wh": frozenset({"Wh", "kWh", "MWh"}),
    "VA": frozenset({"VA", "kVA"}),
    "var": frozenset({"var", "kvar", "VAr", "kVAr", "VAR", "kVAR"}),
    "V": frozenset({"V", "kV", "mV"}),
    "A": frozenset({"A", "mA", "kA"}),
    "Hz": frozenset({"Hz"}),
    "°C": frozenset({"°C", "C", "degC"}),
    "": frozenset({"", "%", "1"}),
}
"""Vendor units a register may declare for a schema field of each unit (the ``unit`` check)."""


class ProfileError(ConfigError):
    """A register profile is invalid; ``problems`` lists every ``key.path: reason`` found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- the format


class Documentation(_Strict):
    """Where the register map comes from: the vendor's public document, its version, its URL."""

    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    url: Annotated[str, Field(pattern=r"^https?://\S+$")]


class Metadata(_Strict):
    manufacturer: str = Field(min_length=1)
    models: tuple[str, ...] = Field(min_length=1)
    """Model names this profile covers (as the vendor spells them)."""
    kind: DeviceKind
    documentation: Documentation
    cross_checked: tuple[Documentation, ...] = ()
    """Other public sources the addresses, types and gains were checked against."""
    notes: str | None = None


class Defaults(_Strict):
    table: Table = "holding"
    word_order: WordOrder = "big"
    max_registers: int = Field(MODBUS_MAX_REGISTERS, ge=1, le=MODBUS_MAX_REGISTERS)
    """Most registers the device answers in one request."""
    max_gap: int = Field(0, ge=0, le=MODBUS_MAX_REGISTERS)
    """Unused registers one request may read through (0 if the device refuses unmapped ones)."""
    address_base: Literal[0, 1] = 0
    """How the vendor numbers registers: 1 means the address on the wire is the documented number minus 1."""
    sentinels: dict[ValueType, tuple[int, ...]] = Field(default_factory=dict)
    """Raw values meaning "not available", per type, for ``registers`` that give none of their own."""


class Located(_Strict):
    """A value somewhere in the device's registers."""

    name: str = Field(min_length=1)
    """The vendor's register name, as in the documentation."""
    description: str | None = None
    address: int = Field(ge=0, le=0xFFFF)
    """As documented (see ``defaults.address_base``)."""
    table: Table | None = None
    type: ValueType
    length: int | None = Field(None, ge=1, le=MODBUS_MAX_REGISTERS)
    """Registers of a ``str`` value (two characters each); only for ``str``."""
    word_order: WordOrder | None = None
    sentinels: tuple[int, ...] | None = None
    """Raw values meaning "not available" (unsigned, after word order). NaN and infinities always are."""

    @property
    def count(self) -> int:
        return self.length if self.type == "str" and self.length is not None else TYPE_SIZES.get(self.type, 1)


class IdentityRegister(Located):
    scale: float = 1.0


class Identity(_Strict):
    """Optional registers telling what the device is; any of them may be refused by the device."""

    model: IdentityRegister | None = None
    serial: IdentityRegister | None = None
    firmware: IdentityRegister | None = None
    rated_power_w: IdentityRegister | None = None


class Direction(Located):
    """Where the sign of a magnitude-only register comes from (a status bit field)."""

    negative_bit: int = Field(ge=0, le=63)
    """When this bit (0 = least significant) is set the value is negative; when the register is
    missing or holds a sentinel the value is left out (its direction is unknown)."""


class RegisterDef(Located):
    """One measured value mapped to one schema field."""

    unit: str | None = None
    """The vendor's unit (checked against the field's unit family: kWh may feed ``_wh``, not ``_w``)."""
    scale: float = 1.0
    """Multiplier from the raw value to the field's unit (e.g. 0.1 for 0.1 V steps, 1000 for kWh -> Wh)."""
    offset: float = 0.0
    """Added after scaling."""
    field: str = Field(min_length=1)
    """Schema field name (agent/schema.py) of the device's measurement, or of ``mppt`` with ``string``."""
    string: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    """MPPT input / PV string id: the value becomes a field of that string's ``mppt`` reading."""
    sign: Literal["normal", "invert"] = "normal"
    """``invert`` when the device's sign is the opposite of the schema's (e.g. a meter that counts export as +)."""
    combine: Literal["sum"] | None = None
    """``sum``: several registers feed one field (e.g. per-phase currents into ``ac_current_a``)."""
    measurement: Literal["meter", "battery"] | None = None
    """Another reading of the same device this value feeds: a hybrid inverter's grid meter or battery."""
    direction: Direction | None = None
    """For a register holding a magnitude only: the bit that says it is negative."""

    @property
    def reading_kind(self) -> ReadingKind | None:
        """The reading this value goes to: None for the device's own (``metadata.kind``)."""
        if self.string is not None:
            return "mppt"
        return self.measurement


class StateValue(_Strict):
    st: str
    """SunSpec operating state name: OFF, SLEEPING, STARTING, MPPT, THROTTLED, SHUTTING_DOWN, FAULT, STANDBY."""
    text: str = Field(min_length=1)
    """The vendor's words for this code."""

    @field_validator("st", mode="before")
    @classmethod
    def _known_state(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML 1.1 reads a bare OFF as false
            raise ValueError("write the state name in quotes (\"OFF\"): YAML reads a bare OFF as false")
        if value not in STATE_BY_NAME:
            raise ValueError(f"unknown SunSpec state {value!r}; expected one of {', '.join(STATE_BY_NAME)}")
        return value


class StateRegister(Located):
    pass


class StateDef(_Strict):
    """Vendor state codes mapped onto SunSpec St; a code not listed leaves ``state`` out."""

    code_register: StateRegister = Field(alias="register")
    """The register holding the vendor's state code (``register:`` in YAML)."""
    values: dict[int, StateValue] = Field(min_length=1)


class EventBit(_Strict):
    code: Annotated[str, Field(pattern=EVENT_CODE_RE.pattern)]
    """Stable event code published on ``terril/<site>/events``."""
    text: str = Field(min_length=1)
    sunspec: str | None = None
    """The SunSpec event bit this alarm also sets in the ``events`` field (Evt1 for inverters, Evt for meters)."""


class EventRegister(Located):
    bits: dict[int, EventBit] = Field(min_length=1)
    """Bit number (0 = least significant) -> event."""


class Identify(_Strict):
    """The identity guard: what a device must answer before the profile decodes anything from it.

    The device is refused (``WrongDevice``) when the register is refused, empty or a
    sentinel, when ``values``/``prefixes`` are given and the value matches none of
    them, or when it is one of ``refuse``. ``missing: accept`` lets a device without
    the register through (only for a register that distinguishes a family from a
    bigger sibling that has it, e.g. the SDM120 from the three-phase SDM630).
    """

    code_register: Located = Field(alias="register")
    """The vendor's identification register (device type code, model name, system type…); ``register:`` in YAML."""
    values: dict[int, str] = Field(default_factory=dict)
    """Accepted codes -> model name (hex keys welcome: ``0x0E12: SH8.0RT-20``)."""
    prefixes: tuple[str, ...] = ()
    """Accepted beginnings of a model name (``str`` registers)."""
    refuse: dict[int, str] = Field(default_factory=dict)
    """Codes that name another kind of device -> what it is."""
    missing: Literal["refuse", "accept"] = "refuse"
    """What a register the device refuses (or leaves empty) means."""


class Profile(_Strict):
    """One device family's register map."""

    name: str
    """The file's stem: what a device's ``driver`` names in the agent config."""
    metadata: Metadata
    defaults: Defaults = Field(default_factory=Defaults)
    identify: Identify | None = None
    """The identity guard, checked before the first poll (see :class:`Identify`)."""
    identity: Identity = Field(default_factory=Identity)
    registers: tuple[RegisterDef, ...] = Field(min_length=1)
    state: StateDef | None = None
    events: tuple[EventRegister, ...] = ()

    @property
    def kind(self) -> DeviceKind:
        return self.metadata.kind

    # resolved views (defaults applied), used by the driver and by tests

    def table_of(self, located: Located) -> Table:
        return located.table or self.defaults.table

    def wire_address(self, located: Located) -> int:
        return located.address - self.defaults.address_base

    def word_order_of(self, located: Located) -> WordOrder:
        return located.word_order or self.defaults.word_order

    def sentinels_of(self, located: Located) -> tuple[int, ...]:
        """A register's own sentinels, else (for measured values only) the defaults of its type."""
        if located.sentinels is not None:
            return located.sentinels
        if isinstance(located, RegisterDef):
            return self.defaults.sentinels.get(located.type, ())
        return ()

    def decode(self, located: Located, words: Sequence[int]) -> int | float | str | None:
        """The raw value of *located* from its registers, None for a sentinel."""
        return decode_value(located.type, words, self.word_order_of(located), self.sentinels_of(located))


# --------------------------------------------------------------------------- cross-field checks


def _check(profile: Profile) -> list[str]:
    """Everything a schema cannot say: fields exist for the kind, sizes fit, sums are declared."""
    problems: list[str] = []

    def check_located(where: str, item: Located) -> None:
        if item.type == "str" and item.length is None:
            problems.append(f"{where}.length: a str value needs its length in registers")
        if item.type != "str" and item.length is not None:
            problems.append(f"{where}.length: only str values have a length ({item.type} is {item.count} register(s))")
        if item.word_order is not None and item.count == 1:
            problems.append(f"{where}.word_order: {item.type} is one register, it has no word order")
        wire = profile.wire_address(item)
        if wire < 0 or wire + item.count > 0x10000:
            problems.append(f"{where}.address: registers {wire}..{wire + item.count - 1} are outside 0..65535")
        if item.count > profile.defaults.max_registers:
            problems.append(f"{where}: {item.count} registers do not fit one request "
                            f"(max_registers {profile.defaults.max_registers})")

    for key, item in profile.identity:
        if item is not None:
            check_located(f"identity.{key}", item)
            if key == "rated_power_w" and item.type == "str":
                problems.append("identity.rated_power_w.type: rated power is a number, not a str")

    summed: dict[tuple[str | None, str | None, str], list[int]] = {}
    for index, reg in enumerate(profile.registers):
        where = f"registers[{index}]"
        check_located(where, reg)
        measurement = reg.reading_kind or profile.kind
        spec = READING_MEASUREMENT[measurement].fields_by_name
        if reg.string is not None and reg.measurement is not None:
            problems.append(f"{where}: give either string (an MPPT input) or measurement, not both")
        if reg.measurement is not None and profile.kind != "inverter":
            problems.append(
                f"{where}.measurement: only an inverter profile feeds other readings (a hybrid's meter or battery)"
            )
        if reg.direction is not None:
            check_located(f"{where}.direction", reg.direction)
            if reg.direction.type not in ("u16", "u32", "u64"):
                problems.append(f"{where}.direction.type: a status bit field is unsigned (u16, u32, u64)")
            elif reg.direction.negative_bit >= 16 * reg.direction.count:
                bits = 16 * reg.direction.count
                problems.append(f"{where}.direction.negative_bit: a {reg.direction.type} has bits 0..{bits - 1}")
        field = spec.get(reg.field)
        if field is None:
            problems.append(
                f"{where}.field: {reg.field!r} is not a field of {measurement} "
                f"(known: {', '.join(sorted(spec))})"
            )
            continue
        if field.type != "float":
            problems.append(
                f"{where}.field: {reg.field!r} is an integer field; map it with the "
                f"{'state' if reg.field == 'state' else 'events'}: block, not as a register"
            )
        if reg.type == "str":
            problems.append(f"{where}.type: {reg.field} is a number, a str register cannot feed it")
        if reg.scale == 0 or not math.isfinite(reg.scale) or not math.isfinite(reg.offset):
            problems.append(f"{where}.scale: must be a finite number other than 0")
        if reg.unit is not None and reg.unit not in UNIT_FAMILIES.get(field.unit, frozenset({field.unit})):
            problems.append(
                f"{where}.unit: {reg.unit!r} cannot feed {reg.field} (in {field.unit or 'no unit'}); "
                f"expected one of {', '.join(sorted(UNIT_FAMILIES.get(field.unit, {field.unit})))}"
            )
        summed.setdefault((reg.reading_kind, reg.string, reg.field), []).append(index)

    for (other, string, name), indexes in summed.items():
        if len(indexes) > 1 and any(profile.registers[i].combine != "sum" for i in indexes):
            where = ", ".join(f"registers[{i}]" for i in indexes)
            target = f"{other} {name}" if other is not None else name
            if string is not None:
                target = f"mppt string {string} {name}"
            problems.append(f"{where}: several registers feed {target}; give each of them 'combine: sum' or keep one")

    if profile.identify is not None:
        guard = profile.identify
        check_located("identify.register", guard.code_register)
        if not (guard.values or guard.prefixes or guard.refuse):
            problems.append("identify: give values, prefixes or refuse: a guard that accepts anything guards nothing")
        if guard.prefixes and guard.code_register.type != "str":
            problems.append("identify.prefixes: only for a str register (a model name)")
        if (guard.values or guard.refuse) and guard.code_register.type == "str":
            problems.append("identify.values: a str register is matched by prefixes")
        for code in set(guard.values) & set(guard.refuse):
            problems.append(f"identify.refuse.{code}: also in values")

    if profile.state is not None:
        check_located("state.register", profile.state.code_register)
        if profile.state.code_register.type not in ("u16", "u32", "i16", "i32"):
            problems.append("state.register.type: a state code is an integer (u16, u32, i16, i32)")
        if profile.kind != "inverter":
            problems.append("state: only inverters have an operating state (SunSpec St)")

    sunspec_bits = sunspec_event_bits(profile.kind)
    for index, event in enumerate(profile.events):
        where = f"events[{index}]"
        check_located(where, event)
        if event.type not in ("u16", "u32", "u64"):
            problems.append(f"{where}.type: an alarm bit field is unsigned (u16, u32, u64)")
        for bit, bit_def in event.bits.items():
            if not 0 <= bit < 16 * event.count:
                problems.append(f"{where}.bits.{bit}: a {event.type} has bits 0..{16 * event.count - 1}")
            if bit_def.sunspec is not None and bit_def.sunspec not in sunspec_bits:
                problems.append(
                    f"{where}.bits.{bit}.sunspec: {bit_def.sunspec!r} is not a SunSpec "
                    f"{'Evt1' if profile.kind == 'inverter' else 'Evt'} bit "
                    f"(known: {', '.join(sunspec_bits)})"
                )
    return problems


@cache
def sunspec_event_bits(kind: DeviceKind) -> dict[str, int]:
    """SunSpec event bit names -> bit number: Evt1 of model 103 (inverters), Evt of model 203 (meters).

    Taken from pysunspec2's model definitions through ``sunspec_models`` and
    named as the SunSpec driver names its event codes, so an alarm has one name
    whatever the driver.
    """
    model_id, point_name = (103, "Evt1") if kind == "inverter" else (203, "Evt")
    definition = model_def(model_id)
    point = definition.point(point_name) if definition is not None else None
    if point is None:  # pragma: no cover - pysunspec2 always ships these
        return {}
    return {event_code(symbol.name): symbol.value for symbol in point.symbols}


# --------------------------------------------------------------------------- loading


def parse_profile(data: object, name: str, source: str) -> Profile:
    """Validate *data* (a parsed YAML document) as profile *name*; *source* names the file in errors."""
    if not isinstance(data, dict):
        raise ProfileError(source, ["(top level): expected a mapping of metadata, defaults, registers…, "
                                    f"got {type(data).__name__}"])
    if "name" in data:
        raise ProfileError(source, ["name: not allowed, the profile's name is its file name"])
    try:
        profile = Profile.model_validate({**data, "name": name})
    except ValidationError as exc:
        raise ProfileError(source, translate_errors(exc, Profile)) from None
    problems = _check(profile)
    if problems:
        raise ProfileError(source, problems)
    return profile


def load_profile_file(path: str | Path) -> Profile:
    """Load a profile from any file (for profiles kept outside the package, and tests)."""
    path = Path(path)
    try:
        text = read_text(path)
    except FileRefused as exc:
        raise ProfileError(path.name, [exc.reason]) from None
    return _parse_text(text, path.stem, path.name)


def _parse_text(text: str, name: str, source: str) -> Profile:
    try:
        data = parse_yaml(text, source)
    except ConfigError as exc:
        raise ProfileError(source, exc.problems) from None
    return parse_profile(data, name, source)


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``agent/devices/profiles/`` (sorted)."""
    folder = resources.files(PROFILES_PACKAGE).joinpath(PROFILES_FOLDER)
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


@cache
def load_profile(name: str) -> Profile:
    """The shipped profile ``agent/devices/profiles/<name>.yaml``, loaded and checked once."""
    if name not in available_profiles():
        raise ProfileError(
            f"{name}.yaml",
            [f"no profile named {name!r}; shipped profiles: {', '.join(available_profiles()) or 'none'}"],
        )
    entry = resources.files(PROFILES_PACKAGE).joinpath(PROFILES_FOLDER, f"{name}.yaml")
    return _parse_text(entry.read_text(encoding="utf-8"), name, f"{name}.yaml")


# --------------------------------------------------------------------------- the codec


def _ordered(words: Sequence[int], word_order: WordOrder) -> list[int]:
    ordered = [w & 0xFFFF for w in words]
    return ordered[::-1] if word_order == "little" else ordered


def _unsigned(words: Sequence[int]) -> int:
    value = 0
    for word in words:
        value = (value << 16) | word
    return value


def decode_value(
    value_type: str, words: Sequence[int], word_order: WordOrder = "big", sentinels: Sequence[int] = ()
) -> int | float | str | None:
    """The raw value held in *words* (one register each), or None when it means "not available".

    Never raises on register content: a device can put anything in any register.
    Integers come back as ints, ``f32`` as the shortest float that is the same
    float32 (``230.5``, not ``230.5000001``), ``str`` with padding stripped.
    """
    if value_type == "str":
        return register_text(words)
    ordered = _ordered(words, word_order)
    unsigned = _unsigned(ordered)
    if unsigned in sentinels:
        return None
    if value_type == "f32":
        (value,) = struct.unpack(">f", struct.pack(">HH", *ordered))
        return round_float32(value) if math.isfinite(value) else None
    if value_type.startswith("i"):
        bits = 16 * len(ordered)
        return unsigned - (1 << bits) if unsigned >= 1 << (bits - 1) else unsigned
    return unsigned


def engineering_value(raw: int | float, scale: float = 1.0, offset: float = 0.0, invert: bool = False) -> float:
    """``raw x scale + offset`` (negated for ``sign: invert``), computed in decimal: no binary noise."""
    value = Decimal(repr(raw)) * Decimal(repr(scale)) + Decimal(repr(offset))
    return float(-value if invert else value)


def encode_value(
    value_type: str, raw: int | float | str, word_order: WordOrder = "big", length: int | None = None
) -> list[int]:
    """The registers that hold raw value *raw* (the inverse of :func:`decode_value`)."""
    if value_type == "str":
        data = str(raw).encode("utf-8")
        size = 2 * (length if length is not None else (len(data) + 1) // 2)
        if len(data) > size:
            raise ValueError(f"{raw!r} does not fit {size // 2} registers")
        data = data.ljust(size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, size, 2)]
    size = TYPE_SIZES[value_type]
    if value_type == "f32":
        words = list(struct.unpack(">HH", struct.pack(">f", float(raw))))
    else:
        if not isinstance(raw, int):
            raise ValueError(f"{value_type} needs an integer raw value, got {raw!r}")
        bits = 16 * size
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if value_type.startswith("i") else (0, (1 << bits) - 1)
        if not low <= raw <= high:
            raise ValueError(f"{raw} does not fit {value_type}")
        unsigned = raw & ((1 << bits) - 1)
        words = [(unsigned >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]
    return words[::-1] if word_order == "little" else words


def raw_for(
    value: float, value_type: str, scale: float = 1.0, offset: float = 0.0, invert: bool = False
) -> int | float:
    """The raw register value that decodes to engineering *value* (for register images in tests and simulators)."""
    target = Decimal(repr(-value if invert else value))
    raw = (target - Decimal(repr(offset))) / Decimal(repr(scale))
    if value_type == "f32":
        return float(raw)
    return int(raw.to_integral_value())
