"""The agent's store-and-forward spool: every reading is written here before it is published.

A reading leaves the spool only after the ingest acknowledged that InfluxDB
stores it (``agent.edge.acks``; or, with an ingest that does not acknowledge, after
the broker's PUBACK with a success reason code), or when the spool is full or too old and the oldest rows
are dropped — and then the drop is counted in the database itself, so the count
survives restarts and is reported in the agent's health.

Design choices, for a Raspberry Pi that runs for years on an SD card:

* One SQLite file in WAL mode; one batch of polls (the agent coalesces the
  polls that end within a fraction of a second) is one transaction (one WAL
  append and one fsync), and one batch of acknowledgements is one delete
  transaction.
* ``synchronous=FULL`` by default. In WAL mode ``NORMAL`` survives a crash of
  the process, but the WAL is only fsynced at checkpoints, so a *power cut*
  can lose every commit since the last checkpoint — up to ~1000 pages, i.e.
  many minutes of readings during a broker outage, exactly when the spool
  matters. ``FULL`` adds one fsync of a few KiB per batch of polls (every ~10 s), which
  costs the card far less wear than the page writes themselves. Pass
  ``synchronous="NORMAL"`` to trade that guarantee for fewer flushes.
* One connection guarded by a lock, shared by the poller thread (append) and
  the forwarder thread (read, delete). Every operation is a few milliseconds;
  SQLite would serialise the writers anyway, and a single connection avoids
  ``database is locked`` retries and keeps the row counter exact.
* At open after anything but a clean close (kill -9, power cut, a crash, a
  new file), ``PRAGMA quick_check``: a corrupt file (SD card corruption, a
  half-written copy: SQLite says CORRUPT or NOTADB, or the check finds damage)
  is renamed aside with its -wal/-shm files and a fresh spool starts. The
  agent never crash-loops on its own spool. Any *other* failure to open (file
  locked by another process, disk full, read-only file system, I/O error,
  permissions) says nothing about the file's content: the spool is left where
  it is and :class:`SpoolUnavailable` says why (moving a healthy spool aside
  would hide days of readings from the next start).
* Why not check after a clean close too: ``quick_check`` reads the whole file,
  i.e. a minute or two for a 1–2 GB spool on an SD card after a long outage,
  before systemd hears READY. Damage happens while writing (power cut, a crash)
  and such a stop never leaves the clean mark; damage at rest (a failing card)
  is met by a cheap probe at open (root, oldest and newest pages) or at
  runtime, and the next point turns the latter into an unclean restart that
  checks. (The caller may pass ``before_check``: the agent uses it to extend
  systemd's start timeout while the check runs.) The row count comes from the
  ``meta`` table, kept exact in every transaction, not from ``count(*)``.
* Corruption found *while running* (``database disk image is malformed`` on an
  append or a delete) cannot be repaired under a live connection: the spool
  marks itself ``broken`` and calls ``on_broken`` once; the agent then stops
  pinging the watchdog and exits non-zero, so systemd restarts it and the
  open-time check moves the bad file aside. Without that, every poll would be
  lost from then on while the service looked healthy.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.encoding import encode_json

log = logging.getLogger(__name__)

SpoolKind = Literal["readings", "events"]
SPOOL_KINDS: tuple[str, ...] = ("readings", "events")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT    NOT NULL,
    ts_ms   INTEGER NOT NULL,
    payload TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('depth', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', random() & 9223372036854775807);
"""

BROKEN_ERRORCODES: frozenset[int] = frozenset({10, 11, 26})
"""SQLite result codes after which a running spool is not usable any more: SQLITE_IOERR (10),
SQLITE_CORRUPT (11), SQLITE_NOTADB (26). Locked, busy or full (5, 6, 13) are transient."""


def is_broken_error(exc: BaseException) -> bool:
    """True for an SQLite error that only reopening (and checking) the file can cure."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in BROKEN_ERRORCODES


CORRUPT_AT_OPEN_ERRORCODES: frozenset[int] = frozenset({11, 26})
"""SQLITE_CORRUPT and SQLITE_NOTADB: the only open errors that justify moving the file aside."""


class SpoolUnavailable(Exception):
    """The spool cannot be opened for a reason that is not its content (the file is left in place)."""


class _CorruptSpool(sqlite3.DatabaseError):
    """The file opened but its content is damaged (quick_check) or not a spool."""


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, _CorruptSpool) or (code is not None and (code & 0xFF) in CORRUPT_AT_OPEN_ERRORCODES)


_AGE_SCAN_ROWS = 5000
"""How many of the oldest rows one append inspects for expiry. Rows arrive in poll-time
order, so the expired ones are at the head; scanning only the head keeps an append
cheap even with a million rows spooled (no index on ts_ms to wear the card)."""


@dataclass(frozen=True)
class SpoolItem:
    """One thing to spool: a reading dict (``Reading.to_dict``) or an event payload.

    ``payload`` may also be that object already serialized as compact JSON (a
    ``str``): the forwarder serializes each reading once and reuses the text for
    the live message, so it is stored as given.
    """

    kind: SpoolKind
    ts_ms: int
    payload: dict[str, Any] | str


@dataclass(frozen=True)
class SpooledItem:
    """One row of the spool, as read back. ``payload`` is the compact JSON text stored."""

    id: int
    kind: SpoolKind
    ts_ms: int
    payload: str


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    """Rows waiting to be published."""
    oldest_age_s: float | None
    """Age of the oldest waiting row (by poll time), None when the spool is empty."""
    dropped: int
    """Rows dropped because the spool was full or too old, since this spool file was created."""


def _compact(payload: dict[str, Any] | str) -> str:
    return payload if isinstance(payload, str) else encode_json(payload)


class Spool:
    """A bounded, crash-safe FIFO of readings and events (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_rows: int = 1_000_000,
        max_age_s: float = 7 * 86400,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 30.0,
        before_check: Callable[[], None] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"spool max_rows must be at least 1, got {max_rows}")
        if max_age_s <= 0:
            raise ValueError(f"spool max_age_s must be positive, got {max_age_s}")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"spool synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._synchronous = synchronous
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._before_check = before_check
        self.checked = False
        """Whether the last open ran ``quick_check`` (it does after anything but a clean close)."""
        self.instance = ""
        """This spool file's random id (made with the file): the agent puts it in its message ids,
        so an acknowledgement meant for another spool file never deletes this one's rows."""
        self._held: set[int] = set()
        """Row ids in flight (see ``hold``)."""
        self._lock = threading.Lock()
        self.moved_aside: Path | None = None
        """Where a corrupt spool file was moved at open, if it was."""
        self.broken: str | None = None
        """Why the spool stopped being usable while running (see ``on_broken``); None while it is fine."""
        self.on_broken: Callable[[str], None] | None = None
        """Called once, from the thread that hit it, when the spool becomes unusable at runtime."""
        self._db = self._open_or_replace()

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=self._busy_timeout_s
        )
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolUnavailable(f"spool {self.path}: cannot switch to WAL journal mode (got {mode})")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA journal_size_limit=8388608")  # truncate the WAL back to 8 MiB after checkpoints
            meta = self._read_meta(db)
            self.checked = meta.get("clean") != 1
            if self.checked:
                if self._before_check is not None:
                    self._before_check()  # e.g. tell systemd that the start may take a while
                check = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:
                    raise _CorruptSpool("quick_check: " + "; ".join(str(c) for c in check[:3]))
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(spool)")}
            if not {"id", "kind", "ts_ms", "payload"} <= columns:
                raise _CorruptSpool(f"table spool has unexpected columns {sorted(columns)}")
            if not self.checked:
                # Cheap stand-in for the full check after a clean close: the root, the oldest and
                # the newest pages of the spool, which the first append and the first drain touch.
                db.execute("SELECT id, kind, ts_ms, length(payload) FROM spool ORDER BY id LIMIT 1").fetchall()
                db.execute("SELECT id, kind, ts_ms, length(payload) FROM spool ORDER BY id DESC LIMIT 1").fetchall()
            if "depth" not in meta:  # a spool without the counter (never, since it exists): count once
                depth = db.execute("SELECT count(*) FROM spool").fetchone()[0]
                db.execute("UPDATE meta SET value = ? WHERE key = 'depth'", (depth,))
            self.instance = format(int(db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]),
                                   "016x")
            # Running from now on: a crash or a power cut leaves 'clean' at 0, and the next open checks.
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clean', 0)")
        except BaseException:
            db.close()
            raise
        return db

    def _open_or_replace(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolUnavailable(f"spool {self.path}: cannot create its directory: {exc.strerror or exc}") from exc
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise self._unavailable(exc) from exc
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            try:
                for suffix in ("", "-wal", "-shm"):
                    src = Path(f"{self.path}{suffix}")
                    if src.exists():
                        os.replace(src, Path(f"{aside}{suffix}"))
            except OSError as move_error:
                raise SpoolUnavailable(
                    f"spool {self.path} is corrupt ({exc}) and cannot be moved aside: {move_error}"
                ) from move_error
            self.moved_aside = aside
            log.error(
                "spool %s is unreadable (%s): moved it aside to %s and started an empty spool",
                self.path, exc, aside,
            )
            try:
                return self._connect()
            except sqlite3.DatabaseError as again:
                raise self._unavailable(again) from again

    def _unavailable(self, exc: sqlite3.DatabaseError) -> SpoolUnavailable:
        name = getattr(exc, "sqlite_errorname", None)
        return SpoolUnavailable(
            f"spool {self.path} cannot be opened: {exc}{f' ({name})' if name else ''}; it was left in place "
            "(check that no other agent uses it, free space, permissions and the storage)"
        )

    @staticmethod
    def _read_meta(db: sqlite3.Connection) -> dict[str, int]:
        """The meta table as a dict; empty for a new file (no table yet)."""
        try:
            return {str(k): int(v) for k, v in db.execute("SELECT key, value FROM meta")}
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise

    def close(self) -> None:
        """Close, marking the file as cleanly closed (the next open then skips ``quick_check``)."""
        with self._lock:
            if self.broken is None:
                try:
                    self._db.execute("UPDATE meta SET value = 1 WHERE key = 'clean'")
                except sqlite3.Error as exc:  # the next open checks the file: nothing is lost
                    log.warning("spool %s: could not mark it cleanly closed (%s)", self.path, exc)
            self._db.close()

    # ------------------------------------------------------------------ runtime failures

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; an SQLite error that means "unusable" marks the spool broken."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.DatabaseError as exc:
                if is_broken_error(exc):
                    self._mark_broken(exc)
                raise

    def _mark_broken(self, exc: sqlite3.DatabaseError) -> None:
        if self.broken is not None:
            return
        self.broken = f"{exc} ({exc.sqlite_errorname})"
        log.critical(
            "spool %s became unusable while running: %s; the agent must restart so the spool is "
            "checked and, if corrupt, moved aside", self.path, self.broken,
        )
        if self.on_broken is not None:
            try:
                self.on_broken(self.broken)
            except Exception:
                log.exception("spool on_broken callback failed")

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        """ROLLBACK that never hides the error that caused it (it may fail on a corrupt file)."""
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # ------------------------------------------------------------------ writing

    def append(self, items: Sequence[SpoolItem]) -> list[int]:
        """Write one batch (a poll, or the polls the agent coalesced) in one transaction,
        then enforce the bounds. Returns the new row ids, in the order of *items*."""
        if not items:
            return []
        rows = []
        for item in items:
            if item.kind not in SPOOL_KINDS:
                raise ValueError(f"spool item kind must be one of {SPOOL_KINDS}, got {item.kind!r}")
            rows.append((item.kind, int(item.ts_ms), _compact(item.payload)))
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO spool (kind, ts_ms, payload) VALUES (?, ?, ?)", rows)
                # AUTOINCREMENT ids only grow, and BEGIN IMMEDIATE holds the write lock of
                # the one connection: the rows just inserted hold the last len(rows) ids.
                last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
                ids = list(range(last - len(rows) + 1, last + 1))
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'depth'", (len(ids),))
                self._enforce_bounds(db)
                db.execute("COMMIT")
            except BaseException:
                self._rollback(db)
                raise
            return ids

    def hold(self, ids: Iterable[int]) -> None:
        """Mark rows as in flight (published, PUBACK awaited): the bounds never drop them.

        A row dropped while in flight and then acknowledged would be delivered *and*
        counted as dropped; the drop counter must equal what is missing. The spool
        may exceed ``max_rows`` by the rows in flight (a few thousand at most)."""
        with self._lock:
            self._held.update(ids)

    def release(self, ids: Iterable[int]) -> None:
        """The fate of these rows is known (deleted after PUBACK, or to be sent again)."""
        with self._lock:
            self._held.difference_update(ids)

    def _enforce_bounds(self, db: sqlite3.Connection) -> None:
        """Drop the oldest rows beyond ``max_rows`` or older than ``max_age_s`` (never rows in flight); count them."""
        dropped = 0
        held = self._held
        cutoff_ms = int((self._clock() - self.max_age_s) * 1000)
        if not held:
            cur = db.execute(
                "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?) AND ts_ms < ?",
                (_AGE_SCAN_ROWS, cutoff_ms),
            )
            dropped += max(cur.rowcount, 0)
        else:
            expired = db.execute(
                "SELECT id FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?) AND ts_ms < ?",
                (_AGE_SCAN_ROWS, cutoff_ms),
            ).fetchall()
            dropped += self._delete_ids(db, [i for (i,) in expired if i not in held])
        depth = db.execute("SELECT value FROM meta WHERE key = 'depth'").fetchone()[0] - dropped
        if depth > self.max_rows:
            excess = depth - self.max_rows
            if not held:
                cur = db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (excess,))
                dropped += max(cur.rowcount, 0)
            else:
                oldest = db.execute("SELECT id FROM spool ORDER BY id LIMIT ?", (excess + len(held),)).fetchall()
                dropped += self._delete_ids(db, [i for (i,) in oldest if i not in held][:excess])
        if dropped:
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
            db.execute("UPDATE meta SET value = value - ? WHERE key = 'depth'", (dropped,))

    @staticmethod
    def _delete_ids(db: sqlite3.Connection, ids: list[int]) -> int:
        removed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cur = db.execute(f"DELETE FROM spool WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            removed += max(cur.rowcount, 0)
        return removed

    def delete(self, ids: Iterable[int]) -> int:
        """Remove rows the broker acknowledged, in one transaction. Returns how many were removed."""
        id_list = list(ids)
        if not id_list:
            return 0
        removed = 0
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(id_list), 500):
                    chunk = id_list[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    cur = db.execute(f"DELETE FROM spool WHERE id IN ({marks})", chunk)
                    removed += max(cur.rowcount, 0)
                db.execute("UPDATE meta SET value = value - ? WHERE key = 'depth'", (removed,))
                db.execute("COMMIT")
            except BaseException:
                self._rollback(db)
                raise
        return removed

    # ------------------------------------------------------------------ reading

    def oldest(self, limit: int, kind: SpoolKind | None = None, after_id: int = 0) -> list[SpooledItem]:
        """The oldest rows (by id) with ``id > after_id``, optionally of one kind."""
        with self._locked() as db:
            if kind is None:
                rows = db.execute(
                    "SELECT id, kind, ts_ms, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT id, kind, ts_ms, payload FROM spool WHERE id > ? AND kind = ? ORDER BY id LIMIT ?",
                    (after_id, kind, limit),
                ).fetchall()
        return [SpooledItem(int(r[0]), r[1], int(r[2]), r[3]) for r in rows]

    def between(self, first: int, last: int, limit: int) -> list[SpooledItem]:
        """The rows with ``first <= id <= last``, oldest first, at most *limit* (a resend of a range)."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT id, kind, ts_ms, payload FROM spool WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (first, last, limit),
            ).fetchall()
        return [SpooledItem(int(r[0]), r[1], int(r[2]), r[3]) for r in rows]

    def get(self, ids: Iterable[int]) -> list[SpooledItem]:
        """The rows with these ids that are still spooled, in id order."""
        id_list = list(ids)
        out: list[SpooledItem] = []
        with self._locked() as db:
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT id, kind, ts_ms, payload FROM spool WHERE id IN ({marks}) ORDER BY id", chunk
                ).fetchall()
                out += [SpooledItem(int(r[0]), r[1], int(r[2]), r[3]) for r in rows]
        out.sort(key=lambda i: i.id)
        return out

    def stats(self) -> SpoolStats:
        with self._locked() as db:
            depth = int(db.execute("SELECT value FROM meta WHERE key = 'depth'").fetchone()[0])
            dropped = int(db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0])
            row = db.execute("SELECT ts_ms FROM spool ORDER BY id LIMIT 1").fetchone()
        oldest_age = None if row is None else max(0.0, self._clock() - row[0] / 1000.0)
        return SpoolStats(depth=depth, oldest_age_s=oldest_age, dropped=dropped)

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, max_rows={self.max_rows}, max_age_s={self.max_age_s})"
