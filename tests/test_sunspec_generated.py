"""The generated SunSpec decoder: it runs on a full plan, and its arithmetic is the reference's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.devices.sunspec_codegen import _SCALES
from agent.devices.sunspec_mapping import power_factor_ratio
from agent.devices.sunspec_types import apply_scale_factor
from agent.modbus.plan import RegisterBlock
from tests.test_sunspec_compiled import DEVICES, _driver_and_block


def test_the_generated_path_decodes_a_full_plan_and_not_a_partial_one() -> None:
    for kind, models in DEVICES:
        driver, block = _driver_and_block(kind, models)
        compiled = driver._compiled
        assert compiled is not None
        assert compiled.decoder(block, "holding") is not None, (kind, models)
        assert "round(" not in compiled.decoder.source  # type: ignore[attr-defined]
        first = driver.plan()[0]
        partial = RegisterBlock()
        partial.store(first.table, first.address, [0] * (first.count - 1))
        assert compiled.decoder(partial, first.table) is None  # falls back to the reference path


@settings(max_examples=3000, deadline=None)
@given(raw=st.one_of(st.integers(-0x8000, 0xFFFF), st.integers(-0x8000_0000, 0xFFFF_FFFF)), sf=st.integers(-10, 10))
def test_scale_table_gives_what_apply_scale_factor_gives(raw: int, sf: int) -> None:
    mul, div, table_sf = _SCALES[sf & 0xFFFF]
    assert table_sf == sf
    value = raw * mul / div
    expected = apply_scale_factor(raw, sf)
    assert repr(value) == repr(expected)
    assert repr(power_factor_ratio(value, "Pct", sf)) == repr(power_factor_ratio(expected, "Pct", sf))
