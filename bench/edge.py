"""CPU per reading and peak memory of the terril agent next to modbus4mqtt; prints JSON.

Both poll the same simulated SunSpec inverters (one in-process simulator, one
Modbus TCP port, unit ids 1..N, models 1+120+103+160 with 2 strings) and publish
to the same local Mosquitto, one after the other in the same run on the same
machine, so the baseline is measured every time, never a remembered number.

* terril: ``terril agent`` (one process for all N inverters) polls every
  inverter in full (~20 inverter fields and 2 MPPT readings per poll), writes
  each poll to its SQLite spool, publishes it with QoS 1 and deletes it from the
  spool at the PUBACK (no ingest announces acknowledgements), or with ``--acks``
  when a stand-in ingest in the bench process acknowledges it (the production path).
* modbus4mqtt (PyPI, installed by this script into its own virtualenv because
  it pins pymodbus < 3 and paho-mqtt < 2): it serves one Modbus device per
  process, so N processes, each reading two registers (W and WH of model 103)
  and publishing them as two QoS 0 messages per poll.

A *reading* is one poll of one device: for terril one ``"kind": "inverter"``
entry of a readings message (its MPPT entries are counted apart as
``mppt_readings``, not as readings); for modbus4mqtt its two register messages
of one poll (messages / 2). Readings are counted by an MQTT 5 subscriber, by
arrival time, inside a fixed window that opens once every device has been seen
(start-up and SunSpec discovery are outside it). CPU is utime + stime from
``/proc/<pid>/stat`` of each measured process tree, over the same window.
Peak RSS is ``VmHWM`` from ``/proc/<pid>/status`` at the end (whole lifetime),
summed over modbus4mqtt's processes.

Targets (issue 3): modbus4mqtt's CPU per reading ≥ 3 × terril's, terril's
peak RSS < 60 MB. Exit status 0 when the measurement was made (``pass`` says
whether the targets were met), 1 when it could not be made.

Usage: ``.venv/bin/python bench/edge.py [--devices 20] [--seconds 60] [--interval 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
import yaml  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.schema import Topics, ack_payload, ingest_status_payload, ingest_status_topic  # noqa: E402
from agent.sim.config import build_servers, parse_config  # noqa: E402
from agent.sim.server import SimServer, SimulatorThread  # noqa: E402
from agent.sim.sunspec_image import RegisterImage, load_model_def  # noqa: E402
from tests.fixtures.mosquitto import MosquittoBroker  # noqa: E402
from tests.fixtures.ports import free_port, stop_process, wait_for_port  # noqa: E402

MODBUS4MQTT_REQUIREMENTS = ("modbus4mqtt==0.7.1", "pymodbus<3", "paho-mqtt<2")
"""What goes into modbus4mqtt's own virtualenv (its own metadata pins the last two as well)."""
DEFAULT_VENV = BENCH_DIR / ".venv-modbus4mqtt"
TEMPLATE = BENCH_DIR / "modbus4mqtt" / "inverter.yaml.template"
SITE = "bench"
M4M_ROOT = "m4m"
M4M_REGISTERS = ("W", "WH")
CPU_RATIO_MIN = 3.0
RSS_MB_MAX = 60.0
SIM_START = "2024-06-21T12:00:00+02:00"
"""Simulated midday: every inverter produces, none sleeps (terril backs off sleeping inverters)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The measurement could not be made (a process died, no readings arrived...)."""


# ------------------------------------------------------------------ /proc


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def process_tree(roots: Iterable[int]) -> list[int]:
    """The roots and all their living descendants."""
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds spent in user space and in the kernel (syscalls, fsync, sockets)."""

    user: float = 0.0
    system: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user + other.user, self.system + other.system)

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def _stat_times(path: Path) -> CpuTimes:
    try:
        stat = path.read_text()
    except OSError:
        return CpuTimes()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return CpuTimes(int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)  # utime, stime: fields 14, 15 of proc(5)


def cpu_times(pids: Iterable[int]) -> CpuTimes:
    """utime and stime of these processes (all their threads)."""
    total = CpuTimes()
    for pid in pids:
        total = total + _stat_times(Path(f"/proc/{pid}/stat"))
    return total


def main_thread_times(pid: int) -> CpuTimes:
    """utime and stime of a process's main thread alone (terril: the asyncio loop that polls)."""
    return _stat_times(Path(f"/proc/{pid}/task/{pid}/stat"))


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise BenchError(f"no VmHWM for pid {pid}")


# ------------------------------------------------------------------ counting


@dataclass
class Arrivals:
    """What the subscriber saw, by arrival time (monotonic clock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    terril: list[tuple[float, str, int, int, int, int]] = field(default_factory=list)
    """(time, device, inverter readings, mppt readings, inverter fields, all fields) per device per message."""
    m4m: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, device, register) per message."""
    qos: dict[str, set[int]] = field(default_factory=lambda: {"terril": set(), "modbus4mqtt": set()})


class ReadingCounter:
    """An MQTT 5 subscriber on the bench broker that records every reading's arrival."""

    def __init__(self, port: int) -> None:
        self.arrivals = Arrivals()
        self.readings_topic = Topics(SITE).readings
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-count-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise BenchError("the counting subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: Any, props: object) -> None:
        topics = [(self.readings_topic, 1)] + [(f"{M4M_ROOT}/+/{r}", 1) for r in M4M_REGISTERS]
        client.subscribe(topics)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic == self.readings_topic:
            per_device: dict[str, list[int]] = {}
            for r in json.loads(msg.payload)["readings"]:
                counts = per_device.setdefault(r["device"], [0, 0, 0, 0])
                counts[3] += len(r["fields"])
                if r["kind"] == "mppt":
                    counts[1] += 1
                else:
                    counts[0] += 1
                    counts[2] += len(r["fields"])
            with self.arrivals.lock:
                self.arrivals.qos["terril"].add(msg.qos)
                self.arrivals.terril += [(now, d, *c) for d, c in per_device.items()]
        else:
            _, device, register = msg.topic.split("/")
            with self.arrivals.lock:
                self.arrivals.qos["modbus4mqtt"].add(msg.qos)
                self.arrivals.m4m.append((now, device, register))

    def terril_devices(self) -> set[str]:
        with self.arrivals.lock:
            return {a[1] for a in self.arrivals.terril if a[2]}

    def m4m_devices(self) -> set[str]:
        with self.arrivals.lock:
            return {d for _, d, _ in self.arrivals.m4m}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StandInIngest:
    """``--acks``: what the ingest does for the agent, in the bench process (its CPU is not counted):
    a retained status announcing acknowledgements, and every ``readings`` message's id echoed on the
    site's ``ack`` at once. Then the agent keeps each row until acknowledged, as in production."""

    def __init__(self, port: int) -> None:
        self.acks = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.status_topic = ingest_status_topic("bench-ingest")
        self.client.on_connect = lambda c, *a: c.subscribe(f"terril/{SITE}/readings", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise BenchError("the stand-in ingest could not subscribe")
        status = json.dumps(ingest_status_payload("bench-ingest", True, "resumed")).encode()
        self.client.publish(self.status_topic, status, qos=1, retain=True).wait_for_publish(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        message_id = json.loads(msg.payload).get("id")
        if message_id is not None:
            client.publish(Topics(SITE).ack, json.dumps(ack_payload(SITE, [message_id])).encode(), qos=1)
            self.acks += 1

    def close(self) -> None:
        self.client.publish(self.status_topic, b"", qos=1, retain=True).wait_for_publish(10)
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------ simulator


def device_name(unit: int) -> str:
    return f"ond-{unit:02d}"


def start_simulator(devices: int) -> tuple[SimulatorThread, SimServer]:
    """N SunSpec inverters (models 1, 120, 103, 160 with 2 strings) on one TCP port, unit ids 1..N."""
    port = free_port()
    cfg = parse_config(
        {
            "site": {"latitude": 50.457, "longitude": 2.793},
            "start": SIM_START,
            "clouds": {"cloudiness": 0.3, "seed": 7},
            "servers": [
                {
                    "tcp": {"port": port},
                    "units": [
                        {"unit": u, "kind": "inverter", "name": device_name(u), "peak_power_w": 9000 + 500 * u,
                         "strings": 2}
                        for u in range(1, devices + 1)
                    ],
                }
            ],
        },
        "bench simulator",
    )
    servers = build_servers(cfg)
    sim = SimulatorThread(servers)
    sim.start()
    wait_for_port(port)
    return sim, servers[0]


def point_address(image: RegisterImage, model_id: int, point: str) -> int:
    """Register address of a top-level point of a model, found by walking the unit's SunSpec chain."""
    address = image.base + 2  # after "SunS"
    while True:
        header = image.read(address, 2)
        if header is None or header[0] == 0xFFFF:
            raise BenchError(f"model {model_id} not found in the simulator's map")
        if header[0] == model_id:
            offset = 0
            for p in load_model_def(model_id).points:
                if p.name == point:
                    return address + 2 + offset
                offset += p.size
            raise BenchError(f"model {model_id} has no point {point}")
        address += 2 + header[1]


def m4m_scan_batching(image: RegisterImage, addresses: list[int]) -> int:
    """The largest modbus4mqtt batch size whose aligned blocks stay inside the map (it reads whole blocks)."""
    for size in (100, 50, 25, 20, 10, 5, 2, 1):
        if all(image.read(a - a % size, size) is not None for a in addresses):
            return size
    raise BenchError("no modbus4mqtt scan_batching fits the simulator's map")


# ------------------------------------------------------------------ processes


@dataclass
class Measured:
    """The processes of one contender and what was measured on them."""

    name: str
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise BenchError(f"{self.name} (pid {proc.pid}) exited with {proc.returncode}; log tail:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def terril_config(tmp: Path, broker_port: int, modbus_port: int, devices: int, interval: int) -> Path:
    config = {
        "site": {"slug": SITE, "name": "Bench", "peak_power_w": 250000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": broker_port, "client_id": "terril-bench"},
        "devices": [
            {"name": device_name(u), "kind": "inverter", "driver": "sunspec",
             "transport": {"type": "tcp", "host": "127.0.0.1", "port": modbus_port}, "unit": u, "interval": interval}
            for u in range(1, devices + 1)
        ],
        "spool": {"path": str(tmp / "spool.db")},
        "log": {"level": "INFO"},
    }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_terril(tmp: Path, broker_port: int, modbus_port: int, devices: int, interval: int) -> Measured:
    terril = shutil.which("terril", path=str(Path(sys.executable).parent)) or str(REPO / ".venv" / "bin" / "terril")
    config = terril_config(tmp, broker_port, modbus_port, devices, interval)
    log = tmp / "terril-agent.log"
    return Measured("terril agent", [_spawn([terril, "agent", "-c", str(config)], log)], [log])


def ensure_modbus4mqtt(venv: Path) -> Path:
    """modbus4mqtt's own virtualenv (created once, reused); returns its executable."""
    exe = venv / "bin" / "modbus4mqtt"
    marker = venv / ".bench-requirements"
    wanted = " ".join(MODBUS4MQTT_REQUIREMENTS)
    if exe.exists() and marker.exists() and marker.read_text() == wanted:
        return exe
    print(f"bench: installing {wanted} into {venv}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run(pip + list(MODBUS4MQTT_REQUIREMENTS), capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"cannot install {wanted} into {venv}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    marker.write_text(wanted)
    return exe


def venv_versions(venv: Path, names: Iterable[str]) -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code, *names], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def start_modbus4mqtt(exe: Path, tmp: Path, broker_port: int, sim: SimServer, devices: int,
                      interval: int) -> Measured:
    template = Template(TEMPLATE.read_text())
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    host, port = sim.endpoint.host, sim.endpoint.port  # type: ignore[union-attr]
    for unit in range(1, devices + 1):
        image = sim.units[unit].image()
        w, wh = point_address(image, 103, "W"), point_address(image, 103, "WH")
        config = tmp / f"m4m-{device_name(unit)}.yaml"
        config.write_text(template.substitute(host=host, port=port, unit=unit, interval=interval, w_address=w,
                                              wh_address=wh, scan_batching=m4m_scan_batching(image, [w, wh, wh + 1])))
        log = tmp / f"m4m-{device_name(unit)}.log"
        cmd = [str(exe), "--hostname", "127.0.0.1", "--port", str(broker_port), "--config", str(config),
               "--mqtt_topic_prefix", f"{M4M_ROOT}/{device_name(unit)}/"]
        procs.append(_spawn(cmd, log))
        logs.append(log)
    return Measured("modbus4mqtt", procs, logs)


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Window:
    t0: float
    t1: float
    cpu: CpuTimes
    main_thread_cpu: CpuTimes
    """Of the first process (terril's asyncio loop; one of modbus4mqtt's processes, not reported)."""
    modbus_requests: int


def wait_for_devices(seen: Callable[[], set[str]], expected: set[str], who: Measured, timeout: float) -> float:
    """Seconds until every device has published once (start-up and discovery happen here)."""
    start = time.monotonic()
    while not expected <= seen():
        who.check_alive()
        if time.monotonic() - start > timeout:
            missing = sorted(expected - seen())
            raise BenchError(f"{who.name}: no reading after {timeout:.0f} s from {', '.join(missing)}; "
                             f"logs in {who.logs[0].parent}")
        time.sleep(0.1)
    return time.monotonic() - start


def measure_window(who: Measured, sim: SimServer, seconds: float, settle: float) -> Window:
    time.sleep(settle)  # let the first, discovering polls of every device finish
    who.check_alive()
    units = list(sim.units)
    t0 = time.monotonic()
    cpu0, main0 = cpu_times(process_tree(who.pids)), main_thread_times(who.pids[0])
    req0 = sum(sim.recorder.requests(u) for u in units)
    time.sleep(seconds)
    t1 = time.monotonic()
    cpu1, main1 = cpu_times(process_tree(who.pids)), main_thread_times(who.pids[0])
    req1 = sum(sim.recorder.requests(u) for u in units)
    who.check_alive()
    return Window(t0, t1, cpu1 - cpu0, main1 - main0, req1 - req0)


def _cpu_figures(cpu: CpuTimes, readings: int, values: int) -> dict[str, float]:
    """The headline figure (per 1,000 readings) and, for context, per 1,000 published values."""
    return {
        "cpu_s": round(cpu.total, 3),
        "cpu_s_user": round(cpu.user, 3),
        "cpu_s_system": round(cpu.system, 3),
        "cpu_s_per_1000_readings": round(cpu.total / readings * 1000, 4),
        "cpu_s_per_1000_values": round(cpu.total / values * 1000, 4),
    }


def run_terril(tmp: Path, broker: MosquittoBroker, sim: SimServer, counter: ReadingCounter, args: argparse.Namespace,
               ) -> dict[str, Any]:
    expected = {device_name(u) for u in range(1, args.devices + 1)}
    agent = start_terril(tmp, broker.port, sim.endpoint.port, args.devices, args.interval)  # type: ignore[union-attr]
    try:
        startup = wait_for_devices(counter.terril_devices, expected, agent, args.startup_timeout)
        window = measure_window(agent, sim, args.seconds, settle=2 * args.interval)
        time.sleep(0.5)  # messages of polls made just before t1 are still on their way
        rss = peak_rss_mb(agent.pids[0])
        processes = len(process_tree(agent.pids))
    finally:
        agent.stop()
    with counter.arrivals.lock:
        inside = [a for a in counter.arrivals.terril if window.t0 <= a[0] < window.t1]
        qos = sorted(counter.arrivals.qos["terril"])
    readings = sum(a[2] for a in inside)
    mppt = sum(a[3] for a in inside)
    fields = sum(a[4] for a in inside)
    values = sum(a[5] for a in inside)
    if readings == 0:
        raise BenchError(f"terril: no reading in the {args.seconds} s window; log {agent.logs[0]}")
    return {
        **_cpu_figures(window.cpu, readings, values),
        "cpu_s_main_thread": round(window.main_thread_cpu.total, 3),
        "readings": readings,
        "mppt_readings": mppt,
        "fields_per_reading": round(fields / readings, 1),
        "values": values,
        "peak_rss_mb": round(rss, 1),
        "processes": processes,
        "modbus_requests_per_reading": round(window.modbus_requests / readings, 2),
        "delivered_qos": qos,
        "spool": True,
        "startup_s": round(startup, 1),
    }


def run_modbus4mqtt(tmp: Path, broker: MosquittoBroker, sim: SimServer, counter: ReadingCounter,
                    args: argparse.Namespace) -> dict[str, Any]:
    exe = ensure_modbus4mqtt(args.venv)
    expected = {device_name(u) for u in range(1, args.devices + 1)}
    m4m = start_modbus4mqtt(exe, tmp, broker.port, sim, args.devices, args.interval)
    try:
        startup = wait_for_devices(counter.m4m_devices, expected, m4m, args.startup_timeout)
        window = measure_window(m4m, sim, args.seconds, settle=2 * args.interval)
        time.sleep(0.5)
        rss = [peak_rss_mb(pid) for pid in m4m.pids]
        processes = len(process_tree(m4m.pids))
    finally:
        m4m.stop()
    with counter.arrivals.lock:
        inside = [a for a in counter.arrivals.m4m if window.t0 <= a[0] < window.t1]
        qos = sorted(counter.arrivals.qos["modbus4mqtt"])
    per_register = Counter(a[2] for a in inside)
    readings = len(inside) // len(M4M_REGISTERS)
    if readings == 0:
        raise BenchError(f"modbus4mqtt: no reading in the {args.seconds} s window; logs in {tmp}")
    versions = venv_versions(args.venv, ["modbus4mqtt", "pymodbus", "paho-mqtt"])
    return {
        **_cpu_figures(window.cpu, readings, len(inside)),
        "readings": readings,
        "messages": dict(sorted(per_register.items())),
        "fields_per_reading": len(M4M_REGISTERS),
        "values": len(inside),
        "peak_rss_mb": round(sum(rss), 1),
        "peak_rss_mb_per_process": round(max(rss), 1),
        "processes": processes,
        "modbus_requests_per_reading": round(window.modbus_requests / readings, 2),
        "delivered_qos": qos,
        "spool": False,
        "startup_s": round(startup, 1),
        "versions": versions,
    }


def machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpu_clock_tick_s": 1 / CLK_TCK,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="terril-bench-edge-"))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    broker = MosquittoBroker(tmp, persistence=False).start()
    sim, server = start_simulator(args.devices)
    counter = ReadingCounter(broker.port)
    stand_in = StandInIngest(broker.port) if args.acks else None
    try:
        order = ["terril", "modbus4mqtt"]
        if args.order == "modbus4mqtt-first":
            order.reverse()
        results: dict[str, dict[str, Any] | None] = {"terril": None, "modbus4mqtt": None}
        for name in order:
            if args.only and name != args.only:
                continue
            runner = run_terril if name == "terril" else run_modbus4mqtt
            results[name] = runner(tmp, broker, server, counter, args)
    finally:
        if stand_in is not None:
            stand_in.close()
        counter.close()
        sim.stop()
        broker.stop()
    t, m = results["terril"], results["modbus4mqtt"]
    # None when a side is not measured, or terril's CPU stayed under one clock tick (a tiny --seconds).
    ratio = m["cpu_s_per_1000_readings"] / t["cpu_s_per_1000_readings"] if t and m and t["cpu_s"] > 0 else None
    checks = {
        "cpu_ratio": ratio is not None and ratio >= CPU_RATIO_MIN,
        "rss": t is not None and t["peak_rss_mb"] < RSS_MB_MAX,
    }
    info = machine()
    info["loadavg_1m_before"] = round(load_before, 2)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "bench": "edge",
        "devices": args.devices,
        "interval_s": args.interval,
        "window_s": args.seconds,
        "acks": args.acks,
        "acks_sent": stand_in.acks if stand_in is not None else None,
        "reading": "one poll of one device (terril: one inverter entry; modbus4mqtt: its W and WH messages / 2)",
        "terril": t,
        "modbus4mqtt": m,
        "ratio_cpu_per_reading": round(ratio, 2) if ratio is not None else None,
        "targets": {"cpu_ratio_min": CPU_RATIO_MIN, "rss_mb_max": RSS_MB_MAX},
        "checks": checks,
        "pass": all(checks.values()),
        "elapsed_s": round(time.monotonic() - started, 1),
        "workdir": str(tmp) if args.keep else None,
        "machine": info,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20, help="simulated inverters (default 20)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window of each contender (default 60)")
    parser.add_argument("--interval", type=int, default=1, help="poll interval of every device, s (default 1)")
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="s to wait for every device's 1st reading")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"modbus4mqtt's virtualenv (default {DEFAULT_VENV})")
    parser.add_argument("--order", choices=["terril-first", "modbus4mqtt-first"], default="terril-first")
    parser.add_argument("--only", choices=["terril", "modbus4mqtt"], help="measure one side only (pass is then false)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs, spool)")
    parser.add_argument("--acks", action="store_true",
                        help="a stand-in ingest acknowledges every message: rows leave the spool at the ack")
    args = parser.parse_args()
    if not 1 <= args.devices <= 247:
        parser.error("--devices must be 1..247 (Modbus unit ids)")
    if args.seconds <= 0 or args.interval < 1:
        parser.error("--seconds must be > 0 and --interval >= 1")
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench/edge.py: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
