"""What travels between the ingest's threads: received messages, batches of lines, late-data marks.

paho's network thread turns each MQTT message into a :class:`Message`; the
decode loop adds its lines to a :class:`Batch`; the writer thread writes the
batch and acknowledges its messages. :class:`LateData` carries the oldest
counter reading stored to the rollup's scheduler thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

IDLE_FLUSH_S = 0.1
"""Write a partial batch once no message arrived for this long (the broker's window may be full)."""


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
