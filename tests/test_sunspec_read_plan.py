"""Table-driven tests of the read planner (agent/modbus/plan.py), which the SunSpec driver relies on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.modbus.plan import ReadRequest, RegisterBlock, RegisterSpan, plan_reads


def H(address: int, count: int) -> RegisterSpan:
    return RegisterSpan("holding", address, count)


def I(address: int, count: int) -> RegisterSpan:  # noqa: E743 - reads like the table name
    return RegisterSpan("input", address, count)


def R(address: int, count: int, table: str = "holding") -> ReadRequest:
    return ReadRequest(table, address, count)  # type: ignore[arg-type]


CASES = [
    # (name, spans, max_registers, max_gap, expected requests)
    ("nothing", [], 125, 0, []),
    ("one span", [H(100, 2)], 125, 0, [R(100, 2)]),
    ("contiguous spans merge", [H(100, 2), H(102, 3)], 125, 0, [R(100, 5)]),
    ("order does not matter", [H(102, 3), H(100, 2)], 125, 0, [R(100, 5)]),
    ("duplicates collapse", [H(100, 2), H(100, 2)], 125, 0, [R(100, 2)]),
    ("overlap merges", [H(100, 4), H(102, 4)], 125, 0, [R(100, 6)]),
    ("contained span", [H(100, 10), H(102, 2)], 125, 0, [R(100, 10)]),
    ("gap not read through at max_gap 0", [H(100, 2), H(103, 1)], 125, 0, [R(100, 2), R(103, 1)]),
    ("gap read through", [H(100, 2), H(103, 1)], 125, 1, [R(100, 4)]),
    ("gap just too wide", [H(100, 2), H(104, 1)], 125, 1, [R(100, 2), R(104, 1)]),
    ("tables never merge", [H(100, 2), I(102, 2)], 125, 10, [R(100, 2), R(102, 2, "input")]),
    ("request limit", [H(0, 60), H(60, 60), H(120, 10)], 125, 0, [R(0, 120), R(120, 10)]),
    ("exactly the limit", [H(0, 100), H(100, 25)], 125, 0, [R(0, 125)]),
    ("atomic span not cut", [H(0, 100), H(100, 30)], 125, 0, [R(0, 100), R(100, 30)]),
    ("oversized span split", [H(0, 300)], 125, 0, [R(0, 125), R(125, 125), R(250, 50)]),
    ("small max_registers", [H(0, 4), H(4, 4), H(8, 4)], 8, 0, [R(0, 8), R(8, 4)]),
    # A span that starts inside the tail of a split span is kept whole (extended backwards).
    ("span after a split stays whole", [H(0, 200), H(110, 100)], 125, 0, [R(0, 125), R(110, 100)]),
    ("span after a split, too long to join", [H(0, 250), H(120, 10)], 125, 0, [R(0, 125), R(125, 125), R(120, 10)]),
]


@pytest.mark.parametrize(("spans", "max_registers", "max_gap", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_reads(spans: list[RegisterSpan], max_registers: int, max_gap: int, expected: list[ReadRequest]) -> None:
    assert plan_reads(spans, max_registers, max_gap) == expected


@pytest.mark.parametrize(
    ("spans", "max_registers", "max_gap", "message"),
    [
        ([H(0, 1)], 0, 0, "max_registers"),
        ([H(0, 1)], 126, 0, "max_registers"),
        ([H(0, 1)], 125, -1, "max_gap"),
        ([H(0, 0)], 125, 0, "no registers"),
    ],
)
def test_plan_reads_rejects_bad_arguments(spans: list[RegisterSpan], max_registers: int, max_gap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_reads(spans, max_registers, max_gap)


def _fewest_windows(spans: list[RegisterSpan], max_registers: int) -> int:
    remaining = sorted({(s.address, s.end) for s in spans})
    count = 0
    while remaining:
        start = remaining[0][0]
        remaining = [(a, e) for a, e in remaining if not (a >= start and e <= start + max_registers)]
        count += 1
    return count


span_lists = st.lists(
    st.builds(H, st.integers(0, 400), st.integers(1, 40)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(spans=span_lists, max_registers=st.integers(40, 125))
def test_every_span_is_read_whole_in_the_fewest_requests(spans: list[RegisterSpan], max_registers: int) -> None:
    """With any gap allowed, the plan is optimal and never cuts a span that fits one request."""
    plan = plan_reads(spans, max_registers, max_gap=max_registers)
    assert all(1 <= r.count <= max_registers for r in plan)
    for span in spans:
        assert any(r.address <= span.address and span.end <= r.end for r in plan), (span, plan)
    assert len(plan) == _fewest_windows(spans, max_registers)


@settings(max_examples=200, deadline=None)
@given(spans=span_lists, max_registers=st.integers(1, 125), max_gap=st.integers(0, 10))
def test_plan_covers_every_register_and_reads_only_within_gaps(
    spans: list[RegisterSpan], max_registers: int, max_gap: int
) -> None:
    plan = plan_reads(spans, max_registers, max_gap)
    read = {a for r in plan for a in range(r.address, r.end)}
    needed = {a for s in spans for a in range(s.address, s.end)}
    assert needed <= read
    for address in read - needed:  # an unneeded register is only read inside a short gap
        assert any(a in needed for a in range(address - max_gap, address)) and any(
            a in needed for a in range(address + 1, address + max_gap + 1)
        )


def test_register_block_get_and_missing() -> None:
    block = RegisterBlock()
    block.store("holding", 10, [1, 2, 3])
    assert block.get("holding", 11, 2) == [2, 3]
    assert block.get("holding", 12, 2) is None
    assert block.get("input", 10, 1) is None
