"""The same dashboard and alert proofs, with the town seeded through the real pipeline.

Readings, events, agent health and site info travel as the agents publish them
(JSON payloads of ``agent.schema``) through a real Mosquitto into the real
ingest, which writes InfluxDB; the daily rows of the raw days come from the real
rollup. Two things are written directly, and why:

* ``agent.up``: the ingest derives it from the agent's last will (0) and its
  ``online`` status when it comes back (1), ``status`` messages that carry no
  timestamp and are stamped on receipt — a replay cannot place them on
  October 2024. The ``up = 1`` is written at the first health report after an
  outage, as the agent's ``online`` would have been;
* the ``energy_daily`` rows of January to 23 October (no raw data for them).

The test functions are those of ``tests/test_grafana.py``, collected again here
with this module's ``influx`` fixture.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from agent.central.influxql import InfluxQLClient
from agent.central.rollup import line_writer, run_rollup
from agent.schema import READING_MEASUREMENT, Topics, info_payload
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.grafana_seed import (
    DAY_EVAL,
    RAW_START,
    SITES,
    TERRITORY_CONSUMPTION_WH_PER_YEAR,
    Town,
    build_town,
)
from tests.ingest_support import DB, IngestThread, ingest_config, publish_all, wait_until
from tests.test_grafana import (  # noqa: F401  (collected again with this module's fixtures)
    test_alert_rules_fire_on_seeded_faults_only,
    test_alert_rules_stay_silent_at_night,
    test_daily_energy_from_counters_across_dst_gap_and_reset,
    test_every_dashboard_query_runs_and_returns_data,
    test_fleet_energy_today_per_site_equals_simulated_energy,
    test_template_variable_queries_list_the_seeded_sites_and_devices,
)


def _parse(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    head, rest = line.split(" ", 1)
    body, ts = rest.rsplit(" ", 1)
    meas, *tag_parts = head.split(",")
    tags = dict(t.split("=", 1) for t in tag_parts)
    fields: dict[str, Any] = {}
    for kv in _split_fields(body):
        k, v = kv.split("=", 1)
        fields[k] = v[1:-1] if v.startswith('"') else int(v[:-1]) if v.endswith("i") else float(v)
    return meas, tags, fields, int(ts)


def _split_fields(body: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def town_messages(town: Town) -> tuple[list[tuple[str, bytes]], list[str], int]:
    """MQTT messages an agent would have published, the lines written directly, and the reading count."""
    readings: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    messages: list[tuple[str, bytes]] = []
    direct: list[str] = []
    n_readings = 0
    offline: set[str] = set()
    for line in town.lines:
        meas, tags, fields, ts = _parse(line)
        site = tags.get("site", "")
        if meas in ("inverter", "mppt", "meter", "battery"):
            kind = next(k for k, spec in READING_MEASUREMENT.items() if spec.name == meas)
            r: dict[str, Any] = {"device": tags["device"], "kind": kind, "ts": ts, "fields": fields}
            if "string" in tags:
                r["string"] = tags["string"]
            readings[(site, ts)].append(r)
            n_readings += 1
        elif meas == "event":
            messages.append((Topics(site).events, json.dumps({
                "v": 1, "site": site, "device": tags["device"], "ts": ts, "code": tags["code"],
                "active": bool(fields["active"]), "text": fields["text"]}).encode()))
        elif meas == "agent" and "up" in fields and len(fields) == 1:
            direct.append(line)  # the last will: see the module docstring
            offline.add(site)
        elif meas == "agent":
            if site in offline:  # back online: the ingest would write up = 1 from the "online" status
                direct.append(f"agent,site={site} up=1i {ts}")
                offline.discard(site)
            metrics = {k: v for k, v in fields.items() if k != "up"}
            messages.append((Topics(site).health, json.dumps({"v": 1, "site": site, "ts": ts, **metrics,
                                                               "devices": {}}).encode()))
        elif meas == "site_info":
            messages.append((Topics(site).info, json.dumps(info_payload(site, ts, fields, [])).encode()))
        elif meas == "energy_daily":
            if ts < int(RAW_START.timestamp() * 1000):
                direct.append(line)
        elif meas == "territory_balance":
            direct.append(line)  # written by `terril territory import`, not from MQTT
        else:
            raise AssertionError(f"unexpected measurement {meas}")
    for (site, _ts), batch in sorted(readings.items(), key=lambda kv: kv[0][1]):
        messages.append((Topics(site).readings, json.dumps({"v": 1, "site": site, "readings": batch}).encode()))
    return messages, direct, n_readings


@pytest.fixture(scope="module")
def town() -> Town:
    return build_town()


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory, town: Town) -> Iterator[InfluxServer]:
    tmp = tmp_path_factory.mktemp("grafana-ingest")
    server = InfluxServer(tmp).start()
    broker = MosquittoBroker(tmp).start()
    try:
        server.create_database(DB)
        messages, direct, n_readings = town_messages(town)
        with IngestThread(ingest_config(broker.port, server.url)):
            publish_all(broker.port, messages)

            def stored() -> int:
                total = 0
                for m in ("inverter", "mppt", "meter", "battery"):
                    rows = server.rows(f'SELECT count("dc_power_w") FROM "{m}"' if m not in ("meter", "battery")
                                       else f'SELECT count("power_w") FROM "{m}"', DB)
                    total += int(rows[0]["count"]) if rows else 0
                return total

            wait_until(lambda: stored() == n_readings, timeout=120, what=f"{n_readings} readings stored")
        status, body = server.write_lines(DB, direct)
        assert status == 204, body
        client = InfluxQLClient(server.url, DB)
        assert run_rollup(client, line_writer(client), RAW_START.date(), DAY_EVAL.date(), "Europe/Paris",
                          TERRITORY_CONSUMPTION_WH_PER_YEAR) > 0
        yield server
    finally:
        broker.stop()
        server.stop()


def test_everything_went_through_the_ingest(influx: InfluxServer, town: Town) -> None:
    events = influx.rows('SELECT count("active") FROM "event"', DB)
    assert events and events[0]["count"] == sum(1 for line in town.lines if line.startswith("event,"))
    sites = influx.rows('SELECT count("panels") FROM (SELECT last("panels") AS "panels" FROM "site_info" '
                        'GROUP BY "site")', DB)
    assert sites[0]["count"] == len(SITES)
