"""The ingest's MQTT 5 session: connect, subscribe to the shared group, receive, acknowledge.

A persistent session (clean start off, session expiry from the config) with
manual acknowledgement: :meth:`BrokerSession.ack` is called only once a
message's points are stored (or its dead letter confirmed). A paho message id
is only meaningful on the connection it arrived on, so each message carries
its connection generation and is acknowledged only on that same connection.

Logs: one line per state change. A connection that keeps dropping right after
each reconnect is one outage: a warning when it starts, one if it loops, one
when a connection has lasted :data:`STABLE_CONNECTION_S`.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.central.config import IngestConfig
from agent.central.ingest.acks import AckPublisher
from agent.central.ingest.batching import Inbox, Message
from agent.central.ingest.deadletters import DEFAULT_MAX_PACKET_BYTES
from agent.central.ingest.stats import IngestStats
from agent.schema import TOPIC_KINDS
from agent.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

STABLE_CONNECTION_S = 30.0
"""A broker connection that lasts this long ends an outage; drops before that belong to the same outage
(one warning, not one per reconnect)."""


def subscription_topics(root: str, group: str) -> list[str]:
    """``$share/<group>/<root>/+/<kind>`` for every topic kind of the MQTT contract."""
    return [f"$share/{group}/{root}/+/{kind}" for kind in TOPIC_KINDS]


class BrokerSession:
    """paho's client and what the ingest must know about its connection.

    paho's network thread runs the callbacks: it only offers received messages
    to *inbox* (bounded in bytes), counts, and records PUBACK reason codes.
    """

    def __init__(self, config: IngestConfig, stats: IngestStats, inbox: Inbox,
                 notifier: SystemdNotifier) -> None:
        self.config = config
        self.stats = stats
        self.client_id = config.subscription.client_id
        self._inbox = inbox
        self._notifier = notifier
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        """Set once the broker confirmed the subscriptions (tests and the demo wait for it)."""
        self.stopping = False
        self.max_packet_bytes = DEFAULT_MAX_PACKET_BYTES
        """The broker's Maximum Packet Size (CONNACK), or our default when it states none."""
        self._puback_lock = threading.Lock()
        self._puback: dict[int, ReasonCode] = {}
        """PUBACK reason code per message id of our publishes (set on paho's thread, read by the writer)."""
        self._connected_at = 0.0
        self._outage_since: float | None = None
        """Set when the broker connection dropped, cleared once a new one lasted STABLE_CONNECTION_S."""
        self._outage_drops = 0
        self.client = self._make_client()
        self.acks = AckPublisher(self.client, self.client_id, config.topic_root)
        self.acks.set_last_will()

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if cfg.broker.username is not None:
            password = cfg.broker.password.get_secret_value() if cfg.broker.password is not None else None
            client.username_pw_set(cfg.broker.username, password)
        if cfg.broker.tls is not None:
            tls = cfg.broker.tls
            client.tls_set(ca_certs=tls.ca, certfile=tls.cert, keyfile=tls.key, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(tls.insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)  # outgoing dead letters: never dropped by paho
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects by itself)."""
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's Properties is unannotated
        props.SessionExpiryInterval = cfg.subscription.session_expiry
        props.ReceiveMaximum = cfg.subscription.receive_maximum
        self.client.connect_async(cfg.broker.host, cfg.broker.port, keepalive=cfg.broker.keepalive,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping = True
        if self.connected.is_set():  # a clean stop: agents hold their resends until an ingest is back
            try:
                self.acks.announce(False).wait_for_publish(timeout=2.0)
            except (ValueError, RuntimeError):
                pass  # the connection went first: the broker publishes the last will instead
        self.client.disconnect()
        self.client.loop_stop()

    def network_thread_alive(self) -> bool:
        """paho's network thread of ``loop_start()`` runs (connected or reconnecting)."""
        # paho keeps the thread of loop_start() in a private attribute; no public accessor exists.
        mqtt_thread = getattr(self.client, "_thread", None)
        return mqtt_thread is not None and mqtt_thread.is_alive()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%s refused the connection: %s",
                      self.config.broker.host, self.config.broker.port, reason_code)
            return
        self.generation += 1
        if self.generation > 1:
            self.stats.reconnects += 1
        self._connected_at = time.monotonic()
        limit = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self.max_packet_bytes = int(limit) if limit else DEFAULT_MAX_PACKET_BYTES
        if self._outage_drops <= 1:  # first connection, or the first reconnect of an outage
            log.info("connected to broker %s:%s as %s (session %s)", self.config.broker.host,
                     self.config.broker.port, self.client_id, "resumed" if flags.session_present else "new")
        topics = subscription_topics(self.config.topic_root, self.config.subscription.group)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        self.acks.announce(True, session_present=bool(flags.session_present))
        self.connected.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_codes: list[ReasonCode], properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused the subscription(s): %s (check the ingest user's ACL)", ", ".join(refused))
            return
        if self._outage_drops <= 1:
            log.info("subscribed to %d topics as group %s", len(reason_codes), self.config.subscription.group)
        self._notifier.status(f"subscribed as {self.client_id}, group {self.config.subscription.group}")
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        if self.connected.is_set() and not self.stopping:
            self._note_connection_lost(reason_code)
        self.connected.clear()

    def _note_connection_lost(self, reason_code: ReasonCode) -> None:
        """One warning when an outage starts, one more if the broker keeps dropping us right
        after each reconnect (a loop), never one per reconnect."""
        now = time.monotonic()
        if self._outage_since is not None and now - self._connected_at >= STABLE_CONNECTION_S:
            self._outage_since, self._outage_drops = None, 0  # that connection was good: a new outage
        self._outage_drops += 1
        if self._outage_since is None:
            self._outage_since = now
            log.warning("lost the broker connection (%s); reconnecting, unacknowledged messages will be redelivered",
                        reason_code)
        elif self._outage_drops == 2:
            log.warning("the broker dropped the connection again %.0f s after reconnecting (%s); "
                        "further drops are counted, not logged, until a connection lasts %.0f s "
                        "(another client with client_id %s? a packet over the broker's limit?)",
                        now - self._connected_at, reason_code, STABLE_CONNECTION_S, self.client_id)

    def check_connection_stable(self, now: float) -> None:
        """Called by the decode loop: ends an outage once a connection has lasted long enough."""
        if (self._outage_since is not None and self.connected.is_set()
                and now - self._connected_at >= STABLE_CONNECTION_S):
            if self._outage_drops > 1:
                log.info("broker connection stable again after %d drops in %.0f s", self._outage_drops,
                         now - self._outage_since)
            self._outage_since, self._outage_drops = None, 0

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        # paho calls this before it marks the message published: the code is there when is_published().
        # At most 65 535 entries (message ids wrap); the writer pops the ids it waits for.
        with self._puback_lock:
            self._puback[mid] = reason_code

    def take_puback(self, mid: int) -> ReasonCode | None:
        """The PUBACK reason code of our publish *mid*, once (None if the broker sent none)."""
        with self._puback_lock:
            return self._puback.pop(mid, None)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._inbox.offer(Message(self.generation, message.mid, message.qos, message.topic,
                                     bytes(message.payload), int(time.time() * 1000), bool(message.retain))):
            self.stats.received += 1

    def ack(self, msg: Message) -> None:
        if msg.qos == 0:
            return
        if msg.generation != self.generation or not self.connected.is_set():
            return  # arrived on a connection that is gone: the broker redelivers it
        self.client.ack(msg.mid, msg.qos)
        self.stats.acked += 1
