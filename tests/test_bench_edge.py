"""bench/edge.py in a tiny mode (2 inverters, a few seconds): it runs end to end and prints the documented JSON.

Timings are not checked here (a unit test must not depend on the machine's
speed); the shape, the counts and the protocol facts are. The first run creates
modbus4mqtt's virtualenv under bench/ (pip, from PyPI), later runs reuse it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "edge.py"

pytestmark = pytest.mark.timeout(240)

NUMBER = (int, float)
SIDE_KEYS = {
    "cpu_s", "cpu_s_user", "cpu_s_system", "cpu_s_per_1000_readings", "cpu_s_per_1000_values",
    "readings", "fields_per_reading", "values", "peak_rss_mb", "processes", "modbus_requests_per_reading",
    "delivered_qos", "spool", "startup_s",
}


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--devices", "2", "--seconds", "4", "--interval", "1"],
        capture_output=True, text=True, timeout=220, cwd=REPO,
    )
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(proc.stdout)  # one JSON document and nothing else on stdout
    assert isinstance(data, dict)
    return data


def test_top_level_shape(result: dict[str, object]) -> None:
    assert result["bench"] == "edge"
    assert result["devices"] == 2 and result["interval_s"] == 1 and result["window_s"] == 4
    assert result["targets"] == {"cpu_ratio_min": 3.0, "rss_mb_max": 60.0}
    assert isinstance(result["pass"], bool)
    checks = result["checks"]
    assert isinstance(checks, dict) and set(checks) == {"cpu_ratio", "rss"}
    assert result["pass"] == all(checks.values())
    ratio = result["ratio_cpu_per_reading"]
    assert ratio is None or (isinstance(ratio, NUMBER) and ratio >= 0)
    machine = result["machine"]
    assert isinstance(machine, dict) and machine["cpus"] >= 1 and machine["python"]


@pytest.mark.parametrize("side", ["terril", "modbus4mqtt"])
def test_each_side_measured(result: dict[str, object], side: str) -> None:
    figures = result[side]
    assert isinstance(figures, dict)
    assert set(figures) >= SIDE_KEYS, SIDE_KEYS - set(figures)
    # 2 devices polled every second for 4 s: a few readings each, with slack for a loaded machine.
    assert 2 <= figures["readings"] <= 2 * 6
    assert figures["cpu_s"] >= 0 and figures["cpu_s_per_1000_readings"] >= 0
    assert abs(figures["cpu_s"] - figures["cpu_s_user"] - figures["cpu_s_system"]) < 0.002
    assert 1 < figures["peak_rss_mb"] < 500
    assert figures["modbus_requests_per_reading"] > 0


def test_terril_publishes_full_readings_with_qos1_and_spool(result: dict[str, object]) -> None:
    t = result["terril"]
    assert isinstance(t, dict)
    assert t["processes"] == 1 and t["spool"] is True
    assert t["delivered_qos"] == [1]
    assert t["fields_per_reading"] >= 10  # a full inverter reading, not two registers
    assert abs(t["mppt_readings"] - 2 * t["readings"]) <= 2  # 2 strings per inverter, same message as its poll


def test_modbus4mqtt_runs_in_its_own_venv_one_process_per_device(result: dict[str, object]) -> None:
    m = result["modbus4mqtt"]
    assert isinstance(m, dict)
    assert m["processes"] == 2 and m["spool"] is False
    assert m["fields_per_reading"] == 2
    assert set(m["messages"]) == {"W", "WH"}
    versions = m["versions"]
    assert int(versions["pymodbus"].split(".")[0]) < 3
    assert int(versions["paho-mqtt"].split(".")[0]) < 2
    assert versions["modbus4mqtt"]
