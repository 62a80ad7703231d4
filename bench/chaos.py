"""Chaos run of the delivery path: random SIGKILLs of the broker, the ingest, InfluxDB and the agent; prints JSON.

For ``--seconds`` (default 300) one ``terril agent`` polls a simulated inverter
and meter every second and one ``terril ingest`` writes to InfluxDB 1.x, through
a Mosquitto that saves its store every 30 s (the shipped ``autosave_interval``:
a SIGKILL loses what it accepted since). Every 8–25 s one of the four, chosen at
random, is killed with SIGKILL and restarted 1–12 s later (one at a time, so
the run stays bounded). Then everything runs until every poll the agent
committed to its spool (its ``-v`` log, across restarts) is in InfluxDB, or
``--drain`` seconds.

Reported: ``polls`` (committed by the agent), ``missing`` (not in InfluxDB:
must be 0), ``extra_rows`` (in InfluxDB, never committed: must be 0),
``duplicates_seen`` (readings an observer on the broker saw more than once: a
lower bound of the copies sent, since the observer's queue dies with the broker
too), ``rows_resent`` (the agent's "sending again" lines), and the delay from
poll to InfluxDB (sampled every 2 s): ``delay_s`` median, p99, worst.

Usage: ``.venv/bin/python bench/chaos.py [--seconds 300] [--seed 1] [--resend-after 30]``.
Exit status 0 when nothing is missing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from tests.fixtures.influx import InfluxServer
from tests.fixtures.modbus_servers import DEFAULT_UNITS, _config, _start
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.fixtures.ports import free_port, stop_process
from tests.ingest_support import DB, ingest_config_dict, write_config

TERRIL = str(Path(sys.executable).with_name("terril"))
SPOOLED = re.compile(r"spooled (\S+) ts=(\d+)")
RESENT = re.compile(r"sending again (\d+) row")
SITE = "mairie"


class Proc:
    """A terril command as a child process, its output appended to one log across restarts."""

    def __init__(self, args: list[str], log: Path, ready: bytes | None = None) -> None:
        self.args, self.log, self.ready = args, log, ready
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([TERRIL, *self.args], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if self.ready is not None:
            deadline = time.monotonic() + 30
            while self.ready not in self.log.read_bytes()[offset:]:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.args[0]} did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)


def stored(influx: InfluxServer) -> Counter[tuple[str, int]]:
    out: Counter[tuple[str, int]] = Counter()
    for measurement, field in (("inverter", "ac_power_w"), ("meter", "power_w")):
        for row in influx.rows(f"SELECT {field}, device FROM {measurement} WHERE site = '{SITE}'", DB):
            out[(str(row["device"]), int(row["time"]))] += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resend-after", type=float, default=30.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="terril-chaos-"))

    broker = MosquittoBroker(tmp, persistence=True)
    broker.config_path.write_text(broker.config_path.read_text().replace("autosave_interval 1", "autosave_interval 30"))
    broker.start()
    influx = InfluxServer(tmp / "influx")
    influx.start()
    influx.create_database(DB)
    server, _clock, sim = _start(_config({"tcp": {"port": free_port(), "host": "127.0.0.1"}, "units": DEFAULT_UNITS},
                                         start="2024-06-21T12:00:00+02:00", time_factor=1.0,
                                         site=(50.457, 2.793), clouds=0.0, seed=0))
    sim_port = server.endpoint.port  # type: ignore[union-attr]
    ingest_cfg = write_config(tmp / "ingest.yaml", ingest_config_dict(broker.port, influx.url, client_id="ingest-chaos",
                                                                      max_delay=0.2, retry_max_delay=5.0))
    agent_cfg = tmp / "agent.yaml"
    agent_cfg.write_text(yaml.safe_dump({
        "site": {"slug": SITE, "name": "Hôtel de ville", "peak_power_w": 10000, "latitude": 50.457,
                 "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": broker.port, "keepalive": 10},
        "devices": [{"name": name, "kind": kind, "driver": "sunspec", "unit": unit, "interval": 1,
                     "transport": {"type": "tcp", "host": "127.0.0.1", "port": sim_port, "timeout": 1.0}}
                    for name, kind, unit in (("onduleur-1", "inverter", 1), ("compteur", "meter", 3))],
        "spool": {"path": str(tmp / "spool.db"), "resend_after": args.resend_after},
        "health": {"interval": 10},
    }, allow_unicode=True))
    ingest = Proc(["ingest", "-c", str(ingest_cfg)], tmp / "ingest.log", ready=b"subscribed to")
    agent = Proc(["-v", "agent", "-c", str(agent_cfg)], tmp / "agent.log")
    observer = Subscriber(broker.port, f"terril/{SITE}/readings", persistent=True, client_id="chaos-observer")
    first_seen: dict[tuple[str, int], float] = {}
    kills: Counter[str] = Counter()
    result: dict[str, Any] = {}
    try:
        ingest.start()
        agent.start()

        def sample() -> None:
            now = time.time()
            try:
                for key in stored(influx):
                    first_seen.setdefault(key, now)
            except Exception:
                pass  # InfluxDB is the one killed right now

        def restart(victim: str) -> None:
            if victim == "broker":
                deadline = time.monotonic() + 15
                while True:
                    try:
                        broker.start(timeout=5)
                        return
                    except RuntimeError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
            {"ingest": ingest.start, "influxdb": influx.start, "agent": agent.start}[victim]()

        end = time.monotonic() + args.seconds
        next_kill = time.monotonic() + rng.uniform(8, 25)
        while time.monotonic() < end:
            time.sleep(2)
            sample()
            if time.monotonic() >= next_kill:
                victim = rng.choice(["broker", "ingest", "influxdb", "agent"])
                {"broker": broker.kill, "ingest": ingest.kill, "influxdb": influx.kill, "agent": agent.kill}[victim]()
                kills[victim] += 1
                down = rng.uniform(1, 12)
                while down > 0:
                    time.sleep(min(2, down))
                    down -= 2
                    sample()
                restart(victim)
                next_kill = time.monotonic() + rng.uniform(8, 25)

        def spooled() -> set[tuple[str, int]]:
            return {(m.group(1), int(m.group(2))) for m in SPOOLED.finditer(agent.log.read_text(errors="replace"))}

        drain_end = time.monotonic() + args.drain
        while time.monotonic() < drain_end:
            sample()
            if spooled() <= set(first_seen):
                break
            time.sleep(2)
        agent.stop()
        polls = spooled()
        in_db = stored(influx)
        seen = Counter((r["device"], r["ts"]) for m in observer.snapshot()
                       for r in json.loads(m.payload)["readings"] if r["kind"] != "mppt")
        delays = sorted(first_seen[k] - k[1] / 1000 for k in polls if k in first_seen)
        resent = sum(int(m.group(1)) for m in RESENT.finditer(agent.log.read_text(errors="replace")))
        result = {
            "seconds": args.seconds,
            "seed": args.seed,
            "resend_after_s": args.resend_after,
            "kills": dict(kills),
            "polls": len(polls),
            "stored": len(polls & set(in_db)),
            "missing": len(polls - set(in_db)),
            "extra_rows": len(set(in_db) - polls),
            "rows_doubled_in_influxdb": sum(1 for n in in_db.values() if n > 1),
            "duplicates_seen": sum(n - 1 for n in seen.values() if n > 1),
            "rows_resent": resent,
            "delay_s": {"median": round(statistics.median(delays), 1) if delays else None,
                        "p99": round(delays[int(len(delays) * 0.99) - 1], 1) if delays else None,
                        "worst": round(delays[-1], 1) if delays else None},
            "pass": not (polls - set(in_db)),
        }
    finally:
        observer.close()
        agent.stop()
        ingest.stop()
        sim.stop()
        influx.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0 if result.get("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
