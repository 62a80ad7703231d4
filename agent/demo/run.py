"""Start the whole town, show it live, stop everything it started.

Order of a demo's life:

1. the simulator (in this process, one Modbus TCP port per site), with a
   ground fault on one inverter and another inverter that no longer answers;
2. Mosquitto and InfluxDB 1.x as child processes on private loopback ports;
3. the ingest, then one ``terril agent`` per site, as child processes, each
   with a config file under ``<run>/`` that a technician can read and copy;
4. every few seconds, a summary queried from InfluxDB (the ingest computes
   the daily energy rollup every minute, so Grafana's energy panels fill);
5. on Ctrl-C, SIGTERM or ``--duration``: a last summary (and one JSON line for
   scripts), then every child stopped by PID, agents first, databases last.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from agent.central.config import IngestConfig, load_ingest_config
from agent.central.influxql import InfluxQLClient, InfluxQueryError, InfluxUnavailable
from agent.central.rollup import day_start_ms, today_in
from agent.demo import services
from agent.demo.public_site import public_section, serve_folder
from agent.demo.services import Child, Children, DemoError
from agent.demo.summary import TownSummary, collect, render
from agent.demo.town import (
    DATABASE,
    FAULT_CODE,
    FAULT_DEVICE,
    FAULT_SITE,
    LATITUDE,
    LONGITUDE,
    SILENT_DEVICE,
    SILENT_SITE,
    TIMEZONE,
    SitePlan,
    agent_document,
    ingest_document,
    inventory_document,
    newborn_register_text,
    simulator_document,
    write_yaml,
)
from agent.edge.config import load_agent_config
from agent.errors import ConfigError
from agent.sim.config import build_servers, parse_config
from agent.sim.devices import SimInverter
from agent.sim.server import SimServer, SimulatorThread
from agent.sim.solar import SimClock
from agent.sun import solar_elevation_deg

RESULT_PREFIX = "DEMO-RESULT "
"""The last line of a demo: a JSON document for scripts and the test."""

LOW_SUN_DEG = 10.0
"""Below this elevation (sun down, or barely up) the plants produce next to nothing:
the demo runs the simulated clock from noon."""

OPEN_DATA = Path(__file__).resolve().parents[2] / "config" / "opendata"
"""Hand-written open-data files of the demo town (``terril territory import``)."""
STOP_ORDER = [["ingest"], ["mosquitto"], ["influxd"]]
"""After the agents (stopped first, so they publish what they hold), in this order."""


@dataclass(frozen=True)
class DemoOptions:
    sites: tuple[SitePlan, ...]
    run_dir: Path
    time_factor: float = 1.0
    start: datetime | None = None
    duration_s: float | None = None
    every_s: float = 5.0


@dataclass
class SimulatedClockChoice:
    start: datetime
    note: str | None


def choose_start(requested: datetime | None, now: datetime) -> SimulatedClockChoice:
    """Where the simulated clock starts: as asked, else now, else today's noon when the sun is down."""
    if requested is not None:
        return SimulatedClockChoice(requested, f"simulated clock starts at {requested.isoformat()} (--start)")
    elevation = solar_elevation_deg(now, LATITUDE, LONGITUDE)
    if elevation >= LOW_SUN_DEG:
        return SimulatedClockChoice(now, None)
    zone = ZoneInfo(TIMEZONE)
    noon = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone) + timedelta(hours=12)
    return SimulatedClockChoice(
        noon,
        f"the sun is down or low at the site now ({elevation:.0f}° elevation): the simulated clock runs from "
        f"today's noon ({noon:%Y-%m-%d %H:%M %Z}) so that the roofs produce. Readings keep real timestamps.",
    )


@dataclass
class Demo:
    options: DemoOptions
    out: Any = field(default=sys.stdout)
    children: Children = field(default_factory=Children)
    sim: SimulatorThread | None = None
    clock: SimClock | None = None
    influx_url: str = ""
    ingest_config: IngestConfig | None = None
    open_data: dict[str, Any] = field(default_factory=dict)
    """What importing the demo town's open-data files gave (printed in the result)."""
    banner: list[str] = field(default_factory=list)
    public_server: ThreadingHTTPServer | None = None
    notes: list[str] = field(default_factory=list)
    _stop_requested: bool = False
    _starting: bool = True
    _reported_dead: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ entry point

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        started_at = time.monotonic()
        summary: TownSummary | None = None
        code = 0
        try:
            self.start_everything()
            self._starting = False
            summary = self.loop(started_at)
        except KeyboardInterrupt:
            self.say("interrupted while starting; stopping what was started")
        except (DemoError, ConfigError, OSError) as exc:
            self.say(f"make demo cannot go on: {_describe(exc)}")
            code = 1
        finally:
            # A second Ctrl-C must not cut the stop short: children would be left running.
            for sig in previous:
                signal.signal(sig, self._on_signal_while_stopping)
            try:
                outcome = self.stop_everything()
                self.print_result(summary, outcome)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True
        if self._starting:
            raise KeyboardInterrupt

    def _on_signal_while_stopping(self, signum: int, frame: FrameType | None) -> None:
        self.say("still stopping the demo's processes (SIGKILL for any that take more than 10 s)…")

    def say(self, text: str = "", keep: bool = False) -> None:
        """Print a line; ``keep`` lines are shown again above each summary on a terminal."""
        if keep:
            self.notes.append(text)
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------------ start

    def start_everything(self) -> None:
        o = self.options
        run_dir = o.run_dir
        for sub in ("logs", "agents", "spool"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)

        choice = choose_start(o.start, datetime.now(UTC))
        if choice.note:
            self.say(choice.note, keep=True)
        self.clock = SimClock(choice.start, o.time_factor)

        central = services.stable_ports(run_dir / "ports.json",
                                        ("mosquitto", "influxdb_http", "influxdb_rpc", "public_http"))
        modbus_ports = {site.slug: services.free_port() for site in o.sites}
        self.start_simulator(modbus_ports, choice.start)

        mosquitto = self.children.add(services.mosquitto_child(run_dir, central["mosquitto"])).start()
        influxd = self.children.add(
            services.influxd_child(run_dir, central["influxdb_http"], central["influxdb_rpc"])
        ).start()
        services.wait_for_port(central["mosquitto"], 15, mosquitto)
        self.influx_url = f"http://127.0.0.1:{central['influxdb_http']}"
        services.wait_for_influx(self.influx_url, 60, influxd)
        services.create_database(self.influx_url, DATABASE)

        terril = services.terril_command()
        (run_dir / "newborns.csv").write_text(newborn_register_text(), encoding="utf-8")
        inventory_path = write_yaml(run_dir / "sites.yaml", inventory_document(o.sites, "newborns.csv"),
                                    "the demo town's inventory of roofs")
        ingest_doc = ingest_document(central["mosquitto"], self.influx_url, inventory_path.resolve())
        ingest_doc["public"] = public_section(run_dir)  # the ingest rebuilds the public site every minute
        ingest_path = write_yaml(run_dir / "ingest.yaml", ingest_doc, "terril ingest for the demo town")
        self.ingest_config = load_ingest_config(ingest_path)
        self.children.add(Child("ingest", [*terril, "ingest", "-c", str(ingest_path)],
                                run_dir / "logs" / "ingest.log")).start()
        self.say(self.import_open_data(terril, ingest_path, run_dir / "logs" / "territory-import.log"), keep=True)

        for site in o.sites:
            path = write_yaml(
                run_dir / "agents" / f"{site.slug}.yaml",
                agent_document(site, modbus_ports[site.slug], central["mosquitto"],
                               (run_dir / "spool" / f"{site.slug}.db").resolve()),
                f"terril agent for {site.name}",
            )
            load_agent_config(path)  # the file a user could copy is exactly what the agent reads
            self.children.add(Child(f"agent-{site.slug}", [*terril, "agent", "-c", str(path)],
                                    run_dir / "logs" / f"agent-{site.slug}.log")).start()

        self.public_server = serve_folder(run_dir / "public", central["public_http"])
        self.banner = self.describe_setup(central)
        for line in self.banner:
            self.say(line)

    def import_open_data(self, terril: list[str], ingest_path: Path, log_path: Path) -> str:
        """``terril territory import`` of the hand-written files in ``config/opendata/``: a balance to show."""
        files = sorted(OPEN_DATA.glob("*.csv"))
        if not files:
            return f"  open data     none in {OPEN_DATA}: the energy balance stays empty"
        argv = [*terril, "territory", "import", "-c", str(ingest_path), *map(str, files)]
        with open(log_path, "ab") as log:
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=120, check=False).returncode
        self.open_data = {"files": len(files), "exit": code}
        if code != 0:
            return f"  open data     import failed (exit {code}): see {log_path}"
        from agent.central.territory.report import territory_balance

        assert self.ingest_config is not None
        balance = territory_balance(self.ingest_config, InfluxQLClient(self.influx_url, DATABASE, timeout=30))
        if balance is None or balance.renewable_share is None:
            return f"  open data     {len(files)} file(s) imported; see {log_path}"
        self.open_data.update(year=balance.year, renewable_share=round(balance.renewable_share, 4),
                              target_year=balance.target_year, target_share=balance.target_share)
        return (f"  open data     {len(files)} file(s) from {OPEN_DATA}: renewable share {balance.renewable_share:.1%} "
                f"in {balance.year}, target {balance.target_share:.0%} in {balance.target_year} "
                f"(terril territory report -c {ingest_path})")

    def start_simulator(self, ports: dict[str, int], start: datetime) -> None:
        o = self.options
        doc = simulator_document(o.sites, ports, start_iso=None, time_factor=o.time_factor)
        write_yaml(o.run_dir / "simulator.yaml", doc, "the demo town's simulated devices (served in-process)")
        servers = build_servers(parse_config(doc, "demo simulator"), self.clock)
        self.inject_incidents(servers, ports)
        self.sim = SimulatorThread(servers)
        self.sim.start()

    def inject_incidents(self, servers: list[SimServer], ports: dict[str, int]) -> None:
        """A ground fault on one inverter, and one inverter that stopped answering (a dead datalogger)."""
        devices = {
            (slug, d.name): d
            for slug, port in ports.items()
            for server in servers
            if getattr(server.endpoint, "port", None) == port
            for unit in server.units.values()
            for d in unit.devices
        }
        fault = devices.get((FAULT_SITE, f"{FAULT_SITE}-{FAULT_DEVICE}"))
        if isinstance(fault, SimInverter):
            fault.set_fault(FAULT_CODE)
            self.say(f"incident: {FAULT_SITE}/{FAULT_DEVICE} reports {FAULT_CODE} (it stops producing)", keep=True)
        silent = devices.get((SILENT_SITE, f"{SILENT_SITE}-{SILENT_DEVICE}"))
        if isinstance(silent, SimInverter):
            silent.set_silent(True)
            self.say(f"incident: {SILENT_SITE}/{SILENT_DEVICE} does not answer Modbus any more", keep=True)

    def describe_setup(self, central: dict[str, int]) -> list[str]:
        run_dir = self.options.run_dir
        return [
            f"terril demo: {len(self.options.sites)} sites, "
            f"{sum(len(s.device_names()) for s in self.options.sites)} devices, "
            f"{len(self.children.items)} processes started (PIDs in {run_dir / 'pids.json'})",
            f"  MQTT broker   mqtt://127.0.0.1:{central['mosquitto']}  (anonymous; topics terril/<site>/…)",
            f"  InfluxDB      {self.influx_url}  database {DATABASE!r}, InfluxQL, no authentication",
            f"  Grafana       data source type InfluxDB, query language InfluxQL, URL {self.influx_url}, "
            f"database {DATABASE}",
            f"  public site   http://127.0.0.1:{central['public_http']}/  (static, rebuilt by the ingest every "
            "minute; English under /en/)",
            f"  configs       {run_dir}/agents/*.yaml, {run_dir}/ingest.yaml, {run_dir}/simulator.yaml",
            f"  logs          {run_dir / 'logs'}/ (mosquitto, influxd, ingest, agent-<site>)",
            "  Ctrl-C stops everything the demo started; logs and data stay under " + str(run_dir),
        ]

    # ------------------------------------------------------------------ live

    def loop(self, started_at: float) -> TownSummary | None:
        o = self.options
        (o.run_dir / "pids.json").write_text(json.dumps(self.children.pids(), indent=1) + "\n", encoding="utf-8")
        client = InfluxQLClient(self.influx_url, DATABASE, timeout=10)
        devices = {s.slug: s.device_names() for s in o.sites}
        tty = bool(getattr(self.out, "isatty", lambda: False)())
        summary: TownSummary | None = None
        while not self._stop_requested:
            deadline = None if o.duration_s is None else started_at + o.duration_s
            self._sleep(o.every_s, deadline)
            if self._stop_requested or (deadline is not None and time.monotonic() >= deadline):
                break
            self.report_dead_children()
            summary = self.query(client, devices) or summary
            if summary is not None:
                text = self.render(summary)
                if tty:
                    self.out.write("\033[H\033[2J" + "\n".join([*self.notes, *self.banner]) + "\n\n")
                self.say(text)
        self.say("stopping…")
        return self.query(client, devices) or summary

    def _sleep(self, seconds: float, deadline: float | None) -> None:
        end = time.monotonic() + seconds
        if deadline is not None:
            end = min(end, deadline)
        while not self._stop_requested and time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def query(self, client: InfluxQLClient, devices: dict[str, list[str]]) -> TownSummary | None:
        tz = ZoneInfo(TIMEZONE)
        try:
            return collect(client, devices, day_start_ms(today_in(TIMEZONE), tz))
        except (InfluxUnavailable, InfluxQueryError) as exc:
            self.say(f"  (summary unavailable: {exc})")
            return None

    def render(self, summary: TownSummary) -> str:
        assert self.clock is not None
        return render(summary, now=datetime.now().astimezone(), sim_now=self.clock.now().astimezone(ZoneInfo(TIMEZONE)),
                      time_factor=self.options.time_factor)

    def report_dead_children(self) -> None:
        for child in self.children.dead():
            if child.name not in self._reported_dead:
                self._reported_dead.add(child.name)
                assert child.proc is not None
                self.say(f"  !! {child.name} (PID {child.pid}) exited with code {child.proc.returncode}; "
                         f"last lines of {child.log_path}:\n{services.tail(child.log_path)}")

    # ------------------------------------------------------------------ stop

    def stop_everything(self) -> dict[str, str]:
        agents = [c.name for c in self.children.items if c.name.startswith("agent-")]
        outcome = self.children.stop_all([agents, *STOP_ORDER], timeout=10.0)
        if self.public_server is not None:
            self.public_server.shutdown()
            self.public_server.server_close()
        if self.sim is not None:
            self.sim.stop()
        for name, how in outcome.items():
            if not how.startswith("exited (0)") and not how.startswith("exited (-15)"):
                self.say(f"  {name}: {how}")
        return outcome

    def print_result(self, summary: TownSummary | None, outcome: dict[str, str]) -> None:
        if summary is not None:
            self.say(self.render(summary))
        doc = {
            "run_dir": str(self.options.run_dir),
            "influxdb": {"url": self.influx_url, "database": DATABASE},
            "pids": self.children.pids(),
            "stopped": outcome,
            "still_running": [c.name for c in self.children.items if c.running()],
            "exited_early": sorted(self._reported_dead),
            "sites": {slug: s.to_dict() for slug, s in summary.sites.items()} if summary else {},
            "active_faults": [f.to_dict() for f in summary.faults] if summary else [],
            "readings": summary.readings if summary else 0,
            "rollup_today_wh": summary.rollup_today_wh if summary else None,
            "open_data": self.open_data,
        }
        self.say(f"logs and data stay in {self.options.run_dir}")
        self.say(RESULT_PREFIX + json.dumps(doc, ensure_ascii=False))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return f"{exc.source}: " + "; ".join(exc.problems)
    return str(exc)
