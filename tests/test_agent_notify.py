"""``Type=notify`` and ``WatchdogSec``: the agent says READY once, then pings the watchdog while it polls."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.ports import stop_process
from tests.test_agent_e2e import TERRIL


def test_agent_notifies_ready_and_pings_the_watchdog(tmp_path: Path, sim_factory: Any, mosquitto: Any) -> None:
    sim = sim_factory()
    config = {
        "site": {"slug": "eglise", "name": "Église", "peak_power_w": 3000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": mosquitto.port},
        "devices": [{"name": "onduleur", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": 1,
                     "transport": {"type": "tcp", "host": sim.host, "port": sim.port}}],
        "spool": {"path": str(tmp_path / "spool.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.5)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([TERRIL, "agent", "-c", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
    finally:
        stop_process(proc)
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        sock.close()
    ready = [i for i, m in enumerate(messages) if "READY=1" in m]
    pings = [i for i, m in enumerate(messages) if m == "WATCHDOG=1"]
    assert len(ready) == 1, messages
    assert len(pings) >= 3 and pings[0] > ready[0], messages
    assert any("STOPPING=1" in m for m in messages), messages
    assert proc.returncode == 0
