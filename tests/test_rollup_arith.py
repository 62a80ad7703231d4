"""Pure arithmetic of the rollups: local days across DST, counter increases, linear split."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from agent.central.rollup import (
    CounterWindow,
    LocalDay,
    attribute_to_days,
    counter_increase,
    increase_over,
    local_days,
    reference_share_wh,
    today_in,
)

H = 3600 * 1000
MAX_GAP = 45 * 24 * H


def test_local_days_follow_dst_in_paris() -> None:
    days = {d.day: d for d in local_days(date(2026, 3, 28), date(2026, 3, 30), "Europe/Paris")}
    assert [d.length_ms // H for d in days.values()] == [24, 23, 24]
    assert days[date(2026, 3, 29)].start_ms == int(datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp() * 1000)
    autumn = local_days(date(2026, 10, 24), date(2026, 10, 26), "Europe/Paris")
    assert [d.length_ms // H for d in autumn] == [24, 25, 24]
    assert autumn[1].start_ms == int(datetime(2026, 10, 24, 22, tzinfo=UTC).timestamp() * 1000)
    assert autumn[2].start_ms == int(datetime(2026, 10, 25, 23, tzinfo=UTC).timestamp() * 1000)
    # consecutive days tile time with no hole and no overlap
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(autumn))


def test_a_skipped_midnight_starts_the_day_after_the_jump() -> None:
    # America/Santiago jumped from 2022-09-11 00:00 to 01:00: the day starts at 01:00 local = 04:00 UTC.
    (day,) = local_days(date(2022, 9, 11), date(2022, 9, 11), "America/Santiago")
    assert day.start_ms == int(datetime(2022, 9, 11, 4, tzinfo=UTC).timestamp() * 1000)
    assert day.length_ms == 23 * H


def test_local_days_rejects_reversed_range() -> None:
    with pytest.raises(ValueError, match="before since"):
        local_days(date(2026, 1, 2), date(2026, 1, 1), "Europe/Paris")


def test_today_in_uses_the_local_date() -> None:
    late_utc = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 00:30 in Paris, next day
    assert today_in("Europe/Paris", late_utc) == date(2026, 10, 25)
    assert today_in("UTC", late_utc) == date(2026, 10, 24)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (1000.0, 1250.0, 250.0),  # normal growth
        (1000.0, 1000.0, 0.0),  # inverter asleep
        (1_000_000.0, 37.0, 37.0),  # reset to zero then 37 Wh counted
        (1_000_000.0, 999_990.0, 0.0),  # small step back (bad read): nothing, never negative
        (1_000_000.0, 800_000.0, 0.0),  # replacement counter not starting from zero: nothing
    ],
)
def test_counter_increase(previous: float, current: float, expected: float) -> None:
    assert counter_increase(previous, current) == expected


def test_increase_over_a_reset_counts_both_sides() -> None:
    samples = [(0, 5000.0), (1, 5100.0), (2, 5200.0), (3, 40.0), (4, 140.0)]
    assert increase_over(samples) == 200.0 + 40.0 + 100.0


def _day(start_h: int, length_h: int = 24) -> LocalDay:
    return LocalDay(date(2026, 1, 1) + timedelta(days=start_h // 24), start_h * H, (start_h + length_h) * H)


def test_interval_across_midnight_is_split_linearly_and_conserved() -> None:
    days = [_day(0), _day(24)]
    w = CounterWindow(firsts={0: (2 * H, 100.0), 1: (30 * H, 160.0)}, lasts={0: (20 * H, 140.0), 1: (30 * H, 160.0)})
    out = attribute_to_days(w, days, MAX_GAP)
    # intra day 0: 40; gap 20h -> 30h carries 20 Wh over 10 h: 4 h in day 0, 6 h in day 1
    assert out[0] == pytest.approx(40.0 + 8.0)
    assert out[1] == pytest.approx(12.0)
    assert out[0] + out[1] == pytest.approx(160.0 - 100.0)


def test_gap_spanning_a_whole_day_gives_it_its_share() -> None:
    days = [_day(0), _day(24), _day(48)]
    w = CounterWindow(firsts={0: (12 * H, 0.5e6), 2: (60 * H, 0.5e6 + 480.0)}, lasts={0: (12 * H, 0.5e6)})
    w.lasts[2] = w.firsts[2]
    out = attribute_to_days(w, days, MAX_GAP)
    assert out == pytest.approx({0: 120.0, 1: 240.0, 2: 120.0})


def test_reading_before_and_after_the_window_are_used() -> None:
    days = [_day(24)]
    w = CounterWindow(before=(22 * H, 10.0), after=(50 * H, 70.0), firsts={0: (26 * H, 20.0)}, lasts={0: (46 * H, 60.0)})
    out = attribute_to_days(w, days, MAX_GAP)
    assert out[0] == pytest.approx(10.0 * 2 / 4 + 40.0 + 10.0 * 2 / 4)


def test_intervals_longer_than_max_gap_are_dropped() -> None:
    days = [_day(0)]
    w = CounterWindow(before=(-100 * H, 0.0), firsts={0: (10 * H, 500.0)}, lasts={0: (20 * H, 600.0)})
    assert attribute_to_days(w, days, 48 * H) == {0: 100.0}


def test_a_day_without_any_interval_has_no_value() -> None:
    days = [_day(0), _day(24)]
    w = CounterWindow(firsts={1: (30 * H, 5.0)}, lasts={1: (30 * H, 5.0)})
    assert attribute_to_days(w, days, MAX_GAP) == {}


def test_reference_share_is_proportional_to_the_day_length() -> None:
    autumn = local_days(date(2026, 10, 24), date(2026, 10, 25), "Europe/Paris")
    year = 36e9
    assert reference_share_wh(year, autumn[0]) == pytest.approx(year * 24 / (365.25 * 24))
    assert reference_share_wh(year, autumn[1]) == pytest.approx(year * 25 / (365.25 * 24))
