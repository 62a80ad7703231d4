"""InfluxDB set-up as documented (issue 13 items 13 and 14), on a real InfluxDB 1.6.7.

* grafana/README.md's block, run in its order (authentication off, then on),
  leaves an admin, an ingest user that writes readings and runs the rollups,
  and two read-only Grafana users — and no one locked out.
* A missing database is created by the ingest when its user may; when it may
  not, the ingest says what to run, reports ``"healthy": false`` and stores the
  readings once the database exists.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.central.config import parse_ingest_config
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import (
    DB,
    IngestThread,
    ingest_config,
    ingest_config_dict,
    publish_all,
    reading,
    readings_message,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_README = (ROOT / "grafana" / "README.md").read_text()
DEBIAN_INFLUX_CONF = Path("/etc/influxdb/influxdb.conf")
PASSWORDS = {"ADMIN-PASSWORD": "adm1n-pw", "INGEST-PASSWORD": "ingest-pw", "GRAFANA-PASSWORD": "graf-pw",
             "PUBLIC-PASSWORD": "pub-pw"}


@pytest.fixture
def influx_debian(tmp_path: Path) -> Iterator[InfluxServer]:
    """The tests' InfluxDB, whose [http] section carries Debian's commented ``# auth-enabled = false``."""
    server = InfluxServer(tmp_path)
    text = server.config_path.read_text()
    server.config_path.write_text(text.replace("[http]\n", "[http]\n  # auth-enabled = false\n", 1))
    try:
        yield server.start()
    finally:
        server.stop()


def http(server: InfluxServer, path: str, params: dict[str, str], user: str | None = None,
         body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"{server.url}{path}?{urllib.parse.urlencode(params)}", data=body or b"",
                                 method="POST")
    if user is not None:
        password = PASSWORDS[{"admin": "ADMIN-PASSWORD", "terril_ingest": "INGEST-PASSWORD",
                              "grafana": "GRAFANA-PASSWORD", "grafana_public": "PUBLIC-PASSWORD"}[user]]
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path).start()
    try:
        yield b
    finally:
        b.stop()


def readings_today(device: str = "onduleur") -> list[tuple[str, bytes]]:
    now = int(time.time() * 1000)
    return [readings_message("mairie", [reading(device, now - 60_000 * (3 - i), ac_power_w=1000.0,
                                                ac_energy_wh=50_000.0 + 100 * i)]) for i in range(3)]


def stored(server: InfluxServer, user: str | None = "admin") -> int:
    status, body = http(server, "/query", {"q": "SELECT count(ac_power_w) FROM inverter", "db": DB}, user)
    series = json.loads(body)["results"][0].get("series") if status == 200 else None
    return int(series[0]["values"][0][1]) if series else 0


def test_grafana_readme_steps_in_order(tmp_path: Path, broker: MosquittoBroker, influx_debian: InfluxServer) -> None:
    if DEBIAN_INFLUX_CONF.exists():  # the sed of the README must find its line in Debian's file
        assert re.search(r"^ *# *auth-enabled = false", DEBIAN_INFLUX_CONF.read_text(), flags=re.M)
    block = re.search(r"```sh\n(q\(\) \{.*?)```", GRAFANA_README, flags=re.S)
    assert block, "grafana/README.md lost its InfluxDB set-up block"
    lines = block.group(1).splitlines()
    restart = lines.index("systemctl restart influxdb")
    server = influx_debian
    script = "\n".join(lines[:restart])
    for placeholder, password in PASSWORDS.items():
        script = script.replace(placeholder, password)
    script = script.replace("http://localhost:8086", server.url).replace("/etc/influxdb/influxdb.conf",
                                                                          str(server.config_path))
    out = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert '"error"' not in out, out
    server.stop()  # systemctl restart influxdb
    server.start()
    pass_file = tmp_path / "influx.pass"
    install = lines[restart + 1].split("#")[0].replace("/etc/terril/influx.pass", str(pass_file))
    subprocess.run(["bash", "-euc", install.replace("-g terril", "-g root")], check=True, timeout=30)
    assert pass_file.stat().st_mode & 0o777 == 0o640
    pass_file.write_text(PASSWORDS["INGEST-PASSWORD"] + "\n")

    assert http(server, "/query", {"q": "SHOW DATABASES"})[0] == 401  # authentication is on
    assert http(server, "/query", {"q": "SHOW USERS"}, "admin")[0] == 200  # and the admin is not locked out
    data = ingest_config_dict(broker.port, server.url)
    data["influxdb"].update(username="terril_ingest", password_file=str(pass_file))
    with IngestThread(parse_ingest_config(data)) as ingest:
        publish_all(broker.port, readings_today())
        wait_until(lambda: stored(server) == 3, what="readings stored by terril_ingest")
        assert ingest.rollup.run_once() > 0  # the rollup reads readings and writes energy_daily
        assert ingest.health_document()["healthy"] is True
    for user in ("grafana", "grafana_public"):
        status, body = http(server, "/query", {"q": "SELECT * FROM energy_daily", "db": DB}, user)
        assert status == 200 and "series" in body, (user, body)
        assert http(server, "/write", {"db": DB}, user, b"inverter,site=x,device=y ac_power_w=1")[0] == 403


def test_missing_database_is_created_when_allowed(broker: MosquittoBroker, influx_debian: InfluxServer) -> None:
    server = influx_debian  # no authentication, no database
    with IngestThread(ingest_config(broker.port, server.url)) as ingest:
        publish_all(broker.port, readings_today())
        wait_until(lambda: stored(server, user=None) == 3, what="readings stored")
        assert ingest.health_document()["healthy"] is True


def test_missing_database_without_rights_is_unhealthy_and_says_what_to_run(
        broker: MosquittoBroker, influx_debian: InfluxServer, caplog: pytest.LogCaptureFixture) -> None:
    server = influx_debian
    for q in ("CREATE USER admin WITH PASSWORD 'adm1n-pw' WITH ALL PRIVILEGES",
              "CREATE USER terril_ingest WITH PASSWORD 'ingest-pw'"):
        assert http(server, "/query", {"q": q})[0] == 200
    text = server.config_path.read_text().replace("# auth-enabled = false", "auth-enabled = true")
    server.config_path.write_text(text)
    server.stop()
    server.start()
    data = ingest_config_dict(broker.port, server.url)
    data["influxdb"].update(username="terril_ingest", password="ingest-pw")
    caplog.set_level(logging.INFO)
    with IngestThread(parse_ingest_config(data)) as ingest:
        publish_all(broker.port, readings_today())
        wait_until(lambda: ingest.health_document()["influxdb"] == "down", what="write failure seen")
        doc = ingest.health_document()
        assert doc["healthy"] is False
        assert any('CREATE DATABASE "terril"' in r.getMessage() and "terril_ingest" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        for q in ('CREATE DATABASE "terril"', "GRANT ALL ON terril TO terril_ingest"):  # what the admin runs
            assert http(server, "/query", {"q": q}, "admin")[0] == 200
        wait_until(lambda: stored(server) == 3, what="readings stored once the database exists")
        wait_until(lambda: ingest.health_document()["healthy"] is True, what="healthy again")
