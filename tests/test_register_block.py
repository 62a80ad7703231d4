"""RegisterBlock answers exactly as a per-register map in store order would (property test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.modbus.plan import RegisterBlock

TABLES = st.sampled_from(["holding", "input"])
STORES = st.lists(
    st.tuples(TABLES, st.integers(0, 60), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20)), max_size=5
)
GETS = st.lists(st.tuples(TABLES, st.integers(0, 80), st.integers(0, 30)), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(STORES, GETS)
def test_block_answers_like_a_register_map(stores: list[tuple[str, int, list[int]]],
                                           gets: list[tuple[str, int, int]]) -> None:
    block = RegisterBlock()
    reference: dict[str, dict[int, int]] = {"holding": {}, "input": {}}
    for table, address, registers in stores:
        block.store(table, address, registers)  # type: ignore[arg-type]
        for offset, value in enumerate(registers):
            reference[table][address + offset] = value
        registers.append(0xDEAD)  # the block keeps its own copy
    for table, address, count in gets:
        wanted = [reference[table].get(a) for a in range(address, address + count)]
        assert block.get(table, address, count) == (None if None in wanted else wanted)  # type: ignore[arg-type]


def test_a_range_across_two_responses_and_an_overlap() -> None:
    block = RegisterBlock()
    block.store("holding", 10, [1, 2, 3])
    block.store("holding", 13, [4, 5])
    assert block.get("holding", 11, 3) == [2, 3, 4]
    assert block.get("holding", 12, 4) is None
    block.store("holding", 11, [20])  # later response wins
    assert block.get("holding", 10, 3) == [1, 20, 3]
    assert block.get("input", 10, 1) is None
