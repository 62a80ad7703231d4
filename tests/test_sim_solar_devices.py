"""The solar day, the simulated clock, and the inverter and meter physics (no network)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from agent.schema import STATE_FAULT, STATE_MPPT, STATE_SLEEPING
from agent.sim.devices import SimInverter, SimMeter, evt1_bits, evt1_names
from agent.sim.solar import Clouds, SimClock, Site, ac_power, sun_elevation, sun_times

LENS = Site(50.457, 2.793)
SOLSTICE = date(2024, 6, 21)


def test_sun_times_for_lens_at_midsummer() -> None:
    st = sun_times(LENS, SOLSTICE)
    assert st.sunrise is not None and st.sunset is not None
    # published: sunrise 05:40, sunset 22:02 Paris summer time (UTC+2), noon ~13:50
    assert abs((st.sunrise - datetime(2024, 6, 21, 3, 40, tzinfo=UTC)).total_seconds()) < 300
    assert abs((st.sunset - datetime(2024, 6, 21, 20, 2, tzinfo=UTC)).total_seconds()) < 300
    assert abs((st.noon - datetime(2024, 6, 21, 11, 50, tzinfo=UTC)).total_seconds()) < 180


def test_polar_night_has_no_sunrise() -> None:
    st = sun_times(Site(78.2, 15.6), date(2024, 12, 21))
    assert st.sunrise is None and st.sunset is None


def test_power_zero_at_night_peak_near_noon() -> None:
    st = sun_times(LENS, SOLSTICE)
    day = [st.noon + timedelta(minutes=m) for m in range(-600, 601, 5)]
    powers = [ac_power(10_000, LENS, t) for t in day]
    assert ac_power(10_000, LENS, datetime(2024, 6, 21, 0, 0, tzinfo=UTC)) == 0.0
    assert ac_power(10_000, LENS, st.sunset + timedelta(minutes=30)) == 0.0  # type: ignore[operator]
    peak_t = day[powers.index(max(powers))]
    assert abs((peak_t - st.noon).total_seconds()) <= 600
    assert 7000 < max(powers) <= 10_000
    winter_noon = sun_times(LENS, date(2024, 12, 21)).noon
    assert ac_power(10_000, LENS, winter_noon) < 0.5 * max(powers)
    assert sun_elevation(LENS, st.noon) == pytest.approx(90 - 50.457 + 23.44, abs=0.3)


def test_clouds_are_deterministic_and_bounded() -> None:
    t = [datetime(2024, 6, 21, 12, tzinfo=UTC) + timedelta(seconds=s) for s in range(0, 7200, 60)]
    a = [Clouds(0.8, seed=1).factor(x) for x in t]
    assert a == [Clouds(0.8, seed=1).factor(x) for x in t]
    assert a != [Clouds(0.8, seed=2).factor(x) for x in t]
    assert all(0.2 <= f <= 1.0 for f in a)
    assert Clouds(0.0, seed=1).factor(t[0]) == 1.0
    assert max(abs(x - y) for x, y in itertools.pairwise(a)) < 0.2  # smooth


def test_clock_time_factor_and_jump() -> None:
    start = datetime(2024, 6, 21, 12, tzinfo=UTC)
    clock = SimClock(start, time_factor=3600)
    time.sleep(0.05)
    assert clock.now() - start >= timedelta(seconds=170)
    clock.jump_to(datetime(2024, 6, 22, 0, tzinfo=UTC))
    assert clock.now() < datetime(2024, 6, 22, 0, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.jump_to(datetime(2024, 6, 22))
    with pytest.raises(ValueError):
        SimClock(start, time_factor=0)


def _inverter(clock: SimClock, **kw: object) -> SimInverter:
    return SimInverter("inv", clock=clock, site=LENS, peak_power_w=6000, strings=3, **kw)  # type: ignore[arg-type]


def test_inverter_day_night_fault_states() -> None:
    clock = SimClock(datetime(2024, 6, 21, 10, tzinfo=UTC))
    inv = _inverter(clock)
    v = inv.values()[103]
    assert v["St"] == STATE_MPPT and float(v["W"]) > 3000  # type: ignore[arg-type]
    assert sum(float(m["DCW"]) for m in inv.values()[160]["modules"]) == pytest.approx(float(v["DCW"]), rel=1e-6)  # type: ignore[union-attr, index, arg-type]
    clock.jump_to(datetime(2024, 6, 21, 23, tzinfo=UTC))
    v = inv.values()[103]
    assert v["St"] == STATE_SLEEPING and v["W"] == 0.0 and not inv.silent
    inv.set_night(False)
    inv.force_power(1234)
    assert inv.values()[103]["W"] == 1234
    inv.set_fault(["GROUND_FAULT", "OVER_TEMP"])
    v = inv.values()[103]
    assert v["St"] == STATE_FAULT and v["W"] == 0.0 and v["Evt1"] == (1 << 0) | (1 << 7)
    assert evt1_names(int(v["Evt1"])) == ["GROUND_FAULT", "OVER_TEMP"]  # type: ignore[arg-type]
    inv.set_fault(None)
    assert inv.values()[103]["St"] == STATE_MPPT


def test_silent_at_night_follows_the_sun() -> None:
    clock = SimClock(datetime(2024, 6, 21, 23, tzinfo=UTC))
    inv = _inverter(clock, silent_at_night=True)
    assert inv.silent
    clock.jump_to(datetime(2024, 6, 22, 11, tzinfo=UTC))
    assert not inv.silent
    inv.set_silent(True)
    assert inv.silent


def test_counter_integrates_power_over_simulated_time() -> None:
    clock = SimClock(datetime(2024, 6, 21, 12, tzinfo=UTC))
    inv = _inverter(clock, initial_wh=500.0)
    inv.set_night(False)
    inv.force_power(1000)
    start = inv.energy_wh
    clock.advance(3600)
    inv.values()
    assert inv.energy_wh - start == pytest.approx(1000, rel=1e-3)
    inv.force_power(None)
    inv.set_night(None)
    # a whole day in one jump: monotonic, and roughly the area under the bell
    readings = []
    clock.jump_to(datetime(2024, 6, 22, 0, tzinfo=UTC))
    for hour in range(0, 25):
        clock.jump_to(datetime(2024, 6, 22, 0, tzinfo=UTC) + timedelta(hours=hour))
        readings.append(inv.values()[103]["WH"])
    assert readings == sorted(readings)
    day_wh = float(readings[-1]) - float(readings[0])  # type: ignore[arg-type]
    assert 25_000 < day_wh < 6000 * 10  # a 6 kWp roof on a clear midsummer day
    inv.reset_counter(10.0)
    assert inv.values()[103]["WH"] == pytest.approx(10.0, abs=1)


def test_meter_sign_and_counters() -> None:
    clock = SimClock(datetime(2024, 6, 21, 12, tzinfo=UTC))
    inv = _inverter(clock)
    meter = SimMeter("m", clock=clock, base_load_w=500, day_load_w=0, producers=[inv])
    noon = meter.values()[203]
    assert float(noon["W"]) < 0  # exporting  # type: ignore[arg-type]
    exp0, imp0 = noon["TotWhExp"], noon["TotWhImp"]
    clock.advance(1800)
    later = meter.values()[203]
    assert later["TotWhExp"] > exp0 and later["TotWhImp"] == imp0  # type: ignore[operator]
    clock.jump_to(datetime(2024, 6, 21, 23, tzinfo=UTC))
    night = meter.values()[203]
    assert float(night["W"]) == pytest.approx(500, rel=0.06)  # type: ignore[arg-type]
    imp1 = night["TotWhImp"]
    clock.advance(3600)
    assert meter.values()[203]["TotWhImp"] == pytest.approx(float(imp1) + 500, rel=0.01)  # type: ignore[arg-type]
    meter.force_power(2000)
    assert meter.values()[203]["W"] == 2000


def test_evt1_bits_parsing() -> None:
    assert evt1_bits(None) == 0 and evt1_bits(6) == 6 and evt1_bits("DC_OVER_VOLT") == 2
