"""Golden broken configs: `terril check-config` must refuse each one and say where and why.

Each folder of tests/cases/config holds an ``agent.yaml`` and an ``expected.txt``
whose every line must appear in the command's error output. Add a folder to add
a case.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "cases" / "config"
TERRIL = ROOT / ".venv" / "bin" / "terril"
CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "agent.yaml").exists())


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(TERRIL)] if TERRIL.exists() else [sys.executable, "-m", "agent"]
    return subprocess.run(
        [*cmd, "check-config", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_there_are_enough_cases() -> None:
    assert len(CASE_DIRS) >= 15


@pytest.mark.parametrize("case", CASE_DIRS, ids=[p.name for p in CASE_DIRS])
def test_broken_config_is_refused_with_each_expected_problem(case: Path) -> None:
    result = run_check(case / "agent.yaml")
    expected = [line for line in (case / "expected.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    for line in expected:
        assert line in result.stderr, f"missing {line!r} in:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "pydantic" not in result.stderr.lower() and "http" not in result.stderr
    assert "OK" not in result.stdout
    # Problems are prefixed with the file name, one per line.
    problem_lines = result.stderr.strip().splitlines()[:-1]
    assert problem_lines and all(ln.startswith(str(case / "agent.yaml")) for ln in problem_lines)
    # Secrets never show, even in error messages.
    assert "hunter2" not in result.stderr and "not-a-real-password" not in result.stderr
