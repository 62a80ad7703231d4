"""The simulator on an RS-485 line emulated by a socat pty pair: several units, wire time, silence."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from agent.sim.server import BITS_PER_CHAR
from tests.fixtures.modbus_servers import SerialBusHandle

SUNS = [0x5375, 0x6E53]


async def _session(bus: SerialBusHandle, calls: list[tuple[int, int, int]], timeout: float = 1.0) -> list[Any]:
    client = AsyncModbusSerialClient(bus.client_port, baudrate=bus.baudrate, timeout=timeout, retries=0)
    await client.connect()
    out: list[Any] = []
    try:
        for unit, address, count in calls:
            t0 = time.monotonic()
            try:
                r: Any = await client.read_holding_registers(address, count=count, device_id=unit)
            except ModbusIOException as exc:
                r = exc
            out.append((r, time.monotonic() - t0))
    finally:
        client.close()
    return out


def test_several_units_on_one_line(serial_bus: SerialBusHandle) -> None:
    results = asyncio.run(_session(serial_bus, [(1, 40000, 2), (2, 40000, 4), (3, 40000, 4)]))
    (r1, _), (r2, _), (r3, _) = results
    assert r1.registers == SUNS
    assert r2.registers == [*SUNS, 1, 66]
    assert r3.registers == [*SUNS, 1, 66]
    assert [serial_bus.requests(u) for u in (1, 2, 3)] == [1, 1, 1]
    assert serial_bus.function_codes(2) == Counter({3: 1})


def test_wire_time_is_emulated(serial_bus_factory: Callable[..., SerialBusHandle]) -> None:
    bus = serial_bus_factory([{"unit": 5, "kind": "meter"}], baudrate=4800)
    ((r, elapsed),) = asyncio.run(_session(bus, [(5, 40000 + 70, 107)]))
    assert r.registers[:2] == [203, 105]
    # request 8 bytes + answer 5 + 2*107 bytes + two 3.5-char gaps, 11 bits each
    expected = (8 + 5 + 2 * 107 + 7) * BITS_PER_CHAR / 4800
    assert expected > 0.5
    assert elapsed >= expected * 0.95
    assert elapsed < expected + 0.5


def test_absent_and_silent_units_do_not_answer(serial_bus: SerialBusHandle) -> None:
    serial_bus.device(2).set_silent(True)
    results = asyncio.run(_session(serial_bus, [(7, 40000, 2), (2, 40000, 2), (1, 40000, 2)], timeout=0.4))
    assert isinstance(results[0][0], ModbusIOException)
    assert isinstance(results[1][0], ModbusIOException)
    assert results[2][0].registers == SUNS  # the line recovers after two timeouts
    assert serial_bus.requests(7) == 1 and serial_bus.requests(2) == 1
