"""Moves spooled readings and events to the broker; deletes a row once the ingest says it is stored.

End to end (``agent.edge.acks``): once an ingest announced acknowledgements on
its retained status, every message carries an id (spool instance and rows), a
success PUBACK only records its rows as *sent* (in RAM), and the ingest's
``<root>/<site>/ack`` deletes them. Rows sent but not acknowledged within
``resend_after`` go out again through the backlog lane, oldest first, with
back-off, never while every ingest is away, and soon after a reconnect (the
broker may have lost them). With no ingest announcing acknowledgements the
forwarder deletes rows at the success PUBACK, as described below; it decides
once the broker answered its subscriptions, and sends nothing before.

Two lanes share one bounded window of messages in flight:

* the *live lane* carries the poll that was just submitted, so a fresh reading
  reaches the broker within a second or two even while a multi-hour backlog
  drains behind it (one window slot is always kept free for it, and the
  backlog may have at most ``max_backlog_bytes`` in flight, plus the message
  that crossed it: on a 1 Mbit/s uplink, 500-reading messages filling seven
  slots would put 1–1.6 MB, 8–13 s, ahead of a live poll; with 64 KiB it is
  under a second plus one message);
* the *backlog lane* walks the spool oldest first with one cursor over all
  rows (readings and events in the order they were spooled), packing up to
  ``batch_size`` consecutive readings per ``readings`` message (events go one
  per message on ``events``). Each row is read once per pass: the cursor is a
  primary-key range (``id > cursor ORDER BY id LIMIT n``), so a fetch costs the
  rows it returns, whatever the spool's size. (A cursor per kind would make a
  kind with no row left scan the whole spool on every message: quadratic
  with a million rows spooled, each scan holding the spool lock.)

Rows in flight are never sent twice by this process at the same time. After a
reconnect the cursors go back to the start of the spool, so every row that was
in flight when the link dropped is sent again (at least once; the ingest is
idempotent because the timestamp comes from the edge). A refused message
(PUBACK >= 0x80, e.g. an ACL mistake) stays in the spool. The backlog lane then
pauses: after ``retry_refused_s`` it sends *one* probe message (the oldest
rows), and it resumes the full drain only when the broker accepts that probe.
So a broker-side fix needs no agent restart, and an ACL mistake costs one
message per minute on a metered 4G SIM, not the whole spool every minute.
Live polls keep being sent meanwhile (one message per poll, as always).

Each reading is serialized to compact JSON once, when it is spooled; a
``readings`` message is built by joining those stored texts (live and backlog
alike), never by decoding and re-encoding them.

Threads: ``submit_poll`` runs in the poller's thread (one spool transaction),
PUBACK callbacks run in paho's thread and only enqueue, and everything else —
publishing, deleting, cursor bookkeeping — happens in the forwarder's own thread.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.edge.acks import (
    Due,
    IngestPresence,
    IngestStatus,
    Mode,
    SentLedger,
    encode_message_id,
    parse_ack,
    parse_ingest_status,
    parse_message_id,
)
from agent.edge.publisher import Publisher, PublishResult
from agent.edge.spool import Spool, SpooledItem, SpoolItem, SpoolStats
from agent.encoding import encode_json, reading_json
from agent.schema import Event, Reading, Topics, ingest_status_filter, readings_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwarderHealth:
    """What the agent reports about its store-and-forward path (published as health)."""

    spool: SpoolStats
    connected: bool
    published: int
    """Messages the broker acknowledged with success (all topics)."""
    refused: int
    """Messages the broker refused (PUBACK reason code >= 0x80)."""
    not_delivered: int
    """Messages lost with the connection before their PUBACK (their rows were sent again)."""
    forwarded_rows: int
    """Spool rows deleted since start: acknowledged by the ingest (or, in ``puback`` mode, by the broker)."""
    inflight_messages: int
    mode: Mode = "puback"
    """``acks``: rows wait for the ingest's acknowledgement; ``puback``: deleted at the broker's PUBACK."""
    unacked_rows: int = 0
    """Rows the broker accepted that the ingest has not acknowledged yet."""
    unacked_oldest_s: float = 0.0
    """How long ago the oldest of them was accepted by the broker."""
    rows_resent: int = 0
    """Rows sent again because no acknowledgement came within ``resend_after`` (since start)."""


@dataclass
class _LivePoll:
    """Rows just spooled, with their stored JSON text: (row id, JSON)."""

    readings: list[tuple[int, str]] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)

    @property
    def first_id(self) -> int:
        return min(rows[0][0] for rows in (self.readings, self.events) if rows)


def _envelope(site: str) -> tuple[str, str]:
    """The ``readings`` payload around its list of readings, split where the readings go."""
    text = encode_json(readings_payload(site, []))
    head, tail = text.rsplit("[]", 1)
    return head + "[", "]" + tail


RECONNECT_RESEND_S = 15.0
"""After the agent reconnects, rows still unacknowledged are due again within this long (at most
``resend_after``): the broker may have restarted and lost them; if it had not, the ingest acknowledges
them meanwhile."""
DECIDE_TIMEOUT_S = 10.0
"""Connected this long without the subscriptions answered: decide the mode with what is known."""


class Forwarder:
    """Publishes the spool's content through ``publisher`` (see the module docstring)."""

    def __init__(
        self,
        spool: Spool,
        publisher: Publisher,
        topics: Topics,
        batch_size: int = 500,
        max_inflight: int = 8,
        retry_refused_s: float = 60.0,
        live_polls_kept: int = 16,
        max_backlog_bytes: int = 64 * 1024,
        resend_after: float = 180.0,
        acks: bool = True,
    ) -> None:
        """``acks=False``: never wait for the ingest's acknowledgements (delete at PUBACK, as before they
        existed); with ``acks=True`` the ingest's announced status decides (see ``agent.edge.acks``)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_inflight < 2:
            raise ValueError(f"max_inflight must be at least 2 (one slot is kept for live polls), got {max_inflight}")
        self.spool = spool
        self.publisher = publisher
        self.topics = topics
        self.batch_size = batch_size
        self.max_inflight = max_inflight
        self.retry_refused_s = retry_refused_s
        self.max_backlog_bytes = max_backlog_bytes
        self._live: deque[_LivePoll] = deque(maxlen=live_polls_kept)
        self._handover = threading.Lock()
        """Held while a poll is spooled and queued for the live lane, and while the backlog lane fetches:
        the backlog lane leaves the rows of queued live polls to the live lane (else a row could go out
        twice: once by each lane, the second after the first's PUBACK)."""
        self._completions: deque[tuple[list[int], PublishResult, bool, int, int]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rewind = threading.Event()
        self._thread: threading.Thread | None = None
        # Owned by the forwarder thread only:
        self._inflight_ids: set[int] = set()
        self._inflight_msgs = 0
        self._backlog_bytes = 0
        """Payload bytes of backlog messages in flight (the live lane's wait is bounded by it)."""
        self._cursor = 0
        """Highest spool id the backlog lane has fetched in this pass."""
        self._fetched: deque[SpooledItem] = deque()
        """Rows fetched by the backlog lane and not sent yet (at most one fetch)."""
        self._paused_until: float | None = None
        """After a refusal: when the backlog lane may send its probe (None: not paused)."""
        self._probing = False
        """A probe message is in flight; the backlog lane sends nothing else until its PUBACK."""
        self.last_turn = time.monotonic()
        """When the forwarder loop last started a turn (monotonic seconds)."""
        self.stall_s = 60.0
        """A loop that has not turned for this long is hung (see ``healthy``)."""
        self.error_retry_s = 5.0
        """Pause after a failed step (a spool error) before the next try."""
        self.step_failures = 0
        """Steps that failed since start (each is retried; only a new kind of error is logged)."""
        self._failing: str | None = None
        """The error the last step failed with (logged once), None while steps succeed."""
        self.forwarded_rows = 0
        self._head, self._tail = _envelope(topics.site)
        self._id_head = self._head.replace('"readings":[', '"id":')
        """``{"v":1,"site":…,"id":`` : a readings message with its id (the id goes before the readings)."""
        # End-to-end acknowledgement (agent.edge.acks); the ledger and the mode are owned by the forwarder thread.
        self.resend_after = resend_after
        self._ledger = SentLedger(resend_after)
        self._presence = IngestPresence()
        self.mode: Mode = "undecided" if acks else "puback"
        self._inbox: deque[tuple[str, object]] = deque()
        """("ack", ids) | ("status", (instance, status, retained)) | ("ready", None) | ("connected", None),
        appended by paho's thread, handled by the forwarder's."""
        self._resend: deque[Due] = deque()
        """Ranges due again, oldest first, sent by the backlog lane before it walks on."""
        self._resend_pos = 0
        self._acked_inflight: set[int] = set()
        """Rows acknowledged (and deleted) while a copy of them was in flight: not recorded as sent again."""
        self._connected_at: float | None = None
        self.rows_resent = 0
        self.acked_rows = 0
        """Spool rows deleted by an acknowledgement."""
        self.acked_unknown = 0
        """Acknowledged rows that were no longer spooled (acknowledged twice, or dropped by the bounds)."""
        self._unacked: tuple[int, float | None] = (0, None)
        """(rows, oldest sent time) of the ledger, refreshed by the forwarder thread for ``health``."""
        publisher.add_connection_listener(self._on_link_change)
        if acks:
            # The status first: the broker sends its retained copies before it answers the next
            # subscription, so when the ack subscription is answered ("ready") the statuses are known.
            publisher.add_subscription(ingest_status_filter(topics.root), self._on_status_message)
            publisher.add_subscription(topics.ack, self._on_ack_message)
            publisher.add_ready_listener(lambda: self._post("ready", None))

    # ------------------------------------------------------------------ public

    def submit_poll(self, readings: Sequence[Reading], events: Sequence[Event] = ()) -> None:
        """Spool one poll, or several polls the agent coalesced, in one transaction, and
        hand them to the live lane (one ``readings`` message per ``batch_size`` readings).

        Raises what the spool raises (e.g. ``sqlite3.OperationalError`` on a full
        disk): the caller logs it; nothing half-written remains.
        """
        items: list[SpoolItem] = [SpoolItem("readings", r.ts, reading_json(r)) for r in readings]
        items += [SpoolItem("events", e.ts, encode_json(e.to_payload(self.topics.site))) for e in events]
        if not items:
            return
        with self._handover:  # the backlog lane never sees these rows before the live lane has them
            ids = self.spool.append(items)
            poll = _LivePoll()
            for row_id, item in zip(ids, items, strict=False):
                text = item.payload if isinstance(item.payload, str) else encode_json(item.payload)
                (poll.readings if item.kind == "readings" else poll.events).append((row_id, text))
            self._live.append(poll)
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.last_turn = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="terril-forwarder", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout: float = 2.0) -> None:
        """Stop sending; wait up to ``drain_timeout`` for PUBACKs of what is in flight, delete those rows."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._thread = None
        deadline = time.monotonic() + drain_timeout
        try:
            while self._inflight_msgs > 0 and time.monotonic() < deadline:
                self._wake.wait(0.05)
                self._wake.clear()
                self._process_completions()
            self._process_completions()
        except Exception as exc:  # a broken spool: those rows are sent again by the next run
            self._failed(exc)

    def wake(self) -> None:
        self._wake.set()

    def health(self) -> ForwarderHealth:
        rows, oldest = self._unacked
        return ForwarderHealth(
            spool=self.spool.stats(),
            connected=self.publisher.connected,
            published=self.publisher.published,
            refused=self.publisher.refused,
            not_delivered=self.publisher.not_delivered,
            forwarded_rows=self.forwarded_rows,
            inflight_messages=self._inflight_msgs,
            mode=self.mode,
            unacked_rows=rows,
            unacked_oldest_s=0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            rows_resent=self.rows_resent,
        )

    # ------------------------------------------------------------------ thread

    def _on_link_change(self, connected: bool) -> None:
        if connected:
            self._connected_at = time.monotonic()
            self._rewind.set()
            self._inbox.append(("connected", None))
        self._wake.set()

    def _post(self, what: str, data: object) -> None:
        self._inbox.append((what, data))
        self._wake.set()

    def _on_ack_message(self, topic: str, payload: bytes, retained: bool) -> None:
        ids = parse_ack(payload, self.topics.site)
        if not ids:
            log.warning("ignored an unreadable acknowledgement on %s (%d bytes)", topic, len(payload))
            return
        self._post("ack", ids)

    def _on_status_message(self, topic: str, payload: bytes, retained: bool) -> None:
        instance = topic.split("/")[-2]
        self._post("status", (instance, parse_ingest_status(payload), retained))

    def healthy(self, now: float | None = None) -> bool:
        """The forwarder thread lives and its loop turned within ``stall_s`` (it turns at least every
        second, or every ``error_retry_s`` while failing): the agent's watchdog condition."""
        now = time.monotonic() if now is None else now
        thread = self._thread
        return thread is not None and thread.is_alive() and now - self.last_turn < self.stall_s

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last_turn = time.monotonic()
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._step()
            except Exception as exc:
                # A spool error (disk, SQLite) must not kill the thread: log, back off, retry.
                self._failed(exc)
                self._stop.wait(self.error_retry_s)
            else:
                if self._failing is not None:
                    self._failing = None
                    log.info("forwarder works again")

    def _failed(self, exc: Exception) -> None:
        """Log a failure once per kind of error (not once per 5 s retry, for days)."""
        self.step_failures += 1
        kind = f"{type(exc).__name__}: {exc}"
        if kind == self._failing:
            return
        self._failing = kind
        log.error("forwarder step failed (%s); retrying every %g s, logged again only if the error changes",
                  kind, self.error_retry_s, exc_info=exc)

    def _step(self) -> None:
        self._process_completions()
        self._process_inbox()
        self._unacked = (self._ledger.rows, self._ledger.oldest_sent_at())
        if not self.publisher.connected:
            self._live.clear()  # those rows are spooled; the backlog lane sends them after reconnect
            return
        if self.mode == "undecided":
            # Nothing is sent before the mode is known: an ingest that does not acknowledge
            # would dead-letter messages carrying an id. It takes one round trip after connecting.
            if self._connected_at is None or time.monotonic() - self._connected_at < DECIDE_TIMEOUT_S:
                return
            self._decide("the broker did not answer the subscriptions")
        if self.mode == "acks" and not self._presence.away:
            due = self._ledger.take_due(time.monotonic())
            if due:
                log.info("sending again %d row(s) the ingest has not acknowledged in time (ids %d-%d)",
                         sum(d.last - d.first + 1 for d in due), due[0].first, due[-1].last)
                self._resend.extend(due)
        if self._rewind.is_set():
            self._rewind.clear()
            self._restart_pass()
        window = max(2, min(self.max_inflight, self.publisher.receive_maximum - 2))
        # live lane first: it may use the whole window
        while self._live and self._inflight_msgs < window:
            poll = self._live.popleft()
            while self._live and len(poll.readings) + len(self._live[0].readings) <= self.batch_size:
                more = self._live.popleft()  # several small polls waiting: one message
                poll.readings += more.readings
                poll.events += more.events
            self._send_live(poll)
        # backlog lane: keeps one slot free for the next live poll
        if self._paused_until is not None:
            if not self._probing and time.monotonic() >= self._paused_until and self._inflight_msgs < window - 1:
                self._restart_pass()  # the refused rows are the oldest: probe with them
                self._probing = self._send_backlog(probe=True)
            return
        while (self._inflight_msgs < window - 1 and self._backlog_bytes < self.max_backlog_bytes
               and not self._stop.is_set()):
            if not self._send_backlog():
                break

    def _restart_pass(self) -> None:
        """Walk the spool from its oldest row again (after a reconnect or a refusal)."""
        self._cursor = 0
        self._fetched.clear()

    def _send_live(self, poll: _LivePoll) -> None:
        inflight = self._inflight_ids
        rows = [(i, p) for i, p in poll.readings if i not in inflight]
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            ids = [i for i, _ in chunk]
            self._publish(self.topics.readings, self._readings_message([p for _, p in chunk], ids), ids)
        for row_id, event in poll.events:
            if row_id not in inflight:
                self._publish(self.topics.events, self._event_message(event, row_id), [row_id])

    def _readings_message(self, readings: list[str], ids: list[int]) -> bytes:
        """``readings_payload`` around readings that are already compact JSON, with its id in ``acks`` mode."""
        if self.mode != "acks":
            return (self._head + ",".join(readings) + self._tail).encode()
        message_id = encode_message_id(self.spool.instance, ids)
        return f'{self._id_head}"{message_id}","readings":[{",".join(readings)}{self._tail}'.encode()

    def _event_message(self, event: str, row_id: int) -> bytes:
        """The stored event payload, with its id in ``acks`` mode (an object: its text starts with ``{``)."""
        if self.mode != "acks":
            return event.encode()
        return f'{{"id":"{encode_message_id(self.spool.instance, [row_id])}",{event[1:]}'.encode()

    def _send_backlog(self, probe: bool = False) -> bool:
        """Send one backlog message; False when the backlog has nothing left to send in this pass."""
        if not probe and self._send_resend():
            return True
        if not self._next_fetched():
            return False
        fetched = self._fetched
        if fetched[0].kind == "events":
            rows = [fetched.popleft()]
        else:
            rows = []
            while len(rows) < self.batch_size and self._next_fetched() and fetched[0].kind == "readings":
                rows.append(fetched.popleft())
        good = self._readable(rows)
        if not good:
            return not probe
        self._publish_rows(good, probe=probe)
        return True

    def _publish_rows(self, rows: list[SpooledItem], probe: bool = False, attempts: int = 0) -> None:
        """One backlog message: a single event, or consecutive readings."""
        if rows[0].kind == "events":
            self._publish(self.topics.events, self._event_message(rows[0].payload, rows[0].id), [rows[0].id],
                          probe=probe, backlog=True, attempts=attempts)
        else:
            ids = [r.id for r in rows]
            self._publish(self.topics.readings, self._readings_message([r.payload for r in rows], ids), ids,
                          probe=probe, backlog=True, attempts=attempts)

    def _send_resend(self) -> bool:
        """Send one message of the rows due again (oldest first); False when none is due."""
        while self._resend:
            due = self._resend[0]
            rows = self.spool.between(max(due.first, self._resend_pos + 1), due.last, self.batch_size)
            rows = [r for r in rows if r.id not in self._inflight_ids and self._ledger.covering(r.id) is None]
            if not rows:
                self._resend.popleft()
                self._resend_pos = 0
                continue
            take = rows[:1] if rows[0].kind == "events" else list(
                itertools.takewhile(lambda r: r.kind == "readings", rows))
            self._resend_pos = take[-1].id
            good = self._readable(take)
            if good:
                self.rows_resent += len(good)
                self._publish_rows(good, attempts=due.attempts)
                return True
        return False

    def _next_fetched(self) -> bool:
        """Make the next unsent backlog row the head of ``_fetched``; False at the end of the spool.

        Rows the broker accepted and the ingest has not acknowledged yet (the ledger) are skipped,
        a whole recorded range at a time: they are sent again only when due (``_send_resend``)."""
        fetched = self._fetched
        ledger = self._ledger
        while True:
            while fetched and fetched[0].id in self._inflight_ids:
                fetched.popleft()  # the live lane sent it meanwhile
            if fetched and len(ledger):
                end = ledger.covering(fetched[0].id)
                if end is not None:
                    while fetched and fetched[0].id <= end:
                        fetched.popleft()
                    self._cursor = max(self._cursor, end)
                    continue
            if fetched:
                return True
            with self._handover:
                rows = self.spool.oldest(self.batch_size, after_id=self._cursor)
                floor = self._live[0].first_id if self._live else None
            if floor is not None:
                rows = [r for r in rows if r.id < floor]  # queued for the live lane: it sends them
            if not rows:
                return False
            self._cursor = rows[-1].id
            fetched.extend(rows)

    def _readable(self, rows: list[SpooledItem]) -> list[SpooledItem]:
        """The rows whose text is a JSON object (the others are removed, loudly): one bad
        row on an SD card must not spoil a whole batch message."""
        good: list[SpooledItem] = []
        bad: list[int] = []
        for row in rows:
            try:
                value = json.loads(row.payload)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                good.append(row)
            except ValueError as exc:
                bad.append(row.id)
                log.error("spool row %d (%s) is unreadable (%s): removing it", row.id, row.kind, exc)
        if bad:
            self.spool.delete(bad)
        return good

    def _publish(self, topic: str, payload: bytes, ids: list[int], probe: bool = False,
                 backlog: bool = False, attempts: int = 0) -> None:
        self._inflight_ids.update(ids)
        self.spool.hold(ids)  # a full spool must not drop rows that may yet be acknowledged
        self._inflight_msgs += 1
        backlog_bytes = len(payload) if backlog else 0
        self._backlog_bytes += backlog_bytes

        def done(result: PublishResult) -> None:  # runs in paho's thread (or right here)
            self._completions.append((ids, result, probe, backlog_bytes, attempts))
            self._wake.set()

        self.publisher.publish(topic, payload, qos=1, retain=False, on_done=done)

    def _process_completions(self) -> None:
        acked: list[int] = []
        settled: list[int] = []
        now = time.monotonic()
        while self._completions:
            ids, result, probe, backlog_bytes, attempts = self._completions.popleft()
            self._inflight_msgs -= 1
            self._backlog_bytes -= backlog_bytes
            self._inflight_ids.difference_update(ids)
            settled += ids
            if probe:
                self._probing = False
            if result.delivered:
                if self.mode == "puback":
                    acked += ids
                else:  # sent: deleted when the ingest acknowledges it, sent again if it does not in time
                    gone = self._acked_inflight
                    self._ledger.add([i for i in ids if i not in gone] if gone else ids, now, attempts + 1)
                    gone.difference_update(ids)
                if probe and self._paused_until is not None:
                    self._paused_until = None
                    log.info("broker accepted the probe message: draining the backlog again")
            elif result.reason_code is not None and (probe or self._paused_until is None):
                if self._paused_until is None:
                    log.warning("broker refused a message: backlog paused, one probe message every %g s",
                                self.retry_refused_s)
                self._paused_until = time.monotonic() + self.retry_refused_s
            if not result.delivered and self._acked_inflight:
                self._acked_inflight.difference_update(ids)
        try:
            if acked:
                self.forwarded_rows += self.spool.delete(acked)
        finally:
            self.spool.release(settled)  # after the delete: the bounds may drop what was not delivered

    # ------------------------------------------------------------------ end-to-end acknowledgement

    def _decide(self, why: str) -> None:
        """Choose between waiting for the ingest's acknowledgements and deleting at PUBACK."""
        refused = self.topics.ack in self.publisher.refused_subscriptions
        if self._presence.acknowledges and not refused:
            self.mode = "acks"
            log.info("ingest acknowledges stored readings (%s): rows leave the spool once InfluxDB holds them, "
                     "unacknowledged rows are sent again after %g s", self._presence.describe(), self.resend_after)
        else:
            self.mode = "puback"
            if refused:
                why = f"the broker does not let this site read {self.topics.ack}"
            log.warning("no ingest announces acknowledgements on %s that this site can receive (%s): rows leave "
                        "the spool at the broker's PUBACK, as with an ingest older than acknowledgements",
                        ingest_status_filter(self.topics.root), why)
            gone = self._ledger.clear()
            if gone:
                self.forwarded_rows += self.spool.delete(i for a, b in gone for i in range(a, b + 1))
            self._resend.clear()

    def _process_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            what, data = inbox.popleft()
            if what == "ack":
                self._handle_ack(data)  # type: ignore[arg-type]
            elif what == "status":
                self._handle_status(*data)  # type: ignore[misc]
            elif what == "ready":
                if self.mode == "undecided" or (self.mode == "acks"
                                                and self.topics.ack in self.publisher.refused_subscriptions):
                    self._decide("no acknowledging ingest status is retained")
            elif what == "connected" and self.mode == "acks" and not self._presence.away and len(self._ledger):
                # The broker may have restarted and lost what it had accepted: resend soon.
                self._ledger.expedite(time.monotonic() + min(RECONNECT_RESEND_S, self.resend_after))

    def _handle_ack(self, message_ids: list[str]) -> None:
        ranges: list[tuple[int, int]] = []
        for message_id in message_ids:
            parsed = parse_message_id(message_id)
            if parsed is None or parsed[0] != self.spool.instance:
                continue  # another spool file's (moved aside, reinstalled agent): not these rows
            ranges += parsed[1]
        if not ranges:
            return
        self._ledger.remove(ranges)
        ids = [i for a, b in ranges for i in range(a, b + 1)]
        in_flight = self._inflight_ids.intersection(ids)
        self._acked_inflight.update(in_flight)
        removed = self.spool.delete(ids)
        self.forwarded_rows += removed
        self.acked_rows += removed
        self.acked_unknown += len(ids) - removed
        if self._fetched:  # fetched earlier by the backlog lane: not to be sent any more
            acked = set(ids)
            self._fetched = deque(r for r in self._fetched if r.id not in acked)

    def _handle_status(self, instance: str, status: object, retained: bool) -> None:
        was_away, acknowledged = self._presence.away, self._presence.acknowledges
        self._presence.update(instance, status if isinstance(status, IngestStatus) else None)
        if self.mode == "undecided":
            return
        if self._presence.acknowledges and not acknowledged and self.mode == "puback":
            self._decide(f"ingest {instance} announced acknowledgements")
            return
        if not self._presence.acknowledges and self.mode == "acks":
            self._decide(f"the status of ingest {instance} was cleared")
            return
        now = time.monotonic()
        if self._presence.away and not was_away:
            log.warning("ingest away (%s): not resending unacknowledged rows until it is back",
                        self._presence.describe())
        elif was_away and not self._presence.away:
            log.info("ingest back (%s): unacknowledged rows are sent again if not acknowledged within %g s",
                     self._presence.describe(), self.resend_after)
            self._ledger.postpone(now)
        if (isinstance(status, IngestStatus) and status.online and status.session_new and not retained
                and len(self._ledger)):
            # That instance's queue on the broker is gone: what it had not acknowledged will not come.
            self._ledger.expedite(now)
