"""The SQLite spool: order, bounds with an exact drop count, crash safety, corrupt files."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.edge.spool import Spool, SpoolItem, SpoolUnavailable

NOW_MS = int(time.time() * 1000)


def reading(ts: int, device: str = "ond-1") -> SpoolItem:
    """A reading dict; small ``ts`` values are offsets from now (so the age bound keeps them)."""
    if ts < 10**12:
        ts += NOW_MS
    return SpoolItem("readings", ts, {"device": device, "kind": "inverter", "ts": ts, "fields": {"ac_power_w": 1.5}})


def test_append_oldest_delete_keep_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    ids = spool.append([reading(1000), reading(1000, "ond-2"), SpoolItem("events", NOW_MS, {"code": "X"})])
    ids += spool.append([reading(2000)])
    assert ids == sorted(ids) and len(set(ids)) == 4
    rows = spool.oldest(10)
    assert [r.id for r in rows] == ids
    assert rows[0].payload == (
        f'{{"device":"ond-1","kind":"inverter","ts":{NOW_MS + 1000},"fields":{{"ac_power_w":1.5}}}}'
    )
    assert [r.kind for r in spool.oldest(10, "events")] == ["events"]
    assert [r.id for r in spool.oldest(10, "readings", after_id=ids[0])] == [ids[1], ids[3]]
    assert spool.delete([ids[0], ids[2]]) == 2
    assert [r.id for r in spool.oldest(10)] == [ids[1], ids[3]]
    assert spool.stats().depth == 2
    assert spool.delete([ids[0]]) == 0  # already gone: nothing removed, counter unchanged
    assert spool.stats().depth == 2


def test_full_spool_drops_oldest_and_counts_exactly_what_is_missing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_rows=50)
    now_ms = int(time.time() * 1000)
    all_ts = []
    for poll in range(40):
        batch = [reading(now_ms + poll * 10 + i, f"d{i}") for i in range(3)]
        all_ts += [b.ts_ms for b in batch]
        spool.append(batch)
    kept = [r.ts_ms for r in spool.oldest(1000)]
    stats = spool.stats()
    assert stats.depth == len(kept) == 50
    assert kept == all_ts[-50:], "the newest rows are kept, in order"
    assert stats.dropped == len(all_ts) - len(kept) == 70
    spool.close()
    reopened = Spool(tmp_path / "spool.db", max_rows=50)
    assert reopened.stats().dropped == 70, "the drop counter survives a restart"
    assert reopened.stats().depth == 50


def test_rows_older_than_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    spool = Spool(tmp_path / "spool.db", max_age_s=3600, clock=lambda: now[0])
    spool.append([reading(int((now[0] - 7200) * 1000))])  # already too old: dropped at once
    assert spool.stats().depth == 0 and spool.stats().dropped == 1
    spool.append([reading(int(now[0] * 1000))])
    now[0] += 1800
    spool.append([reading(int(now[0] * 1000))])
    stats = spool.stats()
    assert stats.depth == 2 and stats.oldest_age_s == pytest.approx(1800)
    now[0] += 2000  # the first of the two is now 3800 s old
    spool.append([reading(int(now[0] * 1000))])
    assert [r.ts_ms for r in spool.oldest(10)] == [int((now[0] - 2000) * 1000), int(now[0] * 1000)]
    assert spool.stats().dropped == 2


def test_two_threads_append_and_delete_concurrently(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", synchronous="NORMAL")
    appended: list[int] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(300):
            appended.extend(spool.append([reading(i), reading(i, "b")]))
        done.set()

    deleted = 0
    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set() or spool.stats().depth:
        rows = spool.oldest(50)
        deleted += spool.delete(r.id for r in rows)
    thread.join()
    assert deleted == len(appended) == 600
    assert spool.stats().depth == 0


def test_corrupt_file_is_moved_aside_and_a_fresh_spool_works(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.append([reading(i) for i in range(200)])
    spool.close()
    with open(path, "r+b") as f:  # scribble over the b-tree pages, keep the header
        f.seek(4096)
        f.write(os.urandom(8192))
    with caplog.at_level(logging.ERROR, logger="agent.edge.spool"):
        fresh = Spool(path)
    assert fresh.moved_aside is not None and fresh.moved_aside.exists()
    assert fresh.moved_aside.name.startswith("spool.db.corrupt-")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "moved it aside" in errors[0].getMessage()
    assert fresh.stats().depth == 0
    fresh.append([reading(1)])
    assert [r.ts_ms for r in fresh.oldest(10)] == [NOW_MS + 1]


def test_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not sqlite\n" * 100)
    spool = Spool(path)
    assert spool.moved_aside is not None
    assert spool.moved_aside.read_bytes().startswith(b"this is not sqlite")
    assert spool.append([reading(5)])


_WRITER = r"""
import sys, time
from agent.edge.spool import Spool, SpoolItem, SpoolUnavailable
spool = Spool(sys.argv[1], synchronous=sys.argv[2])
poll = int(sys.argv[3])
base = int(time.time() * 1000) - poll  # poll numbers become recent millisecond timestamps
while True:
    items = [SpoolItem("readings", base + poll, {"device": f"d{i}", "ts": poll})
             for i in range(5)]
    spool.append(items)
    print(poll, flush=True)   # reported only after the commit returned
    poll += 1
"""


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_never_loses_a_committed_poll(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "spool.db"
    rng = random.Random(1234)
    committed: list[int] = []
    for run in range(5):
        next_poll = run * 10**7  # each run numbers its polls apart: a poll committed but not printed is not reused
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), synchronous, str(next_poll)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.stdout is not None
        time.sleep(0.4 + rng.random() * 0.6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lines = proc.stdout.read().split()
        proc.stdout.close()
        committed += [int(x) for x in lines]
    assert len(committed) > 20, "the writer should have committed polls before each kill"
    spool = Spool(path)
    assert spool.moved_aside is None, "a killed writer never corrupts the spool"
    per_poll = Counter(json.loads(r.payload)["ts"] for r in spool.oldest(10**7))
    missing = [p for p in committed if p not in per_poll]
    assert missing == []
    assert all(per_poll[p] == 5 for p in committed), "every committed poll is complete (one transaction)"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def fill_and_corrupt(path: Path, spool: Spool, rows: int = 40_000) -> None:
    """Fill *spool* beyond SQLite's page cache, checkpoint, then overwrite the file's middle with garbage
    (SD-card corruption under a running agent: the open connection meets it on its next cache miss)."""
    spool.append([SpoolItem("readings", NOW_MS + i, {"x": "y" * 100, "i": i}) for i in range(rows)])
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    corrupt_file(path)


def corrupt_file(path: Path) -> None:
    """Overwrite all but the first pages with garbage, then commit a small change through another
    connection: a connection that is open sees the WAL moved, drops its page cache and reads the damage."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(4096 * 10)
        f.write(random.Random(3).randbytes(size - 4096 * 11))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('test-poke', 1)")
    other.close()


def test_corruption_found_at_runtime_marks_the_spool_broken_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    reasons: list[str] = []
    spool.on_broken = reasons.append
    fill_and_corrupt(tmp_path / "spool.db", spool)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        spool.append([reading(1)])
    assert spool.broken is not None and "SQLITE_CORRUPT" in spool.broken
    with pytest.raises(sqlite3.DatabaseError):
        spool.delete([1, 2])
    assert len(reasons) == 1, "on_broken is called once, not per failed operation"
    spool.close()


def test_transient_errors_do_not_mark_the_spool_broken(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    holder = sqlite3.connect(tmp_path / "spool.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock: SQLITE_BUSY, transient
    spool._db.execute("PRAGMA busy_timeout=50")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        spool.append([reading(1)])
    holder.execute("ROLLBACK")
    holder.close()
    assert spool.broken is None
    assert spool.append([reading(2)])
    spool.close()


def test_a_locked_spool_is_not_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first = Spool(path)
    first.append([reading(1)])
    first.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writes to it (a second agent by mistake)
    try:
        with pytest.raises(SpoolUnavailable, match=r"database is locked .*left in place"):
            Spool(path, busy_timeout_s=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.corrupt-*")), "a healthy spool was moved aside"
    assert Spool(path).stats().depth == 1


def test_an_unopenable_path_is_reported_not_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.mkdir()  # e.g. a mount point or a permission problem: SQLITE_CANTOPEN
    (path / "keep").write_text("x")
    with pytest.raises(SpoolUnavailable, match=r"spool .*spool.db cannot be opened: .*CANTOPEN"):
        Spool(path)
    assert (path / "keep").exists() and not list(tmp_path.glob("*.corrupt-*"))


def test_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not an SQLite file, just garbage on the card" * 100)
    spool = Spool(path)
    assert spool.moved_aside is not None and spool.moved_aside.exists()
    assert spool.stats().depth == 0


def test_quick_check_runs_only_after_an_unclean_stop(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    checks: list[int] = []
    first = Spool(path, before_check=lambda: checks.append(1))
    assert first.checked and checks == [1], "a new file is checked (nothing says it was closed cleanly)"
    first.append([reading(1), reading(2)])
    first.close()
    clean = Spool(path, before_check=lambda: checks.append(2))
    assert not clean.checked and checks == [1], "a clean close skips the check"
    assert clean.stats().depth == 2, "depth comes from the meta table"
    clean.close()
    # kill -9 while open: the process dies without close()
    code = (
        "import os, sys; from agent.edge.spool import Spool, SpoolItem; "
        f"s = Spool({str(path)!r}); s.append([SpoolItem('readings', {NOW_MS}, '{{}}')]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    after_crash = Spool(path, before_check=lambda: checks.append(3))
    assert after_crash.checked and checks == [1, 3]
    assert after_crash.stats().depth == 3
    after_crash.close()


def test_rows_in_flight_are_not_dropped_so_the_drop_count_is_what_is_missing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_rows=10)
    ids = spool.append([reading(i) for i in range(10)])
    spool.hold(ids[:3])  # the forwarder published the three oldest rows; PUBACK awaited
    ids += spool.append([reading(10 + i) for i in range(5)])  # full: 5 of the oldest must go
    stats = spool.stats()
    assert stats.dropped == 5
    assert [r.id for r in spool.oldest(100)] == ids[:3] + ids[8:], "rows in flight were kept"
    assert spool.delete(ids[:3]) == 3  # their PUBACK arrives: delivered
    spool.release(ids[:3])
    delivered = set(ids[:3])
    remaining = {r.id for r in spool.oldest(100)}
    missing = set(ids) - delivered - remaining
    assert len(missing) == spool.stats().dropped == 5
    spool.append([reading(20)])  # 8 rows now: below max_rows, nothing more dropped
    assert spool.stats().depth == 8 and spool.stats().dropped == 5
