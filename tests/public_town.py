"""A small generated town for the public-site tests, whose every figure is known in closed form.

Each inverter's lifetime counter follows ``E(day) * frac(local hour)``: nothing
at night, a smooth rise from 07:00 to 19:00, so the energy of a local day is
exactly ``E(day)`` and the energy of today up to 16:00 is ``E(today) *
frac(16)``, independently of how the rollup or the site compute them.
Readings every 15 minutes from 06:00 to 20:00 local (inverters sleep at night),
written with their power (the derivative of the counter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
AT = datetime(2026, 3, 31, 16, 0, tzinfo=ZONE)
FIRST_DAY = date(2025, 12, 20)
LAST_DAY = date(2026, 4, 1)
"""Readings go on after AT: a page built at AT must not see them."""
REFERENCE_WH_PER_YEAR = 5e9
MEAN_YEAR_MS = 365.25 * 24 * 3600 * 1000
STEP_MIN = 15


@dataclass(frozen=True)
class Inverter:
    site: str
    device: str
    kwh_per_day: float
    stops: datetime | None = None
    """Last reading (a roof that fell silent)."""


INVERTERS = (
    Inverter("mairie", "onduleur-toiture-sud", 120.0),
    Inverter("mairie", "onduleur-toiture-nord", 30.0),
    Inverter("ecole-pasteur", "ond-1", 60.0),
    Inverter("cooperative", "onduleur-a", 140.0),
    Inverter("maison-dupont", "sn-4411-secret", 18.0),
    Inverter("maison-martin", "ond-martin", 15.0),
    Inverter("salle-des-sports", "ond-gym", 80.0, stops=datetime(2026, 3, 30, 12, 0, tzinfo=ZONE)),
    Inverter("panneau-par-naissance", "ond-naissances", 25.0),
    Inverter("inconnu", "ond-x", 10.0),
)


def frac(hour: float) -> float:
    """Share of the day's energy produced by *hour* (local)."""
    if hour <= 7:
        return 0.0
    if hour >= 19:
        return 1.0
    return (1 - math.cos(math.pi * (hour - 7) / 12)) / 2


def power_fraction(hour: float) -> float:
    """d frac / d hour: power in units of E(day) per hour."""
    if hour <= 7 or hour >= 19:
        return 0.0
    return math.pi / 24 * math.sin(math.pi * (hour - 7) / 12)


def day_energy(inv: Inverter, day: date) -> float:
    """Wh the inverter produces on a local day (whole day, as if it never stopped)."""
    return inv.kwh_per_day * 1000 * (1 + 0.4 * math.sin(day.toordinal() / 5.0))


def local_hour(moment: datetime) -> float:
    return moment.hour + moment.minute / 60


def energy_between(inv: Inverter, start: datetime, end: datetime) -> float:
    """Wh produced from *start* to *end* (both local instants on the grid of readings)."""
    total = 0.0
    day = start.date()
    while day <= end.date():
        lo = local_hour(start) if day == start.date() else 0.0
        hi = local_hour(end) if day == end.date() else 24.0
        total += day_energy(inv, day) * (frac(hi) - frac(lo))
        day += timedelta(days=1)
    return total


def produced(inv: Inverter, since: date, until: datetime) -> float:
    """Wh from local midnight of *since* to *until*, counting only while the inverter reports."""
    end = min(until, inv.stops) if inv.stops is not None else until
    start = datetime(since.year, since.month, since.day, tzinfo=ZONE)
    if end <= start:
        return 0.0
    return energy_between(inv, start, end)


@dataclass
class Readings:
    lines: list[str] = field(default_factory=list)


def reading_lines() -> list[str]:
    lines: list[str] = []
    for inv in INVERTERS:
        counter = 1_000_000.0
        day = FIRST_DAY
        while day <= LAST_DAY:
            e = day_energy(inv, day)
            for minute in range(6 * 60, 20 * 60 + 1, STEP_MIN):
                t = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=ZONE)
                if inv.stops is not None and t > inv.stops:
                    break
                h = minute / 60
                value = counter + e * frac(h)
                power = e * power_fraction(h)
                ms = int(t.timestamp() * 1000)
                lines.append(f"inverter,device={inv.device},site={inv.site} ac_energy_wh={value!r},"
                             f"ac_power_w={power!r} {ms}")
            counter += e
            day += timedelta(days=1)
    return lines


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


def reference_between(start: datetime, end: datetime) -> float:
    # timestamps, not `end - start`: two datetimes with the same tzinfo subtract as wall-clock times
    return REFERENCE_WH_PER_YEAR * (end.timestamp() - start.timestamp()) * 1000 / MEAN_YEAR_MS


SITES_YAML = """
territory:
  name: Loos-en-Gohelle
  timezone: Europe/Paris
  communes:
    - {insee: "62528", name: Loos-en-Gohelle}
  target: {year: 2050, share: 1.0}
sites:
  - slug: mairie
    name: Hôtel de ville
    owner: commune
    arrays:
      - {name: toiture-sud, inverter: onduleur-toiture-sud, peak_power_w: 36000, panels: 120, tilt: 30, azimuth: 180}
      - {name: toiture-nord, inverter: onduleur-toiture-nord, peak_power_w: 12000, panels: 40, tilt: 10, azimuth: 0}
  - slug: ecole-pasteur
    name: École Pasteur
    owner: commune
    arrays:
      - {name: toit, inverter: ond-1, peak_power_w: 18000, panels: 60, tilt: 20, azimuth: 170}
  - slug: salle-des-sports
    name: Salle des sports Léo-Lagrange
    owner: commune
    arrays:
      - {name: toit, inverter: ond-gym, peak_power_w: 24000, tilt: 10, azimuth: 180}
  - slug: gymnase-neuf
    name: Gymnase neuf
    owner: commune
    arrays:
      - {name: toit, inverter: ond-neuf, peak_power_w: 9000, tilt: 10, azimuth: 180}
  - slug: cooperative
    name: Toit de la coopérative citoyenne
    owner: cooperative
    arrays:
      - {name: toit, inverter: onduleur-a, peak_power_w: 40000, panels: 130, tilt: 15, azimuth: 180}
  - slug: maison-dupont
    name: Maison Dupont, 12 rue des Mineurs
    owner: citizen
    latitude: 50.4581
    longitude: 2.7953
    arrays:
      - {name: toit, inverter: sn-4411-secret, peak_power_w: 6000, tilt: 35, azimuth: 200}
  - slug: maison-martin
    name: Maison Martin
    owner: citizen
    public: true
    arrays:
      - {name: toit, inverter: ond-martin, peak_power_w: 5000, tilt: 35, azimuth: 160}
  - slug: panneau-par-naissance
    name: Panneaux des naissances
    owner: commune
    arrays:
      - {name: champ, inverter: ond-naissances, peak_power_w: 8000, panels: 20, tilt: 25, azimuth: 180}
newborn_panels:
  site: panneau-par-naissance
  register: newborns.csv
"""

NEWBORNS_CSV = """panel,born,first_name,consent
1,2026-01-15,Léa,true
2,2026-02-03,Hugo,false
3,2026-03-31,Inès,oui
"""

SECRETS = ("maison-dupont", "Dupont", "Mineurs", "50.4581", "2.7953", "Hugo", '"consumption_wh"', '"import_wh"',
           '"export_wh"', "inconnu", "NaN", "Traceback", *(inv.device for inv in INVERTERS))
"""Strings that must appear in no public file."""
