"""The agent as systemd runs it, when its own machinery fails: a spool that breaks while
running, a spool that cannot be opened, a configuration the link pool refuses.

Each failure must end the process with a non-zero exit code and one clear line
(systemd then restarts it, or, for a configuration error, waits for a fix),
never a healthy-looking service that loses every poll, never a traceback loop.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from agent.edge.spool import Spool
from tests.fixtures.ports import free_port, stop_process
from tests.test_agent_e2e import TERRIL
from tests.test_spool import corrupt_file, reading


def write_config(tmp_path: Path, sim: Any, **extra: Any) -> Path:
    config = {
        "site": {"slug": "eglise", "name": "Église", "peak_power_w": 3000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": free_port()},  # no broker: the spool keeps everything
        "devices": [{"name": "onduleur", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": 1,
                     "transport": {"type": "tcp", "host": sim.host, "port": sim.port}}],
        "spool": {"path": str(tmp_path / "spool.db")},
        **extra,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


class Notified:
    """A NOTIFY_SOCKET of our own and the agent started against it."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.sock_path = str(tmp_path / f"notify-{time.monotonic_ns()}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.log_path = tmp_path / "agent.log"
        env = {**os.environ, "NOTIFY_SOCKET": self.sock_path, "WATCHDOG_USEC": "1000000", "PYTHONUNBUFFERED": "1"}
        env.pop("WATCHDOG_PID", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([TERRIL, "agent", "-c", str(config)], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def collect(self, until: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until(self):
                return True
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                pass
        return bool(until(self))

    def count(self, text: str) -> int:
        return sum(text in m for _, m in self.messages)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        stop_process(self.proc)
        self.sock.close()


def test_spool_corrupted_while_running_exits_nonzero_then_restart_moves_it_aside(
    tmp_path: Path, sim_factory: Any
) -> None:
    sim = sim_factory()
    spool_path = tmp_path / "spool.db"
    sound = Spool(spool_path)  # larger than SQLite's page cache, so the agent meets the damage on disk
    sound.append([reading(i) for i in range(40_000)])
    sound.close()
    with sqlite3.connect(spool_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    agent = Notified(tmp_path, write_config(tmp_path, sim))
    try:
        assert agent.collect(lambda a: a.count("WATCHDOG=1") >= 2, timeout=20), agent.log
        corrupt_file(spool_path)
        corrupted_at = time.monotonic()
        assert agent.collect(lambda a: a.proc.poll() is not None, timeout=20), "the agent kept running"
        assert agent.proc.returncode == 1, agent.log
        late_pings = [t for t, m in agent.messages if m == "WATCHDOG=1" and t > corrupted_at + 2.5]
        assert not late_pings, "the watchdog was pinged with a broken spool"
        log = agent.log
        assert log.count("became unusable while running") == 1, log
        assert log.count("Traceback") <= 2, log  # the poll that met it, at most, not one per retry
    finally:
        agent.close()

    restarted = Notified(tmp_path, write_config(tmp_path, sim))
    try:
        assert restarted.collect(lambda a: a.count("READY=1") >= 1, timeout=20), restarted.log
        assert "moved it aside" in restarted.log
        assert list(tmp_path.glob("spool.db.corrupt-*"))
    finally:
        restarted.close()
    assert restarted.proc.returncode == 0


def test_a_spool_that_cannot_be_opened_stops_the_agent_with_one_clear_line(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory()
    config = write_config(tmp_path, sim)
    (tmp_path / "spool.db").mkdir()  # not openable as a database, and nothing to move aside
    proc = subprocess.run([TERRIL, "agent", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "spool.db cannot be opened" in output and "left in place" in output, output
    assert "Traceback" not in output, output
    assert (tmp_path / "spool.db").is_dir() and not list(tmp_path.glob("*.corrupt-*"))


def test_a_config_error_while_building_the_agent_exits_2_with_the_report(
    tmp_path: Path, sim_factory: Any, monkeypatch: Any, capsys: Any
) -> None:
    import argparse

    from agent.edge import daemon
    from agent.errors import ConfigError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("eglise devices", ["devices[1].transport: timeout 5.0 differs from 3.0"])

    monkeypatch.setattr(daemon, "build_pollers", refuse)  # what the link pool raises on a contradiction
    code = daemon.run(argparse.Namespace(config=str(write_config(tmp_path, sim_factory())), verbose=False))
    assert code == 2
    err = capsys.readouterr().err
    assert "eglise devices: invalid configuration:" in err and "devices[1].transport: timeout" in err


def test_start_timeout_is_extended_only_when_the_spool_is_checked(tmp_path: Path, sim_factory: Any) -> None:
    config = write_config(tmp_path, sim_factory())
    for expect_check in (True, False):  # a new spool is checked; after a clean stop it is not
        agent = Notified(tmp_path, config)
        try:
            assert agent.collect(lambda a: a.count("READY=1") >= 1, timeout=20), agent.log
        finally:
            agent.close()
        assert agent.proc.returncode == 0
        texts = [m for _, m in agent.messages]
        ready = next(i for i, m in enumerate(texts) if "READY=1" in m)
        extends = [i for i, m in enumerate(texts) if m.startswith("EXTEND_TIMEOUT_USEC=")]
        if expect_check:
            assert extends and extends[0] < ready, texts
            assert int(texts[extends[0]].split("=")[1]) >= 300_000_000
        else:
            assert not extends, texts


def test_watchdog_stops_when_the_forwarder_or_mqtt_thread_dies_or_hangs(
    tmp_path: Path, sim_factory: Any, mosquitto: Any, monkeypatch: Any
) -> None:
    import asyncio
    import threading

    from agent.edge.config import load_agent_config
    from agent.edge.daemon import Agent

    sock_path = str(tmp_path / "wd.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", sock_path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = load_agent_config(write_config(tmp_path, sim_factory(), broker={"host": "127.0.0.1",
                                                                            "port": mosquitto.port}))
    agent = Agent(config)
    agent.forwarder.stall_s = 1.0
    observed: dict[str, int] = {}

    def pings() -> int:
        n = 0
        while True:
            try:
                n += sock.recv(4096) == b"WATCHDOG=1"
            except BlockingIOError:
                return n

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await asyncio.sleep(1.5)
        pings()
        await asyncio.sleep(1.0)
        observed["healthy"] = pings()
        assert agent.health_problem() is None
        # the forwarder loop hangs (e.g. stuck in a call that never returns)
        release = threading.Event()
        real_step = agent.forwarder._step
        monkeypatch.setattr(agent.forwarder, "_step", lambda: (release.wait(10), real_step()))
        agent.forwarder.wake()
        await asyncio.sleep(1.5)
        pings()
        await asyncio.sleep(1.0)
        observed["forwarder hung"] = pings()
        problem_hung = agent.health_problem()
        release.set()
        monkeypatch.setattr(agent.forwarder, "_step", real_step)
        await asyncio.sleep(1.5)
        pings()
        await asyncio.sleep(1.0)
        observed["recovered"] = pings()
        # the forwarder thread dies
        agent.forwarder._stop.set()
        agent.forwarder.wake()
        await asyncio.sleep(1.2)
        pings()
        await asyncio.sleep(1.0)
        observed["forwarder dead"] = pings()
        problem_dead = agent.health_problem()
        agent.forwarder._stop.clear()
        agent.forwarder._thread = None
        agent.forwarder.start()
        # paho's network thread dies
        agent.publisher._client.loop_stop()
        await asyncio.sleep(0.5)
        pings()
        await asyncio.sleep(1.0)
        observed["mqtt dead"] = pings()
        problem_mqtt = agent.health_problem()
        stop.set()
        await task
        assert problem_hung is not None and "forwarder" in problem_hung
        assert problem_dead is not None and "forwarder" in problem_dead
        assert problem_mqtt is not None and "MQTT" in problem_mqtt

    try:
        asyncio.run(scenario())
    finally:
        sock.close()
    assert observed["healthy"] >= 3 and observed["recovered"] >= 3, observed
    assert observed["forwarder hung"] == 0 and observed["forwarder dead"] == 0 and observed["mqtt dead"] == 0, observed
