"""What the rest of the agent needs from a Modbus link: read registers of one unit, never write."""

from __future__ import annotations

from typing import Protocol

from agent.modbus.plan import ReadRequest, RegisterBlock, Table


class RegisterReader(Protocol):
    """Reads registers of one Modbus unit (device id) over a TCP connection or an RS-485 bus.

    Implementations raise :class:`agent.errors.TransportError`, ``DeviceBusy``,
    ``IllegalAddress`` or ``ModbusExceptionResponse``; they never return an error
    value. There is deliberately no write method.
    """

    requests: int
    """Modbus requests sent through this reader since it was created (for health)."""
    last_sent: float | None
    """``time.monotonic()`` when the last request went on the wire, None before the first.

    The poller stamps a poll with it: a shared RS-485 bus can make a device wait
    seconds for its turn. A reader that cannot tell leaves it None, and the poll
    is stamped when it starts."""

    @property
    def link(self) -> object:
        """The connection or bus this reader goes through: readers with the same link take turns
        on it (the agent polls them in one task per link)."""
        ...

    async def read(self, table: Table, address: int, count: int) -> list[int]:
        """Read ``count`` registers from ``address`` (function 3 for holding, 4 for input)."""
        ...


async def execute_plan(reader: RegisterReader, plan: list[ReadRequest]) -> RegisterBlock:
    """Run every request of *plan* in order and collect the registers (one poll)."""
    block = RegisterBlock()
    for request in plan:
        block.store(request.table, request.address, await reader.read(request.table, request.address, request.count))
    return block
