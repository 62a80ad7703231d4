"""Poll one device: discover it once, execute its read plan, decode, guard, diff events.

A :class:`DevicePoller` owns everything that is *per device* and has memory
between polls: the device's link status (``ok``, ``sleeping``, ``unreachable``,
``fault``), the back-off of a device that does not answer, the last value of
each lifetime counter (a counter that goes backwards or reads 0 is dropped, not
published: Grafana would show it as megawatt-hours of phantom production), and
the set of active events (a transition, not a level, is published).

Logs are written on state changes only: one line when an inverter goes to
sleep at dusk, one when it wakes up at dawn, nothing for the polls in between;
a status that flips at every poll is summarised (:mod:`agent.flapping`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.devices.base import DecodedPoll, DeviceDriver, DeviceIdentity
from agent.edge.counters import CounterGuard
from agent.errors import DecodeError, DeviceBusy, IllegalAddress, TerrilError, TransportError, WrongDevice
from agent.flapping import FlapDamper
from agent.modbus.plan import RegisterBlock
from agent.modbus.types import RegisterReader
from agent.schema import STATE_FAULT, STATE_OFF, STATE_SLEEPING, Event, LinkStatus, Reading
from agent.sun import is_daylight

log = logging.getLogger(__name__)

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
        self._flaps = FlapDamper(driver.name, log, clock)
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
        self._flaps.tick()
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
                sent = self.reader.last_sent
                if sent is not None and sent >= started:
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
        night = not is_daylight(datetime.fromtimestamp(now, UTC), self.site.latitude, self.site.longitude)
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
        if not self._flaps.allow(status, reason):
            return
        level = logging.WARNING if status in ("unreachable", "fault", "wrong_device") else logging.INFO
        if previous is None and status == "ok":
            log.info("%s: polling", self.name)
        elif status == "sleeping":
            log.info("%s: sleeping (%s)", self.name, reason)
        elif previous == "sleeping" and status == "ok":
            log.info("%s: woke up", self.name)
        else:
            log.log(level, "%s: %s -> %s (%s)", self.name, previous or "start", status, reason)
