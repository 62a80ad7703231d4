"""The device poller against the simulator: request counts, sleep at night, events, counter guard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from agent.devices.sunspec import SunSpecDriver
from agent.edge.counters import COUNTER_JUMP_CONFIRMATIONS, COUNTER_RESET_CONFIRMATIONS, CounterGuard
from agent.edge.poller import DevicePoller, Site
from agent.modbus.backoff import Backoff
from agent.modbus.pool import LinkPool
from agent.schema import Reading
from tests.fixtures.modbus_servers import DAY

LENS = Site(50.457, 2.793)


def _poller(sim: Any, unit: int, kind: str = "inverter", clock: Callable[[], float] | None = None,
            timeout: float = 0.5) -> tuple[DevicePoller, LinkPool]:
    pool = LinkPool(backoff=lambda: Backoff(initial=0.05, maximum=0.2))
    link = pool.tcp(sim.host, sim.port, timeout=timeout)
    driver = SunSpecDriver(f"dev-{unit}", kind)  # type: ignore[arg-type]
    clock = clock or (lambda: sim.clock.now().timestamp())
    return DevicePoller(driver, pool.unit(link, unit), LENS, 10, clock=clock), pool


def test_full_inverter_is_polled_in_one_request_counted_server_side(sim_factory: Any) -> None:
    sim = sim_factory()
    poller, pool = _poller(sim, 1)

    async def go() -> list[Any]:
        first = await poller.poll()  # discovery + first poll
        sim.clear_records()
        results = [await poller.poll() for _ in range(3)]
        await pool.close()
        return [first, *results]

    results = asyncio.run(go())
    assert all(r is not None for r in results)
    assert sim.requests(1) == 3, "models 1+103+160 (2 strings) must cost one request per poll"
    assert set(sim.function_codes(1)) == {3}
    inverter = next(r for r in results[-1].readings if r.kind == "inverter")
    strings = sorted(r.string for r in results[-1].readings if r.kind == "mppt")
    assert strings == ["1", "2"]
    assert inverter.fields["ac_power_w"] > 0
    assert inverter.fields["state"] == 4


def test_a_night_of_sleep_logs_two_lines_and_no_error(sim_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_factory([{"unit": 1, "kind": "inverter", "peak_power_w": 5000, "strings": 2, "silent_at_night": True}],
                      start="2024-06-21T20:00:00+02:00")
    poller, pool = _poller(sim, 1, timeout=0.3)
    caplog.set_level(logging.INFO)

    async def go() -> list[str | None]:
        statuses = []
        # evening: producing; then the night (silent), then dawn
        for when in ["2024-06-21T20:00:00+02:00", "2024-06-21T23:00:00+02:00", "2024-06-21T23:10:00+02:00",
                     "2024-06-22T01:00:00+02:00", "2024-06-22T03:00:00+02:00", "2024-06-22T09:00:00+02:00",
                     "2024-06-22T09:10:00+02:00"]:
            sim.clock.jump_to(datetime.fromisoformat(when))
            await poller.poll()
            statuses.append(poller.stats.status)
        await pool.close()
        return statuses

    statuses = asyncio.run(go())
    assert statuses[0] == "ok"
    assert set(statuses[1:5]) == {"sleeping"}
    assert statuses[-1] == "ok"
    poller_lines = [r for r in caplog.records if r.name == "agent.edge.poller"]
    assert sum(": sleeping" in r.getMessage() for r in poller_lines) == 1, [r.getMessage() for r in poller_lines]
    assert sum("woke up" in r.getMessage() for r in poller_lines) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert poller.stats.polls_failed == 0


def test_fault_bits_become_one_event_per_transition(sim_factory: Any) -> None:
    sim = sim_factory()
    poller, pool = _poller(sim, 1)

    async def go() -> list[list[tuple[str, bool]]]:
        seen = []
        for step in ["ok", "fault", "fault", "clear"]:
            if step == "fault":
                sim.device(1).set_fault("GROUND_FAULT")
            elif step == "clear":
                sim.device(1).set_fault(None)
            result = await poller.poll()
            assert result is not None
            seen.append(sorted((e.code, e.active) for e in result.events))
        await pool.close()
        return seen

    seen = asyncio.run(go())
    assert seen[0] == []
    assert ("GROUND_FAULT", True) in seen[1]
    assert seen[2] == [], "a fault that lasts is not re-published every poll"
    assert ("GROUND_FAULT", False) in seen[3]


def test_unreachable_by_day_counts_errors_and_backs_off(sim_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    sim = sim_factory(start=DAY)
    now = [sim.clock.now().timestamp()]
    poller, pool = _poller(sim, 1, clock=lambda: now[0], timeout=0.2)
    caplog.set_level(logging.INFO)

    async def go() -> int:
        assert await poller.poll() is not None
        sim.device(1).set_silent(True)
        attempts = 0
        for _ in range(12):
            now[0] += 10
            before = poller.stats.polls_failed
            await poller.poll()
            attempts += poller.stats.polls_failed - before
        await pool.close()
        return attempts

    attempts = asyncio.run(go())
    assert poller.stats.status == "unreachable"
    assert 2 <= attempts < 12, "a silent device is retried with back-off, not every poll"
    warnings = [r for r in caplog.records if r.name == "agent.edge.poller" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


def _reading(**fields: float) -> Reading:
    return Reading("ond", "inverter", 0, dict(fields))


def test_counter_guard_drops_zero_and_backwards_and_accepts_a_confirmed_reset(caplog: pytest.LogCaptureFixture) -> None:
    guard = CounterGuard("ond")
    caplog.set_level(logging.INFO)
    values = [1000.0, 1010.0, 0.0, 1020.0, 900.0, 1030.0]
    kept = []
    for v in values:
        r = _reading(ac_energy_wh=v, ac_power_w=5.0)
        guard.filter(r)
        kept.append(r.fields.get("ac_energy_wh"))
        assert r.fields["ac_power_w"] == 5.0
    assert kept == [1000.0, 1010.0, None, 1020.0, None, 1030.0]
    # a real reset (device replaced): lower but growing readings are accepted after confirmation
    out = []
    for i in range(COUNTER_RESET_CONFIRMATIONS + 2):
        r = _reading(ac_energy_wh=10.0 + i)
        guard.filter(r)
        out.append(r.fields.get("ac_energy_wh"))
    assert out[: COUNTER_RESET_CONFIRMATIONS - 1] == [None] * (COUNTER_RESET_CONFIRMATIONS - 1)
    assert out[-1] == 10.0 + COUNTER_RESET_CONFIRMATIONS + 1
    backwards_logs = [r for r in caplog.records if "went backwards" in r.getMessage()]
    assert len(backwards_logs) == 2  # once per episode, not once per reading


def _counter_series(guard: CounterGuard, values: list[float], step_s: float = 10.0) -> list[float | None]:
    out = []
    for i, v in enumerate(values):
        r = Reading("ond", "inverter", int(1_700_000_000_000 + i * step_s * 1000), {"ac_energy_wh": v})
        guard.filter(r)
        out.append(r.fields.get("ac_energy_wh"))
    return out


def test_an_upward_glitch_is_dropped_and_does_not_become_the_baseline(caplog: pytest.LogCaptureFixture) -> None:
    """A 5 kW inverter cannot add 1 MWh in 10 s: the glitch is dropped, the correct values that follow kept."""
    guard = CounterGuard("ond", max_power_w=lambda: 5000.0)
    caplog.set_level(logging.INFO)
    values = [1_000_000.0, 1_000_010.0, 2_000_000.0, 1_000_030.0, 1_000_040.0, 1_000_050.0]
    assert _counter_series(guard, values) == [1_000_000.0, 1_000_010.0, None, 1_000_030.0, 1_000_040.0, 1_000_050.0]
    jumps = [r for r in caplog.records if "jumped implausibly" in r.getMessage()]
    assert len(jumps) == 1


def test_a_confirmed_jump_is_accepted_and_small_steps_are_not_suspect() -> None:
    guard = CounterGuard("ond", max_power_w=lambda: 5000.0)
    # a coarse counter stepping by 1 kWh, and normal production: never suspect
    assert _counter_series(guard, [1000.0, 1000.0, 2000.0, 2010.0]) == [1000.0, 1000.0, 2000.0, 2010.0]
    # a real jump (counter set by the installer): accepted once the following readings agree with it
    values = [50_000.0 + 10 * i for i in range(COUNTER_JUMP_CONFIRMATIONS + 1)]
    out = _counter_series(guard, [2020.0, *values])
    assert out[1:COUNTER_JUMP_CONFIRMATIONS] == [None] * (COUNTER_JUMP_CONFIRMATIONS - 1)
    assert out[COUNTER_JUMP_CONFIRMATIONS:] == values[COUNTER_JUMP_CONFIRMATIONS - 1:]


def test_a_long_gap_allows_a_large_increase_and_no_bound_means_no_check() -> None:
    guard = CounterGuard("ond", max_power_w=lambda: 5000.0)
    # 6 hours without polling (night, outage): 5 kW x 6 h = 30 kWh is plausible
    assert _counter_series(guard, [10_000.0, 40_000.0], step_s=6 * 3600) == [10_000.0, 40_000.0]
    unbounded = CounterGuard("compteur")  # a meter: nothing bounds its import
    assert _counter_series(unbounded, [1000.0, 9_000_000.0]) == [1000.0, 9_000_000.0]


def test_a_hybrids_meter_and_battery_counters_are_not_bounded_by_its_rated_power() -> None:
    """A 5 kW hybrid's house may import 12 kW and its battery charge from the grid: its rated power
    bounds what the inverter produces, not the meter and battery readings it also publishes."""
    guard = CounterGuard("onduleur-hybride", max_power_w=lambda: 5000.0)
    t0 = 1_700_000_000_000
    kept = []
    for kind, name in (("meter", "energy_import_wh"), ("battery", "energy_charge_wh"), ("inverter", "ac_energy_wh")):
        for i, value in enumerate((10_000.0, 10_000.0 + 12_000 * 6 * 1.6)):  # 12 kW for 6 h, +60 % margin
            reading = Reading("onduleur-hybride", kind, t0 + i * 6 * 3_600_000, {name: value})  # type: ignore[arg-type]
            guard.filter(reading)
            kept.append(reading.fields.get(name))
    assert kept == [10_000.0, 125_200.0, 10_000.0, 125_200.0, 10_000.0, None]  # only the inverter's is implausible
