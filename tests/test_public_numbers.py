"""Golden tests of the public site's numbers: French and English, units always, three significant digits."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.public.numbers import (
    NBSP,
    NNBSP,
    format_date,
    format_datetime,
    format_energy,
    format_mass_kg,
    format_number,
    format_peak_power,
    format_percent,
    format_power,
    format_yield,
)


def plain(text: str) -> str:
    """The text with its no-break spaces shown as ordinary spaces (how a reader sees it)."""
    return text.replace(NNBSP, " ").replace(NBSP, " ")


@pytest.mark.parametrize(
    ("value", "decimals", "fr", "en"),
    [
        (12345.6, 1, "12 345,6", "12,345.6"),
        (1234567.891, 2, "1 234 567,89", "1,234,567.89"),
        (999.5, 0, "1 000", "1,000"),
        (0.0, 1, "0,0", "0.0"),
        (-0.04, 1, "0,0", "0.0"),
        (-1234.5, 1, "\u22121 234,5", "\u22121,234.5"),  # a true minus sign
        (float("nan"), 1, "—", "—"),
    ],
)
def test_format_number(value: float, decimals: int, fr: str, en: str) -> None:
    assert plain(format_number(value, decimals, "fr")) == fr
    assert format_number(value, decimals, "en") == en


def test_french_groups_with_a_narrow_no_break_space_and_the_unit_never_breaks_away() -> None:
    assert format_number(12345.6, 1, "fr") == f"12{NNBSP}345,6"
    assert format_energy(12_345_600, "fr") == f"12,3{NBSP}MWh"
    assert " " not in format_energy(1_234_567_890, "fr") + format_power(123_456, "fr") + format_percent(0.42, "fr")


@pytest.mark.parametrize(
    ("wh", "fr", "en"),
    [
        (0, "0 Wh", "0 Wh"),
        (850, "850 Wh", "850 Wh"),
        (31.04, "31 Wh", "31 Wh"),
        (0.4, "0 Wh", "0 Wh"),
        (999.96, "1,00 kWh", "1.00 kWh"),
        (1234, "1,23 kWh", "1.23 kWh"),
        (12_345.6, "12,3 kWh", "12.3 kWh"),
        (123_456, "123 kWh", "123 kWh"),
        (999_600, "1,00 MWh", "1.00 MWh"),
        (1_950_000, "1,95 MWh", "1.95 MWh"),
        (1_954_321, "1,95 MWh", "1.95 MWh"),
        (12_345_600, "12,3 MWh", "12.3 MWh"),
        (36_000_000_000, "36,0 GWh", "36.0 GWh"),
        (float("inf"), "—", "—"),
    ],
)
def test_format_energy_keeps_three_significant_digits(wh: float, fr: str, en: str) -> None:
    assert plain(format_energy(wh, "fr")) == fr
    assert plain(format_energy(wh, "en")) == en


@pytest.mark.parametrize(
    ("w", "fr", "en"),
    [(0, "0 W", "0 W"), (950, "950 W", "950 W"), (12.34, "12 W", "12 W"), (36_000, "36,0 kW", "36.0 kW"),
     (1_204_000, "1,20 MW", "1.20 MW")],
)
def test_format_power(w: float, fr: str, en: str) -> None:
    assert plain(format_power(w, "fr")) == fr
    assert plain(format_power(w, "en")) == en


def test_percent_mass_peak_and_yield() -> None:
    assert plain(format_percent(0.4237, "fr")) == "42 %"
    assert format_percent(0.4237, "en") == "42%"
    assert plain(format_percent(0.0734, "fr")) == "7,3 %"
    assert plain(format_percent(1.0, "en")) == "100%"
    assert plain(format_percent(0.0001, "fr")) == "< 0,1 %"
    assert plain(format_percent(0.0001, "en")) == "<0.1%"
    assert plain(format_percent(0.0, "fr")) == "0,0 %"
    assert plain(format_mass_kg(850.4, "fr")) == "850 kg"
    assert plain(format_mass_kg(12_345, "fr")) == "12,3 t"
    assert plain(format_mass_kg(12_345, "en")) == "12.3 t"
    assert plain(format_peak_power(36_000, "fr")) == "36 kWc"
    assert plain(format_peak_power(2_500, "en")) == "2.5 kWp"
    assert plain(format_yield(1012.4, "fr")) == "1 012 kWh/kWc"
    assert plain(format_yield(1012.4, "en")) == "1,012 kWh/kWp"


def test_dates_in_each_language() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert plain(format_date(date(2026, 3, 1), "fr")) == "1er mars 2026"
    assert plain(format_date(date(2026, 3, 31), "en")) == "31 March 2026"
    moment = datetime(2026, 3, 31, 16, 5, tzinfo=paris)
    assert plain(format_datetime(moment, "fr")) == "31 mars 2026 à 16 h 05"
    assert plain(format_datetime(moment, "en")) == "31 March 2026 at 16:05"
