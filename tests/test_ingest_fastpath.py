"""The fast path of validation writes exactly what the full checks write, and refuses exactly what they refuse.

``Decoded.lines`` comes from the fast path (with the full checks as fallback);
``Decoded.points`` is rebuilt by the full checks alone. Over the golden cases
and over generated readings — repeated devices so the fast path is taken,
mixed with every kind of bad value — the two must agree line for line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.central.validate import message_to_points
from agent.schema import READING_MEASUREMENT

CASES = Path(__file__).parent / "cases" / "ingest"
NOW = 1_700_000_000_000 + 3_600_000


def _agree(topic: str, payload: bytes) -> None:
    decoded = message_to_points(topic, payload, NOW)
    assert list(decoded.lines) == [p.to_line() for p in decoded.points]


def test_golden_cases_agree() -> None:
    for folder in sorted(p for p in CASES.iterdir() if p.is_dir()):
        topic = (folder / "topic.txt").read_text(encoding="utf-8").strip()
        text = (folder / "payload.json").read_text(encoding="utf-8")
        text = text.replace('"{FUTURE}"', str(NOW + 600_001)).replace("{FUTURE}", str(NOW + 600_001))
        _agree(topic, text.replace("{NOW}", str(NOW)).encode("utf-8"))


def test_fast_path_is_taken_and_counts_the_oldest_counter_reading() -> None:
    readings = [{"device": "ond-1", "kind": "inverter", "ts": NOW - i * 1000, "fields": {"ac_power_w": 1.5, "state": 4}}
                for i in range(500)]
    readings.append({"device": "s", "kind": "mppt", "string": "1", "ts": NOW - 10**9, "fields": {"dc_power_w": 2}})
    decoded = message_to_points("terril/a/readings", json.dumps({"v": 1, "site": "a", "readings": readings}).encode(), NOW)
    assert decoded.problems == ()
    assert decoded.lines[1] == f"inverter,device=ond-1,site=a ac_power_w=1.5,state=4i {NOW - 1000}"
    assert decoded.lines[-1] == f"mppt,device=s,site=a,string=1 dc_power_w=2.0 {NOW - 10**9}"
    assert decoded.oldest_counter_ms == NOW - 499_000  # mppt has no counter that feeds energy_daily


HUGE = "__huge__"
"""Replaced by ``1e400`` in the JSON text: Python's json reads it as inf."""
FIELDS = {kind: [f.name for f in spec.fields] for kind, spec in READING_MEASUREMENT.items()}
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(), st.none(), st.text(max_size=3), st.just([1]), st.just(2**53 + 1), st.just(HUGE), st.just(2**63), st.just(-(2**63) - 1),
)


@st.composite
def reading(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["inverter", "meter", "mppt", "battery"]))
    r: dict[str, Any] = {
        "device": draw(st.sampled_from(["ond-1", "ond-2", "Bad Slug", 7, ["x"]])),
        "kind": kind,
        "ts": draw(st.one_of(st.just(NOW - 5000), st.integers(min_value=NOW - 10**12, max_value=NOW + 10**6),
                             st.just(True), st.just(float(NOW)))),
    }
    names = [*FIELDS.get(kind, ["ac_power_w"]), "nope"]
    chosen = draw(st.lists(st.sampled_from(names), min_size=0, max_size=4, unique=True))
    r["fields"] = {n: draw(values) if draw(st.integers(0, 3)) == 0 else 1.5 if n != "state" and n != "events" else 4
                   for n in chosen}
    if kind == "mppt" or draw(st.integers(0, 9)) == 0:
        r["string"] = draw(st.sampled_from(["1", "2", "no slug", None]))
    if draw(st.integers(0, 19)) == 0:
        r["extra"] = 1
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(reading(), min_size=1, max_size=30))
def test_generated_readings_agree(readings: list[dict[str, Any]]) -> None:
    # Before each reading, a valid one of the same shape, so the reading itself meets a warmed cache.
    doubled = []
    for r in readings:
        if isinstance(r.get("fields"), dict):
            valid = {n: 4 if n in ("state", "events") else 1.5 for n in r["fields"]}
            doubled.append({**r, "ts": NOW - 1, "fields": valid})
        doubled.append(r)
    text = json.dumps({"v": 1, "site": "a", "readings": doubled}).replace(f'"{HUGE}"', "1e400")
    _agree("terril/a/readings", text.encode())


EDGE_VALUES = [2**63, -(2**63) - 1, 2**63 - 1, 2**53 + 1, 2**1100, HUGE, True, 1.5, 4, None, "4", [4]]


def test_edge_values_on_a_warmed_cache_agree() -> None:
    for kind, names in FIELDS.items():
        for name in names:
            for value in EDGE_VALUES:
                base: dict[str, Any] = {"device": "d", "kind": kind, "ts": NOW}
                if kind == "mppt":
                    base["string"] = "1"
                valid = {**base, "fields": {name: 4 if name in ("state", "events") else 1.5}}
                text = json.dumps({"v": 1, "site": "a", "readings": [valid, {**base, "fields": {name: value}}]})
                _agree("terril/a/readings", text.replace(f'"{HUGE}"', "1e400").encode())
