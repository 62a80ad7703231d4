"""The compiled SunSpec decoder gives exactly what the reference decoder gives, on any register content."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.devices.sunspec import SunSpecDriver
from agent.modbus.plan import RegisterBlock
from agent.modbus.types import execute_plan
from agent.schema import DeviceKind
from tests.sunspec_images import FakeReader, common_model, encode_model, image

WORD = st.one_of(
    st.sampled_from([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0xFFF6, 0xFFF5, 10, 11, 0x7FC0, 0xFFC0]),
    st.integers(0, 0xFFFF),
)

DEVICES: list[tuple[DeviceKind, tuple[int, ...]]] = [
    ("inverter", (101, 160)),
    ("inverter", (103, 160)),
    ("inverter", (113, 160)),
    ("meter", (201,)),
    ("meter", (203,)),
    ("meter", (213,)),
]


def _driver_and_block(kind: DeviceKind, models: tuple[int, ...]) -> tuple[SunSpecDriver, RegisterBlock]:
    bodies = [encode_model(m, modules=[({}, {}), ({}, {})] if m == 160 else ()) for m in models]
    reader = FakeReader(image([common_model(), *bodies]))
    driver = SunSpecDriver("dev", kind)

    async def run() -> RegisterBlock:
        await driver.discover(reader)
        return await execute_plan(reader, driver.plan())

    return driver, asyncio.run(run())


@pytest.mark.parametrize(("kind", "models"), DEVICES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_decoding_equals_the_reference(kind: DeviceKind, models: tuple[int, ...], data: st.DataObject) -> None:
    driver, _ = _driver_and_block(kind, models)
    block = RegisterBlock()
    for request in driver.plan():
        block.store(request.table, request.address, data.draw(st.lists(WORD, min_size=request.count,
                                                                          max_size=request.count)))
    fast = driver.decode(block, 1)
    compiled, driver._compiled = driver._compiled, None  # force the field-by-field reference path
    try:
        reference = driver.decode(block, 1)
    finally:
        driver._compiled = compiled
    assert compiled is not None
    assert [(r.kind, r.string, r.fields) for r in fast.readings] == [
        (r.kind, r.string, r.fields) for r in reference.readings
    ]
    for a, b in zip(fast.readings, reference.readings, strict=False):
        assert [type(v) for v in a.fields.values()] == [type(v) for v in b.fields.values()]
    assert fast.active_events == reference.active_events
    assert fast.state == reference.state
