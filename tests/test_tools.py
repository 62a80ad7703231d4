"""The installer's tools, run as an installer would: ``terril scan`` and ``terril read``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from agent.schema import SCHEMA_VERSION, Reading
from tests.test_agent_e2e import TERRIL


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TERRIL, *args], capture_output=True, text=True, timeout=60)


def test_scan_lists_logical_devices_models_and_identity(sim_factory: Any) -> None:
    sim = sim_factory([
        {"unit": 1, "kind": "inverter", "peak_power_w": 5000, "strings": 2, "common_length": 65},
        {"unit": 3, "kind": "meter"},
    ])
    result = _run("scan", f"{sim.host}:{sim.port}", "--unit", "1", "--unit", "3", "--unit", "9", "--timeout", "1", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    by_unit = {entry["unit"]: entry for entry in found}
    assert by_unit[1]["kind"] == "inverter"
    assert [m["id"] for m in by_unit[1]["models"]][:1] == [1]
    assert by_unit[1]["models"][0]["length"] == 65  # the SolarEdge-style short model 1 is reported as found
    assert {103, 160} <= {m["id"] for m in by_unit[1]["models"]}
    assert by_unit[1]["serial"] and by_unit[1]["manufacturer"]
    assert by_unit[3]["kind"] == "meter" and 203 in {m["id"] for m in by_unit[3]["models"]}
    assert "error" in by_unit[9]  # nothing at unit 9: said, not a crash
    human = _run("scan", f"{sim.host}:{sim.port}", "--timeout", "1")
    assert human.returncode == 0 and "SunSpec map at 40000" in human.stdout


def test_read_json_prints_the_payload_exactly_as_published(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory()
    config = {
        "site": {"slug": "mairie", "name": "Mairie", "peak_power_w": 10000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": 1, "password": "never-printed", "username": "mairie"},
        "devices": [
            {"name": "onduleur", "kind": "inverter", "driver": "sunspec", "unit": 1,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port}},
            {"name": "compteur", "kind": "meter", "driver": "sunspec", "unit": 3,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port}},
        ],
        "spool": {"path": str(tmp_path / "spool.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("read", "-c", str(path), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["v"] == SCHEMA_VERSION and payload["site"] == "mairie"
    readings = [Reading.from_dict(r) for r in payload["readings"]]
    for reading in readings:
        reading.validate()
    kinds = sorted((r.device, r.kind) for r in readings)
    assert ("onduleur", "inverter") in kinds and ("compteur", "meter") in kinds
    assert sum(1 for r in readings if r.kind == "mppt") == 2
    human = _run("read", "-c", str(path))
    assert human.returncode == 0 and "ac_power_w" in human.stdout and " W" in human.stdout
    assert "never-printed" not in human.stdout + human.stderr + result.stdout + result.stderr
    assert not tmp_path.joinpath("spool.db").exists(), "terril read publishes nothing and spools nothing"


def test_read_reports_a_device_that_does_not_answer(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory()
    config = {
        "site": {"slug": "mairie", "name": "Mairie", "peak_power_w": 10000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1"},
        "devices": [{"name": "fantome", "kind": "inverter", "driver": "sunspec", "unit": 42,
                     "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 0.5}}],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("read", "-c", str(path))
    assert result.returncode == 1
    assert "fantome" in result.stderr and "Traceback" not in result.stderr
