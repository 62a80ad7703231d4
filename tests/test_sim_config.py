"""Simulator config: the example file, strict validation with key paths, and `terril simulate` start/stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.errors import ConfigError
from agent.sim.config import build_servers, load_config, parse_config
from agent.sim.devices import SimInverter, SimMeter
from agent.sim.server import TcpEndpoint
from tests.fixtures.ports import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "simulator.example.yaml"


def test_example_serves_the_documented_layout() -> None:
    servers = build_servers(load_config(EXAMPLE))
    assert len(servers) == 1
    (server,) = servers
    assert server.endpoint == TcpEndpoint("127.0.0.1", 1502)
    kinds = {u: [type(d) for d in unit.devices] for u, unit in server.units.items()}
    assert kinds == {1: [SimInverter], 2: [SimInverter], 3: [SimMeter]}
    inv1 = server.units[1].devices[0]
    assert isinstance(inv1, SimInverter) and inv1.strings == 2 and inv1.name == "onduleur-toiture-sud"
    meter = server.units[3].devices[0]
    assert isinstance(meter, SimMeter) and meter.producers == [inv1, server.units[2].devices[0]]
    # the header comment states the same layout
    header = EXAMPLE.read_text(encoding="utf-8").split("\n\n")[0]
    assert "127.0.0.1:1502" in header
    assert re.search(r"unit 1\s+inverter", header) and re.search(r"unit 3\s+meter", header)


def _base() -> dict[str, object]:
    return {
        "site": {"latitude": 50.4, "longitude": 2.8},
        "servers": [{"tcp": {"port": 1502}, "units": [{"unit": 1, "kind": "inverter", "peak_power_w": 3000}]}],
    }


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"sit": 1}, "sit: unknown key; did you mean 'site'?"),
        ({"site": {"latitude": 95, "longitude": 2}}, "site.latitude: expected a number -90–90, got 95"),
        ({"time_factor": 0}, "time_factor: expected a number > 0, got 0"),
        (
            {"servers": [{"tcp": {"port": 1502}, "units": [{"unit": 1, "kind": "inverter", "peak_power_w": 1, "colour": "red"}]}]},
            "servers[0].units[0].colour: unknown key",
        ),
        (
            {"servers": [{"tcp": {"port": 1502}, "units": [{"unit": 300, "kind": "pump"}]}]},
            "servers[0].units[0].kind: expected one of inverter or meter, got \"pump\"",
        ),
        (
            {"servers": [{"units": [{"unit": 1, "kind": "meter"}]}]},
            "servers[0]: give exactly one of tcp or serial",
        ),
        (
            {"servers": [{"tcp": {"port": 1}, "units": [{"unit": 1, "kind": "meter", "peak_power_w": 5}]}]},
            "peak_power_w do not apply to a meter",
        ),
        (
            {"servers": [{"tcp": {"port": 1}, "units": [{"unit": 1, "kind": "meter", "measures": [4]}]}]},
            "measures [4], which are not inverters",
        ),
        (
            {"servers": [{"tcp": {"port": 1}, "units": [{"unit": 1, "kind": "inverter", "peak_power_w": 5,
                                                          "faults": [{"start": "12:00", "end": "13:00", "events": ["FIRE"]}]}]}]},
            "no symbol 'FIRE'",
        ),
    ],
)
def test_errors_have_key_paths(patch: dict[str, object], expected: str) -> None:
    data = {**_base(), **patch}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "sim.yaml")
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert str(info.value).startswith("sim.yaml: ")


def test_every_problem_reported_at_once() -> None:
    data = {"site": {"latitude": "north"}, "servers": [], "extra": 1}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    paths = {p.split(":")[0] for p in info.value.problems}
    assert {"site.latitude", "site.longitude", "servers", "extra"} <= paths


def test_fault_schedule_in_local_time() -> None:
    data = _base()
    data["site"] = {"latitude": 50.4, "longitude": 2.8, "timezone": "Europe/Paris"}
    data["start"] = "2024-06-21T13:02:00+02:00"
    data["servers"][0]["units"][0]["faults"] = [{"start": "13:00", "end": "13:05", "events": ["GROUND_FAULT"]}]  # type: ignore[index]
    (server,) = build_servers(parse_config(data))
    inv = server.units[1].devices[0]
    assert isinstance(inv, SimInverter)
    assert inv.values()[103]["Evt1"] == 1
    inv.clock.advance(600)
    assert inv.values()[103]["Evt1"] == 0


def test_terril_simulate_starts_logs_and_stops(tmp_path: Path) -> None:
    port = free_port()
    cfg = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    cfg["servers"][0]["tcp"]["port"] = port
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for_port(port, timeout=20)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, out
    starts = [line for line in out.splitlines() if "simulating" in line]
    assert len(starts) == 1
    assert f"127.0.0.1:{port}" in starts[0] and "unit 3: compteur-general" in starts[0]
    assert "simulator stopped" in out


def test_terril_simulate_rejects_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("site: {latitude: 50}\nservers: []\nbogus: 1\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "simulate", "-c", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert proc.returncode == 2
    assert "site.longitude" in proc.stderr and "bogus" in proc.stderr
