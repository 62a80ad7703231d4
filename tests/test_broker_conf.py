"""The shipped production mosquitto.conf runs as is (paths moved into a temp dir): TLS, passwords, ACL.

Only file locations, the port and the log destination are rewritten, and the
test fails if the config grows a path it does not know how to move.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.central.broker import generate_password, password_file_line
from tests.fixtures.mosquitto import MosquittoBroker

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "config" / "mosquitto" / "mosquitto.conf"
ACL = ROOT / "config" / "mosquitto" / "acl"


def make_certificates(folder: Path) -> None:
    """A throw-away CA and a server certificate for localhost / 127.0.0.1."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=terril test CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem")


def render(conf: str, workdir: Path, port: int) -> str:
    moves = {
        "/var/lib/mosquitto/": f"{workdir}/",
        "/etc/mosquitto/certs/": f"{workdir}/",
        "/etc/mosquitto/terril.passwd": f"{workdir}/passwd",
        "/etc/mosquitto/terril.acl": f"{workdir}/acl",
        "listener 8883\n": f"listener {port} 127.0.0.1\n",
        "log_dest syslog": "log_dest stderr",
    }
    for old, new in moves.items():
        assert old in conf, f"{old!r} no longer in mosquitto.conf: update this test"
        conf = conf.replace(old, new)
    leftover = [ln for ln in conf.splitlines() if ("/etc/" in ln or "/var/" in ln) and not ln.lstrip().startswith("#")]
    assert not leftover, leftover
    return ("user root\n" if os.geteuid() == 0 else "") + conf


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="openssl not installed")
def test_production_config_serves_tls_with_passwords_and_acl(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path)
    make_certificates(broker.workdir)
    password = generate_password()
    (broker.workdir / "passwd").write_text(password_file_line("mairie", password) + "\n")
    (broker.workdir / "acl").write_text(ACL.read_text())
    broker.config_path.write_text(render(CONF.read_text(), broker.workdir, broker.port))
    broker.start()

    acks: dict[int, ReasonCode] = {}
    connacks: list[ReasonCode] = []
    cond = threading.Condition()

    def on_connect(c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        with cond:
            connacks.append(rc)
            cond.notify_all()

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        with cond:
            acks[mid] = rc
            cond.notify_all()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.workdir / "ca.pem"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set("mairie", password)
    client.on_connect, client.on_publish = on_connect, on_publish
    try:
        client.connect("localhost", broker.port, keepalive=30)
        client.loop_start()
        with cond:
            assert cond.wait_for(lambda: connacks, 10), broker.log()
        assert not connacks[0].is_failure, broker.log()
        own = client.publish("terril/mairie/readings", b"{}", qos=1).mid
        other = client.publish("terril/ecole/readings", b"{}", qos=1).mid
        with cond:
            assert cond.wait_for(lambda: own in acks and other in acks, 10)
        assert not acks[own].is_failure
        assert acks[other].value == 0x87
    finally:
        client.disconnect()
        client.loop_stop()
        broker.stop()
    assert broker.proc is not None and broker.proc.returncode == 0, broker.log()


def test_queue_is_sized_for_a_day_of_ingest_outage() -> None:
    settings = dict(
        line.split(None, 1) for line in CONF.read_text().splitlines() if line.strip() and not line.startswith("#")
    )
    assert int(settings["max_queued_messages"]) >= 50 * 4 * 8640
    assert settings["persistence"] == "true" and settings["allow_anonymous"] == "false"
    acl = ACL.read_text()
    assert "pattern write terril/%u/readings" in acl and "pattern read terril/%u/ack" in acl
