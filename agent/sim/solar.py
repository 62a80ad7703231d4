"""A deterministic solar day: sun position, clear-sky power, seeded clouds, and a simulated clock.

The simulator needs plants that behave like roofs in the Hauts-de-France: zero
at night, a bell around solar noon, lower in winter, sometimes a cloud. Every
value is a pure function of (site, time, seed) so a test or a demo can replay
the same day. The sun position uses the NOAA "general solar position"
approximation (accurate to a minute or two, plenty for a simulator).

``SimClock`` lets the demo run a day in minutes (``time_factor``) and lets tests
jump to noon or midnight on demand.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from agent.sun import solar_elevation_deg, solar_terms


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float


def sun_elevation(site: Site, t: datetime) -> float:
    """Solar elevation above the horizon in degrees (negative at night)."""
    return solar_elevation_deg(t, site.latitude, site.longitude)


@dataclass(frozen=True)
class SunTimes:
    """Sunrise, solar noon and sunset of one day, UTC. ``sunrise``/``sunset`` are None in polar day/night."""

    sunrise: datetime | None
    noon: datetime
    sunset: datetime | None


def sun_times(site: Site, day: date) -> SunTimes:
    """Sunrise, solar noon and sunset (UTC) on ``day`` at ``site`` (NOAA, refraction-corrected)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    eqtime, decl = solar_terms(midnight + timedelta(hours=12))
    noon = midnight + timedelta(minutes=720 - 4 * site.longitude - eqtime)
    lat = math.radians(site.latitude)
    cos_ha = math.cos(math.radians(90.833)) / (math.cos(lat) * math.cos(decl)) - math.tan(lat) * math.tan(decl)
    if not -1.0 <= cos_ha <= 1.0:
        return SunTimes(None, noon, None)
    ha = math.degrees(math.acos(cos_ha))
    return SunTimes(noon - timedelta(minutes=4 * ha), noon, noon + timedelta(minutes=4 * ha))


def clear_sky_fraction(site: Site, t: datetime) -> float:
    """Share of peak power a well-oriented roof makes at ``t`` under a clear sky (0 at night).

    A smooth function of the sun's elevation: sin(elevation)^1.2, with a
    system derate of 0.85, which gives the familiar bell that is flatter and
    lower in winter.
    """
    elevation = sun_elevation(site, t)
    if elevation <= 0:
        return 0.0
    return float(0.85 * math.sin(math.radians(elevation)) ** 1.2)


def _unit_noise(seed: int, knot: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{knot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Clouds:
    """Deterministic passing clouds: a smooth random attenuation, the same for the same seed.

    ``cloudiness`` 0 is a clear sky; 1 can dim the sun by up to 80 %. Knots every
    ``period_s`` seconds are hashed from the seed and interpolated with a
    cosine, so power moves smoothly, as under real cumulus.
    """

    cloudiness: float = 0.0
    seed: int = 0
    period_s: float = 600.0

    def factor(self, t: datetime) -> float:
        if self.cloudiness <= 0:
            return 1.0
        x = t.timestamp() / self.period_s
        knot = math.floor(x)
        a, b = _unit_noise(self.seed, knot), _unit_noise(self.seed, knot + 1)
        w = (1 - math.cos(math.pi * (x - knot))) / 2
        noise = a * (1 - w) + b * w
        return 1.0 - 0.8 * min(1.0, self.cloudiness) * noise


def ac_power(peak_power_w: float, site: Site, t: datetime, clouds: Clouds | None = None) -> float:
    """AC power of a plant of ``peak_power_w`` at ``t``: zero at night, a bell peaking near solar noon."""
    fraction = clear_sky_fraction(site, t)
    if fraction == 0.0:
        return 0.0
    return peak_power_w * fraction * (clouds.factor(t) if clouds else 1.0)


class SimClock:
    """Simulated UTC time: starts at ``start`` and runs ``time_factor`` times faster than real time.

    ``jump_to`` and ``advance`` move it, so tests get "night" or "noon" on
    demand and counters integrate over simulated time. Thread-safe: the
    simulator's loop reads it while a test moves it.
    """

    def __init__(self, start: datetime | None = None, time_factor: float = 1.0) -> None:
        if time_factor <= 0:
            raise ValueError(f"time_factor must be > 0, got {time_factor!r}")
        self._lock = threading.Lock()
        self._time_factor = float(time_factor)
        self._origin_sim = (start or datetime.now(UTC)).astimezone(UTC)
        self._origin_real = time.monotonic()

    @property
    def time_factor(self) -> float:
        return self._time_factor

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._origin_real) * self._time_factor
            return self._origin_sim + timedelta(seconds=elapsed)

    def jump_to(self, t: datetime) -> None:
        """Continue from ``t`` (aware datetime). Counters integrate across the jump only if it goes forward."""
        if t.tzinfo is None:
            raise ValueError("SimClock.jump_to needs an aware datetime")
        with self._lock:
            self._origin_sim = t.astimezone(UTC)
            self._origin_real = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.jump_to(self.now() + timedelta(seconds=seconds))
