"""The SunSpec driver reads what the simulator's own encoder writes (agent/sim/sunspec_image.py).

Two encoders written apart (pysunspec2's in test_sunspec_decode.py, the
simulator's here) both decode to the same values: the driver is not checked
only against itself, and the simulator the end-to-end tests use is readable.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.devices.base import DecodedPoll
from agent.devices.sunspec import SunSpecDriver
from agent.modbus.types import execute_plan
from agent.schema import DeviceKind
from agent.sim.sunspec_image import encode_chain, encode_model
from tests.sunspec_images import FakeReader

COMMON = {"Mn": "Terril", "Md": "SIM-INV", "SN": "SIM-0042", "Vr": "1.0.0"}


def run(blocks: list[list[int]], kind: DeviceKind, base: int = 40000) -> tuple[DecodedPoll, SunSpecDriver]:
    registers = {base + i: w for i, w in enumerate(encode_chain(blocks))}
    reader = FakeReader(registers)
    driver = SunSpecDriver("sim", kind)

    async def go() -> DecodedPoll:
        await driver.discover(reader)
        return driver.decode(await execute_plan(reader, driver.plan()), 0)

    return asyncio.run(go()), driver


@pytest.mark.parametrize("common_length", [None, 65])
def test_simulated_inverter(common_length: int | None) -> None:
    values = {
        "W": 5123.4, "WH": 1_234_567, "Hz": 50.02, "A": 7.41, "PhVphA": 230.4, "PhVphB": 229.9,
        "PhVphC": 231.1, "PF": 99.5, "VA": 5150, "VAr": -80, "DCW": 5300, "DCV": 640.5, "DCA": 8.27,
        "TmpCab": 41.3, "TmpSnk": 52.8, "St": "MPPT", "Evt1": 0,
    }  # fmt: skip
    modules = [{"ID": 1, "DCA": 4.1, "DCV": 640.5, "DCW": 2650, "DCWH": 600_000}, {"ID": 2, "DCA": 4.17, "DCV": 641.0, "DCW": 2650, "DCWH": 610_000}]
    blocks = [
        encode_model(1, COMMON, length=common_length),
        encode_model(120, {"DERTyp": 4, "WRtg": 6000, "VARtg": 6000, "ARtg": 9}),
        encode_model(103, values),
        encode_model(160, {}, repeats={"module": modules}),
    ]
    result, driver = run(blocks, "inverter")
    assert driver.identity is not None and driver.identity.serial == "SIM-0042"
    assert driver.identity.rated_power_w == 6000.0
    fields = result.readings[0].fields
    # The simulator picks each scale factor itself: 5123.4 W only fits an int16 with W_SF = 0.
    checks = [("W", "ac_power_w", 0.5), ("Hz", "ac_frequency_hz", 0.005), ("A", "ac_current_a", 0.005),
              ("PhVphA", "ac_voltage_an_v", 0.05), ("DCV", "dc_voltage_v", 0.05), ("TmpSnk", "temp_heatsink_c", 0.05),
              ("WH", "ac_energy_wh", 0.5)]  # fmt: skip
    for point, field, tolerance in checks:
        assert fields[field] == pytest.approx(values[point], abs=tolerance), field
    assert fields["ac_power_factor"] == pytest.approx(0.995, abs=0.0005)
    assert fields["state"] == 4 and fields["events"] == 0
    strings = {r.string: r.fields for r in result.readings[1:]}
    assert set(strings) == {"1", "2"}
    assert strings["2"]["dc_current_a"] == pytest.approx(4.17, abs=0.005)
    assert strings["1"]["dc_energy_wh"] == pytest.approx(600_000, rel=1e-6)


def test_simulated_meter_and_fault_bits() -> None:
    values = {"W": -1800, "TotWhImp": 5_000_000, "TotWhExp": 2_000_000, "Hz": 49.99, "PF": -97.0, "PhVphA": 231.0, "Evt": 1 << 2}
    result, _ = run([encode_model(1, COMMON), encode_model(203, values)], "meter", base=50000)
    fields = result.readings[0].fields
    assert fields["power_w"] == pytest.approx(-1800) and fields["energy_export_wh"] == pytest.approx(2_000_000)
    assert fields["ac_power_factor"] == pytest.approx(-0.97)
    assert "ac_voltage_bn_v" not in fields  # not given to the encoder: sentinel, so missing
    assert set(result.active_events) == {"POWER_FAILURE"}


def test_simulated_inverter_fault() -> None:
    blocks = [encode_model(1, COMMON), encode_model(103, {"St": "FAULT", "Evt1": 1 << 0, "W": 0})]
    result, _ = run(blocks, "inverter")
    assert result.state == 7
    assert set(result.active_events) == {"GROUND_FAULT", "STATE_FAULT"}
