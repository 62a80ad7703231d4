"""Register images generated from a profile, and the round trip: encode known values, decode them back.

``profile_image`` is also what the server test serves. The values are chosen to be
exactly representable at every shipped profile's scale (0.1 A steps, 1 kWh steps…),
so decoding must give them back exactly — a wrong type, word order or scale cannot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.devices.profile import (
    Located,
    Profile,
    RegisterDef,
    available_profiles,
    encode_value,
    load_profile,
    parse_profile,
    raw_for,
    sunspec_event_bits,
)
from agent.devices.profile_driver import ProfileDriver
from agent.modbus.plan import RegisterBlock, Table
from agent.schema import STATE_NAMES, Reading

SAMPLE_VALUES: dict[str, float] = {
    "ac_power_w": 4500.0,
    "ac_energy_wh": 12_345_000.0,
    "ac_apparent_power_va": 4600.0,
    "ac_reactive_power_var": -120.0,
    "ac_power_factor": 0.97,
    "ac_current_a": 7.5,
    "ac_voltage_an_v": 231.4,
    "ac_voltage_bn_v": 229.8,
    "ac_voltage_cn_v": 233.1,
    "ac_frequency_hz": 50.1,
    "dc_power_w": 4700.0,
    "dc_voltage_v": 512.3,
    "dc_current_a": 9.2,
    "temp_cabinet_c": 41.5,
    "temp_heatsink_c": 48.5,
    "power_w": -1500.0,
    "energy_import_wh": 1_234_000.0,
    "energy_export_wh": 567_000.0,
    # battery (the power_w above is charging, -1500 W)
    "state_of_charge": 0.655,
    "energy_charge_wh": 1_234_500.0,
    "energy_discharge_wh": 1_100_300.0,
    "voltage_v": 204.8,
    "current_a": -7.3,
    "temp_c": 21.5,
}
"""One plausible value per field, exact at the coarsest scale of any shipped profile."""

Image = dict[tuple[Table, int], int]

ValueKey = tuple[str | None, str | None, str]
"""(reading kind other than the device's own: ``mppt``, ``meter``, ``battery`` or None; string id; field)."""


def value_key(reg: RegisterDef) -> ValueKey:
    return (reg.reading_kind, reg.string, reg.field)


def reading_key(profile: Profile, reading: Reading, field: str) -> ValueKey:
    return (None if reading.kind == profile.kind else reading.kind, reading.string, field)


def profile_image(
    profile: Profile,
    values: dict[ValueKey, float],
    state_code: int | None = None,
    alarm_words: dict[int, int] | None = None,
) -> Image:
    """Registers holding *values* ((string, field) -> engineering value) as the profile lays them out.

    A ``combine: sum`` field's value is split evenly over its parts. *alarm_words*
    maps an event register's documented address to its raw value. A value whose
    sign is a status bit (``direction``) is stored as its magnitude, and the bit set
    when it is negative.
    """
    image: Image = {}
    directions: dict[int, tuple[Located, int]] = {}

    def put(item, raw) -> None:  # type: ignore[no-untyped-def]
        words = encode_value(item.type, raw, profile.word_order_of(item), item.length)
        for i, word in enumerate(words):
            image[(profile.table_of(item), profile.wire_address(item) + i)] = word

    parts: dict[ValueKey, int] = {}
    for reg in profile.registers:
        parts[value_key(reg)] = parts.get(value_key(reg), 0) + 1
    for reg in profile.registers:
        key = value_key(reg)
        if key in values:
            share = values[key] / parts[key]
            invert = reg.sign == "invert"
            if reg.direction is not None:
                negative = (share < 0) != invert
                put(reg, raw_for(abs(share), reg.type, reg.scale, reg.offset))
                _, bits = directions.get(reg.direction.address, (reg.direction, 0))
                directions[reg.direction.address] = (reg.direction, bits | (negative << reg.direction.negative_bit))
            else:
                put(reg, raw_for(share, reg.type, reg.scale, reg.offset, invert))
    for direction, bits in directions.values():
        put(direction, bits)
    if state_code is not None and profile.state is not None:
        put(profile.state.code_register, state_code)
    for event in profile.events:
        put(event, (alarm_words or {}).get(event.address, 0))
    return image


def identify_as(image: Image, profile: Profile, raw: int | float | str) -> Image:
    """Put *raw* in *profile*'s identification register (the device type code, model name…)."""
    assert profile.identify is not None
    register = profile.identify.code_register
    words = encode_value(register.type, raw, profile.word_order_of(register), register.length)
    for i, word in enumerate(words):
        image[(profile.table_of(register), profile.wire_address(register) + i)] = word
    return image


def block_from(image: Image) -> RegisterBlock:
    block = RegisterBlock()
    for (table, address), word in image.items():
        block.store(table, address, [word])
    return block


def expected_values(profile: Profile) -> dict[ValueKey, float]:
    return {value_key(reg): SAMPLE_VALUES[reg.field] for reg in profile.registers}


@pytest.mark.parametrize("name", available_profiles())
def test_every_register_round_trips(name: str) -> None:
    profile = load_profile(name)
    driver = ProfileDriver("dev", profile.kind, profile)
    values = expected_values(profile)
    poll = driver.decode(block_from(profile_image(profile, values)), 1_700_000_000_000)
    decoded: dict[ValueKey, float | int] = {}
    for reading in poll.readings:
        reading.validate()
        for field, value in reading.fields.items():
            decoded[reading_key(profile, reading, field)] = value
    for key, value in values.items():
        assert decoded[key] == value, f"{name} {key}: {decoded.get(key)!r} != {value!r}"
        assert isinstance(decoded[key], float)
    if profile.events:
        assert decoded[(None, None, "events")] == 0 and poll.active_events == {}


@pytest.mark.parametrize("name", [n for n in available_profiles() if load_profile(n).state is not None])
def test_every_state_code_maps_to_its_sunspec_state(name: str) -> None:
    profile = load_profile(name)
    assert profile.state is not None
    driver = ProfileDriver("dev", profile.kind, profile)
    for code, mapped in profile.state.values.items():
        poll = driver.decode(block_from(profile_image(profile, {}, state_code=code)), 0)
        assert STATE_NAMES[poll.state] == mapped.st  # type: ignore[index]
        assert poll.readings[0].fields["state"] == poll.state
        assert ("STATE_FAULT" in poll.active_events) == (mapped.st == "FAULT")


@pytest.mark.parametrize("name", [n for n in available_profiles() if load_profile(n).events])
def test_every_alarm_bit_raises_its_event_and_sunspec_bit(name: str) -> None:
    profile = load_profile(name)
    driver = ProfileDriver("dev", profile.kind, profile)
    evt_bits = sunspec_event_bits(profile.kind)
    for event in profile.events:
        for bit, spec in event.bits.items():
            image = profile_image(profile, {}, alarm_words={event.address: 1 << bit})
            poll = driver.decode(block_from(image), 0)
            assert poll.active_events == {spec.code: spec.text}
            expected = 1 << evt_bits[spec.sunspec] if spec.sunspec else 0
            assert poll.readings[0].fields["events"] == expected


def test_an_unknown_state_code_is_left_out_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    profile = load_profile("huawei_sun2000")
    driver = ProfileDriver("dev", "inverter", profile)
    block = block_from(profile_image(profile, {}, state_code=0x0BAD))
    for _ in range(3):
        poll = driver.decode(block, 0)
        assert poll.state is None and "state" not in poll.readings[0].fields
    assert sum("0x0BAD" in r.getMessage() for r in caplog.records) == 1


def test_an_empty_block_gives_an_empty_reading_not_zeros() -> None:
    for name in available_profiles():
        profile = load_profile(name)
        poll = ProfileDriver("dev", profile.kind, profile).decode(RegisterBlock(), 0)
        assert [r.fields for r in poll.readings] == [{}]
        assert poll.state is None and poll.active_events == {}


def test_sign_invert_turns_an_export_positive_meter_into_import_positive() -> None:
    data = yaml.safe_load((Path(__file__).parent.parent / "agent/devices/profiles/sdm630.yaml").read_text(encoding="utf-8"))
    power = next(r for r in data["registers"] if r["field"] == "power_w")
    power["sign"] = "invert"
    inverted = parse_profile(data, "sdm630_reversed", "sdm630_reversed.yaml")
    normal = load_profile("sdm630")
    image = profile_image(normal, {(None, None, "power_w"): 2000.0})  # the device says +2000 W
    assert ProfileDriver("m", "meter", normal).decode(block_from(image), 0).readings[0].fields == {"power_w": 2000.0}
    assert ProfileDriver("m", "meter", inverted).decode(block_from(image), 0).readings[0].fields == {"power_w": -2000.0}
