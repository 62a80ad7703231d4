"""What travels between the ingest's threads: received messages, batches of lines, late-data marks.

paho's network thread turns each MQTT message into a :class:`Message` and offers
it to the :class:`Inbox`; the decode loop adds its lines to a :class:`Batch`; the
writer thread writes the batch, acknowledges its messages and releases their
bytes from the inbox's budget. :class:`LateData` carries the oldest counter
reading stored to the rollup's scheduler thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.central.ingest.stats import IngestStats

log = logging.getLogger(__name__)

IDLE_FLUSH_S = 0.1
"""Write a partial batch once no message arrived for this long (the broker's window may be full)."""
BATCH_MAX_BYTES = 16 * 1024 * 1024
"""Write a batch once its messages hold this many bytes: bounds the dead letters published at once."""
MESSAGE_OVERHEAD_BYTES = 400
"""What a held message costs besides its payload and topic (Python objects), for the inbox's budget."""


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
    message_id: str | None = None
    """The agent's id of the message, acknowledged on ``<site>/ack`` once stored (``ingest.acks``)."""

    @property
    def cost(self) -> int:
        """Bytes this message holds while it waits (payload, topic, objects)."""
        return len(self.payload) + len(self.topic) + MESSAGE_OVERHEAD_BYTES


@dataclass
class Batch:
    """Messages and their lines, written together; ``starts[k]`` is the index of message k's first line."""

    messages: list[Message] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    bytes: int = 0
    """What its messages cost (:attr:`Message.cost`)."""

    def add(self, msg: Message, lines: tuple[str, ...]) -> None:
        self.starts.append(len(self.lines))
        self.messages.append(msg)
        self.lines.extend(lines)
        self.bytes += msg.cost


class Inbox:
    """Received messages waiting for the decode loop, with every message held until it is settled
    (waiting here, batched, or being written) counted against one budget in bytes.

    QoS 1 messages are bounded by the MQTT 5 receive window (``receive_maximum``): the
    broker sends no more until some are acknowledged, so that backpressure is kept and
    a QoS 1 message is never dropped. QoS 0 messages have no such bound (one site
    sending 500 KiB messages at 600/s took the ingest past 1 GB): one that would take
    the held bytes over *max_bytes* is dropped and counted (``stats.shed_qos0``), with
    one log line when the shedding starts and one when the held bytes fell back under
    half the budget. QoS 0 is "at most once" by contract; the agents send only their
    health (every 60 s, retained) at QoS 0.
    """

    def __init__(self, max_bytes: int, stats: IngestStats) -> None:
        self.max_bytes = max_bytes
        self.stats = stats
        self._queue: queue.Queue[Message] = queue.Queue()
        self._lock = threading.Lock()
        self.held_bytes = 0
        """Bytes of the messages received and not yet settled."""
        self._shedding_since: float | None = None
        self._shed_at_start = 0

    def offer(self, msg: Message) -> bool:
        """Called on paho's network thread: queue *msg*, or drop it (QoS 0 over budget) and say so."""
        cost = msg.cost
        with self._lock:
            if msg.qos == 0 and self.held_bytes + cost > self.max_bytes:
                self.stats.shed_qos0 += 1
                self.stats.shed_qos0_bytes += len(msg.payload)
                if self._shedding_since is None:
                    self._shedding_since = time.monotonic()
                    self._shed_at_start = self.stats.shed_qos0 - 1
                    log.warning("ingest holds %.0f MiB of messages (budget %.0f MiB): dropping QoS 0 messages "
                                "(first: %s) until it has room; QoS 1 messages are kept",
                                self.held_bytes / 2**20, self.max_bytes / 2**20, msg.topic[:200])
                return False
            self.held_bytes += cost
        self._queue.put(msg)
        return True

    def get(self, timeout: float) -> Message:
        """The next message (raises ``queue.Empty`` after *timeout* seconds)."""
        return self._queue.get(timeout=timeout)

    def release(self, messages: Iterable[Message]) -> None:
        """Called once *messages* are settled (acknowledged or left for redelivery): their bytes are free."""
        freed = sum(m.cost for m in messages)
        with self._lock:
            self.held_bytes -= freed
            if self._shedding_since is not None and self.held_bytes <= self.max_bytes // 2:
                log.info("ingest has room again: %d QoS 0 message(s) dropped in %.0f s",
                         self.stats.shed_qos0 - self._shed_at_start, time.monotonic() - self._shedding_since)
                self._shedding_since = None


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
