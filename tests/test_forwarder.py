"""Store-and-forward end to end: spool → forwarder → real Mosquitto → subscriber."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.edge.forwarder import Forwarder
from agent.edge.publisher import Publisher, PublisherOptions, PublishHandle, PublishResult
from agent.edge.spool import Spool, SpoolItem
from agent.schema import Event, Reading, Topics
from tests.fixtures.mosquitto import MosquittoBroker, Received, Subscriber

T0 = int(time.time() * 1000)


def poll(n: int, devices: int = 3) -> list[Reading]:
    """Poll number ``n``: one reading per device, all stamped T0 + n."""
    return [Reading(f"ond-{d}", "inverter", T0 + n, {"ac_power_w": float(n)}) for d in range(devices)]


def readings_seen(msgs: list[Received], topic: str = "terril/mairie/readings") -> list[tuple[str, int]]:
    out = []
    for m in msgs:
        if m.topic == topic:
            out += [(r["device"], r["ts"]) for r in json.loads(m.payload)["readings"]]
    return out


class Agent:
    """The edge agent's store-and-forward path, wired like the daemon does."""

    def __init__(self, tmp_path: Path, port: int, site: str = "mairie", topic_site: str | None = None,
                 username: str | None = None, password: str | None = None, **fwd: object) -> None:
        self.spool = Spool(tmp_path / "spool.db")
        self.publisher = Publisher(
            PublisherOptions(host="127.0.0.1", port=port, site=site, username=username, password=password,
                             reconnect_min_s=1, reconnect_max_s=1)
        )
        self.forwarder = Forwarder(self.spool, self.publisher, Topics(topic_site or site), **fwd)  # type: ignore[arg-type]

    def start(self) -> Agent:
        self.publisher.start()
        self.forwarder.start()
        return self

    def stop(self) -> None:
        self.forwarder.stop()
        self.publisher.stop()
        self.spool.close()

    def wait_spool_empty(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.spool.stats().depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.spool.stats().depth == 0, self.forwarder.health()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, **kw: object) -> Subscriber:
        sub = Subscriber(port, "terril/#", **kw)  # type: ignore[arg-type]
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def test_outage_then_restart_delivers_every_reading_in_batches(
    tmp_path: Path, mosquitto: MosquittoBroker, subscriber_factory: Callable[..., Subscriber]
) -> None:
    sub = subscriber_factory(mosquitto.port, persistent=True)
    agent = Agent(tmp_path, mosquitto.port, batch_size=50).start()
    try:
        assert agent.publisher.wait_connected(10)
        agent.forwarder.submit_poll(poll(0))
        sub.wait_for(lambda m: ("ond-0", T0) in readings_seen(m))
        mosquitto.stop()
        expected = {(f"ond-{d}", T0) for d in range(3)}
        for n in range(1, 120):  # 357 readings and 2 events pile up during the outage
            agent.forwarder.submit_poll(poll(n), [Event("ond-1", T0 + n, "GROUND_FAULT", True, "x")] if n % 40 == 0 else [])
            expected |= {(f"ond-{d}", T0 + n) for d in range(3)}
        assert agent.spool.stats().depth == 359
        mosquitto.restart()
        msgs = sub.wait_for(lambda m: set(readings_seen(m)) >= expected, timeout=30)
        events = [json.loads(m.payload) for m in msgs if m.topic == "terril/mairie/events"]
        assert sorted(e["ts"] for e in events) == [T0 + 40, T0 + 80]
        assert all(e["site"] == "mairie" and e["code"] == "GROUND_FAULT" for e in events)
        sizes = [len(json.loads(m.payload)["readings"]) for m in msgs if m.topic == "terril/mairie/readings"]
        assert max(sizes) <= 50 and sizes.count(50) >= 6, sizes  # the backlog went out packed
        agent.wait_spool_empty()
        assert agent.forwarder.health().forwarded_rows == 3 + 359
    finally:
        agent.stop()


def test_refused_topic_keeps_rows_in_the_spool(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker]
) -> None:
    broker = mosquitto_factory(users={"mairie": "pw"}, acl="pattern write terril/%u/#")
    # Misconfigured: the agent logs in as 'mairie' but publishes under another site's topics.
    agent = Agent(tmp_path, broker.port, site="mairie", topic_site="ecole", username="mairie", password="pw",
                  retry_refused_s=0.5).start()
    try:
        assert agent.publisher.wait_connected(10)
        agent.forwarder.submit_poll(poll(1), [Event("ond-1", T0 + 1, "GROUND_FAULT", True, "x")])
        deadline = time.monotonic() + 10
        while agent.publisher.refused < 4 and time.monotonic() < deadline:  # retried after retry_refused_s
            time.sleep(0.05)
        assert agent.publisher.refused >= 4
        health = agent.forwarder.health()
        assert health.spool.depth == 4 and health.forwarded_rows == 0
    finally:
        agent.stop()
    assert Spool(tmp_path / "spool.db").stats().depth == 4, "nothing refused was deleted"


def test_live_poll_overtakes_a_large_backlog(
    tmp_path: Path, mosquitto: MosquittoBroker, subscriber_factory: Callable[..., Subscriber]
) -> None:
    sub = subscriber_factory(mosquitto.port)
    agent = Agent(tmp_path, mosquitto.port, batch_size=100, max_inflight=4)
    backlog = 30_000  # e.g. 3 devices every 10 s for ~28 hours
    old = T0 - 86_400_000
    agent.spool.append([SpoolItem("readings", old + i, Reading("ond-0", "inverter", old + i, {"ac_power_w": 1.0}).to_dict())
                        for i in range(backlog)])
    agent.start()
    try:
        sub.wait_for(lambda m: len(m) >= 5)  # the drain has begun
        submitted = time.monotonic()
        agent.forwarder.submit_poll([Reading("live", "meter", T0, {"power_w": 5.0})])
        msgs = sub.wait_for(lambda m: ("live", T0) in readings_seen(m), timeout=5)
        latency = time.monotonic() - submitted
        drained_before_live = sum(1 for dev, _ in readings_seen(msgs) if dev == "ond-0")
        assert latency < 3.0
        assert drained_before_live < backlog, "the live poll did not wait for the backlog"
        msgs = sub.wait_for(lambda m: len(readings_seen(m)) >= backlog + 1, timeout=60)
        sizes = [len(json.loads(m.payload)["readings"]) for m in msgs if m.topic.endswith("/readings")]
        assert max(sizes) <= 100
        seen = readings_seen(msgs)
        assert {ts for dev, ts in seen if dev == "ond-0"} == {old + i for i in range(backlog)}
        backlog_ts = [ts for dev, ts in seen if dev == "ond-0"]
        assert backlog_ts == sorted(backlog_ts), "the backlog drains oldest first"
        agent.wait_spool_empty()
        assert agent.forwarder.health().forwarded_rows == backlog + 1
    finally:
        agent.stop()


def test_broker_stopped_mid_drain_loses_nothing(
    tmp_path: Path, mosquitto: MosquittoBroker, subscriber_factory: Callable[..., Subscriber]
) -> None:
    sub = subscriber_factory(mosquitto.port, persistent=True)
    agent = Agent(tmp_path, mosquitto.port, batch_size=20, max_inflight=8)
    agent.spool.append([SpoolItem("readings", T0 + i, Reading("ond-0", "inverter", T0 + i, {}).to_dict())
                        for i in range(6000)])
    agent.start()
    try:
        sub.wait_for(lambda m: len(m) >= 10)
        mosquitto.stop()  # messages in flight at this moment get no PUBACK
        assert agent.spool.stats().depth > 0, "the drain should still be running when the broker stops"
        mosquitto.restart()
        msgs = sub.wait_for(lambda m: {ts for _, ts in readings_seen(m)} >= {T0 + i for i in range(6000)}, timeout=30)
        assert len({ts for _, ts in readings_seen(msgs)}) == 6000
        agent.wait_spool_empty()
        assert agent.publisher.connects == 2
    finally:
        agent.stop()


def test_rows_spooled_by_a_previous_run_are_sent_by_the_next(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], subscriber_factory: Callable[..., Subscriber]
) -> None:
    broker = mosquitto_factory(start=False)
    first = Agent(tmp_path, broker.port).start()
    for n in range(10):
        first.forwarder.submit_poll(poll(n))
    first.stop()  # the agent stops (or dies) before the broker was ever reachable
    broker.start()
    sub = subscriber_factory(broker.port)
    second = Agent(tmp_path, broker.port).start()
    try:
        msgs = sub.wait_for(lambda m: len(readings_seen(m)) >= 30)
        assert sorted(ts for _, ts in readings_seen(msgs)) == sorted(T0 + n for n in range(10) for _ in range(3))
        second.wait_spool_empty()
    finally:
        second.stop()


def test_a_failing_spool_is_logged_once_not_once_per_retry(
    tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent(tmp_path, mosquitto.port)
    agent.spool.append([SpoolItem("readings", T0, Reading("ond-0", "inverter", T0, {}).to_dict())])
    agent.forwarder.error_retry_s = 0.02
    agent.spool._db.close()  # every spool call now fails the same way
    caplog.set_level("ERROR", logger="agent.edge.forwarder")
    agent.start()
    try:
        assert agent.publisher.wait_connected(10)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            agent.forwarder.wake()
            time.sleep(0.01)
    finally:
        agent.forwarder.stop()
        agent.publisher.stop()
    failures = [r for r in caplog.records if "forwarder step failed" in r.getMessage()]
    assert agent.forwarder.step_failures >= 10, "the step is retried"
    assert len(failures) == 1, [r.getMessage() for r in failures]


def test_draining_a_large_spool_reads_each_row_once(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """300,000 readings and no event: every backlog message costs SQLite work in proportion to its
    rows, not to the spool's size (counted in SQLite virtual-machine steps, not timed)."""
    agent = Agent(tmp_path, mosquitto.port, batch_size=500)
    old = T0 - 86_400_000
    row = '{"device":"ond-0","kind":"inverter","ts":%d,"fields":{"ac_power_w":1.0}}'
    agent.spool.append([SpoolItem("readings", old + i, row % (old + i)) for i in range(300_000)])
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    agent.spool._db.set_progress_handler(count, 1000)  # called every 1,000 SQLite VM instructions
    agent.start()
    try:
        deadline = time.monotonic() + 30
        while agent.forwarder.forwarded_rows < 20_000 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        agent.stop()
    forwarded = agent.forwarder.forwarded_rows
    assert forwarded >= 20_000
    # Each row costs some tens of instructions to read and to delete; one scan of the spool
    # would cost over a million. 200 steps of 1,000 per 500-row message is a generous bound.
    assert steps[0] * 1000 / forwarded < 400, (steps[0], forwarded)


def test_after_a_refusal_the_backlog_sends_one_probe_per_retry_then_resumes(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], subscriber_factory: Callable[..., Subscriber]
) -> None:
    """An ACL mistake must not re-upload the whole spool every retry period (metered 4G SIM)."""
    broker = mosquitto_factory(users={"mairie": "pw", "observer": "pw"},
                               acl="user observer\ntopic read terril/#\n\nuser mairie\ntopic write terril/nowhere")
    agent = Agent(tmp_path, broker.port, username="mairie", password="pw", batch_size=100, max_inflight=8,
                  retry_refused_s=1.0)
    agent.spool.append([SpoolItem("readings", T0 + i, Reading("ond-0", "inverter", T0 + i, {}).to_dict())
                        for i in range(5000)])  # 50 backlog messages
    agent.start()
    try:
        assert agent.publisher.wait_connected(10)
        time.sleep(3.6)
        refused = agent.publisher.refused
        # the first window (7 backlog messages) goes before the first PUBACK says no; then one probe
        # per second (the status/info publishes are retained topics, also refused: 2 more)
        assert 1 <= refused <= 7 + 2 + 4, refused
        assert agent.spool.stats().depth == 5000
        # the installer fixes the ACL; mosquitto reloads it on SIGHUP
        (broker.workdir / "acl").write_text("user observer\ntopic read terril/#\n\nuser mairie\ntopic write terril/mairie/#\n")
        sub = subscriber_factory(broker.port, username="observer", password="pw")
        broker.proc.send_signal(signal.SIGHUP)
        agent.wait_spool_empty(timeout=20)
        assert len(set(readings_seen(sub.snapshot()))) == 5000
    finally:
        agent.stop()


class CountingPublisher(Publisher):
    """A real publisher that also counts the payload bytes of ``readings`` messages awaiting PUBACK."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.bytes_lock = threading.Lock()
        self.bytes_in_flight = 0
        self.peak_bytes = 0
        self.largest = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                on_done: Callable[[PublishResult], None] | None = None) -> PublishHandle:
        if not topic.endswith("/readings"):
            return super().publish(topic, payload, qos, retain, on_done)
        size = len(payload)
        with self.bytes_lock:
            self.bytes_in_flight += size
            self.peak_bytes = max(self.peak_bytes, self.bytes_in_flight)
            self.largest = max(self.largest, size)

        def done(result: PublishResult) -> None:
            with self.bytes_lock:
                self.bytes_in_flight -= size
            if on_done is not None:
                on_done(result)

        return super().publish(topic, payload, qos, retain, done)


def test_the_backlog_keeps_at_most_64_kib_plus_one_message_in_flight(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    """What a live poll may find ahead of it on a slow uplink is bounded in bytes, not in messages."""
    spool = Spool(tmp_path / "spool.db")
    publisher = CountingPublisher(PublisherOptions(host="127.0.0.1", port=mosquitto.port, site="mairie"))
    forwarder = Forwarder(spool, publisher, Topics("mairie"), batch_size=200, max_inflight=8)
    spool.append([SpoolItem("readings", T0 + i, Reading("ond-0", "inverter", T0 + i,
                                                          {"ac_power_w": 1.0, "ac_energy_wh": 2.0e6}).to_dict())
                  for i in range(20_000)])  # 100 messages of ~17 KB
    publisher.start()
    forwarder.start()
    try:
        deadline = time.monotonic() + 30
        while spool.stats().depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool.stats().depth == 0
    finally:
        forwarder.stop()
        publisher.stop()
        spool.close()
    assert publisher.largest > 10_000
    assert publisher.peak_bytes <= 64 * 1024 + publisher.largest, (publisher.peak_bytes, publisher.largest)
