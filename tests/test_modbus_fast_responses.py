"""The one-unpack register responses decode exactly like pymodbus' own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from agent.modbus.responses import FastReadHoldingRegistersResponse, FastReadInputRegistersResponse

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
        with pytest.raises(ModbusIOException):
            new.decode(data)
        return
    new.decode(data)
    assert new.registers == ref.registers
    assert new.function_code == ref.function_code
    assert str(len(new.registers)) in str(new)
