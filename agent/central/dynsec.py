"""Mosquitto's dynamic-security plugin: who may publish, subscribe and receive what.

Why the plugin and not an ``acl_file``: while an ``acl_file`` is loaded,
Mosquitto 2.0 grants every SUBSCRIBE (it filters only what it delivers), so a
site could subscribe to ``$share/terril-ingest/terril/+/readings``, take its turn
of every site's messages from the shared group and have them dropped on the
read ACL — silently destroying other sites' readings. The plugin checks the
whole subscription filter (``$share/<group>/…`` included) and refuses it.

It has no ``%u`` pattern, so every site gets its own role (created by
``terril broker add-site``), and every account is bound to its MQTT client id:
a site cannot connect under the ingest's client id and knock it off.

This module holds the roles as data (pure functions, tested against a real
broker), the plugin's initial JSON file, and a small client that sends
commands to ``$CONTROL/dynamic-security/v1`` as the plugin's admin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.schema import DEADLETTER_SUBTOPIC, INGEST_SUBTOPIC, TOPIC_ROOT, Topics, ingest_status_filter

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ADMIN_USER = "terril-admin"
ADMIN_ROLE = "terril-admin"
INGEST_ROLE = "terril-ingest"
INGEST_USER = "ingest"
DEFAULT_GROUP = "terril-ingest"
PBKDF2_ITERATIONS = 101
"""What ``mosquitto_ctrl`` uses. Passwords are 192 random bits, so the count does
not protect them; a low count keeps each CONNECT cheap."""
SALT_BYTES = 12

DEFAULT_ACL_ACCESS: dict[str, bool] = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}
"""Deny by default: a role lists everything its clients may do. (The plugin's own
default lets every client receive anything it managed to subscribe to.)"""


@dataclass(frozen=True)
class Acl:
    """One line of a role: ``acltype`` is publishClientSend, publishClientReceive,
    subscribePattern or unsubscribePattern; a higher ``priority`` is checked first."""

    acltype: str
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow, "priority": self.priority}


def _read(topic: str) -> list[Acl]:
    return [Acl("subscribePattern", topic), Acl("publishClientReceive", topic)]


def site_role_name(slug: str) -> str:
    return f"terril-site-{slug}"


def site_client_id(slug: str) -> str:
    """The client id a site's agent uses unless its config sets one (``broker.client_id``)."""
    return f"terril-{slug}"


def ack_topic(slug: str, root: str = TOPIC_ROOT) -> str:
    return Topics(slug, root).ack


def site_acls(slug: str, root: str = TOPIC_ROOT) -> list[Acl]:
    """A site publishes its own topics but never its ack, and reads only its ack
    and the ingests' status: it can neither write, read nor take another site's messages."""
    return [
        Acl("publishClientSend", ack_topic(slug, root), allow=False, priority=10),
        Acl("publishClientSend", f"{root}/{slug}/#"),
        *_read(ack_topic(slug, root)),
        *_read(ingest_status_filter(root)),
    ]


def ingest_acls(root: str = TOPIC_ROOT, group: str = DEFAULT_GROUP) -> list[Acl]:
    """The ingest reads every site through its shared subscription only, and writes
    dead letters, its own health and status, and each site's ack."""
    return [
        Acl("subscribePattern", f"$share/{group}/{root}/#"),
        Acl("publishClientReceive", f"{root}/#"),
        Acl("publishClientSend", f"{root}/{DEADLETTER_SUBTOPIC}"),
        Acl("publishClientSend", f"{root}/{INGEST_SUBTOPIC}/#"),
        Acl("publishClientSend", f"{root}/+/ack"),
    ]


def admin_acls() -> list[Acl]:
    """The admin manages the plugin and nothing else: it reads no site's data."""
    return [Acl("publishClientSend", f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"), *_read(RESPONSE_TOPIC)]


def hash_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """The plugin's stored form: base64 PBKDF2-SHA512 of the password over the raw salt."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": iterations}


def role_json(name: str, acls: list[Acl], text: str) -> dict[str, Any]:
    return {"rolename": name, "textname": text, "acls": [a.as_json() for a in acls]}


def initial_config(admin_password: str, root: str = TOPIC_ROOT, group: str = DEFAULT_GROUP) -> dict[str, Any]:
    """The plugin's file before Mosquitto first starts: the admin account, the admin
    and ingest roles, deny-by-default. Sites and ingest accounts are added online."""
    admin = {"username": ADMIN_USER, "textname": "terril broker admin",
             **hash_password(admin_password), "roles": [{"rolename": ADMIN_ROLE}]}
    return {
        "clients": [admin],
        "groups": [],
        "roles": [
            role_json(ADMIN_ROLE, admin_acls(), "manages accounts (terril broker)"),
            role_json(INGEST_ROLE, ingest_acls(root, group), "central ingest"),
        ],
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
    }


def create_site_commands(slug: str, password: str, root: str = TOPIC_ROOT,
                         client_id: str | None = None) -> list[dict[str, Any]]:
    """createRole then createClient for a site: account = slug, bound to its client id."""
    role = site_role_name(slug)
    return [
        {"command": "createRole", **role_json(role, site_acls(slug, root), f"site {slug}")},
        {"command": "createClient", "username": slug, "password": password,
         "clientid": client_id or site_client_id(slug), "textname": f"site {slug}",
         "roles": [{"rolename": role}]},
    ]


def create_ingest_commands(username: str, password: str, client_id: str) -> list[dict[str, Any]]:
    return [{"command": "createClient", "username": username, "password": password, "clientid": client_id,
             "textname": "central ingest", "roles": [{"rolename": INGEST_ROLE}]}]


def list_clients_command() -> dict[str, Any]:
    """Every account with its bound client id (``verbose``); the plugin lists all by default."""
    return {"command": "listClients", "verbose": True}


def client_id_holder(list_response: dict[str, Any], client_id: str) -> str | None:
    """The account already bound to *client_id* in a ``listClients`` response, or None.

    Two accounts bound to one client id take each other's session: MQTT lets the
    newer connection disconnect the older one. A site whose slug is
    ``ingest-<host>`` would get the ingest's default client id and knock it off.
    """
    for client in list_response.get("data", {}).get("clients", []):
        if client.get("clientid") == client_id:
            return str(client.get("username"))
    return None


# --------------------------------------------------------------------------- admin client


class DynsecError(Exception):
    """The broker refused a command or could not be reached; the message says which."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str = "127.0.0.1"
    port: int = 1883
    ca: str | None = None


def run_commands(address: BrokerAddress, username: str, password: str,
                 commands: list[dict[str, Any]], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Send *commands* as one request; return the plugin's responses, one per command.
    A response with an ``error`` key is a refused command (the caller decides)."""
    done = threading.Event()
    state: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"terril-admin-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    if address.ca is not None:
        client.tls_set(ca_certs=address.ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        if rc.is_failure:
            state["error"] = f"the broker refused the admin login ({rc}): check the admin password file"
            done.set()
            return
        c.subscribe(RESPONSE_TOPIC, qos=1)

    def on_subscribe(c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: object) -> None:
        if any(rc.is_failure for rc in rcs):
            state["error"] = f"the broker refused {RESPONSE_TOPIC} ({rcs[0]}): is the dynamic-security plugin loaded?"
            done.set()
            return
        c.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        state["responses"] = json.loads(msg.payload).get("responses", [])
        done.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise DynsecError(f"cannot reach the broker at {address.host}:{address.port}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise DynsecError(f"no answer from the dynamic-security plugin at {address.host}:{address.port} "
                              f"within {timeout:g} s (is it loaded? see config/mosquitto/README.md)")
    finally:
        client.disconnect()
        client.loop_stop()
    if "error" in state:
        raise DynsecError(state["error"])
    responses: list[dict[str, Any]] = state["responses"]
    return responses
