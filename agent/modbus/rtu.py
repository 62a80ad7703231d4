"""Modbus RTU: several devices on one RS-485 serial port share one bus."""

from __future__ import annotations

from pymodbus.client.base import ModbusBaseClient

from agent.modbus.backoff import Backoff
from agent.modbus.connection import ModbusLink
from agent.modbus.guard import ReadOnlySerialClient

PARITIES = ("N", "E", "O")


def char_bits(parity: str, stopbits: int, bytesize: int) -> int:
    """Bits on the wire per character: start bit, data bits, parity bit if any, stop bits."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def inter_frame_silence(baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> float:
    """Minimum silence between two RTU frames, in seconds (Modbus over serial line, 2.5.1.1).

    3.5 character times; above 19200 baud the specification fixes it at 1.75 ms.
    """
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_bits(parity, stopbits, bytesize) / baudrate


class RtuBus(ModbusLink):
    """One RS-485 bus (one serial port), shared by every unit wired to it.

    Only one request may be on the wire at a time, and after each exchange the
    bus stays quiet for the Modbus inter-frame silence plus *pause* (slow
    meters need a few ms more than the standard asks). A unit that does not
    answer costs one *timeout* and does not stop the other units being polled.
    """

    kind = "rtu"
    closed_reason = "serial port closed (adapter unplugged or failing?)"

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        timeout: float = 1.0,
        pause: float = 0.05,
        backoff: Backoff | None = None,
    ) -> None:
        problems = []
        if baudrate <= 0:
            problems.append(f"baudrate must be > 0, got {baudrate}")
        if parity not in PARITIES:
            problems.append(f"parity must be one of {', '.join(PARITIES)}, got {parity!r}")
        if stopbits not in (1, 2):
            problems.append(f"stopbits must be 1 or 2, got {stopbits}")
        if bytesize not in (7, 8):
            problems.append(f"bytesize must be 7 or 8, got {bytesize}")
        if problems:
            raise ValueError(f"{port}: " + "; ".join(problems))
        super().__init__(port, timeout, pause, backoff)
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize

    @property
    def silence(self) -> float:
        """The Modbus inter-frame silence at this bus's settings, in seconds."""
        return inter_frame_silence(self.baudrate, self.parity, self.stopbits, self.bytesize)

    def gap(self) -> float:
        return self.silence + self.pause

    def frame_time(self, nbytes: int) -> float:
        """Seconds *nbytes* take on the wire at this bus's settings."""
        return nbytes * char_bits(self.parity, self.stopbits, self.bytesize) / self.baudrate

    def _new_client(self) -> ModbusBaseClient:
        return ReadOnlySerialClient(
            self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=self.bytesize,
            timeout=self.timeout,
            retries=0,  # a silent unit costs one timeout, not (retries+1) of them
            reconnect_delay=0,  # reopening the port is ModbusLink's job (backoff, logging)
            name=self.name,
        )
