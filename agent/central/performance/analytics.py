"""Peer comparison and the underperformance rule: pure functions over daily numbers.

Why peers and not an absolute threshold: a cloudy day makes every roof of the
commune produce less than its clear-sky expectation, so "clear-sky ratio below
0.8" says nothing. Dividing a roof's clear-sky ratio by the median ratio of
its neighbours that day (the *performance index*) cancels the weather, which
neighbours share; the clear-sky model has already taken each roof's
orientation into account. A healthy roof sits near 1.0, a roof that lost 20 %
near 0.8, whatever the sky.

No index is invented: a roof without an expectation (no array in the
inventory, no position) or without enough peers (``min_peers``) gets none,
and the underperformance flag is then left out of its row, not written as 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the analytics; the defaults are the documented ones (README, "Yield analytics")."""

    index_threshold: float = 0.85
    """A day counts as low when the performance index is below this."""
    sunny_ratio: float = 0.4
    """A day has enough sun when the peers' median clear-sky ratio is at least this."""
    window_days: int = 5
    """The rule looks at this many most recent sunny days…"""
    low_days: int = 3
    """…and flags when at least this many of them were low."""
    lookback_days: int = 14
    """How far back (local days) the rule and ``underperforming_since`` may look for sunny days."""
    min_peers: int = 2
    """Fewer peers with a ratio that day: no index (one peer cannot tell which of the two is wrong)."""
    string_threshold: float = 0.5
    """A string is low when its energy (per kWp) is below (1 - this) x its siblings' median."""
    string_sunny_days: int = 2
    """A string is flagged when it was low on each of its inverter's this many most recent sunny days."""


def clear_sky_ratio(energy_wh: float | None, expected_wh: float | None) -> float | None:
    """Energy / expected clear-sky energy, or None when either is unknown or nothing was expected."""
    if energy_wh is None or expected_wh is None or expected_wh <= 0.0:
        return None
    return energy_wh / expected_wh


@dataclass(frozen=True)
class PeerIndex:
    index: float
    peers_median: float
    """Median clear-sky ratio of the peers (the roof itself left out)."""
    peers: int


def peer_indexes(ratios: Mapping[K, float | None], groups: Mapping[K, str], min_peers: int = 2) -> dict[K, PeerIndex]:
    """Performance index of each key: its ratio / the median ratio of the other keys of its group that day.

    Keys without a ratio, or with fewer than *min_peers* peers having one, or
    whose peers' median is 0 (a dark day) are absent from the result.
    """
    members: dict[str, list[tuple[K, float]]] = {}
    for key, ratio in ratios.items():
        group = groups.get(key)
        if ratio is not None and group is not None:
            members.setdefault(group, []).append((key, ratio))
    out: dict[K, PeerIndex] = {}
    for group_members in members.values():
        peers = len(group_members) - 1
        if peers < max(1, min_peers):
            continue
        ordered = sorted(r for _, r in group_members)
        position = {r: i for i, r in enumerate(ordered)}  # any position of an equal value leaves the same list
        for key, ratio in group_members:
            median = median_without(ordered, position[ratio])
            if median > 0.0:
                out[key] = PeerIndex(ratio / median, median, peers)
    return out


def median_without(ordered: Sequence[float], skip: int) -> float:
    """The median of the sorted values *ordered* once the one at index *skip* is left out.

    O(1) instead of building and sorting the list of the others for each of a
    commune's roofs: a town of 1,000 inverters would otherwise sort a million values a day.
    """
    n = len(ordered) - 1

    def at(m: int) -> float:
        return ordered[m if m < skip else m + 1]

    if n % 2:
        return at(n // 2)
    return (at(n // 2 - 1) + at(n // 2)) / 2.0


@dataclass(frozen=True)
class DayIndex:
    """One day of one roof as the rule sees it."""

    day: date
    index: float | None
    peers_median: float | None


@dataclass(frozen=True)
class Verdict:
    underperforming: bool
    since: date | None
    """First low sunny day of the episode that is still flagged (None when not flagged)."""


def _sunny(d: DayIndex, s: RuleSettings) -> bool:
    return d.index is not None and d.peers_median is not None and d.peers_median >= s.sunny_ratio


def _flag_at(history: Sequence[DayIndex], s: RuleSettings) -> tuple[bool, date | None]:
    """The rule on *history* (ascending, last = the day judged): flagged, and the first low day counted."""
    sunny = [d for d in history if _sunny(d, s)][-s.window_days:]
    low = [d for d in sunny if d.index is not None and d.index < s.index_threshold]
    if len(low) >= s.low_days:
        return True, low[0].day
    return False, None


def underperformance(history: Sequence[DayIndex], settings: RuleSettings | None = None) -> Verdict:
    """Whether the roof is underperforming on the last day of *history* (ascending by day).

    Flagged when the index was below ``index_threshold`` on at least
    ``low_days`` of the ``window_days`` most recent days with enough sun, among
    the ``lookback_days`` before the judged day (days before that are ignored,
    so a backfill and the daily job give the same answer). ``since`` is the
    first low day counted when the current run of flagged days began.
    """
    s = settings or RuleSettings()
    if not history:
        return Verdict(False, None)
    last = history[-1].day
    window = [d for d in history if 0 <= (last - d.day).days <= s.lookback_days]
    flagged, since = _flag_at(window, s)
    if not flagged:
        return Verdict(False, None)
    # Walk back while the previous days were flagged too: the episode's start gives "since".
    for end in range(len(window) - 1, 0, -1):
        prev_flagged, prev_since = _flag_at(window[:end], s)
        if not prev_flagged:
            break
        since = prev_since
    return Verdict(True, since)


# --------------------------------------------------------------------------- strings


@dataclass(frozen=True)
class StringDay:
    """One MPPT string's energy on one day, normalised by its share of the array when known."""

    energy_wh: float
    peak_power_w: float | None = None


def sibling_ratios(strings: Mapping[K, StringDay]) -> dict[K, tuple[float, float]]:
    """Each string's ratio to the median of its siblings (same inverter), and that median in Wh.

    Strings are compared per kWp when every string has a peak power (the
    inventory's ``string_peak_power_w``), as equals otherwise. A string alone
    on its inverter, or whose siblings produced nothing, gets no ratio.
    """
    per_kwp = all(s.peak_power_w for s in strings.values())
    norm = {k: (s.energy_wh / (s.peak_power_w or 1.0) if per_kwp else s.energy_wh) for k, s in strings.items()}
    out: dict[K, tuple[float, float]] = {}
    for key, value in norm.items():
        others = [v for k, v in norm.items() if k != key]
        if not others:
            continue
        median = statistics.median(others)
        if median <= 0.0:
            continue
        peak = strings[key].peak_power_w
        median_wh = median * peak if per_kwp and peak else median
        out[key] = (value / median, median_wh)
    return out


def string_failing(ratios_on_sunny_days: Sequence[float], settings: RuleSettings | None = None) -> bool:
    """Flagged when the string was low on each of its inverter's ``string_sunny_days`` most recent sunny days."""
    s = settings or RuleSettings()
    recent = list(ratios_on_sunny_days)[-s.string_sunny_days:]
    return len(recent) >= s.string_sunny_days and all(r < 1.0 - s.string_threshold for r in recent)
