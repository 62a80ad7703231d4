"""FlapDamper: one line per change while stable; once flapping one line, a summary every 10 min, one when stable."""

from __future__ import annotations

import logging

import pytest

from agent.flapping import FLAP_SETTLE_S, FLAP_SUMMARY_S, FlapDamper

log = logging.getLogger("test.flapping")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_thirty_flips_a_minute_for_twenty_minutes_make_a_handful_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    damper = FlapDamper("onduleur", log, clock)
    logged = []
    with caplog.at_level(logging.INFO, logger="test.flapping"):
        for i in range(20 * 30):  # a change every 2 s for 20 minutes
            damper.tick()
            status = "unreachable" if i % 2 == 0 else "ok"
            if damper.allow(status, "Modbus exception 6"):
                logged.append(status)
            clock.now += 2
        assert damper.flapping
        summaries = [r.getMessage() for r in caplog.records if "still flapping" in r.getMessage()]
        assert logged == ["unreachable", "ok"]  # the third change starts the damping
        assert len([r for r in caplog.records if "status flapping (3 changes" in r.getMessage()]) == 1
        assert len(summaries) == 1 and "299 changes in the last 10 min" in summaries[0], summaries
        clock.now += FLAP_SETTLE_S - 2
        damper.tick()
        assert not damper.flapping
    stable = [r.getMessage() for r in caplog.records if "stable again" in r.getMessage()]
    assert len(stable) == 1 and "now" not in stable[0] and "ok for 300 s" in stable[0], stable
    assert len(caplog.records) == 3
    assert damper.allow("unreachable", "x")  # stable again: the next change has its own line


def test_two_changes_then_calm_stay_ordinary_lines() -> None:
    clock = Clock()
    damper = FlapDamper("compteur", log, clock)
    for _ in range(10):  # a hiccup every 10 minutes is not flapping
        assert damper.allow("unreachable", "timeout")
        clock.now += 60
        assert damper.allow("ok", "")
        clock.now += FLAP_SUMMARY_S
        damper.tick()
    assert not damper.flapping


def test_device_strings_are_made_printable_by_both_decoders() -> None:
    from agent.devices.profile import decode_value
    from agent.devices.sunspec_types import register_text

    words = [int.from_bytes(b"S\r", "big"), int.from_bytes(b"\nE", "big"), int.from_bytes(b"\x1b[", "big"), 0]
    assert register_text(words) == "S\\r\\nE\\x1b["
    assert decode_value("str", words) == "S\\r\\nE\\x1b["
    assert register_text([int.from_bytes("é".encode(), "big"), 0]) == "é"  # printable text is left alone
