"""Profiles against the vendors' documentation: raw register words in, engineering values out.

Each folder of ``tests/cases/profiles/`` holds ``registers.yaml`` (the profile, the
raw words at documented addresses, a note saying what the documentation says they
mean) and ``expected.json`` (the readings, state and events terril must produce).
The round trip in ``test_profile_images.py`` cannot catch a scale that is wrong in
the profile itself; these cases can.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import yaml

from agent.devices.profile import decode_value, encode_value, engineering_value, load_profile, raw_for
from agent.devices.profile_driver import ProfileDriver
from agent.modbus.plan import RegisterBlock

CASES = Path(__file__).parent / "cases" / "profiles"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def test_every_shipped_profile_has_a_documentation_case() -> None:
    profiles = {yaml.safe_load((CASES / c / "registers.yaml").read_text(encoding="utf-8"))["profile"] for c in CASE_NAMES}
    assert profiles == {"huawei_sun2000", "sdm120", "sdm630", "sungrow_sg", "sungrow_sh"}


@pytest.mark.parametrize("case", CASE_NAMES)
def test_documented_register_words_decode_to_documented_values(case: str) -> None:
    spec = yaml.safe_load((CASES / case / "registers.yaml").read_text(encoding="utf-8"))
    expected = json.loads((CASES / case / "expected.json").read_text(encoding="utf-8"))
    profile = load_profile(spec["profile"])
    block = RegisterBlock()
    for entry in spec["registers"]:
        table = entry.get("table", profile.defaults.table)
        block.store(table, entry["address"] - profile.defaults.address_base, entry["words"])
    poll = ProfileDriver("dev", profile.kind, profile).decode(block, 1_700_000_000_000)
    got = []
    for reading in poll.readings:
        reading.validate()
        out = reading.to_dict()
        got.append({k: out[k] for k in ("kind", "string", "fields") if k in out})
    assert got == expected["readings"]
    for reading in got:  # types survive: measured values float, state/events int
        for name, value in reading["fields"].items():
            assert type(value) is (int if name in ("state", "events") else float), name
    assert poll.state == expected["state"]
    assert poll.active_events == expected["active_events"]


# The numbers of Modbus round trips per poll, as planned (count them: each costs ~20 ms at 9600 baud).
PLAN_TABLE = [
    # profile, max_registers from config, requests, registers read in total
    ("sdm630", None, 2, 34),
    ("sdm630", 10, 4, 26),  # smaller requests also skip the gaps
    ("sdm120", None, 2, 38),
    ("huawei_sun2000", None, 4, 35),
    ("huawei_sun2000", 8, 7, 32),
    ("sungrow_sg", None, 1, 35),
    ("sungrow_sh", None, 3, 65),  # 5008-5021, 5033-5035, 13000-13046
]


@pytest.mark.parametrize(("name", "max_registers", "requests", "registers"), PLAN_TABLE)
def test_plan_needs_few_requests(name: str, max_registers: int | None, requests: int, registers: int) -> None:
    profile = load_profile(name)
    driver = ProfileDriver("dev", profile.kind, profile, max_registers=max_registers)
    plan = driver._plan
    assert len(plan) == requests, plan
    assert sum(r.count for r in plan) == registers, plan
    assert all(r.count <= driver.max_registers for r in plan)
    # every value's registers sit inside one request (atomic spans are never cut)
    for span in driver.spans():
        assert any(r.table == span.table and r.address <= span.address and span.end <= r.end for r in plan), span


def test_sdm630_plan_reads_input_registers_only_and_covers_every_value() -> None:
    profile = load_profile("sdm630")
    plan = ProfileDriver("m", "meter", profile)._plan
    assert [(r.table, r.address, r.count) for r in plan] == [("input", 0x0000, 6), ("input", 0x0030, 28)]


def test_config_limit_only_lowers_the_profile_limit() -> None:
    profile = load_profile("sdm630")  # Eastron: 60 registers per request
    assert ProfileDriver("m", "meter", profile, max_registers=125).max_registers == 60
    assert ProfileDriver("m", "meter", profile, max_registers=20).max_registers == 20
    with pytest.raises(ValueError, match="kind 'inverter' does not match profile 'sdm630'"):
        ProfileDriver("m", "inverter", profile)
    with pytest.raises(ValueError, match=r"max_registers must be 1\.\.125"):
        ProfileDriver("m", "meter", profile, max_registers=0)


def test_plan_before_discover_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="before discover"):
        ProfileDriver("m", "meter", load_profile("sdm120")).plan()


# --------------------------------------------------------------------------- the codec, table-driven

DECODE_TABLE = [
    ("u16", [0xFFFF], "big", (), 65535),
    ("i16", [0xFFFF], "big", (), -1),
    ("i16", [0x8000], "big", (), -32768),
    ("u32", [0x0001, 0x86A0], "big", (), 100_000),
    ("u32", [0x86A0, 0x0001], "little", (), 100_000),
    ("i32", [0xFFFF, 0xFF38], "big", (), -200),
    ("i32", [0xFF38, 0xFFFF], "little", (), -200),
    ("i32", [0x7FFF, 0xFFFF], "big", (0x7FFFFFFF,), None),
    ("u64", [0, 0, 0x0001, 0x0000], "big", (), 65536),
    ("u64", [0x0000, 0x0001, 0, 0], "little", (), 65536),
    ("i64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "big", (), -2),
    ("f32", [0x4366, 0x8000], "big", (), 230.5),
    ("f32", [0x8000, 0x4366], "little", (), 230.5),
    ("f32", [0x4365, 0xE666], "big", (), 229.9),
    ("f32", [0x7FC0, 0x0000], "big", (), None),
    ("f32", [0xFF80, 0x0000], "big", (), None),
    ("str", [0x5355, 0x4E32, 0x3030, 0x3000, 0x0000], "big", (), "SUN2000"),
    ("str", [0x0000, 0x0000], "big", (), None),
    ("str", [0x4142, 0x2020], "big", (), "AB"),
    ("u16", [0x1_0005], "big", (), 5),  # a reader handing over more than 16 bits is masked, not trusted
]


@pytest.mark.parametrize(("value_type", "words", "order", "sentinels", "expected"), DECODE_TABLE)
def test_decode_value(value_type: str, words: list[int], order: str, sentinels: tuple[int, ...], expected: object) -> None:
    assert decode_value(value_type, words, order, sentinels) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "scale", "offset", "invert", "expected"),
    [
        (2305, 0.1, 0.0, False, 230.5),
        (100_000, 10, 0.0, False, 1_000_000.0),
        (994, 0.001, 0.0, False, 0.994),
        (5001, 0.01, 0.0, False, 50.01),
        (12345.6, 1000, 0.0, False, 12_345_600.0),
        (1500.0, 1, 0.0, True, -1500.0),
        (-400, 0.1, 273.15, False, 233.15),
    ],
)
def test_engineering_value_is_exact_decimal(raw: float, scale: float, offset: float, invert: bool, expected: float) -> None:
    assert engineering_value(raw, scale, offset, invert) == expected


@pytest.mark.parametrize("value_type", ["u16", "i16", "u32", "i32", "u64", "i64", "f32"])
@pytest.mark.parametrize("order", ["big", "little"])
def test_encode_is_the_inverse_of_decode(value_type: str, order: str) -> None:
    samples = [0, 1, 1234] + ([-1, -1234] if value_type.startswith("i") or value_type == "f32" else [])
    for raw in samples:
        value = float(raw) if value_type == "f32" else raw
        assert decode_value(value_type, encode_value(value_type, value, order), order) == value  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_value("u16", 70000)
    with pytest.raises(ValueError):
        encode_value("u16", 1.5)
    assert encode_value("str", "SUN2000", length=5) == [0x5355, 0x4E32, 0x3030, 0x3000, 0x0000]
    assert raw_for(230.5, "u16", 0.1) == 2305 and raw_for(-1500.0, "f32", invert=True) == 1500.0


def test_decoder_never_raises_on_garbage() -> None:
    import random

    rng = random.Random(7)
    for value_type, size in [("u16", 1), ("i16", 1), ("u32", 2), ("i32", 2), ("u64", 4), ("i64", 4), ("f32", 2), ("str", 3)]:
        for order in ("big", "little"):
            for _ in range(300):
                words = [rng.randrange(0x10000) for _ in range(size)]
                value = decode_value(value_type, words, order)  # type: ignore[arg-type]
                assert value is None or isinstance(value, (int, str)) or math.isfinite(value)


def test_f32_values_are_rounded_to_the_float32_they_are() -> None:
    (raw,) = struct.unpack(">f", struct.pack(">f", 229.7))
    assert raw != 229.7
    assert decode_value("f32", list(struct.unpack(">HH", struct.pack(">f", 229.7)))) == 229.7
