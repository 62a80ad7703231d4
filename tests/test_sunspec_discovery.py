"""SunSpec discovery (bases, model chain, logical devices) and the poll plan it compiles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.devices.base import DeviceIdentity
from agent.devices.sunspec import SunSpecDriver, scan
from agent.devices.sunspec_discovery import find_chain
from agent.errors import DecodeError, DeviceBusy, TransportError
from agent.modbus.plan import ReadRequest, RegisterSpan, Table
from agent.modbus.types import execute_plan
from agent.schema import DeviceKind
from tests.sunspec_images import FakeReader, common_model, encode_model, image

SF_103 = {"A_SF": -2, "V_SF": -1, "W_SF": 0, "Hz_SF": -2, "WH_SF": 0, "Tmp_SF": -1}


def m103(w: int = 4321, serial_hint: int = 0) -> list[int]:
    return encode_model(103, raw={**SF_103, "St": 4, "Evt1": 0}, values={"W": w, "Hz": 50.0, "WH": 1000 + serial_hint})


def m160(strings: int = 2) -> list[int]:
    modules = [({"ID": i + 1}, {"DCW": 1000 + i, "DCV": 600.0, "DCA": 1.5, "DCWH": 5000}) for i in range(strings)]
    return encode_model(160, raw={"DCA_SF": -1, "DCV_SF": -1, "DCW_SF": 0, "DCWH_SF": 0}, modules=modules)


def m203() -> list[int]:
    return encode_model(203, raw={"W_SF": 0, "TotWh_SF": 0}, values={"W": 800, "TotWhImp": 1234})


def discover(reader: FakeReader, kind: DeviceKind = "inverter", **kwargs: Any) -> tuple[SunSpecDriver, DeviceIdentity]:
    driver = SunSpecDriver("dev", kind, **kwargs)
    return driver, asyncio.run(driver.discover(reader))


def poll_fields(driver: SunSpecDriver, reader: FakeReader) -> dict[str, float | int]:
    block = asyncio.run(execute_plan(reader, driver.plan()))
    return driver.decode(block, 0).readings[0].fields


@pytest.mark.parametrize("base", [40000, 50000, 0])
def test_discovery_at_each_base(base: int) -> None:
    reader = FakeReader(image([common_model(), m103()], base=base))
    driver, identity = discover(reader)
    assert identity == DeviceIdentity("Terril", "Sim-3000", "SN-0001", "1.2.3", None, (1, 103))
    assert poll_fields(driver, reader)["ac_power_w"] == 4321.0


def test_discovery_reads_the_chain_in_few_requests() -> None:
    reader = FakeReader(image([common_model(), encode_model(120, raw={"WRtg_SF": 1}, values={"WRtg": 6000}), m103(), m160()]))
    _, identity = discover(reader)
    assert identity.rated_power_w == 6000.0
    assert identity.models == (1, 120, 103, 160)
    # 202 registers: two chunks of 125, one refused past the end, then the last header.
    assert reader.requests <= 4, reader.log


def test_solaredge_model_1_of_length_65() -> None:
    short_common = common_model(manufacturer="SolarEdge", serial="7E1234", length=65)
    assert short_common[1] == 65 and len(short_common) == 67
    reader = FakeReader(image([short_common, m103(w=777)]))
    driver, identity = discover(reader)
    assert identity.manufacturer == "SolarEdge" and identity.serial == "7E1234"
    assert identity.models == (1, 103)
    assert poll_fields(driver, reader)["ac_power_w"] == 777.0


def test_two_logical_devices_at_one_address() -> None:
    registers = image(
        [common_model(serial="FIRST"), m103(w=1111), common_model(serial="SECOND", model="Sim-6000"), m103(w=2222), m160(3)]
    )
    devices = asyncio.run(scan(FakeReader(registers)))
    assert [(d.logical_index, d.identity.serial, d.kind) for d in devices] == [(1, "FIRST", "inverter"), (2, "SECOND", "inverter")]
    assert [m.id for m in devices[1].models] == [1, 103, 160]
    assert devices[1].models[2].length == 8 + 3 * 20
    first_reader, second_reader = FakeReader(registers), FakeReader(registers)
    first, _ = discover(first_reader)
    second, identity = discover(second_reader, logical_device=2)
    assert identity.serial == "SECOND" and identity.model == "Sim-6000"
    assert poll_fields(first, first_reader)["ac_power_w"] == 1111.0
    assert poll_fields(second, second_reader)["ac_power_w"] == 2222.0
    block = asyncio.run(execute_plan(second_reader, second.plan()))
    assert [r.string for r in second.decode(block, 0).readings[1:]] == ["1", "2", "3"]
    with pytest.raises(DecodeError, match=r"logical_device 3 asked.*2 logical device"):
        discover(FakeReader(registers), logical_device=3)


def test_timeout_at_40000_still_finds_the_device_at_50000() -> None:
    """The poller's discovery stops at a silent base; its next attempt starts at the next base."""
    reader = FakeReader(image([common_model(), m103()], base=50000), timeout_ranges=[range(40000, 40200)])
    driver = SunSpecDriver("dev", "inverter")
    with pytest.raises(TransportError, match="no answer at SunSpec base 40000"):
        asyncio.run(driver.discover(reader))
    assert reader.requests == 1
    identity = asyncio.run(driver.discover(reader))
    assert identity.serial == "SN-0001"
    assert all(address >= 50000 for _, address, _ in reader.log[1:])
    assert poll_fields(driver, reader)["ac_power_w"] == 4321.0
    before = reader.requests
    asyncio.run(driver.discover(reader))  # rediscovery (after a reconnect) starts where the map was
    assert all(address >= 50000 for _, address, _ in reader.log[before:])


def test_scan_still_walks_every_base_past_a_timeout() -> None:
    reader = FakeReader(image([common_model(), m103()], base=50000), timeout_ranges=[range(40000, 40200)])
    chain = asyncio.run(find_chain(reader))
    assert chain.base == 50000


def test_a_silent_unit_costs_one_request_per_discovery_attempt() -> None:
    """On an RS-485 bus every timeout holds the neighbours back: one per attempt, not one per base."""
    reader = FakeReader({}, timeout_ranges=[range(0, 0x10000)])
    driver = SunSpecDriver("dev", "inverter")
    for attempt in range(1, 4):
        with pytest.raises(TransportError, match="no answer at SunSpec base"):
            asyncio.run(driver.discover(reader))
        assert reader.requests == attempt
    assert [address for _, address, _ in reader.log] == [40000, 50000, 0]


def test_every_base_timing_out_is_a_transport_error() -> None:
    reader = FakeReader({}, timeout_ranges=[range(0, 0x10000)])
    with pytest.raises(TransportError, match="no answer at any SunSpec base"):
        asyncio.run(find_chain(reader))
    assert reader.requests == 3


def test_an_exception_response_still_moves_to_the_next_base() -> None:
    reader = FakeReader(image([common_model(), m103()], base=0))  # 40000 and 50000 answer "illegal address"
    _, identity = discover(reader)
    assert identity.serial == "SN-0001"


def test_no_sunspec_map_is_a_decode_error_naming_each_base() -> None:
    reader = FakeReader({40000 + i: 0 for i in range(10)})
    with pytest.raises(DecodeError, match=r"40000: no 'SunS' marker.*50000.*0:"):
        discover(reader)


def test_busy_base_without_a_map_elsewhere_is_device_busy() -> None:
    class BusyAt40000(FakeReader):
        async def read(self, table: Table, address: int, count: int) -> list[int]:
            if address == 40000:
                self.requests += 1
                raise DeviceBusy("busy")
            return await super().read(table, address, count)

    with pytest.raises(DeviceBusy, match="busy"):
        discover(BusyAt40000({}))
    reader = BusyAt40000(image([common_model(), m103()], base=0))
    assert discover(reader)[1].models == (1, 103)


def test_chain_without_end_marker_ends_where_the_map_ends() -> None:
    reader = FakeReader(image([common_model(), m103()], end_marker=False))
    driver, identity = discover(reader)
    assert identity.models == (1, 103)
    assert poll_fields(driver, reader)["ac_power_w"] == 4321.0


def test_wrong_kind_names_the_models_found() -> None:
    with pytest.raises(DecodeError, match=r"no meter model \(found models 1, 103"):
        discover(FakeReader(image([common_model(), m103()])), kind="meter")


def test_meter_discovery_and_poll() -> None:
    reader = FakeReader(image([common_model(), m203()]))
    driver, identity = discover(reader, kind="meter")
    assert identity.models == (1, 203)
    assert poll_fields(driver, reader) == {"power_w": 800.0, "energy_import_wh": 1234.0}


def test_unknown_vendor_model_in_the_chain_is_skipped_by_its_length() -> None:
    vendor = [64900, 5, 1, 2, 3, 4, 5]
    reader = FakeReader(image([common_model(), vendor, m103(w=55)]))
    driver, identity = discover(reader)
    assert identity.models == (1, 64900, 103)
    assert poll_fields(driver, reader)["ac_power_w"] == 55.0


def test_plan_before_discover_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="before discover"):
        SunSpecDriver("dev", "inverter").plan()


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "battery"}, {"logical_device": 0}, {"max_registers": 126}, {"max_registers": 0}],
)
def test_bad_driver_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "dev", "kind": "inverter", **kwargs}
    with pytest.raises(ValueError):
        SunSpecDriver(**args)


def test_find_chain_reports_the_models_with_addresses() -> None:
    chain = asyncio.run(find_chain(FakeReader(image([common_model(length=65), m103()], base=0))))
    assert chain.base == 0
    assert [(m.id, m.address, m.length) for m in chain.models] == [(1, 2, 65), (103, 69, 50)]


# --------------------------------------------------------------------------- the poll plan


def minimum_requests(spans: list[RegisterSpan], max_registers: int) -> int:
    """Fewest windows of ``max_registers`` registers such that each span lies inside one window.

    Independent of ``plan_reads``: open a window at the lowest uncovered span start
    (no window can do better for that span) and drop every span it contains.
    """
    remaining = sorted((s.address, s.end) for s in spans)
    count = 0
    while remaining:
        start = remaining[0][0]
        remaining = [(a, e) for a, e in remaining if not (a >= start and e <= start + max_registers)]
        count += 1
    return count


def full_inverter(strings: int = 2) -> FakeReader:
    return FakeReader(image([common_model(), m103(), m160(strings)]))


def test_full_inverter_polls_in_one_request() -> None:
    reader = full_inverter()
    driver, _ = discover(reader)
    assert len(driver.plan()) == 1
    before = reader.requests
    fields = poll_fields(driver, reader)
    assert reader.requests - before == 1
    assert fields["ac_power_w"] == 4321.0


@pytest.mark.parametrize(
    ("max_registers", "strings", "expected"),
    [
        (125, 2, 1),
        (94, 2, 1),  # 103 from A (offset 2) to the 2nd module's DCWH: exactly 94 registers
        (93, 2, 2),
        (60, 2, 2),
        (40, 2, 3),
        (20, 2, 5),  # 103 in 2; model 160's second module is too far from its scale factors: 3
        (10, 2, None),
        (2, 2, None),
        (125, 8, None),
        (64, 8, None),
    ],
)
def test_plan_uses_the_minimum_number_of_requests(max_registers: int, strings: int, expected: int | None) -> None:
    reader = full_inverter(strings)
    driver, _ = discover(reader, max_registers=max_registers)
    plan = driver.plan()
    spans = driver.spans()
    optimum = minimum_requests(spans, max_registers)
    assert len(plan) == optimum
    if expected is not None:
        assert optimum == expected
    assert all(r.count <= max_registers for r in plan)
    for span in spans:  # a value and its scale factor always come from the same request
        assert any(r.address <= span.address and span.end <= r.end for r in plan), span
    chain_end = max(reader.registers) + 1
    assert all(r.address >= 40000 and r.end <= chain_end for r in plan)  # never outside the map
    fields = poll_fields(driver, reader)
    assert fields["ac_power_w"] == 4321.0 and fields["ac_frequency_hz"] == 50.0


def test_max_gap_zero_reads_only_needed_registers() -> None:
    reader = full_inverter()
    driver, _ = discover(reader, max_gap=0)
    needed = {a for s in driver.spans() for a in range(s.address, s.end)}
    read = {a for r in driver.plan() for a in range(r.address, r.end)}
    assert read == needed
    assert len(driver.plan()) > 1


def test_plan_is_a_copy() -> None:
    driver, _ = discover(full_inverter())
    driver.plan().append(ReadRequest("holding", 0, 1))
    assert len(driver.plan()) == 1
