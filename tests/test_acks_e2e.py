"""Nothing lost even when the central broker dies: the agent keeps a reading until the ingest stored it.

Real processes (``terril agent``, ``terril ingest``), the shipped Mosquitto
config on Debian's layout with the accounts ``terril broker`` makes (TLS,
dynamic security, ``autosave_interval 30``: a SIGKILL loses what the broker
accepted since its last save), InfluxDB 1.6.7 and the Modbus simulator.
Every poll the agent committed to its spool (its ``-v`` log) must end up in
InfluxDB.

Timings are scaled down: ``resend_after`` is a few seconds instead of 180 and
"the ingest away for 10 minutes" lasts 25 s (5 resend delays). What these scenarios prove does
not depend on the length: the agent does not resend while the ingest is away,
however long, and resends what was lost once ``resend_after`` has passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acks_support import (
    ShippedBroker,
    stored_polls,
    stored_row_count,
    write_agent_config,
    write_ingest_config,
)
from tests.fixtures.influx import InfluxServer
from tests.ingest_support import DB, wait_until
from tests.test_agent_e2e import AgentProcess
from tests.test_ingest_outage import IngestProcess

RESEND_AFTER = 6.0
INGEST_ID = "terril-ingest-central1"


@pytest.fixture
def shipped_broker() -> Iterator[ShippedBroker]:
    broker = ShippedBroker(sites=["mairie"], ingest_id=INGEST_ID)
    try:
        yield broker
    finally:
        broker.remove()


def _wait_all_stored(agent: AgentProcess, influx: InfluxServer, timeout: float) -> set[tuple[str, int]]:
    """Wait until every poll the agent spooled so far is in InfluxDB; return the missing ones on timeout."""
    deadline = time.monotonic() + timeout
    missing: set[tuple[str, int]] = set()
    while time.monotonic() < deadline:
        missing = agent.spooled() - stored_polls(influx)
        if not missing:
            return missing
        time.sleep(1)
    return missing


@pytest.mark.slow
def test_ingest_maintenance_then_broker_sigkill_loses_no_poll(
    tmp_path: Path, shipped_broker: ShippedBroker, influx: InfluxServer, sim_factory: Any
) -> None:
    """The scenario of issue 9: ingest stopped 12 s, then the broker killed (power cut), then all restart."""
    influx.create_database(DB)
    sim = sim_factory()
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx),
                           tmp_path / "ingest.log").start()
    agent = AgentProcess(write_agent_config(tmp_path, sim, shipped_broker, RESEND_AFTER),
                         tmp_path / "agent.log").start()
    try:
        wait_until(lambda: len(stored_polls(influx)) >= 6, timeout=40, what="first polls stored")
        assert "ingest acknowledges stored readings" in agent.log and "no ingest announces" not in agent.log
        ingest.stop()  # maintenance: the broker queues the agent's messages for the ingest's session
        time.sleep(12)
        shipped_broker.kill()  # power cut: what it accepted since its last autosave is gone
        spooled_before_cut = agent.spooled()
        time.sleep(2)
        shipped_broker.start()
        ingest.start()
        missing = _wait_all_stored(agent, influx, timeout=RESEND_AFTER * 4 + 40)
        assert not missing, f"{len(missing)} polls missing, e.g. {sorted(missing)[:3]}"
        assert spooled_before_cut <= stored_polls(influx)
    finally:
        agent.stop()
        ingest.stop()
    assert "ingest away" in agent.log  # it held its resends while the ingest was stopped
    assert stored_row_count(influx) == len(stored_polls(influx))


@pytest.mark.slow
def test_broker_replaced_by_an_empty_one_loses_nothing(
    tmp_path: Path, shipped_broker: ShippedBroker, influx: InfluxServer, sim_factory: Any
) -> None:
    influx.create_database(DB)
    sim = sim_factory()
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx),
                           tmp_path / "ingest.log").start()
    agent = AgentProcess(write_agent_config(tmp_path, sim, shipped_broker, RESEND_AFTER),
                         tmp_path / "agent.log").start()
    try:
        wait_until(lambda: len(stored_polls(influx)) >= 6, timeout=40, what="first polls stored")
        ingest.kill9()  # readings queue on the broker (the ingest's last will says it is away)
        time.sleep(8)
        shipped_broker.stop()
        shipped_broker.wipe()  # a new broker: no sessions, no queued messages, no retained statuses
        shipped_broker.start()
        ingest.start()
        missing = _wait_all_stored(agent, influx, timeout=RESEND_AFTER * 4 + 40)
        assert not missing, f"{len(missing)} polls missing, e.g. {sorted(missing)[:3]}"
    finally:
        agent.stop()
        ingest.stop()
    assert "sending again" in agent.log


@pytest.mark.slow
def test_ingest_away_with_the_broker_up_costs_no_resend(
    tmp_path: Path, shipped_broker: ShippedBroker, influx: InfluxServer, sim_factory: Any
) -> None:
    """The ingest stopped for 5 resend delays (issue: 10 minutes with the default): every poll is stored,
    and no row is sent more than twice — here none is sent again at all: the broker kept them all and the
    agent held its resends while the ingest was away (its health's ``rows_resent``, stored by the ingest)."""
    influx.create_database(DB)
    sim = sim_factory()
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx),
                           tmp_path / "ingest.log").start()
    agent = AgentProcess(write_agent_config(tmp_path, sim, shipped_broker, resend_after=5.0),
                         tmp_path / "agent.log").start()
    try:
        wait_until(lambda: len(stored_polls(influx)) >= 4, timeout=40, what="first polls stored")
        ingest.stop()
        time.sleep(25)  # 5 x resend_after
        ingest.start()
        missing = _wait_all_stored(agent, influx, timeout=40)
        assert not missing, f"{len(missing)} polls missing, e.g. {sorted(missing)[:3]}"
        time.sleep(11)  # two more health reports, one more resend delay after everything was acknowledged
        health = influx.rows("SELECT max(rows_resent) AS resent, last(spool_unacked) AS unacked, "
                             "last(spool_depth) AS depth FROM agent WHERE site = 'mairie'", DB)
    finally:
        agent.stop()
        ingest.stop()
    assert health and health[0]["resent"] == 0, health
    assert health[0]["unacked"] <= 10 and health[0]["depth"] <= 10, health  # only the last seconds' polls
    assert "ingest away" in agent.log and "ingest back" in agent.log
    assert "sending again" not in agent.log
