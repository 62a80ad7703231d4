"""SunSpec decoding against register images that pysunspec2 encoded (tests/sunspec_images.py)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from agent.devices.base import DecodedPoll
from agent.devices.sunspec import STATE_FAULT_CODE, SunSpecDriver
from agent.devices.sunspec_mapping import INVERTER_FIELDS, METER_FIELDS, MPPT_FIELDS
from agent.devices.sunspec_models import known_model_ids, model_def
from agent.devices.sunspec_types import TYPES, apply_scale_factor, decode_registers, decode_scale_factor
from agent.modbus.types import execute_plan
from agent.schema import INVERTER, METER, MPPT, DeviceKind
from tests.sunspec_images import FakeReader, common_model, encode_model, image

INVERTER_103_SF = {
    "A_SF": -2, "V_SF": -1, "W_SF": 0, "Hz_SF": -2, "VA_SF": 0, "VAr_SF": 0, "PF_SF": -1,
    "WH_SF": 0, "DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 0, "Tmp_SF": -1,
}  # fmt: skip
INVERTER_103_VALUES = {
    "A": 12.34, "PhVphA": 229.7, "PhVphB": 230.1, "PhVphC": 231.0, "W": 4321, "Hz": 50.01,
    "VA": 4400, "VAr": -120, "PF": -98.5, "WH": 12345678, "DCA": 11.5, "DCV": 612.3,
    "DCW": 4500, "TmpCab": 35.2, "TmpSnk": -5.5,
}  # fmt: skip
INVERTER_EXPECTED = {
    "ac_current_a": 12.34, "ac_voltage_an_v": 229.7, "ac_voltage_bn_v": 230.1, "ac_voltage_cn_v": 231.0,
    "ac_power_w": 4321.0, "ac_frequency_hz": 50.01, "ac_apparent_power_va": 4400.0,
    "ac_reactive_power_var": -120.0, "ac_power_factor": -0.985, "ac_energy_wh": 12345678.0,
    "dc_current_a": 11.5, "dc_voltage_v": 612.3, "dc_power_w": 4500.0, "temp_cabinet_c": 35.2,
    "temp_heatsink_c": -5.5, "state": 4, "events": 0b1000_0001,
}  # fmt: skip


def poll(models: list[list[int]], kind: DeviceKind = "inverter", **driver_args: Any) -> DecodedPoll:
    """Discover, plan, read and decode one device image, as the poller will."""
    reader = FakeReader(image([common_model(), *models]))
    driver = SunSpecDriver("onduleur-sud", kind, **driver_args)

    async def run() -> DecodedPoll:
        await driver.discover(reader)
        return driver.decode(await execute_plan(reader, driver.plan()), 1_700_000_000_000)

    result = asyncio.run(run())
    for reading in result.readings:
        reading.validate()  # every reading must satisfy the schema
    return result


def model_103(raw: dict[str, Any] | None = None, values: dict[str, Any] | None = None) -> list[int]:
    return encode_model(
        103,
        raw={**INVERTER_103_SF, "St": 4, "Evt1": 0b1000_0001, **(raw or {})},
        values={**INVERTER_103_VALUES, **(values or {})},
    )


def test_model_103_every_field_decodes_within_its_scale_factor() -> None:
    result = poll([model_103()])
    (reading,) = result.readings
    assert reading.kind == "inverter" and reading.device == "onduleur-sud" and reading.ts == 1_700_000_000_000
    assert reading.fields == INVERTER_EXPECTED  # exact: rounded to the scale factor's precision
    assert result.state == 4
    assert set(result.active_events) == {"GROUND_FAULT", "OVER_TEMP"}
    assert "Ground fault" in result.active_events["GROUND_FAULT"]


def test_model_113_floats_decode_and_lose_float32_noise() -> None:
    raw = {**{k: float(v) for k, v in INVERTER_103_VALUES.items()}, "St": 7, "Evt1": 1 << 10}
    result = poll([encode_model(113, raw=raw)])
    expected = {**INVERTER_EXPECTED, "state": 7, "events": 1 << 10}
    assert result.readings[0].fields == expected
    assert result.state == 7
    assert set(result.active_events) == {"AC_OVER_VOLT", STATE_FAULT_CODE}


@pytest.mark.parametrize("strings", [2, 3, 4, 8])
def test_model_160_each_module_is_an_mppt_reading(strings: int) -> None:
    modules = [
        ({"ID": i + 1, "IDStr": f"PV{i + 1}"}, {"DCA": 5.25 + i, "DCV": 600.1 - i, "DCW": 3000 + i, "DCWH": 123450 + 10 * i})
        for i in range(strings)
    ]
    m160 = encode_model(160, raw={"DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 0, "DCWH_SF": 1}, modules=modules)
    result = poll([model_103(), m160])
    inverter, *mppt = result.readings
    assert inverter.fields == INVERTER_EXPECTED
    assert [r.string for r in mppt] == [str(i + 1) for i in range(strings)]
    for i, reading in enumerate(mppt):
        assert reading.kind == "mppt" and reading.device == "onduleur-sud"
        assert reading.fields == {
            "dc_current_a": 5.25 + i,
            "dc_voltage_v": round(600.1 - i, 1),
            "dc_power_w": float(3000 + i),
            "dc_energy_wh": float(123450 + 10 * i),
        }


def test_model_203_meter_fields_and_events() -> None:
    sf = {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": 0, "PF_SF": -2, "TotWh_SF": 0}
    values = {
        "A": 21.3, "PhVphA": 229.7, "PhVphB": 231.2, "PhVphC": 228.9, "Hz": 49.98, "W": -2450,
        "PF": 97.25, "TotWhImp": 8_765_432, "TotWhExp": 1_234_567,
    }  # fmt: skip
    result = poll([encode_model(203, raw={**sf, "Evt": (1 << 2) | (1 << 16)}, values=values)], kind="meter")
    (reading,) = result.readings
    assert reading.kind == "meter"
    assert reading.fields == {
        "ac_current_a": 21.3, "ac_voltage_an_v": 229.7, "ac_voltage_bn_v": 231.2, "ac_voltage_cn_v": 228.9,
        "ac_frequency_hz": 49.98, "power_w": -2450.0, "ac_power_factor": 0.9725,
        "energy_import_wh": 8_765_432.0, "energy_export_wh": 1_234_567.0, "events": (1 << 2) | (1 << 16),
    }  # fmt: skip
    assert set(result.active_events) == {"POWER_FAILURE", "OEM01"}
    assert result.state is None
    assert result.active_events["POWER_FAILURE"].startswith("Power failure (SunSpec model 203 Evt bit 2")


@pytest.mark.parametrize("model_id", [201, 211, 203, 213])
def test_meter_event_codes_are_the_same_for_every_meter_model(model_id: int) -> None:
    result = poll([encode_model(model_id, raw={"Evt": (1 << 3) | (1 << 30) | 1})], kind="meter")
    assert set(result.active_events) == {"UNDER_VOLTAGE", "OEM15", "EVT_BIT_0"}


@pytest.mark.parametrize(("pf_raw", "expected"), [(0.95, 0.95), (-0.8, -0.8), (-95.0, -0.95)])
def test_model_213_power_factor_ratio_or_percent(pf_raw: float, expected: float) -> None:
    result = poll([encode_model(213, raw={"PF": pf_raw, "W": 1500.5, "TotWhImp": 1000.0})], kind="meter")
    assert result.readings[0].fields == {"ac_power_factor": expected, "power_w": 1500.5, "energy_import_wh": 1000.0}


@pytest.mark.parametrize("model_id", [103, 113])
def test_every_point_unimplemented_gives_no_field(model_id: int) -> None:
    """pysunspec2 writes its own sentinels for unset points: nothing may come out as 0."""
    sf_only = INVERTER_103_SF if model_id == 103 else {}
    result = poll([encode_model(model_id, raw=sf_only)])
    assert result.readings[0].fields == {}
    assert result.active_events == {} and result.state is None


def test_every_meter_point_unimplemented_gives_no_field() -> None:
    result = poll([encode_model(203)], kind="meter")
    assert result.readings[0].fields == {}


def test_a_value_whose_scale_factor_is_a_sentinel_is_omitted() -> None:
    raw = {k: v for k, v in INVERTER_103_SF.items() if k not in ("W_SF", "V_SF")}
    values = {k: v for k, v in INVERTER_103_VALUES.items() if k not in ("W", "PhVphA", "PhVphB", "PhVphC")}
    model = encode_model(103, raw={**raw, "W": 4321, "PhVphA": 2297, "St": 4}, values=values)
    fields = poll([model]).readings[0].fields
    assert "ac_power_w" not in fields and "ac_voltage_an_v" not in fields
    assert fields["ac_current_a"] == 12.34


def test_model_160_with_sentinel_scale_factors_gives_no_string_readings() -> None:
    modules = [({"ID": 1}, {}), ({"ID": 2}, {})]
    m160 = encode_model(160, modules=modules)
    result = poll([model_103(), m160])
    assert [r.kind for r in result.readings] == ["inverter"]


def test_accumulator_zero_is_missing_not_zero() -> None:
    fields = poll([model_103(values={"WH": 0})]).readings[0].fields
    assert "ac_energy_wh" not in fields


# --------------------------------------------------------------------------- the type table


SENTINELS: list[tuple[str, list[int]]] = [
    ("int16", [0x8000]),
    ("uint16", [0xFFFF]),
    ("count", [0xFFFF]),
    ("acc16", [0]),
    ("enum16", [0xFFFF]),
    ("bitfield16", [0xFFFF]),
    ("sunssf", [0x8000]),
    ("int32", [0x8000, 0]),
    ("uint32", [0xFFFF, 0xFFFF]),
    ("acc32", [0, 0]),
    ("enum32", [0xFFFF, 0xFFFF]),
    ("bitfield32", [0xFFFF, 0xFFFF]),
    ("int64", [0x8000, 0, 0, 0]),
    ("uint64", [0xFFFF] * 4),
    ("acc64", [0, 0, 0, 0]),
    ("float32", [0x7FC0, 0]),
    ("float32", [0xFFC0, 0]),  # any NaN
    ("float32", [0x7F80, 0]),  # +inf: not a measurement either
    ("float64", [0x7FF8, 0, 0, 0]),
    ("string", [0, 0, 0, 0]),
    ("pad", [0]),
    ("ipaddr", [0, 0]),
    ("ipv6addr", [0] * 8),
    ("eui48", [0xFFFF] * 4),
]


@pytest.mark.parametrize(("point_type", "registers"), SENTINELS)
def test_sentinel_decodes_to_none(point_type: str, registers: list[int]) -> None:
    assert decode_registers(point_type, registers) is None


VALUES: list[tuple[str, list[int], object]] = [
    ("int16", [0xFFFE], -2),
    ("int16", [0x7FFF], 32767),
    ("uint16", [0xFFFE], 65534),
    ("acc16", [1], 1),
    ("int32", [0xFFFF, 0xFFFE], -2),
    ("int32", [0x8000, 1], -0x7FFFFFFF),
    ("uint32", [0x0001, 0x0002], 65538),
    ("acc32", [0x0001, 0x0000], 65536),
    ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
    ("acc64", [0, 0, 1, 0], 65536),
    ("float32", [0x4365, 0xB333], 229.6999969482422),
    ("float64", [0x3FF0, 0, 0, 0], 1.0),
    ("string", [0x5465, 0x7272, 0x696C, 0x0000], "Terril"),
    ("string", [0x4142, 0x2020], "AB"),
    ("ipaddr", [0xC0A8, 0x0132], "192.168.1.50"),
    ("sunssf", [0xFFFD], -3),
    ("enum16", [7], 7),
]


@pytest.mark.parametrize(("point_type", "registers", "expected"), VALUES)
def test_type_table_decodes(point_type: str, registers: list[int], expected: object) -> None:
    assert decode_registers(point_type, registers) == expected


def test_scale_factor_out_of_range_is_missing() -> None:
    assert decode_scale_factor([0x7FFF]) is None
    assert decode_scale_factor([11]) is None
    assert decode_scale_factor([0xFFF6]) == -10


@pytest.mark.parametrize(("raw", "sf", "expected"), [(2297, -1, 229.7), (5001, -2, 50.01), (12, 3, 12000.0), (-985, -1, -98.5)])
def test_scaled_values_are_rounded_to_the_scale_factor(raw: int, sf: int, expected: float) -> None:
    assert apply_scale_factor(raw, sf) == expected


# --------------------------------------------------------------------------- definitions and mappings


def test_every_official_model_definition_loads_with_known_types() -> None:
    ids = known_model_ids()
    assert {1, 101, 103, 113, 120, 160, 203, 213} <= set(ids)
    for model_id in ids:
        definition = model_def(model_id)
        assert definition is not None and definition.id == model_id
        for point in definition.points:
            assert point.type in TYPES
    assert model_def(64999) is None


def test_model_lengths_match_the_standard() -> None:
    assert model_def(1).fixed_length == 68  # type: ignore[union-attr]
    assert model_def(103).fixed_length == 52  # type: ignore[union-attr]
    definition = model_def(160)
    assert definition is not None and definition.fixed_length == 10
    assert definition.repeating_group is not None and definition.repeating_group.length == 20
    assert definition.repeat_count(48) == 2 and definition.repeat_count(8) == 0


@pytest.mark.parametrize(
    ("fields", "spec", "model_ids"),
    [(INVERTER_FIELDS, INVERTER, (101, 102, 103, 111, 112, 113)), (METER_FIELDS, METER, (201, 202, 203, 204, 211, 212, 213, 214)), (MPPT_FIELDS, MPPT, ())],
)
def test_mappings_name_schema_fields_and_real_points(fields: Any, spec: Any, model_ids: tuple[int, ...]) -> None:
    for fmap in fields:
        assert fmap.field in spec.fields_by_name
    for model_id in model_ids:
        definition = model_def(model_id)
        assert definition is not None
        for fmap in fields:
            point = definition.point(fmap.point)
            assert point is not None, (model_id, fmap.point)
            if point.sf is not None:
                assert definition.point(point.sf) is not None


def test_nan_never_reaches_a_reading() -> None:
    fields = poll([encode_model(113, raw={"W": float("nan"), "Hz": 50.0})]).readings[0].fields
    assert fields == {"ac_frequency_hz": 50.0}
    assert all(not isinstance(v, float) or math.isfinite(v) for v in fields.values())
