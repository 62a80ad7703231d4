"""The shipped central broker on Debian's layout: conf.d next to Debian's main file,
``terril broker certs/init/add-ingest/add-site`` as the README runs them, and the
rights they give, checked on a real Mosquitto that dropped root to user mosquitto.

The attack of issue 13 item 2: a site subscribed to the ingest's shared
subscription took its turn of every site's readings and Mosquitto dropped them
on the read ACL. Here the subscription is refused and every reading arrives.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.central import dynsec
from tests.fixtures.debian_broker import DebianBroker

NOT_AUTHORIZED = 0x87
INGEST_ID = "terril-ingest-central1"
GROUP = "$share/terril-ingest"


class Probe:
    """An MQTT 5 client that records CONNACK, SUBACK and PUBACK codes, messages and disconnects."""

    def __init__(self, broker: DebianBroker, username: str | None, password: str | None, client_id: str,
                 tls: bool = True) -> None:
        self.connack: ReasonCode | None = None
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:  # as a Pi: TLS, checked against the town's CA, broker reached by name
            self.client.tls_set(ca_certs=str(broker.ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("localhost" if tls else "127.0.0.1", broker.tls_port if tls else broker.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_subscribe(self, c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: object) -> None:
        with self._cond:
            self.subacks[mid] = [int(rc.value) for rc in rcs]
            self._cond.notify_all()

    def _on_publish(self, c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        with self._cond:
            self.pubacks[mid] = int(rc.value)
            self._cond.notify_all()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def _on_disconnect(self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), "no answer from the broker"

    def connected(self) -> bool:
        self.wait(lambda: self.connack is not None)
        assert self.connack is not None
        return not self.connack.is_failure

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        self.wait(lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes = b'{"v":1}', retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def topics(self) -> list[str]:
        with self._cond:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Central:
    """The broker and the passwords the README's commands produced."""

    def __init__(self, broker: DebianBroker) -> None:
        self.broker = broker
        self.passwords: dict[str, str] = {}
        self.probes: list[Probe] = []

    def add_site(self, slug: str) -> str:
        out = self.broker.root / f"{slug}.pass"
        result = self.broker.terril("broker", "add-site", slug, "--host", "localhost", "--password-out", str(out),
                                    *self.broker.admin_options())
        assert result.returncode == 0, result.stderr + self.broker.log()
        assert out.stat().st_mode & 0o777 == 0o600  # in transit to the Pi: root only
        assert "root:terril" in result.stdout and "0640" in result.stdout and "0600" not in result.stdout
        self.passwords[slug] = out.read_text().strip()
        return result.stdout

    def connect(self, username: str, client_id: str, tls: bool = True, password: str | None = None) -> Probe:
        probe = Probe(self.broker, username, password or self.passwords[username], client_id, tls)
        self.probes.append(probe)
        return probe

    def site(self, slug: str) -> Probe:
        probe = self.connect(slug, dynsec.site_client_id(slug))
        assert probe.connected(), self.broker.log()
        return probe

    def ingest(self) -> Probe:
        probe = self.connect("ingest", INGEST_ID, tls=False)
        assert probe.connected(), self.broker.log()
        return probe

    def close_probes(self) -> None:
        for probe in self.probes:
            probe.close()
        self.probes.clear()


@pytest.fixture(scope="module")
def central() -> Iterator[Central]:
    broker = DebianBroker()
    try:
        ingest_pass = broker.terril_etc / "ingest.pass"
        broker.run_readme_setup({
            "certs": ["--host", "127.0.0.1", "--ca", str(broker.ca), "--ca-key", str(broker.terril_etc / "ca.key"),
                      "--out", str(broker.etc / "certs")],
            "init": ["--dynsec-file", str(broker.dynsec_file),
                     "--admin-password-file", str(broker.admin_password_file)],
            "add-ingest": ["--client-id", INGEST_ID, *broker.admin_options()],
        }, hosts={"mqtt.ville.fr": "localhost"})
        assert ingest_pass.stat().st_mode & 0o777 == 0o640
        central = Central(broker)
        central.passwords["ingest"] = ingest_pass.read_text().strip()
        for slug in ("mairie", "ecole"):
            central.add_site(slug)
        yield central
        central.close_probes()
    finally:
        broker.remove()


@pytest.fixture
def town(central: Central) -> Iterator[Central]:
    try:
        yield central
    finally:
        central.close_probes()


def test_conf_d_file_starts_next_to_debian_defaults(central: Central) -> None:
    """Issue 13 item 10: installed as conf.d/terril.conf, it starts with Debian's main file."""
    conf = (central.broker.etc / "conf.d" / "terril.conf").read_text()
    settings = {ln.split()[0] for ln in conf.splitlines() if ln.strip() and not ln.lstrip().startswith("#")}
    main = (central.broker.etc / "mosquitto.conf").read_text()
    set_by_debian = {ln.split()[0] for ln in main.splitlines() if ln.strip() and not ln.startswith("#")}
    assert not (settings & set_by_debian) - {"include_dir"}, "terril.conf repeats a setting of Debian's main file"
    assert {"acl_file", "password_file"}.isdisjoint(settings)  # an acl_file makes every SUBSCRIBE granted
    assert central.broker.proc is not None and central.broker.proc.poll() is None
    assert "Error" not in central.broker.log()


def test_site_publishes_only_its_own_topics_and_never_its_ack(town: Central) -> None:
    mairie = town.site("mairie")
    assert mairie.publish("terril/mairie/readings") != NOT_AUTHORIZED
    assert mairie.publish("terril/mairie/status", b"online", retain=True) != NOT_AUTHORIZED
    for topic in ("terril/ecole/readings", "terril/mairie/ack", "terril/ecole/ack", "terril/_deadletter",
                  f"terril/_ingest/{INGEST_ID}/status"):
        assert mairie.publish(topic) == NOT_AUTHORIZED, topic


def test_site_subscribes_only_to_its_ack_and_the_ingest_status(town: Central) -> None:
    mairie = town.site("mairie")
    assert mairie.subscribe("terril/mairie/ack") == 1
    assert mairie.subscribe("terril/_ingest/+/status") == 1
    for topic in (f"{GROUP}/terril/+/readings", f"{GROUP}/terril/#", "$share/other/terril/#", "terril/+/readings",
                  "terril/ecole/ack", "terril/mairie/readings", "terril/#", "#", "$SYS/#",
                  "$CONTROL/dynamic-security/v1/response"):
        assert mairie.subscribe(topic) == NOT_AUTHORIZED, topic


def test_a_site_in_the_shared_group_takes_no_readings(town: Central) -> None:
    """Issue 13 item 2: with ecole trying to join the ingest's group, all of mairie's readings arrive."""
    ingest = town.ingest()
    assert ingest.subscribe(f"{GROUP}/terril/+/readings") == 1
    ecole = town.site("ecole")
    assert ecole.subscribe(f"{GROUP}/terril/+/readings") == NOT_AUTHORIZED
    mairie = town.site("mairie")
    sent = [f'{{"n":{i}}}'.encode() for i in range(6)]
    for payload in sent:
        assert mairie.publish("terril/mairie/readings", payload) != NOT_AUTHORIZED
    ingest.wait(lambda: len(ingest.messages) >= len(sent))
    time.sleep(0.3)
    assert sorted(p for _, p in ingest.messages) == sorted(sent)
    assert ecole.messages == []


def test_ingest_writes_acks_and_status_each_site_reads_only_its_own(town: Central) -> None:
    mairie, ecole, ingest = town.site("mairie"), town.site("ecole"), town.ingest()
    for slug, probe in (("mairie", mairie), ("ecole", ecole)):
        assert probe.subscribe(f"terril/{slug}/ack") == 1
        assert probe.subscribe("terril/_ingest/+/status") == 1
    assert ingest.publish(f"terril/_ingest/{INGEST_ID}/status", b"online", retain=True) != NOT_AUTHORIZED
    assert ingest.publish("terril/mairie/ack", b'{"ids":[1]}') != NOT_AUTHORIZED
    assert ingest.publish("terril/ecole/ack", b'{"ids":[2]}') != NOT_AUTHORIZED
    assert ingest.publish("terril/_deadletter", b"{}") != NOT_AUTHORIZED
    assert ingest.publish("terril/mairie/readings") == NOT_AUTHORIZED  # it cannot forge a site's data
    mairie.wait(lambda: "terril/mairie/ack" in mairie.topics() and any("status" in t for t in mairie.topics()))
    ecole.wait(lambda: "terril/ecole/ack" in ecole.topics())
    assert "terril/ecole/ack" not in mairie.topics() and "terril/mairie/ack" not in ecole.topics()
    assert ingest.subscribe("terril/+/readings") == NOT_AUTHORIZED  # outside its group: no second copy


def test_accounts_are_bound_to_their_client_id_and_the_ingest_stays(town: Central) -> None:
    ingest = town.ingest()
    assert ingest.subscribe(f"{GROUP}/terril/+/readings") == 1
    impostor = town.connect("mairie", INGEST_ID)  # a site taking the ingest's client id
    assert not impostor.connected()
    assert not town.connect("mairie", "terril-ecole").connected()
    assert not town.connect("mairie", f"t-{uuid.uuid4().hex[:6]}").connected()
    assert not town.connect("ecole", "terril-mairie", password=town.passwords["mairie"]).connected()
    anonymous = Probe(town.broker, None, None, "terril-mairie")
    town.probes.append(anonymous)
    assert not anonymous.connected()
    time.sleep(0.5)
    assert ingest.disconnects == 0
    mairie = town.site("mairie")
    assert mairie.publish("terril/mairie/readings", b'{"after":1}') != NOT_AUTHORIZED
    ingest.wait(lambda: (("terril/mairie/readings", b'{"after":1}') in ingest.messages))
    assert ingest.disconnects == 0


def test_add_site_refuses_existing_account_bad_slug_and_wrong_admin(central: Central) -> None:
    broker = central.broker
    again = broker.terril("broker", "add-site", "mairie", *broker.admin_options())
    assert again.returncode == 1 and "mairie" in again.stderr and "exists" in again.stderr
    assert broker.terril("broker", "add-site", "ingest", *broker.admin_options()).returncode == 2
    assert broker.terril("broker", "add-site", "Mairie", *broker.admin_options()).returncode == 2
    wrong = central.broker.root / "wrong.pass"
    wrong.write_text("not-the-admin-password\n")
    refused = broker.terril("broker", "add-site", "stade", "--broker", f"127.0.0.1:{broker.port}",
                            "--admin-password-file", str(wrong))
    assert refused.returncode == 1 and "admin" in refused.stderr
    assert re.fullmatch(r"terril broker add-site: .*\n", refused.stderr), refused.stderr  # one line, no traceback
    down = broker.terril("broker", "add-site", "stade", "--broker", "127.0.0.1:1",
                         "--admin-password-file", str(broker.admin_password_file))
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_accounts_survive_a_broker_restart(central: Central) -> None:
    """The plugin's file lives in /var/lib/mosquitto, written by the broker as user mosquitto."""
    assert central.broker.dynsec_file.stat().st_uid != 0
    central.broker.stop()
    central.broker.start()
    try:
        assert central.site("mairie").publish("terril/mairie/health") != NOT_AUTHORIZED
    finally:
        central.close_probes()


def test_init_refuses_to_overwrite(tmp_path: Path, central: Central) -> None:
    result = central.broker.terril("broker", "init", "--dynsec-file", str(central.broker.dynsec_file),
                                   "--admin-password-file", str(tmp_path / "a.pass"))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert not (tmp_path / "a.pass").exists()


def test_a_site_slug_cannot_take_the_ingests_client_id(central: Central) -> None:
    """Slug ``ingest-central1`` gives the default client id ``terril-ingest-central1``, the ingest's:
    connecting with it, the site's own account would knock the ingest off. add-site refuses it."""
    slug = INGEST_ID.removeprefix("terril-")
    refused = central.broker.terril("broker", "add-site", slug, *central.broker.admin_options())
    assert refused.returncode != 0, refused.stdout
    assert "client id" in refused.stderr and INGEST_ID in refused.stderr, refused.stderr
    refused = central.broker.terril("broker", "add-site", "stade", "--client-id", INGEST_ID,
                                    *central.broker.admin_options())
    assert refused.returncode != 0 and INGEST_ID in refused.stderr, refused.stderr
    out = central.broker.root / "ingest2.pass"
    refused = central.broker.terril("broker", "add-ingest", "--username", "ingest2", "--client-id", "terril-mairie",
                                    "--password-out", str(out), *central.broker.admin_options())
    assert refused.returncode != 0 and "account mairie" in refused.stderr and not out.exists(), refused.stderr
    try:
        ingest = central.ingest()
        assert ingest.subscribe(f"{GROUP}/terril/+/readings") == 1
        time.sleep(0.5)
        assert ingest.disconnects == 0
    finally:
        central.close_probes()


def test_removing_a_site_as_the_readme_says_then_adding_it_again(central: Central) -> None:
    """config/mosquitto/README.md: ``mosquitto_ctrl -u terril-admin -P "$(cat …)" dynsec deleteClient <slug>``."""
    readme = (Path(__file__).resolve().parent.parent / "config" / "mosquitto" / "README.md").read_text()
    match = re.search(r'`(mosquitto_ctrl -u terril-admin -P\s+"\$\(cat /etc/terril/broker-admin.pass\)" '
                      r'dynsec deleteClient) mairie`', readme)
    assert match, "the README's removal command changed: update this test"
    central.add_site("stade")
    stade = central.site("stade")
    removed = subprocess.run(
        ["mosquitto_ctrl", "-u", dynsec.ADMIN_USER, "-P", central.broker.admin_password_file.read_text().strip(),
         "-h", "127.0.0.1", "-p", str(central.broker.port), "dynsec", "deleteClient", "stade"],
        capture_output=True, text=True, timeout=30, check=False)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    try:
        stade.wait(lambda: stade.disconnects > 0)  # the plugin kicks the deleted account's connection
        assert not central.connect("stade", "terril-stade").connected()
        central.add_site("stade")  # its role is still there: reused, new password
        assert central.site("stade").publish("terril/stade/health") != NOT_AUTHORIZED
    finally:
        central.close_probes()


def test_a_second_ingest_instance_as_the_readme_says_shares_the_readings(central: Central) -> None:
    """README "Several ingest instances": each account is bound to one client id, so a second
    instance needs its own account; the README gives the command, run here as written."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(r"`(terril broker add-ingest --username (\S+) --client-id (\S+) --password-out (\S+))`", readme)
    assert match, "README: no add-ingest command for a second ingest instance"
    username, client_id, password_file = match.group(2), match.group(3), Path(match.group(4))
    refused = central.connect("ingest", client_id, tls=False)  # the first account, under the second id
    assert not refused.connected()
    out = central.broker.terril_etc / password_file.name
    created = central.broker.terril("broker", "add-ingest", "--username", username, "--client-id", client_id,
                                    "--password-out", str(out), *central.broker.admin_options())
    assert created.returncode == 0, created.stderr
    try:
        first = central.ingest()
        second = central.connect(username, client_id, tls=False, password=out.read_text().strip())
        assert second.connected(), central.broker.log()
        for probe in (first, second):
            assert probe.subscribe(f"{GROUP}/terril/+/readings") == 1
        mairie = central.site("mairie")
        sent = [f'{{"n":{n}}}'.encode() for n in range(20)]
        for payload in sent:
            assert mairie.publish("terril/mairie/readings", payload) != NOT_AUTHORIZED
        got = lambda: sorted(p for probe in (first, second) for _, p in probe.messages)  # noqa: E731
        first.wait(lambda: len(got()) >= len(sent))
        assert got() == sorted(sent)  # each reading once, split between the two
        assert first.messages and second.messages and first.disconnects == second.disconnects == 0
    finally:
        central.close_probes()
