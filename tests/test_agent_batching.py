"""The agent polls devices of one interval together and spools/publishes their polls as one batch.

In process (``Agent.run``), against the simulator and a real Mosquitto: a
round of three devices becomes one spool transaction and one ``readings``
message; a silent device (one timeout per poll) does not hold the others'
readings back; polls that end during stop are still spooled.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import yaml

from agent.edge.config import load_agent_config
from agent.edge.daemon import COALESCE_S, Agent
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber


def _config(tmp_path: Path, sim: Any, broker: MosquittoBroker, units: dict[str, int], timeout: float = 1.0) -> Path:
    tcp = {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": timeout}
    config = {
        "site": {"slug": "mairie", "name": "Mairie", "peak_power_w": 10000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": broker.port},
        "devices": [
            {"name": name, "kind": "meter" if unit == 3 else "inverter", "driver": "sunspec", "unit": unit,
             "interval": 1, "transport": tcp}
            for name, unit in units.items()
        ],
        "spool": {"path": str(tmp_path / "spool.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(agent: Agent, seconds: float, sub: Subscriber) -> list[tuple[float, dict[str, Any]]]:
    """Run the agent for *seconds*; every readings message with its arrival time (epoch s)."""
    arrivals: list[tuple[float, dict[str, Any]]] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        seen = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msgs = [m for m in sub.snapshot() if m.topic == "terril/mairie/readings"]
            now = time.time()
            arrivals.extend((now, json.loads(m.payload)) for m in msgs[seen:])
            seen = len(msgs)
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    return arrivals


def test_one_round_of_polls_is_one_message(tmp_path: Path, sim_factory: Any, mosquitto: MosquittoBroker) -> None:
    sim = sim_factory()
    sub = Subscriber(mosquitto.port, "terril/#")
    try:
        agent = Agent(load_agent_config(_config(tmp_path, sim, mosquitto, {"ond-1": 1, "ond-2": 2, "compteur": 3})))
        arrivals = _run(agent, 4.5, sub)
        time.sleep(0.5)
        all_msgs = [json.loads(m.payload) for m in sub.snapshot() if m.topic == "terril/mairie/readings"]
    finally:
        sub.close()
    main = [r for m in all_msgs for r in m["readings"] if r["kind"] != "mppt"]
    rounds = sorted({r["ts"] for r in main if r["device"] == "ond-1"})
    assert len(rounds) >= 3, all_msgs
    full = [m for _, m in arrivals if {r["device"] for r in m["readings"]} == {"ond-1", "ond-2", "compteur"}]
    assert len(full) >= 2, "a round of three devices should travel as one message"
    for m in full:
        ts = [r["ts"] for r in m["readings"]]
        assert max(ts) - min(ts) < 500, "devices of one interval are polled at the same instants"
    # every poll of every device arrived (spooled, published, and none lost at stop)
    for device in ("ond-1", "ond-2", "compteur"):
        assert len({r["ts"] for r in main if r["device"] == device}) == len(rounds)
    assert len(all_msgs) <= len(rounds) + 1, "not one message per device poll"


def test_a_silent_device_does_not_hold_back_the_others(
    tmp_path: Path, sim_factory: Any, mosquitto: MosquittoBroker
) -> None:
    sim = sim_factory()
    sub = Subscriber(mosquitto.port, "terril/#")
    try:
        # unit 9 is not served: every poll of it waits for the 4 s timeout
        agent = Agent(load_agent_config(_config(tmp_path, sim, mosquitto, {"ond-1": 1, "absent": 9}, timeout=4.0)))
        arrivals = _run(agent, 5.0, sub)
    finally:
        sub.close()
    delays = [arrived - r["ts"] / 1000 for arrived, m in arrivals for r in m["readings"] if r["device"] == "ond-1"]
    assert len(delays) >= 3
    # poll + COALESCE_S + publish (~0.3 s): held back, a reading would wait for the silent device's 4 s
    # timeout. Bounded by that, not by 0.6 s over COALESCE_S, which a loaded machine overran.
    assert max(delays) < 4.0 - COALESCE_S, delays
