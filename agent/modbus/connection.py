"""A Modbus link (one TCP connection or one RS-485 bus) and the per-unit reader on top of it.

Why one link per endpoint: many inverters accept a single Modbus TCP client,
and several unit ids behind one gateway, or several meters on one RS-485 pair,
share the same wire. So every unit on an endpoint goes through one
:class:`ModbusLink`, which

- serialises requests (one in flight at a time) and keeps a quiet gap between
  them (a configurable pause; on RS-485 also the Modbus inter-frame silence);
- owns the connection: connects on first use and, after a failure, reconnects
  with capped exponential backoff, failing reads fast meanwhile instead of
  hammering a device that is asleep or rebooting;
- logs one line per state change (connected, lost with reason, reconnected
  after N s), never one per failed read;
- converts every pymodbus outcome through :mod:`agent.modbus.responses`.

pymodbus's own reconnect task and retries are switched off (``reconnect_delay=0``,
``retries=0``): a silent unit must cost exactly one timeout, and the backoff
policy lives here where it can be seen and tested.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from agent.errors import IllegalAddress, TerrilError, TransportError
from agent.flapping import FlapDamper
from agent.modbus.backoff import Backoff
from agent.modbus.plan import MODBUS_MAX_REGISTERS, Table
from agent.modbus.responses import FAST_RESPONSES, registers_from_response, transport_error_from

log = logging.getLogger(__name__)

LinkState = Literal["new", "connected", "unreachable", "closed"]


@dataclass(frozen=True)
class LinkStatus:
    """A link's health, as data (for the agent's health report)."""

    name: str
    kind: Literal["tcp", "rtu"]
    state: LinkState
    since: float | None
    """Wall-clock time (epoch seconds) of the last state change, None if never used."""
    reason: str
    """Why the link is unreachable ("" when it is not)."""
    requests: int


@dataclass(frozen=True)
class UnitStatus:
    """One unit's health: whether it answered its last request."""

    link: str
    unit: int
    reachable: bool | None
    """None until the first request; False after a transport failure."""
    since: float | None
    reason: str
    requests: int


class ModbusLink(ABC):
    """One path to Modbus units: a TCP connection or an RS-485 bus. Reads only."""

    kind: Literal["tcp", "rtu"]
    closed_reason = "connection closed"
    """What to log when the connection drops between two requests."""

    def __init__(self, name: str, timeout: float, pause: float, backoff: Backoff | None) -> None:
        if not timeout > 0:
            raise ValueError(f"{name}: timeout must be > 0 s, got {timeout}")
        if not pause >= 0:
            raise ValueError(f"{name}: pause must be >= 0 s, got {pause}")
        self.name = name
        """Human name of the endpoint (``host:port`` or serial device path), used in every message."""
        self.timeout = timeout
        self.pause = pause
        self.backoff = backoff if backoff is not None else Backoff()
        self.requests = 0
        """Requests sent on this link (all units)."""
        self._client: ModbusBaseClient | None = None
        self._lock = asyncio.Lock()
        self._state: LinkState = "new"
        self._since: float | None = None
        self._down_since = 0.0
        self._reason = ""
        self._last_request_end = -math.inf
        self._connect_error: BaseException | None = None
        self._shut = False
        """Closed for good (``close(final=True)``): no read reconnects."""

    # -- what subclasses provide -------------------------------------------------

    @abstractmethod
    def _new_client(self) -> ModbusBaseClient:
        """A read-only pymodbus client for this endpoint (built inside the event loop)."""

    def gap(self) -> float:
        """Seconds of quiet between the end of one request and the start of the next."""
        return self.pause

    # -- public surface ----------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state == "connected"

    @property
    def unreachable(self) -> bool:
        return self._state == "unreachable"

    def status(self) -> LinkStatus:
        return LinkStatus(self.name, self.kind, self._state, self._since, self._reason, self.requests)

    async def read(
        self, unit: int, table: Table, address: int, count: int, on_send: Callable[[], None] | None = None
    ) -> list[int]:
        """Read *count* registers of *unit* (function 3 for holding, 4 for input).

        *on_send* is called when the request actually goes out: after waiting for the
        link (other units' requests on a shared bus) and the quiet gap.
        Raises TransportError, DeviceBusy, IllegalAddress or ModbusExceptionResponse.
        """
        where = f"{self.name} unit {unit} {table} registers {address}..{address + count - 1}"
        _check_request(table, address, count, where)
        async with self._lock:
            if self._shut:
                raise TransportError(f"{where}: {self.name} is closed (the agent is stopping)")
            client = await self._ensure_connected(where)
            wait = self._last_request_end + self.gap() - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests += 1
            if on_send is not None:
                on_send()
            try:
                if table == "holding":
                    response = await client.read_holding_registers(address, count=count, device_id=unit)
                else:
                    response = await client.read_input_registers(address, count=count, device_id=unit)
            except (ModbusException, OSError) as exc:
                error = transport_error_from(exc, where)
                if not client.connected:
                    self._mark_down(str(error).removeprefix(f"{where}: "))
                raise error from exc
            finally:
                self._last_request_end = time.monotonic()
        return registers_from_response(response, where, count)

    async def close(self, *, final: bool = False) -> None:
        """Close the connection or serial port. The link can be used again afterwards, unless *final*:
        then a read still on its way (a poll running while the agent stops) fails instead of reopening it."""
        if final:
            self._shut = True  # before the lock: a read waiting for it must not reconnect
        async with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._state != "new":
                self._set_state("closed", "")

    # -- connection management ---------------------------------------------------

    async def _ensure_connected(self, where: str) -> ModbusBaseClient:
        if self._client is None:
            self._client = self._new_client()
            for response_class in FAST_RESPONSES:
                self._client.register(response_class)
            self._capture_connect_errors(self._client)
            self._refuse_undecodable_answers(self._client)
            self._client.ctx.trace_connect = self._on_connection_change
        client = self._client
        if client.connected:
            return client
        if self._state == "connected":
            self._mark_down(self.closed_reason)
        now = time.monotonic()
        if not self.backoff.ready(now):
            raise TransportError(
                f"{where}: {self.name} unreachable ({self._reason}); "
                f"next connection attempt in {self.backoff.retry_at - now:.1f} s"
            )
        self._connect_error = None
        if not await client.connect():
            reason = self._connect_failure_reason()
            delay = self.backoff.failed(time.monotonic())
            self._mark_down(reason)
            raise TransportError(f"{where}: cannot connect: {reason}; next attempt in {delay:.1f} s")
        self.backoff.succeeded()
        self._mark_up()
        return client

    def _capture_connect_errors(self, client: ModbusBaseClient) -> None:
        # pymodbus's connect() swallows the OSError and returns False; keep the
        # exception so the log line can say *why* (refused, no route, no such port).
        original: Callable[[], Any] = client.ctx.call_create

        async def call_create() -> Any:
            try:
                return await original()
            except BaseException as exc:
                self._connect_error = exc
                raise

        client.ctx.call_create = call_create

    def _refuse_undecodable_answers(self, client: ModbusBaseClient) -> None:
        # pymodbus decodes answers inside asyncio's data_received: an answer it cannot decode
        # (unknown function code, truncated exception) raises there, asyncio logs a "Fatal
        # error" traceback and closes the connection every unit of the link shares. The frame
        # itself was whole (delimited by its length), so fail only the read waiting for it.
        original: Callable[..., int] = client.ctx.callback_data

        def callback_data(data: bytes, addr: tuple[str, int] | None = None) -> int:
            try:
                return original(data, addr)
            except ModbusException as exc:
                pending = client.ctx.response_future
                if not pending.done():
                    detail = str(exc.string).rsplit("] ", 1)[-1]
                    pending.set_exception(ModbusIOException(f"undecodable answer: {detail}"))
                return len(data)

        client.ctx.callback_data = callback_data  # type: ignore[method-assign]

    def _on_connection_change(self, connected: bool) -> None:
        # pymodbus leaves a request in flight waiting for its full timeout when
        # the connection drops under it; fail it now with the real reason.
        if connected or self._client is None or not self._lock.locked():
            return
        pending = self._client.ctx.response_future
        if not pending.done():
            pending.set_exception(ConnectionException("connection lost"))

    def _connect_failure_reason(self) -> str:
        exc = self._connect_error
        if exc is None or isinstance(exc, (asyncio.CancelledError, TimeoutError)):
            return f"no answer within {self.timeout:g} s"
        return str(exc) or type(exc).__name__

    def _mark_up(self) -> None:
        if self._state == "unreachable":
            log.info("modbus %s %s reconnected after %.0f s", self.kind, self.name, time.monotonic() - self._down_since)
        else:
            log.info("modbus %s %s connected", self.kind, self.name)
        self._set_state("connected", "")

    def _mark_down(self, reason: str) -> None:
        if self._state == "unreachable":
            self._reason = reason  # same state: no new log line
            return
        if self._state == "connected":
            log.warning("modbus %s %s lost: %s; reconnecting with backoff", self.kind, self.name, reason)
        else:
            log.warning("modbus %s %s unreachable: %s; retrying with backoff", self.kind, self.name, reason)
        self._down_since = time.monotonic()
        self._set_state("unreachable", reason)

    def _set_state(self, state: LinkState, reason: str) -> None:
        self._state = state
        self._reason = reason
        self._since = time.time()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._state}>"


def _check_request(table: str, address: int, count: int, where: str) -> None:
    """Reject a request no device could answer, before it costs a round trip."""
    if table not in ("holding", "input"):
        raise IllegalAddress(f"{where}: unknown register table {table!r} (holding or input)")
    if not 1 <= count <= MODBUS_MAX_REGISTERS:
        raise IllegalAddress(f"{where}: count must be 1..{MODBUS_MAX_REGISTERS}, got {count}")
    if address < 0 or address + count > 0x10000:
        raise IllegalAddress(f"{where}: registers outside 0..65535")


class UnitReader:
    """Reads the registers of one unit (device id) through a shared link.

    Implements :class:`agent.modbus.types.RegisterReader`. Tracks whether the
    unit answers, so a silent meter on a working bus is logged once (not once
    per poll) and shows in health data.
    """

    def __init__(self, link: ModbusLink, unit: int) -> None:
        if not 0 <= unit <= 255:
            raise ValueError(f"{link.name}: unit id must be 0..255, got {unit}")
        self.link = link
        self.unit = unit
        self.requests = 0
        self.last_sent: float | None = None
        """``time.monotonic()`` when this unit's last request went on the wire (after waiting for the link)."""
        self._reachable: bool | None = None
        self._since: float | None = None
        self._down_since = 0.0
        self._reason = ""
        self._logged_down = False
        self._flaps = FlapDamper(f"modbus unit {unit} on {link.name}", log)

    @property
    def reachable(self) -> bool | None:
        return self._reachable

    def status(self) -> UnitStatus:
        return UnitStatus(self.link.name, self.unit, self._reachable, self._since, self._reason, self.requests)

    async def read(self, table: Table, address: int, count: int) -> list[int]:
        """Read ``count`` registers from ``address`` (function 3 for holding, 4 for input)."""
        self.requests += 1
        self._flaps.tick()
        try:
            registers = await self.link.read(self.unit, table, address, count, on_send=self._sent)
        except TransportError as exc:
            self._went_silent(str(exc).removeprefix(f"{self.link.name} unit {self.unit} "))
            raise
        except TerrilError:
            self._answered()  # an exception response is an answer: the unit is alive
            raise
        self._answered()
        return registers

    def _sent(self) -> None:
        self.last_sent = time.monotonic()

    def _went_silent(self, reason: str) -> None:
        if self._reachable is not False:
            self._reachable, self._since = False, time.time()
            self._down_since = time.monotonic()
        self._reason = reason
        # When the whole link is down its own log line already says so.
        if self.link.connected and not self._logged_down:
            self._logged_down = True
            if self._flaps.allow("not answering", reason):
                log.warning("modbus unit %d on %s not answering: %s", self.unit, self.link.name, reason)

    def _answered(self) -> None:
        if self._reachable is True:
            return
        if self._logged_down:
            if self._flaps.allow("answering", "answering again"):
                log.info(
                    "modbus unit %d on %s answering again after %.0f s",
                    self.unit, self.link.name, time.monotonic() - self._down_since,
                )
        elif self._reachable is None:
            log.info("modbus unit %d on %s answering", self.unit, self.link.name)
        self._reachable, self._since, self._reason = True, time.time(), ""
        self._logged_down = False

    def __repr__(self) -> str:
        return f"<UnitReader {self.link.name} unit {self.unit}>"
