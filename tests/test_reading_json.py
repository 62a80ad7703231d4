"""The hand-written reading JSON is byte for byte what the json module writes (property test)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.encoding import reading_json, reading_json_reference
from agent.schema import READING_MEASUREMENT, Reading

FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e16, 1e-7, 123.4, 5e-324])
INTS = st.integers(min_value=-(2**63), max_value=2**64)
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    kind = draw(st.sampled_from(sorted(READING_MEASUREMENT)))
    specs = READING_MEASUREMENT[kind].fields
    chosen = draw(st.lists(st.sampled_from(specs), unique_by=lambda f: f.name, max_size=len(specs)))
    fields: dict[str, float | int] = {}
    for spec in chosen:
        # A float field may hold an int (json writes it as a float) and an int field a float (truncated).
        fields[spec.name] = draw(FLOATS | INTS) if spec.type == "float" else draw(INTS | FLOATS.filter(lambda f: abs(f) < 1e18))
    string = draw(NAMES) if kind == "mppt" or draw(st.booleans()) else None
    return Reading(device=draw(NAMES), kind=kind, ts=draw(INTS), fields=fields, string=string)


@settings(max_examples=400, deadline=None)
@given(readings())
def test_reading_json_is_what_the_json_module_writes(reading: Reading) -> None:
    assert reading_json(reading) == reading_json_reference(reading)
    assert reading_json(reading) == json.dumps(reading.to_dict(), separators=(",", ":"), ensure_ascii=False,
                                               allow_nan=False)


def test_same_errors_as_the_json_module() -> None:
    bad = Reading(device="ond", kind="inverter", ts=1, fields={"no_such_field": 1.0})
    with pytest.raises(KeyError):
        reading_json_reference(bad)
    with pytest.raises(KeyError):
        reading_json(bad)
    for value in (math.nan, math.inf, -math.inf):
        nan = Reading(device="ond", kind="inverter", ts=1, fields={"ac_power_w": value})
        with pytest.raises(ValueError):
            reading_json_reference(nan)
        with pytest.raises(ValueError):
            reading_json(nan)


def test_a_float_timestamp_goes_through_the_json_module() -> None:
    reading = Reading(device="ond", kind="inverter", ts=1.5, fields={"ac_power_w": 3})  # type: ignore[arg-type]
    assert reading_json(reading) == '{"device":"ond","kind":"inverter","ts":1.5,"fields":{"ac_power_w":3.0}}'
