"""Nothing lost: InfluxDB stopped for a while and the ingest killed with SIGKILL once.

The ingest runs as the real command (``terril ingest -c …``) in a subprocess so
that ``kill -9`` is a real kill: whatever it had received but not written is
still unacknowledged on the broker, which redelivers it to the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.fixtures.ports import stop_process
from tests.ingest_support import (
    DB,
    T0,
    count,
    ingest_config_dict,
    publish_all,
    reading,
    readings_message,
    wait_until,
    write_config,
)

TERRIL = str(Path(sys.executable).parent / "terril")


class IngestProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IngestProcess:
        start_size = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([TERRIL, "ingest", "-c", str(self.config)], stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL)
        wait_until(lambda: b"subscribed to" in self.log.read_bytes()[start_size:], timeout=20,
                   what="ingest subscribed")
        return self

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc, timeout=20)
        return self.proc.returncode


AGENT_INSTANCE = "0123456789abcdef"


def _batch(start: int, n: int) -> list[tuple[str, bytes]]:
    """n messages, each one reading of a different site/device at its own time, with an agent's message id."""
    out = []
    for i in range(start, start + n):
        topic, payload = readings_message(f"site-{i % 5}", [reading(f"ond-{i % 3}", T0 + i * 1000)])
        out.append((topic, json.dumps({**json.loads(payload), "id": f"{AGENT_INSTANCE}:{i}"}).encode()))
    return out


def _acked(acks: Subscriber) -> Counter[int]:
    """How many times each message (its number) was acknowledged back to its site."""
    out: Counter[int] = Counter()
    for message in acks.snapshot():
        doc = json.loads(message.payload)
        assert message.topic == f"terril/{doc['site']}/ack"
        out.update(int(i.split(":")[1]) for i in doc["ids"])
    return out


@pytest.mark.slow
def test_influx_outage_and_kill9_lose_nothing_and_store_nothing_twice(
    tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    config = write_config(tmp_path / "ingest.yaml",
                          ingest_config_dict(mosquitto.port, influx.url, client_id="ingest-kill", max_delay=0.2,
                                             retry_max_delay=5.0))
    acks = Subscriber(mosquitto.port, "terril/+/ack", persistent=True, client_id="ack-watcher")
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    try:
        publish_all(mosquitto.port, _batch(0, 300))
        wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 300, what="first 300 stored")

        influx.stop()  # InfluxDB down: the ingest holds everything unacknowledged
        publish_all(mosquitto.port, _batch(300, 400))
        time.sleep(20)  # let it receive and fail writes for a while
        ingest.kill9()   # ... and die with those messages in RAM
        publish_all(mosquitto.port, _batch(700, 300))
        ingest.start()   # same client id: the broker resumes the session and redelivers
        time.sleep(40)  # still down (a minute in all): retries with capped back-off
        influx.start()

        wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") >= 1000, timeout=60,
                   what="all 1000 readings stored")
        wait_until(lambda: len(_acked(acks)) >= 1000, timeout=30, what="every message acknowledged to its agent")
        assert ingest.stop() == 0
    finally:
        ingest.stop()
        acks.close()
    acked = _acked(acks)
    assert set(acked) == set(range(1000))  # none stored without its ack (one more may follow a redelivery)
    assert acked.total() < 1100, acked.most_common(3)
    per_series = influx.rows('SELECT count(ac_power_w) FROM inverter GROUP BY "site", "device"', DB)
    assert sum(r["count"] for r in per_series) == 1000  # one row per reading: none missing, none twice
    times = influx.rows("SELECT ac_power_w FROM inverter", DB)
    assert sorted(r["time"] for r in times) == [T0 + i * 1000 for i in range(1000)]
    log = (tmp_path / "ingest.log").read_text()
    assert "InfluxDB unavailable" in log and "InfluxDB available again" in log
    assert log.count("InfluxDB unavailable") <= 2  # one line per outage per run, not one per retry
