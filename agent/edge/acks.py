"""The agent's side of the end-to-end acknowledgement: what was sent, what the ingest stored, what is due again.

Why: a broker's PUBACK only says the broker has a message. Mosquitto keeps
queued messages in RAM and writes them to disk every ``autosave_interval``;
killed, restored from a backup, replaced, or past its ``max_queued_messages``,
it loses what it acknowledged. So a spool row lives until the ingest says
InfluxDB holds it (``<root>/<site>/ack``), and a row the broker accepted but
nobody acknowledged within ``resend_after`` is sent again (DESIGN.md,
"Delivery guarantees"; a replay overwrites the same point).

Pieces, each a small pure object owned by the forwarder's thread:

* :func:`encode_message_id` / :func:`parse_message_id`: a message's id is
  ``<spool instance>:<row ranges>``, e.g. ``3f9a…:120-619,624``. The ranges
  make an ack self-contained (it deletes the right rows even after the agent
  restarted), and the spool's random instance id (made with the spool file)
  keeps a late ack for a spool that was moved aside, or for a reinstalled
  agent, from deleting the new spool's rows with the same numbers.
* :class:`SentLedger`: row ranges the broker accepted, with when each is due
  again; kept in RAM only (after a restart everything spooled is simply sent
  again: at least once), as ranges, so a day of an absent ingest is a few
  thousand entries, not millions.
* :class:`IngestPresence`: the retained ``<root>/_ingest/<id>/status`` of
  every ingest instance. It decides the mode — ``acks`` when some instance
  announces acknowledgements, ``puback`` (delete at the broker's PUBACK, the
  behaviour before acknowledgements existed) when none does, so an agent
  upgraded before its ingest neither grows its spool nor resends in a loop —
  and whether the ingest is *away* (every instance offline): then nothing is
  resent, so the broker's queue does not fill with copies.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from agent.schema import MESSAGE_ID_RE, STATUS_ONLINE

Mode = Literal["undecided", "acks", "puback"]

RESEND_BACKOFF_MAX = 8
"""A row resent again and again waits ``resend_after`` x 1, 2, 4, 8, then 8 again (an ingest that
stores nothing of this site — an ACL on ``ack``? — costs a resend every 8 x resend_after, not a loop)."""


# --------------------------------------------------------------------------- message ids


def ranges_of(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        elif not out or i > out[-1][1]:
            out.append((i, i))
    return out


def encode_message_id(instance: str, ids: Iterable[int]) -> str:
    """``<instance>:<ranges>`` for the spool rows of one message."""
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges_of(ids)]
    return f"{instance}:{','.join(parts)}"


def parse_message_id(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    """``(instance, ranges)`` of an id this agent wrote; None for anything else (never raises)."""
    if not isinstance(text, str) or not MESSAGE_ID_RE.fullmatch(text):
        return None
    instance, _, spec = text.partition(":")
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            return None
        a, b = int(first), int(last) if dash else int(first)
        if b < a or b - a > 1_000_000:
            return None
        ranges.append((a, b))
    return instance, ranges


def parse_ack(payload: bytes, site: str) -> list[str]:
    """The message ids of an ``ack`` payload for *site* (empty when it is not one: logged by the caller)."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict) or doc.get("site") != site or not isinstance(doc.get("ids"), list):
        return []
    return [i for i in doc["ids"] if isinstance(i, str)]


# --------------------------------------------------------------------------- sent, awaiting the ack


@dataclass(slots=True)
class _Entry:
    first: int
    last: int
    sent_at: float
    due_at: float
    attempts: int
    """How many times these rows were accepted by the broker without an ack (1 after the first send)."""


@dataclass(frozen=True)
class Due:
    """Rows to send again: the range and how many sends they already had."""

    first: int
    last: int
    attempts: int


class SentLedger:
    """Disjoint ranges of spool rows accepted by the broker and not yet acknowledged by the ingest."""

    def __init__(self, resend_after: float) -> None:
        if resend_after <= 0:
            raise ValueError(f"resend_after must be positive, got {resend_after}")
        self.resend_after = resend_after
        self._firsts: list[int] = []
        self._entries: dict[int, _Entry] = {}
        self.rows = 0
        """Rows in the ledger (sent, not acknowledged)."""
        self._next_due = float("inf")
        """No entry is due before this (a lower bound: checking every second stays cheap)."""

    def __len__(self) -> int:
        return len(self._firsts)

    def _delay(self, attempts: int) -> float:
        return self.resend_after * float(min(2 ** max(attempts - 1, 0), RESEND_BACKOFF_MAX))

    def add(self, ids: Iterable[int], now: float, attempts: int = 1) -> None:
        """The broker accepted these rows (PUBACK) at *now*; due again after ``resend_after`` (with back-off)."""
        for first, last in ranges_of(ids):
            self._remove_range(first, last)  # a resend of rows still recorded replaces them
            bisect.insort(self._firsts, first)
            due_at = now + self._delay(attempts)
            self._entries[first] = _Entry(first, last, now, due_at, attempts)
            self._next_due = min(self._next_due, due_at)
            self.rows += last - first + 1

    def remove(self, ranges: Iterable[tuple[int, int]]) -> int:
        """The ingest acknowledged these rows (or they left the spool). Returns how many were recorded."""
        return sum(self._remove_range(a, b) for a, b in ranges)

    def _remove_range(self, first: int, last: int) -> int:
        removed = 0
        k = bisect.bisect_right(self._firsts, last)
        while k > 0:
            start = self._firsts[k - 1]
            entry = self._entries[start]
            if entry.last < first:
                break
            k -= 1
            del self._firsts[k]
            del self._entries[start]
            lo, hi = max(entry.first, first), min(entry.last, last)
            removed += hi - lo + 1
            if entry.first < lo:  # keep the part before
                self._entries[entry.first] = _Entry(entry.first, lo - 1, entry.sent_at, entry.due_at, entry.attempts)
                self._firsts.insert(k, entry.first)
            if hi < entry.last:  # keep the part after
                self._entries[hi + 1] = _Entry(hi + 1, entry.last, entry.sent_at, entry.due_at, entry.attempts)
                bisect.insort(self._firsts, hi + 1)
        self.rows -= removed
        return removed

    def covering(self, row_id: int) -> int | None:
        """The last id of the range holding *row_id*, None when the row is not recorded as sent."""
        k = bisect.bisect_right(self._firsts, row_id)
        if k == 0:
            return None
        entry = self._entries[self._firsts[k - 1]]
        return entry.last if entry.last >= row_id else None

    def take_due(self, now: float) -> list[Due]:
        """Remove and return, oldest rows first, every range whose resend time has come."""
        if now < self._next_due:
            return []
        due = [e for e in self._entries.values() if e.due_at <= now]
        self._next_due = min((e.due_at for e in self._entries.values() if e.due_at > now), default=float("inf"))
        for e in due:
            self._remove_range(e.first, e.last)
        return [Due(e.first, e.last, e.attempts) for e in sorted(due, key=lambda e: e.first)]

    def postpone(self, now: float) -> None:
        """The ingest just came back: give it ``resend_after`` to drain what the broker queued for it."""
        for e in self._entries.values():
            e.due_at = max(e.due_at, now + self._delay(e.attempts))
        self._next_due = min((e.due_at for e in self._entries.values()), default=float("inf"))

    def expedite(self, due_at: float) -> None:
        """Everything is due by *due_at* at the latest (the broker or the ingest's session was lost)."""
        for e in self._entries.values():
            e.due_at = min(e.due_at, due_at)
        self._next_due = min(self._next_due, due_at)

    def clear(self) -> list[tuple[int, int]]:
        """Forget every range (the mode went back to PUBACK deletion); returns them."""
        out = [(e.first, e.last) for e in self._entries.values()]
        self._firsts.clear()
        self._entries.clear()
        self.rows = 0
        self._next_due = float("inf")
        return out

    def oldest_sent_at(self) -> float | None:
        return min((e.sent_at for e in self._entries.values()), default=None)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self._entries[f].first, self._entries[f].last) for f in self._firsts)


# --------------------------------------------------------------------------- the ingest's presence


@dataclass(frozen=True)
class IngestStatus:
    online: bool
    acks: bool
    session_new: bool


def parse_ingest_status(payload: bytes) -> IngestStatus | None:
    """An ingest instance's status document; None for an empty (cleared) or unreadable one."""
    if not payload:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    return IngestStatus(online=doc.get("status") == STATUS_ONLINE,
                        acks=isinstance(doc.get("acks"), int) and not isinstance(doc.get("acks"), bool)
                        and doc["acks"] >= 1,
                        session_new=doc.get("session") == "new")


class IngestPresence:
    """What the agent knows of the ingest instances, from their retained statuses."""

    def __init__(self) -> None:
        self._instances: dict[str, IngestStatus] = {}

    def update(self, instance: str, status: IngestStatus | None) -> None:
        if status is None:
            self._instances.pop(instance, None)
        else:
            self._instances[instance] = status

    @property
    def acknowledges(self) -> bool:
        """Some ingest instance announced acknowledgements (online or not)."""
        return any(s.acks for s in self._instances.values())

    @property
    def away(self) -> bool:
        """Acknowledging instances are known and none of them is online."""
        acking = [s for s in self._instances.values() if s.acks]
        return bool(acking) and not any(s.online for s in acking)

    def describe(self) -> str:
        online = sorted(k for k, s in self._instances.items() if s.online)
        return f"{len(online)} of {len(self._instances)} ingest instance(s) online"
