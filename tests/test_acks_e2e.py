"""Nothing lost even when the central broker dies: the agent keeps a reading until the ingest stored it.

Real processes (``terril agent``, ``terril ingest``), the shipped Mosquitto
config and ACL (TLS, passwords, ``autosave_interval 30``: a SIGKILL loses what
the broker accepted since its last save), InfluxDB 1.6.7 and the Modbus
simulator. Every poll the agent committed to its spool (its ``-v`` log) must
end up in InfluxDB.

Timings are scaled down: ``resend_after`` is a few seconds instead of 180 and
"the ingest away for 10 minutes" lasts 30 s. What these scenarios prove does
not depend on the length: the agent does not resend while the ingest is away,
however long, and resends what was lost once ``resend_after`` has passed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.edge.acks import parse_message_id
from tests.acks_support import (
    ShippedBroker,
    stored_polls,
    stored_row_count,
    write_agent_config,
    write_ingest_config,
)
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import Subscriber
from tests.ingest_support import DB, wait_until
from tests.test_agent_e2e import AgentProcess
from tests.test_ingest_outage import IngestProcess

RESEND_AFTER = 6.0


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Any:
    broker = ShippedBroker(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


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
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx, "ingest-a"),
                           tmp_path / "ingest.log").start()
    agent = AgentProcess(write_agent_config(tmp_path, sim, shipped_broker, RESEND_AFTER),
                         tmp_path / "agent.log").start()
    try:
        wait_until(lambda: len(stored_polls(influx)) >= 6, timeout=40, what="first polls stored")
        assert "ingest acknowledges stored readings" in agent.log
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
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx, "ingest-b"),
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
    and no row is sent more than twice (here: none is resent at all, the broker kept them all)."""
    influx.create_database(DB)
    sim = sim_factory()
    # The shipped ACL lets the ingest account read every site: a second, non-shared session of it
    # watches what the agent sends (persistent, so it misses nothing).
    watcher = Subscriber(shipped_broker.port, "terril/mairie/readings", username="ingest",
                         password="ingest-secret-0123456789", client_id="watcher", persistent=True,
                         host="localhost", tls_ca=str(shipped_broker.ca_path))
    ingest = IngestProcess(write_ingest_config(tmp_path, shipped_broker, influx, "ingest-c"),
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
        time.sleep(6)  # one more resend delay: nothing is sent again after it was acknowledged
    finally:
        agent.stop()
        ingest.stop()
        watcher.close()
    sends: Counter[tuple[str, int]] = Counter()
    for message in watcher.snapshot():
        doc = json.loads(message.payload)
        assert parse_message_id(doc["id"]) is not None
        sends.update((r["device"], r["ts"]) for r in doc["readings"] if r["kind"] != "mppt")
    assert set(sends) >= agent.spooled()
    assert max(sends.values()) <= 2, sends.most_common(3)
    assert "ingest away" in agent.log and "ingest back" in agent.log
    assert "sending again" not in agent.log
