"""The agent on an RS-485 bus (socat pty pair, simulator with emulated wire time at 9600 baud)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.mosquitto import Subscriber
from tests.test_agent_e2e import AgentProcess, readings_of


def test_two_rtu_devices_on_one_bus_are_polled_every_interval_despite_a_silent_one(
    tmp_path: Path, serial_bus_factory: Any, mosquitto: Any
) -> None:
    bus = serial_bus_factory(
        [{"unit": 1, "kind": "inverter", "peak_power_w": 5000, "strings": 2},
         {"unit": 2, "kind": "meter", "measures": [1]}],
        baudrate=9600,
    )
    rtu = {"type": "rtu", "port": str(bus.client_port), "baudrate": 9600, "timeout": 0.5, "pause": 0.02}
    config = {
        "site": {"slug": "ecole", "name": "École", "peak_power_w": 5000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": mosquitto.port},
        "devices": [
            {"name": "onduleur", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": 2, "transport": rtu},
            {"name": "compteur", "kind": "meter", "driver": "sunspec", "unit": 2, "interval": 2, "transport": rtu},
            # configured but absent from the bus: every attempt costs one timeout
            {"name": "compteur-absent", "kind": "meter", "driver": "sunspec", "unit": 7, "interval": 2,
             "transport": rtu},
        ],
        "spool": {"path": str(tmp_path / "spool.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    sub = Subscriber(mosquitto.port, "terril/ecole/readings")
    agent = AgentProcess(path, tmp_path / "agent.log").start()
    try:
        time.sleep(22)
    finally:
        agent.stop()
        sub.close()
    readings = readings_of(sub.snapshot(), site="ecole")
    for device in ("onduleur", "compteur"):
        ts = sorted({r.ts for r in readings if r.device == device and r.kind != "mppt"})
        gaps = [(b - a) / 1000 for a, b in zip(ts, ts[1:])]
        assert len(ts) >= 6, (device, ts, agent.log[-2000:])
        # every interval (2 s): the silent unit may cost one timeout (0.5 s), never a stall of the bus
        assert statistics.median(gaps) < 2.6, (device, gaps)
        assert max(gaps[2:]) < 2 * 2 + 0.5 + 1.0, (device, gaps)
    assert not [r for r in readings if r.device == "compteur-absent"]
    assert set(bus.function_codes(1)) <= {3, 4} and set(bus.function_codes(2)) <= {3, 4}
    log = agent.log
    assert log.count("compteur-absent: start -> unreachable") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
