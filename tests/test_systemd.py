"""The shipped systemd units: valid for systemd, and hardened (exposure score <= 2.5).

``systemd-analyze verify`` works without systemd as PID 1 (it loads units
client-side) but insists that ExecStart's binary exists, so the test copies
each unit into a temporary folder with /opt/terril/bin/terril replaced by the
venv's ``terril``. ``--recursive-errors=no`` makes a warning about the unit
itself (an unknown key, a typo) a failure, while ignoring the host's other units.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
INSTALLED_TERRIL = "/opt/terril/bin/terril"
MAX_EXPOSURE = 2.5

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def verify(unit_text: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    terril = ROOT / ".venv" / "bin" / "terril"
    assert terril.exists()
    path = tmp_path / name
    path.write_text(unit_text.replace(INSTALLED_TERRIL, str(terril)))
    return subprocess.run(
        ["systemd-analyze", "verify", "--recursive-errors=no", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def exposure(unit: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_both_units_are_shipped() -> None:
    assert [u.name for u in UNITS] == ["terril-agent.service", "terril-ingest.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    text = unit.read_text()
    assert f"ExecStart={INSTALLED_TERRIL} " in text
    result = verify(text, unit.name, tmp_path)
    assert result.returncode == 0, result.stderr
    assert unit.name not in result.stderr, result.stderr


def test_verify_catches_a_typo(tmp_path: Path) -> None:
    text = (ROOT / "systemd" / "terril-agent.service").read_text().replace("Restart=on-failure", "Restart=on-failure\nRestartSecs=5")
    result = verify(text, "terril-agent.service", tmp_path)
    assert result.returncode != 0 and "RestartSecs" in result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_hardened(unit: Path) -> None:
    assert exposure(unit) <= MAX_EXPOSURE


def directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_agent_unit_keeps_serial_ports_reachable_and_is_watched() -> None:
    d = directives(ROOT / "systemd" / "terril-agent.service")
    assert d["Type"] == ["notify"] and d["WatchdogSec"] == ["60"] and d["Restart"] == ["on-failure"]
    assert d["DevicePolicy"] == ["closed"]
    for tty in ("char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw"):
        assert tty in d["DeviceAllow"]
    assert d.get("PrivateDevices", ["no"]) == ["no"]  # would hide /dev/ttyUSB*
    assert "PrivateUsers" not in d  # would unmap the dialout group
    assert d["SupplementaryGroups"] == ["dialout"]
    assert d["StateDirectory"] == ["terril"] and d["ConfigurationDirectory"] == ["terril"]
    assert d["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert d["ExecStart"] == [f"{INSTALLED_TERRIL} agent -c /etc/terril/agent.yaml"]


def test_ingest_unit_has_no_devices() -> None:
    d = directives(ROOT / "systemd" / "terril-ingest.service")
    assert d["PrivateDevices"] == ["yes"] and d["DevicePolicy"] == ["closed"] and "DeviceAllow" not in d
    assert d["ExecStart"] == [f"{INSTALLED_TERRIL} ingest -c /etc/terril/ingest.yaml"]
