"""The town's inventory of roofs (``/etc/terril/sites.yaml``): what it knows about each site, entered once.

Shape: DESIGN.md, "Inventory". The ingest config names the file (``inventory:``);
the rollups (communes), the yield analytics (arrays: peak power, tilt,
azimuth, technology), the territory open data (communes, target) and the
public site (owners, who may be shown by name, the newborn panels) all read
it through :func:`inventory_for`, so there is one list of roofs, not one per
feature.

Why a central file and not the agents' ``site`` blocks: the agents run on
Pis in many buildings, configured one at a time; the technical services keep
one file. Where both give a value (name, peak power, position) the inventory
wins and ``terril check-config AGENT.yaml --inventory sites.yaml`` reports
the disagreement.

Checked like every other config: unknown and duplicate keys are refused and
every problem is reported at once as ``key.path: reason``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from agent.configerrors import fail, fail_many, translate_errors
from agent.configfile import FileRefused, load_yaml, read_text
from agent.errors import ConfigError
from agent.schema import SLUG_PATTERN

if TYPE_CHECKING:
    from agent.central.config import IngestConfig

Owner = Literal["commune", "cooperative", "citizen"]

INSEE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
"""A French commune code (code officiel géographique): 5 digits, or 2A/2B for Corsica."""

MAX_REGISTER_BYTES = 4 * 1024 * 1024
"""A newborn register of 100,000 lines is well under this; anything bigger is not a register."""

Slug = Annotated[str, Field(pattern=f"^{SLUG_PATTERN}$")]
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Insee = Annotated[str, Strict(), Field(pattern=INSEE_RE.pattern)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=False)


class Commune(_Model):
    insee: Insee
    """INSEE code, quoted in YAML ("62528") so that a leading zero survives."""
    name: Annotated[str, Field(min_length=1, max_length=100)]


class Target(_Model):
    year: Annotated[Int, Field(ge=2000, le=2100)]
    share: Annotated[Float, Field(gt=0, le=10)]
    """Local renewable production / consumption to reach by ``year`` (1.0: energy-positive)."""


class Territory(_Model):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    timezone: str = "Europe/Paris"
    communes: Annotated[tuple[Commune, ...], Field(min_length=1)]
    target: Target | None = None
    baseline_year: Annotated[Int, Field(ge=1990, le=2100)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(f"{value!r} is not a known IANA time zone (e.g. Europe/Paris)") from None
        return value

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field problems (paths relative to the territory); checked by :class:`Inventory` so that
        they are reported with the sites' own, not instead of them."""
        problems: list[tuple[str, str]] = []
        insees = [c.insee for c in self.communes]
        for insee in sorted({i for i in insees if insees.count(i) > 1}):
            problems.append(("communes", f"commune {insee} is listed twice"))
        if self.target is not None and self.baseline_year is not None and self.baseline_year >= self.target.year:
            problems.append(("baseline_year", f"{self.baseline_year} must be before target.year {self.target.year}"))
        return problems


class Array(_Model):
    """One group of panels with one orientation, feeding one inverter (a device of the site's agent)."""

    name: Slug
    inverter: Slug
    peak_power_w: Annotated[Float, Field(gt=0, le=50_000_000)]
    panels: Annotated[Int, Field(ge=1, le=1_000_000)] | None = None
    tilt: Annotated[Float, Field(ge=0, le=90)]
    """Degrees from horizontal."""
    azimuth: Annotated[Float, Field(ge=0, lt=360)]
    """Degrees clockwise from north (pvlib convention): 180 faces south."""
    technology: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    commissioned: date | None = None
    string_peak_power_w: tuple[Annotated[Float, Field(gt=0)], ...] | None = None
    """Peak power per MPPT string, in string order; without it the strings of one inverter are taken as alike."""


class Site(_Model):
    slug: Slug
    """The agent's ``site.slug``: MQTT user name and ``site`` tag."""
    name: Annotated[str, Field(min_length=1, max_length=120)]
    owner: Owner
    commune: Insee | None = None
    """Filled with the territory's first commune when not given (see Inventory)."""
    latitude: Annotated[Float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[Float, Field(ge=-180, le=180)] | None = None
    public: bool | None = None
    """Shown by name on the public site. Default: yes for commune and cooperative roofs, no for citizens."""
    arrays: tuple[Array, ...] = ()

    @property
    def peak_power_w(self) -> float | None:
        """Sum of the arrays' peak power; None when the site lists no array."""
        return sum(a.peak_power_w for a in self.arrays) if self.arrays else None

    def arrays_of(self, inverter: str) -> tuple[Array, ...]:
        """The arrays wired to one inverter (two orientations on two MPPT inputs are two arrays)."""
        return tuple(a for a in self.arrays if a.inverter == inverter)


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid", hide_input_in_errors=False))
class NewbornPanels:
    """A pydantic dataclass, not a model: a model cannot have a field named ``register`` (BaseModel.register)."""

    site: Slug
    """The site whose array holds the newborns' panels."""
    register: Path
    """CSV ``panel,born,first_name,consent``; a relative path is relative to the inventory file."""
    array: Slug | None = None
    """Which array of that site is the newborns' one (default: the whole site)."""


class Newborn(_Model):
    panel: int
    born: date
    first_name: str | None
    """Shown only when ``consent`` is true."""
    consent: bool


class Inventory(_Model):
    territory: Territory
    sites: tuple[Site, ...] = ()
    newborn_panels: NewbornPanels | None = None
    source: str = ""
    """The file it was read from (for messages)."""

    @model_validator(mode="after")
    def _defaults_and_links(self) -> Inventory:
        """Cross-field checks, all here so that one report lists them all; then the defaults that depend on them."""
        problems = [(f"territory.{path}", reason) for path, reason in self.territory.problems()]
        communes = {c.insee for c in self.territory.communes}
        first = self.territory.communes[0].insee
        filled: list[Site] = []
        seen: set[str] = set()
        for i, site in enumerate(self.sites):
            if site.slug in seen:
                problems.append((f"sites[{i}].slug", f"site {site.slug!r} is listed twice"))
            seen.add(site.slug)
            names = [a.name for a in site.arrays]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                problems.append((f"sites[{i}].arrays", f"array name {twice[0]!r} is used twice"))
            if (site.latitude is None) != (site.longitude is None):
                problems.append((f"sites[{i}]", "latitude and longitude go together: set both or neither"))
            if site.commune is not None and site.commune not in communes:
                problems.append((f"sites[{i}].commune", f"{site.commune} is not one of territory.communes "
                                 f"({', '.join(sorted(communes))})"))
            update: dict[str, object] = {}
            if site.commune is None:
                update["commune"] = first
            if site.public is None:
                update["public"] = site.owner != "citizen"
            filled.append(site.model_copy(update=update) if update else site)
        nb = self.newborn_panels
        if nb is not None:
            host = next((s for s in filled if s.slug == nb.site), None)
            if host is None:
                problems.append(("newborn_panels.site", f"no site {nb.site!r} in sites"))
            elif nb.array is not None and all(a.name != nb.array for a in host.arrays):
                problems.append(("newborn_panels.array", f"site {nb.site!r} has no array {nb.array!r}"))
        if problems:
            raise fail_many(problems)
        object.__setattr__(self, "sites", tuple(filled))
        return self

    def site(self, slug: str) -> Site | None:
        return next((s for s in self.sites if s.slug == slug), None)

    def sites_in_commune(self, insee: str) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.commune == insee)

    def array_for(self, site: str, device: str) -> Array | None:
        """The (first) array wired to that inverter, or None."""
        found = self.site(site)
        if found is None:
            return None
        arrays = found.arrays_of(device)
        return arrays[0] if arrays else None

    def commune(self, insee: str) -> Commune | None:
        return next((c for c in self.territory.communes if c.insee == insee), None)

    def newborn_array_panels(self) -> int | None:
        """Panel count of the newborns' array (or of the whole site), None when unknown."""
        nb = self.newborn_panels
        host = self.site(nb.site) if nb is not None else None
        if nb is None or host is None:
            return None
        arrays = [a for a in host.arrays if nb.array is None or a.name == nb.array]
        counts = [a.panels for a in arrays]
        if not counts or any(c is None for c in counts):
            return None
        return sum(c for c in counts if c is not None)


# --------------------------------------------------------------------------- loading


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and check ``sites.yaml`` (and the newborn register it names); ConfigError lists every problem."""
    path = Path(path)
    source = str(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping with territory and sites sections"])
    if "source" in data:
        raise ConfigError(source, ["source: unknown key"])
    try:
        inventory = Inventory.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(source, translate_errors(exc, Inventory)) from None
    nb = inventory.newborn_panels
    if nb is not None:
        register = nb.register.expanduser()
        if not register.is_absolute():
            register = path.resolve().parent / register
        inventory = inventory.model_copy(update={"newborn_panels": replace(nb, register=register)})
        try:
            newborns = load_newborns(register)
        except ConfigError as exc:
            raise ConfigError(source, [f"newborn_panels.register: {exc.source}: {p}" for p in exc.problems]) from None
        capacity = inventory.newborn_array_panels()
        too_high = [n.panel for n in newborns if capacity is not None and n.panel > capacity]
        if too_high:
            raise ConfigError(source, [f"newborn_panels.register: panel {too_high[0]} is beyond the array's "
                                       f"{capacity} panels"])
    return inventory


_TRUE = {"true", "yes", "oui", "1", "y", "o"}
_FALSE = {"false", "no", "non", "0", "n", ""}
_REGISTER_COLUMNS = ("panel", "born", "first_name", "consent")


def load_newborns(path: str | os.PathLike[str]) -> tuple[Newborn, ...]:
    """Read the newborn register (CSV ``panel,born,first_name,consent``), every problem as ``line N: reason``.

    First names are personal data: they are kept only where consent is true,
    and any control character is refused rather than copied into a web page.
    """
    source = str(path)
    text = _read_small_text(Path(path), source)
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(rows, None)
    if header is None:
        return ()
    names = [h.strip().lower() for h in header]
    missing = [c for c in _REGISTER_COLUMNS if c not in names]
    if missing:
        raise ConfigError(source, [f"line 1: missing column {', '.join(missing)} "
                                   f"(expected header {','.join(_REGISTER_COLUMNS)})"])
    col = {name: names.index(name) for name in _REGISTER_COLUMNS}
    problems: list[str] = []
    out: list[Newborn] = []
    panels: dict[int, int] = {}
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        entry = _newborn(cells, number, problems)
        if entry is None:
            continue
        if entry.panel in panels:
            problems.append(f"line {number}: panel {entry.panel} already given on line {panels[entry.panel]}")
            continue
        panels[entry.panel] = number
        out.append(entry)
    if problems:
        raise ConfigError(source, problems)
    return tuple(sorted(out, key=lambda n: n.panel))


def _newborn(cells: dict[str, str], number: int, problems: list[str]) -> Newborn | None:
    before = len(problems)
    panel = 0
    try:
        panel = int(cells["panel"])
        if panel < 1:
            raise ValueError
    except ValueError:
        problems.append(f"line {number}: panel: expected a panel number ≥ 1, got {cells['panel']!r}")
    born = date.min
    try:
        born = date.fromisoformat(cells["born"])
    except ValueError:
        problems.append(f"line {number}: born: expected a date YYYY-MM-DD, got {cells['born']!r}")
    consent_text = cells["consent"].lower()
    if consent_text not in _TRUE | _FALSE:
        problems.append(f"line {number}: consent: expected true or false, got {cells['consent']!r}")
    name = cells["first_name"] or None
    if name is not None and (len(name) > 60 or not name.isprintable()):
        problems.append(f"line {number}: first_name: expected a printable name of at most 60 characters")
    if len(problems) > before:
        return None
    consent = consent_text in _TRUE
    return Newborn(panel=panel, born=born, first_name=name if consent else None, consent=consent)


def _read_small_text(path: Path, source: str) -> str:
    """A regular UTF-8 file of bounded size (a FIFO or /dev/zero must not hang or exhaust the process)."""
    try:
        return read_text(path, MAX_REGISTER_BYTES)
    except FileRefused as exc:
        raise ConfigError(source, [exc.reason]) from None


_CACHE: dict[Path, tuple[float, int, Inventory]] = {}


def inventory_for(config: IngestConfig) -> Inventory | None:
    """The inventory the ingest config names (re-read when the file changed), or None when it names none."""
    return None if config.inventory is None else load_inventory_cached(config.inventory)


def load_inventory_cached(path: Path) -> Inventory:
    """:func:`load_inventory`, read again only when the file changed (size or mtime).

    The ingest config's own check loads the inventory through here, so the
    rollup, the analytics and the public site reuse that read at start-up.
    """
    try:
        st = path.stat()
    except OSError:
        return load_inventory(path)  # names the problem (missing, unreadable) as a ConfigError
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == st.st_mtime and cached[1] == st.st_size:
        return cached[2]
    inventory = load_inventory(path)
    _CACHE[path] = (st.st_mtime, st.st_size, inventory)
    return inventory


def agent_site_disagreements(inventory: Inventory, slug: str, name: str, peak_power_w: float,
                             latitude: float | None, longitude: float | None) -> list[str]:
    """What an agent's ``site`` block says differently from the inventory (the inventory wins)."""
    site = inventory.site(slug)
    if site is None:
        return [f"site {slug!r} is not in the inventory {inventory.source}: its roofs are counted "
                "but shown without commune, owner or arrays"]
    notes: list[str] = []
    if name != site.name:
        notes.append(f"site.name {name!r} differs from the inventory's {site.name!r} (the inventory wins)")
    kwp = site.peak_power_w
    if kwp is not None and abs(kwp - peak_power_w) > 0.01 * kwp:
        notes.append(f"site.peak_power_w {peak_power_w:g} differs from the inventory's arrays ({kwp:g} W) "
                     "(the inventory wins)")
    if site.latitude is not None and latitude is not None and longitude is not None and site.longitude is not None \
            and (abs(site.latitude - latitude) > 0.01 or abs(site.longitude - longitude) > 0.01):
        notes.append(f"site position {latitude:g}, {longitude:g} differs from the inventory's "
                     f"{site.latitude:g}, {site.longitude:g} (the inventory wins)")
    return notes
