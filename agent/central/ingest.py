"""The central ingest: MQTT 5 messages in, InfluxDB points out, nothing lost.

Delivery (DESIGN.md, "Delivery guarantees"):

* persistent MQTT 5 session (clean start off, session expiry from the config)
  and manual acknowledgement: a message is acknowledged only once the
  InfluxDB write holding its points succeeded, or once its dead letter was
  acknowledged by the broker. Killed at any moment, the ingest loses nothing:
  the broker redelivers what was not acknowledged, and a rewritten point
  overwrites itself (same series, same timestamp).
* InfluxDB down, slow or answering 5xx: the batch is retried with capped
  exponential back-off and no message is acknowledged meanwhile; the broker
  holds the rest (it sends at most ``receive_maximum`` unacknowledged
  messages, the MQTT 5 flow control).
* a message that cannot be stored (invalid, or a point InfluxDB refuses) is
  republished on ``<root>/_deadletter`` with the reason, counted, and then
  acknowledged: garbage never blocks valid data. A dead letter never exceeds
  the broker's Maximum Packet Size (from CONNACK; 1 MB when unstated): past
  it the broker would drop the connection and the original would come back
  for ever, so a huge original is carried as its length, sha256 and first
  64 KiB. A dead letter the broker refuses (PUBACK reason code >= 0x80, an ACL
  without write on the dead-letter topic) leaves its original unacknowledged.

Status (``<root>/<site>/status``, ``online``/``offline``, retained) carries no
time of its own (the last will cannot), so ``agent.up`` is stamped with the
receive time, and only **non-retained** status messages are written: a live
birth or last will reaches a subscriber already subscribed without the retain
flag, while the retained copy the broker re-sends on every (re)subscribe — each
ingest restart, each reconnect — would write an ``up`` row at a time when
nothing happened. Retained copies are acknowledged and counted, not written.

Threads: paho's network thread only queues received messages; the calling
thread validates and batches; a writer thread writes and acknowledges, so the
decode of one batch overlaps the write of the previous one. A paho message id is only
meaningful on the connection it arrived on, so each message remembers its
connection generation and is acknowledged only on that same connection.

Daily energy: an APScheduler job recomputes ``energy_daily`` every
``rollup.every`` seconds (:class:`agent.central.rollup.Rollup`: yesterday and
today). Readings older than that (an agent draining a spool of several days)
are remembered as the oldest local day stored since the last run, and the next
run starts from that day.

systemd (``Type=notify``, ``WatchdogSec``): READY=1 once the loops run, and
WATCHDOG=1 only while the ingest is healthy — paho's network thread alive and
the write loop turning. A loop that waits for a down InfluxDB is healthy (it
retries by design); one blocked longer than a write can take is not, and
systemd restarts the service.

Logs: one line per state change. A broker connection that keeps dropping right
after each reconnect is one outage: a warning when it starts, one if it loops,
one when a connection has lasted 30 s. APScheduler's per-run INFO lines are
silenced (its logger is set to WARNING).

Health as data: every minute the ingest publishes its counters, retained, on
``<root>/_ingest/<client_id>/health``, and logs one summary line every ten
minutes (never one per message).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import logging
import queue
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from apscheduler.schedulers.background import BackgroundScheduler
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.central.config import IngestConfig
from agent.central.rollup import Rollup
from agent.central.validate import message_to_points
from agent.central.writers import InfluxWriter, WriteUnavailable, make_writer
from agent.edge.sdnotify import SystemdNotifier
from agent.schema import SCHEMA_VERSION, TOPIC_KINDS, deadletter_topic, ingest_health_topic, parse_topic

log = logging.getLogger(__name__)

IDLE_FLUSH_S = 0.1
"""Write a partial batch once no message arrived for this long (the broker's window may be full)."""
RETRY_INITIAL_S = 0.5
DEADLETTER_LOG_EVERY_S = 60.0
LATE_DATA_MAX_DAYS = 62
"""The scheduled rollup reaches back at most this far for late readings; older ones need ``terril rollup --since``."""
HEALTH_EVERY_S = 60
SUMMARY_EVERY_S = 600
STUCK_MARGIN_S = 30.0
"""Slack on top of a write's two attempts and the longest back-off before the write loop counts as stuck."""
DEFAULT_MAX_PACKET_BYTES = 1_000_000
"""Dead-letter size budget when the broker's CONNACK states no Maximum Packet Size (the shipped
config/mosquitto/mosquitto.conf sets max_packet_size to this)."""
PACKET_OVERHEAD_BYTES = 1024
"""Room left in a packet for the fixed header, the topic and the properties of a dead letter."""
DEADLETTER_HEAD_BYTES = 64 * 1024
"""A dead letter too big for the broker carries the first this-many bytes of the original, its length and sha256."""
DEADLETTER_MAX_REFUSED_LINES = 20
STABLE_CONNECTION_S = 30.0
"""A broker connection that lasts this long ends an outage; drops before that belong to the same outage
(one warning, not one per reconnect)."""


@dataclass
class Message:
    """One received MQTT message, waiting for its points to be written before it is acknowledged."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    retain: bool = False
    """A retained copy the broker sent because we (re)subscribed, not a message published just now."""
    site: str | None = None
    oldest_counter_ms: int | None = None
    """Oldest timestamp among the message's inverter/meter points (for the rollup of late data)."""
    problems: list[str] = field(default_factory=list)
    refused_lines: list[str] = field(default_factory=list)


@dataclass
class Batch:
    """Messages and their lines, written together; ``starts[k]`` is the index of message k's first line."""

    messages: list[Message] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)

    def add(self, msg: Message, lines: tuple[str, ...]) -> None:
        self.starts.append(len(self.lines))
        self.messages.append(msg)
        self.lines.extend(lines)


@dataclass
class IngestStats:
    """Counters since start (also what the bench and the tests read)."""

    messages: int = 0
    points_written: int = 0
    deadletters: int = 0
    acked: int = 0
    writes: int = 0
    write_failures: int = 0
    reconnects: int = 0
    retained_status_skipped: int = 0
    """Retained ``status`` copies the broker re-sent on (re)subscribe: acknowledged, not written."""
    retained_not_stored: int = 0
    """Other retained copies with nothing to store again (invalid, or without ``ts``): acknowledged,
    neither written nor dead-lettered again (their live publication was)."""
    deadletters_refused: int = 0
    """Dead letters the broker refused (PUBACK reason code >= 0x80): originals left unacknowledged."""
    received: int = 0
    """Messages paho handed over (incremented on paho's thread only)."""
    settled: int = 0
    """Messages done with: acknowledged, or left for the broker to redeliver (ingest loop only)."""

    @property
    def backlog(self) -> int:
        """Messages received and not yet acknowledged (waiting, batched, or held while InfluxDB is down)."""
        return self.received - self.settled


def subscription_topics(root: str, group: str) -> list[str]:
    """``$share/<group>/<root>/+/<kind>`` for every topic kind of the MQTT contract."""
    return [f"$share/{group}/{root}/+/{kind}" for kind in TOPIC_KINDS]


def _payload_fields(payload: bytes, cut: bool) -> dict[str, str]:
    """``payload`` as text when it is UTF-8 (a cut may split the last character), else ``payload_base64``."""
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(payload) - 3 and exc.reason == "unexpected end of data":
            return {"payload": payload[: exc.start].decode("utf-8")}
        return {"payload_base64": base64.b64encode(payload).decode("ascii")}


def deadletter_payload(msg: Message, client_id: str, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> bytes:
    """JSON: the reason, the topic and the original payload (base64 when it is not UTF-8), in at most *max_bytes*.

    The whole original is carried whenever the dead letter fits the broker's packet limit.
    When it does not (a huge garbage message: JSON escaping or base64 makes it up to six
    times bigger), the dead letter says so (``payload_truncated``) and carries the
    original's length, its sha256 and its first 64 KiB — a dead letter the broker
    refuses would drop our connection, and the original would come back for ever.
    """
    reason = "; ".join(msg.problems) if len(msg.problems) <= 5 else (
        "; ".join(msg.problems[:5]) + f"; … {len(msg.problems) - 5} more")
    body: dict[str, object] = {
        "reason": reason,
        "topic": msg.topic,
        "site": msg.site,
        "received_ms": msg.received_ms,
        "ingest": client_id,
    }
    if msg.refused_lines:
        body["refused_lines"] = msg.refused_lines
    data = json.dumps({**body, **_payload_fields(msg.payload, cut=False)}, ensure_ascii=True).encode("ascii")
    if len(data) <= max_bytes:
        return data
    body["reason"] = reason[:2000]
    if len(msg.refused_lines) > DEADLETTER_MAX_REFUSED_LINES:
        body["refused_lines"] = msg.refused_lines[:DEADLETTER_MAX_REFUSED_LINES]
        body["refused_lines_total"] = len(msg.refused_lines)
    body.update(payload_truncated=True, payload_bytes=len(msg.payload),
                payload_sha256=hashlib.sha256(msg.payload).hexdigest())
    head = DEADLETTER_HEAD_BYTES
    while True:
        data = json.dumps({**body, **_payload_fields(msg.payload[:head], cut=True)},
                          ensure_ascii=True).encode("ascii")
        if len(data) <= max_bytes or head == 0:
            return data
        head //= 2
        if head < 64:
            head = 0
            body.pop("refused_lines", None)


class _DeadLetterLog:
    """One log line per (site, kind of reason) per minute, so a stream of garbage cannot flood the journal."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[tuple[str | None, str], float] = {}
        self._suppressed = 0

    @staticmethod
    def _kind(reason: str) -> str:
        """The words of a reason before its first value: ``"device 'X Y' is not a slug"`` -> ``"device"``."""
        text = re.sub(r"^readings\[\d+\]: ", "", reason)
        return re.split(r"['\"=\d\[{(]", text, maxsplit=1)[0].strip()[:60]

    def note(self, site: str | None, reason: str) -> None:
        now = self._clock()
        key = (site, self._kind(reason))
        if now - self._last.get(key, -1e9) < DEADLETTER_LOG_EVERY_S:
            self._suppressed += 1
            return
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < DEADLETTER_LOG_EVERY_S}
        self._last[key] = now
        more = f" ({self._suppressed} other dead letters since the last such line)" if self._suppressed else ""
        self._suppressed = 0
        log.warning("dead letter from site %s: %s%s", site or "?", reason[:200], more)


class LateData:
    """The oldest counter reading stored since the last rollup run (thread-safe: written by the
    ingest loop, taken by the scheduler's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._oldest_ms: int | None = None

    def note(self, ts_ms: int) -> None:
        with self._lock:
            if self._oldest_ms is None or ts_ms < self._oldest_ms:
                self._oldest_ms = ts_ms

    def take(self) -> int | None:
        with self._lock:
            oldest, self._oldest_ms = self._oldest_ms, None
            return oldest


class Ingest:
    """MQTT → InfluxDB. ``run(stop)`` blocks until *stop* is set."""

    def __init__(self, config: IngestConfig, writer: InfluxWriter | None = None) -> None:
        # APScheduler logs two INFO lines per job run ("Running job …", "… executed successfully"):
        # every 5 minutes for the rollup, every minute for the health. Not state changes.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self.config = config
        self.writer = writer if writer is not None else make_writer(config.influxdb)
        self.stats = IngestStats()
        self.client_id = config.subscription.client_id
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._generation = 0
        self._connected = threading.Event()
        self.subscribed = threading.Event()
        self._stopping = False
        """Set once the broker confirmed the subscriptions (tests and the demo wait for it)."""
        self._deadletter_topic = deadletter_topic(config.topic_root)
        self._deadletter_log = _DeadLetterLog(time.monotonic)
        self._influx_down_since: float | None = None
        self._max_packet_bytes = DEFAULT_MAX_PACKET_BYTES
        """The broker's Maximum Packet Size (CONNACK), or our default when it states none."""
        self._puback_lock = threading.Lock()
        self._puback: dict[int, mqtt.ReasonCode] = {}
        """PUBACK reason code per message id of our publishes (set on paho's thread, read by the writer)."""
        self._deadletters_refused = False
        """The broker refused a dead letter (ACL?) and no dead letter got through since: logged once."""
        self._connected_at = 0.0
        self._outage_since: float | None = None
        """Set when the broker connection dropped, cleared once a new one lasted STABLE_CONNECTION_S."""
        self._outage_drops = 0
        self._client = self._make_client()
        # The rollup writes through a writer of its own: the ingest's keeps one HTTP
        # connection that only the ingest loop may use (http.client is not thread-safe).
        self._rollup_writer = make_writer(config.influxdb)
        self.rollup = Rollup.from_config(config, self._rollup_writer.write)
        self.late = LateData()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler.add_job(self.run_rollup, "interval", seconds=config.rollup.every, id="rollup",
                               max_instances=1, coalesce=True, misfire_grace_time=config.rollup.every)
        self.notifier = SystemdNotifier()
        self._loop_beat = self._write_beat = time.monotonic()
        """When the decode loop / the writer thread last proved they turn (monotonic s); read by the watchdog."""
        self._writer_thread: threading.Thread | None = None
        watchdog = self.notifier.watchdog_interval_s()
        if watchdog:
            self.scheduler.add_job(self.ping_watchdog, "interval", seconds=watchdog, id="watchdog",
                                   max_instances=1, coalesce=True)
        self.health_topic = ingest_health_topic(self.client_id, config.topic_root)
        self.scheduler.add_job(self.publish_health, "interval", seconds=HEALTH_EVERY_S, id="health",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.log_summary, "interval", seconds=SUMMARY_EVERY_S, id="summary",
                               max_instances=1, coalesce=True)
        self._started = time.monotonic()
        self._summarised = IngestStats()

    # ------------------------------------------------------------------ MQTT

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

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode, properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%s refused the connection: %s",
                      self.config.broker.host, self.config.broker.port, reason_code)
            return
        self._generation += 1
        if self._generation > 1:
            self.stats.reconnects += 1
        self._connected_at = time.monotonic()
        limit = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self._max_packet_bytes = int(limit) if limit else DEFAULT_MAX_PACKET_BYTES
        if self._outage_drops <= 1:  # first connection, or the first reconnect of an outage
            log.info("connected to broker %s:%s as %s (session %s)", self.config.broker.host,
                     self.config.broker.port, self.client_id, "resumed" if flags.session_present else "new")
        topics = subscription_topics(self.config.topic_root, self.config.subscription.group)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        self._connected.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_codes: list[mqtt.ReasonCode], properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused the subscription(s): %s (check the ingest user's ACL)", ", ".join(refused))
            return
        if self._outage_drops <= 1:
            log.info("subscribed to %d topics as group %s", len(reason_codes), self.config.subscription.group)
        self.notifier.status(f"subscribed as {self.client_id}, group {self.config.subscription.group}")
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode, properties: Properties | None,
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            self._note_connection_lost(reason_code)
        self._connected.clear()

    def _note_connection_lost(self, reason_code: mqtt.ReasonCode) -> None:
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

    def _check_connection_stable(self, now: float) -> None:
        """Called by the decode loop: ends an outage once a connection has lasted long enough."""
        if (self._outage_since is not None and self._connected.is_set()
                and now - self._connected_at >= STABLE_CONNECTION_S):
            if self._outage_drops > 1:
                log.info("broker connection stable again after %d drops in %.0f s", self._outage_drops,
                         now - self._outage_since)
            self._outage_since, self._outage_drops = None, 0

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_code: mqtt.ReasonCode, properties: Properties | None,
    ) -> None:
        # paho calls this before it marks the message published: the code is there when is_published().
        # At most 65 535 entries (message ids wrap); the writer pops the ids it waits for.
        with self._puback_lock:
            self._puback[mid] = reason_code

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        self._inbox.put(Message(self._generation, message.mid, message.qos, message.topic,
                                bytes(message.payload), int(time.time() * 1000), bool(message.retain)))

    def _ack(self, msg: Message) -> None:
        if msg.qos == 0:
            return
        if msg.generation != self._generation or not self._connected.is_set():
            return  # arrived on a connection that is gone: the broker redelivers it
        self._client.ack(msg.mid, msg.qos)
        self.stats.acked += 1

    # ------------------------------------------------------------------ health

    def healthy(self, now: float | None = None) -> bool:
        """paho's network thread alive (connected or reconnecting) and the write loop not stuck."""
        now = time.monotonic() if now is None else now
        # paho keeps the thread of loop_start() in a private attribute; no public accessor exists.
        mqtt_thread = getattr(self._client, "_thread", None)
        mqtt_alive = mqtt_thread is not None and mqtt_thread.is_alive()
        influx = self.config.influxdb
        limit = 2 * influx.timeout + influx.retry_max_delay + STUCK_MARGIN_S
        writer_alive = self._writer_thread is None or self._writer_thread.is_alive()
        return (mqtt_alive and writer_alive
                and now - self._loop_beat < limit and now - self._write_beat < limit)

    def health_document(self) -> dict[str, object]:
        """The counters since start, as published on the health topic."""
        s = self.stats
        return {
            "v": SCHEMA_VERSION,
            "ingest": self.client_id,
            "ts": int(time.time() * 1000),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "messages": s.messages,
            "points_written": s.points_written,
            "deadletters": s.deadletters,
            "writes": s.writes,
            "write_failures": s.write_failures,
            "backlog": s.backlog,
            "reconnects": s.reconnects,
            "retained_not_stored": s.retained_not_stored,
            "influxdb": "down" if self._influx_down_since is not None else "up",
            # Healthy means data reaches InfluxDB, not only that the threads turn (the watchdog's test).
            "healthy": self.healthy() and self._influx_down_since is None,
        }

    def publish_health(self) -> None:
        """Retained, QoS 0 like the agents' health: the latest value is what matters, not each one."""
        doc = self.health_document()
        self._client.publish(self.health_topic, json.dumps(doc, separators=(",", ":")).encode(), qos=0, retain=True)
        self.notifier.status(f"{doc['messages']} messages, {doc['points_written']} points written, "
                             f"{doc['deadletters']} dead letters, backlog {doc['backlog']}, InfluxDB {doc['influxdb']}")

    def log_summary(self) -> None:
        """One line per ten minutes: what happened since the previous line."""
        s, p = self.stats, self._summarised
        log.info("last %d min: %d messages, %d points written, %d dead letters, %d failed writes; backlog %d",
                 SUMMARY_EVERY_S // 60, s.messages - p.messages, s.points_written - p.points_written,
                 s.deadletters - p.deadletters, s.write_failures - p.write_failures, s.backlog)
        self._summarised = IngestStats(messages=s.messages, points_written=s.points_written,
                                       deadletters=s.deadletters, write_failures=s.write_failures)

    def ping_watchdog(self) -> None:
        if self.healthy():
            self.notifier.watchdog()
        else:
            log.error("ingest stuck (MQTT network thread dead or write loop blocked); not pinging the systemd watchdog")

    # ------------------------------------------------------------------ rollup

    def run_rollup(self) -> int:
        """The scheduled job: yesterday and today, or from the oldest late day stored since the last run."""
        oldest = self.late.take()
        since = self._late_day(oldest) if oldest is not None else None
        written = self.rollup(since=since)
        if self.rollup.failing and oldest is not None:
            self.late.note(oldest)  # not computed: the next run tries again from that day
        return written

    def _late_day(self, ts_ms: int) -> date:
        zone = ZoneInfo(self.rollup.timezone)
        day = datetime.fromtimestamp(ts_ms / 1000, zone).date()
        floor = datetime.now(timezone.utc).astimezone(zone).date() - timedelta(days=LATE_DATA_MAX_DAYS)
        if day < floor:
            log.warning("readings from %s were stored; the scheduled rollup reaches back to %s only: "
                        "run `terril rollup --since %s` for the days before", day, floor, day)
            return floor
        return day

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event) -> None:
        """Connect, then validate, batch, write and acknowledge until *stop* is set."""
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.subscription.session_expiry
        props.ReceiveMaximum = cfg.subscription.receive_maximum
        log.info("ingest %s: broker %s:%s, InfluxDB %r, batches of %d points or %.1f s",
                 self.client_id, cfg.broker.host, cfg.broker.port, self.writer,
                 cfg.batch.max_points, cfg.batch.max_delay)
        self._client.connect_async(cfg.broker.host, cfg.broker.port, keepalive=cfg.broker.keepalive,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        self._loop_beat = self._write_beat = time.monotonic()
        self.scheduler.start()
        self.notifier.ready(f"connecting to broker {cfg.broker.host}:{cfg.broker.port}")
        try:
            self._loop(stop)
        finally:
            self._stopping = True
            self.notifier.stopping()
            self.scheduler.shutdown(wait=True)
            self._client.disconnect()
            self._client.loop_stop()
            self.writer.close()
            self._rollup_writer.close()
            # SystemdNotifier (agent/edge, shared with the agent) has no close(); its socket must not leak.
            notify_socket = getattr(self.notifier, "_socket", None)
            if notify_socket is not None:
                notify_socket.close()
            log.info("ingest stopped: %d messages, %d points written, %d dead letters",
                     self.stats.messages, self.stats.points_written, self.stats.deadletters)

    def _loop(self, stop: threading.Event) -> None:
        """Decode and batch on this thread; write, dead-letter and acknowledge on the writer thread.

        The two overlap: while InfluxDB takes one batch, the next is decoded (the
        decode is Python, the write mostly socket and gzip, which release the GIL).
        The hand-over queue holds one batch: the decode never runs far ahead of
        the writes, and while InfluxDB is down the broker — not this process —
        holds the messages.
        """
        writes: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        writer = threading.Thread(target=self._write_loop, args=(writes, stop), name="ingest-writer", daemon=True)
        self._writer_thread = writer
        writer.start()
        try:
            self._decode_loop(writes, stop)
        finally:
            try:
                writes.put_nowait(None)
            except queue.Full:
                pass  # the writer sees stop instead
            writer.join()

    def _decode_loop(self, writes: queue.Queue[Batch | None], stop: threading.Event) -> None:
        cfg = self.config.batch
        window = self.config.subscription.receive_maximum
        batch = Batch()
        handed_over = 0  # messages given to the writer thread; it counts those it is done with in stats.settled
        first_at = 0.0
        last_at = 0.0
        while not stop.is_set():
            now = self._loop_beat = time.monotonic()
            self._check_connection_stable(now)
            if batch.messages:
                wait = max(0.0, min(first_at + cfg.max_delay, last_at + IDLE_FLUSH_S) - now)
            else:
                wait = 0.5
            try:
                msg = self._inbox.get(timeout=wait)
            except queue.Empty:
                msg = None
            if msg is not None:
                now = time.monotonic()
                if not batch.messages:
                    first_at = now
                last_at = now
                batch.add(msg, self._decode(msg))
            due = bool(batch.messages) and (
                len(batch.lines) >= cfg.max_points
                # the broker sends nothing more until some of these are acknowledged:
                or len(batch.messages) + handed_over - self.stats.settled >= window
                or now >= first_at + cfg.max_delay
                or (msg is None and now >= last_at + IDLE_FLUSH_S)
            )
            if due:
                while not stop.is_set():
                    try:
                        writes.put(batch, timeout=0.5)
                        handed_over += len(batch.messages)
                        break
                    except queue.Full:  # the writer is busy (or waiting for InfluxDB): so are we
                        self._loop_beat = time.monotonic()
                batch = Batch()

    def _write_loop(self, writes: queue.Queue[Batch | None], stop: threading.Event) -> None:
        while not stop.is_set():
            self._write_beat = time.monotonic()
            try:
                batch = writes.get(timeout=0.5)
            except queue.Empty:
                continue
            if batch is None:
                return
            self._flush(batch, stop)

    def _decode(self, msg: Message) -> tuple[str, ...]:
        self.stats.messages += 1
        if msg.retain and self._is_status(msg.topic):
            # The broker re-sends the retained status on every (re)subscribe; stamped with
            # the receive time it would write a fresh `up` row that never happened.
            self.stats.retained_status_skipped += 1
            return ()
        decoded = message_to_points(msg.topic, msg.payload, msg.received_ms, self.config.topic_root,
                                    self.config.max_payload_bytes, retained=msg.retain)
        msg.site = decoded.site
        if msg.retain and decoded.problems:
            # Re-sent on every (re)subscribe: dead-lettered when it was published live, not at each restart.
            self.stats.retained_not_stored += 1
        else:
            msg.problems.extend(decoded.problems)
        msg.oldest_counter_ms = decoded.oldest_counter_ms
        return decoded.lines

    def _beat_write(self) -> None:
        """The writer thread is making progress (each request of a bisection counts)."""
        self._write_beat = time.monotonic()

    def _is_status(self, topic: str) -> bool:
        parsed = parse_topic(topic, self.config.topic_root)
        return parsed is not None and parsed[1] == "status"

    def _flush(self, batch: Batch, stop: threading.Event) -> None:
        """Write, dead-letter, then acknowledge the batch's messages.

        Returns without acknowledging when stopped while InfluxDB is down, or when the
        connection dropped before the dead letters were confirmed: the broker redelivers.
        """
        delay = RETRY_INITIAL_S
        while True:
            self._write_beat = time.monotonic()
            try:
                rejected = self.writer.write_lines(batch.lines, progress=self._beat_write) if batch.lines else []
                self.stats.writes += 1 if batch.lines else 0
                break
            except WriteUnavailable as exc:
                self.stats.write_failures += 1
                if self._influx_down_since is None:
                    self._influx_down_since = time.monotonic()
                    log.error("InfluxDB unavailable (%s): holding %d messages unacknowledged, "
                              "retrying with back-off up to %.0f s", exc, len(batch.messages),
                              self.config.influxdb.retry_max_delay)
                self._write_beat = time.monotonic()  # waiting for InfluxDB is what this loop should do
                if stop.wait(delay):
                    return
                delay = min(delay * 2, self.config.influxdb.retry_max_delay)
        self._write_beat = time.monotonic()
        if self._influx_down_since is not None:
            log.info("InfluxDB available again after %.0f s", time.monotonic() - self._influx_down_since)
            self._influx_down_since = None
        for index, reason in rejected:
            msg = batch.messages[bisect.bisect_right(batch.starts, index) - 1]
            line = batch.lines[index]
            msg.problems.append(f"InfluxDB refused {line.split(',', 1)[0]} point: {reason}")
            msg.refused_lines.append(line)
        self.stats.points_written += len(batch.lines) - len(rejected)
        late = [m.oldest_counter_ms for m in batch.messages if m.oldest_counter_ms is not None]
        if late:
            self.late.note(min(late))
        dead = [m for m in batch.messages if m.problems]
        if dead and not self._publish_deadletters(dead, stop):
            # The dead ones stay unacknowledged (the broker redelivers them on the next
            # connection); the clean ones are written: acknowledged if the connection allows.
            for msg in batch.messages:
                if not msg.problems:
                    self._ack(msg)
            self.stats.settled += len(batch.messages)
            return
        for msg in batch.messages:
            self._ack(msg)
        self.stats.settled += len(batch.messages)

    def _publish_deadletters(self, dead: list[Message], stop: threading.Event) -> bool:
        """Publish every dead letter at QoS 1 and wait for the broker's PUBACKs before acking originals.

        False when the connection dropped first, or when the broker refused a dead letter
        (PUBACK reason code >= 0x80, e.g. 0x87 when the ingest user may not write on
        ``<root>/_deadletter``): the originals stay unacknowledged — the broker redelivers
        them on the next connection — rather than be acknowledged and lost. A dead letter
        may then be published twice, never zero times.
        """
        budget = self._max_packet_bytes - PACKET_OVERHEAD_BYTES
        infos = []
        for msg in dead:
            self._deadletter_log.note(msg.site, msg.problems[0])
            infos.append(self._client.publish(self._deadletter_topic,
                                              deadletter_payload(msg, self.client_id, budget), qos=1))
        refused: list[mqtt.ReasonCode] = []
        for info in infos:
            try:
                while not info.is_published():
                    if stop.is_set() or not self._connected.is_set():
                        return False
                    info.wait_for_publish(timeout=0.1)
                    self._write_beat = time.monotonic()
            except (ValueError, RuntimeError):  # not sent: no connection
                return False
            with self._puback_lock:
                code = self._puback.pop(info.mid, None)
            if code is not None and code.is_failure:
                refused.append(code)
        if refused:
            self.stats.deadletters_refused += len(refused)
            if not self._deadletters_refused:
                self._deadletters_refused = True
                log.error("the broker refused %d dead letter(s) on %s (%s): their %d original message(s) stay "
                          "unacknowledged; let the ingest user write on %s (ACL) and restart the ingest",
                          len(refused), self._deadletter_topic, refused[0], len(dead), self._deadletter_topic)
            return False
        if self._deadletters_refused:
            self._deadletters_refused = False
            log.info("the broker accepts dead letters on %s again", self._deadletter_topic)
        self.stats.deadletters += len(dead)
        return True
