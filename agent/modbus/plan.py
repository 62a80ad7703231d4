"""Read planning: turn the registers a device needs into as few Modbus requests as possible.

A pure function with no I/O (in the spirit of Telegraf's ``request.go``): compile
each device's plan once after discovery, and a poll just executes it.

A :class:`RegisterSpan` is atomic: the registers of one value together with its
scale factor, or one whole SunSpec model block. Spans are never split across
requests unless a single span is larger than the device allows per request.
Nearby spans are merged when the gap between them is at most ``max_gap``
registers, because one request that reads a few unused registers is cheaper
than two round trips (on RS-485 at 9600 baud a round trip costs ~20 ms).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Table = Literal["holding", "input"]
"""Modbus register table: holding registers (function 3) or input registers (function 4)."""

MODBUS_MAX_REGISTERS = 125
"""The protocol limit for one read (function 3 or 4)."""


@dataclass(frozen=True, order=True)
class RegisterSpan:
    """``count`` consecutive registers starting at ``address`` in ``table``, read together."""

    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count


@dataclass(frozen=True, order=True)
class ReadRequest:
    """One Modbus read request (function 3 for holding, 4 for input)."""

    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_reads(
    spans: Iterable[RegisterSpan],
    max_registers: int = MODBUS_MAX_REGISTERS,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Coalesce *spans* into the fewest requests of at most *max_registers* registers.

    Spans of different tables are never merged. Overlapping and duplicate spans
    are fine. A gap of up to *max_gap* unused registers between two spans is read
    through rather than costing another request (use 0 for devices that answer
    "illegal address" on unmapped registers).
    """
    if not 1 <= max_registers <= MODBUS_MAX_REGISTERS:
        raise ValueError(f"max_registers must be 1..{MODBUS_MAX_REGISTERS}, got {max_registers}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    requests: list[ReadRequest] = []
    current: ReadRequest | None = None
    for span in sorted(set(spans)):
        if span.count <= 0:
            raise ValueError(f"span {span} has no registers")
        if current is not None and span.table == current.table:
            # After a large span was split, ``current`` is its tail and a later span can start
            # before it: extend backwards rather than cut that span across two requests.
            new_start = min(current.address, span.address)
            new_end = max(current.end, span.end)
            if span.address <= current.end + max_gap and new_end - new_start <= max_registers:
                current = ReadRequest(current.table, new_start, new_end - new_start)
                continue
            if span.address >= current.address and span.end <= current.end:  # fully inside the current request
                continue
        if current is not None:
            requests.append(current)
        if span.count > max_registers:  # only a span larger than a request is ever split
            address = span.address
            while span.end - address > max_registers:
                requests.append(ReadRequest(span.table, address, max_registers))
                address += max_registers
            current = ReadRequest(span.table, address, span.end - address)
        else:
            current = ReadRequest(span.table, span.address, span.count)
    if current is not None:
        requests.append(current)
    return requests


class RegisterBlock:
    """The registers one poll has read, addressed as on the device.

    Each response is kept as the list it came in (a poll stores one or two of
    them), and a range that lies inside one response is sliced out of it: no
    per-register bookkeeping on the poll path. A range that straddles two
    responses, or a block whose responses overlap (discovery reads headers, then
    bodies), is answered from a per-register map built on first need, in which
    a later response overrides an earlier one, register by register.
    """

    def __init__(self) -> None:
        self._chunks: dict[Table, list[tuple[int, list[int]]]] = {"holding": [], "input": []}
        self._overlap = False
        """Two responses of one table share a register: only the per-register map is exact."""
        self._values: dict[Table, dict[int, int]] | None = None
        """The per-register map (None until a range needs it, and after each store)."""

    def store(self, table: Table, address: int, registers: list[int]) -> None:
        chunks = self._chunks[table]
        registers = list(registers)
        end = address + len(registers)
        for start, existing in chunks:
            if start < end and address < start + len(existing):
                self._overlap = True
        chunks.append((address, registers))
        self._values = None

    def get(self, table: Table, address: int, count: int) -> list[int] | None:
        """The registers ``address .. address+count-1``, or None if any was not read."""
        if not self._overlap:
            for start, registers in self._chunks[table]:
                offset = address - start
                if offset >= 0 and offset + count <= len(registers):
                    return registers[offset : offset + count]
        source = self._map()[table]
        try:
            return [source[a] for a in range(address, address + count)]
        except KeyError:
            return None

    def _map(self) -> dict[Table, dict[int, int]]:
        if self._values is None:
            self._values = {"holding": {}, "input": {}}
            for table, chunks in self._chunks.items():
                target = self._values[table]
                for start, registers in chunks:
                    for offset, value in enumerate(registers):
                        target[start + offset] = value
        return self._values
