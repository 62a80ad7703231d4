"""Modbus TCP links against a real pymodbus server on a free loopback port."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from agent.errors import DeviceBusy, IllegalAddress, ModbusExceptionResponse, TransportError
from agent.modbus.backoff import Backoff
from agent.modbus.plan import RegisterSpan, plan_reads
from agent.modbus.pool import LinkPool
from agent.modbus.responses import GatewayError
from agent.modbus.types import RegisterReader, execute_plan
from tests.fixtures.ports import free_port
from tests.test_modbus_support import EXCEPTION_BASE, Traffic, holding_value, input_value, start_tcp_server

FAST = lambda: Backoff(initial=0.1, maximum=0.4, jitter=0.0)  # noqa: E731


def test_reads_holding_and_input_registers() -> None:
    async def scenario() -> None:
        port = free_port()
        server = await start_tcp_server(port)
        pool = LinkPool(backoff=FAST)
        try:
            reader = pool.unit(pool.tcp("127.0.0.1", port), 1)
            assert await reader.read("holding", 10, 3) == [holding_value(1, a) for a in (10, 11, 12)]
            assert await reader.read("input", 0, 2) == [input_value(1, 0), input_value(1, 1)]
            assert reader.requests == 2
            assert reader.reachable is True
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


def test_unit_reader_runs_a_read_plan() -> None:
    async def scenario() -> None:
        port = free_port()
        server = await start_tcp_server(port)
        pool = LinkPool(backoff=FAST)
        try:
            reader: RegisterReader = pool.unit(pool.tcp("127.0.0.1", port), 2)
            plan = plan_reads([RegisterSpan("holding", 0, 2), RegisterSpan("holding", 200, 125), RegisterSpan("input", 5, 1)])
            block = await execute_plan(reader, plan)
            assert block.get("holding", 200, 125) == [holding_value(2, a) for a in range(200, 325)]
            assert block.get("input", 5, 1) == [input_value(2, 5)]
            assert reader.requests == len(plan) == 3
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (2, IllegalAddress),
        (3, IllegalAddress),
        (4, ModbusExceptionResponse),
        (5, DeviceBusy),
        (6, DeviceBusy),
        (8, ModbusExceptionResponse),
        (0x0A, GatewayError),
        (0x0B, GatewayError),
    ],
)
def test_exception_responses_map_to_terril_errors(code: int, error: type[Exception]) -> None:
    async def scenario() -> None:
        port = free_port()
        server = await start_tcp_server(port)
        pool = LinkPool(backoff=FAST)
        try:
            link = pool.tcp("127.0.0.1", port)
            reader = pool.unit(link, 1)
            with pytest.raises(error) as caught:
                await reader.read("holding", EXCEPTION_BASE + code, 1)
            message = str(caught.value)
            assert f"127.0.0.1:{port} unit 1 holding registers {EXCEPTION_BASE + code}..{EXCEPTION_BASE + code}" in message
            assert f"exception {code}" in message
            if isinstance(caught.value, (ModbusExceptionResponse, GatewayError)):
                assert caught.value.code == code
            # An exception response never breaks the shared connection.
            assert link.connected
            assert await reader.read("holding", 0, 1) == [holding_value(1, 0)]
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


def test_unmapped_range_is_illegal_address() -> None:
    async def scenario() -> None:
        port = free_port()
        server = await start_tcp_server(port)
        pool = LinkPool(backoff=FAST)
        try:
            reader = pool.unit(pool.tcp("127.0.0.1", port), 1)
            with pytest.raises(IllegalAddress, match=r"input registers 95\.\.104"):
                await reader.read("input", 95, 10)
            with pytest.raises(IllegalAddress, match=r"count must be 1\.\.125"):
                await reader.read("holding", 0, 126)
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


def test_two_units_share_one_connection() -> None:
    async def scenario() -> None:
        port = free_port()
        traffic = Traffic()
        server = await start_tcp_server(port, traffic=traffic)
        pool = LinkPool(backoff=FAST)
        try:
            first, second = pool.tcp("127.0.0.1", port), pool.tcp("127.0.0.1", port)
            assert first is second
            unit1, unit2 = pool.unit(first, 1), pool.unit(second, 2)
            results = await asyncio.gather(*(u.read("holding", 0, 1) for u in (unit1, unit2, unit1, unit2)))
            assert results == [[holding_value(1, 0)], [holding_value(2, 0)]] * 2
            assert traffic.connections == 1
            assert first.requests == 4
            assert {e[2] for e in traffic.received()} == {1, 2}
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


def test_pause_separates_requests() -> None:
    async def scenario() -> None:
        port = free_port()
        traffic = Traffic()
        server = await start_tcp_server(port, traffic=traffic)
        pool = LinkPool(backoff=FAST)
        try:
            link = pool.tcp("127.0.0.1", port, pause=0.1)
            readers = [pool.unit(link, 1), pool.unit(link, 2)]
            await asyncio.gather(*(r.read("input", 0, 1) for r in readers * 2))
            events = traffic.events
            for previous, current in itertools.pairwise(events):
                if current[1] == "recv":
                    assert previous[1] == "send", "a request arrived before the previous one was answered"
                    assert current[0] - previous[0] >= 0.1 - 0.002
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())


def test_server_down_fails_fast_then_reconnects_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.modbus")

    async def scenario() -> None:
        port = free_port()
        server = await start_tcp_server(port)
        # A backoff far longer than ten failed reads take, even on a loaded machine: with 0.1 s a
        # descheduled test thread saw it expire mid-loop and the read try to connect.
        pool = LinkPool(backoff=lambda: Backoff(initial=2.0, maximum=2.0, jitter=0.0))
        link = pool.tcp("127.0.0.1", port)
        reader = pool.unit(link, 1)
        try:
            assert await reader.read("holding", 0, 1) == [holding_value(1, 0)]
            await server.shutdown()
            await asyncio.sleep(0.1)  # let the client see the connection close

            with pytest.raises(TransportError, match=f"127.0.0.1:{port} unit 1 holding registers 0..0"):
                await reader.read("holding", 0, 1)
            assert link.unreachable
            assert reader.reachable is False
            # While backing off, reads fail at once instead of trying to connect.
            started = time.monotonic()
            for _ in range(10):
                with pytest.raises(TransportError, match="next connection attempt in"):
                    await reader.read("holding", 0, 1)
            assert time.monotonic() - started < 1.0  # half the backoff: none of them waited for it

            server = await start_tcp_server(port)
            deadline = time.monotonic() + 2.0 + 8.0  # the backoff, then a generous margin
            while True:  # a poller keeps polling; no one calls connect by hand
                try:
                    value = await reader.read("holding", 0, 1)
                    break
                except TransportError:
                    assert time.monotonic() < deadline, "did not reconnect"
                    await asyncio.sleep(0.02)
            assert value == [holding_value(1, 0)]
            assert link.connected and reader.reachable is True
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("agent.modbus")]
    lost = [line for line in lines if " lost: " in line]
    assert len(lost) == 1 and "connection closed" in lost[0], lines
    assert len([line for line in lines if "reconnected after" in line]) == 1
    # Many failed reads, a handful of state changes: connected, unit answering, lost, reconnected.
    assert len(lines) == 4, lines


def test_nothing_listening_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.modbus")

    async def scenario() -> None:
        port = free_port()
        pool = LinkPool(backoff=FAST)
        link = pool.tcp("127.0.0.1", port, timeout=0.5)
        reader = pool.unit(link, 1)
        for _ in range(5):
            with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
                await reader.read("holding", 0, 1)
            await asyncio.sleep(0.06)
        assert link.status().state == "unreachable"
        assert "refused" in link.status().reason or "failed" in link.status().reason
        await pool.close()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("agent.modbus")]
    assert len(lines) == 1 and "unreachable" in lines[0], lines


def test_a_closed_pool_cannot_be_reopened_by_a_poll_still_running() -> None:
    async def scenario() -> None:
        port = free_port()
        traffic = Traffic()
        server = await start_tcp_server(port, traffic=traffic)
        pool = LinkPool(backoff=FAST)
        try:
            link = pool.tcp("127.0.0.1", port)
            reader = pool.unit(link, 1)
            assert await reader.read("holding", 0, 1) == [holding_value(1, 0)]
            # a poll is half-way through its plan when the agent stops: its next read waits for the lock
            async with link._lock:
                late = asyncio.create_task(reader.read("holding", 1, 1))
                await asyncio.sleep(0.05)
                closing = asyncio.create_task(pool.close())
                await asyncio.sleep(0.05)
            await closing
            with pytest.raises(TransportError, match="closed"):
                await late
            with pytest.raises(TransportError, match="closed"):
                await reader.read("holding", 2, 1)
            await asyncio.sleep(0.1)
            assert traffic.connections == 1, "the link was reopened after close"
            assert link.state == "closed" and pool.closed
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())
