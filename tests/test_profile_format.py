"""Register profiles: every shipped file loads, and every kind of mistake is refused with its key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from agent.devices.profile import (
    ProfileError,
    available_profiles,
    load_profile,
    load_profile_file,
    parse_profile,
    sunspec_event_bits,
)
from agent.devices.sunspec_models import model_def
from agent.schema import READING_MEASUREMENT

PROFILES_DIR = Path(__file__).resolve().parent.parent / "agent" / "devices" / "profiles"


def test_the_four_families_are_shipped() -> None:
    assert available_profiles() == ["huawei_sun2000", "sdm120", "sdm630", "sungrow_sg", "sungrow_sh"]
    assert sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")) == available_profiles()


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_loads_and_maps_only_schema_fields(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.metadata.documentation.url.startswith("http")
    for reg in profile.registers:
        fields = READING_MEASUREMENT[reg.reading_kind or profile.kind].fields_by_name
        assert reg.field in fields, f"{name}: {reg.name} -> {reg.field}"
        assert fields[reg.field].type == "float"
    # the same file through the path loader gives the same profile
    assert load_profile_file(PROFILES_DIR / f"{name}.yaml") == profile


def test_sdm630_sign_convention_is_import_positive_and_documented() -> None:
    profile = load_profile("sdm630")
    power = next(r for r in profile.registers if r.field == "power_w")
    assert power.sign == "normal"
    assert "importing" in (PROFILES_DIR / "sdm630.yaml").read_text(encoding="utf-8")


def test_sunspec_event_bits_come_from_pysunspec2() -> None:
    evt1 = model_def(103).point("Evt1")  # type: ignore[union-attr]
    assert sunspec_event_bits("inverter") == {s.name: s.value for s in evt1.symbols}
    assert sunspec_event_bits("inverter")["AC_OVER_VOLT"] == 10
    assert sunspec_event_bits("meter")["POWER_FAILURE"] == 2


def _base() -> dict:
    return yaml.safe_load((PROFILES_DIR / "huawei_sun2000.yaml").read_text(encoding="utf-8"))


def _problems(data: object) -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "broken", "broken.yaml")
    assert str(info.value).startswith("broken.yaml: ")
    return info.value.problems


def _edit(path: str, value: object) -> dict:
    data = copy.deepcopy(_base())
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()

BROKEN = [
    ("metadata.vendor", "Huawei", "metadata.vendor: unknown key"),
    ("registers.0.gain", 10, "registers[0].gain: unknown key"),
    ("registers.0.field", "dc_power_kw", "registers[0].field: 'dc_power_kw' is not a field of mppt"),
    ("registers.5.field", "power_w", "registers[5].field: 'power_w' is not a field of inverter"),
    ("registers.5.field", "state", "registers[5].field: 'state' is an integer field; map it with the state: block"),
    ("registers.0.type", "u8", "registers[0].type: expected one of u16, i16"),
    ("registers.0.type", "str", "registers[0].length: a str value needs its length"),
    ("registers.0.length", 2, "registers[0].length: only str values have a length"),
    ("registers.0.word_order", "little", "registers[0].word_order: i16 is one register"),
    ("registers.0.scale", 0, "registers[0].scale: must be a finite number other than 0"),
    ("registers.4.unit", "kWh", "registers[4].unit: 'kWh' cannot feed dc_power_w"),
    ("registers.8.combine", _DELETE, "several registers feed ac_current_a; give each of them 'combine: sum'"),
    ("registers.0.address", 70000, "registers[0].address: expected an integer 0–65535, got 70000"),
    ("state.values.512.st", "RUNNING", "state.values[512].st: unknown SunSpec state 'RUNNING'"),
    ("state.values.769.st", False, "YAML reads a bare OFF as false"),
    ("events.0.bits.9.sunspec", "GRID_OVERVOLTAGE", "events[0].bits.9.sunspec: 'GRID_OVERVOLTAGE' is not a SunSpec Evt1 bit"),
    ("events.0.bits.16", {"code": "X", "text": "y"}, "events[0].bits.16: a u16 has bits 0..15"),
    ("events.0.bits.3.code", "has space", "events[0].bits[3].code: expected text matching"),
    ("metadata.kind", "battery", "metadata.kind: expected one of inverter or meter, got \"battery\""),
    ("metadata.documentation.url", "huawei.com", "metadata.documentation.url: expected text matching"),
    ("defaults.max_registers", 200, "defaults.max_registers: expected an integer 1–125, got 200"),
    ("registers", [], "registers: must contain at least one entry"),
    ("identity.rated_power_w.type", "str", "identity.rated_power_w.type: rated power is a number"),
    ("identify.prefixes", [], "identify: give values, prefixes or refuse"),
    ("identify.values", {1: "x"}, "identify.values: a str register is matched by prefixes"),
    ("identify.register.length", _DELETE, "identify.register.length: a str value needs its length"),
    ("registers.5.measurement", "battery", "registers[5].field: 'ac_voltage_an_v' is not a field of battery"),
    ("registers.0.measurement", "meter", "registers[0]: give either string (an MPPT input) or measurement"),
    ("registers.5.direction", {"name": "s", "address": 32089, "type": "i16", "negative_bit": 1},
     "registers[5].direction.type: a status bit field is unsigned"),
    ("registers.5.direction", {"name": "s", "address": 32089, "type": "u16", "negative_bit": 16},
     "registers[5].direction.negative_bit: a u16 has bits 0..15"),
]


@pytest.mark.parametrize(("path", "value", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_mistake_is_refused_with_its_key_path(path: str, value: object, message: str) -> None:
    problems = _problems(_edit(path, value))
    assert any(message.replace("[3]", ".3") in p or message in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    data = _edit("registers.0.gain", 10)
    data["registers"][1]["type"] = "u8"
    data["metadata"]["vendor"] = "x"
    problems = _problems(data)
    assert len(problems) == 3, problems
    assert [p.split(":")[0] for p in problems] == ["metadata.vendor", "registers[0].gain", "registers[1].type"]


def test_cross_checks_run_after_the_schema_and_report_all() -> None:
    data = _edit("registers.0.field", "nope")
    data["registers"][1]["type"] = "str"
    problems = _problems(data)
    assert any(p.startswith("registers[0].field") for p in problems)
    assert any(p.startswith("registers[1].length") for p in problems)


def test_a_meter_profile_cannot_have_a_state_block() -> None:
    data = yaml.safe_load((PROFILES_DIR / "sdm630.yaml").read_text(encoding="utf-8"))
    data["state"] = {"register": {"name": "s", "address": 1, "type": "u16"}, "values": {0: {"st": "MPPT", "text": "x"}}}
    assert "state: only inverters have an operating state (SunSpec St)" in _problems(data)


def test_name_key_top_level_and_yaml_errors(tmp_path: Path) -> None:
    assert _problems({**_base(), "name": "x"}) == ["name: not allowed, the profile's name is its file name"]
    assert "expected a mapping" in _problems([1, 2])[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile_file(bad)
    assert info.value.source == "bad.yaml" and "YAML syntax error" in info.value.problems[0]
    with pytest.raises(ProfileError) as info:
        load_profile_file(tmp_path / "missing.yaml")
    assert "missing.yaml does not exist" in info.value.problems[0]


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("fronius_magic")
    assert "huawei_sun2000, sdm120, sdm630, sungrow_sg, sungrow_sh" in str(info.value)


def test_profiles_folder_readme_documents_every_key() -> None:
    readme = (PROFILES_DIR / "README.md").read_text(encoding="utf-8")
    for key in ("address_base", "max_gap", "word_order", "sentinels", "combine", "sign", "string", "sunspec", "scale",
                "identify", "prefixes", "refuse", "missing", "measurement", "direction", "negative_bit"):
        assert f"`{key}`" in readme, key
