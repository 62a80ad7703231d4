"""The agent as installed: a subprocess polling the simulator and publishing to a real Mosquitto.

These are the acceptance scenarios of the edge agent: readings arrive and decode,
the broker's ACL refusal is reported (and nothing is lost), only function codes
3 and 4 ever reach a device, and an outage with two ``kill -9`` loses no poll.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.schema import Reading
from tests.fixtures.mosquitto import MosquittoBroker, Received, Subscriber
from tests.fixtures.ports import stop_process

TERRIL = str(Path(sys.executable).with_name("terril"))
ACL = """\
user observer
topic read terril/#

pattern write terril/%u/#
"""
USERS = {"mairie": "mairie-secret", "observer": "observer-secret"}
SPOOLED = re.compile(r"spooled (\S+) ts=(\d+)")


def agent_config(tmp_path: Path, sim: Any, broker: MosquittoBroker, *, site: str = "mairie",
                 username: str = "mairie", interval: int = 1) -> Path:
    config = {
        "site": {"slug": site, "name": "Hôtel de ville", "peak_power_w": 10000, "panels": 30,
                 "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": broker.port, "username": username,
                   "password": USERS[username], "keepalive": 10},
        "devices": [
            {"name": "onduleur-1", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": interval,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 1.0}},
            {"name": "onduleur-2", "kind": "inverter", "driver": "sunspec", "unit": 2, "interval": interval,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 1.0}},
            {"name": "compteur", "kind": "meter", "driver": "sunspec", "unit": 3, "interval": interval,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 1.0}},
        ],
        "spool": {"path": str(tmp_path / "spool.db")},
        "health": {"interval": 5},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


class AgentProcess:
    """``terril agent`` as a child process; its log is kept across restarts."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the agent writes it until stop() closes it
        self.proc = subprocess.Popen([TERRIL, "-v", "agent", "-c", str(self.config)], stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        stop_process(self.proc)
        return self.proc.returncode

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spooled(self) -> set[tuple[str, int]]:
        """Every (device, ts) the agent reported as committed to its spool."""
        return {(m.group(1), int(m.group(2))) for m in SPOOLED.finditer(self.log)}


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    started: list[AgentProcess] = []

    def make(config: Path) -> AgentProcess:
        agent = AgentProcess(config, tmp_path / "agent.log")
        started.append(agent)
        return agent

    yield make
    for agent in started:
        if agent.proc is not None and agent.proc.poll() is None:
            stop_process(agent.proc)


def readings_of(messages: list[Received], site: str = "mairie") -> list[Reading]:
    out: list[Reading] = []
    for m in messages:
        if m.topic == f"terril/{site}/readings":
            payload = json.loads(m.payload)
            assert payload["v"] == 1 and payload["site"] == site
            for r in payload["readings"]:
                reading = Reading.from_dict(r)
                reading.validate()
                out.append(reading)
    return out


def test_agent_publishes_decoded_readings_through_an_acl_broker(
    tmp_path: Path, sim_factory: Any, mosquitto_factory: Any, agent_factory: Any
) -> None:
    sim = sim_factory()
    broker = mosquitto_factory(users=USERS, acl=ACL)
    sub = Subscriber(broker.port, "terril/#", username="observer", password=USERS["observer"])
    agent = agent_factory(agent_config(tmp_path, sim, broker)).start()
    try:
        messages = sub.wait_for(lambda ms: {r.device for r in readings_of(ms) if r.kind != "mppt"} >= {
            "onduleur-1", "onduleur-2", "compteur"} and len(readings_of(ms)) >= 15, timeout=30)
        readings = readings_of(messages)
        inverter = next(r for r in readings if r.device == "onduleur-1" and r.kind == "inverter")
        assert 0 < inverter.fields["ac_power_w"] <= 5000
        assert inverter.fields["ac_energy_wh"] > 0
        assert isinstance(inverter.fields["state"], int)
        assert {r.string for r in readings if r.kind == "mppt" and r.device == "onduleur-1"} == {"1", "2"}
        meter = next(r for r in readings if r.kind == "meter")
        assert "power_w" in meter.fields and "energy_import_wh" in meter.fields
        status = [m for m in messages if m.topic == "terril/mairie/status"]
        assert status and status[-1].payload == b"online"
        sub.wait_for(lambda ms: any(m.topic == "terril/mairie/info" and b"SIM-INV" in m.payload for m in ms), 60)
        sub.wait_for(lambda ms: any(m.topic == "terril/mairie/health" for m in ms), 60)
    finally:
        assert agent.stop() == 0
        sub.close()
    assert "mairie-secret" not in agent.log, "a password must never reach the log"
    for unit in (1, 2, 3):
        assert set(sim.function_codes(unit)) <= {3, 4}, "the agent only ever reads"
    last_status = sub.snapshot()
    assert any(m.topic == "terril/mairie/status" and m.payload == b"offline" for m in last_status)


def _readings_refusals(log: str) -> list[str]:
    return [line for line in log.splitlines() if "terril/ecole/readings" in line and "ERROR" in line]


def _wait_for_more_polls(agent: AgentProcess, polls: int, timeout: float = 120.0) -> None:
    """Wait until every device has *polls* more readings committed to the spool (what each phase
    of the outage must show; fixed sleeps saw none while a loaded machine restarted the agent)."""
    devices = ("onduleur-1", "onduleur-2", "compteur")
    before = agent.spooled()
    deadline = time.monotonic() + timeout
    while True:
        new = agent.spooled() - before
        counts = {d: sum(1 for dev, _ in new if dev == d) for d in devices}
        if min(counts.values()) >= polls:
            return
        assert time.monotonic() < deadline, f"after {timeout} s, new polls spooled per device: {counts}"
        time.sleep(0.2)


def test_publishing_into_another_sites_topic_is_refused_reported_and_kept(
    tmp_path: Path, sim_factory: Any, mosquitto_factory: Any, agent_factory: Any
) -> None:
    sim = sim_factory()
    broker = mosquitto_factory(users=USERS, acl=ACL)
    sub = Subscriber(broker.port, "terril/#", username="observer", password=USERS["observer"])
    # credentials of 'mairie', but configured as site 'ecole': every topic is outside its ACL
    agent = agent_factory(agent_config(tmp_path, sim, broker, site="ecole", username="mairie")).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _readings_refusals(agent.log):
            time.sleep(0.3)
        time.sleep(2)  # more time for a refused message to (wrongly) reach the subscriber
    finally:
        agent.stop()
        sub.close()
    log = agent.log
    refusals = _readings_refusals(log)
    assert refusals, log[-3000:]
    assert "0x87" in refusals[0] or "not authori" in refusals[0].lower()
    assert not [m for m in sub.snapshot() if m.topic.startswith("terril/ecole/readings")]
    with sqlite3.connect(tmp_path / "spool.db") as db:
        (depth,) = db.execute("SELECT count(*) FROM spool WHERE kind = 'readings'").fetchone()
    assert depth >= len(agent.spooled()) > 0, "refused readings stay in the spool"


@pytest.mark.slow
def test_broker_outage_and_two_kill_9_lose_no_poll(
    tmp_path: Path, sim_factory: Any, mosquitto_factory: Any, agent_factory: Any
) -> None:
    sim = sim_factory()
    broker = mosquitto_factory(users=USERS, acl=ACL)
    sub = Subscriber(broker.port, "terril/mairie/readings", username="observer", password=USERS["observer"],
                     persistent=True, client_id="observer-persistent")
    agent = agent_factory(agent_config(tmp_path, sim, broker))
    agent.start()
    try:
        sub.wait_for(lambda ms: len(readings_of(ms)) >= 10, timeout=60)
        broker.stop()  # outage begins
        _wait_for_more_polls(agent, 4)
        agent.kill()  # kill -9 during the outage
        agent.start()
        _wait_for_more_polls(agent, 4)  # a restarted agent polls without its broker
        agent.kill()  # and again
        agent.start()
        _wait_for_more_polls(agent, 4)
        broker.start()  # outage ends (same port, persistent sessions kept)
        _wait_for_more_polls(agent, 2)
        spooled = agent.spooled()
        assert len(spooled) > 30

        def all_arrived(ms: list[Received]) -> bool:
            got = {(r.device, r.ts) for r in readings_of(ms) if r.kind != "mppt"}
            return spooled <= got

        sub.wait_for(all_arrived, timeout=60)
    finally:
        agent.stop()
        sub.close()
    got = {(r.device, r.ts) for r in readings_of(sub.snapshot()) if r.kind != "mppt"}
    assert not spooled - got
    # polls went on during the outage: each device has readings from every phase of the run
    for device in ("onduleur-1", "onduleur-2", "compteur"):
        ts = sorted(t for d, t in spooled if d == device)
        assert len(ts) >= 12, (device, len(ts))
