"""Which open-data file is this? Recognised from its header, whatever the portal's export options.

Portals export human labels (``Conso totale (MWh)``, ``Année``) or API field
names (``conso_totale_mwh``, ``annee``), and ODRÉ writes camelCase
(``codeINSEECommune``) that its API lower-cases. One normal form covers all of
them: lower case, accents removed, only letters and digits kept
(``consototalemwh``, ``annee``, ``codeinseecommune``). A format is a set of
required normal forms; columns are then looked up by normal form.

Cells: numbers may use a decimal comma and spaces as thousands separators;
``secret``, ``s`` and an empty cell are masked values (unknown, never 0).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from agent.central.territory.figures import Filiere, Sector, Source

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
MASKED_CELLS = frozenset({"", "s", "secret", "secretise", "secretisé", "nd", "n/a"})


class CellError(ValueError):
    """A cell that should hold a number (or a masked value) holds something else."""


def normal(header: str) -> str:
    """Normal form of a column header: ``"Conso totale (MWh)"`` -> ``"consototalemwh"``."""
    text = unicodedata.normalize("NFKD", header.strip().lstrip("\ufeff").lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _NOT_ALNUM.sub("", text)


def number(cell: str) -> float | None:
    """A number cell: ``"1 234,5"`` -> 1234.5; a masked cell -> None; anything else raises CellError."""
    text = cell.strip()
    if text.lower() in MASKED_CELLS:
        return None
    compact = text.replace("\u202f", "").replace("\xa0", "").replace(" ", "")
    if "," in compact:
        if "." in compact:  # "1.234,5": dots group thousands
            compact = compact.replace(".", "")
        compact = compact.replace(",", ".")
    try:
        value = float(compact)
    except ValueError:
        raise CellError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CellError(f"{text!r} is not a finite number")
    return value


def year(cell: str) -> int:
    """A year cell (``2021``, ``2021.0``); raises CellError for anything else."""
    text = cell.strip()
    try:
        value = int(float(text.replace(",", ".")))
    except ValueError:
        raise CellError(f"{text!r} is not a year") from None
    if not 1990 <= value <= 2100:
        raise CellError(f"{text!r} is not a plausible year")
    return value


def insee(cell: str) -> str:
    """An INSEE commune code as the inventory writes it: 5 characters, leading zero restored."""
    text = cell.strip().upper()
    return text.zfill(5) if text.isdigit() and len(text) < 5 else text


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class Format:
    """One kind of open-data file: its source, what identifies its header, and which columns it needs."""

    source: Source
    title: str
    marks: frozenset[str]
    """Normal forms that all appear in this format's header and identify it."""
    required: tuple[tuple[str, ...], ...]
    """Columns the parser needs: each entry lists the normal forms accepted for one column."""


ORE = Format(
    "agence_ore",
    "Agence ORE annual electricity and gas consumption per commune",
    frozenset({"operateur", "filiere", "codecommune"}),
    (("annee",), ("filiere",), ("codecommune",), ("conso", "consommationmwh", "consototalemwh")),
)
ENEDIS_CONSUMPTION = Format(
    "enedis_consumption",
    "Enedis electricity consumption per sector at commune level",
    frozenset({"codegrandsecteur", "codecommune", "annee"}),
    (("annee",), ("codecommune",), ("codegrandsecteur",), ("consototalemwh",)),
)
ENEDIS_PRODUCTION = Format(
    "enedis_production",
    "Enedis annual production per energy source at commune level",
    frozenset({"codecommune", "annee"}),
    (("annee",), ("codecommune",)),
)
ODRE_REGISTER = Format(
    "odre_register",
    "ODRÉ national register of production and storage installations",
    frozenset({"codeinseecommune", "puismaxinstallee", "filiere"}),
    (("codeinseecommune",), ("filiere",), ("puismaxinstallee",)),
)
FORMATS: tuple[Format, ...] = (ODRE_REGISTER, ORE, ENEDIS_CONSUMPTION, ENEDIS_PRODUCTION)

PRODUCTION_PREFIX = "energieproduiteannuelle"
"""Normal form that starts every production column of the Enedis file."""


def recognise(header: list[str]) -> Format | None:
    """The format whose marks the header carries (the first that fits, most specific first), or None.

    The Enedis production file is recognised by its ``Energie produite annuelle …`` columns.
    """
    names = {normal(h) for h in header}
    for fmt in FORMATS:
        if not fmt.marks <= names:
            continue
        if fmt is ENEDIS_PRODUCTION and not any(n.startswith(PRODUCTION_PREFIX) for n in names):
            continue
        if fmt is ENEDIS_CONSUMPTION and "operateur" in names:
            continue
        return fmt
    return None


COLUMN_NAMES: dict[str, str] = {
    "annee": "annee (Année)",
    "filiere": "filiere (Filière)",
    "codecommune": "code_commune (Code Commune)",
    "conso": "conso (Consommation (MWh))",
    "codegrandsecteur": "code_grand_secteur (CODE GRAND SECTEUR)",
    "consototalemwh": "conso_totale_mwh (Conso totale (MWh))",
    "codeinseecommune": "codeINSEECommune",
    "puismaxinstallee": "puisMaxInstallee",
}
"""How a missing column is named in an error: its field name, then its label."""


def column_index(header: list[str], accepted: tuple[str, ...]) -> int | None:
    """Index of the first column whose normal form is one of *accepted* (in order of preference)."""
    names = [normal(h) for h in header]
    for wanted in accepted:
        if wanted in names:
            return names.index(wanted)
    return None


# --------------------------------------------------------------------------- categories

_SECTORS: dict[str, Sector] = {
    "residentiel": "residential", "r": "residential",
    "tertiaire": "tertiary", "t": "tertiary",
    "industrie": "industry", "i": "industry",
    "agriculture": "agriculture", "a": "agriculture",
    "inconnu": "unknown", "na": "unknown", "": "unknown", "nonaffecte": "unknown",
}


def sector(cell: str) -> Sector | None:
    """The sector of a ``code_grand_secteur`` cell (``RESIDENTIEL`` or ``R`` …), None if not one we know."""
    return _SECTORS.get(normal(cell))


def production_filiere(column: str) -> Filiere | None:
    """The energy source of an Enedis ``Energie produite annuelle … (MWh)`` column, from its words.

    None for a column we cannot place (the caller reports it).
    """
    words = normal(column)
    if "photovolta" in words or "solaire" in words:
        return "solar"
    if "eolien" in words:
        return "wind"
    if "hydraul" in words:
        return "hydro"
    if "bio" in words:
        return "bioenergy"
    if "cogeneration" in words or "autre" in words:
        return "other"
    return None


NOT_RENEWABLE = "not renewable"
STORAGE = "storage"


def register_filiere(label: str) -> Filiere | str:
    """Class of an ODRÉ ``filiere`` label: a :data:`Filiere`, ``"storage"``, ``"not renewable"`` or ``""``.

    Storage is tested first: ``Stockage non hydraulique`` contains the word for hydro.
    ``""`` is a label we cannot place (the caller reports it).
    """
    words = normal(label)
    if "stockage" in words or "storage" in words:
        return STORAGE
    if "nonrenouvelable" in words or "nucleaire" in words or "fossile" in words:
        return NOT_RENEWABLE
    if "solaire" in words or "photovolta" in words:
        return "solar"
    if "eolien" in words:
        return "wind"
    if "hydraul" in words:
        return "hydro"
    if "bio" in words:
        return "bioenergy"
    if "geotherm" in words or "marin" in words or "autre" in words:
        return "other"
    return ""
