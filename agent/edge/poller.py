"""Poll one device: discover it once, execute its read plan, decode, guard, diff events.

A :class:`DevicePoller` owns everything that is *per device* and has memory
between polls: the device's link status (``ok``, ``sleeping``, ``unreachable``,
``fault``), the back-off of a device that does not answer, the last value of
each lifetime counter (a counter that goes backwards or reads 0 is dropped, not
published: Grafana would show it as megawatt-hours of phantom production), and
the set of active events (a transition, not a level, is published).

Logs are written on state changes only: one line when an inverter goes to
sleep at dusk, one when it wakes up at dawn, nothing for the polls in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from agent.devices.base import DecodedPoll, DeviceDriver, DeviceIdentity
from agent.errors import DecodeError, DeviceBusy, IllegalAddress, TerrilError, TransportError, WrongDevice
from agent.modbus.plan import RegisterBlock
from agent.modbus.types import RegisterReader
from agent.schema import STATE_FAULT, STATE_OFF, STATE_SLEEPING, Event, LinkStatus, Reading
from agent.sun import is_daylight

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

MAX_BACKOFF_S = 300.0
"""Longest wait between two attempts at a device that does not answer (5 min)."""

SLEEP_POLL_S = 60.0
"""Poll period of an inverter that answers 'sleeping': it will not produce before it wakes."""

SLEEP_STATES = frozenset({STATE_OFF, STATE_SLEEPING})


@dataclass(frozen=True)
class Site:
    """Where the device is: decides whether silence means night or trouble."""

    latitude: float
    longitude: float
    peak_power_w: float | None = None
    """The site's installed peak power: an upper bound for any inverter's energy counter growth."""


@dataclass
class PollResult:
    """What one poll produced for the spool (both lists may be empty)."""

    readings: list[Reading]
    events: list[Event]


@dataclass
class DeviceStats:
    """Per-device counters published in the agent's health."""

    status: LinkStatus | None = None
    polls_ok: int = 0
    polls_failed: int = 0
    requests_last_poll: int = 0
    last_poll_ts: int | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status or "unknown",
            "poll_ok": self.polls_ok,
            "poll_errors": self.polls_failed,
            "requests_per_poll": self.requests_last_poll,
            "last_poll_ts": self.last_poll_ts,
            **({"last_error": self.last_error} if self.last_error else {}),
        }


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


class DevicePoller:
    """Everything the agent knows about one configured device between polls."""

    def __init__(
        self,
        driver: DeviceDriver,
        reader: RegisterReader,
        site: Site,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        on_identity: Callable[[str, DeviceIdentity], None] | None = None,
    ) -> None:
        self.driver = driver
        self.reader = reader
        self.site = site
        self.interval_s = interval_s
        self.clock = clock
        self.on_identity = on_identity
        self.identity: DeviceIdentity | None = None
        self.stats = DeviceStats()
        self._counters = CounterGuard(driver.name, max_power_w=self._max_power_w)
        self._active_events: dict[str, str] = {}
        self._failures = 0
        self._next_attempt = 0.0
        self.last_started = clock()
        """Monotonic-ish wall time the last poll started (the watchdog checks it)."""

    @property
    def name(self) -> str:
        return self.driver.name

    def _max_power_w(self) -> float | None:
        """What bounds this device's energy counters: its rated power, else the site's peak (inverters only)."""
        if self.driver.kind != "inverter":
            return None
        rated = self.identity.rated_power_w if self.identity is not None else None
        return rated or self.site.peak_power_w

    async def poll(self) -> PollResult | None:
        """Poll once. None when the device is in back-off (skipped, not counted)."""
        now = self.clock()
        started = time.monotonic()
        self.last_started = now
        if now < self._next_attempt:
            return None
        ts_ms = int(now * 1000)
        requests_before = self.reader.requests
        try:
            if self.identity is None:
                await self._discover()
            ts_ms, decoded = await self._read_and_decode(now, started)
        except (TransportError, DeviceBusy) as exc:
            self._on_no_answer(now, exc)
            return None
        except WrongDevice as exc:
            # Not the device its driver describes: never poll it with that map. Look again
            # every MAX_BACKOFF_S (the device may be replaced), one log line per change.
            self._on_failure(now, exc, "wrong_device")
            self._next_attempt = now + MAX_BACKOFF_S - 0.5
            return None
        except (IllegalAddress, DecodeError) as exc:
            # The layout changed under us (firmware update, another device at that address): rediscover.
            self.identity = None
            self._on_failure(now, exc, "unreachable")
            return None
        except TerrilError as exc:
            self._on_failure(now, exc, "unreachable")
            return None
        finally:
            self.stats.requests_last_poll = self.reader.requests - requests_before
        self._failures = 0
        self.stats.polls_ok += 1
        self.stats.last_poll_ts = ts_ms
        self.stats.last_error = None
        if decoded.state in SLEEP_STATES:
            self._set_status("sleeping", f"state {decoded.state}")
            self._next_attempt = now + max(self.interval_s, SLEEP_POLL_S) - 0.5
        elif decoded.state == STATE_FAULT:
            self._set_status("fault", "device reports FAULT")
        else:
            self._set_status("ok", "answering")
        for reading in decoded.readings:
            self._counters.filter(reading)
        readings = [r for r in decoded.readings if r.fields]
        return PollResult(readings, self._diff_events(decoded, ts_ms))

    async def _discover(self) -> None:
        identity = await self.driver.discover(self.reader)
        self.identity = identity
        log.info(
            "%s: found %s %s (serial %s, models %s)",
            self.name,
            identity.manufacturer or "?",
            identity.model or "?",
            identity.serial or "?",
            ",".join(str(m) for m in identity.models) or "-",
        )
        if self.on_identity is not None:
            self.on_identity(self.name, identity)

    async def _read_and_decode(self, now: float, started: float) -> tuple[int, DecodedPoll]:
        """Execute the plan; the poll's timestamp is when its first request went on the wire.

        The poll starts on the scheduler's tick, but on a shared link (an RS-485 bus at
        9600 baud) a device queued behind others may wait seconds for its turn: stamping
        it at the tick would date its values seconds before they were measured. The
        wait is measured on the monotonic clock and added to the poll's start time
        (``self.clock``), so a test clock still drives the timestamps.
        """
        block = RegisterBlock()
        ts_ms = int(now * 1000)
        for i, request in enumerate(self.driver.plan()):
            block.store(request.table, request.address,
                        await self.reader.read(request.table, request.address, request.count))
            if i == 0:
                sent = getattr(self.reader, "last_sent", None)
                if isinstance(sent, float) and sent >= started:
                    ts_ms = int((now + (sent - started)) * 1000)
        return ts_ms, self.driver.decode(block, ts_ms)

    def _diff_events(self, decoded: DecodedPoll, ts_ms: int) -> list[Event]:
        events: list[Event] = []
        for code, text in decoded.active_events.items():
            if code not in self._active_events:
                events.append(Event(self.name, ts_ms, code, True, text))
                log.warning("%s: event %s started: %s", self.name, code, text)
        for code, text in self._active_events.items():
            if code not in decoded.active_events:
                events.append(Event(self.name, ts_ms, code, False, text))
                log.info("%s: event %s ended", self.name, code)
        self._active_events = dict(decoded.active_events)
        return events

    def _on_no_answer(self, now: float, exc: TerrilError) -> None:
        """Silence at night is sleep; silence by day is a problem. Either way, back off."""
        night = not is_daylight(datetime.fromtimestamp(now, timezone.utc), self.site.latitude, self.site.longitude)
        status: LinkStatus = "sleeping" if night and self.driver.kind == "inverter" else "unreachable"
        self._on_failure(now, exc, status)

    def _on_failure(self, now: float, exc: TerrilError, status: LinkStatus) -> None:
        self._failures += 1
        if status in ("unreachable", "wrong_device"):
            self.stats.polls_failed += 1
        self.stats.last_error = str(exc)
        self._set_status(status, str(exc))
        if self._failures >= 2:
            delay = min(MAX_BACKOFF_S, self.interval_s * 2 ** (self._failures - 1))
            self._next_attempt = now + delay - 0.5

    def _set_status(self, status: LinkStatus, reason: str) -> None:
        previous = self.stats.status
        if status == previous:
            return
        self.stats.status = status
        level = logging.WARNING if status in ("unreachable", "fault", "wrong_device") else logging.INFO
        if previous is None and status == "ok":
            log.info("%s: polling", self.name)
        elif status == "sleeping":
            log.info("%s: sleeping (%s)", self.name, reason)
        elif previous == "sleeping" and status == "ok":
            log.info("%s: woke up", self.name)
        else:
            log.log(level, "%s: %s -> %s (%s)", self.name, previous or "start", status, reason)
