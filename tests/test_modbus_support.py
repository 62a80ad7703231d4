"""Real pymodbus servers for the Modbus link tests (no tests here).

Each server records every request it receives (time, unit, function code) and
every answer it sends, so tests can check from the device's side that terril
only reads and never puts two requests on a bus at once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

EXCEPTION_BASE = 900
"""Reading holding register 900+N answers Modbus exception code N."""


def holding_value(unit: int, address: int) -> int:
    return unit * 1000 + address


def input_value(unit: int, address: int) -> int:
    return 30000 + unit * 1000 + address


@dataclass
class Traffic:
    """What a test server saw: one entry per PDU received or sent."""

    events: list[tuple[float, str, int, int]] = field(default_factory=list)
    """(monotonic time, "recv" or "send", unit, function code)."""
    connections: int = 0

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        self.events.append((time.monotonic(), "send" if sending else "recv", pdu.dev_id, pdu.function_code))
        return pdu

    def trace_connect(self, connected: bool) -> None:
        if connected:
            self.connections += 1

    def received(self) -> list[tuple[float, str, int, int]]:
        return [e for e in self.events if e[1] == "recv"]

    def function_codes(self) -> set[int]:
        return {e[3] for e in self.received()}


def make_device(unit: int, answer_delay: Callable[[int], float] | None = None) -> SimDevice:
    """A unit with holding registers 0..999 and input registers 0..99, distinct values per unit and table.

    *answer_delay(count)* (seconds) is awaited before answering: emulated wire time on a pty.
    """

    async def action(
        function_code: int, start: int, address: int, count: int, registers: list[int], values: Any
    ) -> ExcCodes | None:
        if answer_delay is not None:
            await asyncio.sleep(answer_delay(count))
        if function_code == 3 and EXCEPTION_BASE < address <= EXCEPTION_BASE + 0x0B:
            return ExcCodes(address - EXCEPTION_BASE)
        return None

    return SimDevice(
        id=unit,
        action=action,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[holding_value(unit, a) for a in range(1000)], datatype=DataType.REGISTERS)],
            [SimData(0, values=[input_value(unit, a) for a in range(100)], datatype=DataType.REGISTERS)],
        ),
    )


class SilentForUnknownUnits(SimCore):
    """SimCore answers 'device failure' for a unit it does not serve; a real bus stays silent."""

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1) -> Any:
        if device_id not in self.devices:
            raise NoSuchIdException(f"no unit {device_id} here")
        return await super().async_getValues(device_id, func_code, address, count)


async def start_tcp_server(port: int, units: tuple[int, ...] = (1, 2), traffic: Traffic | None = None) -> ModbusTcpServer:
    traffic = traffic if traffic is not None else Traffic()
    server = ModbusTcpServer(
        [make_device(u) for u in units],
        address=("127.0.0.1", port),
        trace_pdu=traffic.trace_pdu,
        trace_connect=traffic.trace_connect,
    )
    await server.serve_forever(background=True)
    return server


async def start_serial_server(
    port: Path, baudrate: int, units: tuple[int, ...], traffic: Traffic
) -> ModbusSerialServer:
    """An RTU server on one end of a pty pair; answers are delayed by the frame time at *baudrate*."""

    def wire_time(count: int) -> float:
        request, response = 8, 5 + 2 * count  # RTU frame sizes for function 3/4
        return (request + response) * 10 / baudrate

    devices = [make_device(u, wire_time) for u in units]
    server = ModbusSerialServer(
        devices, port=str(port), baudrate=baudrate, ignore_missing_devices=True, trace_pdu=traffic.trace_pdu
    )
    server.context = SilentForUnknownUnits(devices)
    await server.serve_forever(background=True)
    return server


def start_pty_pair(directory: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """socat joining two ptys: the agent opens one end, the test server the other."""
    a, b = directory / "agent-tty", directory / "device-tty"
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (os.path.exists(a) and os.path.exists(b)):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("socat did not create the pty pair")
        time.sleep(0.01)
    return proc, a, b
