"""The agent's MQTT 5 link: one paho-mqtt client, reconnecting forever, with honest delivery reports.

Why this wrapper exists. paho-mqtt keeps unacknowledged QoS 1 messages in RAM
and re-sends them by itself after a reconnect. RAM dies with the process, so
the agent's SQLite spool must stay the only source of truth. This publisher
therefore:

* publishes only while connected (a publish while offline completes at once as
  "not delivered");
* on a disconnect, reports every in-flight message as "not delivered" and
  drops paho's RAM copies (``drop_out_messages``), so nothing is re-sent behind
  the spool's back — the forwarder re-publishes those rows from the spool
  (duplicates are possible, losses are not: the ingest is idempotent);
* reports each PUBACK reason code: below 0x80 the broker has the message, from
  0x80 on it refused it (0x87 Not authorized when the ACL forbids the topic).

It also owns the site's presence: a retained ``offline`` last will on
``<root>/<site>/status``, and on every (re)connect a retained ``online`` and a
retained ``info`` document (supplied by a callable, because discovery can
change it while the agent runs).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.schema import STATUS_OFFLINE, STATUS_ONLINE, TOPIC_ROOT, Topics

log = logging.getLogger(__name__)

InfoSupplier = Callable[[], "dict[str, Any] | bytes | str | None"]
MessageHandler = Callable[[str, bytes, bool], None]
"""``handler(topic, payload, retained)`` for a message on a subscribed topic (runs in paho's thread)."""


@dataclass(frozen=True)
class PublisherOptions:
    """Everything the MQTT link needs. The password never appears in ``repr`` or in logs."""

    host: str
    site: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    """CA bundle to verify the broker; setting it (or ``tls``) turns TLS on."""
    tls_cert: str | None = None
    tls_key: str | None = None
    tls: bool = False
    """TLS with the system's CA store (when no ``tls_ca`` is given)."""
    client_id: str | None = None
    """Defaults to ``terril-agent-<site>``."""
    keepalive: int = 60
    topic_root: str = TOPIC_ROOT
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    @property
    def topics(self) -> Topics:
        return Topics(self.site, self.topic_root)


@dataclass(frozen=True)
class PublishResult:
    delivered: bool
    """True only when the broker answered with a success reason code (< 0x80)."""
    reason_code: int | None
    """The PUBACK reason code, or None when no PUBACK came (not connected, connection lost)."""
    reason: str


class PublishHandle:
    """One publish in progress. ``wait()`` blocks until the PUBACK (or its loss) is known."""

    def __init__(self, topic: str, on_done: Callable[[PublishResult], None] | None) -> None:
        self.topic = topic
        self.mid: int | None = None
        self._on_done = on_done
        self._event = threading.Event()
        self._result: PublishResult | None = None

    @property
    def result(self) -> PublishResult | None:
        return self._result

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> PublishResult | None:
        self._event.wait(timeout)
        return self._result

    def _complete(self, result: PublishResult) -> None:
        if self._event.is_set():
            return
        self._result = result
        self._event.set()
        if self._on_done is not None:
            try:
                self._on_done(result)
            except Exception:  # a faulty callback must not kill paho's network thread
                log.exception("publish completion callback failed for %s", self.topic)


_NOT_CONNECTED = PublishResult(False, None, "not connected")
_CONNECTION_LOST = PublishResult(False, None, "connection lost before PUBACK")

_REFUSAL_HINTS = {
    0x86: "check username/password",
    0x87: "check username/password and the broker ACL",
    0x85: "check client_id",
    0x8A: "the broker is shutting down or banned this client",
    0x8C: "check the broker's authentication method",
}


def _describe_connect_error(exc: BaseException | None) -> str:
    """A sentence a technician can act on, for a connection that failed before CONNACK."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message} (check tls.ca and the broker host name)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc} (check tls settings and the broker port)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve broker host name: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down or wrong port)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "connection timed out (network down?)"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return "connection failed"


class Publisher:
    """A paho-mqtt MQTT 5 client that reconnects forever and reports every PUBACK."""

    def __init__(self, options: PublisherOptions, info: InfoSupplier | None = None) -> None:
        self.options = options
        self.topics = options.topics
        self._info = info
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._inflight: dict[int, PublishHandle] = {}
        self._early: dict[int, PublishResult] = {}
        self._generation = 0
        self._connected = False
        self._connected_event = threading.Event()
        self._receive_maximum = 65535
        self._listeners: list[Callable[[bool], None]] = []
        self._last_state = ""
        self._refusing_topics: set[str] = set()
        self._started = False
        self._stopping = False
        self._subscriptions: list[tuple[str, MessageHandler]] = []
        self._ready_listeners: list[Callable[[], None]] = []
        self._last_subscribe_mid: int | None = None
        self._subscribe_mids: dict[int, str] = {}
        self.refused_subscriptions: set[str] = set()
        """Topics the broker refused to subscribe us to on the last connection (its ACL)."""
        # counters, read by the agent's health report
        self.published = 0
        self.refused = 0
        self.not_delivered = 0
        self.connects = 0

        client_id = options.client_id or f"terril-agent-{options.site}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if options.username is not None:
            self._client.username_pw_set(options.username, options.password)
        if options.uses_tls:
            self._client.tls_set(ca_certs=options.tls_ca, certfile=options.tls_cert, keyfile=options.tls_key)
        self._client.will_set(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
        self._client.reconnect_delay_set(options.reconnect_min_s, options.reconnect_max_s)
        # The forwarder bounds what is in flight; paho must not hold messages back in its own queue.
        self._client.max_inflight_messages_set(65535)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __repr__(self) -> str:
        return f"Publisher({self.options!r})"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect in the background; reconnects forever with exponential backoff."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(
            self.options.host, self.options.port, keepalive=self.options.keepalive, clean_start=True
        )
        self._client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish a retained ``offline`` (best effort), disconnect and stop the network thread."""
        if not self._started:
            return
        self._stopping = True
        if self.connected:
            self.publish(self.topics.status, STATUS_OFFLINE.encode(), qos=1, retain=True).wait(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False
        self._stopping = False
        self._fail_inflight()

    def add_connection_listener(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(connected)`` after every connect and disconnect (from paho's thread)."""
        self._listeners.append(listener)

    def add_subscription(self, topic: str, handler: MessageHandler) -> None:
        """Subscribe to *topic* (QoS 1) on every connection, in the order added; call before ``start``."""
        self._subscriptions.append((topic, handler))

    def add_ready_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` once per connection when the broker answered the last subscription.

        Each subscription is its own SUBSCRIBE packet and the broker handles them in order, so by
        then every retained message of the earlier subscriptions has been received."""
        self._ready_listeners.append(listener)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def network_thread_alive(self) -> bool:
        """Whether paho's network thread (``loop_start``) runs: without it nothing is sent or acknowledged,
        and the link never reconnects. (paho keeps the thread in ``_thread``; there is no public accessor.)"""
        thread = getattr(self._client, "_thread", None)
        return isinstance(thread, threading.Thread) and thread.is_alive()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_event.wait(timeout)

    @property
    def receive_maximum(self) -> int:
        """How many QoS 1 messages the broker accepts in flight (MQTT 5 CONNACK Receive Maximum)."""
        return self._receive_maximum

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        on_done: Callable[[PublishResult], None] | None = None,
    ) -> PublishHandle:
        """Send one message. ``on_done(result)`` runs once, when its fate is known."""
        handle = PublishHandle(topic, on_done)
        with self._lock:
            generation, connected = self._generation, self._connected
        if not connected:
            self._count(_NOT_CONNECTED, topic)
            handle._complete(_NOT_CONNECTED)
            return handle
        # Never hold self._lock while calling into paho: paho calls on_publish while
        # holding its own message lock, and on_publish takes self._lock.
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        handle.mid = info.mid
        early: PublishResult | None = None
        failed = False
        with self._lock:
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or generation != self._generation:
                failed = True  # the link dropped meanwhile: paho's copy is dropped at the next connect
            else:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._inflight[info.mid] = handle
        if failed:
            self._count(_CONNECTION_LOST, topic)
            handle._complete(_CONNECTION_LOST)
        elif early is not None:
            self._count(early, topic)
            handle._complete(early)
        return handle

    def publish_info(self) -> None:
        """Publish the retained info document now (e.g. after discovery changed it)."""
        payload = self._info_payload()
        if payload is not None:
            self.publish(self.topics.info, payload, qos=1, retain=True)

    def _info_payload(self) -> bytes | None:
        if self._info is None:
            return None
        try:
            info = self._info()
        except Exception:
            log.exception("could not build the info document; not publishing it this time")
            return None
        if info is None:
            return None
        if isinstance(info, bytes):
            return info
        if isinstance(info, str):
            return info.encode()
        return json.dumps(info, separators=(",", ":"), ensure_ascii=False).encode()

    def _count(self, result: PublishResult, topic: str) -> None:
        with self._count_lock:
            self._count_locked(result, topic)

    def _count_locked(self, result: PublishResult, topic: str) -> None:
        if result.delivered:
            self.published += 1
            if topic in self._refusing_topics:
                self._refusing_topics.discard(topic)
                log.info("broker accepts publishes on %s again", topic)
        elif result.reason_code is not None:
            self.refused += 1
            if topic not in self._refusing_topics:  # one line per change, not one per message
                self._refusing_topics.add(topic)
                log.error(
                    "broker refused publish on %s: %s (0x%02X)%s; the data stays in the spool",
                    topic, result.reason, result.reason_code,
                    f" — {_REFUSAL_HINTS[result.reason_code]}" if result.reason_code in _REFUSAL_HINTS else "",
                )
        else:
            self.not_delivered += 1

    # ---------------------------------------------------------- paho callbacks

    def _set_state(self, state: str, level: int) -> None:
        if state != self._last_state:
            self._last_state = state
            log.log(level, "MQTT %s:%d: %s", self.options.host, self.options.port, state)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, rc: ReasonCode, props: Properties | None
    ) -> None:
        if rc.is_failure:
            hint = _REFUSAL_HINTS.get(rc.value)
            self._set_state(
                f"broker refused: {str(rc).lower()}" + (f" ({hint})" if hint else ""), logging.ERROR
            )
            return
        # Messages a racing publish() left in paho's queue were already reported as
        # not delivered: drop them so paho does not re-send them behind the spool's back.
        client.drop_out_messages()
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        with self._lock:
            self._generation += 1
            self._connected = True
            self._early.clear()
            self._receive_maximum = int(receive_max) if receive_max else 65535
        self.connects += 1
        self._connected_event.set()
        self._set_state("connected", logging.INFO)
        self.publish(self.topics.status, STATUS_ONLINE.encode(), qos=1, retain=True)
        self.publish_info()
        self.refused_subscriptions = set()
        for topic, _ in self._subscriptions:
            _, self._last_subscribe_mid = client.subscribe(topic, qos=1)
            if self._last_subscribe_mid is not None:
                self._subscribe_mids[self._last_subscribe_mid] = topic
        self._notify(True)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: Properties | None
    ) -> None:
        topic = self._subscribe_mids.pop(mid, "?")
        refused = [str(rc) for rc in codes if rc.is_failure]
        if refused:
            self.refused_subscriptions.add(topic)
            log.warning("broker refused the subscription to %s (%s): check the site's rights on the broker",
                        topic, ", ".join(refused))
        if mid == self._last_subscribe_mid:
            for listener in self._ready_listeners:
                try:
                    listener()
                except Exception:
                    log.exception("subscription listener failed")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        for topic, handler in self._subscriptions:
            if mqtt.topic_matches_sub(topic, message.topic):
                try:
                    handler(message.topic, bytes(message.payload), bool(message.retain))
                except Exception:  # a faulty handler must not kill paho's network thread
                    log.exception("handler for %s failed", message.topic)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho calls this inside its `except OSError` block: the exception is still current.
        self._set_state(_describe_connect_error(sys.exc_info()[1]), logging.WARNING)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        was_connected = self._connected
        client.drop_out_messages()
        self._fail_inflight()
        if was_connected:
            if self._stopping:
                self._set_state("disconnected (agent stopping)", logging.INFO)
            else:
                self._set_state(f"disconnected ({rc})", logging.WARNING)
            self._notify(False)

    def _fail_inflight(self) -> None:
        with self._lock:
            self._generation += 1
            self._connected = False
            self._connected_event.clear()
            lost = list(self._inflight.values())
            self._inflight.clear()
            self._early.clear()
        for handle in lost:
            self._count(_CONNECTION_LOST, handle.topic)
            handle._complete(_CONNECTION_LOST)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties | None
    ) -> None:
        result = PublishResult(not rc.is_failure, int(rc.value), str(rc))
        with self._lock:
            handle = self._inflight.pop(mid, None)
            if handle is None:
                self._early[mid] = result  # PUBACK overtook publish() returning
                return
        self._count(result, handle.topic)
        handle._complete(result)

    def _notify(self, connected: bool) -> None:
        for listener in self._listeners:
            try:
                listener(connected)
            except Exception:
                log.exception("connection listener failed")
