"""Acknowledgements with a fleet: 20 sites, two ingest instances on the shared subscription.

The ingests are real ``terril ingest`` processes; the 20 agents are the agent's own
spool, publisher and forwarder, in this process (20 agent processes would not fit
the test budget of a 2-core machine), each with its own MQTT connection and spool file.
Also: the agent's behaviour with an ingest that does not acknowledge (older than it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.edge.forwarder import Forwarder
from agent.edge.publisher import Publisher, PublisherOptions
from agent.edge.spool import Spool
from agent.schema import Reading, Topics, ingest_status_payload, ingest_status_topic
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.ingest_support import DB, count, ingest_config_dict, publish_all, wait_until, write_config
from tests.test_ingest_outage import IngestProcess

SITES = [f"site-{i:02d}" for i in range(20)]
POLLS = 15


class EdgeAgent:
    """One site's spool, MQTT link and forwarder, as the agent wires them."""

    def __init__(self, tmp_path: Path, site: str, port: int, resend_after: float = 60.0) -> None:
        self.site = site
        self.spool = Spool(tmp_path / f"{site}.db")
        self.publisher = Publisher(PublisherOptions(host="127.0.0.1", site=site, port=port))
        self.forwarder = Forwarder(self.spool, self.publisher, Topics(site), resend_after=resend_after)
        self.appended = 0

    def start(self) -> EdgeAgent:
        self.publisher.start()
        self.forwarder.start()
        return self

    def poll(self, n: int) -> None:
        ts = int(time.time() * 1000) - 60_000 + n * 10
        readings = [Reading(f"ond-{k}", "inverter", ts, {"ac_power_w": 1000.0 + k, "ac_energy_wh": 1e6 + n})
                    for k in range(2)]
        self.forwarder.submit_poll(readings)
        self.appended += len(readings)

    def stop(self) -> None:
        self.forwarder.stop()
        self.publisher.stop()
        self.spool.close()


@pytest.fixture
def edge_agents(tmp_path: Path) -> Iterator[list[EdgeAgent]]:
    made: list[EdgeAgent] = []
    yield made
    for agent in made:
        agent.stop()


@pytest.mark.slow
def test_two_ingests_twenty_sites_every_row_acknowledged_once(
    tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer, edge_agents: list[EdgeAgent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    influx.create_database(DB)
    ingests = [IngestProcess(write_config(tmp_path / f"ingest-{n}.yaml",
                                          ingest_config_dict(mosquitto.port, influx.url, client_id=f"ingest-{n}")),
                             tmp_path / f"ingest-{n}.log").start() for n in (1, 2)]
    try:
        edge_agents += [EdgeAgent(tmp_path, site, mosquitto.port).start() for site in SITES]
        for agent in edge_agents:
            assert agent.publisher.wait_connected(10)
        for n in range(POLLS):
            for agent in edge_agents:
                agent.poll(n)
            time.sleep(0.1)
        wait_until(lambda: all(a.spool.stats().depth == 0 for a in edge_agents), timeout=60,
                   what="every spool emptied by acknowledgements")
    finally:
        for ingest in ingests:
            ingest.stop()
    total = sum(a.appended for a in edge_agents)
    assert count(influx, "SELECT count(ac_power_w) FROM inverter") == total == len(SITES) * POLLS * 2
    for agent in edge_agents:
        health = agent.forwarder.health()
        assert health.mode == "acks", agent.site
        assert agent.forwarder.acked_rows == agent.appended, agent.site  # each row deleted by an ack...
        assert agent.forwarder.acked_unknown == 0, agent.site  # ...and none acknowledged twice
        assert health.rows_resent == 0 and health.unacked_rows == 0, agent.site
    logs = [i.log.read_text() for i in ingests]
    assert all("subscribed to" in text for text in logs)
    # the retained statuses arrive before the agents decide: none started deleting at PUBACK
    assert "no ingest announces" not in caplog.text


def test_an_ingest_that_does_not_acknowledge_gets_puback_deletion_then_acks_when_one_announces(
    tmp_path: Path, mosquitto: MosquittoBroker, edge_agents: list[EdgeAgent], caplog: pytest.LogCaptureFixture
) -> None:
    """An agent upgraded before its ingest: no status on terril/_ingest/+/status announces acks, so
    rows leave the spool at the PUBACK and messages carry no id (an old ingest would dead-letter them).
    Its spool neither grows nor resends. When an ingest announces acks, the agent switches."""
    watcher = Subscriber(mosquitto.port, "terril/mairie/readings")
    agent = EdgeAgent(tmp_path, "mairie", mosquitto.port, resend_after=1.0).start()
    edge_agents.append(agent)
    try:
        for n in range(5):
            agent.poll(n)
        wait_until(lambda: agent.spool.stats().depth == 0, timeout=15, what="spool emptied at PUBACK")
        assert agent.forwarder.mode == "puback"
        time.sleep(2.5)  # two resend delays: nothing is sent again
        sent = watcher.wait_for(lambda ms: sum(len(json.loads(m.payload)["readings"]) for m in ms) >= 10)
        assert all("id" not in json.loads(m.payload) for m in sent)
        copies = [(r["device"], r["ts"]) for m in sent for r in json.loads(m.payload)["readings"]]
        assert len(set(copies)) == 10 and len(copies) <= 12  # at least once, and no resend loop

        # An ingest announces acknowledgements (retained, as the real one does): the agent now keeps
        # its rows until acknowledged, and resends them when no ack comes.
        status = json.dumps(ingest_status_payload("new-ingest", True, "resumed")).encode()
        publish_all(mosquitto.port, [(ingest_status_topic("new-ingest"), status)], retain=True)
        wait_until(lambda: agent.forwarder.mode == "acks", timeout=10, what="switch to acks")
        agent.poll(10)
        wait_until(lambda: agent.forwarder.health().unacked_rows == 2, timeout=10, what="rows kept after PUBACK")
        assert agent.spool.stats().depth == 2
        wait_until(lambda: agent.forwarder.rows_resent >= 2, timeout=10, what="resent after resend_after")
        with_id = [json.loads(m.payload) for m in watcher.snapshot() if "id" in json.loads(m.payload)]
        assert with_id and with_id[0]["id"].startswith(agent.spool.instance + ":")

        # The status is cleared (the new ingest rolled back): back to PUBACK deletion, spool emptied.
        publish_all(mosquitto.port, [(ingest_status_topic("new-ingest"), b"")], retain=True)
        wait_until(lambda: agent.forwarder.mode == "puback" and agent.spool.stats().depth == 0, timeout=10,
                   what="back to PUBACK deletion")
    finally:
        watcher.close()
    assert "no ingest announces acknowledgements" in caplog.text


def test_ingest_away_holds_resends_and_its_return_postpones_them(
    tmp_path: Path, mosquitto: MosquittoBroker, edge_agents: list[EdgeAgent]
) -> None:
    offline = json.dumps(ingest_status_payload("i1", False)).encode()
    publish_all(mosquitto.port, [(ingest_status_topic("i1"), offline)], retain=True)
    agent = EdgeAgent(tmp_path, "mairie", mosquitto.port, resend_after=1.0).start()
    edge_agents.append(agent)
    wait_until(lambda: agent.forwarder.mode == "acks", timeout=10, what="acks mode from the retained status")
    agent.poll(0)
    wait_until(lambda: agent.forwarder.health().unacked_rows == 2, timeout=10, what="sent, not acknowledged")
    time.sleep(3)  # three resend delays while the ingest is away: nothing resent
    assert agent.forwarder.rows_resent == 0
    online = json.dumps(ingest_status_payload("i1", True, "resumed")).encode()
    publish_all(mosquitto.port, [(ingest_status_topic("i1"), online)], retain=True)
    time.sleep(0.5)
    assert agent.forwarder.rows_resent == 0  # back: it gets resend_after to drain the broker's queue
    wait_until(lambda: agent.forwarder.rows_resent == 2, timeout=10, what="resent once the delay passed")
    # an ack for those rows (as the ingest would publish) deletes them
    ack = {"v": 1, "site": "mairie", "ids": [f"{agent.spool.instance}:1-2", "ffffffffffffffff:1-2"]}
    publish_all(mosquitto.port, [(Topics("mairie").ack, json.dumps(ack).encode())])
    wait_until(lambda: agent.spool.stats().depth == 0, timeout=10, what="deleted by the ack")
    assert agent.forwarder.acked_rows == 2
