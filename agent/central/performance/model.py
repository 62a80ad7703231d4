"""Expected clear-sky energy of a PV array per local day, with pvlib.

Why a clear-sky model and not an irradiance sensor: the town has none on most
roofs. A clear-sky expectation turns "kWh today" into a ratio that takes the
array's orientation, tilt, latitude and the season into account; the weather,
which neighbours share, then cancels out in the peer index
(``agent.central.performance.analytics``).

The chain, one pvlib function per step (all PVWatts-style, documented defaults):

1. clear-sky irradiance at the site: ``Location.get_clearsky`` (Ineichen, with
   pvlib's monthly Linke turbidity climatology at that latitude/longitude);
2. transposition to the plane of the array: ``irradiance.get_total_irradiance``
   with the Hay-Davies sky model (ground albedo 0.25);
3. cell temperature: ``temperature.sapm_cell`` for an open-rack glass/polymer
   module, at a fixed air temperature and wind speed (:class:`ModelSettings`);
4. DC power: ``pvsystem.pvwatts_dc`` with the module temperature coefficient of
   the array's ``technology`` (:data:`GAMMA_PDC_BY_TECHNOLOGY`);
5. system losses (soiling, wiring, mismatch…): ``pvsystem.pvwatts_losses``
   defaults (14.08 %), or the percentage configured;
6. AC power: ``inverter.pvwatts`` (nominal efficiency 96 %), the inverter sized
   to the array's peak power (no clipping: its rating is not in the inventory).

Energy is the mean power over 5-minute steps times the step, over every step of
the local day (23 h and 25 h days included). Results are per kWp and cached by
(position, orientation, technology, day), so a town of 1,000 inverters costs
one computation per distinct orientation.

pvlib (with numpy, pandas, scipy) is a dependency of the ``central`` extra
only: it is imported inside the functions, never at import time, so the edge
agent never loads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

STEP_MINUTES = 5
"""Time step of the simulation; each step is evaluated at its middle."""

DEFAULT_GAMMA_PDC = -0.0037
"""Temperature coefficient of power (1/K) when the technology is unknown: PVWatts v8 "standard" module."""

GAMMA_PDC_BY_TECHNOLOGY: tuple[tuple[str, float], ...] = (
    # (keyword found in the inventory's free-text ``technology``, lowercase; coefficient in 1/K).
    # Typical datasheet values; the first keyword found wins, so specific names come first.
    ("heterojunction", -0.0026),
    ("hjt", -0.0026),
    ("topcon", -0.0030),
    ("perc", -0.0035),
    ("cdte", -0.0028),
    ("cigs", -0.0036),
    ("a-si", -0.0020),
    ("amorph", -0.0020),
    ("poly", -0.0040),
    ("multi", -0.0040),
    ("mono", -0.0037),
)


def gamma_pdc_for(technology: str | None) -> float:
    """The module temperature coefficient (1/K) for an inventory ``technology`` text."""
    text = (technology or "").lower()
    for keyword, gamma in GAMMA_PDC_BY_TECHNOLOGY:
        if keyword in text:
            return gamma
    return DEFAULT_GAMMA_PDC


@dataclass(frozen=True)
class ModelSettings:
    """Assumptions of the clear-sky model; the defaults suit a town in northern France.

    They move every array's expectation alike, so they change the clear-sky
    ratio's level but hardly the peer index.
    """

    system_losses_percent: float = 14.08
    """PVWatts default total losses (soiling 2, shading 3, mismatch 2, wiring 2, connections 0.5,
    LID 1.5, nameplate 1, availability 3 %)."""
    inverter_efficiency: float = 0.96
    """PVWatts nominal inverter efficiency."""
    air_temperature_c: float = 15.0
    wind_speed_m_s: float = 1.0
    albedo: float = 0.25
    sky_model: str = "haydavies"
    """``haydavies`` or ``perez`` (pvlib ``get_total_irradiance`` models)."""


@dataclass(frozen=True)
class Orientation:
    """What the expected energy per kWp depends on. Positions are rounded to 0.001° (about 100 m)."""

    latitude: float
    longitude: float
    tilt: float
    azimuth: float
    gamma_pdc: float

    @classmethod
    def of(cls, latitude: float, longitude: float, tilt: float, azimuth: float,
           technology: str | None) -> Orientation:
        return cls(round(latitude, 3), round(longitude, 3), float(tilt), float(azimuth) % 360,
                   gamma_pdc_for(technology))


def _day_times(days: Sequence[date], tz: str) -> tuple[Any, list[tuple[int, int]]]:
    """The middles of the 5-minute steps of each local day, and each day's slice into them."""
    import pandas as pd

    zone = ZoneInfo(tz)
    parts = []
    bounds = []
    n = 0
    half = pd.Timedelta(minutes=STEP_MINUTES / 2)
    for day in days:
        start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=zone))
        nxt = day + timedelta(days=1)
        end = pd.Timestamp(datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone))
        idx = pd.date_range(start, end, freq=f"{STEP_MINUTES}min", inclusive="left") + half
        parts.append(idx)
        bounds.append((n, n + len(idx)))
        n += len(idx)
    times = parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]
    return times, bounds


@dataclass
class _SkyAtSite:
    """Solar position and clear-sky irradiance at one position over a run of days (reused by every orientation)."""

    zenith: Any
    azimuth: Any
    ghi: Any
    dni: Any
    dhi: Any
    dni_extra: Any
    bounds: list[tuple[int, int]]


def _sky(latitude: float, longitude: float, days: Sequence[date], tz: str) -> _SkyAtSite:
    import numpy as np
    from pvlib import irradiance
    from pvlib.location import Location

    times, bounds = _day_times(days, tz)
    loc = Location(latitude, longitude, tz=tz)
    solpos = loc.get_solarposition(times)
    clear = loc.get_clearsky(times, model="ineichen", solar_position=solpos)
    return _SkyAtSite(
        zenith=solpos["apparent_zenith"].to_numpy(dtype=float),
        azimuth=solpos["azimuth"].to_numpy(dtype=float),
        ghi=clear["ghi"].to_numpy(dtype=float),
        dni=clear["dni"].to_numpy(dtype=float),
        dhi=clear["dhi"].to_numpy(dtype=float),
        dni_extra=np.asarray(irradiance.get_extra_radiation(times), dtype=float),
        bounds=bounds,
    )


def _daily_wh_per_kwp(sky: _SkyAtSite, o: Orientation, settings: ModelSettings) -> list[float]:
    import numpy as np
    from pvlib import atmosphere, inverter, irradiance, pvsystem, temperature

    up = sky.zenith < 90.0
    zen, azi = sky.zenith[up], sky.azimuth[up]
    kwargs: dict[str, Any] = {"dni_extra": sky.dni_extra[up], "albedo": settings.albedo, "model": settings.sky_model}
    if settings.sky_model == "perez":
        kwargs["airmass"] = atmosphere.get_relative_airmass(zen)
    poa = irradiance.get_total_irradiance(o.tilt, o.azimuth, zen, azi, sky.dni[up], sky.ghi[up], sky.dhi[up],
                                          **kwargs)
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0).clip(min=0.0)
    params = temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    t_cell = temperature.sapm_cell(poa_global, settings.air_temperature_c, settings.wind_speed_m_s, **params)
    pdc = pvsystem.pvwatts_dc(poa_global, t_cell, 1000.0, o.gamma_pdc)
    pdc = np.asarray(pdc, dtype=float) * (1.0 - settings.system_losses_percent / 100.0)
    pac = inverter.pvwatts(pdc, 1000.0 / settings.inverter_efficiency, eta_inv_nom=settings.inverter_efficiency)
    power = np.zeros(len(sky.zenith))
    power[up] = np.nan_to_num(np.asarray(pac, dtype=float), nan=0.0).clip(min=0.0)
    step_h = STEP_MINUTES / 60.0
    return [float(power[a:b].sum() * step_h) for a, b in sky.bounds]


@dataclass
class ClearSkyModel:
    """Expected clear-sky energy per kWp and local day, cached by orientation and day.

    One instance lives as long as the rollup job, so the 5-minute runs compute
    each (orientation, day) once.
    """

    timezone: str = "Europe/Paris"
    settings: ModelSettings = field(default_factory=ModelSettings)
    max_cached: int = 200_000
    _cache: dict[tuple[Orientation, date], float] = field(default_factory=dict, init=False, repr=False)

    def wh_per_kwp(self, orientations: Iterable[Orientation],
                   days: Sequence[date]) -> dict[tuple[Orientation, date], float]:
        """Expected AC energy (Wh per kWp) of each orientation on each local day."""
        wanted = {(o, d) for o in set(orientations) for d in days}
        missing = [k for k in wanted if k not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self.max_cached:
                self._cache.clear()
            by_site: dict[tuple[float, float], set[Orientation]] = {}
            missing_days = sorted({d for _, d in missing})
            for o, _ in missing:
                by_site.setdefault((o.latitude, o.longitude), set()).add(o)
            for (lat, lon), group in by_site.items():
                sky = _sky(lat, lon, missing_days, self.timezone)
                for o in group:
                    for d, wh in zip(missing_days, _daily_wh_per_kwp(sky, o, self.settings), strict=True):
                        self._cache[(o, d)] = wh
        return {k: self._cache[k] for k in wanted}

    def expected_wh(self, orientation: Orientation, peak_power_w: float, day: date) -> float:
        """Expected AC energy (Wh) of an array of *peak_power_w* on *day*."""
        return self.wh_per_kwp([orientation], [day])[(orientation, day)] * peak_power_w / 1000.0
