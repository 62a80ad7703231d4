"""Dead letters and the broker's limits: packet size, ACL refusals, disconnect loops, retained status.

Real Mosquitto (with the options each case needs appended to its config) and a real InfluxDB.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.ingest_support import (
    DB,
    T0,
    IngestThread,
    count,
    ingest_config,
    publish_all,
    reading,
    readings_message,
    wait_until,
)

BROKER_MAX_PACKET = 1_000_000


@pytest.fixture
def broker_with(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """``broker_with(["max_packet_size 1000000"], users=…, acl=…)``: extra config lines, started, stopped after."""
    made: list[MosquittoBroker] = []

    def make(extra: list[str], **kwargs: object) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path, **kwargs)  # type: ignore[arg-type]
        with open(broker.config_path, "a", encoding="utf-8") as conf:
            conf.write("\n".join(extra) + "\n")
        made.append(broker)
        return broker.start()

    yield make
    for broker in made:
        broker.stop()


def _publish_as(port: int, username: str, password: str, messages: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, p, r in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("agent.central.ingest") and r.levelno >= logging.WARNING and text in r.getMessage()]


@pytest.mark.parametrize("max_payload_bytes", [None, 4 * 1024 * 1024], ids=["default-cap", "cap-above-broker-limit"])
def test_huge_bad_message_is_dead_lettered_once_within_the_brokers_packet_limit(
    broker_with: Callable[..., MosquittoBroker], influx: InfluxServer, caplog: pytest.LogCaptureFixture,
    max_payload_bytes: int | None,
) -> None:
    """900 kB of non-UTF-8 bytes: base64 in the dead letter would be 1.2 MB, over the broker's 1 MB:
    Mosquitto would drop the ingest, which would get the message again, for ever."""
    broker = broker_with([f"max_packet_size {BROKER_MAX_PACKET}"])
    influx.create_database(DB)
    garbage = bytes(range(128, 256)) * (900_000 // 128)
    extra = {"max_payload_bytes": max_payload_bytes} if max_payload_bytes else {}
    dead = Subscriber(broker.port, "terril/_deadletter")
    try:
        with (caplog.at_level(logging.INFO, logger="agent.central.ingest"),
              IngestThread(ingest_config(broker.port, influx.url, **extra)) as ingest):
            publish_all(broker.port, [("terril/mairie/readings", garbage),
                                      readings_message("mairie", [reading("ond-1", T0)])])
            letters = dead.wait_for(lambda m: len(m) >= 1, timeout=60)
            wait_until(lambda: ingest.stats.acked >= 2, timeout=60, what="both originals acknowledged")
            time.sleep(1.5)  # a disconnect loop would redeliver and reconnect within this
            assert ingest.stats.reconnects == 0
            assert ingest.stats.deadletters == 1
        assert count(influx, "SELECT count(ac_power_w) FROM inverter") == 1
    finally:
        dead.close()
    assert len(dead.snapshot()) == 1
    assert len(letters[0].payload) < BROKER_MAX_PACKET
    body = json.loads(letters[0].payload)
    assert body["topic"] == "terril/mairie/readings" and body["site"] == "mairie"
    assert body["payload_truncated"] is True and body["payload_bytes"] == len(garbage)
    assert body["payload_sha256"] == hashlib.sha256(garbage).hexdigest()
    assert base64.b64decode(body["payload_base64"]) == garbage[:64 * 1024]
    assert not _warnings(caplog, "lost the broker connection")


def test_a_valid_backlog_message_refused_by_influxdb_is_dead_lettered_whole(
    broker_with: Callable[..., MosquittoBroker], influx: InfluxServer,
) -> None:
    """Below the packet limit the dead letter keeps the entire original: nothing of it is lost."""
    broker = broker_with([f"max_packet_size {BROKER_MAX_PACKET}"])
    influx.create_database(DB)
    assert influx.write_lines(DB, f"inverter,site=x,device=y ac_power_w=1i {T0}")[0] == 204  # type conflict
    fields = {"ac_power_w": 1234.5, "ac_energy_wh": 1.5e6, "ac_voltage_an_v": 230.1, "ac_voltage_bn_v": 229.8,
              "ac_voltage_cn_v": 231.0, "ac_current_a": 5.4, "ac_frequency_hz": 50.01, "dc_power_w": 1300.2,
              "dc_voltage_v": 612.3, "dc_current_a": 2.1, "temp_cabinet_c": 41.5, "state": 4}
    message = readings_message("mairie", [reading(f"onduleur-toiture-{i % 4}", T0 + i * 1000, **fields)
                                          for i in range(500)])
    assert 150_000 < len(message[1]) < 400_000  # a full spool batch, well over the 64 KiB head
    dead = Subscriber(broker.port, "terril/_deadletter")
    try:
        with IngestThread(ingest_config(broker.port, influx.url)):
            publish_all(broker.port, [message])
            letters = dead.wait_for(lambda m: len(m) >= 1, timeout=60)
    finally:
        dead.close()
    body = json.loads(letters[0].payload)
    assert body["payload"].encode() == message[1] and "payload_truncated" not in body
    assert len(body["refused_lines"]) == 500


def test_a_dead_letter_refused_by_the_broker_leaves_the_original_unacknowledged(
    broker_with: Callable[..., MosquittoBroker], influx: InfluxServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """ACL without write on terril/_deadletter: PUBACK 0x87. The original must survive for the next run."""
    acl = """
user ingest-ro
topic read terril/#
user ingest
topic read terril/#
topic write terril/_deadletter
user mairie
topic write terril/mairie/#
"""
    users = {"ingest-ro": "ro", "ingest": "rw", "mairie": "pv"}
    broker = broker_with([], users=users, acl=acl)
    influx.create_database(DB)
    ro = ingest_config(broker.port, influx.url, client_id="ingest-acl",
                       broker={"host": "127.0.0.1", "port": broker.port, "username": "ingest-ro", "password": "ro"})
    dead = Subscriber(broker.port, "terril/_deadletter", username="ingest", password="rw")
    try:
        with caplog.at_level(logging.INFO, logger="agent.central.ingest"), IngestThread(ro) as ingest:
            _publish_as(broker.port, "mairie", "pv", [("terril/mairie/readings", b"not json", False),
                                                      ("terril/mairie/readings", b"{also not json", False)])
            wait_until(lambda: ingest.stats.deadletters_refused >= 2, timeout=60, what="dead letters refused")
            assert ingest.stats.deadletters == 0 and ingest.stats.acked == 0
        refusals = _warnings(caplog, "refused")
        assert len(refusals) == 1 and "Not authorized" in refusals[0], refusals
        assert dead.snapshot() == []
        # The same session with a user that may write dead letters: the originals come back and are kept.
        rw = ingest_config(broker.port, influx.url, client_id="ingest-acl",
                           broker={"host": "127.0.0.1", "port": broker.port, "username": "ingest", "password": "rw"})
        with IngestThread(rw) as ingest:
            letters = dead.wait_for(lambda m: len(m) >= 2, timeout=60)
            wait_until(lambda: ingest.stats.acked >= 2, timeout=60, what="originals acknowledged")
    finally:
        dead.close()
    assert sorted(json.loads(m.payload)["payload"] for m in letters) == ["not json", "{also not json"]


def test_a_disconnect_loop_is_logged_once_per_outage(
    broker_with: Callable[..., MosquittoBroker], influx: InfluxServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """A second client with the ingest's client id takes its session over, again and again."""
    broker = broker_with([])
    influx.create_database(DB)
    config = ingest_config(broker.port, influx.url, client_id="ingest-twin")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    with caplog.at_level(logging.INFO, logger="agent.central.ingest"), IngestThread(config) as ingest:
        for k in range(4):
            twin = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ingest-twin", protocol=mqtt.MQTTv5)
            twin.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
            twin.loop_start()
            wait_until(lambda: not ingest._connected.is_set(), timeout=60, what="ingest kicked out")
            twin.disconnect()
            twin.loop_stop()
            wait_until(lambda k=k: ingest.stats.reconnects >= k + 1 and ingest.subscribed.is_set()
                       and ingest._connected.is_set(), timeout=10, what="ingest back")
        publish_all(broker.port, [readings_message("mairie", [reading("ond-1", T0)])])
        wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 1, what="still ingesting")
    lost = _warnings(caplog, "lost the broker connection")
    again = _warnings(caplog, "dropped the connection again")
    assert len(lost) == 1 and len(again) == 1, (lost, again)
    connected = [r for r in caplog.records if r.getMessage().startswith("connected to broker")]
    assert len(connected) == 2  # the first connection and the first reconnect, not one per reconnect


def test_retained_status_resent_on_resubscribe_writes_no_new_row(
    broker_with: Callable[..., MosquittoBroker], influx: InfluxServer,
) -> None:
    broker = broker_with([])
    influx.create_database(DB)
    config = ingest_config(broker.port, influx.url, client_id="ingest-status")
    with IngestThread(config) as ingest:
        publish_all(broker.port, [("terril/mairie/status", b"online")])  # live: not retained on delivery
        wait_until(lambda: count(influx, "SELECT count(up) FROM agent") == 1, what="first status row")
        time.sleep(0.01)  # the rows are stamped with the receive time (ms): keep them apart
        _publish_retained(broker.port, "terril/mairie/status", b"online")
        wait_until(lambda: count(influx, "SELECT count(up) FROM agent") == 2, what="two live status rows")
    first = influx.rows("SELECT up FROM agent", DB)
    skipped = []
    for _ in range(2):  # each restart re-subscribes; Mosquitto re-sends the retained status
        time.sleep(0.01)
        with IngestThread(config) as ingest:
            wait_until(lambda: getattr(ingest.stats, "retained_status_skipped", 0) >= 1
                       or count(influx, "SELECT count(up) FROM agent") > 2, timeout=10,
                       what="retained status handled (skipped, or written as a new row)")
            publish_all(broker.port, [readings_message("mairie", [reading("ond-1", T0)])])
            wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 1, what="reading stored")
            assert ingest.stats.deadletters == 0
            skipped.append(getattr(ingest.stats, "retained_status_skipped", None))
    assert influx.rows("SELECT up FROM agent", DB) == first
    assert skipped == [1, 1]


def _publish_retained(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
