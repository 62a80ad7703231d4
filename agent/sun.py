"""Where the sun is: tells a sleeping inverter at night from a broken link by day.

The NOAA low-precision solar position (good to a fraction of a degree), enough
to decide whether the sun is above the horizon at a site. Pure functions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def solar_terms(when: datetime) -> tuple[float, float]:
    """(equation of time in minutes, declination in radians) at *when* (NOAA)."""
    utc = when.astimezone(UTC)
    day_of_year = utc.timetuple().tm_yday
    hour = utc.hour + utc.minute / 60 + utc.second / 3600
    gamma = 2 * math.pi / 365 * (day_of_year - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    return eqtime, decl


def solar_elevation_deg(when: datetime, latitude: float, longitude: float) -> float:
    """Solar elevation above the horizon in degrees at *when* (aware datetime) and the given place."""
    utc = when.astimezone(UTC)
    eqtime, decl = solar_terms(utc)
    minutes = utc.hour * 60 + utc.minute + utc.second / 60
    hour_angle = math.radians((minutes + eqtime + 4 * longitude) / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def is_daylight(when: datetime, latitude: float, longitude: float, margin_deg: float = 0.0) -> bool:
    """True when the sun is more than *margin_deg* above the horizon (inverters start at a few degrees)."""
    return solar_elevation_deg(when, latitude, longitude) > margin_deg
