"""The ingest config: the example loads as it is, every mistake is reported with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.central.config import load_ingest_config, parse_ingest_config
from agent.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "ingest.example.yaml"


def test_example_loads_with_documented_defaults() -> None:
    cfg = load_ingest_config(EXAMPLE)
    assert cfg.influxdb.api == "v1" and cfg.influxdb.database == "terril"
    assert cfg.subscription.session_expiry == 604800 and cfg.subscription.group == "terril-ingest"
    assert (cfg.batch.max_points, cfg.batch.max_delay) == (5000, 1.0)
    assert cfg.rollup.timezone == "Europe/Paris" and cfg.topic_root == "terril"


def test_every_problem_at_once_with_key_paths() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ingest_config({
            "broker": {"host": "h", "port": 0, "colour": "red"},
            "influxdb": {"api": "v2", "url": "localhost:8086", "token": "t"},
            "batch": {"max_points": 0},
            "rollup": {"timezone": "Europe/Lille"},
        }, "ingest.yaml")
    problems = exc.value.problems
    assert any(p.startswith("broker.port:") for p in problems)
    assert any(p.startswith("broker.colour: unknown key") for p in problems)
    assert any(p.startswith("batch.max_points:") for p in problems)
    assert any(p.startswith("influxdb.url:") for p in problems)
    assert any("Europe/Lille" in p for p in problems)


def test_api_specific_keys_are_checked() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ingest_config({"influxdb": {"api": "v1", "url": "http://x", "database": "d", "bucket": "b"}})
    assert exc.value.problems == ["influxdb.bucket: only for api v2 (v1 uses database, username, password)"]
    with pytest.raises(ConfigError) as exc:
        parse_ingest_config({"influxdb": {"api": "v2", "url": "http://x", "org": "o"}})
    assert exc.value.problems == ["influxdb.bucket: required key missing with api v2"]


def test_secrets_come_from_files_and_never_show(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("very-secret-token\n")
    (tmp_path / "mqtt.pass").write_text("mqtt-secret\n")
    cfg = parse_ingest_config({
        "broker": {"username": "ingest", "password_file": str(tmp_path / "mqtt.pass")},
        "influxdb": {"api": "v2", "url": "http://x:8086", "org": "o", "bucket": "b",
                     "token_file": str(tmp_path / "token")},
    })
    assert cfg.influxdb.token is not None and cfg.influxdb.token.get_secret_value() == "very-secret-token"
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "mqtt-secret"
    assert "very-secret" not in repr(cfg) and "mqtt-secret" not in repr(cfg) and "mqtt-secret" not in str(cfg)


def test_missing_secret_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ingest_config({"influxdb": {"api": "v1", "url": "http://x", "database": "d", "username": "u",
                                          "password_file": str(tmp_path / "nope")}})
    assert exc.value.problems[0] == f"influxdb.password_file: file {tmp_path / 'nope'} does not exist"


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text("influxdb:\n  api: v1\n  url: [\n")
    with pytest.raises(ConfigError) as exc:
        load_ingest_config(path)
    assert "YAML syntax error" in exc.value.problems[0] and exc.value.problems[0].startswith("line ")


ROOT = Path(__file__).parent.parent


def _mosquitto_setting(name: str) -> int:
    conf = (ROOT / "config" / "mosquitto" / "terril.conf").read_text()
    (value,) = [ln.split()[1] for ln in conf.splitlines() if ln.split()[:1] == [name]]
    return int(value)


def _memory_max_bytes() -> int:
    unit = (ROOT / "systemd" / "terril-ingest.service").read_text()
    (value,) = [ln.split("=", 1)[1].strip() for ln in unit.splitlines() if ln.startswith("MemoryMax=")]
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_shipped_limits_fit_together() -> None:
    """Broker packet limit, ingest payload cap, receive window and the unit's MemoryMax agree:
    the messages the ingest may hold unacknowledged (InfluxDB down) take at most half its memory,
    and every message the ingest accepts is one the broker lets through."""
    example = load_ingest_config(EXAMPLE)
    defaults = parse_ingest_config({"influxdb": {"api": "v1", "database": "terril"}})
    max_packet = _mosquitto_setting("max_packet_size")
    for cfg in (example, defaults):
        assert cfg.max_payload_bytes < max_packet
        assert cfg.subscription.receive_maximum * max_packet <= _memory_max_bytes() / 2
    assert example.max_payload_bytes == defaults.max_payload_bytes
    assert example.subscription.receive_maximum == defaults.subscription.receive_maximum
    assert max_packet >= 2 * 250_000  # a 500-reading backlog message (~250 kB) passes with room to spare
