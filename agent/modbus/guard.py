"""The read-only guard: terril never writes a Modbus register.

Modbus has no authentication, so a write sent by mistake could change an
inverter's grid settings. Two layers make a write structurally impossible:

1. :class:`ReadOnlyClientMixin` replaces every pymodbus write helper with one
   that raises, and checks the function code in ``execute`` — the single
   method through which every pymodbus request passes.
2. The same check runs again on every PDU just before it is framed and sent
   (pymodbus's ``trace_pdu`` hook), so even code that reaches the client's
   internal transaction manager cannot put a write on the wire.

The links in this package expose no write method at all; this module is
what stops someone who digs out the underlying client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from agent.errors import WriteForbidden

READ_FUNCTION_CODES = frozenset({3, 4})
"""Read holding registers (3) and read input registers (4): all terril ever sends."""

REFUSED_CLIENT_METHODS = (
    "write_coil",
    "write_coils",
    "write_register",
    "write_registers",
    "write_file_record",
    "mask_write_register",
    "readwrite_registers",
)
"""pymodbus client methods that write; the guarded clients replace each with a refusal.

The test suite greps ``agent/`` for these names: this tuple is the only place allowed to name them.
"""


def check_read_only(pdu: ModbusPDU) -> None:
    """Raise :class:`WriteForbidden` unless *pdu* is a read of holding or input registers."""
    if pdu.function_code not in READ_FUNCTION_CODES:
        raise WriteForbidden(
            f"refused to send Modbus function code {pdu.function_code} ({type(pdu).__name__}) "
            f"to unit {pdu.dev_id}: terril only reads (function codes 3 and 4)"
        )


def _outgoing_guard(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
    """pymodbus ``trace_pdu`` hook: called with every PDU sent or received."""
    if sending:
        check_read_only(pdu)
    return pdu


def _refusal(name: str) -> Callable[..., NoReturn]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise WriteForbidden(f"{name}() is refused: terril only reads Modbus registers")

    refuse.__name__ = name
    refuse.__doc__ = f"Always raises WriteForbidden: terril never calls {name}."
    return refuse


class ReadOnlyClientMixin:
    """Mixed into a pymodbus async client: refuses writes in ``execute`` and before framing."""

    def execute(self, no_response_expected: bool, request: ModbusPDU) -> Any:
        check_read_only(request)
        # A mixin: execute() is the pymodbus client's, next in the MRO; mypy cannot see it from here.
        return super().execute(no_response_expected, request)  # type: ignore[misc]


for _name in REFUSED_CLIENT_METHODS:
    setattr(ReadOnlyClientMixin, _name, _refusal(_name))


class ReadOnlyTcpClient(ReadOnlyClientMixin, AsyncModbusTcpClient):
    """``AsyncModbusTcpClient`` that can only read."""

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(host, trace_pdu=_outgoing_guard, **kwargs)


class ReadOnlySerialClient(ReadOnlyClientMixin, AsyncModbusSerialClient):
    """``AsyncModbusSerialClient`` that can only read."""

    def __init__(self, port: str, **kwargs: Any) -> None:
        super().__init__(port, trace_pdu=_outgoing_guard, **kwargs)
