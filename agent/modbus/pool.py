"""Build the links a configuration describes, sharing one link per endpoint.

Devices are configured one by one, but two devices on the same gateway or the
same serial port must share one :class:`TcpLink` / :class:`RtuBus`; this pool
hands out that shared instance and refuses contradictory settings instead of
silently picking one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from agent.errors import ConfigError
from agent.modbus.backoff import Backoff
from agent.modbus.connection import ModbusLink, UnitReader
from agent.modbus.rtu import RtuBus
from agent.modbus.tcp import TcpLink

L = TypeVar("L", bound=ModbusLink)


def quiet_pymodbus_logging() -> None:
    """Keep pymodbus's own per-request log lines out of the agent's log.

    pymodbus logs an error for every unanswered request and a warning for every
    failed connection attempt; the links log one line per state change instead.
    """
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class LinkPool:
    """The Modbus links of one agent, one per TCP endpoint and one per serial port.

    *backoff* builds each link's reconnect policy (default: 1 s doubling to 60 s, with jitter).
    *source* names the configuration in ConfigError messages.
    """

    def __init__(self, backoff: Callable[[], Backoff] = Backoff, source: str = "devices") -> None:
        self._backoff = backoff
        self._source = source
        self._tcp: dict[tuple[str, int], TcpLink] = {}
        self._rtu: dict[str, RtuBus] = {}
        self.closed = False
        quiet_pymodbus_logging()

    @property
    def links(self) -> list[ModbusLink]:
        return [*self._tcp.values(), *self._rtu.values()]

    def tcp(self, host: str, port: int = 502, timeout: float = 3.0, pause: float = 0.0, *, where: str = "") -> TcpLink:
        """The shared link to ``host:port``. *where* (e.g. ``devices[2].transport``) prefixes errors."""
        key = (host.strip().lower(), port)
        wanted = {"timeout": timeout, "pause": pause}
        existing = self._tcp.get(key)
        if existing is not None:
            return self._same(existing, wanted, where)
        try:
            link = TcpLink(host.strip(), port, timeout, pause, backoff=self._backoff())
        except ValueError as exc:
            raise ConfigError(self._source, [f"{where or 'transport'}: {exc}"]) from None
        self._tcp[key] = link
        return link

    def rtu(
        self,
        port: str,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        timeout: float = 1.0,
        pause: float = 0.05,
        *,
        where: str = "",
    ) -> RtuBus:
        """The shared bus on serial *port*; every device on it must give the same settings."""
        wanted = {
            "baudrate": baudrate, "parity": parity, "stopbits": stopbits,
            "bytesize": bytesize, "timeout": timeout, "pause": pause,
        }
        existing = self._rtu.get(port)
        if existing is not None:
            return self._same(existing, wanted, where)
        try:
            bus = RtuBus(port, baudrate, parity, stopbits, bytesize, timeout, pause, backoff=self._backoff())
        except ValueError as exc:
            raise ConfigError(self._source, [f"{where or 'transport'}: {exc}"]) from None
        self._rtu[port] = bus
        return bus

    def unit(self, link: ModbusLink, unit: int, *, where: str = "") -> UnitReader:
        """A reader for *unit* on *link*."""
        try:
            return UnitReader(link, unit)
        except ValueError as exc:
            raise ConfigError(self._source, [f"{where or 'unit'}: {exc}"]) from None

    async def close(self) -> None:
        """Close every connection and serial port for good: a poll still running cannot reopen them."""
        self.closed = True
        await asyncio.gather(*(link.close(final=True) for link in self.links))

    def _same(self, link: L, wanted: Mapping[str, object], where: str) -> L:
        problems = [
            f"{where or 'transport'}: {key} {value!r} differs from {getattr(link, key)!r} "
            f"given earlier for {link.name} (one {link.kind} link has one setting)"
            for key, value in wanted.items()
            if getattr(link, key) != value
        ]
        if problems:
            raise ConfigError(self._source, problems)
        return link
