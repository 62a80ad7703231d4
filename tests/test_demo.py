"""``make demo`` end to end: the whole chain starts, data reaches InfluxDB, and nothing is left running.

One run of ``python -m agent.demo`` with three sites (real Mosquitto, real
InfluxDB 1.x, three real agents and the ingest as subprocesses, the simulator
in the demo's process). The demo prints a last JSON line built from InfluxDB
queries made before it stops its children; the test checks it and then checks
by PID that every child is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.demo.run import RESULT_PREFIX
from agent.demo.town import FAULT_CODE, FAULT_DEVICE, FAULT_SITE, SILENT_DEVICE, SILENT_SITE, TOWN

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): only a process that is not one counts as running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


TOWN_SEEN_WITHIN_S = 240
"""Generous: on a loaded 2-core machine starting InfluxDB, the ingest and three agents can take a minute."""


def _what_is_missing(run_dir: Path, slugs: list[str]) -> list[str]:
    """What the test asserts and the town does not show yet (InfluxDB queried as the demo's summary does)."""
    from zoneinfo import ZoneInfo

    from agent.central.influxql import InfluxQLClient, InfluxQueryError, InfluxUnavailable
    from agent.central.rollup import day_start_ms, today_in
    from agent.demo.summary import collect
    from agent.demo.town import DATABASE, TIMEZONE

    if not (run_dir / "pids.json").is_file():
        return ["the demo has not started everything yet (no pids.json)"]
    port = json.loads((run_dir / "ports.json").read_text(encoding="utf-8"))["influxdb_http"]
    devices = {site.slug: site.device_names() for site in TOWN if site.slug in slugs}
    try:
        summary = collect(InfluxQLClient(f"http://127.0.0.1:{port}", DATABASE, timeout=10), devices,
                          day_start_ms(today_in(TIMEZONE), ZoneInfo(TIMEZONE)))
    except (InfluxUnavailable, InfluxQueryError) as exc:
        return [f"InfluxDB: {exc}"]
    missing = [f"{s.slug}: readings {s.readings}, online {s.online}" for s in summary.sites.values()
               if s.readings == 0 or s.online is not True]
    if summary.power_w <= 1000 or summary.energy_today_wh <= 0:
        missing.append(f"power {summary.power_w} W, energy today {summary.energy_today_wh} Wh")
    if (FAULT_SITE, FAULT_DEVICE, FAULT_CODE) not in {(f.site, f.device, f.code) for f in summary.faults}:
        missing.append(f"no active {FAULT_CODE} yet")
    if summary.sites[SILENT_SITE].silent != [SILENT_DEVICE] or summary.sites[FAULT_SITE].silent != []:
        missing.append(f"silent: {SILENT_SITE} {summary.sites[SILENT_SITE].silent}, "
                       f"{FAULT_SITE} {summary.sites[FAULT_SITE].silent}")
    if not (run_dir / "public" / "index.html").is_file():
        missing.append("no public/index.html yet")
    return missing


def _stop_leftovers(run_dir: Path) -> None:
    """After a failed test: stop, by PID, whatever the demo started and left running."""
    try:
        pids = json.loads((run_dir / "pids.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(TOWN_SEEN_WITHIN_S + 150)
def test_demo_runs_the_town_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C once InfluxDB shows what is asserted below (a fixed run time is a race on a loaded machine)."""
    run_dir = tmp_path / "demo"
    expected_sites = [s.slug for s in TOWN[:3]]
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "agent.demo", "--sites", "3", "--run-dir", str(run_dir),
             "--start", "2025-06-21T12:00:00+02:00"],
            cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + TOWN_SEEN_WITHIN_S
        missing = _what_is_missing(run_dir, expected_sites)
        while missing and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
            missing = _what_is_missing(run_dir, expected_sites)
        assert demo.poll() is None, f"the demo exited early: {out_path.read_text()[-4000:]}{err_path.read_text()}"
        assert missing == [], f"after {TOWN_SEEN_WITHIN_S} s: {missing}"
        demo.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops make demo
        demo.wait(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
            _stop_leftovers(run_dir)
    stdout = out_path.read_text(encoding="utf-8")
    out = stdout + err_path.read_text(encoding="utf-8")
    assert demo.returncode == 0, out[-4000:]
    result_lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert len(result_lines) == 1, out[-4000:]
    result = json.loads(result_lines[0][len(RESULT_PREFIX):])

    # Every site's readings reached InfluxDB, and its agent said it is online.
    assert sorted(result["sites"]) == sorted(expected_sites)
    for slug in expected_sites:
        site = result["sites"][slug]
        assert site["readings"] > 0, (slug, site)
        assert site["online"] is True, (slug, site)
    # Simulated noon in June: the roofs produce, and today's energy grows from the counters.
    assert sum(s["power_w"] for s in result["sites"].values()) > 1000
    assert sum(s["energy_today_wh"] for s in result["sites"].values()) > 0

    # The injected ground fault is an active event; the silent inverter has no reading.
    faults = {(f["site"], f["device"], f["code"]) for f in result["active_faults"]}
    assert (FAULT_SITE, FAULT_DEVICE, FAULT_CODE) in faults, result["active_faults"]
    assert result["sites"][SILENT_SITE]["silent"] == [SILENT_DEVICE]
    assert result["sites"][FAULT_SITE]["silent"] == []

    # The ingest built the public site (public: in the demo's ingest.yaml) and the demo served it.
    assert "public site   http://127.0.0.1:" in stdout
    index = (run_dir / "public" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in index and (run_dir / "public" / "en" / "index.html").is_file()
    assert "build failed" not in (run_dir / "logs" / "ingest.log").read_text(encoding="utf-8")

    # Nothing left running: every child the demo reports has exited.
    pids = result["pids"]
    assert {"mosquitto", "influxd", "ingest", *(f"agent-{s}" for s in expected_sites)} <= set(pids)
    assert result["still_running"] == [] and result["exited_early"] == []
    assert [name for name, pid in pids.items() if _alive(pid)] == []

    # What the user keeps: configs and logs under the run directory.
    for slug in expected_sites:
        assert (run_dir / "agents" / f"{slug}.yaml").is_file()
        assert (run_dir / "logs" / f"agent-{slug}.log").stat().st_size > 0
    assert (run_dir / "logs" / "ingest.log").is_file()
    assert "Grafana" in stdout and result["influxdb"]["url"] in stdout
    # The demo town's open data was imported: the energy balance has a share and a target.
    assert result["open_data"]["exit"] == 0 and result["open_data"]["files"] == 3, result["open_data"]
    assert 0 < result["open_data"]["renewable_share"] < 1 and result["open_data"]["target_year"] == 2050


@pytest.mark.slow
def test_demo_stops_by_itself_after_its_duration_and_leaves_nothing_running(tmp_path: Path) -> None:
    """``--duration`` (what scripts use): the demo stops everything and exits 0 without a Ctrl-C."""
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "agent.demo", "--duration", "1", "--sites", "1", "--run-dir", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "stopping…" in proc.stdout
    result = json.loads(proc.stdout.splitlines()[-1][len(RESULT_PREFIX):])
    assert {"mosquitto", "influxd", "ingest", f"agent-{TOWN[0].slug}"} <= set(result["pids"])
    assert result["still_running"] == []
    assert [name for name, pid in result["pids"].items() if _alive(pid)] == []


def test_demo_rejects_a_site_count_outside_the_town() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.demo", "--sites", str(len(TOWN) + 1)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert f"--sites must be between 1 and {len(TOWN)}" in proc.stderr


# --------------------------------------------------------------------------- pure parts


def test_the_simulated_clock_starts_at_noon_when_the_sun_is_down() -> None:
    from datetime import UTC, datetime

    from agent.demo.run import choose_start

    night = datetime(2025, 12, 21, 22, 0, tzinfo=UTC)
    choice = choose_start(None, night)
    assert choice.start.isoformat() == "2025-12-21T12:00:00+01:00"
    assert choice.note is not None and "noon" in choice.note
    summer_noon = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)
    assert choose_start(None, summer_noon) == type(choice)(summer_noon, None)
    asked = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert choose_start(asked, night).start == asked


def test_every_site_of_the_town_has_configs_the_real_loaders_accept(tmp_path: Path) -> None:
    from agent.central.config import load_ingest_config
    from agent.demo.town import agent_document, ingest_document, simulator_document, write_yaml
    from agent.edge.config import load_agent_config
    from agent.sim.config import build_servers, parse_config

    ports = {site.slug: 20000 + i for i, site in enumerate(TOWN)}
    servers = build_servers(parse_config(simulator_document(TOWN, ports, start_iso=None, time_factor=1.0)))
    assert len(servers) == len(TOWN) >= 12
    slugs = set()
    for site in TOWN:
        path = write_yaml(tmp_path / f"{site.slug}.yaml",
                          agent_document(site, ports[site.slug], 1883, tmp_path / "spool.db"), "test")
        config = load_agent_config(path)
        assert [d.name for d in config.devices] == site.device_names()
        assert {d.kind for d in config.devices} == {"inverter", "meter"}
        slugs.add(config.site.slug)
    assert len(slugs) == len(TOWN)
    owners = {site.owner for site in TOWN}
    assert {"commune", "citizen", "cooperative"} <= owners
    ingest = load_ingest_config(write_yaml(tmp_path / "ingest.yaml", ingest_document(1883, "http://127.0.0.1:8086"),
                                           "test"))
    assert ingest.influxdb.api == "v1" and ingest.influxdb.database == "terril"


def test_a_run_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the run directory should go\n")
    proc = subprocess.run(
        [sys.executable, "-m", "agent.demo", "--sites", "1", "--run-dir", str(blocker)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "make demo cannot go on" in proc.stdout and str(blocker) in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1][len(RESULT_PREFIX):])
    assert result["pids"] == {} and result["still_running"] == []
