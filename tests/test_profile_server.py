"""Profile devices polled through a real pymodbus server: LinkPool + UnitReader + execute_plan.

The server holds a register image generated from the profile, with registers
only where the real device has them (reads across anything else answer
"illegal address", as a Huawei SUN2000 does), and records every request so the
test can check from the device's side that terril only ever read.
"""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.devices.profile import Profile, encode_value, load_profile
from agent.devices.profile_driver import ProfileDriver
from agent.errors import IllegalAddress
from agent.modbus.backoff import Backoff
from agent.modbus.plan import Table
from agent.modbus.pool import LinkPool
from agent.modbus.types import execute_plan
from tests.fixtures.ports import free_port
from tests.test_modbus_support import Traffic
from tests.test_profile_images import Image, ValueKey, expected_values, identify_as, profile_image, reading_key

UNIT = 3


def _groups(image: Image, table: Table) -> list[SimData]:
    """Contiguous runs of the image as SimData blocks; the addresses between them stay invalid."""
    addresses = sorted(a for t, a in image if t == table)
    blocks: list[SimData] = []
    start = previous = None
    for address in [*addresses, None]:
        if address is not None and previous is not None and address == previous + 1:
            previous = address
            continue
        if start is not None and previous is not None:
            values = [image[(table, a)] for a in range(start, previous + 1)]
            blocks.append(SimData(start, values=values, datatype=DataType.REGISTERS))
        start = previous = address
    return blocks or [SimData(65000, values=[0], datatype=DataType.REGISTERS)]


def _device(image: Image, unit: int = UNIT) -> SimDevice:
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    return SimDevice(id=unit, simdata=(bits, bits, _groups(image, "holding"), _groups(image, "input")))


async def _serve(image: Image, traffic: Traffic, more: dict[int, Image] | None = None) -> tuple[ModbusTcpServer, int]:
    """A server with *image* at unit ``UNIT`` and each of *more* at its own unit id."""
    port = free_port()
    devices = [_device(image), *(_device(other, unit) for unit, other in (more or {}).items())]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port), trace_pdu=traffic.trace_pdu)
    await server.serve_forever(background=True)
    return server, port


def _fill(image: Image, profile: Profile, table: Table, first: int, last: int) -> None:
    """Documented registers the device answers although the profile does not use them (read through)."""
    for address in range(first - profile.defaults.address_base, last - profile.defaults.address_base + 1):
        image.setdefault((table, address), 0)


def _flatten(profile: Profile, poll) -> dict[ValueKey, float | int]:  # type: ignore[no-untyped-def]
    return {reading_key(profile, r, name): value for r in poll.readings for name, value in r.fields.items()}


def test_sdm630_polled_over_tcp_with_two_input_register_requests() -> None:
    profile = load_profile("sdm630")
    image = identify_as(profile_image(profile, expected_values(profile)), profile, 3.0)  # System Type 3P4W
    _fill(image, profile, "input", 0x0000, 0x004B)  # an SDM630 answers its reserved registers too

    async def scenario() -> None:
        traffic = Traffic()
        server, port = await _serve(image, traffic)
        pool = LinkPool(backoff=lambda: Backoff(initial=0.1, maximum=0.4, jitter=0.0))
        try:
            reader = pool.unit(pool.tcp("127.0.0.1", port), UNIT)
            driver = ProfileDriver("compteur-general", "meter", profile)
            identity = await driver.discover(reader)
            assert (identity.manufacturer, identity.model, identity.serial) == ("Eastron", "SDM630 (3P4W)", None)
            assert reader.requests == 1  # the identity guard (System Type); no probe needed after it
            for _ in range(2):  # the plan is fixed: each poll costs the same
                before = reader.requests
                block = await execute_plan(reader, driver.plan())
                assert reader.requests - before == 2
                poll = driver.decode(block, 1_700_000_000_000)
                assert _flatten(profile, poll) == expected_values(profile)
                for reading in poll.readings:
                    reading.validate()
        finally:
            await pool.close()
            await server.shutdown()
        assert traffic.function_codes() == {3, 4}  # System Type (holding) once, then input registers; never a write

    asyncio.run(scenario())


def test_huawei_sun2000_never_reads_across_undocumented_registers() -> None:
    profile = load_profile("huawei_sun2000")
    image = profile_image(profile, expected_values(profile), state_code=0x0200, alarm_words={32008: 1 << 9})
    _fill(image, profile, "holding", 32064, 32089)  # documented: line voltages, peak power, efficiency…
    for address, word in enumerate(encode_value("str", "SUN2000-10KTL-M1", length=15), start=30000):
        image[("holding", address)] = word
    for address, word in enumerate(encode_value("str", "HV2040012345", length=10), start=30015):
        image[("holding", address)] = word
    for address, word in enumerate(encode_value("u32", 10000), start=30073):
        image[("holding", address)] = word
    assert ("holding", 32011) not in image and ("holding", 32090) not in image

    async def scenario() -> None:
        traffic = Traffic()
        server, port = await _serve(image, traffic)
        pool = LinkPool(backoff=lambda: Backoff(initial=0.1, maximum=0.4, jitter=0.0))
        try:
            reader = pool.unit(pool.tcp("127.0.0.1", port), UNIT)
            driver = ProfileDriver("onduleur-sud", "inverter", profile)
            identity = await driver.discover(reader)
            assert identity.model == "SUN2000-10KTL-M1"
            assert identity.serial == "HV2040012345"
            assert identity.rated_power_w == 10000.0
            assert reader.requests == 3  # model, serial, rated power; no probe needed
            block = await execute_plan(reader, driver.plan())
            assert reader.requests == 3 + 4
            poll = driver.decode(block, 1_700_000_000_000)
            with pytest.raises(IllegalAddress):  # the server does refuse what the plan avoids
                await reader.read("holding", 32008, 12)
        finally:
            await pool.close()
            await server.shutdown()
        fields = _flatten(profile, poll)
        assert {k: v for k, v in fields.items() if k[2] not in ("state", "events")} == expected_values(profile)
        assert poll.state == 4 and fields[(None, None, "events")] == 1 << 10
        assert poll.active_events == {"HUAWEI_ALARM_2034": "Grid overvoltage (alarm 2034)"}
        assert traffic.function_codes() == {3}

    asyncio.run(scenario())
