"""Yearly figures per commune, as read from an open-data file: the vocabulary shared by parse, store and report.

A figure is a sum of cells (several operators, NAF codes or voltage levels for
one commune and year). A masked cell (``secret``, ``s``, empty) is *unknown*:
it is counted in ``masked`` and never added as 0, so a figure knows whether it
is complete, and a figure made only of masked cells has no value at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Source = Literal["agence_ore", "enedis_consumption", "enedis_production", "odre_register"]
SOURCES: tuple[Source, ...] = ("agence_ore", "enedis_consumption", "enedis_production", "odre_register")
SOURCE_LABELS: dict[Source, str] = {
    "agence_ore": "Agence ORE, consumption per commune (all distribution operators)",
    "enedis_consumption": "Enedis, consumption per sector (Enedis network only)",
    "enedis_production": "Enedis, production per energy source",
    "odre_register": "ODRÉ, national register of production installations",
}

Kind = Literal["electricity", "gas", "production", "installations"]
"""What a figure measures: consumption of electricity or gas, production, or installed capacity."""

Sector = Literal["residential", "tertiary", "industry", "agriculture", "unknown"]
SECTORS: tuple[Sector, ...] = ("residential", "tertiary", "industry", "agriculture", "unknown")

Filiere = Literal["solar", "wind", "hydro", "bioenergy", "other"]
FILIERES: tuple[Filiere, ...] = ("solar", "wind", "hydro", "bioenergy", "other")
RENEWABLE_FILIERES: tuple[Filiere, ...] = ("solar", "wind", "hydro", "bioenergy")
"""Counted in the renewable share. ``other`` (cogeneration, "other sources") is reported but not
counted: the grid operators' files do not say whether it burns gas or biomass."""


@dataclass
class Amount:
    """The sum of the known cells of one quantity, and how many cells were masked."""

    value: float = 0.0
    known: int = 0
    masked: int = 0

    def add(self, cell: float | None) -> None:
        """Add one cell; None is a masked (unknown) cell."""
        if cell is None:
            self.masked += 1
        else:
            self.value += cell
            self.known += 1

    @property
    def total(self) -> float | None:
        """The sum of the known cells, or None when every cell was masked."""
        return self.value if self.known else None

    @property
    def complete(self) -> bool:
        return self.masked == 0


@dataclass(frozen=True, order=True)
class FigureKey:
    """Which figure: one commune, one year, one source, one quantity, one sector or energy source."""

    kind: Kind
    source: Source
    commune: str
    year: int
    category: str
    """A :data:`Sector` for consumption, a :data:`Filiere` for production and installations."""


@dataclass
class Figure:
    """The amounts of one figure, by field name (``energy_wh``, ``power_w``, ``delivery_points`` …)."""

    amounts: dict[str, Amount] = field(default_factory=dict)

    def add(self, name: str, cell: float | None) -> None:
        self.amounts.setdefault(name, Amount()).add(cell)

    def total(self, name: str) -> float | None:
        amount = self.amounts.get(name)
        return None if amount is None else amount.total


Figures = dict[FigureKey, Figure]
