"""Find a SunSpec map on a Modbus unit and walk its model chain.

SunSpec puts the marker "SunS" (0x5375 0x6E53) at a base address — 40000 by
convention, sometimes 50000 or 0 — followed by a chain of models, each a header
``ID, L`` then ``L`` registers, ended by ID 0xFFFF. We walk the chain by each
model's *declared* length, never by the length the definition expects: devices
disagree with the standard (SolarEdge declares model 1 with L=65 instead of 66)
and the next model starts where the device says.

A timeout or an error at one base address moves on to the next base: it never
aborts discovery (pysunspec2 gives up at the first timeout, a known bug). The
one exception is the poller's discovery of a unit that does not answer at all
(``stop_on_silence``): on an RS-485 bus, three timeouts (one per base) would
hold every neighbour on the bus back by three timeouts at every retry. There,
the first silent base ends the attempt with :class:`SilentAtBase`, and the
driver starts its next attempt at the next base (see ``SunSpecDriver``), so a
device that only ignores reads at 40000 is still found, one attempt later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.devices.sunspec_models import END_MODEL_ID, HEADER_LENGTH
from agent.errors import (
    DecodeError,
    DeviceBusy,
    IllegalAddress,
    ModbusExceptionResponse,
    TerrilError,
    TransportError,
)
from agent.modbus.plan import MODBUS_MAX_REGISTERS, RegisterBlock, Table
from agent.modbus.types import RegisterReader

log = logging.getLogger(__name__)

SUNS_MARKER = (0x5375, 0x6E53)
"""'SunS' in two registers."""

BASE_ADDRESSES = (40000, 50000, 0)
"""Where SunSpec maps are found, in the order we look (holding registers)."""

COMMON_MODEL_ID = 1
"""Model 1 (common: manufacturer, model, serial) opens each logical device."""

MAX_MODELS = 256
"""A chain longer than this is a device looping on garbage, not a real map."""

_REFUSED = (IllegalAddress, ModbusExceptionResponse)


class SilentAtBase(TransportError):
    """No answer at all at ``base`` (discovery with ``stop_on_silence``)."""

    def __init__(self, message: str, base: int) -> None:
        super().__init__(message)
        self.base = base


@dataclass(frozen=True)
class ModelBlock:
    """One model as the device lays it out."""

    id: int
    address: int
    """Address of the model's ``ID`` register."""
    length: int
    """``L`` as declared by the device (registers after the header)."""

    @property
    def data_address(self) -> int:
        return self.address + HEADER_LENGTH

    @property
    def end(self) -> int:
        """One past the model's last register."""
        return self.address + HEADER_LENGTH + self.length


@dataclass(frozen=True)
class LogicalDevice:
    """The models from one model 1 to the next (several devices can share one Modbus unit)."""

    index: int
    """1-based position on the unit."""
    models: tuple[ModelBlock, ...]

    def first(self, model_ids: frozenset[int] | set[int]) -> ModelBlock | None:
        for block in self.models:
            if block.id in model_ids:
                return block
        return None

    @property
    def model_ids(self) -> tuple[int, ...]:
        return tuple(block.id for block in self.models)


@dataclass(frozen=True)
class SunSpecChain:
    """A discovered SunSpec map: where it is, its models, and the registers read on the way."""

    table: Table
    base: int
    models: tuple[ModelBlock, ...]
    registers: RegisterBlock
    requests: int
    """Modbus requests discovery needed (including those to bases that had nothing)."""

    def logical_devices(self) -> tuple[LogicalDevice, ...]:
        groups: list[list[ModelBlock]] = []
        for block in self.models:
            if block.id == COMMON_MODEL_ID or not groups:
                groups.append([])
            groups[-1].append(block)
        return tuple(LogicalDevice(i + 1, tuple(g)) for i, g in enumerate(groups))


class _RegisterCache:
    """Reads registers on demand, in as few requests as possible.

    Optimistic at first: each read asks for ``max_registers`` registers so one
    request covers several models. Devices that refuse reads past the end of
    their map get exact reads from then on.
    """

    def __init__(self, reader: RegisterReader, table: Table, max_registers: int) -> None:
        self.reader = reader
        self.table = table
        self.max_registers = max_registers
        self.optimistic = True
        self.requests = 0
        self.block = RegisterBlock()
        self._known: set[int] = set()

    async def ensure(self, address: int, count: int) -> list[int]:
        position, end = address, address + count
        if end > 0x10000:
            raise DecodeError(f"SunSpec chain runs past the last Modbus register (address {address}, count {count})")
        while position < end:
            if position in self._known:
                position += 1
                continue
            exact = min(end - position, self.max_registers)
            wanted = min(self.max_registers, 0x10000 - position) if self.optimistic else exact
            self.requests += 1
            try:
                values = await self.reader.read(self.table, position, wanted)
            except _REFUSED:
                if wanted == exact:
                    raise
                self.optimistic = False
                continue
            if len(values) != wanted:
                raise DecodeError(
                    f"{self.table} registers {position}..{position + wanted - 1}: asked {wanted}, got {len(values)}"
                )
            self.block.store(self.table, position, values)
            self._known.update(range(position, position + wanted))
            position += wanted
        values_read = self.block.get(self.table, address, count)
        assert values_read is not None
        return values_read


async def _walk(cache: _RegisterCache, base: int, bodies_of: frozenset[int]) -> tuple[ModelBlock, ...]:
    """Models after the marker at *base*; reads the body of the models whose id is in *bodies_of*."""
    models: list[ModelBlock] = []
    address = base + len(SUNS_MARKER)
    while len(models) < MAX_MODELS:
        try:
            model_id, length = await cache.ensure(address, HEADER_LENGTH)
        except _REFUSED:
            if not models:
                raise
            log.info("SunSpec chain at %d has no end marker: it stops at register %d", base, address)
            break
        if model_id == END_MODEL_ID:
            break
        block = ModelBlock(model_id, address, length)
        models.append(block)
        if model_id in bodies_of and length:
            await cache.ensure(block.data_address, length)
        address = block.end
    else:
        raise DecodeError(f"SunSpec chain at {base} has more than {MAX_MODELS} models: the map is corrupt")
    return tuple(models)


async def find_chain(
    reader: RegisterReader,
    max_registers: int = MODBUS_MAX_REGISTERS,
    bases: tuple[int, ...] = BASE_ADDRESSES,
    bodies_of: frozenset[int] = frozenset(),
    table: Table = "holding",
    stop_on_silence: bool = False,
) -> SunSpecChain:
    """Look for "SunS" at each base in turn and walk the first chain found.

    With *stop_on_silence*, a transport error (no answer) at a base ends the search
    at once with :class:`SilentAtBase` (an exception response still moves on).

    Raises TransportError when every base failed with a link error (the poller
    reconnects and tries again), DeviceBusy when a base answered "busy" and no
    other had a map, DecodeError when the unit answered but has no SunSpec map.
    """
    cache = _RegisterCache(reader, table, max_registers)
    problems: list[str] = []
    link_errors = 0
    busy = False
    for base in bases:
        cache.optimistic = True  # a refusal at one base says nothing about the next
        try:
            marker = await cache.ensure(base, len(SUNS_MARKER))
        except TransportError as exc:
            if stop_on_silence:
                raise SilentAtBase(f"no answer at SunSpec base {base}: {exc}", base) from exc
            link_errors += 1
            problems.append(f"{base}: {exc}")
            continue
        except TerrilError as exc:
            busy = busy or isinstance(exc, DeviceBusy)
            problems.append(f"{base}: {exc}")
            continue
        except Exception as exc:
            link_errors += 1
            problems.append(f"{base}: {type(exc).__name__}: {exc}")
            continue
        if tuple(marker) != SUNS_MARKER:
            problems.append(f"{base}: no 'SunS' marker")
            continue
        models = await _walk(cache, base, bodies_of)
        return SunSpecChain(table, base, models, cache.block, cache.requests)
    summary = "; ".join(problems)
    if link_errors == len(bases):
        raise TransportError(f"no answer at any SunSpec base address ({summary})")
    if busy:  # the map may well be at the base that answered "busy": try again later
        raise DeviceBusy(f"no SunSpec map found, the device was busy ({summary})")
    raise DecodeError(f"no SunSpec map found ({summary})")
