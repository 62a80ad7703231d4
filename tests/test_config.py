"""Agent configuration: defaults, secrets, derived values, and the shipped examples."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.edge.config import (
    DEFAULT_SPOOL_FILE,
    PROFILES_DIR,
    AgentConfig,
    RtuTransport,
    TcpTransport,
    load_agent_config,
    parse_agent_config,
)
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TERRIL = ROOT / ".venv" / "bin" / "terril"


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"slug": "ecole", "name": "École Jules Ferry", "peak_power_w": 9000, "latitude": 50.4, "longitude": 2.8},
        "broker": {"host": "mqtt.example.org"},
        "devices": [{"name": "ond", "kind": "inverter", "driver": "sunspec", "transport": {"type": "tcp", "host": "10.0.0.5"}}],
    }
    data.update(overrides)
    return data


def problems_of(data: object, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_agent_config(data, "test.yaml", **kwargs)
    return info.value.problems


def agent_examples() -> list[Path]:
    found = []
    for path in sorted((ROOT / "config").glob("*.example.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "devices" in data and "site" in data:
            found.append(path)
    return found


def test_agent_example_is_among_the_examples() -> None:
    assert ROOT / "config" / "agent.example.yaml" in agent_examples()


@pytest.mark.parametrize("path", agent_examples(), ids=lambda p: p.name)
def test_every_agent_example_loads(path: Path) -> None:
    config = load_agent_config(path)
    assert config.devices
    result = subprocess.run([str(TERRIL), "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "agent config OK" in result.stdout


def test_example_targets_the_simulator_and_a_local_broker() -> None:
    config = load_agent_config(ROOT / "config" / "agent.example.yaml")
    assert (config.broker.host, config.broker.port, config.broker.tls) == ("localhost", 1883, None)
    targets = [(d.transport.host, d.transport.port, d.unit, d.kind) for d in config.devices if isinstance(d.transport, TcpTransport)]
    assert targets == [
        ("127.0.0.1", 1502, 1, "inverter"),
        ("127.0.0.1", 1502, 2, "inverter"),
        ("127.0.0.1", 1502, 3, "meter"),
    ]


def test_example_matches_the_simulator_example() -> None:
    """The agent example polls exactly what config/simulator.example.yaml serves (make demo)."""
    sim_path = ROOT / "config" / "simulator.example.yaml"
    if not sim_path.exists():
        pytest.skip("no simulator example yet")
    sim = yaml.safe_load(sim_path.read_text(encoding="utf-8"))
    host = sim.get("listen", {}).get("host", "127.0.0.1")
    served = {
        (host, server["tcp"]["port"], unit["unit"]): (unit["kind"], unit.get("name"))
        for server in sim["servers"] if "tcp" in server for unit in server["units"]
    }
    config = load_agent_config(ROOT / "config" / "agent.example.yaml")
    for dev in config.devices:
        assert isinstance(dev.transport, TcpTransport)
        key = (dev.transport.host, dev.transport.port, dev.unit)
        assert key in served, f"{dev.name}: nothing simulated at {key}"
        assert served[key][0] == dev.kind
        assert served[key][1] in (None, dev.name)
    inverters = [u for u in served.values() if u[0] == "inverter"]
    assert len([d for d in config.devices if d.kind == "inverter"]) == len(inverters)
    peak = sum(u["peak_power_w"] for s in sim["servers"] for u in s["units"] if u["kind"] == "inverter")
    assert config.site.peak_power_w == peak


def test_defaults_are_applied_but_not_reported_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = parse_agent_config(minimal(), "test.yaml")
    dev = config.devices[0]
    assert (dev.unit, dev.interval, dev.logical_device, dev.max_registers) == (1, 10, 1, 125)
    assert dev.model_fields_set == {"name", "kind", "driver", "transport"}
    assert isinstance(dev.transport, TcpTransport) and dev.transport.port == 502
    assert dev.transport.model_fields_set == {"type", "host"}
    assert config.broker.port == 1883 and "port" not in config.broker.model_fields_set
    assert config.broker.client_id == "terril-ecole" and "client_id" not in config.broker.model_fields_set
    assert config.site.owner == "commune" and config.site.panels is None
    assert config.spool.path == DEFAULT_SPOOL_FILE
    assert config.spool.max_rows == 3_700_000 >= 8640 * 20 * 3 * 7  # the arithmetic in config.py, rounded up
    assert config.model_fields_set == {"site", "broker", "devices"}
    assert config.topics.readings == "terril/ecole/readings"


def test_tls_makes_the_default_port_8883(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = parse_agent_config(minimal(broker={"host": "h", "tls": {"ca": "ca.pem"}}), "t", base_dir=tmp_path)
    assert config.broker.port == 8883
    assert config.broker.tls is not None and config.broker.tls.ca == tmp_path / "ca.pem"
    explicit = parse_agent_config(minimal(broker={"host": "h", "port": 1884, "tls": {}}), "t")
    assert explicit.broker.port == 1884


def test_spool_path_follows_systemd_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/private/terril")
    assert parse_agent_config(minimal(), "t").spool.path == Path("/var/lib/private/terril/spool.db")


def test_password_file_is_read_relative_to_the_config_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pass").write_text("Tr0ub4dor-secret\n")
    (tmp_path / "agent.yaml").write_text(
        yaml.safe_dump(minimal(broker={"host": "h", "username": "ecole", "password_file": "mqtt.pass"}))
    )
    config = load_agent_config(tmp_path / "agent.yaml")
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == "Tr0ub4dor-secret"
    for text in (repr(config), str(config), config.model_dump_json(), repr(config.broker)):
        assert "Tr0ub4dor" not in text
    result = subprocess.run(
        [str(TERRIL), "check-config", str(tmp_path / "agent.yaml")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Tr0ub4dor" not in result.stdout + result.stderr
    assert f"password from {tmp_path / 'mqtt.pass'}" in result.stdout


def test_inline_password_is_secret_too() -> None:
    config = parse_agent_config(minimal(broker={"host": "h", "username": "u", "password": "s3cr3t-inline"}), "t")
    assert "s3cr3t-inline" not in repr(config)
    problems = problems_of(minimal(broker={"host": "h", "username": "u", "password": 123456789}))
    assert problems == ["broker.password: expected a text string (quote it in YAML)"]


def test_models_are_frozen() -> None:
    config = parse_agent_config(minimal(), "t")
    with pytest.raises(Exception, match="frozen"):
        config.devices[0].unit = 5  # type: ignore[misc]


def test_rtu_devices_on_one_bus_that_agree_are_fine() -> None:
    rtu = {"type": "rtu", "port": "/dev/ttyUSB0", "baudrate": 19200, "parity": "E"}
    config = parse_agent_config(
        minimal(devices=[
            {"name": "a", "kind": "meter", "driver": "sunspec", "transport": rtu, "unit": 1},
            {"name": "b", "kind": "meter", "driver": "sunspec", "transport": rtu, "unit": 2},
            {"name": "c", "kind": "inverter", "driver": "sunspec", "transport": rtu, "unit": 2, "logical_device": 2},
        ]),
        "t",
    )
    tr = config.devices[0].transport
    assert isinstance(tr, RtuTransport) and tr.line_settings == (19200, "E", 1, 8) and tr.pause == 0.05


def test_profile_driver_must_exist_once_profiles_are_shipped(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    dev = {"name": "cpt", "kind": "meter", "driver": "sdm630", "transport": {"type": "tcp", "host": "h"}}
    assert parse_agent_config(minimal(devices=[dev]), "t", profiles_dir=empty).devices[0].driver == "sdm630"
    shipped = tmp_path / "profiles"
    shipped.mkdir()
    for name in ("sdm630", "huawei_sun2000"):  # real profiles: their kind is checked against the device's
        (shipped / f"{name}.yaml").write_text((PROFILES_DIR / f"{name}.yaml").read_text())
    assert parse_agent_config(minimal(devices=[dev]), "t", profiles_dir=shipped).devices[0].driver == "sdm630"
    problems = problems_of(minimal(devices=[{**dev, "driver": "sdm120"}]), profiles_dir=shipped)
    assert problems == [
        'devices[0].driver: unknown driver "sdm120": expected "sunspec" or one of the profiles '
        "in agent/devices/profiles/: huawei_sun2000, sdm630"
    ]


def test_every_problem_is_reported_at_once() -> None:
    data = minimal(
        site={"slug": "x", "name": "", "peak_power_w": 0, "latitude": 0, "longitude": 200, "colour": 1},
        spool={"max_rows": "lots"},
        log={"level": "chatty"},
    )
    problems = problems_of(data)
    assert problems == [
        "site.name: must not be empty",
        "site.peak_power_w: expected a number > 0, got 0",
        "site.longitude: expected a number -180–180, got 200",
        "site.colour: unknown key (known keys: slug, name, peak_power_w, panels, owner, latitude, longitude)",
        'spool.max_rows: expected an integer ≥ 1000, got "lots"',
        'log.level: expected one of DEBUG, INFO, WARNING or ERROR, got "CHATTY"',
    ]


@pytest.mark.parametrize("data", [None, [], "text", 3])
def test_not_a_mapping(data: object) -> None:
    assert len(problems_of(data)) == 1


def test_no_pydantic_jargon_in_any_message() -> None:
    data = minimal(devices=[{"name": "A B", "kind": 1, "driver": [], "transport": {"host": "h"}, "unit": True, "interval": 2.5}])
    problems = problems_of(data)
    assert problems, problems
    for p in problems:
        assert "Input should" not in p and "pydantic" not in p and "http" not in p
        assert p.startswith("devices[0].")
    assert "devices[0].transport.type: required key missing (tcp or rtu)" in problems
    assert "devices[0].unit: expected an integer 1–247, got true" in problems
    assert "devices[0].interval: expected an integer 1–3600, got 2.5" in problems


def test_check_config_says_when_it_cannot_check_an_ingest_config(tmp_path: Path) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text("broker: {host: localhost}\ninfluxdb: {api: v1, url: 'http://localhost:8086', database: terril}\n")
    result = subprocess.run([str(TERRIL), "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False)
    if (ROOT / "agent" / "central" / "config.py").exists():
        assert "ingest" in (result.stdout + result.stderr)
        example = ROOT / "config" / "ingest.example.yaml"
        if example.exists():
            ok = subprocess.run([str(TERRIL), "check-config", str(example)], capture_output=True, text=True, timeout=60, check=False)
            assert ok.returncode == 0 and "ingest config OK" in ok.stdout, ok.stderr
        broken = tmp_path / "broken-ingest.yaml"
        broken.write_text("influxdb: {api: v9}\nbrokr: {}\n")
        bad = subprocess.run([str(TERRIL), "check-config", str(broken)], capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode == 2 and "brokr" in bad.stderr
    else:
        assert result.returncode == 2
        assert "looks like an ingest config" in result.stderr


def test_agent_config_class_is_what_load_returns() -> None:
    assert isinstance(load_agent_config(ROOT / "config" / "agent.example.yaml"), AgentConfig)
