"""Hostile config files (issue 13, items 8 and 9): every command refuses them in one line, at once.

A named pipe or ``/dev/zero`` given as a config, password, token or CA file; YAML
nested 10,000 levels deep; binary garbage; a CA that does not exist; a key given
twice. Each is run through the real ``terril`` commands (``check-config``,
``agent``, ``ingest``) in a subprocess with a timeout: a hang fails the test
instead of the suite, a traceback fails it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agent.central.config import load_ingest_config
from agent.central.inventory import load_inventory
from agent.configfile import MAX_YAML_DEPTH, load_yaml
from agent.devices.profile import ProfileError, load_profile_file
from agent.errors import ConfigError
from agent.sim.config import load_config as load_sim_config

ROOT = Path(__file__).resolve().parents[1]
TERRIL = ROOT / ".venv" / "bin" / "terril"
EXAMPLE_AGENT = ROOT / "config" / "agent.example.yaml"
TIMEOUT_S = 60

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def terril(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(TERRIL)] if TERRIL.exists() else [sys.executable, "-m", "agent"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
                          check=False, stdin=subprocess.DEVNULL)


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "check-config": lambda path: ["check-config", str(path)],
    "agent": lambda path: ["agent", "-c", str(path)],
    "ingest": lambda path: ["ingest", "-c", str(path)],
}


def assert_refused(result: subprocess.CompletedProcess[str], source: Path, *expected: str) -> list[str]:
    """Exit 2, no traceback, each problem on a line naming the file, then the summary line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{source}: ") for line in lines), result.stderr
    assert "nothing was started" in lines[-1]
    for text in expected:
        assert any(text in line for line in lines[:-1]), f"{text!r} not in {result.stderr}"
    return lines[:-1]


def agent_yaml(tmp_path: Path, **broker: object) -> Path:
    data = yaml.safe_load(EXAMPLE_AGENT.read_text(encoding="utf-8"))
    data["broker"] = {"host": "127.0.0.1", "username": "mairie", **broker}
    data["broker"].pop("password", None)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def ingest_yaml(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text("influxdb: {api: v1, url: 'http://127.0.0.1:9', database: terril}\n" + text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the config file itself


@needs_fifo
@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_as_config_is_refused_without_waiting(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "agent.yaml"
    os.mkfifo(fifo)
    assert_refused(terril(*COMMANDS[command](fifo)), fifo, "is a named pipe (FIFO), not a regular file")


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_zero_as_config_is_refused_without_reading_it(command: str) -> None:
    zero = Path("/dev/zero")
    assert_refused(terril(*COMMANDS[command](zero)), zero, "is a character device, not a regular file")


@pytest.mark.parametrize("command", COMMANDS)
def test_yaml_nested_ten_thousand_levels_is_one_line(tmp_path: Path, command: str) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8")
    (problem,) = assert_refused(terril(*COMMANDS[command](deep)), deep)
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in problem and problem.count("line 1") == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_binary_garbage_is_one_line(tmp_path: Path, command: str) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)) * 8)
    assert_refused(terril(*COMMANDS[command](garbage)), garbage, "is not UTF-8 text (byte 128)")


def test_a_config_too_large_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (5 * 1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_yaml(big)
    assert exc.value.problems == [f"{big} is larger than 4 MiB: not a file terril reads"]


# --------------------------------------------------------------------------- files a config names


@needs_fifo
def test_a_fifo_as_agent_password_file_or_ca_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "mqtt.pass"
    os.mkfifo(fifo)
    config = agent_yaml(tmp_path, password_file=str(fifo), tls={"ca": str(fifo)})
    for command in ("check-config", "agent"):
        assert_refused(terril(*COMMANDS[command](config)), config,
                       f"broker.password_file: {fifo} is a named pipe (FIFO), not a regular file",
                       f"broker.tls.ca: {fifo} is a named pipe (FIFO), not a regular file")


@needs_fifo
def test_a_fifo_as_ingest_password_token_or_ca_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    config = ingest_yaml(tmp_path, f"broker: {{username: ingest, password_file: {fifo}, tls: {{ca: {fifo}}}}}\n")
    config.write_text(config.read_text().replace("database: terril}", f"database: terril, username: u, "
                                                                          f"password_file: {fifo}}}"))
    for command in ("check-config", "ingest"):
        assert_refused(terril(*COMMANDS[command](config)), config,
                       f"broker.password_file: {fifo} is a named pipe (FIFO), not a regular file",
                       f"broker.tls.ca: {fifo} is a named pipe (FIFO), not a regular file",
                       f"influxdb.password_file: {fifo} is a named pipe (FIFO), not a regular file")


def test_dev_zero_as_password_file_is_refused(tmp_path: Path) -> None:
    agent = agent_yaml(tmp_path, password_file="/dev/zero")
    assert_refused(terril("check-config", str(agent)), agent,
                   "broker.password_file: /dev/zero is a character device, not a regular file")
    ingest = ingest_yaml(tmp_path, "broker: {username: ingest, password_file: /dev/zero}\n")
    assert_refused(terril("ingest", "-c", str(ingest)), ingest,
                   "broker.password_file: /dev/zero is a character device, not a regular file")


def test_ingest_missing_ca_is_found_by_check_config_and_reported_alike_by_the_ingest(tmp_path: Path) -> None:
    config = ingest_yaml(tmp_path, "broker: {tls: {ca: /nonexistent}}\n")
    checked = assert_refused(terril("check-config", str(config)), config,
                             "broker.tls.ca: file /nonexistent does not exist")
    run = assert_refused(terril("ingest", "-c", str(config)), config)
    assert run == checked, "the ingest reports a config problem exactly as check-config does"


def test_agent_reports_every_problem_exactly_as_check_config(tmp_path: Path) -> None:
    config = agent_yaml(tmp_path, password_file=str(tmp_path / "absent.pass"), port=70000)
    checked = assert_refused(terril("check-config", str(config)), config,
                             "broker.port: expected an integer 1–65535, got 70000",
                             f"broker.password_file: file {tmp_path / 'absent.pass'} does not exist")
    assert assert_refused(terril("agent", "-c", str(config)), config) == checked


# --------------------------------------------------------------------------- every YAML: duplicate keys


def test_a_duplicate_key_is_refused_in_every_yaml_terril_reads(tmp_path: Path) -> None:
    twice = "\n  database: other\n"
    ingest = ingest_yaml(tmp_path)
    ingest.write_text("influxdb:\n  api: v1\n  url: http://x\n  database: terril" + twice, encoding="utf-8")
    profile = tmp_path / "dup.yaml"
    profile.write_text("metadata:\n  kind: meter\n  kind: inverter\n", encoding="utf-8")
    sim = tmp_path / "sim.yaml"
    sim.write_text("servers: []\nservers: []\n", encoding="utf-8")
    inventory = tmp_path / "sites.yaml"
    inventory.write_text("territory: {name: x}\nsites: []\nsites: []\n", encoding="utf-8")
    loaders: list[tuple[Callable[[Path], object], Path, str]] = [
        (load_ingest_config, ingest, "duplicate key 'database' (first at line 4)"),
        (load_profile_file, profile, "duplicate key 'kind' (first at line 2)"),
        (load_sim_config, sim, "duplicate key 'servers' (first at line 1)"),
        (load_inventory, inventory, "duplicate key 'sites' (first at line 2)"),
    ]
    for load, path, expected in loaders:
        with pytest.raises(ConfigError) as exc:
            load(path)
        assert len(exc.value.problems) == 1 and expected in exc.value.problems[0], exc.value.problems
        assert "YAML syntax error" in exc.value.problems[0]
    assert issubclass(ProfileError, ConfigError)
