"""Ingest throughput next to the two ceilings it sits between; prints JSON.

Measured in one run, on one machine, with the same Mosquitto and InfluxDB:

* ``mqtt_ceiling``: a paho publisher → a paho subscriber (separate process),
  QoS 1, one reading per message — the most the broker path can carry;
* ``influx_ceiling``: raw line-protocol ``/write`` of the same points in
  batches of 5,000 — the most InfluxDB takes;
* ``live``: end to end through ``terril ingest`` (a subprocess), one reading
  per message (an agent polling live);
* ``backlog``: end to end, 500 readings per message (an agent draining its spool).

Targets (issue 4): live ≥ 0.6 × MQTT ceiling, backlog ≥ 0.5 × InfluxDB ceiling.
Usage: ``.venv/bin/python bench/ingest.py [--live N] [--backlog-messages M]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.central.points import make_point
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import DB, ingest_config_dict, reading, readings_message, write_config

T0 = 1_700_000_000_000


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = _publisher(port)
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def subscriber_main(port: int, n: int) -> None:
    """Child process of the MQTT ceiling: count n messages, print the time of the first and last."""
    done = threading.Event()
    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if state["count"] == 0:
            state["first"] = now
        state["count"] += 1
        if state["count"] >= n:
            state["last"] = now
            done.set()

    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe("bench/+/readings", qos=1)
    client.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    done.wait(300)
    client.disconnect()
    client.loop_stop()
    print(json.dumps(state), flush=True)


def _live_messages(n: int, prefix: str, root: str, t0: int) -> list[tuple[str, bytes]]:
    return [readings_message(f"{prefix}-{i % 50}", [reading(f"ond-{i % 4}", t0 + i * 1000)], root=root)
            for i in range(n)]


def mqtt_ceiling(port: int, n: int) -> float:
    sub = subprocess.Popen([sys.executable, __file__, "--subscriber", str(port), str(n)], stdout=subprocess.PIPE,
                           text=True)
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    messages = _live_messages(n, "mq", "bench", T0)
    start = time.time()
    _publish(port, messages)
    state = json.loads(sub.stdout.readline())
    sub.wait(timeout=30)
    return n / (state["last"] - start)


def influx_ceiling(influx: InfluxServer, n: int) -> float:
    points = [make_point("inverter", {"site": f"raw-{i % 50}", "device": f"ond-{i % 4}"},
                         {"ac_power_w": 1000.0 + i % 1000, "ac_energy_wh": float(i), "state": 4}, T0 + i * 1000)
              for i in range(n)]
    bodies = ["\n".join(p.to_line() for p in points[i:i + 5000]).encode() for i in range(0, n, 5000)]
    conn = http.client.HTTPConnection("127.0.0.1", influx.port, timeout=60)
    start = time.time()
    for body in bodies:
        conn.request("POST", f"/write?db={DB}&precision=ms", body=body)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204, resp.status
    elapsed = time.time() - start
    conn.close()
    return n / elapsed


def _stored(influx: InfluxServer, site_prefix: str) -> int:
    rows = influx.rows(f"SELECT count(ac_power_w) FROM inverter WHERE site =~ /^{site_prefix}-/", DB)
    return int(rows[0]["count"]) if rows else 0


def _with_ids(messages: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``--ids``: each message carries an agent's message id, so the ingest acknowledges it on ``<site>/ack``."""
    return [(t, p[:-1] + f',"id":"0123456789abcdef:{n}"}}'.encode()) for n, (t, p) in enumerate(messages, 1)]


def end_to_end(broker: MosquittoBroker, influx: InfluxServer, messages: list[tuple[str, bytes]], readings: int,
               prefix: str) -> float:
    start = time.time()
    _publish(broker.port, messages)
    while _stored(influx, prefix) < readings:
        time.sleep(0.05)
    return readings / (time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriber", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--live", type=int, default=20_000, help="messages of one reading (default 20000)")
    parser.add_argument("--backlog-messages", type=int, default=200, help="messages of 500 readings (default 200)")
    parser.add_argument("--ids", action="store_true",
                        help="messages carry message ids, as an agent sends them once the ingest acknowledges")
    args = parser.parse_args()
    if args.subscriber:
        subscriber_main(*args.subscriber)
        return

    tmp = Path(tempfile.mkdtemp(prefix="terril-bench-"))
    broker = MosquittoBroker(tmp).start()
    influx = InfluxServer(tmp).start()
    ingest: subprocess.Popen[bytes] | None = None
    try:
        influx.create_database(DB)
        mqtt_rps = mqtt_ceiling(broker.port, args.live)
        influx_rps = influx_ceiling(influx, args.backlog_messages * 500)

        config = write_config(tmp / "ingest.yaml", ingest_config_dict(broker.port, influx.url, client_id="bench-ingest",
                                                                      max_delay=1.0))
        log = open(tmp / "ingest.log", "wb")  # noqa: SIM115 - the child process writes it until it is stopped
        ingest = subprocess.Popen([str(Path(sys.executable).parent / "terril"), "ingest", "-c", str(config)],
                                  stdout=log, stderr=log)
        deadline = time.time() + 20
        while b"subscribed to" not in (tmp / "ingest.log").read_bytes():
            if time.time() > deadline:
                raise RuntimeError("ingest did not subscribe")
            time.sleep(0.05)

        ids = _with_ids if args.ids else (lambda messages: messages)
        live_rps = end_to_end(broker, influx, ids(_live_messages(args.live, "live", "terril", T0 + 10**9)),
                              args.live, "live")
        backlog = [readings_message(f"bl-{m % 50}", [reading(f"ond-{m % 4}", T0 + 2 * 10**9 + (m * 500 + i) * 1000)
                                                     for i in range(500)])
                   for m in range(args.backlog_messages)]
        backlog_rps = end_to_end(broker, influx, ids(backlog), args.backlog_messages * 500, "bl")
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(timeout=30)
        influx.stop()
        broker.stop()

    live_ratio = live_rps / mqtt_rps
    backlog_ratio = backlog_rps / influx_rps
    print(json.dumps({
        "live_messages": args.live,
        "message_ids": args.ids,
        "backlog_readings": args.backlog_messages * 500,
        "mqtt_ceiling_readings_per_s": round(mqtt_rps),
        "influx_ceiling_points_per_s": round(influx_rps),
        "live_readings_per_s": round(live_rps),
        "backlog_readings_per_s": round(backlog_rps),
        "live_vs_mqtt_ceiling": round(live_ratio, 3),
        "backlog_vs_influx_ceiling": round(backlog_ratio, 3),
        "target_live": 0.6,
        "target_backlog": 0.5,
        "live_target_met": live_ratio >= 0.6,
        "backlog_target_met": backlog_ratio >= 0.5,
    }, indent=2))


if __name__ == "__main__":
    main()
