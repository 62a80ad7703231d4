"""Helpers shared by the ingest tests: configs, payloads, a publisher, an ingest in a thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from agent.central.config import IngestConfig, parse_ingest_config
from agent.central.ingest import Ingest
from agent.schema import Reading, readings_payload

DB = "terril"
T0 = 1_700_000_000_000


def ingest_config_dict(
    broker_port: int,
    influx_url: str,
    api: str = "v1",
    client_id: str | None = None,
    max_delay: float = 0.2,
    retry_max_delay: float = 1.0,
    token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    influx: dict[str, Any] = {"api": api, "url": influx_url, "timeout": 5, "retry_max_delay": retry_max_delay}
    if api == "v2":
        influx.update(org="ville", bucket=DB, token=token or "test-token")
    else:
        influx.update(database=DB)
    data = {
        "broker": {"host": "127.0.0.1", "port": broker_port},
        "subscription": {"group": "terril-ingest", "client_id": client_id or f"ingest-{uuid.uuid4().hex[:6]}"},
        "influxdb": influx,
        "batch": {"max_points": 5000, "max_delay": max_delay},
    }
    data.update(extra)
    return data


def ingest_config(*args: Any, **kwargs: Any) -> IngestConfig:
    return parse_ingest_config(ingest_config_dict(*args, **kwargs))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class IngestThread:
    """An in-process ``Ingest`` running in a thread (fast to start; the kill test uses a subprocess)."""

    def __init__(self, config: IngestConfig) -> None:
        self.ingest = Ingest(config)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.ingest.run, args=(self.stop_event,), daemon=True)

    def __enter__(self) -> Ingest:
        self.thread.start()
        if not self.ingest.subscribed.wait(30):
            raise TimeoutError("ingest did not subscribe within 30 s")
        return self.ingest

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "ingest did not stop within 60 s"


def publish_all(port: int, messages: Iterable[tuple[str, bytes]], qos: int = 1, retain: bool = False) -> int:
    """Publish every message at QoS 1 and wait for all PUBACKs; return how many."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
        assert info.is_published()
    client.disconnect()
    client.loop_stop()
    return len(infos)


def reading(device: str, ts: int, kind: str = "inverter", string: str | None = None, **fields: float | int) -> dict[str, Any]:
    if not fields:
        fields = {"ac_power_w": 1000.0 + (ts % 1000), "ac_energy_wh": float(ts // 1000), "state": 4} if kind == "inverter" \
            else {"power_w": 10.0} if kind == "meter" else {"dc_power_w": 500.0}
    return Reading(device=device, kind=kind, ts=ts, fields=dict(fields), string=string).to_dict()  # type: ignore[arg-type]


def readings_message(site: str, readings: list[dict[str, Any]], root: str = "terril") -> tuple[str, bytes]:
    return f"{root}/{site}/readings", json.dumps(readings_payload(site, readings)).encode()


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll *predicate* until it holds; the deadline is generous (2 shared cores), it only costs a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not met after {timeout} s")


def count(influx: Any, q: str) -> int:
    rows = influx.rows(q, DB)
    return int(rows[0]["count"]) if rows else 0
