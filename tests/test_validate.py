"""MQTT payload in → line protocol or dead-letter reason out: golden cases in ``tests/cases/ingest/<name>/``.

Each folder holds ``topic.txt``, ``payload.json`` (bytes as published) and
``expected.lp`` (the line protocol written), ``expected_deadletter.txt`` (the
reason), or both (a message partly stored). ``{NOW}`` stands for the receive
time and ``{FUTURE}`` for a time 10 minutes and 1 ms after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.central.validate import DEFAULT_MAX_PAYLOAD_BYTES, message_to_points

CASES = Path(__file__).parent / "cases" / "ingest"
NOW = 1_700_000_000_000 + 3_600_000
FUTURE = NOW + 10 * 60 * 1000 + 1


def _subst(text: str) -> str:
    return text.replace('"{FUTURE}"', str(FUTURE)).replace("{FUTURE}", str(FUTURE)).replace("{NOW}", str(NOW))


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(case: str) -> None:
    folder = CASES / case
    topic = (folder / "topic.txt").read_text(encoding="utf-8").strip()
    payload = _subst((folder / "payload.json").read_text(encoding="utf-8")).encode("utf-8")
    lp_file, dead_file = folder / "expected.lp", folder / "expected_deadletter.txt"
    assert lp_file.exists() or dead_file.exists(), f"{case}: no expected.lp nor expected_deadletter.txt"

    decoded = message_to_points(topic, payload, NOW)

    expected_lines = _subst(lp_file.read_text(encoding="utf-8")).splitlines() if lp_file.exists() else []
    assert [p.to_line() for p in decoded.points] == expected_lines
    expected_reason = _subst(dead_file.read_text(encoding="utf-8")).strip() if dead_file.exists() else None
    assert decoded.reason == expected_reason


def test_ts_just_inside_the_future_window_is_accepted() -> None:
    payload = b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":1}}]}' % (
        NOW + 600_000)
    assert message_to_points("terril/a/readings", payload, NOW).reason is None


def test_payload_size_is_capped_before_parsing() -> None:
    payload = b'{"v":1,"site":"a","readings":[' + b" " * 2000 + b"]}"
    decoded = message_to_points("terril/a/readings", payload, NOW, max_payload_bytes=1024)
    assert decoded.reason == f"payload of {len(payload)} bytes exceeds the 1024-byte cap"
    assert DEFAULT_MAX_PAYLOAD_BYTES >= 500 * 600  # a 500-reading backlog fits


def test_other_root_and_foreign_topics_are_refused() -> None:
    assert message_to_points("other/a/readings", b"{}", NOW, root="terril").reason == (
        "topic 'other/a/readings' is not terril/<site>/<kind>")
    ok = b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":1}}]}' % NOW
    assert message_to_points("ville/a/readings", ok, NOW, root="ville").reason is None


def test_lone_surrogate_in_text_is_refused_not_crashing_the_writer() -> None:
    payload = (b'{"v":1,"site":"a","device":"d","ts":%d,"code":"X","active":true,"text":"\\ud800"}' % NOW)
    assert message_to_points("terril/a/events", payload, NOW).reason == "text holds characters that are not valid Unicode"


_PARSER_CASES = [
    *(sorted((p / "payload.json").read_bytes() for p in CASES.iterdir() if p.is_dir())),
    b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":1e400}}]}' % NOW,
    b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":NaN}}]}' % NOW,
    b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":%d}}]}' % (NOW, 2**70),
    b'{"v":1,"site":"a","readings":[{"device":"d","kind":"meter","ts":%d,"fields":{"power_w":-0}}]}' % NOW,
    b'{"v":1,"site":"a","device":"d","ts":%d,"code":"X","active":true,"text":"\\ud800"}' % NOW,
    b"[" * 5000 + b"]" * 5000,
    b"\xef\xbb\xbf{}",
    b'{"v":1,"v":1,"site":"a","readings":[]}',
    b"\xff not utf-8",
]


@pytest.mark.parametrize("payload", _PARSER_CASES)
def test_orjson_and_the_standard_parser_give_the_same_result(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson is an optional speed-up of the central side: with or without it, the same lines and reasons."""
    import agent.central.validate as validate

    pytest.importorskip("orjson")
    for topic in ("terril/a/readings", "terril/a/events"):
        fast = validate.message_to_points(topic, _subst(payload.decode("utf-8", "replace")).encode()
                                          if payload.isascii() else payload, NOW)
        with monkeypatch.context() as m:
            m.setattr(validate, "_orjson", None)
            plain = validate.message_to_points(topic, _subst(payload.decode("utf-8", "replace")).encode()
                                               if payload.isascii() else payload, NOW)
        assert (fast.lines, fast.problems, fast.site) == (plain.lines, plain.problems, plain.site)


def test_every_number_of_the_schema_has_a_finite_range_with_its_unit() -> None:
    """Issue 13.1: plausibility is one table (``FieldSpec.bounds``), so a new numeric field cannot skip it."""
    import math

    from agent.schema import MEASUREMENTS, Bounds

    for m in MEASUREMENTS.values():
        for f in m.fields:
            if f.type == "str":
                continue
            assert f.bounds is not None, f"{m.name}.{f.name}"
            assert math.isfinite(f.bounds.low) and math.isfinite(f.bounds.high) and f.bounds.low < f.bounds.high
            assert f.bounds.low >= -(2**63) and f.bounds.high <= 2**63 - 1  # ints: within InfluxDB's 64 bits
    power_factor = Bounds(-1, 1)
    assert MEASUREMENTS["inverter"].field("ac_power_factor").bounds == power_factor
    assert MEASUREMENTS["meter"].field("ac_power_factor").bounds == power_factor
