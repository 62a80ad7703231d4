"""The one adapter from pymodbus outcomes to terril errors.

pymodbus reports failures two ways: it raises (``ConnectionException``,
``ModbusIOException`` on a timeout) and it *returns* Modbus exception
responses as values (``result.isError()``). Everything past this module sees
only registers or a :mod:`agent.errors` exception that says what to do.

Exception code mapping (Modbus application protocol, section 7):

======================  =============================  ===========================
code                    meaning                        terril error
======================  =============================  ===========================
2 illegal address       range not mapped               IllegalAddress (don't retry)
3 illegal value         count not accepted for range   IllegalAddress (don't retry)
5 acknowledge           working on it                  DeviceBusy (retry next poll)
6 busy                  busy                           DeviceBusy (retry next poll)
0x0A path unavailable   gateway cannot reach unit      GatewayError (a TransportError)
0x0B target no answer   unit behind gateway silent     GatewayError (a TransportError)
others (1, 4, 7, 8…)    device refuses / fails         ModbusExceptionResponse
======================  =============================  ===========================

Gateway codes are transport failures *of the unit*, not of the link: the
gateway itself answered, so the shared TCP connection stays up and other
units behind the same gateway keep being polled; only that unit is marked
unreachable.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from agent.errors import DeviceBusy, IllegalAddress, ModbusExceptionResponse, TransportError

BUSY_CODES = frozenset({5, 6})
ILLEGAL_ADDRESS_CODES = frozenset({2, 3})
GATEWAY_CODES = frozenset({0x0A, 0x0B})

_CODE_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target failed to respond",
}


class GatewayError(TransportError):
    """A Modbus gateway answered that the unit behind it is unreachable (codes 0x0A, 0x0B)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def describe_code(code: int) -> str:
    """``"2 (illegal data address)"`` — the code with its name, for messages."""
    name = _CODE_NAMES.get(code)
    return f"{code} ({name})" if name else str(code)


def registers_from_response(response: ModbusPDU, where: str, count: int) -> list[int]:
    """The registers of a read response, or the terril error its exception code means.

    *where* names the device and range (``"192.168.1.50:502 unit 1 holding 40000..40069"``).
    """
    if response.isError():
        code = int(getattr(response, "exception_code", 0))
        message = f"{where}: Modbus exception {describe_code(code)}"
        if code in BUSY_CODES:
            raise DeviceBusy(message)
        if code in ILLEGAL_ADDRESS_CODES:
            raise IllegalAddress(message)
        if code in GATEWAY_CODES:
            raise GatewayError(message, code)
        raise ModbusExceptionResponse(message, code)
    malformed = getattr(response, "malformed", None)
    if malformed is not None:
        raise TransportError(f"{where}: malformed answer: {malformed}")
    registers = list(response.registers)
    if len(registers) != count:
        raise TransportError(f"{where}: answer holds {len(registers)} registers, asked for {count}")
    return registers


def transport_error_from(exc: BaseException, where: str) -> TransportError:
    """A :class:`TransportError` naming *where* for a pymodbus or OS failure."""
    if isinstance(exc, ModbusIOException) and "No response" in str(exc):
        reason = "no answer within the timeout"
    elif isinstance(exc, ConnectionException):
        reason = exc.string.removeprefix("[Connection] ") or "not connected"
    elif isinstance(exc, ModbusException):
        reason = exc.string
    else:
        reason = str(exc) or type(exc).__name__
    return TransportError(f"{where}: {reason}")


class _RegistersInOneUnpack:
    """pymodbus 3.16 decodes a register response one ``struct.unpack`` per register and
    then formats the whole PDU, registers included, for a debug line even when debug
    logging is off: about a third of its CPU per read. Same result in one unpack, and
    a short ``str`` (no register dump)."""

    registers: Sequence[int]
    dev_id: int
    transaction_id: int
    malformed: str | None = None
    """Why the answer cannot be read (set instead of raising: see :meth:`decode`)."""

    def decode(self, data: bytes) -> None:
        """Never raises: pymodbus decodes inside ``data_received``, where an exception is an
        asyncio "Fatal error" with a traceback and the end of the connection every unit of the
        link shares. The frame itself is whole (the MBAP length delimits it on TCP), so the
        answer is refused as malformed by :func:`registers_from_response` and the link stays up."""
        if not data or (data_len := int(data[0])) >= len(data):  # where pymodbus' own decode raises
            self.registers = []
            self.malformed = f"byte count {data[0] if data else 'missing'} in an answer of " \
                             f"{max(0, len(data) - 1)} data bytes"
            return
        self.registers = list(struct.unpack_from(f">{data_len // 2}H", data, 1))

    def __str__(self) -> str:
        return f"{type(self).__name__}(dev_id={self.dev_id}, transaction_id={self.transaction_id}, " \
               f"{len(self.registers)} registers)"


class FastReadHoldingRegistersResponse(_RegistersInOneUnpack, ReadHoldingRegistersResponse):
    """Function 3 response, decoded in one unpack (register it with ``client.register``)."""


class FastReadInputRegistersResponse(_RegistersInOneUnpack, ReadInputRegistersResponse):
    """Function 4 response, decoded in one unpack (register it with ``client.register``)."""


FAST_RESPONSES = (FastReadHoldingRegistersResponse, FastReadInputRegistersResponse)
