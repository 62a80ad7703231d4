"""The agent facing a broken or hostile inverter (issue 13, items 6 and 7).

A real ``terril agent`` process polls the simulator through :class:`HostileProxy`
(a unit that flaps, a unit whose answers carry a wrong byte count) or a simulator
whose model 1 strings hold control characters; its log and what it publishes on a
real Mosquitto are checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.hostile_modbus import HostileProxy
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.test_agent_e2e import AgentProcess

SITE = {"slug": "mairie", "name": "Mairie", "peak_power_w": 10000, "latitude": 50.457, "longitude": 2.793}


def _config(tmp_path: Path, broker: MosquittoBroker, port: int, units: dict[int, str]) -> Path:
    config = {
        "site": SITE,
        "broker": {"host": "127.0.0.1", "port": broker.port, "keepalive": 10},
        "devices": [{"name": name, "kind": "inverter", "driver": "sunspec", "unit": unit, "interval": 1,
                     "transport": {"type": "tcp", "host": "127.0.0.1", "port": port, "timeout": 1.0}}
                    for unit, name in units.items()],
        "spool": {"path": str(tmp_path / "spool.db")},
        "health": {"interval": 5},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def _readings(sub: Subscriber, device: str) -> int:
    return sum(1 for m in sub.snapshot() if m.topic == "terril/mairie/readings"
               for r in json.loads(m.payload)["readings"] if r["device"] == device)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.2)


def test_device_strings_with_control_characters_cannot_forge_log_lines(
    tmp_path: Path, sim_factory: Any, mosquitto: MosquittoBroker,
) -> None:
    serial, maker = "S\r\nERROR FAKE: pwned", "\x1b[2J\x1b[31mEvil\u2028Corp"
    sim = sim_factory([{"unit": 1, "kind": "inverter", "peak_power_w": 5000, "serial": serial,
                        "manufacturer": maker}])
    sub = Subscriber(mosquitto.port, "terril/#")
    agent = AgentProcess(_config(tmp_path, mosquitto, sim.port, {1: "onduleur"}), tmp_path / "agent.log").start()
    try:
        _wait(lambda: any(m.topic == "terril/mairie/info" and b"onduleur" in m.payload for m in sub.snapshot())
              and _readings(sub, "onduleur") > 0, 30, "info and a reading published")
    finally:
        agent.stop()
        sub.close()
    lines = agent.log.splitlines()
    assert not [line for line in lines if line.startswith("ERROR FAKE")], lines
    assert not [line for line in agent.log if line in "\x1b\r\u2028"]
    assert any("serial S\\r\\nERROR FAKE: pwned" in line for line in lines), lines
    info = [json.loads(m.payload) for m in sub.snapshot() if m.topic == "terril/mairie/info"][-1]
    (device,) = [d for d in info["devices"] if d["name"] == "onduleur"]
    assert device["serial"] == "S\\r\\nERROR FAKE: pwned"
    assert device["manufacturer"] == "\\x1b[2J\\x1b[31mEvil\\u2028Corp"


def test_a_flapping_unit_logs_one_line_and_a_wrong_byte_count_spares_the_shared_connection(
    tmp_path: Path, sim_factory: Any, mosquitto: MosquittoBroker,
) -> None:
    sim = sim_factory([{"unit": u, "kind": "inverter", "peak_power_w": 5000} for u in (1, 2, 3, 4)])
    proxy = HostileProxy(sim.port, {2: "busy_every_other", 3: "byte_count", 4: "unknown_function"}).start()
    sub = Subscriber(mosquitto.port, "terril/mairie/readings")
    config = _config(tmp_path, mosquitto, proxy.port, {1: "sain", 2: "instable", 3: "bavard", 4: "muet"})
    agent = AgentProcess(config, tmp_path / "agent.log").start()
    try:
        _wait(lambda: _readings(sub, "sain") >= 1, 30, "first reading of the healthy unit")
        first = _readings(sub, "sain")
        time.sleep(20)
        healthy = _readings(sub, "sain") - first
    finally:
        agent.stop()
        sub.close()
        proxy.stop()
    lines = [line for line in agent.log.splitlines() if " DEBUG " not in line]
    assert healthy >= 10, f"the healthy unit published {healthy} readings in 20 s (one a second)"
    assert proxy.connections == 1, "the shared connection was dropped"
    flapping = [line for line in lines if "instable:" in line and " found " not in line and "SunSpec map" not in line]
    assert any("status flapping" in line for line in flapping), flapping
    assert len(flapping) <= 4, flapping  # ~10 changes in 20 s: polling, 2 changes, "flapping"
    bad = [line for line in lines if "bavard" in line or "unit 3" in line]
    assert any("malformed answer: byte count 250" in line for line in bad), bad
    assert len(bad) <= 5, bad
    garbage = [line for line in lines if "muet" in line or "unit 4" in line]
    assert any("undecodable answer" in line for line in garbage), garbage
    assert len(garbage) <= 5, garbage
    assert "Traceback" not in agent.log and "Fatal error" not in agent.log
    assert len(lines) < 40, lines
