"""Modbus RTU bus: several units on one serial line, over a real socat pty pair.

A pty ignores the baud rate, so the test server delays each answer by the
frame time at 9600 baud, like a real RS-485 line would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import TransportError
from agent.modbus.backoff import Backoff
from agent.modbus.pool import LinkPool
from agent.modbus.rtu import inter_frame_silence
from tests.fixtures.ports import stop_process
from tests.test_modbus_support import Traffic, holding_value, input_value, start_pty_pair, start_serial_server

BAUD = 9600
TIMEOUT = 0.3
INTERVAL = 0.8
POLLS = 3
START_OFFSET = {3: 0.0, 1: 0.005, 2: 0.010}
"""Unit 3 (silent) grabs the bus first each poll: the worst case for the others."""
EXCHANGE = (8 + 5 + 2 * 10) * 10 / BAUD
"""Wire time of one 10-register read at 9600 baud (request + answer)."""


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    proc, agent_end, device_end = start_pty_pair(tmp_path)
    try:
        yield agent_end, device_end
    finally:
        stop_process(proc)


def test_two_units_polled_every_interval_despite_a_silent_unit(pty_pair: tuple[Path, Path]) -> None:
    agent_end, device_end = pty_pair
    traffic = Traffic()
    outcomes: list[tuple[int, int, float, float, object]] = []  # unit, poll, started, ended, result

    async def scenario() -> float:
        server = await start_serial_server(device_end, BAUD, units=(1, 2), traffic=traffic)
        pool = LinkPool(backoff=lambda: Backoff(0.1, 0.4))
        bus = pool.rtu(str(agent_end), BAUD, timeout=TIMEOUT)
        requests = {3: ("holding", 0, 1), 1: ("holding", 0, 10), 2: ("input", 0, 10)}
        readers = {unit: pool.unit(bus, unit) for unit in requests}

        async def poll_device(unit: int, t0: float) -> None:
            for k in range(POLLS):  # as the scheduler does: each device on its own interval
                await asyncio.sleep(max(0.0, t0 + k * INTERVAL + START_OFFSET[unit] - time.monotonic()))
                started = time.monotonic()
                try:
                    result: object = await readers[unit].read(*requests[unit])
                except TransportError as exc:
                    result = exc
                outcomes.append((unit, k, started, time.monotonic(), result))

        try:
            await readers[1].read("holding", 0, 1)  # open the port first: the polls measure the bus, not open()
            t0 = time.monotonic() + 0.05
            await asyncio.gather(*(poll_device(unit, t0) for unit in requests))  # unit 3 first: worst case
            assert readers[3].reachable is False and readers[1].reachable and readers[2].reachable
            assert bus.connected
            return bus.gap()
        finally:
            await pool.close()
            await server.shutdown()

    gap = asyncio.run(scenario())

    by_unit = {unit: [o for o in outcomes if o[0] == unit] for unit in (1, 2, 3)}
    # Both answering units got every poll, with their own values.
    assert [o[4] for o in by_unit[1]] == [[holding_value(1, a) for a in range(10)]] * POLLS
    assert [o[4] for o in by_unit[2]] == [[input_value(2, a) for a in range(10)]] * POLLS
    slack = 0.1  # scheduling on a loaded 2-core CI machine
    for unit, exchanges_ahead in ((1, 0), (2, 1)):
        for _, k, started, ended, _ in by_unit[unit]:
            # It waited behind the silent unit's single timeout (and unit 2 behind unit 1), no more.
            budget = TIMEOUT + (exchanges_ahead + 1) * (EXCHANGE + gap) + gap + slack
            assert ended - started < budget, (unit, k, ended - started, budget)
    # The silent unit costs one timeout per poll, no retries.
    for _, k, started, ended, result in by_unit[3]:
        assert isinstance(result, TransportError) and "unit 3" in str(result)
        assert TIMEOUT - 0.01 <= ended - started < TIMEOUT + slack, (k, ended - started)
    received = traffic.received()
    assert sum(1 for e in received if e[2] == 3) == POLLS  # one request per poll: not retried
    for this, following in itertools.pairwise(received):
        if this[2] == 3:  # the bus is busy for one timeout (plus the quiet gap), then moves on
            assert TIMEOUT <= following[0] - this[0] < TIMEOUT + gap + slack
    assert traffic.function_codes() <= {3, 4}

    # From the device side: never two requests on the bus at once, and the
    # inter-frame silence plus the pause between one exchange and the next.
    events = traffic.events
    for previous, current in itertools.pairwise(events):
        if current[1] == "send":
            assert previous[1] == "recv" and previous[2] == current[2], "answer without its request"
        elif previous[1] == "send":
            assert current[0] - previous[0] >= gap - 0.002, "bus not quiet long enough"
        else:  # a request after an unanswered request: the client waited its timeout
            assert previous[2] == 3
            assert current[0] - previous[0] >= TIMEOUT


def test_missing_serial_port_is_a_transport_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = LinkPool(backoff=lambda: Backoff(0.1, 0.4))
        bus = pool.rtu(str(tmp_path / "ttyUSB9"), 9600, timeout=0.2)
        reader = pool.unit(bus, 1)
        with pytest.raises(TransportError, match=r"ttyUSB9 unit 1 holding registers 0\.\.1: cannot connect"):
            await reader.read("holding", 0, 2)
        with pytest.raises(TransportError, match="next connection attempt"):
            await reader.read("holding", 0, 2)
        assert bus.status().state == "unreachable"
        await pool.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("baudrate", "parity", "stopbits", "expected_ms"),
    [
        (9600, "N", 1, 3.5 * 10 / 9.6),
        (9600, "E", 1, 3.5 * 11 / 9.6),
        (2400, "N", 2, 3.5 * 11 / 2.4),
        (19200, "N", 1, 3.5 * 10 / 19.2),
        (38400, "N", 1, 1.75),
        (115200, "E", 1, 1.75),
    ],
)
def test_inter_frame_silence(baudrate: int, parity: str, stopbits: int, expected_ms: float) -> None:
    assert inter_frame_silence(baudrate, parity, stopbits) * 1000 == pytest.approx(expected_ms)


def test_serial_line_lost_then_back(tmp_path: Path) -> None:
    """The USB adapter disappears (socat stopped) and comes back: TransportError, then reads again."""
    traffic = Traffic()

    async def scenario() -> None:
        proc, agent_end, device_end = start_pty_pair(tmp_path)
        server = await start_serial_server(device_end, BAUD, units=(1,), traffic=traffic)
        pool = LinkPool(backoff=lambda: Backoff(0.1, 0.2, jitter=0.0))
        bus = pool.rtu(str(agent_end), BAUD, timeout=TIMEOUT)
        reader = pool.unit(bus, 1)
        try:
            assert await reader.read("holding", 0, 2) == [holding_value(1, 0), holding_value(1, 1)]
            await server.shutdown()
            stop_process(proc)
            await asyncio.sleep(0.1)
            with pytest.raises(TransportError, match="agent-tty unit 1"):
                await reader.read("holding", 0, 2)
            assert not bus.connected

            proc, agent_end, device_end = start_pty_pair(tmp_path)
            server = await start_serial_server(device_end, BAUD, units=(1,), traffic=traffic)
            deadline = time.monotonic() + 3
            while True:
                try:
                    assert await reader.read("holding", 0, 2) == [holding_value(1, 0), holding_value(1, 1)]
                    break
                except TransportError:
                    assert time.monotonic() < deadline, "serial bus did not come back"
                    await asyncio.sleep(0.05)
            assert bus.connected
        finally:
            await pool.close()
            await server.shutdown()
            stop_process(proc)

    asyncio.run(scenario())
