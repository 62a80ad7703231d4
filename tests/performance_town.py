"""A synthetic town for the yield analytics, built with pvlib, with the truth kept aside.

8 inverters in 4 orientations on 3 sites of one commune, 30 days. Each
inverter's AC power follows a clear-sky simulation of its own arrays, built
here independently of ``agent.central.performance.model`` (Perez sky model
instead of Hay-Davies, another air temperature, no inverter curve), times a
weather factor of the day shared by the whole town (sunny, cloudy, mixed),
times small noise (per step and per inverter-day). Two faults are staged:

* ``ecole/ond-3`` loses 20 % from day 10 (index 10, 0-based);
* string ``3`` of ``mairie/ond-1`` (3 strings, 18 kWp) dies on day 20.

Counters are written every 15 minutes, not every 5: the analytics read only
each day's first and last counter readings (and the few around midnight, all
at night here), so a finer step changes nothing but the test's time. The
daily truth is the sum of the energy put into the counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

START = date(2026, 5, 4)
DAYS = 30
STEP_MIN = 15
TZ = "Europe/Paris"
COMMUNE = "62528"
LAT, LON = 50.457, 2.793
DEGRADED = ("ecole", "ond-3")
DEGRADED_FROM = 10
DEGRADED_FACTOR = 0.80
DEAD_STRING = ("mairie", "ond-1", "3")
DEAD_FROM = 20

# Day weather, shared by the town: fraction of the clear-sky energy. S sunny, M mixed, C cloudy.
WEATHER_PATTERN = "SSMSCSSMCS" "SMSSCSMSSC" "SSMSSCSMSS"
WEATHER = {"S": 0.97, "M": 0.62, "C": 0.22}


@dataclass(frozen=True)
class FakeArray:
    name: str
    inverter: str
    peak_power_w: float
    tilt: float | None
    azimuth: float | None
    technology: str | None
    commissioned: date | None = None
    string_peak_power_w: tuple[float, ...] | None = None
    panels: int | None = None


@dataclass(frozen=True)
class FakeSite:
    slug: str
    commune: str | None
    latitude: float | None
    longitude: float | None
    arrays: tuple[FakeArray, ...]
    name: str = ""
    owner: str = "commune"
    public: bool = True


@dataclass(frozen=True)
class FakeInventory:
    sites: tuple[FakeSite, ...]


def town_inventory() -> FakeInventory:
    s30, e15, w15, se35 = (30.0, 180.0), (15.0, 90.0), (15.0, 270.0), (35.0, 135.0)
    return FakeInventory((
        FakeSite("mairie", COMMUNE, LAT, LON, (
            FakeArray("toiture-sud", "ond-1", 18000.0, *s30, "mono-PERC"),
            FakeArray("toiture-sud-2", "ond-2", 12000.0, *s30, "mono-PERC"),
            FakeArray("toiture-est", "ond-3", 9000.0, *e15, "HJT"),
        )),
        FakeSite("ecole", COMMUNE, LAT + 0.004, LON - 0.006, (
            FakeArray("preau-ouest", "ond-1", 9000.0, *w15, "mono-PERC"),
            FakeArray("gymnase", "ond-2", 15000.0, *se35, "poly"),
            FakeArray("cantine", "ond-3", 10000.0, *s30, "mono-PERC"),
        )),
        FakeSite("salle", COMMUNE, LAT - 0.003, LON + 0.005, (
            FakeArray("est", "ond-1", 20000.0, *e15, "HJT"),
            FakeArray("ouest", "ond-2", 20000.0, *w15, "poly"),
        )),
    ))


STRINGS = {("mairie", "ond-1"): ("1", "2", "3"), ("ecole", "ond-2"): ("1", "2", "3")}


@dataclass
class Town:
    lines: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    energy_wh: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """Truth: AC energy per inverter and day."""
    peak_w: dict[tuple[str, str], float] = field(default_factory=dict)
    string_energy_wh: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)


def _clear_sky_power_per_kwp(lat: float, lon: float, tilt: float, azimuth: float, times: object) -> list[float]:
    """AC W per kWp under a clear sky, built with pvlib independently of the product's model."""
    import numpy as np
    from pvlib import atmosphere, irradiance, pvsystem, temperature
    from pvlib.location import Location

    loc = Location(lat, lon, tz=TZ)
    sp = loc.get_solarposition(times)
    cs = loc.get_clearsky(times, model="ineichen", solar_position=sp)
    airmass = atmosphere.get_relative_airmass(sp["apparent_zenith"])
    poa = irradiance.get_total_irradiance(tilt, azimuth, sp["apparent_zenith"], sp["azimuth"], cs["dni"], cs["ghi"],
                                          cs["dhi"], dni_extra=irradiance.get_extra_radiation(times),
                                          airmass=airmass, model="perez")
    g = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float)).clip(min=0)
    t_cell = temperature.faiman(g, 18.0, 1.5)
    pdc = np.asarray(pvsystem.pvwatts_dc(g, t_cell, 1000.0, -0.0036), dtype=float)
    return [float(v) for v in (pdc * 0.86 * 0.965).clip(min=0)]


def build_town(seed: int = 11) -> Town:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    zone = ZoneInfo(TZ)
    town = Town()
    town.days = [START + timedelta(days=i) for i in range(DAYS)]
    start = pd.Timestamp(datetime(START.year, START.month, START.day, tzinfo=zone))
    end = pd.Timestamp(datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), zone))
    stamps = pd.date_range(start, end, freq=f"{STEP_MIN}min", inclusive="left")
    middles = stamps + pd.Timedelta(minutes=STEP_MIN / 2)
    day_of = [(s.tz_convert(zone).date() - START).days for s in stamps]
    ts_ms = [int(s.timestamp() * 1000) for s in stamps]
    h = STEP_MIN / 60.0
    inv = town_inventory()
    profiles: dict[tuple[float, float, float, float], list[float]] = {}
    for site in inv.sites:
        assert site.latitude is not None and site.longitude is not None
        for array in site.arrays:
            assert array.tilt is not None and array.azimuth is not None
            key = (site.latitude, site.longitude, array.tilt, array.azimuth)
            if key not in profiles:
                profiles[key] = _clear_sky_power_per_kwp(*key, middles)
            device = (site.slug, array.inverter)
            town.peak_w[device] = array.peak_power_w
            day_noise = 1.0 + rng.normal(0.0, 0.01, DAYS)
            step_noise = (1.0 + rng.normal(0.0, 0.04, len(stamps))).clip(min=0)
            counter = 1_000_000.0 * (1 + len(town.energy_wh))
            daily = [0.0] * DAYS
            strings = STRINGS.get(device, ())
            s_counters = {s: 300_000.0 for s in strings}
            s_noise = {s: 1.0 + rng.normal(0.0, 0.01, DAYS) for s in strings}
            s_daily = {s: [0.0] * DAYS for s in strings}
            for k, t in enumerate(ts_ms):
                d = day_of[k]
                p = (profiles[key][k] * array.peak_power_w / 1000.0 * WEATHER[WEATHER_PATTERN[d]]
                     * day_noise[d] * step_noise[k])
                if device == DEGRADED and d >= DEGRADED_FROM:
                    p *= DEGRADED_FACTOR
                if strings:
                    # DC per string (AC / 0.965 inverter efficiency); a dead string's share is lost.
                    per_string = p / 0.965 / len(strings)
                    alive = [s for s in strings if not ((*device, s) == DEAD_STRING and d >= DEAD_FROM)]
                    p = p * len(alive) / len(strings)
                    for s in strings:
                        e = per_string * s_noise[s][d] * h if s in alive else 0.0
                        s_counters[s] += e
                        s_daily[s][d] += e
                        town.lines.append(f"mppt,device={device[1]},site={device[0]},string={s} "
                                          f"dc_power_w={e / h:.3f},dc_energy_wh={s_counters[s]:.3f} {t}")
                e = p * h
                counter += e
                daily[d] += e
                town.lines.append(f"inverter,device={device[1]},site={device[0]} "
                                  f"ac_power_w={p:.3f},ac_energy_wh={counter:.3f} {t}")
            town.energy_wh[device] = daily
            for s in strings:
                town.string_energy_wh[(*device, s)] = s_daily[s]
    return town


def sunny(day_index: int) -> bool:
    return WEATHER[WEATHER_PATTERN[day_index]] >= 0.4


def local_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(TZ))


def healthy_inverters(devices: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [d for d in devices if d != DEGRADED and d != DEAD_STRING[:2]]
