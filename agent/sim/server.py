"""Serve simulated devices over Modbus TCP or RTU (serial), several unit ids per port.

We answer each request ourselves instead of letting pymodbus' ``SimDevice``
answer from a register block, because a test needs what a datastore cannot
express: a unit that does not answer at all (``silent``: the client times out),
registers computed at the moment of the request (the power curve, the
counters), a refusal of every write with an exception response, a record of
every function code received, and on a serial line the wire time a pty does not
have (a pty ignores the baud rate, so we wait what the bytes would take).

The only pymodbus internals used are ``ServerRequestHandler.handle_request``
(overridden) and ``callback_new_connection`` (to install it); pymodbus still
does the framing, CRCs and transaction ids.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimData
from pymodbus.simulator import SimDevice as PymodbusSimDevice

from agent.sim.devices import SimDevice
from agent.sim.sunspec_image import RegisterImage, encode_chain

log = logging.getLogger(__name__)

READ_FUNCTION_CODES = frozenset({3, 4})
BITS_PER_CHAR = 11
"""Start bit, 8 data bits, parity or second stop bit, stop bit: what RTU puts on the wire per byte."""


class Recorder:
    """Every request a server received: function codes and request counts per unit id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[int, Counter[int]] = {}

    def record(self, unit: int, function_code: int) -> None:
        with self._lock:
            self._codes.setdefault(unit, Counter())[function_code] += 1

    def function_codes(self, unit: int) -> Counter[int]:
        """Function code -> number of requests received for ``unit`` (a copy)."""
        with self._lock:
            return Counter(self._codes.get(unit, Counter()))

    def requests(self, unit: int) -> int:
        with self._lock:
            return sum(self._codes.get(unit, Counter()).values())

    def units(self) -> list[int]:
        with self._lock:
            return sorted(self._codes)

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()


@dataclass
class SimUnit:
    """One Modbus unit id: one SunSpec map holding the blocks of one or more logical devices."""

    unit_id: int
    devices: list[SimDevice]
    base_address: int = 40000

    @property
    def silent(self) -> bool:
        return any(d.silent for d in self.devices)

    def image(self) -> RegisterImage:
        blocks: list[list[int]] = []
        for device in self.devices:
            blocks += device.blocks(self.unit_id)
        return RegisterImage(self.base_address, tuple(encode_chain(blocks)))


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


@dataclass(frozen=True)
class SerialEndpoint:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    emulate_wire_time: bool = True
    """Delay each answer by the time request and answer would take at ``baudrate`` (a pty has no baud)."""

    def describe(self) -> str:
        return f"rtu {self.port} {self.baudrate} 8{self.parity}{self.stopbits}"


Endpoint = TcpEndpoint | SerialEndpoint


def rtu_frame_bytes(pdu: ModbusPDU) -> int:
    """Bytes of ``pdu`` as an RTU frame: unit id, function code, data, CRC."""
    return 1 + 1 + len(pdu.encode()) + 2


def wire_time_s(request: ModbusPDU, response: ModbusPDU, baudrate: int) -> float:
    """Seconds a request and its answer occupy an RS-485 line, 3.5-character gaps included."""
    chars = rtu_frame_bytes(request) + rtu_frame_bytes(response) + 2 * 3.5
    return chars * BITS_PER_CHAR / baudrate


@dataclass
class SimServer:
    """Simulated units behind one endpoint (a TCP port or a serial line)."""

    endpoint: Endpoint
    units: dict[int, SimUnit]
    recorder: Recorder = field(default_factory=Recorder)
    _server: Any = None
    _warned_writes: set[tuple[int, int]] = field(default_factory=set)

    def describe(self) -> str:
        units = ", ".join(
            f"unit {u.unit_id}: " + "+".join(d.name for d in u.devices) + f" @{u.base_address}"
            for u in self.units.values()
        )
        return f"{self.endpoint.describe()} [{units}]"

    # ------------------------------------------------------------------ answering
    def respond(self, request: ModbusPDU) -> ModbusPDU | None:
        """The answer to ``request``, or None to stay silent (the client times out)."""
        unit_id, fc = request.dev_id, request.function_code
        self.recorder.record(unit_id, fc)
        unit = self.units.get(unit_id)
        if unit is None:
            if isinstance(self.endpoint, SerialEndpoint):
                return None  # on a bus, nobody answers for an absent address
            return ExceptionResponse(fc, ExcCodes.GATEWAY_NO_RESPONSE, device_id=unit_id)
        if unit.silent:
            return None
        if fc not in READ_FUNCTION_CODES:
            if (unit_id, fc) not in self._warned_writes:
                self._warned_writes.add((unit_id, fc))
                log.warning("unit %d refused function code %d (only 3 and 4 are served)", unit_id, fc)
            return ExceptionResponse(fc, ExcCodes.ILLEGAL_FUNCTION, device_id=unit_id)
        try:
            image = unit.image()
        except Exception:  # a simulator bug must not kill the server: answer like a sick device
            log.exception("unit %d could not build its registers", unit_id)
            return ExceptionResponse(fc, ExcCodes.DEVICE_FAILURE, device_id=unit_id)
        registers = image.read(request.address, request.count)
        if registers is None:
            return ExceptionResponse(fc, ExcCodes.ILLEGAL_ADDRESS, device_id=unit_id)
        cls = ReadHoldingRegistersResponse if fc == 3 else ReadInputRegistersResponse
        return cls(registers=registers, dev_id=unit_id, transaction_id=request.transaction_id)

    def answer_delay(self, request: ModbusPDU, response: ModbusPDU) -> float:
        ep = self.endpoint
        if isinstance(ep, SerialEndpoint) and ep.emulate_wire_time:
            return wire_time_s(request, response, ep.baudrate)
        return 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen (TCP) or open the serial port; returns once requests are being served."""
        placeholder = [PymodbusSimDevice(id=0, simdata=[SimData(0)])]  # never read: we answer ourselves
        ep = self.endpoint
        if isinstance(ep, TcpEndpoint):
            server: Any = _TcpServer(placeholder, address=(ep.host, ep.port))
        else:
            server = _SerialServer(
                placeholder,
                framer=FramerType.RTU,
                port=ep.port,
                baudrate=ep.baudrate,
                parity=ep.parity,
                stopbits=ep.stopbits,
            )
        server.sim = self
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


class _Handler(ServerRequestHandler):
    """pymodbus' per-connection handler, answering through ``SimServer.respond``."""

    async def handle_request(self) -> None:
        request, addr = self.last_pdu, self.last_addr  # read before any await: the next frame overwrites them
        if not request:
            return
        sim: SimServer = self.server.sim
        response = sim.respond(request)
        if response is None:
            return
        response.transaction_id = request.transaction_id
        response.dev_id = request.dev_id
        delay = sim.answer_delay(request, response)
        if delay > 0:
            await asyncio.sleep(delay)
        self.server_send(response, addr)  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated


class _TcpServer(ModbusTcpServer):
    sim: SimServer

    def callback_new_connection(self) -> _Handler:
        return _Handler(  # type: ignore[no-untyped-call]  # pymodbus' handler __init__ is unannotated
            self, self.trace_packet, self.trace_pdu, self.trace_connect)


class _SerialServer(ModbusSerialServer):
    sim: SimServer

    def callback_new_connection(self) -> _Handler:
        return _Handler(  # type: ignore[no-untyped-call]  # pymodbus' handler __init__ is unannotated
            self, self.trace_packet, self.trace_pdu, self.trace_connect)


class SimulatorThread:
    """Runs servers on their own asyncio loop in a daemon thread (for tests and the demo).

    ``start()`` returns once every server serves; ``stop()`` shuts them down
    and joins the thread. Device controls and the recorder are thread-safe, so
    the caller's thread may use them while the loop answers requests.
    """

    def __init__(self, servers: Sequence[SimServer]) -> None:
        self.servers = list(servers)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="terril-sim", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start_all(), self._loop)
        try:
            future.result(timeout)
        except BaseException:
            self.stop()
            raise

    async def _start_all(self) -> None:
        for server in self.servers:
            await server.start()

    async def _stop_all(self) -> None:
        for server in self.servers:
            await server.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            self._loop.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_all(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
