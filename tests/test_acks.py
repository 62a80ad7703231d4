"""End-to-end acknowledgement, the pure parts: message ids, the ledger of sent rows, the ingest's presence,
the ack payloads the ingest builds and the validation that reads the ids."""

from __future__ import annotations

import json

import pytest

from agent.central.ingest.acks import Stored, group_by_site
from agent.central.validate import message_to_points
from agent.edge.acks import (
    IngestPresence,
    SentLedger,
    encode_message_id,
    parse_ack,
    parse_ingest_status,
    parse_message_id,
    ranges_of,
)
from agent.schema import MESSAGE_ID_RE, ingest_status_payload, readings_payload
from tests.ingest_support import T0, reading

INSTANCE = "00c0ffee12345678"


def test_message_id_round_trips_row_ranges() -> None:
    ids = [7, 1, 2, 3, 10, 11, 500]
    text = encode_message_id(INSTANCE, ids)
    assert text == f"{INSTANCE}:1-3,7,10-11,500"
    assert MESSAGE_ID_RE.fullmatch(text)
    assert parse_message_id(text) == (INSTANCE, [(1, 3), (7, 7), (10, 11), (500, 500)])
    assert ranges_of([5, 5, 6]) == [(5, 6)]


@pytest.mark.parametrize("bad", ["", "x", f"{INSTANCE}:", f"{INSTANCE}:3-1", f"{INSTANCE}:1--2",
                                 f"{INSTANCE}:-4", f"{INSTANCE}:1-2000000", "ABC:1", 42])
def test_foreign_or_broken_message_ids_are_ignored(bad: object) -> None:
    assert parse_message_id(bad) is None  # type: ignore[arg-type]


def test_ack_payload_must_name_the_site() -> None:
    good = json.dumps({"v": 1, "site": "mairie", "ids": ["a:1", 3]}).encode()
    assert parse_ack(good, "mairie") == ["a:1"]
    assert parse_ack(good, "ecole") == []
    assert parse_ack(b"\xff", "mairie") == [] and parse_ack(b"[]", "mairie") == []


def test_ledger_records_ranges_and_forgets_acknowledged_rows() -> None:
    ledger = SentLedger(resend_after=10)
    ledger.add(range(1, 101), now=0.0)
    ledger.add([150, 151], now=1.0)
    assert ledger.rows == 102 and len(ledger) == 2
    assert ledger.remove([(20, 29), (151, 151)]) == 11
    assert ledger.rows == 91
    assert list(ledger) == [(1, 19), (30, 100), (150, 150)]
    assert ledger.covering(25) is None and ledger.covering(30) == 100 and ledger.covering(150) == 150
    assert ledger.remove([(1000, 2000)]) == 0


def test_ledger_due_after_resend_after_then_with_back_off() -> None:
    ledger = SentLedger(resend_after=10)
    ledger.add([1, 2, 3], now=0.0)
    ledger.add([4], now=5.0)
    assert ledger.take_due(9.9) == []
    due = ledger.take_due(10.0)
    assert [(d.first, d.last, d.attempts) for d in due] == [(1, 3, 1)]
    assert ledger.rows == 1
    ledger.add([1, 2, 3], now=20.0, attempts=due[0].attempts + 1)  # resent, accepted again
    assert [d.first for d in ledger.take_due(15.0)] == [4]
    assert ledger.take_due(39.9) == []  # second wait is 2 x resend_after
    assert [(d.first, d.attempts) for d in ledger.take_due(40.0)] == [(1, 2)]
    ledger.add([9], now=0.0, attempts=10)
    assert ledger.take_due(79.9) == [] and ledger.take_due(80.0)[0].first == 9  # capped at 8 x


def test_ledger_postpone_and_expedite() -> None:
    ledger = SentLedger(resend_after=10)
    ledger.add([1], now=0.0)
    ledger.postpone(now=100.0)  # the ingest came back at 100 s: it gets resend_after to drain its queue
    assert ledger.take_due(109.0) == []
    ledger.expedite(due_at=105.0)  # its session was lost: nothing more will come
    assert [d.first for d in ledger.take_due(105.0)] == [1]
    ledger.add([2, 3], now=0.0)
    assert ledger.clear() == [(2, 3)] and ledger.rows == 0


def test_presence_decides_the_mode_and_whether_the_ingest_is_away() -> None:
    presence = IngestPresence()
    assert not presence.acknowledges and not presence.away
    online = parse_ingest_status(json.dumps(ingest_status_payload("i1", True, "new")).encode())
    offline = parse_ingest_status(json.dumps(ingest_status_payload("i2", False)).encode())
    assert online is not None and online.online and online.acks and online.session_new
    presence.update("i2", offline)
    assert presence.acknowledges and presence.away
    presence.update("i1", online)
    assert not presence.away
    presence.update("i1", parse_ingest_status(b""))  # cleared retained status
    presence.update("i2", None)
    assert not presence.acknowledges
    assert parse_ingest_status(b'{"status":"online"}') is not None
    assert not parse_ingest_status(b'{"status":"online"}').acks  # type: ignore[union-attr]
    assert parse_ingest_status(b"garbage") is None


def test_ingest_reads_the_id_even_of_a_message_it_dead_letters() -> None:
    message_id = encode_message_id(INSTANCE, [1, 2])
    good = {**readings_payload("mairie", [reading("ond", T0)]), "id": message_id}
    decoded = message_to_points("terril/mairie/readings", json.dumps(good).encode(), T0 + 1000)
    assert decoded.message_id == message_id and not decoded.problems and decoded.lines
    bad = {"v": 99, "site": "mairie", "id": message_id, "readings": []}
    decoded = message_to_points("terril/mairie/readings", json.dumps(bad).encode(), T0 + 1000)
    assert decoded.problems and decoded.message_id == message_id
    broken = {**good, "id": "not an id"}
    decoded = message_to_points("terril/mairie/readings", json.dumps(broken).encode(), T0 + 1000)
    assert decoded.problems and "id" in decoded.problems[0] and decoded.message_id is None
    event = {"v": 1, "site": "mairie", "id": message_id, "device": "ond", "ts": T0, "code": "GROUND_FAULT",
             "active": True, "text": "x"}
    assert message_to_points("terril/mairie/events", json.dumps(event).encode(), T0).message_id == message_id


def test_one_ack_per_site_with_each_id_once() -> None:
    grouped = group_by_site([Stored("a", "x:1"), Stored("b", "x:2"), Stored("a", "x:3"), Stored("a", "x:1"),
                             Stored(None, "x:9"), Stored("a", None)])
    assert grouped == {"a": ["x:1", "x:3"], "b": ["x:2"]}
