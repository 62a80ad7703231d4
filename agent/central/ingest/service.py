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

import bisect
import json
import logging
import queue
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler

from agent.central.config import IngestConfig
from agent.central.ingest.acks import Stored
from agent.central.ingest.batching import BATCH_MAX_BYTES, IDLE_FLUSH_S, Batch, Inbox, LateData, Message
from agent.central.ingest.deadletters import DeadLetters
from agent.central.ingest.session import BrokerSession
from agent.central.ingest.stats import IngestStats
from agent.central.rollup import Rollup
from agent.central.validate import message_to_points
from agent.central.writers import InfluxWriter, WriteUnavailable, make_writer
from agent.schema import SCHEMA_VERSION, deadletter_topic, ingest_health_topic, parse_topic
from agent.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.5
LATE_DATA_MAX_DAYS = 62
"""The scheduled rollup reaches back at most this far for late readings; older ones need ``terril rollup --since``."""
HEALTH_EVERY_S = 60
SUMMARY_EVERY_S = 600
STUCK_MARGIN_S = 30.0
"""Slack on top of a write's two attempts and the longest back-off before the write loop counts as stuck."""


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
        self._inbox = Inbox(config.subscription.max_queue_bytes, self.stats)
        self.notifier = SystemdNotifier()
        self.session = BrokerSession(config, self.stats, self._inbox, self.notifier)
        self.subscribed = self.session.subscribed
        """Set once the broker confirmed the subscriptions (tests and the demo wait for it)."""
        self._connected = self.session.connected
        self._influx_down_since: float | None = None
        self.deadletters = DeadLetters(self.session, deadletter_topic(config.topic_root), self.stats,
                                       self._beat_write)
        # The rollup writes through a writer of its own: the ingest's keeps one HTTP
        # connection that only the ingest loop may use (http.client is not thread-safe).
        self._rollup_writer = make_writer(config.influxdb)
        self.rollup = Rollup.from_config(config, self._rollup_writer.write)
        self.late = LateData()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler.add_job(self.run_rollup, "interval", seconds=config.rollup.every, id="rollup",
                               max_instances=1, coalesce=True, misfire_grace_time=config.rollup.every)
        if config.public is not None:  # the public static site (agent.public), first built at start
            from agent.public.schedule import PublicSiteJob

            self.scheduler.add_job(PublicSiteJob(config), "interval", seconds=config.public.every, id="public",
                                   max_instances=1, coalesce=True, misfire_grace_time=config.public.every,
                                   next_run_time=datetime.now().astimezone())
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

    # ------------------------------------------------------------------ health

    def healthy(self, now: float | None = None) -> bool:
        """paho's network thread alive (connected or reconnecting) and the write loop not stuck."""
        now = time.monotonic() if now is None else now
        mqtt_alive = self.session.network_thread_alive()
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
            "acks_published": self.session.acks.published,
            "retained_not_stored": s.retained_not_stored,
            "shed_qos0": s.shed_qos0,
            "held_bytes": self._inbox.held_bytes,
            "influxdb": "down" if self._influx_down_since is not None else "up",
            # Healthy means data reaches InfluxDB, not only that the threads turn (the watchdog's test).
            "healthy": self.healthy() and self._influx_down_since is None,
        }

    def publish_health(self) -> None:
        """Retained, QoS 0 like the agents' health: the latest value is what matters, not each one."""
        doc = self.health_document()
        payload = json.dumps(doc, separators=(",", ":")).encode()
        self.session.client.publish(self.health_topic, payload, qos=0, retain=True)
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
        floor = datetime.now(UTC).astimezone(zone).date() - timedelta(days=LATE_DATA_MAX_DAYS)
        if day < floor:
            log.warning("readings from %s were stored; the scheduled rollup reaches back to %s only: "
                        "run `terril rollup --since %s` for the days before", day, floor, day)
            return floor
        return day

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event) -> None:
        """Connect, then validate, batch, write and acknowledge until *stop* is set."""
        cfg = self.config
        log.info("ingest %s: broker %s:%s, InfluxDB %r, batches of %d points or %.1f s",
                 self.client_id, cfg.broker.host, cfg.broker.port, self.writer,
                 cfg.batch.max_points, cfg.batch.max_delay)
        self.session.start()
        self._loop_beat = self._write_beat = time.monotonic()
        self.scheduler.start()
        self.notifier.ready(f"connecting to broker {cfg.broker.host}:{cfg.broker.port}")
        try:
            self._loop(stop)
        finally:
            self.session.stopping = True
            self.notifier.stopping()
            self.scheduler.shutdown(wait=True)
            self.session.stop()
            self.writer.close()
            self._rollup_writer.close()
            self.notifier.close()
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
            self.session.check_connection_stable(now)
            if batch.messages:
                wait = max(0.0, min(first_at + cfg.max_delay, last_at + IDLE_FLUSH_S) - now)
            else:
                wait = 0.5
            try:
                msg = self._inbox.get(wait)
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
                or batch.bytes >= BATCH_MAX_BYTES
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
        msg.message_id = decoded.message_id
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
        if dead and not self.deadletters.publish(dead, stop):
            # The dead ones stay unacknowledged (the broker redelivers them on the next
            # connection); the clean ones are written: acknowledged if the connection allows.
            for msg in batch.messages:
                if not msg.problems:
                    self.session.ack(msg)
            self.session.acks.acknowledge(Stored(m.site, m.message_id) for m in batch.messages if not m.problems)
        else:
            for msg in batch.messages:
                self.session.ack(msg)
            self.session.acks.acknowledge(Stored(m.site, m.message_id) for m in batch.messages)
        self.stats.settled += len(batch.messages)
        self._inbox.release(batch.messages)
