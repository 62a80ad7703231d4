"""The MQTT 5 publisher against a real Mosquitto with a password file and an ACL."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.edge.publisher import Publisher, PublisherOptions
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber, make_test_ca

ACL = """
pattern write terril/%u/#
user observer
topic read terril/#
"""
USERS = {"mairie": "s3cret-mairie", "ecole": "s3cret-ecole", "observer": "look"}


@pytest.fixture
def acl_broker(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    return mosquitto_factory(users=USERS, acl=ACL)


@pytest.fixture
def observer(acl_broker: MosquittoBroker) -> Iterator[Subscriber]:
    sub = Subscriber(acl_broker.port, "terril/#", username="observer", password="look")
    yield sub
    sub.close()


def make_publisher(port: int, password: str = "s3cret-mairie", **kw: object) -> Publisher:
    options = PublisherOptions(
        host="127.0.0.1", port=port, site="mairie", username="mairie", password=password, **kw  # type: ignore[arg-type]
    )
    return Publisher(options, info=lambda: {"v": 1, "site": "mairie", "devices": []})


def test_password_never_in_repr() -> None:
    pub = make_publisher(1, password="hunter2-very-secret")
    assert "hunter2" not in repr(pub) and "hunter2" not in repr(pub.options)


def test_own_topic_is_acknowledged_and_received_with_status_and_info(
    acl_broker: MosquittoBroker, observer: Subscriber
) -> None:
    pub = make_publisher(acl_broker.port)
    pub.start()
    try:
        assert pub.wait_connected(10)
        result = pub.publish("terril/mairie/readings", b'{"v":1}').wait(10)
        assert result is not None and result.delivered and result.reason_code == 0
        msgs = observer.wait_for(
            lambda m: {x.topic for x in m} >= {"terril/mairie/readings", "terril/mairie/status", "terril/mairie/info"}
        )
        status = [m for m in msgs if m.topic == "terril/mairie/status"]
        assert status[-1].payload == b"online"
        info = [m for m in msgs if m.topic == "terril/mairie/info"]
        assert json.loads(info[-1].payload)["site"] == "mairie"
        deadline = time.monotonic() + 10  # the PUBACKs may trail the deliveries to the observer
        while pub.published < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pub.published == 3 and pub.refused == 0 and pub.not_delivered == 0
    finally:
        pub.stop()
    observer.wait_for(lambda m: any(x.topic == "terril/mairie/status" and x.payload == b"offline" for x in m))


def test_other_sites_topic_is_refused_with_0x87_logged_and_counted(
    acl_broker: MosquittoBroker, observer: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    pub = make_publisher(acl_broker.port)
    pub.start()
    try:
        assert pub.wait_connected(10)
        with caplog.at_level(logging.ERROR, logger="agent.edge.publisher"):
            results = [pub.publish("terril/ecole/readings", b"{}").wait(10) for _ in range(3)]
        assert all(r is not None and not r.delivered and r.reason_code == 0x87 for r in results)
        assert pub.refused == 3
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, "one log line per change, not one per refused message"
        assert "terril/ecole/readings" in errors[0] and "0x87" in errors[0] and "authori" in errors[0].lower()
        ok = pub.publish("terril/mairie/readings", b"{}").wait(10)
        assert ok is not None and ok.delivered
        observer.wait_for(lambda m: any(x.topic == "terril/mairie/readings" for x in m))
        assert not any(m.topic.startswith("terril/ecole") for m in observer.snapshot())
    finally:
        pub.stop()


def test_wrong_password_is_logged_as_a_refusal_with_a_hint(
    acl_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    pub = make_publisher(acl_broker.port, password="wrong-password-xyz", reconnect_max_s=1)
    with caplog.at_level(logging.WARNING, logger="agent.edge.publisher"):
        pub.start()
        try:
            assert not pub.wait_connected(3)
        finally:
            pub.stop()
    lines = [r.getMessage() for r in caplog.records]
    refusals = [line for line in lines if "broker refused" in line]
    assert len(refusals) == 1, lines  # retried several times, logged once
    assert "check username/password" in refusals[0]
    assert not any("wrong-password-xyz" in line for line in lines)
    result = pub.publish("terril/mairie/readings", b"{}").wait(1)
    assert result is not None and not result.delivered and result.reason_code is None


def test_broker_down_is_logged_once_then_connects_when_it_comes_up(
    mosquitto_factory: Callable[..., MosquittoBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(start=False)
    pub = Publisher(PublisherOptions(host="127.0.0.1", port=broker.port, site="mairie", reconnect_max_s=1))
    with caplog.at_level(logging.INFO, logger="agent.edge.publisher"):
        pub.start()
        try:
            assert not pub.wait_connected(2.5)
            broker.start()
            assert pub.wait_connected(10)
        finally:
            pub.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("connection refused" in line for line in lines) == 1, lines
    assert any(line.endswith("connected") for line in lines)


def test_messages_in_flight_when_the_broker_dies_are_reported_not_delivered(mosquitto: MosquittoBroker) -> None:
    pub = Publisher(PublisherOptions(host="127.0.0.1", port=mosquitto.port, site="mairie", reconnect_max_s=1))
    pub.start()
    try:
        assert pub.wait_connected(10)
        assert mosquitto.proc is not None
        deadline = time.monotonic() + 10
        while pub.published < 1 and time.monotonic() < deadline:  # the retained "online" is acknowledged
            time.sleep(0.01)
        os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # frozen broker: no PUBACK can come back
        handles = [pub.publish("terril/mairie/readings", b"x" * 1000) for _ in range(50)]
        assert pub.inflight == 50
        mosquitto.kill()
        results = [h.wait(15) for h in handles]
        assert all(r is not None for r in results), "every publish completes, none hangs"
        assert all(r is not None and not r.delivered and r.reason_code is None for r in results)
        assert pub.not_delivered == 50 and pub.published == 1  # only the retained "online"
        assert pub.inflight == 0
    finally:
        pub.stop()


def test_tls_with_the_right_ca_connects(mosquitto_factory: Callable[..., MosquittoBroker]) -> None:
    broker = mosquitto_factory(tls=True)
    pub = Publisher(PublisherOptions(host="127.0.0.1", port=broker.port, site="mairie", tls_ca=str(broker.ca_path)))
    pub.start()
    try:
        assert pub.wait_connected(10)
        result = pub.publish("terril/mairie/readings", b"{}").wait(10)
        assert result is not None and result.delivered
    finally:
        pub.stop()


# paho-mqtt 2.2 does not close the socket when the TLS handshake fails
# (client.py, _ssl_wrap_socket: do_handshake() raises, ssl_sock is left to the GC),
# so Python warns "unclosed SSLSocket" from paho's thread. The GC closes it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_tls_with_a_wrong_ca_is_logged_clearly_once(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(tls=True)
    other_ca = make_test_ca(tmp_path, "other-ca")
    pub = Publisher(PublisherOptions(host="127.0.0.1", port=broker.port, site="mairie", tls_ca=str(other_ca),
                                     reconnect_max_s=1))
    with caplog.at_level(logging.WARNING, logger="agent.edge.publisher"):
        pub.start()
        try:
            assert not pub.wait_connected(2.5)
        finally:
            pub.stop()
    lines = [r.getMessage() for r in caplog.records]
    tls_lines = [line for line in lines if "TLS certificate verification failed" in line]
    assert len(tls_lines) == 1, lines
    assert "tls.ca" in tls_lines[0]
