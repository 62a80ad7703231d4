"""terril never writes a Modbus register: the guard refuses, and no code path tries."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import pytest
from pymodbus.pdu.register_message import WriteMultipleRegistersRequest, WriteSingleRegisterRequest

from agent.errors import WriteForbidden
from agent.modbus import guard
from agent.modbus.backoff import Backoff
from agent.modbus.connection import ModbusLink, UnitReader
from agent.modbus.pool import LinkPool
from agent.modbus.rtu import RtuBus
from agent.modbus.tcp import TcpLink
from tests.fixtures.ports import free_port
from tests.test_modbus_support import Traffic, holding_value, start_tcp_server

AGENT = Path(__file__).resolve().parent.parent / "agent"
WRITE_CALLS = re.compile(r"\b(write_registers?|write_coils?|readwrite_registers|mask_write\w*|write_file_record)\b")


def test_links_and_readers_have_no_write_method() -> None:
    for cls in (ModbusLink, TcpLink, RtuBus, UnitReader, LinkPool):
        assert not [name for name in dir(cls) if "write" in name.lower()], cls


def test_guard_refuses_writes_even_through_the_underlying_client() -> None:
    async def scenario() -> None:
        port = free_port()
        traffic = Traffic()
        server = await start_tcp_server(port, traffic=traffic)
        pool = LinkPool(backoff=lambda: Backoff(0.1, 0.4))
        link = pool.tcp("127.0.0.1", port)
        reader = pool.unit(link, 1)
        try:
            assert await reader.read("holding", 5, 1) == [holding_value(1, 5)]
            client = link._client  # someone digs out the pymodbus client
            assert client is not None
            for name in guard.REFUSED_CLIENT_METHODS:
                with pytest.raises(WriteForbidden):
                    getattr(client, name)(address=5, value=0)
            with pytest.raises(WriteForbidden, match="function code 6"):
                await client.execute(False, WriteSingleRegisterRequest(address=5, registers=[0], dev_id=1))
            # One level deeper, past execute(): the check before framing still refuses.
            with pytest.raises(WriteForbidden, match="function code 16"):
                await client.ctx.execute(False, WriteMultipleRegistersRequest(address=5, registers=[0, 0], dev_id=1))
            assert await reader.read("holding", 5, 1) == [holding_value(1, 5)]
        finally:
            await pool.close()
            await server.shutdown()
        assert traffic.function_codes() == {3}

    asyncio.run(scenario())


def test_check_read_only_allows_only_function_codes_3_and_4() -> None:
    from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

    guard.check_read_only(ReadHoldingRegistersRequest(address=0, count=1, dev_id=1))
    guard.check_read_only(ReadInputRegistersRequest(address=0, count=1, dev_id=1))
    with pytest.raises(WriteForbidden):
        guard.check_read_only(WriteSingleRegisterRequest(address=0, registers=[1], dev_id=1))


def _refusal_list_lines(source: str) -> set[int]:
    """Line numbers of the guard's REFUSED_CLIENT_METHODS tuple: the one place allowed to name writes."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "REFUSED_CLIENT_METHODS" for t in node.targets
        ):
            return set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    raise AssertionError("agent/modbus/guard.py has no REFUSED_CLIENT_METHODS")


def test_no_code_in_agent_calls_a_pymodbus_write() -> None:
    guard_file = AGENT / "modbus" / "guard.py"
    allowed = _refusal_list_lines(guard_file.read_text(encoding="utf-8"))
    offenders = []
    files = sorted(AGENT.rglob("*.py"))
    assert guard_file in files and len(files) > 5
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if WRITE_CALLS.search(line) and not (path == guard_file and number in allowed):
                offenders.append(f"{path.relative_to(AGENT.parent)}:{number}: {line.strip()}")
    assert offenders == [], "Modbus write calls found:\n" + "\n".join(offenders)


def test_the_grep_would_catch_a_write() -> None:
    assert WRITE_CALLS.search("await client.write_register(40001, 0, device_id=1)")
    assert WRITE_CALLS.search("client.mask_write_register(address=1)")
    assert not WRITE_CALLS.search("await reader.read('holding', 0, 1)")
