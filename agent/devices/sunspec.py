"""The SunSpec device driver: discover the model chain once, then poll with a fixed plan.

Model-driven like pysunspec2: the register layout comes from the official model
definitions (``sunspec_models``) and the lengths the device declares
(``sunspec_discovery``); which point feeds which schema field is a table
(``sunspec_mapping``). Nothing here names a register address.

One Modbus unit can hold several logical devices (each model 1 opens one);
``logical_device`` picks which one this driver polls (1-based).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.devices.base import DecodedPoll, DeviceIdentity
from agent.devices.sunspec_codegen import CompiledField, GeneratedDecoder, build_decoder, compile_fields
from agent.devices.sunspec_discovery import (
    BASE_ADDRESSES,
    COMMON_MODEL_ID,
    LogicalDevice,
    ModelBlock,
    SilentAtBase,
    SunSpecChain,
    find_chain,
)
from agent.devices.sunspec_mapping import (
    INVERTER_FIELDS,
    INVERTER_MODELS,
    METER_FIELDS,
    METER_MODELS,
    MPPT_FIELDS,
    MPPT_MODEL,
    NAMEPLATE_MODEL,
    BoundField,
    FieldMap,
    active_bits,
    bind_fixed,
    bind_repeating,
    decode_fields,
)
from agent.devices.sunspec_models import model_def
from agent.devices.sunspec_types import decode_registers
from agent.errors import DecodeError
from agent.modbus.plan import MODBUS_MAX_REGISTERS, ReadRequest, RegisterBlock, RegisterSpan, Table, plan_reads
from agent.modbus.types import RegisterReader
from agent.schema import DEVICE_KINDS, STATE_FAULT, STATE_NAMES, DeviceKind, Reading

log = logging.getLogger(__name__)

STATE_FAULT_CODE = "STATE_FAULT"
"""Event code raised while the operating state (St) is FAULT."""

_IDENTITY_BODIES = frozenset({COMMON_MODEL_ID, NAMEPLATE_MODEL})
"""Models whose contents discovery reads (identity); the others only need their headers."""


@dataclass(frozen=True)
class DiscoveredDevice:
    """One logical SunSpec device found by :func:`scan` (for ``terril scan``)."""

    base: int
    table: Table
    logical_index: int
    models: tuple[ModelBlock, ...]
    """Every model with its address and declared length ``L``."""
    identity: DeviceIdentity

    @property
    def kind(self) -> DeviceKind | None:
        """inverter or meter when a monitoring model says so, else None."""
        ids = {m.id for m in self.models}
        if ids & INVERTER_MODELS:
            return "inverter"
        if ids & METER_MODELS:
            return "meter"
        return None


def _string_point(chain: SunSpecChain, block: ModelBlock, name: str) -> str | None:
    definition = model_def(block.id)
    point = definition.point(name) if definition else None
    if point is None or point.offset + point.size > 2 + block.length:
        return None  # the device's model is shorter than the definition (e.g. SolarEdge L=65)
    registers = chain.registers.get(chain.table, block.address + point.offset, point.size)
    value = None if registers is None else decode_registers(point.type, registers)
    return value if isinstance(value, str) else None


def identity_of(chain: SunSpecChain, device: LogicalDevice) -> DeviceIdentity:
    """Manufacturer, model, serial, firmware (model 1) and rated power (model 120 WRtg)."""
    common = device.first({COMMON_MODEL_ID})
    rated: float | None = None
    nameplate = device.first({NAMEPLATE_MODEL})
    nameplate_def = model_def(NAMEPLATE_MODEL)
    if nameplate is not None and nameplate_def is not None:
        for bound in bind_fixed((FieldMap("WRtg", "rated_power_w"),), nameplate_def, nameplate):
            value = bound.value(chain.registers, chain.table)
            rated = float(value) if value is not None else None
    return DeviceIdentity(
        manufacturer=_string_point(chain, common, "Mn") if common else None,
        model=_string_point(chain, common, "Md") if common else None,
        serial=_string_point(chain, common, "SN") if common else None,
        firmware=_string_point(chain, common, "Vr") if common else None,
        rated_power_w=rated,
        models=device.model_ids,
    )


async def scan(reader: RegisterReader, max_registers: int = MODBUS_MAX_REGISTERS) -> list[DiscoveredDevice]:
    """Every logical SunSpec device on one Modbus unit, with its models and identity."""
    chain = await find_chain(reader, max_registers, bodies_of=_IDENTITY_BODIES)
    return [
        DiscoveredDevice(chain.base, chain.table, device.index, device.models, identity_of(chain, device))
        for device in chain.logical_devices()
    ]


@dataclass(frozen=True)
class _Layout:
    """Where this driver's fields are on the device (compiled once after discovery)."""

    table: Table
    model_id: int
    fields: tuple[BoundField, ...]
    strings: tuple[tuple[BoundField, ...], ...]
    """Model 160 modules, in order; module *i* becomes MPPT string ``str(i + 1)``."""

    def spans(self, max_registers: int) -> list[RegisterSpan]:
        bound = list(self.fields) + [b for module in self.strings for b in module]
        return [span for b in bound for span in b.spans(self.table, max_registers)]


@dataclass(frozen=True)
class _Compiled:
    """A layout compiled against the read plan: what one poll decodes (see ``compile_fields``)."""

    requests: tuple[tuple[int, int], ...]
    """(address, count) of each request of the plan, in order."""
    fields: tuple[CompiledField, ...]
    strings: tuple[tuple[CompiledField, ...], ...]
    decoder: GeneratedDecoder
    """One function written for this layout (``build_decoder``): what ``decode`` runs each poll."""


def _compile_plan(layout: _Layout, plan: list[ReadRequest]) -> _Compiled:
    requests = tuple((r.address, r.count) for r in plan if r.table == layout.table)
    fields = compile_fields(layout.fields, list(requests))
    strings = tuple(compile_fields(module, list(requests)) for module in layout.strings)
    return _Compiled(requests, fields, strings, build_decoder(requests, fields, strings))


def _compile(kind: DeviceKind, device: LogicalDevice, table: Table) -> _Layout:
    monitoring_ids = INVERTER_MODELS if kind == "inverter" else METER_MODELS
    block = device.first(monitoring_ids)
    if block is None:
        raise DecodeError(
            f"SunSpec logical device {device.index} has no {kind} model "
            f"(found models {', '.join(map(str, device.model_ids)) or 'none'}; "
            f"expected one of {', '.join(map(str, sorted(monitoring_ids)))})"
        )
    definition = model_def(block.id)
    assert definition is not None  # every id in the monitoring sets ships with pysunspec2
    fields = bind_fixed(INVERTER_FIELDS if kind == "inverter" else METER_FIELDS, definition, block)
    strings: tuple[tuple[BoundField, ...], ...] = ()
    mppt = device.first({MPPT_MODEL}) if kind == "inverter" else None
    mppt_def = model_def(MPPT_MODEL)
    if mppt is not None and mppt_def is not None:
        strings = bind_repeating(MPPT_FIELDS, mppt_def, mppt)
    return _Layout(table, block.id, fields, strings)


class SunSpecDriver:
    """A :class:`agent.devices.base.DeviceDriver` for any SunSpec inverter or meter.

    ``max_gap`` is how many unused registers a request may read through between
    two needed ones. By default any gap, up to ``max_registers``: every register
    between two models of the chain belongs to the SunSpec map (so the device
    serves it), and one round trip costs more than a few dozen registers of wire
    time even on RS-485 at 9600 baud.
    """

    def __init__(
        self,
        name: str,
        kind: DeviceKind,
        logical_device: int = 1,
        max_registers: int = MODBUS_MAX_REGISTERS,
        *,
        max_gap: int | None = None,
    ) -> None:
        if kind not in DEVICE_KINDS:
            raise ValueError(f"device {name}: kind must be one of {DEVICE_KINDS}, got {kind!r}")
        if logical_device < 1:
            raise ValueError(f"device {name}: logical_device counts from 1, got {logical_device}")
        if not 1 <= max_registers <= MODBUS_MAX_REGISTERS:
            raise ValueError(f"device {name}: max_registers must be 1..{MODBUS_MAX_REGISTERS}, got {max_registers}")
        self.name = name
        self.kind: DeviceKind = kind
        self.logical_device = logical_device
        self.max_registers = max_registers
        self.max_gap = max_registers if max_gap is None else max_gap
        self._layout: _Layout | None = None
        self._compiled: _Compiled | None = None
        self._plan: list[ReadRequest] = []
        self.identity: DeviceIdentity | None = None
        self._bases: tuple[int, ...] = BASE_ADDRESSES
        """SunSpec bases in the order the next discovery tries them."""

    def __repr__(self) -> str:
        return f"SunSpecDriver(name={self.name!r}, kind={self.kind!r}, logical_device={self.logical_device})"

    async def discover(self, reader: RegisterReader) -> DeviceIdentity:
        """Find the map. A unit that does not answer costs one timeout per attempt, not one per
        base: the next attempt starts at the next base (and a found base is tried first next time)."""
        bases = self._bases
        try:
            chain = await find_chain(reader, self.max_registers, bases=bases, bodies_of=_IDENTITY_BODIES,
                                     stop_on_silence=True)
        except SilentAtBase as exc:
            i = bases.index(exc.base)
            self._bases = bases[i + 1 :] + bases[: i + 1]
            raise
        i = bases.index(chain.base)
        self._bases = bases[i:] + bases[:i]
        devices = chain.logical_devices()
        if self.logical_device > len(devices):
            raise DecodeError(
                f"device {self.name}: logical_device {self.logical_device} asked, but the SunSpec map at "
                f"{chain.base} holds {len(devices)} logical device(s)"
            )
        device = devices[self.logical_device - 1]
        layout = _compile(self.kind, device, chain.table)
        self._plan = plan_reads(layout.spans(self.max_registers), self.max_registers, self.max_gap)
        self._compiled = _compile_plan(layout, self._plan)
        self._layout = layout
        self.identity = identity_of(chain, device)
        log.info(
            "%s: SunSpec map at %s register %d, logical device %d/%d, models %s, %d request(s) per poll",
            self.name,
            chain.table,
            chain.base,
            device.index,
            len(devices),
            ",".join(map(str, device.model_ids)),
            len(self._plan),
        )
        return self.identity

    def plan(self) -> list[ReadRequest]:
        if self._layout is None:
            raise RuntimeError(f"device {self.name}: plan() called before discover()")
        return list(self._plan)

    def spans(self) -> list[RegisterSpan]:
        """The atomic spans (a value with its scale factor) the plan covers; for tests and tools."""
        if self._layout is None:
            raise RuntimeError(f"device {self.name}: spans() called before discover()")
        return self._layout.spans(self.max_registers)

    def decode(self, block: RegisterBlock, ts_ms: int) -> DecodedPoll:
        layout = self._layout
        compiled = self._compiled
        if layout is None:
            raise RuntimeError(f"device {self.name}: decode() called before discover()")
        table = layout.table
        decoded = compiled.decoder(block, table) if compiled is not None else None
        if decoded is not None:  # the plan was read in full: the generated path
            fields, modules = decoded
        else:  # a block from elsewhere (tools, tests): the reference path, field by field
            fields = decode_fields(layout.fields, block, table)
            modules = [decode_fields(m, block, table) for m in layout.strings]
        name = self.name
        readings = [Reading(name, self.kind, ts_ms, fields)]
        for index, string_fields in enumerate(modules, start=1):
            if string_fields:  # a module that reports nothing is not a reading
                readings.append(Reading(name, "mppt", ts_ms, string_fields, str(index)))
        events: dict[str, str] = {}
        event_bits = fields.get("events")
        if event_bits and isinstance(event_bits, int):  # no bit set: nothing to name
            for bound in layout.fields:
                if bound.field == "events":
                    events.update(active_bits(bound.point, event_bits, layout.model_id))
        state = fields.get("state")
        if state is not None:
            state = int(state)
            if state == STATE_FAULT:
                events[STATE_FAULT_CODE] = f"Operating state {STATE_NAMES[STATE_FAULT]} (SunSpec St = {STATE_FAULT})"
        return DecodedPoll(readings, events, state)
