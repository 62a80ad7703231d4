"""Simulated SunSpec devices: a three-phase inverter with MPPT strings, and a grid meter.

Each device turns the solar day (``solar.py``) and its runtime controls into
SunSpec model values, and ``blocks()`` encodes them (``sunspec_image.py``).
Lifetime counters integrate power over *simulated* time in small steps, so
they are consistent with the power curve whatever the polling rate or
``time_factor``.

Runtime controls (for tests and the demo), all thread-safe:
``set_fault(bits | names | None)``, ``set_silent(bool)``, ``set_night(bool | None)``,
``force_power(watts | None)``, ``reset_counter(wh=0)``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from agent.schema import STATE_FAULT, STATE_MPPT, STATE_SLEEPING
from agent.sim.solar import Clouds, SimClock, Site, ac_power
from agent.sim.sunspec_image import encode_model, load_model_def, symbol_value

MAX_STEP_S = 60.0
"""Longest simulated step when integrating energy (accuracy vs. cost after a clock jump)."""
MAX_STEPS = 20_000
SUNSPEC_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NOMINAL_V = 230.0
NOMINAL_HZ = 50.0


def evt1_bits(spec: int | str | Iterable[str] | None) -> int:
    """Model 103 Evt1 bit field from an int, a symbol name (``GROUND_FAULT``) or several names."""
    if spec is None:
        return 0
    if isinstance(spec, int):
        return spec
    names = [spec] if isinstance(spec, str) else list(spec)
    bits = 0
    for name in names:
        bits |= 1 << symbol_value(103, "Evt1", name)
    return bits


def evt1_names(bits: int) -> list[str]:
    """Symbol names of the Evt1 bits set in ``bits``."""
    symbols = load_model_def(103).point("Evt1").symbols
    return [name for name, bit in symbols.items() if bits & (1 << bit)]


def _wobble(t: datetime, period_s: float, phase: float) -> float:
    """A slow deterministic oscillation in [-1, 1], so values are not frozen between polls."""
    return math.sin(2 * math.pi * t.timestamp() / period_s + phase)


class SimDevice(Protocol):
    """What a server needs from a simulated logical device."""

    name: str

    def blocks(self, device_address: int | None = None) -> list[list[int]]:
        """SunSpec model blocks (ID+L+body each) at the clock's current time; ``DA`` set to ``device_address``."""
        ...

    @property
    def silent(self) -> bool:
        """True when the device must not answer at all."""
        ...


@dataclass(frozen=True)
class Identity:
    manufacturer: str = "Terril"
    model: str = "SIM-INV"
    serial: str = "SIM-0001"
    version: str = "1.0.0"


class _Integrator:
    """Integrates a power function over simulated time into Wh, in bounded steps."""

    def __init__(self, start: datetime) -> None:
        self.last = start

    def step(self, now: datetime, power_at: Callable[[datetime], float]) -> float:
        """Energy (Wh) between the previous call and ``now`` (0 if the clock went backwards)."""
        span = (now - self.last).total_seconds()
        if span <= 0:
            self.last = now if span < 0 else self.last
            return 0.0
        n = min(MAX_STEPS, max(1, math.ceil(span / MAX_STEP_S)))
        dt = span / n
        energy = 0.0
        prev = power_at(self.last)
        for i in range(1, n + 1):
            cur = power_at(self.last + timedelta(seconds=dt * i))
            energy += (prev + cur) / 2 * dt / 3600
            prev = cur
        self.last = now
        return energy


class SimInverter:
    """A three-phase PV inverter (SunSpec models 1, 120, 103, 160 with one module per string).

    By day it tracks the sun (St=MPPT); at night it sleeps (St=SLEEPING, 0 W)
    and keeps answering unless ``silent_at_night``. A fault (Evt1 bits) stops
    production and sets St=FAULT until cleared.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: SimClock,
        site: Site,
        peak_power_w: float,
        strings: int = 2,
        clouds: Clouds | None = None,
        identity: Identity | None = None,
        silent_at_night: bool = False,
        initial_wh: float = 1_000_000.0,
        common_length: int | None = None,
        fault_schedule: Callable[[datetime], int] | None = None,
    ) -> None:
        if peak_power_w <= 0:
            raise ValueError(f"{name}: peak_power_w must be > 0")
        if strings < 0:
            raise ValueError(f"{name}: strings must be >= 0")
        self.name = name
        self.clock = clock
        self.site = site
        self.peak_power_w = float(peak_power_w)
        self.strings = strings
        self.clouds = clouds
        self.identity = identity or Identity()
        self.silent_at_night = silent_at_night
        self.common_length = common_length
        self._fault_schedule = fault_schedule
        self._lock = threading.RLock()
        self._fault_bits: int | None = None
        self._silent = False
        self._night: bool | None = None
        self._forced_w: float | None = None
        now = clock.now()
        self._ac = _Integrator(now)
        self.energy_wh = float(initial_wh)
        # Each string's lifetime DC energy starts as its share of the AC counter.
        self._string_weights = [1.0 + 0.06 * ((i * 7) % 5 - 2) for i in range(strings)]
        total = sum(self._string_weights) or 1.0
        self._string_weights = [w / total for w in self._string_weights]
        self.string_energy_wh = [initial_wh / 0.97 * w for w in self._string_weights]
        # Scale factors are fixed per device, as on real inverters (a counter never changes precision).
        self._w_sf = 0 if self.peak_power_w * 1.2 >= 32767 / 10 else -1
        self._a_sf = -1 if self.peak_power_w / NOMINAL_V * 1.2 >= 327.67 else -2

    # ------------------------------------------------------------------ controls
    def set_fault(self, bits: int | str | Iterable[str] | None) -> None:
        """Raise (bits / names) or clear (None) a fault: St=FAULT, Evt1 bits, no production."""
        with self._lock:
            self._accumulate()
            value = evt1_bits(bits)
            self._fault_bits = value if bits is not None and value else None

    def set_silent(self, silent: bool) -> None:
        """Stop answering at all (the request times out), or answer again."""
        with self._lock:
            self._silent = bool(silent)

    def set_night(self, night: bool | None) -> None:
        """Force night (True), force day (False), or follow the sun (None)."""
        with self._lock:
            self._accumulate()
            self._night = night

    def force_power(self, watts: float | None) -> None:
        """Produce exactly ``watts`` (when not night/fault), or follow the sun again (None)."""
        with self._lock:
            self._accumulate()
            self._forced_w = None if watts is None else float(watts)

    def reset_counter(self, wh: float = 0.0) -> None:
        """Set the lifetime counter (a replaced inverter or a firmware reset: the counter goes back)."""
        with self._lock:
            self._accumulate()
            self.energy_wh = float(wh)
            self.string_energy_wh = [wh / 0.97 * w for w in self._string_weights]

    # ------------------------------------------------------------------ state
    def fault_bits(self, t: datetime) -> int:
        bits = self._fault_bits or 0
        if self._fault_schedule is not None:
            bits |= self._fault_schedule(t)
        return bits

    def _natural_power(self, t: datetime) -> float:
        return ac_power(self.peak_power_w, self.site, t, self.clouds)

    def is_night(self, t: datetime | None = None) -> bool:
        t = t or self.clock.now()
        if self._night is not None:
            return self._night
        if self._forced_w is not None:
            return False
        return self._natural_power(t) <= 0.0

    def ac_power_at(self, t: datetime) -> float:
        """AC power produced at ``t`` given the current controls (pure in ``t``)."""
        if self.fault_bits(t) or self.is_night(t):
            return 0.0
        if self._forced_w is not None:
            return max(0.0, self._forced_w)
        return self._natural_power(t)

    def state_at(self, t: datetime) -> int:
        if self.fault_bits(t):
            return STATE_FAULT
        if self.is_night(t):
            return STATE_SLEEPING
        return STATE_MPPT

    @property
    def silent(self) -> bool:
        with self._lock:
            return self._silent or (self.silent_at_night and self.is_night())

    def _accumulate(self) -> datetime:
        now = self.clock.now()
        wh = self._ac.step(now, self.ac_power_at)
        self.energy_wh += wh
        for i, w in enumerate(self._string_weights):
            self.string_energy_wh[i] += wh / 0.97 * w
        return now

    # ------------------------------------------------------------------ registers
    def values(self) -> dict[int, dict[str, object]]:
        """Point values per model id at the clock's current time (engineering units)."""
        with self._lock:
            now = self._accumulate()
            return self._values(now)

    def _values(self, now: datetime) -> dict[int, dict[str, object]]:
        p = self.ac_power_at(now)
        load = p / self.peak_power_w
        st = self.state_at(now)
        v = [NOMINAL_V + 2.0 * _wobble(now, 97.0, k) + 3.0 * load for k in (0.0, 2.1, 4.2)]
        hz = NOMINAL_HZ + 0.02 * _wobble(now, 41.0, 0.5)
        amps = [p / 3 / vk for vk in v]
        pf = 1.0 if p > 0 else None
        dc_w = p / 0.97
        dc_v = (620.0 + 15.0 * _wobble(now, 300.0, 1.0)) if p > 0 else 0.0
        ambient = 15.0 + 3.0 * _wobble(now, 86400.0, 0.0)
        m103: dict[str, object] = {
            "A": sum(amps),
            "AphA": amps[0],
            "AphB": amps[1],
            "AphC": amps[2],
            "A_SF": self._a_sf,
            "PhVphA": v[0],
            "PhVphB": v[1],
            "PhVphC": v[2],
            "PPVphAB": (v[0] + v[1]) / 2 * math.sqrt(3),
            "PPVphBC": (v[1] + v[2]) / 2 * math.sqrt(3),
            "PPVphCA": (v[2] + v[0]) / 2 * math.sqrt(3),
            "V_SF": -1,
            "W": p,
            "W_SF": self._w_sf,
            "Hz": hz,
            "Hz_SF": -2,
            "VA": p,
            "VA_SF": self._w_sf,
            "VAr": 0.0,
            "VAr_SF": self._w_sf,
            "PF": None if pf is None else pf * 100,
            "PF_SF": -1,
            "WH": self.energy_wh,
            "WH_SF": 0,
            "DCA": dc_w / dc_v if dc_v else 0.0,
            "DCA_SF": self._a_sf,
            "DCV": dc_v,
            "DCV_SF": -1,
            "DCW": dc_w,
            "DCW_SF": self._w_sf,
            "TmpCab": ambient + 15.0 * load,
            "TmpSnk": ambient + 30.0 * load,
            "Tmp_SF": -1,
            "St": st,
            "Evt1": self.fault_bits(now),
            "Evt2": 0,
        }
        modules = []
        for i, w in enumerate(self._string_weights):
            sw = dc_w * w
            sv = (dc_v + 8.0 * _wobble(now, 120.0, i)) if sw > 0 else 0.0
            modules.append(
                {
                    "ID": i + 1,
                    "IDStr": f"PV{i + 1}",
                    "DCA": sw / sv if sv else 0.0,
                    "DCV": sv,
                    "DCW": sw,
                    "DCWH": self.string_energy_wh[i],
                    "Tms": int((now - SUNSPEC_EPOCH).total_seconds()),
                    "Tmp": round(ambient + 20.0 * load),
                    "DCSt": st,
                    "DCEvt": 0,
                }
            )
        return {
            1: {
                "Mn": self.identity.manufacturer,
                "Md": self.identity.model,
                "Vr": self.identity.version,
                "SN": self.identity.serial,
            },
            120: {"DERTyp": 4, "WRtg": self.peak_power_w, "VARtg": self.peak_power_w,
                  "ARtg": self.peak_power_w / 3 / NOMINAL_V * 1.1},
            103: m103,
            160: {"DCA_SF": -2, "DCV_SF": -1, "DCW_SF": self._w_sf, "DCWH_SF": 0, "Evt": 0, "modules": modules},
        }

    def blocks(self, device_address: int | None = None) -> list[list[int]]:
        vals = self.values()
        common = dict(vals[1])
        if device_address is not None:
            common["DA"] = device_address
        m160 = dict(vals[160])
        modules = cast("list[dict[str, Any]]", m160.pop("modules"))  # built as such by values() above
        out = [
            encode_model(1, common, length=self.common_length),
            encode_model(120, vals[120]),
            encode_model(103, vals[103]),
        ]
        if self.strings:
            out.append(encode_model(160, m160, repeats={"module": modules}))
        return out


class SimMeter:
    """A three-phase grid meter (SunSpec models 1 and 203) at the building's connection point.

    ``W`` is positive when importing: building consumption minus the production
    of the inverters it sees (``producers``). ``TotWhImp``/``TotWhExp`` integrate
    the import and export over simulated time.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: SimClock,
        base_load_w: float = 2000.0,
        day_load_w: float = 4000.0,
        producers: Sequence[SimInverter] = (),
        identity: Identity | None = None,
        initial_import_wh: float = 5_000_000.0,
        initial_export_wh: float = 1_000_000.0,
        common_length: int | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.base_load_w = float(base_load_w)
        self.day_load_w = float(day_load_w)
        self.producers = list(producers)
        self.identity = identity or Identity(model="SIM-METER", serial="SIM-M-0001")
        self.common_length = common_length
        self._lock = threading.RLock()
        self._silent = False
        self._forced_w: float | None = None
        self._imp = _Integrator(clock.now())
        self._exp = _Integrator(clock.now())
        self.import_wh = float(initial_import_wh)
        self.export_wh = float(initial_export_wh)

    # ------------------------------------------------------------------ controls
    def set_silent(self, silent: bool) -> None:
        with self._lock:
            self._silent = bool(silent)

    def force_power(self, watts: float | None) -> None:
        """Pin the net power (import > 0), or compute it again from load and production (None)."""
        with self._lock:
            self._accumulate()
            self._forced_w = None if watts is None else float(watts)

    def reset_counter(self, wh: float = 0.0) -> None:
        with self._lock:
            self._accumulate()
            self.import_wh = self.export_wh = float(wh)

    @property
    def silent(self) -> bool:
        return self._silent

    # ------------------------------------------------------------------ physics
    def consumption_at(self, t: datetime) -> float:
        """Building load: a base plus an office-hours bump (UTC 6–18), deterministic."""
        hour = (t.hour + t.minute / 60 + t.second / 3600) % 24
        bump = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
        return self.base_load_w + self.day_load_w * bump + 0.05 * self.base_load_w * _wobble(t, 53.0, 0.3)

    def net_power_at(self, t: datetime) -> float:
        if self._forced_w is not None:
            return self._forced_w
        return self.consumption_at(t) - sum(inv.ac_power_at(t) for inv in self.producers)

    def _accumulate(self) -> datetime:
        now = self.clock.now()
        self.import_wh += self._imp.step(now, lambda t: max(0.0, self.net_power_at(t)))
        self.export_wh += self._exp.step(now, lambda t: max(0.0, -self.net_power_at(t)))
        return now

    def values(self) -> dict[int, dict[str, object]]:
        with self._lock:
            now = self._accumulate()
            w = self.net_power_at(now)
            v = [NOMINAL_V + 1.5 * _wobble(now, 89.0, k) for k in (0.0, 2.1, 4.2)]
            amps = [w / 3 / vk for vk in v]
            m203: dict[str, object] = {
                "A": sum(amps),
                "AphA": amps[0],
                "AphB": amps[1],
                "AphC": amps[2],
                "A_SF": -2,
                "PhV": sum(v) / 3,
                "PhVphA": v[0],
                "PhVphB": v[1],
                "PhVphC": v[2],
                "PPV": sum(v) / 3 * math.sqrt(3),
                "V_SF": -1,
                "Hz": NOMINAL_HZ + 0.02 * _wobble(now, 41.0, 0.5),
                "Hz_SF": -2,
                "W": w,
                "WphA": w / 3,
                "WphB": w / 3,
                "WphC": w / 3,
                "W_SF": 0,
                "PF": 98.0 if w >= 0 else -98.0,
                "PF_SF": -1,
                "TotWhExp": self.export_wh,
                "TotWhImp": self.import_wh,
                "TotWh_SF": 0,
                "Evt": 0,
            }
            return {
                1: {
                    "Mn": self.identity.manufacturer,
                    "Md": self.identity.model,
                    "Vr": self.identity.version,
                    "SN": self.identity.serial,
                },
                203: m203,
            }

    def blocks(self, device_address: int | None = None) -> list[list[int]]:
        vals = self.values()
        common = dict(vals[1])
        if device_address is not None:
            common["DA"] = device_address
        return [encode_model(1, common, length=self.common_length), encode_model(203, vals[203])]
