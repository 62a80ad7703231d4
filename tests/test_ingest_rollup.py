"""The ingest schedules the daily energy rollup, and late readings reach the day they belong to."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED

from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import (
    DB,
    IngestThread,
    count,
    ingest_config,
    publish_all,
    reading,
    readings_message,
    wait_until,
)

TZ = "Europe/Paris"


def test_readings_three_days_old_get_their_daily_row_at_the_next_run(
    mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    zone = ZoneInfo(TZ)
    day = datetime.now(zone).date() - timedelta(days=3)

    def at(hour: int) -> int:
        return int(datetime(day.year, day.month, day.day, hour, tzinfo=zone).timestamp() * 1000)

    spool = [reading("ond-1", at(h), ac_power_w=1000.0, ac_energy_wh=1_000_000.0 + 1000.0 * (h - 9))
             for h in range(9, 16)]  # 6 kWh produced between 09:00 and 15:00
    config = ingest_config(mosquitto.port, influx.url, rollup={"timezone": TZ, "every": 3600})
    with IngestThread(config) as ingest:
        job = ingest.scheduler.get_job("rollup")
        assert job is not None and job.trigger.interval == timedelta(seconds=3600)
        publish_all(mosquitto.port, [readings_message("mairie", spool)])
        wait_until(lambda: count(influx, "SELECT count(ac_energy_wh) FROM inverter") == 7, what="readings stored")
        assert count(influx, "SELECT count(production_wh) FROM energy_daily") == 0
        job.modify(next_run_time=datetime.now(UTC))  # "the next run", through the scheduler
        wait_until(lambda: count(influx, "SELECT count(production_wh) FROM energy_daily") >= 2,
                   what="energy_daily rows for the late day")
        assert ingest.late.take() is None  # consumed by the run
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)
    rows = influx.rows(f"SELECT production_wh FROM energy_daily WHERE time = {midnight}ms GROUP BY site", DB)
    assert {r["site"]: r["production_wh"] for r in rows} == {"mairie": 6000.0, "_territory": 6000.0}


def test_without_late_readings_the_run_covers_yesterday_and_today_only(
    mosquitto: MosquittoBroker, influx: InfluxServer
) -> None:
    influx.create_database(DB)
    zone = ZoneInfo(TZ)
    day = datetime.now(zone).date() - timedelta(days=3)
    t = int(datetime(day.year, day.month, day.day, 10, tzinfo=zone).timestamp() * 1000)
    lines = "\n".join(f"inverter,site=mairie,device=ond-1 ac_energy_wh={1e6 + i * 1000} {t + i * 3_600_000}"
                      for i in range(3))
    assert influx.write_lines(DB, lines)[0] == 204  # written behind the ingest's back: nothing noted
    config = ingest_config(mosquitto.port, influx.url, rollup={"timezone": TZ, "every": 3600})
    with IngestThread(config) as ingest:
        ingest.run_rollup()
        assert not ingest.rollup.failing
    assert count(influx, "SELECT count(production_wh) FROM energy_daily") == 0


def test_a_scheduled_run_logs_no_apscheduler_line(
    mosquitto: MosquittoBroker, influx: InfluxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line per state change: APScheduler's "Running job … executed successfully" is not one."""
    influx.create_database(DB)
    config = ingest_config(mosquitto.port, influx.url, rollup={"timezone": TZ, "every": 3600})
    with caplog.at_level(logging.INFO), IngestThread(config) as ingest:
        job = ingest.scheduler.get_job("rollup")
        assert job is not None
        runs = []
        ingest.scheduler.add_listener(lambda event: runs.append(event), EVENT_JOB_EXECUTED)
        job.modify(next_run_time=datetime.now(UTC))
        wait_until(lambda: len(runs) >= 1, what="the rollup job ran")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")] == []
