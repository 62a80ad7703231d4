"""Polling waits for a synchronized clock (systemd-timesyncd), at most ``clock_wait_s``.

In process against the simulator, with a temporary directory standing for
``/run/systemd/timesync``: the simulator counts the requests it receives.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from agent.edge.config import load_agent_config
from agent.edge.daemon import Agent
from tests.test_agent_failures import write_config


def _run(agent: Agent, steps: list[tuple[float, Any]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        for delay, action in steps:
            await asyncio.sleep(delay)
            action()
        stop.set()
        await task

    asyncio.run(main())


def test_polling_waits_for_the_synchronized_flag(tmp_path: Path, sim_factory: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_factory()
    timesync = tmp_path / "timesync"
    timesync.mkdir()  # timesyncd runs, has not synchronized yet
    agent = Agent(load_agent_config(write_config(tmp_path, sim)), timesync_dir=timesync, clock_wait_s=60)
    seen: dict[str, int] = {}
    caplog.set_level(logging.INFO, logger="agent")

    def before() -> None:
        seen["held"] = sim.requests(1)
        seen["problem"] = agent.health_problem() is None
        (timesync / "synchronized").touch()

    _run(agent, [(2.5, before), (2.5, lambda: seen.__setitem__("after", sim.requests(1)))])
    assert seen["held"] == 0, "polled before the clock was synchronized"
    assert seen["problem"], "waiting for the clock is not a watchdog failure"
    assert seen["after"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not synchronized yet" in m for m in messages) == 1
    assert any("system clock synchronized: polling starts" in m for m in messages)


def test_polling_starts_anyway_after_the_longest_wait(tmp_path: Path, sim_factory: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_factory()
    timesync = tmp_path / "timesync"
    timesync.mkdir()
    agent = Agent(load_agent_config(write_config(tmp_path, sim)), timesync_dir=timesync, clock_wait_s=1.0)
    caplog.set_level(logging.WARNING, logger="agent")
    seen: dict[str, int] = {}
    _run(agent, [(3.0, lambda: seen.__setitem__("requests", sim.requests(1)))])
    assert seen["requests"] > 0
    assert any("still not synchronized after" in r.getMessage() for r in caplog.records)


def test_without_timesyncd_polling_starts_at_once(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory()
    agent = Agent(load_agent_config(write_config(tmp_path, sim)), timesync_dir=tmp_path / "absent", clock_wait_s=60)
    seen: dict[str, int] = {}
    _run(agent, [(2.0, lambda: seen.__setitem__("requests", sim.requests(1)))])
    assert seen["requests"] > 0
