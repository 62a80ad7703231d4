"""Numbers, units and dates written the way a reader of each language expects.

French: ``12 345,6 kWh`` (a narrow no-break space groups thousands, a comma
marks decimals, a no-break space sits before the unit, ``42 %``).
English: ``12,345.6 kWh``, ``42%``. The spaces never break, so a figure and its
unit stay on one line on a phone.

Energies and powers pick the unit that reads best (kWh, MWh, GWh; W, kW, MW)
and keep at least three significant digits: ``1,95 MWh``, never ``2 MWh``.
Every function returns text with its unit: a bare number never reaches a page.
"""

from __future__ import annotations

import functools
import math
from datetime import date, datetime
from typing import Literal

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")

NNBSP = "\u202f"
"""Narrow no-break space: French thousands separator."""
NBSP = "\u00a0"
"""No-break space: between a number and its unit."""

_GROUP = {"fr": NNBSP, "en": ","}
_DECIMAL = {"fr": ",", "en": "."}
_MINUS = "\u2212"


def format_number(value: float, decimals: int, lang: Lang) -> str:
    """*value* rounded to *decimals*, grouped by thousands; ``—`` for a value that is not finite."""
    if not math.isfinite(value):
        return "—"
    text = f"{abs(value):,.{max(decimals, 0)}f}"
    negative = value < 0 and text.strip("0.,") != ""  # -0.04 rounded to "0.0" is not negative
    integer, _, fraction = text.partition(".")
    out = integer.replace(",", _GROUP[lang])
    if fraction:
        out += _DECIMAL[lang] + fraction
    return (_MINUS if negative else "") + out


def significant_decimals(value: float, digits: int = 3) -> int:
    """Decimals that show at least *digits* significant digits of *value* (0 for ≥ 10^(digits-1))."""
    if value == 0 or not math.isfinite(value):
        return 0
    magnitude = math.floor(math.log10(abs(value)))
    return max(0, digits - 1 - magnitude)


def _scaled(value: float, units: tuple[tuple[float, str], ...], lang: Lang, digits: int = 3) -> str:
    """Pick the largest unit in which *value* is at least 1, then format with *digits* significant digits."""
    if not math.isfinite(value):
        return "—"
    factor, unit = units[0]
    for f, u in units:
        if abs(value) >= f:
            factor, unit = f, u
    scaled = value / factor
    decimals = significant_decimals(scaled, digits)
    # 999.96 kWh rounds to "1000 kWh": say 1.00 MWh instead
    if round(abs(scaled), decimals) >= 1000 and (factor, unit) != units[-1]:
        nxt = units[units.index((factor, unit)) + 1]
        factor, unit = nxt
        scaled = value / factor
        decimals = significant_decimals(max(abs(scaled), 1.0), digits)  # 0.99996 reads 1.00
    if scaled == 0 or factor == units[0][0]:
        decimals = 0  # no "31,0 Wh": the base unit is already fine-grained enough
    return f"{format_number(scaled, decimals, lang)}{NBSP}{unit}"


ENERGY_UNITS = ((1.0, "Wh"), (1e3, "kWh"), (1e6, "MWh"), (1e9, "GWh"), (1e12, "TWh"))
POWER_UNITS = ((1.0, "W"), (1e3, "kW"), (1e6, "MW"), (1e9, "GW"))


def format_energy(wh: float, lang: Lang) -> str:
    """Energy from Wh: ``850 Wh``, ``12,3 kWh``, ``1,95 MWh``, ``36,0 GWh``."""
    return _scaled(wh, ENERGY_UNITS, lang)


def format_power(w: float, lang: Lang) -> str:
    """Power from W: ``0 W``, ``950 W``, ``36,0 kW``, ``1,20 MW``."""
    return _scaled(w, POWER_UNITS, lang)


def format_peak_power(w: float, lang: Lang) -> str:
    """Installed peak power: ``36 kWc`` in French (kilowatt-crête), ``36 kWp`` in English."""
    unit = "kWc" if lang == "fr" else "kWp"
    kw = w / 1000
    decimals = 1 if kw < 100 and kw != round(kw) else 0
    return f"{format_number(kw, decimals, lang)}{NBSP}{unit}"


def format_yield(kwh_per_kwp: float, lang: Lang) -> str:
    """Specific yield: ``1 012 kWh/kWc`` (FR), ``1,012 kWh/kWp`` (EN)."""
    unit = "kWh/kWc" if lang == "fr" else "kWh/kWp"
    decimals = 1 if abs(kwh_per_kwp) < 10 else 0
    return f"{format_number(kwh_per_kwp, decimals, lang)}{NBSP}{unit}"


def format_percent(ratio: float, lang: Lang) -> str:
    """A ratio as a percentage: ``42 %`` (FR), ``42%`` (EN); one decimal below 10 %."""
    if not math.isfinite(ratio):
        return "—"
    pct = ratio * 100
    if 0 < pct < 0.05:  # a first day of production must not read "0,0 %"
        number = format_number(0.1, 1, lang)
        return f"<{NBSP}{number}{NBSP}%" if lang == "fr" else f"<{number}%"
    decimals = 1 if abs(pct) < 10 else 0
    number = format_number(pct, decimals, lang)
    return f"{number}{NBSP}%" if lang == "fr" else f"{number}%"


def format_mass_kg(kg: float, lang: Lang) -> str:
    """CO₂ mass: ``850 kg``, ``12,3 t`` (tonnes from 1 000 kg)."""
    if not math.isfinite(kg):
        return "—"
    if abs(kg) >= 1000:
        t = kg / 1000
        return f"{format_number(t, significant_decimals(t), lang)}{NBSP}t"
    return f"{format_number(kg, 0 if abs(kg) >= 10 else 1, lang)}{NBSP}kg"


def format_count(value: float, lang: Lang) -> str:
    """A count of things (households, panels): whole, grouped by thousands."""
    return format_number(round(value), 0, lang)


MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}
MONTHS_SHORT = {
    "fr": ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


@functools.lru_cache(maxsize=1024)
def format_date(day: date, lang: Lang) -> str:
    """``30 novembre 2026`` / ``30 November 2026`` (1er for the first of the month in French)."""
    month = MONTHS[lang][day.month - 1]
    if lang == "fr":
        return f"{'1er' if day.day == 1 else day.day}{NBSP}{month} {day.year}"
    return f"{day.day}{NBSP}{month} {day.year}"


@functools.lru_cache(maxsize=1024)
def format_month_year(day: date, lang: Lang) -> str:
    """``mars 2024`` / ``March 2024``."""
    return f"{MONTHS[lang][day.month - 1]} {day.year}"


def format_datetime(moment: datetime, lang: Lang) -> str:
    """``30 novembre 2026 à 16 h 05`` / ``30 November 2026 at 16:05`` (in *moment*'s own timezone)."""
    if lang == "fr":
        return f"{format_date(moment.date(), lang)} à {moment.hour}{NBSP}h{NBSP}{moment.minute:02d}"
    return f"{format_date(moment.date(), lang)} at {moment.hour:02d}:{moment.minute:02d}"


@functools.lru_cache(maxsize=1024)
def format_short_day(day: date, lang: Lang) -> str:
    """Axis label: ``30/11`` (FR), ``30 Nov`` (EN)."""
    if lang == "fr":
        return f"{day.day:02d}/{day.month:02d}"
    return f"{day.day}{NBSP}{MONTHS_SHORT['en'][day.month - 1]}"
