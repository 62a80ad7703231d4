"""The ingest end to end: real Mosquitto, real InfluxDB 1.6 (v2 path through the test proxy)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from agent.schema import Event, health_payload, info_payload
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.influx_v2_proxy import InfluxV2Proxy
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


@pytest.fixture(params=["v1", "v2"])
def influx_url(request: pytest.FixtureRequest, influx: InfluxServer) -> Iterator[tuple[str, str]]:
    influx.create_database(DB)
    if request.param == "v1":
        yield "v1", influx.url
    else:
        with InfluxV2Proxy(influx.port, token="test-token") as proxy:
            yield "v2", proxy.url


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_everything_the_schema_names_is_stored(
    mosquitto: MosquittoBroker, influx: InfluxServer, influx_url: tuple[str, str]
) -> None:
    api, url = influx_url
    now = _now_ms()
    live = [readings_message("mairie", [reading("ond-1", T0 + i * 10_000), reading("compteur", T0 + i * 10_000, "meter",
                                                                                    power_w=-250.5, energy_import_wh=1e6)])
            for i in range(30)]
    backlog = readings_message("ecole-a", [reading("ond-2", T0 + i * 10_000, "mppt", string="1", dc_power_w=float(i),
                                                   dc_voltage_v=600.0) for i in range(500)])
    event = ("terril/mairie/events", json.dumps(Event("ond-1", now, "GROUND_FAULT", True, "Ground fault").to_payload("mairie")).encode())
    health = ("terril/mairie/health", json.dumps(health_payload("mairie", now, {"uptime_s": 12.5, "spool_depth": 3},
                                                                 {"ond-1": {"status": "ok"}})).encode())
    info = ("terril/mairie/info", json.dumps(info_payload("mairie", now, {"name": "Hôtel de ville", "peak_power_w": 36000,
                                                                          "panels": 120, "owner": "commune",
                                                                          "latitude": 50.457, "longitude": 2.793},
                                                          [{"name": "ond-1", "kind": "inverter"}])).encode())
    status = ("terril/mairie/status", b"online")
    with IngestThread(ingest_config(mosquitto.port, url, api=api)) as ingest:
        publish_all(mosquitto.port, [*live, backlog, event, health, info, status])
        wait_until(lambda: count(influx, "SELECT count(dc_power_w) FROM mppt") == 500
                   and count(influx, "SELECT count(power_w) FROM meter") == 30
                   and count(influx, "SELECT count(up) FROM agent") == 1
                   and count(influx, "SELECT count(panels) FROM site_info") == 1
                   and count(influx, "SELECT count(active) FROM event") == 1, what="all points stored")
        assert ingest.stats.deadletters == 0
    rows = influx.rows('SELECT * FROM inverter WHERE time = 1700000000000ms', DB)
    assert rows == [{"time": T0, "site": "mairie", "device": "ond-1", "ac_power_w": 1000.0,
                     "ac_energy_wh": 1_700_000_000.0, "state": 4}]
    assert count(influx, "SELECT count(ac_power_w) FROM inverter") == 30
    mppt = influx.rows("SELECT * FROM mppt WHERE time = 1700000010000ms", DB)
    assert mppt == [{"time": T0 + 10_000, "site": "ecole-a", "device": "ond-2", "string": "1",
                     "dc_power_w": 1.0, "dc_voltage_v": 600.0}]
    ev = influx.rows("SELECT * FROM event", DB)
    assert ev == [{"time": now, "site": "mairie", "device": "ond-1", "code": "GROUND_FAULT", "active": 1,
                   "text": "Ground fault"}]
    si = influx.rows("SELECT * FROM site_info", DB)[0]
    assert (si["name"], si["owner"], si["panels"], si["peak_power_w"]) == ("Hôtel de ville", "commune", 120, 36000.0)
    agent = influx.rows(f"SELECT uptime_s, spool_depth FROM agent WHERE time = {now}ms", DB)
    assert agent == [{"time": now, "uptime_s": 12.5, "spool_depth": 3}]
    types = {(r["fieldKey"], r["fieldType"]) for r in influx.rows("SHOW FIELD KEYS", DB)}
    assert {("ac_power_w", "float"), ("state", "integer"), ("active", "integer"), ("text", "string"),
            ("panels", "integer"), ("up", "integer"), ("spool_depth", "integer"), ("power_w", "float")} <= types


def test_type_conflict_goes_to_dead_letter_and_the_rest_is_written(
    mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    status, _ = influx.write_lines(DB, f"inverter,site=x,device=y temp_cabinet_c=1i {T0}")
    assert status == 204
    readings = [reading("ond-1", T0 + i * 1000) for i in range(10)]
    readings[3] = reading("ond-1", T0 + 3000, ac_power_w=5.0, temp_cabinet_c=41.5)
    dead = Subscriber(mosquitto.port, "terril/_deadletter")
    try:
        with IngestThread(ingest_config(mosquitto.port, influx.url)) as ingest:
            publish_all(mosquitto.port, [readings_message("mairie", readings)])
            letters = dead.wait_for(lambda m: len(m) >= 1)
            wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter WHERE site = 'mairie'") == 9)
            # counted once the broker's PUBACK is back, which may follow the delivery to our subscriber
            wait_until(lambda: ingest.stats.deadletters == 1, what="dead letter counted")
    finally:
        dead.close()
    body = json.loads(letters[0].payload)
    assert body["topic"] == "terril/mairie/readings" and body["site"] == "mairie"
    assert "conflict" in body["reason"]
    assert body["refused_lines"] == [f"inverter,device=ond-1,site=mairie ac_power_w=5.0,temp_cabinet_c=41.5 {T0 + 3000}"]
    assert json.loads(body["payload"])["readings"][3]["fields"]["temp_cabinet_c"] == 41.5


def test_invalid_message_is_dead_lettered_with_its_payload(mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    influx.create_database(DB)
    dead = Subscriber(mosquitto.port, "terril/_deadletter")
    try:
        with IngestThread(ingest_config(mosquitto.port, influx.url)):
            publish_all(mosquitto.port, [("terril/mairie/readings", b"\xff\xfe not utf-8"),
                                         (*readings_message("ecole", [reading("ond-1", T0)])[:1], json.dumps({"v": 1, "site": "mairie", "readings": []}).encode()),
                                         readings_message("mairie", [reading("ond-1", T0)])])
            letters = dead.wait_for(lambda m: len(m) >= 2)
            wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 1)
    finally:
        dead.close()
    bodies = sorted((json.loads(m.payload) for m in letters), key=lambda b: b["topic"])
    assert bodies[0]["topic"] == "terril/ecole/readings" and "differs from topic site" in bodies[0]["reason"]
    assert bodies[1]["payload_base64"] == "//4gbm90IHV0Zi04" and "UTF-8" in bodies[1]["reason"]


def test_two_instances_split_the_load_and_together_store_all(mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    influx.create_database(DB)
    messages = [readings_message(f"site-{i % 7}", [reading("ond-1", T0 + i * 1000)]) for i in range(1000)]
    with IngestThread(ingest_config(mosquitto.port, influx.url, client_id="ingest-a")) as a, \
            IngestThread(ingest_config(mosquitto.port, influx.url, client_id="ingest-b")) as b:
        publish_all(mosquitto.port, messages)
        wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 1000, what="1000 rows")
        # A writer thread counts its points just after InfluxDB took them: wait for both counts.
        wait_until(lambda: a.stats.points_written + b.stats.points_written >= 1000, what="both counted")
        assert a.stats.points_written > 0 and b.stats.points_written > 0
        assert a.stats.messages + b.stats.messages >= 1000
