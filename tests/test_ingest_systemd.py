"""The ingest under systemd: READY=1 and WATCHDOG=1 on a real NOTIFY_SOCKET, and the unit asks for them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import DB, IngestThread, ingest_config, publish_all, reading, readings_message, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """What systemd does for Type=notify with WatchdogSec=2: a datagram socket, and the env pointing at it."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # pings every 1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def receive(sock: socket.socket, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    out: list[str] = []
    while time.monotonic() < deadline:
        try:
            out.extend(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            pass
    return out


def test_ready_then_watchdog_while_healthy(
    notify_socket: socket.socket, mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    with IngestThread(ingest_config(mosquitto.port, influx.url)) as ingest:
        first = receive(notify_socket, 2.5)
        assert first[0] == "READY=1"
        assert first.count("WATCHDOG=1") >= 1
        assert first.index("WATCHDOG=1") > 0
        assert ingest.healthy()
        # A write loop whose last turn is older than two write timeouts + the longest back-off + 30 s is stuck.
        assert ingest.healthy(time.monotonic() + 2 * 5 + 1 + 29)
        assert not ingest.healthy(time.monotonic() + 2 * 5 + 1 + 31)
    assert "STOPPING=1" in receive(notify_socket, 0.5)


def test_influxdb_down_is_still_healthy(
    notify_socket: socket.socket, mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    with IngestThread(ingest_config(mosquitto.port, influx.url, retry_max_delay=1.0)) as ingest:
        influx.stop()
        publish_all(mosquitto.port, [readings_message("mairie", [reading("ond-1", int(time.time() * 1000))])])
        wait_until(lambda: ingest.stats.write_failures >= 2, what="writes failing")
        assert receive(notify_socket, 2.5).count("WATCHDOG=1") >= 1
        assert ingest.healthy()
        influx.start()
        wait_until(lambda: ingest.stats.points_written == 1, what="written after the outage")


def test_unit_is_type_notify_with_a_watchdog() -> None:
    lines = (ROOT / "systemd" / "terril-ingest.service").read_text().splitlines()
    assert "Type=notify" in lines and "NotifyAccess=main" in lines and "WatchdogSec=60" in lines
