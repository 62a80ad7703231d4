"""Lifetime counters at the edge: a value that goes backwards, reads 0 or jumps is not energy.

A lifetime counter (``ac_energy_wh``, ``energy_import_wh``…) only ever grows.
Published as is, a glitch would become megawatt-hours of phantom production in
Grafana, or a day of negative energy: the :class:`CounterGuard` of each device
drops such values before they reach the spool, and logs once per episode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.schema import Reading

log = logging.getLogger(__name__)

LIFETIME_COUNTERS: frozenset[str] = frozenset({
    "ac_energy_wh", "dc_energy_wh", "energy_import_wh", "energy_export_wh", "energy_charge_wh", "energy_discharge_wh",
})
"""Fields that only ever grow: a decrease is a glitch (or a replaced device), never energy."""

_COUNTER_ORDER: tuple[str, ...] = tuple(sorted(LIFETIME_COUNTERS))
"""The counters in a fixed order: a reading is checked for these few names, not each of its fields."""

BOUNDED_KINDS: frozenset[str] = frozenset({"inverter", "mppt"})
"""Readings whose counters the device's rated power bounds (a hybrid's meter and battery readings are not)."""

COUNTER_RESET_CONFIRMATIONS = 30
"""Consecutive lower-but-growing readings after which a counter reset (device replaced) is accepted."""

COUNTER_JUMP_CONFIRMATIONS = 3
"""Consecutive readings, each plausible from the one before, that confirm an implausible increase."""

COUNTER_JUMP_FACTOR = 1.5
"""An increase above rated power x elapsed time x this factor (+ margin) is implausible."""

COUNTER_JUMP_MARGIN_WH = 2000.0
"""Allowance on top, for counters with a coarse resolution (some step by whole kWh)."""


@dataclass
class _CounterState:
    last: float
    last_ts: int = 0
    """Timestamp (ms) of ``last``: the elapsed time bounds a plausible increase."""
    pending: list[float] = field(default_factory=list)
    warned: bool = False
    jumps: list[tuple[float, int]] = field(default_factory=list)
    """Implausibly high values (value, ts) waiting for confirmation."""
    jump_warned: bool = False


class CounterGuard:
    """Drops lifetime-counter values that go backwards, read 0 or jump up implausibly; logs once per episode.

    A real reset (inverter replaced, counter cleared by the installer) is accepted
    after ``COUNTER_RESET_CONFIRMATIONS`` consecutive readings that are lower than
    the old value but grow among themselves: the rollups handle the reset itself.

    An *increase* larger than the device could have produced (``max_power_w()`` x
    elapsed time x 1.5, plus a margin) is a glitch until confirmed: published, it
    would become the baseline (phantom MWh in Grafana) and the correct values after
    it would then be dropped as going backwards. It is accepted after
    ``COUNTER_JUMP_CONFIRMATIONS`` readings that each grow plausibly from the one
    before. When nothing bounds the power (``max_power_w()`` is None: a meter, an
    inverter with no rating and no site peak), every increase is accepted.
    """

    def __init__(self, device: str, max_power_w: Callable[[], float | None] = lambda: None) -> None:
        self.device = device
        self.max_power_w = max_power_w
        self._state: dict[tuple[str, str | None], _CounterState] = {}
        self._bounded = True

    def _plausible(self, old: float, old_ts: int, value: float, ts: int) -> bool:
        if not self._bounded:
            return True
        power = self.max_power_w()
        if not power:
            return True
        hours = max(0, ts - old_ts) / 3_600_000
        return value - old <= power * hours * COUNTER_JUMP_FACTOR + COUNTER_JUMP_MARGIN_WH

    def filter(self, reading: Reading) -> None:
        fields = reading.fields
        # Rated power bounds what an inverter produces, not what its site imports or its battery stores.
        self._bounded = reading.kind in BOUNDED_KINDS
        for name in _COUNTER_ORDER:
            if name not in fields:
                continue
            value = float(fields[name])
            key = (name, reading.string)
            st = self._state.get(key)
            if (st is not None and value > 0 and value >= st.last and not st.warned and not st.jump_warned
                    and not st.pending and not st.jumps and self._plausible(st.last, st.last_ts, value, reading.ts)):
                st.last, st.last_ts = value, reading.ts  # the usual case: a counter growing plausibly
                continue
            label = f"{self.device}{'/' + reading.string if reading.string else ''} {name}"
            if value <= 0:
                del reading.fields[name]
                st = self._state.get(key)
                if st is None or not st.warned:
                    log.warning("%s reads %s: not a lifetime value, dropped until it recovers", label, value)
                    self._state.setdefault(key, _CounterState(last=0.0)).warned = True
                continue
            st = self._state.get(key)
            if st is None:
                self._state[key] = _CounterState(last=value, last_ts=reading.ts)
                continue
            if value >= st.last:
                if not self._plausible(st.last, st.last_ts, value, reading.ts) and not self._confirms_jump(
                    st, value, reading.ts
                ):
                    del reading.fields[name]
                    if not st.jump_warned:
                        log.warning("%s jumped implausibly (%.0f -> %.0f in %.0f s): dropped until confirmed",
                                    label, st.last, value, max(0, reading.ts - st.last_ts) / 1000)
                        st.jump_warned = True
                    continue
                if st.warned or st.jump_warned:
                    log.info("%s is consistent again (%.0f)", label, value)
                st.last, st.last_ts, st.pending, st.warned = value, reading.ts, [], False
                st.jumps, st.jump_warned = [], False
                continue
            # backwards
            if st.pending and value < st.pending[-1]:
                st.pending = []
            st.pending.append(value)
            if len(st.pending) >= COUNTER_RESET_CONFIRMATIONS:
                log.warning("%s was reset: %.0f -> %.0f, accepting the new counter", label, st.last, value)
                st.last, st.last_ts, st.pending, st.warned = value, reading.ts, [], False
                continue
            del reading.fields[name]
            if not st.warned:
                log.warning("%s went backwards (%.0f -> %.0f): dropped", label, st.last, value)
                st.warned = True


    def _confirms_jump(self, st: _CounterState, value: float, ts: int) -> bool:
        """Record an implausible value; True once enough readings agree with it (then it is the new baseline)."""
        if st.jumps and value >= st.jumps[-1][0] and self._plausible(st.jumps[-1][0], st.jumps[-1][1], value, ts):
            st.jumps.append((value, ts))
        else:
            st.jumps = [(value, ts)]
        if len(st.jumps) < COUNTER_JUMP_CONFIRMATIONS:
            return False
        log.warning("%s: the jump %.0f -> %.0f was confirmed by %d readings, accepting it",
                    self.device, st.last, value, len(st.jumps))
        return True
