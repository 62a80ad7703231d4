"""One rule for the topic root, on both sides (issue 8: an agent could publish where no ingest could parse).

The agent used to accept ``topic_root: ville/terril`` while the ingest refused
it and ``parse_topic`` could never split its topics: such an agent published
into the void. Now ``agent.schema`` holds the rule, both configs use it, and a
reading published under a multi-level root reaches InfluxDB.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.central.config import parse_ingest_config
from agent.central.validate import message_to_points
from agent.edge.config import parse_agent_config
from agent.errors import ConfigError
from agent.schema import TOPIC_KINDS, is_topic_root, parse_topic
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import (
    DB,
    T0,
    IngestThread,
    count,
    ingest_config_dict,
    publish_all,
    reading,
    readings_message,
    wait_until,
)

ROOTS = ["terril", "Terril_2", "ville/terril", "a/b/c-d"]
NOT_ROOTS = ["", "/terril", "terril/", "a//b", "terril/+", "terril/#", "a b", "été"]


def _agent(root: str) -> dict[str, Any]:
    return {
        "site": {"slug": "mairie", "name": "Mairie", "peak_power_w": 1000.0, "latitude": 50.0, "longitude": 2.0},
        "broker": {"host": "h", "topic_root": root},
        "devices": [{"name": "ond-1", "kind": "inverter", "driver": "sunspec",
                     "transport": {"type": "tcp", "host": "127.0.0.1"}}],
    }


def _ingest(root: str) -> dict[str, Any]:
    return {"influxdb": {"api": "v1", "url": "http://x", "database": "d"}, "topic_root": root}


@pytest.mark.parametrize("root", ROOTS)
def test_a_root_either_side_accepts_the_other_accepts_and_parses(root: str) -> None:
    agent = parse_agent_config(_agent(root), "agent.yaml")
    ingest = parse_ingest_config(_ingest(root), "ingest.yaml")
    assert is_topic_root(root) and agent.broker.topic_root == ingest.topic_root == root
    topics = agent.topics
    for kind in TOPIC_KINDS:
        assert parse_topic(getattr(topics, kind), ingest.topic_root) == ("mairie", kind)
    payload = json.dumps({"v": 1, "site": "mairie", "readings": [reading("ond-1", T0)]}).encode()
    decoded = message_to_points(topics.readings, payload, T0 + 1000, ingest.topic_root)
    assert decoded.problems == () and len(decoded.lines) == 1


@pytest.mark.parametrize("root", NOT_ROOTS)
def test_a_root_one_side_refuses_the_other_refuses_too(root: str) -> None:
    assert not is_topic_root(root)
    with pytest.raises(ConfigError) as agent_exc:
        parse_agent_config(_agent(root), "agent.yaml")
    with pytest.raises(ConfigError) as ingest_exc:
        parse_ingest_config(_ingest(root), "ingest.yaml")
    (agent_problem,) = agent_exc.value.problems
    (ingest_problem,) = ingest_exc.value.problems
    assert agent_problem.startswith("broker.topic_root: expected topic levels")
    assert ingest_problem.startswith("topic_root: expected topic levels")
    assert agent_problem.split(": ", 1)[1] == ingest_problem.split(": ", 1)[1], "one wording"


def test_topics_under_another_root_are_not_ours() -> None:
    assert parse_topic("terril/mairie/readings", "ville/terril") is None
    assert parse_topic("ville/terril/mairie/readings", "terril") is None
    assert parse_topic("ville/terrils/mairie/readings", "ville/terril") is None
    assert parse_topic("ville/terril/mairie/readings/x", "ville/terril") is None
    assert parse_topic("ville/terril/_ingest/ingest-1/health", "ville/terril") is None


def test_a_reading_under_a_multi_level_root_reaches_influxdb(mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    influx.create_database(DB)
    root = "ville/terril"
    topics = parse_agent_config(_agent(root), "agent.yaml").topics
    (_, payload) = readings_message("mairie", [reading("ond-1", T0), reading("ond-1", T0 + 10_000)])
    config = parse_ingest_config(ingest_config_dict(mosquitto.port, influx.url, topic_root=root))
    with IngestThread(config) as ingest:
        publish_all(mosquitto.port, [(topics.readings, payload)])
        wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter") == 2, what="2 readings stored")
        assert ingest.stats.deadletters == 0
