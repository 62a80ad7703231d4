"""The one-unpack register responses decode exactly like pymodbus' own, except that what pymodbus
refuses by raising is marked malformed (and refused by ``registers_from_response``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from agent.errors import TransportError
from agent.modbus.responses import (
    FastReadHoldingRegistersResponse,
    FastReadInputRegistersResponse,
    registers_from_response,
)

PAIRS = [(ReadHoldingRegistersResponse, FastReadHoldingRegistersResponse),
         (ReadInputRegistersResponse, FastReadInputRegistersResponse)]


@pytest.mark.parametrize(("reference", "fast"), PAIRS)
@given(body=st.binary(min_size=0, max_size=260), count=st.integers(0, 255))
def test_same_registers_or_same_error(reference: type, fast: type, body: bytes, count: int) -> None:
    data = bytes([count]) + body
    ref, new = reference(), fast()
    try:
        ref.decode(data)
    except ModbusIOException:
        new.decode(data)  # never raises (issue 13.7: pymodbus decodes inside data_received)
        assert new.malformed and new.registers == []
        with pytest.raises(TransportError, match="malformed answer: byte count"):
            registers_from_response(new, "unit 1", count // 2)
        return
    new.decode(data)
    assert new.malformed is None
    assert new.registers == ref.registers
    assert new.function_code == ref.function_code
    assert str(len(new.registers)) in str(new)
