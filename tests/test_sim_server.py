"""The simulator over real Modbus TCP: registers, SunSpec maps read by pysunspec2, silence, refused writes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from agent.schema import STATE_FAULT, STATE_MPPT, STATE_SLEEPING
from tests.fixtures.modbus_servers import NIGHT, SimHandle

SUNS = [0x5375, 0x6E53]


async def _read(sim: SimHandle, unit: int, address: int, count: int, timeout: float = 1.0) -> Any:
    client = AsyncModbusTcpClient(sim.host, port=sim.port, timeout=timeout, retries=0)
    await client.connect()
    try:
        return await client.read_holding_registers(address, count=count, device_id=unit)
    finally:
        client.close()


def read(sim: SimHandle, unit: int, address: int, count: int, timeout: float = 1.0) -> Any:
    return asyncio.run(_read(sim, unit, address, count, timeout))


def walk_chain(sim: SimHandle, unit: int, base: int = 40000) -> list[tuple[int, int]]:
    """(model id, length) of every block, read over Modbus the way a scanner does."""
    assert read(sim, unit, base, 2).registers == SUNS
    out = []
    addr = base + 2
    while True:
        mid, length = read(sim, unit, addr, 2).registers
        if mid == 0xFFFF:
            assert length == 0
            return out
        out.append((mid, length))
        addr += 2 + length


def sunspec2_device(sim: SimHandle, unit: int) -> SunSpecModbusClientDeviceTCP:
    dev = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr=sim.host, ipport=sim.port, timeout=2)
    dev.scan()
    return dev


def test_default_layout_chains(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    assert sim.units == (1, 2, 3)
    assert walk_chain(sim, 1) == [(1, 66), (120, 26), (103, 50), (160, 8 + 2 * 20)]
    assert walk_chain(sim, 3) == [(1, 66), (203, 105)]


def test_pysunspec2_reads_inverter_and_meter(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    dev = sunspec2_device(sim, 1)
    try:
        assert set(k for k in dev.models if isinstance(k, int)) == {1, 120, 103, 160}
        common, nameplate = dev.common[0], dev.nameplate[0]
        inverter, mppt = dev.inverter_three_phase[0], dev.mppt[0]
        for model in (common, nameplate, inverter, mppt):
            model.read()
        assert common.Mn.value == "Terril"
        assert common.DA.value == 1
        assert nameplate.WRtg.cvalue == 5000
        assert inverter.St.value == STATE_MPPT
        w = inverter.W.cvalue
        assert 1500 < w <= 5000  # midsummer noon in Lens, 5 kWp
        assert 225 < inverter.PhVphA.cvalue < 240
        assert inverter.Hz.cvalue == pytest.approx(50, abs=0.05)
        assert inverter.WH.cvalue >= 1_000_000
        assert inverter.Evt1.value == 0
        assert mppt.N.value == 2
        string_w = sum(m.DCW.cvalue for m in mppt.module)
        assert string_w == pytest.approx(inverter.DCW.cvalue, rel=0.02)
    finally:
        dev.close()
    meter = sunspec2_device(sim, 3)
    try:
        m203 = meter.ac_meter[0] if hasattr(meter, "ac_meter") else meter.models[203][0]
        m203.read()
        # noon: 10 kW of production against a 2-6 kW building load -> exporting (W < 0)
        assert m203.W.cvalue < 0
        assert m203.TotWhImp.cvalue >= 5_000_000
    finally:
        meter.close()


def test_night_sleeps_and_still_answers(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(start=NIGHT)
    m103 = read(sim, 1, 40000 + 2 + 68 + 28, 52).registers
    assert m103[0] == 103
    assert m103[2 + 12] == 0  # W
    assert m103[2 + 36] == STATE_SLEEPING  # St


def test_silent_at_night_times_out(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(
        [{"unit": 1, "kind": "inverter", "peak_power_w": 3000, "silent_at_night": True}], start=NIGHT
    )
    with pytest.raises(ModbusIOException):
        read(sim, 1, 40000, 2, timeout=0.5)
    assert sim.requests(1) == 1
    sim.device(1).set_night(False)  # type: ignore[union-attr]
    assert read(sim, 1, 40000, 2).registers == SUNS


def test_set_silent_and_fault(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    inv = sim.device(1)
    inv.set_silent(True)
    t0 = time.monotonic()
    with pytest.raises(ModbusIOException):
        read(sim, 1, 40000, 2, timeout=0.4)
    assert time.monotonic() - t0 >= 0.35
    assert read(sim, 2, 40000, 2).registers == SUNS  # the other unit on the port still answers
    inv.set_silent(False)
    inv.set_fault("GROUND_FAULT")  # type: ignore[union-attr]
    dev = sunspec2_device(sim, 1)
    try:
        inverter = dev.inverter_three_phase[0]
        inverter.read()
        assert inverter.St.value == STATE_FAULT
        assert inverter.Evt1.value == 1  # bit 0 = GROUND_FAULT
        assert inverter.W.cvalue == 0
        inv.set_fault(None)  # type: ignore[union-attr]
        inverter.read()
        assert inverter.St.value == STATE_MPPT
        assert inverter.Evt1.value == 0
    finally:
        dev.close()


async def _writes(sim: SimHandle) -> list[Any]:
    client = AsyncModbusTcpClient(sim.host, port=sim.port, timeout=1, retries=0)
    await client.connect()
    try:
        return [
            await client.write_register(40010, 7, device_id=2),
            await client.write_registers(40010, [1, 2], device_id=2),
            await client.write_coil(1, True, device_id=2),
            await client.read_input_registers(40000, count=2, device_id=2),
            await client.read_holding_registers(40000, count=2, device_id=2),
        ]
    finally:
        client.close()


def test_writes_refused_and_recorded(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    sim.writes_expected = True
    before = read(sim, 2, 40000, 80).registers
    sim.clear_records()
    w1, w2, w3, fc4, fc3 = asyncio.run(_writes(sim))
    for r in (w1, w2, w3):
        assert r.isError() and r.exception_code == 1  # ILLEGAL_FUNCTION
    assert fc4.registers == SUNS and fc3.registers == SUNS
    assert sim.function_codes(2) == Counter({6: 1, 16: 1, 5: 1, 4: 1, 3: 1})
    assert sim.requests(2) == 5
    assert sim.function_codes(1) == Counter()
    after = read(sim, 2, 40000, 80).registers
    assert after[:70] == before[:70]  # model 1 unchanged by the write attempts


def test_illegal_address_and_unknown_unit(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    r = read(sim, 1, 50000, 2)
    assert r.isError() and r.exception_code == 2
    r = read(sim, 1, 39999, 3)
    assert r.isError() and r.exception_code == 2
    r = read(sim, 9, 40000, 2)
    assert r.isError() and r.exception_code == 0x0B
    assert sim.requests(9) == 1


@pytest.mark.parametrize("base", [40000, 50000, 0])
def test_base_addresses(sim_factory: Callable[..., SimHandle], base: int) -> None:
    sim = sim_factory([{"unit": 4, "kind": "inverter", "peak_power_w": 3000, "base_address": base}])
    assert walk_chain(sim, 4, base)[0] == (1, 66)
    if base != 40000:
        assert read(sim, 4, 40000, 2).isError()


def test_solaredge_common_length_and_two_logical_devices(sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(
        [
            {"unit": 1, "kind": "inverter", "peak_power_w": 8000, "common_length": 65, "strings": 0},
            {"unit": 1, "kind": "meter", "measures": [1], "common_length": 65},
        ]
    )
    assert walk_chain(sim, 1) == [(1, 65), (120, 26), (103, 50), (1, 65), (203, 105)]
    assert sim.device(1, 1).name == "meter-1"
