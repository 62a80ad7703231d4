"""The demo's child processes: Mosquitto, InfluxDB, one agent per site, the ingest.

Every child is started by this process, remembered by PID and stopped by PID
(SIGTERM, then SIGKILL after a timeout) — never by name, so a Mosquitto or an
InfluxDB the machine already runs is never touched. Children run in their own
session: the Ctrl-C of the terminal reaches the demo only, which then stops
them in order (agents first, so they flush; the databases last).

Logs go to ``<run>/logs/<name>.log`` and are appended to, never removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
INFLUXD_CANDIDATES = ("/usr/bin/influxd", "/usr/local/bin/influxd")


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what to do."""


def find_binary(name: str, candidates: tuple[str, ...], package: str) -> str:
    found = shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if found is None:
        raise DemoError(f"{name} is not installed: install the Debian package {package!r} (`make deps` does)")
    return found


def terril_command() -> list[str]:
    """How to run ``terril``: the console script next to this interpreter, else ``python -m agent``."""
    script = Path(sys.executable).parent / "terril"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stable_ports(path: Path, names: tuple[str, ...]) -> dict[str, int]:
    """Ports for the central services, the same as last run when still free.

    Keeping them lets a Grafana data source set up once keep working from one
    ``make demo`` to the next.
    """
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    ports: dict[str, int] = {}
    for name in names:
        wanted = previous.get(name)
        if isinstance(wanted, int) and 1024 < wanted < 65536 and wanted not in ports.values() and port_is_free(wanted):
            ports[name] = wanted
        else:
            port = free_port()
            while port in ports.values():
                port = free_port()
            ports[name] = port
    path.write_text(json.dumps(ports, indent=1) + "\n", encoding="utf-8")
    return ports


def wait_for_port(port: int, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise DemoError(f"{child.name} does not listen on 127.0.0.1:{port} after {timeout:.0f} s; see {child.log_path}")


@dataclass
class Child:
    """One process started by the demo, its log file, and how to stop it."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z} make demo starts: "
                      f"{' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # the terminal's Ctrl-C reaches the demo, which stops us in order
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(f"{self.name} exited with code {self.proc.returncode}; see {self.log_path}:\n"
                            + tail(self.log_path))

    def send_term(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait_or_kill(self, timeout: float) -> str:
        """Wait for the exit a SIGTERM asked for; SIGKILL after ``timeout``. Says how it ended."""
        if self.proc is None:
            return "not started"
        try:
            code = self.proc.wait(timeout=max(0.0, timeout))
            return f"exited ({code})"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return f"killed after {timeout:.0f} s"


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


@dataclass
class Children:
    """Every process the demo started, in start order."""

    items: list[Child] = field(default_factory=list)

    def add(self, child: Child) -> Child:
        self.items.append(child)
        return child

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.items if c.pid is not None}

    def dead(self) -> list[Child]:
        return [c for c in self.items if c.proc is not None and c.proc.poll() is not None]

    def stop_all(self, groups: list[list[str]], timeout: float = 10.0) -> dict[str, str]:
        """Stop children group by group (SIGTERM all of a group, then wait, SIGKILL the late ones)."""
        outcome: dict[str, str] = {}
        named = {c.name: c for c in self.items}
        ordered = [[named[n] for n in g if n in named] for g in groups]
        rest = [c for c in self.items if all(c not in g for g in ordered)]
        for group in [rest, *ordered]:
            for child in group:
                child.send_term()
            deadline = time.monotonic() + timeout
            for child in group:
                outcome[child.name] = child.wait_or_kill(deadline - time.monotonic())
        return outcome


# --------------------------------------------------------------------------- Mosquitto


def mosquitto_child(run_dir: Path, port: int) -> Child:
    binary = find_binary("mosquitto", MOSQUITTO_CANDIDATES, "mosquitto")
    data = run_dir / "mosquitto"
    data.mkdir(parents=True, exist_ok=True)
    lines = [
        # Started as root, Mosquitto drops to user 'mosquitto', which cannot write here.
        "user root" if os.geteuid() == 0 else "",
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data}/",
        # The default of 1000 silently drops QoS 1 messages queued for a slow subscriber.
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    config = data / "mosquitto.conf"
    config.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    return Child("mosquitto", [binary, "-c", str(config)], run_dir / "logs" / "mosquitto.log")


# --------------------------------------------------------------------------- InfluxDB 1.x


def influxdb_config(data: Path, http_port: int, rpc_port: int) -> str:
    """An InfluxDB 1.x config serving only 127.0.0.1, all state under *data* (demo and tests).

    Both ports are given because the backup RPC listener binds 8088 by default,
    which a second instance on the same machine could not get.
    """
    return f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data}/meta"
  logging-enabled = false

[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = 0

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
"""


def influxd_child(run_dir: Path, http_port: int, rpc_port: int) -> Child:
    binary = find_binary("influxd", INFLUXD_CANDIDATES, "influxdb")
    data = run_dir / "influxdb"
    data.mkdir(parents=True, exist_ok=True)
    config = data / "influxdb.conf"
    config.write_text(
        "# InfluxDB 1.x for `make demo` (rewritten at every start)\n" + influxdb_config(data, http_port, rpc_port),
        encoding="utf-8",
    )
    return Child("influxd", [binary, "-config", str(config)], run_dir / "logs" / "influxd.log")


def wait_for_influx(url: str, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=0.5) as resp:
                if resp.status == 204:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise DemoError(f"InfluxDB does not answer {url}/ping after {timeout:.0f} s; see {child.log_path}")


def create_database(url: str, name: str) -> None:
    """``CREATE DATABASE`` (harmless when it exists)."""
    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=body, method="POST"), timeout=30):
            return
    except (OSError, urllib.error.HTTPError) as exc:
        raise DemoError(f"InfluxDB {url}: cannot create database {name!r}: {exc}") from None
