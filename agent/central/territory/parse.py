"""Stream one open-data file and keep the inventory's communes as yearly figures.

A national file is a million rows or more: it is read row by row with the
``csv`` module, and a row whose commune is not one of ours is skipped after
one set lookup, before any other cell is looked at. Only the kept rows are
checked and added up, so memory stays flat whatever the file's size.

Every problem is ``file:line: what``. A file with any error yields no figures
the caller may write (:attr:`ParsedFile.errors` is not empty); a commune of the
inventory that the file does not mention is a warning (the file is still good
for the others), as is a column or label that cannot be placed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import re
import select
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from agent.central.territory import formats
from agent.central.territory.figures import Figure, FigureKey, Figures, Kind, Source
from agent.central.territory.formats import CellError, Format

MWH = 1_000_000.0
KWH = 1_000.0
KW = 1_000.0
MAX_ERRORS = 20
"""Errors listed per file; more are counted (a wrong file would otherwise print a million lines)."""
SNAPSHOT_RE = re.compile(r"3112(\d\d)(?!\d)")
"""ODRÉ year-end snapshots are named ``…-3112YY``."""
YEAR_RE = re.compile(r"(19|20)\d\d")
MAX_LINE_BYTES = 1 << 20
"""A longer line is no row of these files (their widest header is a few KiB): stop rather than
read a 1-GB file with no line end into memory."""
FIFO_WAIT_S = 5.0
"""How long a pipe (``<(zcat national.csv.gz)``) may stay silent before its first byte."""


class TooManyErrors(Exception):
    """Internal: stop reading a file once MAX_ERRORS are listed."""


@dataclass
class ParsedFile:
    """What one file holds for the inventory's communes, and what was wrong with it."""

    path: str
    format: Format | None
    sha256: str = ""
    figures: Figures = field(default_factory=dict)
    rows: int = 0
    """Data rows read (all communes)."""
    kept: int = 0
    """Rows of the inventory's communes."""
    errors: list[str] = field(default_factory=list)
    more_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    communes: set[str] = field(default_factory=set)
    """Inventory communes the file mentions."""
    year_from: str = ""
    """ODRÉ register: where its year comes from (snapshot name, newest commissioning date, --year)."""

    @property
    def source(self) -> Source | None:
        return self.format.source if self.format else None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def years(self) -> list[int]:
        return sorted({k.year for k in self.figures})


def _delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") >= first_line.count(",") else ","


def _commune_variants(communes: Collection[str]) -> dict[str, str]:
    """Cell text -> inventory code, with the forms files use (``62528``, ``1001`` for ``01001``)."""
    out: dict[str, str] = {}
    for code in communes:
        out[code] = code
        stripped = code.lstrip("0")
        if stripped and stripped != code and stripped.isdigit():
            out[stripped] = code
    return out


class _Reader:
    """Shared state of one file's read: where problems go, which communes to keep."""

    def __init__(self, parsed: ParsedFile, communes: Collection[str]) -> None:
        self.parsed = parsed
        self.wanted = _commune_variants(communes)
        self.line = 1
        self._warned: set[str] = set()

    def error(self, message: str, line: int | None = None) -> None:
        if len(self.parsed.errors) >= MAX_ERRORS:
            self.parsed.more_errors += 1
            raise TooManyErrors
        self.parsed.errors.append(f"{self.parsed.path}:{self.line if line is None else line}: {message}")

    def warn_once(self, key: str, message: str, line: int | None = None) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.parsed.warnings.append(f"{self.parsed.path}:{self.line if line is None else line}: {message}")

    def commune(self, cell: str) -> str | None:
        code = self.wanted.get(cell)
        if code is None and cell.strip() != cell:
            code = self.wanted.get(cell.strip())
        return code

    def figure(self, kind: Kind, commune: str, year: int, category: str) -> Figure:
        assert self.parsed.format is not None
        key = FigureKey(kind, self.parsed.format.source, commune, year, category)
        fig = self.parsed.figures.get(key)
        if fig is None:
            fig = self.parsed.figures[key] = Figure()
        return fig

    def cell(self, row: list[str], index: int, header: list[str],
             convert: Callable[[str], float | None]) -> float | None:
        """Convert one cell; report a bad cell (naming its column) and treat it as masked."""
        try:
            return convert(row[index])
        except CellError as exc:
            self.error(f"column {header[index]!r}: {exc}")
            return None


def _rows(reader: _Reader, stream: Iterator[str], delimiter: str, width: int, needed: int, commune_index: int
          ) -> Iterator[tuple[str, list[str]]]:
    """The rows of the inventory's communes, as (commune, cells); counts every row, checks kept rows' width."""
    rows = csv.reader(stream, delimiter=delimiter)
    parsed = reader.parsed
    wanted = reader.wanted
    count = 0
    try:
        for row in rows:
            count += 1
            try:
                code = wanted.get(row[commune_index])
            except IndexError:
                if not row or row == [""]:
                    continue
                code = None
            if code is None:
                if len(row) > commune_index:
                    code = reader.commune(row[commune_index])
                if code is None:
                    continue
            reader.line = rows.line_num + 1  # the header was read before
            if len(row) < needed:
                reader.error(f"{len(row)} fields where the header has {width}")
                continue
            parsed.kept += 1
            parsed.communes.add(code)
            yield code, row
    except csv.Error as exc:
        reader.error(f"not a valid CSV row: {exc}", rows.line_num + 1)
    finally:
        parsed.rows = count


def _require(reader: _Reader, header: list[str], fmt: Format) -> list[int] | None:
    """Indexes of the format's required columns, or None after reporting every missing one."""
    indexes: list[int] = []
    missing: list[str] = []
    for accepted in fmt.required:
        index = formats.column_index(header, accepted)
        if index is None:
            missing.append(formats.COLUMN_NAMES.get(accepted[0], accepted[0]))
        else:
            indexes.append(index)
    if missing:
        reader.error(f"missing column(s) {', '.join(missing)} for a file of {fmt.title}", 1)
        return None
    return indexes


def _optional(header: list[str], *accepted: str) -> int | None:
    return formats.column_index(header, accepted)


def _mwh(cell: str) -> float | None:
    value = formats.number(cell)
    return None if value is None else value * MWH


# --------------------------------------------------------------------------- one parser per format


def _consumption(reader: _Reader, stream: Iterator[str], delimiter: str, header: list[str]) -> None:
    """Agence ORE (electricity and gas, several operators) and Enedis (electricity per sector)."""
    fmt = reader.parsed.format
    assert fmt is not None
    idx = _require(reader, header, fmt)
    if idx is None:
        return
    is_ore = fmt.source == "agence_ore"
    if is_ore:
        year_i, filiere_i, commune_i, conso_i = idx
        sector_i = _optional(header, "codegrandsecteur")
    else:
        year_i, commune_i, sector_i, conso_i = idx
        filiere_i = None
    points_i = _optional(header, "pdl", "nombredepointsdelivraison", "nbsites")
    needed = max(i for i in (year_i, commune_i, conso_i, sector_i, filiere_i, points_i) if i is not None) + 1
    for commune, row in _rows(reader, stream, delimiter, len(header), needed, commune_i):
        try:
            year = formats.year(row[year_i])
        except CellError as exc:
            reader.error(f"column {header[year_i]!r}: {exc}")
            continue
        kind: Kind = "electricity"
        if filiere_i is not None:
            label = formats.normal(row[filiere_i])
            if label == "gaz":
                kind = "gas"
            elif label != "electricite":
                reader.warn_once(f"filiere:{label}", f"filière {row[filiere_i]!r} is neither electricity nor gas: "
                                 "rows ignored")
                continue
        category = "total"
        if sector_i is not None:
            sector = formats.sector(row[sector_i])
            if sector is None:
                reader.warn_once(f"sector:{row[sector_i]}", f"sector code {row[sector_i]!r} not known: "
                                 "counted as sector 'unknown'")
                sector = "unknown"
            category = sector
        fig = reader.figure(kind, commune, year, category)
        fig.add("energy_wh", reader.cell(row, conso_i, header, _mwh))
        if points_i is not None:
            fig.add("delivery_points", reader.cell(row, points_i, header, formats.number))


def _unit_factor(normal_header: str) -> float:
    return KWH if normal_header.endswith("kwh") else MWH


def _production(reader: _Reader, stream: Iterator[str], delimiter: str, header: list[str]) -> None:
    """Enedis production per energy source: one column per source, rows per voltage level summed."""
    fmt = reader.parsed.format
    assert fmt is not None
    idx = _require(reader, header, fmt)
    if idx is None:
        return
    year_i, commune_i = idx
    energy_cols: list[tuple[int, str, float]] = []
    site_cols: list[tuple[int, str]] = []
    for i, name in enumerate(header):
        n = formats.normal(name)
        if n.startswith(formats.PRODUCTION_PREFIX):
            filiere = formats.production_filiere(n.removeprefix(formats.PRODUCTION_PREFIX))
            if filiere is None:
                reader.warn_once(f"col:{i}", f"column {name!r}: energy source not recognised, ignored", 1)
            else:
                energy_cols.append((i, filiere, _unit_factor(n)))
        elif n.startswith("nbsites"):
            filiere = formats.production_filiere(n.removeprefix("nbsites"))
            if filiere is not None:
                site_cols.append((i, filiere))
    needed = max([year_i, commune_i, *(i for i, _, _ in energy_cols), *(i for i, _ in site_cols)]) + 1
    for commune, row in _rows(reader, stream, delimiter, len(header), needed, commune_i):
        try:
            year = formats.year(row[year_i])
        except CellError as exc:
            reader.error(f"column {header[year_i]!r}: {exc}")
            continue
        for i, source, factor in energy_cols:
            value = reader.cell(row, i, header, formats.number)
            reader.figure("production", commune, year, source).add(
                "energy_wh", None if value is None else value * factor)
        for i, source in site_cols:
            reader.figure("production", commune, year, source).add(
                "sites", reader.cell(row, i, header, formats.number))


def _register(reader: _Reader, stream: Iterator[str], delimiter: str, header: list[str], year: int | None) -> None:
    """ODRÉ register: installed power and annual energies per commune and energy source.

    Only ``En service`` rows count, and rows with an empty ``regime`` (aggregated small
    installations often have none). Storage and non-renewable thermal are left out.
    """
    fmt = reader.parsed.format
    assert fmt is not None
    idx = _require(reader, header, fmt)
    if idx is None:
        return
    commune_i, filiere_i, power_i = idx
    regime_i = _optional(header, "regime")
    count_i = _optional(header, "nbinstallations")
    produced_i = _optional(header, "energieannuelleglissanteproduite", "energieannuelleproduite")
    injected_i = _optional(header, "energieannuelleglissanteinjectee", "energieannuelleinjectee")
    date_cols = [i for i in (_optional(header, "datemiseenservice"), _optional(header, "dateraccordement"))
                 if i is not None]
    optional = [i for i in (regime_i, count_i, produced_i, injected_i, *date_cols) if i is not None]
    needed = max([commune_i, filiere_i, power_i, *optional]) + 1

    newest = 0
    by_commune: dict[tuple[str, str], Figure] = {}
    for commune, row in _rows(reader, stream, delimiter, len(header), needed, commune_i):
        if regime_i is not None:
            regime = formats.normal(row[regime_i])
            if regime and regime != "enservice":
                continue
        label = row[filiere_i]
        placed = formats.register_filiere(label)
        if placed in (formats.STORAGE, formats.NOT_RENEWABLE):
            continue
        if placed == "":
            reader.warn_once(f"filiere:{label}", f"filière {label!r} not recognised: rows ignored")
            continue
        fig = by_commune.get((commune, placed))
        if fig is None:
            fig = by_commune[(commune, placed)] = Figure()
        power = reader.cell(row, power_i, header, formats.number)
        fig.add("power_w", None if power is None else power * KW)
        count = reader.cell(row, count_i, header, formats.number) if count_i is not None else None
        fig.add("installations", 1.0 if count is None else count)
        if produced_i is not None:
            value = reader.cell(row, produced_i, header, formats.number)
            fig.add("produced_wh", None if value is None else value * KWH)
        if injected_i is not None:
            value = reader.cell(row, injected_i, header, formats.number)
            fig.add("injected_wh", None if value is None else value * KWH)
        for i in date_cols:
            found = YEAR_RE.search(row[i])
            if found:
                newest = max(newest, int(found.group(0)))

    parsed = reader.parsed
    if year is not None:
        parsed.year_from = "--year"
    elif (snapshot := SNAPSHOT_RE.search(Path(parsed.path).name)) is not None:
        year = 2000 + int(snapshot.group(1))
        parsed.year_from = "the snapshot's name (…-3112YY)"
    elif newest:
        year = newest
        parsed.year_from = "the newest commissioning date in the file"
    elif by_commune:
        reader.error("the register has no year: name it …-3112YY, or give --year", 1)
        return
    for (commune, filiere), fig in by_commune.items():
        parsed.figures[FigureKey("installations", "odre_register", commune, year or 0, filiere)] = fig


# --------------------------------------------------------------------------- entry point


class UnreadableLine(Exception):
    """Internal: a line that is not UTF-8 text, or too long to be a row."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(line, problem)
        self.line = line
        self.problem = problem


class NotAFile(Exception):
    """Internal: a path that is neither a regular file nor a pipe with a writer."""


def _open(path: Path) -> BinaryIO:
    """Open a regular file or a pipe; refuse a directory or a device, and never block on a pipe
    that nobody writes to (``open`` of a FIFO with no writer waits for ever)."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return path.open("rb")
    if not stat.S_ISFIFO(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a device or socket"
        raise NotAFile(f"not a regular file ({what})")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    ready, _, _ = select.select([fd], [], [], FIFO_WAIT_S)
    if not ready:
        os.close(fd)
        raise NotAFile(f"a pipe with no writer: nothing to read after {FIFO_WAIT_S:.0f} s")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _text_lines(stream: BinaryIO, digest: hashlib._Hash) -> Iterator[str]:
    """The file's lines as text, decoded one by one so a bad byte is reported on its own line.

    Every byte read goes into *digest*: the file is read once, so a pipe works and a national
    file is not read twice.
    """
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        digest.update(raw)
        if len(raw) > MAX_LINE_BYTES:
            raise UnreadableLine(number, f"a line longer than {MAX_LINE_BYTES // 2**20} MiB: "
                                 "not a CSV file of these formats")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableLine(number, "not UTF-8 text (save the file as UTF-8)") from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def parse_file(path: str | Path, communes: Collection[str], year: int | None = None) -> ParsedFile:
    """Read one open-data file, keeping *communes* (INSEE codes); never raises for a bad file.

    *year* sets the ODRÉ register's year (it has no year column).
    """
    p = Path(path)
    parsed = ParsedFile(str(path), None)
    reader = _Reader(parsed, communes)
    digest = hashlib.sha256()
    try:
        with _open(p) as binary:
            lines = _text_lines(binary, digest)
            first = next(lines, "")
            if not first:
                reader.error("empty file: no header", 1)
                return parsed
            delimiter = _delimiter(first)
            header = next(csv.reader([first], delimiter=delimiter), [])
            fmt = formats.recognise(header)
            if fmt is None:
                shown = ", ".join(h.strip() for h in header[:6]) + (", …" if len(header) > 6 else "")
                reader.error(f"unknown format: the header ({shown}) is none of Agence ORE consumption, "
                             "Enedis consumption per sector, Enedis production per source, ODRÉ register", 1)
                return parsed
            parsed.format = fmt
            if fmt.source == "odre_register":
                _register(reader, lines, delimiter, header, year)
            elif fmt.source == "enedis_production":
                _production(reader, lines, delimiter, header)
            else:
                _consumption(reader, lines, delimiter, header)
            for _ in lines:  # the edition is the hash of the whole file
                pass
            parsed.sha256 = digest.hexdigest()
    except TooManyErrors:
        pass
    except UnreadableLine as exc:
        with contextlib.suppress(TooManyErrors):
            reader.error(exc.problem, exc.line)
    except NotAFile as exc:
        reader.error(str(exc), 0)
    except OSError as exc:
        reader.error(f"cannot read: {exc.strerror or exc}", 0)
    if parsed.format is not None and parsed.ok:
        for code in sorted(set(communes) - parsed.communes):
            parsed.warnings.append(f"{parsed.path}: commune {code} of the inventory is absent from this file")
    return parsed
