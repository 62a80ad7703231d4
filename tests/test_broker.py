"""`terril broker add-site`: the generated password line works in a real Mosquitto with the shipped ACL."""

from __future__ import annotations

import re
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.central.broker import check_password_line, generate_password, password_file_line
from tests.fixtures.mosquitto import MosquittoBroker, mosquitto_passwd_binary

ROOT = Path(__file__).resolve().parents[1]
TERRIL = ROOT / ".venv" / "bin" / "terril"
SHIPPED_ACL = (ROOT / "config" / "mosquitto" / "acl").read_text()
LINE_RE = re.compile(r"^(?P<user>[a-z0-9][a-z0-9_-]*):\$7\$101\$(?P<salt>[A-Za-z0-9+/=]{16})\$(?P<hash>[A-Za-z0-9+/=]{88})$")
NOT_AUTHORIZED = 0x87
SUCCESS = {0x00, 0x10}  # success, or success with "no matching subscribers"


def add_site(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TERRIL), "broker", "add-site", *args], capture_output=True, text=True, timeout=60, check=False)


class Publisher:
    """An MQTT 5 client that reports the CONNACK and each PUBACK reason code."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: object) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: object) -> None:
        with self._cond:
            self.pubacks[mid] = rc
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), "no answer from the broker"

    def connected(self) -> ReasonCode:
        self.wait(lambda: self.connack is not None)
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str) -> int:
        info = self.client.publish(topic, b'{"v":1}', qos=1)
        self.wait(lambda: info.mid in self.pubacks)
        return int(self.pubacks[info.mid].value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_line_has_mosquitto_format_and_checks() -> None:
    password = generate_password()
    assert len(password) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", password)
    line = password_file_line("mairie", password)
    assert LINE_RE.fullmatch(line), line
    assert check_password_line(line, password)
    assert not check_password_line(line, password + "x")
    assert password_file_line("mairie", password) != line  # fresh salt each time
    with pytest.raises(ValueError):
        password_file_line("a:b", password)


def test_same_algorithm_as_mosquitto_passwd(tmp_path: Path) -> None:
    tool = mosquitto_passwd_binary()
    if tool is None:
        pytest.skip("mosquitto_passwd not installed")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    subprocess.run([tool, "-b", str(passwd), "mairie", "correct horse"], check=True, capture_output=True)
    theirs = passwd.read_text().strip()
    assert LINE_RE.fullmatch(theirs), theirs
    assert check_password_line(theirs, "correct horse") and not check_password_line(theirs, "wrong")
    salt = LINE_RE.fullmatch(theirs)["salt"]  # type: ignore[index]
    import base64

    assert password_file_line("mairie", "correct horse", salt=base64.b64decode(salt)) == theirs


def test_cli_prints_line_password_and_agent_snippet() -> None:
    result = add_site("mairie", "--host", "mqtt.ville.fr")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    line = next(ln for ln in lines if ln.startswith("mairie:$7$"))
    password = lines[lines.index(next(ln for ln in lines if ln.startswith("# 2."))) + 1]
    assert check_password_line(line, password)
    assert "broker:\n  host: mqtt.ville.fr\n  port: 8883\n  username: mairie\n  password_file: /etc/terril/mqtt.pass" in result.stdout


def test_cli_line_only_mode_keeps_stdout_appendable(tmp_path: Path) -> None:
    result = add_site("ecole", "--password-file-line-only", "--password-out", str(tmp_path / "mqtt.pass"))
    assert result.returncode == 0, result.stderr
    assert LINE_RE.fullmatch(result.stdout.strip()) and result.stdout.count("\n") == 1
    password = (tmp_path / "mqtt.pass").read_text().strip()
    assert (tmp_path / "mqtt.pass").stat().st_mode & 0o777 == 0o600
    assert check_password_line(result.stdout, password)
    assert password not in result.stdout + result.stderr


@pytest.mark.parametrize("slug", ["Mairie", "ingest", "a/b", "_deadletter"])
def test_cli_refuses_bad_or_reserved_slugs(slug: str) -> None:
    result = add_site(slug)
    assert result.returncode == 2 and result.stdout == "" and slug in result.stderr


def test_generated_account_publishes_only_under_its_own_topics(tmp_path: Path) -> None:
    site_password, ingest_password = generate_password(), generate_password()
    broker = MosquittoBroker(tmp_path, users={"placeholder": "unused"}, acl=SHIPPED_ACL)
    (broker.workdir / "passwd").write_text(
        password_file_line("mairie", site_password) + "\n" + password_file_line("ingest", ingest_password) + "\n"
    )
    broker.start()
    clients: list[Publisher] = []
    try:
        site = Publisher(broker.port, "mairie", site_password)
        clients.append(site)
        assert not site.connected().is_failure
        assert site.publish("terril/mairie/readings") in SUCCESS
        assert site.publish("terril/mairie/status") in SUCCESS
        assert site.publish("terril/ecole/readings") == NOT_AUTHORIZED
        assert site.publish("terril/_deadletter") == NOT_AUTHORIZED
        assert site.publish("terril/mairie/ack") == NOT_AUTHORIZED  # only the ingest acknowledges
        assert site.publish("terril/_ingest/ingest-1/status") == NOT_AUTHORIZED

        ingest = Publisher(broker.port, "ingest", ingest_password)
        clients.append(ingest)
        assert not ingest.connected().is_failure
        assert ingest.publish("terril/_deadletter") in SUCCESS
        assert ingest.publish("terril/mairie/ack") in SUCCESS
        assert ingest.publish("terril/_ingest/ingest-1/status") in SUCCESS
        assert ingest.publish("terril/mairie/readings") == NOT_AUTHORIZED

        intruder = Publisher(broker.port, "mairie", "not-the-password")
        clients.append(intruder)
        assert intruder.connected().is_failure
    finally:
        for client in clients:
            client.close()
        broker.stop()
