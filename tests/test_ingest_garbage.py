"""A stream of garbage never stops valid data (property-based payloads, real broker and database).

Hypothesis generates 10,000 invalid messages — random bytes, random JSON, and
valid payloads broken in one precise way — which are published interleaved
with valid readings. The ingest must stay up, store every valid reading, and
dead-letter exactly the invalid messages.
"""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.central.validate import message_to_points
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker, Subscriber
from tests.ingest_support import (
    DB,
    T0,
    IngestThread,
    count,
    ingest_config,
    publish_all,
    reading,
    readings_message,
    wait_until,
)

GARBAGE = 10_000
PER_EXAMPLE = 5
VALID = 500
KINDS = ["readings", "events", "health", "info", "status"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

_BASE = json.loads(readings_message("junk", [reading("junk-1", T0), reading("junk-2", T0 + 1, "mppt", string="a")])[1])

_BREAKERS: list[tuple[str, Any]] = [
    ("v", st.sampled_from([0, 2, "1", None, True, 1.5])),
    ("site", st.sampled_from(["other", "JUNK", "", None, 7])),
    ("readings", st.sampled_from([[], {}, "x", None])),
    ("device", st.sampled_from(["Bad Slug", "", None, 3, "-x", "a" * 80])),
    ("kind", st.sampled_from(["battery", "", None, 1])),
    ("ts", st.sampled_from([0, -1, 946_684_799_999, 10**15, 1.5e12, "1700000000000", None, True])),
    ("field_value", st.sampled_from([float("nan"), float("inf"), "12", None, True, [1], {"a": 1}, 10**400])),
    ("field_name", st.sampled_from(["ac_power_kw", "", "power_w", "state "])),
    ("state_float", st.floats(allow_nan=False, allow_infinity=False)),
    ("string", st.sampled_from([None, "Bad String", ""])),
    ("extra_key", st.text(min_size=1, max_size=8).filter(lambda k: k not in ("v", "site", "readings"))),
]


@st.composite
def broken_readings(draw: st.DrawFn) -> bytes:
    """A valid readings payload with exactly one thing wrong."""
    data = copy.deepcopy(_BASE)
    what, values = draw(st.sampled_from(_BREAKERS))
    value = draw(values)
    r = data["readings"][draw(st.integers(0, 1))]
    if what in ("v", "site", "readings"):
        data[what] = value
    elif what == "extra_key":
        data[value] = 1
    elif what == "field_value":
        r["fields"]["dc_power_w" if r["kind"] == "mppt" else "ac_power_w"] = value
    elif what == "field_name":
        r["fields"][value] = 1.0
    elif what == "state_float":
        data["readings"][0]["fields"]["state"] = value
    elif what == "string":
        data["readings"][1]["string"] = value
    else:
        r[what] = value
    return json.dumps(data, allow_nan=True).encode()


garbage_message = st.one_of(
    st.tuples(st.sampled_from(KINDS), st.binary(max_size=200)),
    st.tuples(st.sampled_from(KINDS), json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())),
    st.tuples(st.just("readings"), broken_readings()),
    st.tuples(st.sampled_from(["events", "health", "info"]),
              st.dictionaries(st.sampled_from(["v", "site", "device", "ts", "code", "active", "text", "panels"]),
                              json_values, max_size=6).map(lambda d: json.dumps(d, allow_nan=True).encode())),
)


def _generate_garbage() -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    @settings(max_examples=GARBAGE // PER_EXAMPLE, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(garbage_message, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def collect(messages: list[tuple[str, bytes]]) -> None:
        out.extend((f"terril/junk/{kind}", payload) for kind, payload in messages)

    collect()
    while len(out) < GARBAGE:  # hypothesis may stop early when it exhausts a small space
        out.extend(out[: GARBAGE - len(out)])
    return out[:GARBAGE]


@pytest.mark.slow
@pytest.mark.timeout(900)  # 60-220 s on a loaded 2-core machine (generating 10,000 examples: 60 s of it)
def test_garbage_never_stops_valid_data(mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    garbage = _generate_garbage()
    now = int(time.time() * 1000)
    invalid = [m for m in garbage if message_to_points(m[0], m[1], now).problems]
    assert len(invalid) == GARBAGE, "the generators must only produce invalid messages"

    valid = [readings_message(f"site-{i % 9}", [reading("good", T0 + i * 1000)]) for i in range(VALID)]
    stream = garbage + valid
    random.Random(4).shuffle(stream)

    influx.create_database(DB)
    dead = Subscriber(mosquitto.port, "terril/_deadletter")
    try:
        with IngestThread(ingest_config(mosquitto.port, influx.url)) as ingest:
            publish_all(mosquitto.port, stream)
            dead.wait_for(lambda m: len(m) >= GARBAGE, timeout=600)
            wait_until(lambda: count(influx, "SELECT count(ac_power_w) FROM inverter WHERE device = 'good'") == VALID,
                       timeout=60, what="every valid reading stored")
            wait_until(lambda: ingest.stats.acked == GARBAGE + VALID, what="every message acknowledged")
            assert ingest.stats.deadletters == GARBAGE
            assert ingest.stats.messages == GARBAGE + VALID
        time.sleep(0.3)
        assert len(dead.snapshot()) == GARBAGE
    finally:
        dead.close()
    reasons = {json.loads(m.payload)["reason"].split(":")[0] for m in dead.snapshot()[:2000]}
    assert len(reasons) > 10  # many different, specific reasons, not one catch-all
