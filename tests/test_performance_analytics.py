"""Yield analytics, pure parts: clear-sky model sanity, peer index, underperformance rule, strings."""

from __future__ import annotations

import statistics
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.central.performance.analytics import (
    DayIndex,
    RuleSettings,
    StringDay,
    clear_sky_ratio,
    median_without,
    peer_indexes,
    sibling_ratios,
    string_failing,
    underperformance,
)
from agent.central.performance.model import ClearSkyModel, ModelSettings, Orientation, gamma_pdc_for
from agent.central.performance.plan import plan_from_inventory, technology_tag
from tests.performance_town import FakeArray, FakeInventory, FakeSite

LOOS = (50.457, 2.793)

# --------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def model() -> ClearSkyModel:
    return ClearSkyModel("Europe/Paris")


def test_clear_sky_yield_of_a_south_roof_is_plausible_and_seasonal(model: ClearSkyModel) -> None:
    south = Orientation.of(*LOOS, 30, 180, "mono-PERC")
    june, december = date(2026, 6, 21), date(2026, 12, 21)
    got = model.wh_per_kwp([south], [june, december])
    # Clear-sky days at 50.5 N, 30 deg south: about 6-7 kWh/kWp at midsummer, about 2 at midwinter.
    assert 5800 < got[(south, june)] < 7200
    assert 1500 < got[(south, december)] < 2700
    assert model.expected_wh(south, 18000, june) == pytest.approx(got[(south, june)] * 18, rel=1e-12)


def test_orientation_matters_as_it_should(model: ClearSkyModel) -> None:
    day = date(2026, 3, 20)
    s, e, w, n = (Orientation.of(*LOOS, 30, az, None) for az in (180, 90, 270, 0))
    flat = Orientation.of(*LOOS, 0, 180, None)
    got = model.wh_per_kwp([s, e, w, n, flat], [day])
    assert got[(s, day)] > got[(flat, day)] > got[(n, day)]
    assert got[(e, day)] == pytest.approx(got[(w, day)], rel=0.05)  # symmetric around solar noon


def test_a_25_hour_day_is_computed_whole(model: ClearSkyModel) -> None:
    # 2026-10-25 has 25 hours in Paris: every 5-minute step of it is simulated (an hour of night more).
    o = Orientation.of(*LOOS, 30, 180, None)
    days = [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
    got = model.wh_per_kwp([o], days)
    assert got[(o, days[0])] > got[(o, days[1])] > got[(o, days[2])] > 0


def test_losses_and_temperature_coefficient_lower_the_expectation() -> None:
    o = Orientation.of(*LOOS, 30, 180, None)
    day = date(2026, 6, 21)
    base = ClearSkyModel(settings=ModelSettings(system_losses_percent=0)).wh_per_kwp([o], [day])[(o, day)]
    lossy = ClearSkyModel(settings=ModelSettings(system_losses_percent=14.08)).wh_per_kwp([o], [day])[(o, day)]
    assert lossy == pytest.approx(base * (1 - 0.1408), rel=0.01)
    hjt = Orientation.of(*LOOS, 30, 180, "HJT bifacial")
    assert gamma_pdc_for("HJT bifacial") > gamma_pdc_for("poly") and gamma_pdc_for(None) == pytest.approx(-0.0037)
    assert ClearSkyModel().wh_per_kwp([hjt], [day])[(hjt, day)] > lossy


# --------------------------------------------------------------------------- peer index


def test_peer_index_divides_by_the_median_of_the_others_of_the_commune() -> None:
    ratios = {"a": 0.8, "b": 1.0, "c": 1.0, "d": 0.9, "x": 0.5, "lonely": 0.7, "dark": None}
    groups = {"a": "62528", "b": "62528", "c": "62528", "d": "62528", "x": "59000", "lonely": "59000",
              "dark": "62528"}
    got = peer_indexes(ratios, groups, min_peers=2)
    assert got["a"].index == pytest.approx(0.8 / 1.0) and got["a"].peers == 3
    assert got["d"].index == pytest.approx(0.9 / 1.0)
    assert got["b"].peers_median == pytest.approx(0.9)  # median of a, c, d
    assert "x" not in got and "lonely" not in got, "one peer is not enough: no index invented"
    assert "dark" not in got
    assert set(peer_indexes(ratios, groups, min_peers=1)) >= {"x", "lonely"}


@given(st.lists(st.floats(0.0, 2.0), min_size=2, max_size=30), st.data())
def test_median_without_equals_the_median_of_the_others(values: list[float], data: st.DataObject) -> None:
    skip = data.draw(st.integers(0, len(values) - 1))
    ordered = sorted(values)
    others = ordered[:skip] + ordered[skip + 1:]
    assert median_without(ordered, skip) == pytest.approx(statistics.median(others), rel=1e-12, abs=1e-15)


def test_clear_sky_ratio_needs_an_expectation() -> None:
    assert clear_sky_ratio(500.0, 1000.0) == 0.5
    assert clear_sky_ratio(500.0, None) is None and clear_sky_ratio(500.0, 0.0) is None
    assert clear_sky_ratio(None, 1000.0) is None


# --------------------------------------------------------------------------- underperformance rule

D0 = date(2026, 6, 1)


def _days(spec: str) -> list[DayIndex]:
    """One letter per day: L low sunny (0.80), H healthy sunny (1.0), c cloudy low, C cloudy healthy, - no index."""
    out = []
    for i, ch in enumerate(spec):
        d = D0 + timedelta(days=i)
        if ch == "-":
            out.append(DayIndex(d, None, None))
        else:
            out.append(DayIndex(d, 0.80 if ch in "Lc" else 1.0, 0.7 if ch in "LH" else 0.2))
    return out


@pytest.mark.parametrize(("spec", "flagged", "since_offset"), [
    ("HHHHH", False, None),
    ("HHLLH", False, None),            # two low days of five: not yet
    ("HHLLL", True, 2),
    ("HLHLL", True, 1),                # three of the five most recent sunny days
    ("LLLHH", True, 0),                # still three of five
    ("LLLHHH", False, None),           # the oldest low day left the window
    ("HHLcLcccL", True, 2),            # cloudy days do not count, either way
    ("HHccccccc", False, None),
    ("LL-L", True, 0),                 # a day without index is ignored
    ("HHHLLLLLLL", True, 3),           # since = first low day of the episode, not of the window
    ("HHHLLLLLLLLL", True, 3),
])
def test_underperformance_rule(spec: str, flagged: bool, since_offset: int | None) -> None:
    verdict = underperformance(_days(spec))
    assert verdict.underperforming is flagged
    assert verdict.since == (D0 + timedelta(days=since_offset) if since_offset is not None else None)


def test_rule_looks_back_at_most_lookback_days() -> None:
    history = _days("LLL" + "c" * 14)
    assert underperformance(history).underperforming is False  # the low sunny days are 15+ days old
    assert underperformance(history, RuleSettings(lookback_days=30)).underperforming is True


# --------------------------------------------------------------------------- strings


def test_sibling_ratio_finds_a_dead_string_and_respects_string_peak_power() -> None:
    alike = sibling_ratios({"1": StringDay(5000.0), "2": StringDay(5100.0), "3": StringDay(40.0)})
    assert alike["3"][0] < 0.01 and alike["1"][0] == pytest.approx(5000 / 2570, rel=1e-9)
    assert string_failing([alike["3"][0], alike["3"][0]]) and not string_failing([alike["3"][0]])
    assert not string_failing([alike["1"][0], alike["2"][0]])
    # a string with half the panels produces half: not a fault when the inventory says so
    sized = sibling_ratios({"1": StringDay(5000.0, 5000.0), "2": StringDay(2500.0, 2500.0),
                            "3": StringDay(5000.0, 5000.0)})
    assert all(r == pytest.approx(1.0) for r, _ in sized.values())
    assert sized["2"][1] == pytest.approx(2500.0)
    assert sibling_ratios({"only": StringDay(100.0)}) == {}


# --------------------------------------------------------------------------- inventory gaps


def test_plan_names_every_gap_and_keeps_what_it_can() -> None:
    inv = FakeInventory((
        FakeSite("mairie", "62528", 50.457, 2.793, (
            FakeArray("sud", "ond-1", 9000.0, 30.0, 180.0, "mono-PERC"),
            FakeArray("est", "ond-1", 3000.0, None, None, None),
        )),
        FakeSite("ecole", "62528", None, None, (FakeArray("toit", "ond-1", 5000.0, 20.0, 180.0, None),)),
        FakeSite("eglise", "62528", 50.45, 2.79, ()),
    ))
    plan = plan_from_inventory(inv)
    mairie = plan.inverters[("mairie", "ond-1")]
    assert mairie.peak_power_w == 12000.0 and not mairie.complete and len(mairie.orientations) == 1
    assert not plan.inverters[("ecole", "ond-1")].complete
    assert plan.sites["eglise"].peak_power_w is None
    text = "\n".join(plan.problems)
    assert "sites[0] (mairie).arrays[1] (est): no tilt/azimuth" in text
    assert "sites[1] (ecole): no latitude/longitude" in text
    assert "sites[2] (eglise): no arrays" in text
    assert len(plan.problems) == 3
    assert mairie.technologies == (("mono-PERC", 9000.0), ("unknown", 3000.0))
    assert technology_tag(" HJT\nbifacial  ") == "HJT bifacial" and technology_tag("  ") == "unknown"


# --------------------------------------------------------------------------- configuration


def test_performance_section_defaults_are_the_documented_ones_and_reach_the_model() -> None:
    from pathlib import Path

    from agent.central.config import load_ingest_config, parse_ingest_config
    from agent.central.performance.daily import settings_from_config
    from agent.errors import ConfigError

    example = load_ingest_config(Path(__file__).parent.parent / "config" / "ingest.example.yaml")
    model_settings, rules = settings_from_config(example.performance)
    assert model_settings == ModelSettings() and rules == RuleSettings()
    cfg = parse_ingest_config({"influxdb": {"api": "v1", "database": "terril"},
                               "performance": {"system_losses_percent": 10, "sky_model": "perez",
                                               "index_threshold": 0.9}})
    model_settings, rules = settings_from_config(cfg.performance)
    assert model_settings.system_losses_percent == 10 and model_settings.sky_model == "perez"
    assert rules.index_threshold == 0.9 and rules.low_days == 3
    with pytest.raises(ConfigError) as exc:
        parse_ingest_config({"influxdb": {"api": "v1", "database": "terril"},
                             "performance": {"losses": 10, "sky_model": "klucher", "low_days": 6}})
    problems = exc.value.problems
    assert any(p.startswith("performance.losses: unknown key") for p in problems)
    assert any(p.startswith("performance.sky_model:") for p in problems)


# --------------------------------------------------------------------------- one site's impossible counter


def test_an_impossible_day_of_one_inverter_is_left_out_and_spoils_no_one_elses_rows(model: ClearSkyModel) -> None:
    """Issue 13 item 1 for the analytics: the ingest accepts a lifetime counter up to 1e16 Wh, so one
    site's counter can jump by 1e15 Wh in a day. The energy rollup leaves that site-day out; the
    analytics must too: no row outside the schema's bounds, no technology total or site row carrying it."""
    from agent.central.performance.daily import Energies, analyse
    from agent.central.rollup import local_days
    from agent.schema import MEASUREMENTS
    from tests.performance_town import TZ, town_inventory

    plan = plan_from_inventory(town_inventory())
    days = local_days(date(2026, 6, 1), date(2026, 6, 3), TZ)
    energies = Energies({k: {i: p.peak_power_w * 4.0 for i in range(len(days))} for k, p in plan.inverters.items()},
                        {})
    bad = ("salle", "ond-1")
    energies.inverters[bad][1] = 1e15
    told: list[str] = []
    rows = analyse(plan, energies, days, 0, model, RuleSettings(), impossible=told.append)
    for row in rows:
        spec = MEASUREMENTS[row.measurement]
        for name, value in row.fields.items():
            bounds = spec.field(name).bounds
            assert bounds is None or value in bounds, (row.measurement, row.tags, row.day.day, name, value)
    on_day = {(r.measurement, *r.tags.values()) for r in rows if r.day.day == date(2026, 6, 2)}
    assert ("performance_daily", *bad) not in on_day and ("performance_daily", "salle", "_site") not in on_day
    assert ("performance_daily", "salle", "ond-2") in on_day and ("performance_daily", "mairie", "_site") in on_day
    hjt = [r for r in rows if r.measurement == "technology_daily" and r.tags["technology"] == "HJT"]
    assert [r.fields["yield_kwh_per_kwp"] for r in hjt] == pytest.approx([4.0] * 3)
    assert len(told) == 1 and "salle" in told[0] and "ond-1" in told[0] and "2026-06-02" in told[0], told
