"""Yearly open-data figures in InfluxDB: write an import, know what is current, read it back.

Layout (``agent.schema``: ``territory_yearly``, ``territory_import``):

* one point per figure, at 1 January of its year (local midnight in the
  territory's timezone), tagged commune, source, kind, category and
  **edition** (the first 12 hex digits of the file's SHA-256);
* one ``territory_import`` point per *block* — commune, year, source and kind
  — naming the edition that is current for it, and its file.

Why the edition is a tag: InfluxDB merges the fields of two writes of one
point, so a newer file that masks a figure the old one gave, or drops a
sector, would leave the old value behind. With the edition in the series
key, a newer file writes new series and the old edition's points get
``current = 0``; nothing is ever deleted (``DELETE`` is not portable to
InfluxDB 2.x and 3), and a query keeps ``"current" = 1`` rows.

Re-importing the same file finds its edition already current and writes
nothing. The block's ``territory_import`` point is written last, so an import
cut short is simply done again by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from agent.central.influxql import Series, quote_ident, quote_string, time_ms
from agent.central.points import Point, make_point
from agent.central.rollup import QueryClient, Writer, day_start_ms
from agent.central.territory.figures import Figure, FigureKey, Kind, Source
from agent.central.territory.parse import ParsedFile
from agent.schema import TERRITORY_IMPORT, TERRITORY_YEARLY

YEARLY = TERRITORY_YEARLY.name
IMPORTS = TERRITORY_IMPORT.name
WRITE_CHUNK = 5000


def edition_of(sha256: str) -> str:
    return sha256[:12]


def year_start_ms(year: int, tz: str) -> int:
    """Timestamp of a yearly figure: 1 January, local midnight."""
    return day_start_ms(date(year, 1, 1), ZoneInfo(tz))


def year_of(ts_ms: int, tz: str) -> int:
    return datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(tz)).year


@dataclass(frozen=True, order=True)
class Block:
    """The figures one file gives for one commune, year, source and kind: replaced as a whole."""

    source: Source
    kind: Kind
    commune: str
    year: int

    @staticmethod
    def of(key: FigureKey) -> Block:
        return Block(key.source, key.kind, key.commune, key.year)


@dataclass(frozen=True)
class ImportRecord:
    """The ``territory_import`` point of a block: which edition is current."""

    edition: str
    file: str
    imported_at: str
    year_from: str = ""


@dataclass(frozen=True)
class BlockOutcome:
    """What an import did to one block: ``new``, ``unchanged`` (same file again) or ``replaced``."""

    block: Block
    file: str
    status: Literal["new", "unchanged", "replaced"]
    previous: ImportRecord | None = None
    masked: tuple[str, ...] = ()
    """``category.amount`` of the figures with masked cells (unknown values), e.g. ``industry.energy_wh``."""


@dataclass
class ImportPlan:
    """The points an import will write, in order, and what it does to each block."""

    figures: list[Point] = field(default_factory=list)
    retire: list[tuple[Block, str]] = field(default_factory=list)
    """Blocks whose previous edition (the one in InfluxDB) must get ``current = 0``."""
    records: list[Point] = field(default_factory=list)
    outcomes: list[BlockOutcome] = field(default_factory=list)


# --------------------------------------------------------------------------- points


def figure_point(key: FigureKey, figure: Figure, edition: str, tz: str) -> Point:
    """One figure as a point: each known amount, every amount's masked count, ``current = 1``."""
    fields: dict[str, float | int | str] = {"current": 1}
    for name, amount in figure.amounts.items():
        total = amount.total
        if total is not None:
            fields[name] = total
        fields[f"{name}_masked"] = amount.masked
    tags = {"commune": key.commune, "source": key.source, "kind": key.kind, "category": key.category,
            "edition": edition}
    return make_point(YEARLY, tags, fields, year_start_ms(key.year, tz))


def record_point(block: Block, record: ImportRecord, tz: str) -> Point:
    fields: dict[str, float | int | str] = {"edition": record.edition, "file": record.file,
                                            "imported_at": record.imported_at, "year_from": record.year_from}
    tags = {"commune": block.commune, "source": block.source, "kind": block.kind}
    return make_point(IMPORTS, tags, fields, year_start_ms(block.year, tz))


# --------------------------------------------------------------------------- reading back


def read_records(client: QueryClient, tz: str) -> dict[Block, ImportRecord]:
    """Every block's current edition, from ``territory_import``."""
    statement = (f'SELECT "edition", "file", "imported_at", "year_from" FROM {quote_ident(IMPORTS)} '
                 'GROUP BY "commune", "source", "kind"')
    out: dict[Block, ImportRecord] = {}
    for series in client.query_many([statement])[0]:
        tags = series.tags
        for row in series.rows():
            if not isinstance(row.get("time"), int) or not isinstance(row.get("edition"), str):
                continue
            # The tags were written by this module from a Source and a Kind; InfluxDB gives them back as str.
            block = Block(tags.get("source", ""), tags.get("kind", ""), tags.get("commune", ""),  # type: ignore[arg-type]
                          year_of(row["time"], tz))
            out[block] = ImportRecord(row["edition"], str(row.get("file") or ""), str(row.get("imported_at") or ""),
                                      str(row.get("year_from") or ""))
    return out


@dataclass(frozen=True)
class StoredFigure:
    """A current figure read back: its key and its amounts (value or None, masked count)."""

    key: FigureKey
    values: dict[str, float | None]
    masked: dict[str, int]

    def value(self, name: str) -> float | None:
        return self.values.get(name)

    def complete(self, name: str) -> bool:
        return self.masked.get(name, 0) == 0


AMOUNT_NAMES: tuple[str, ...] = tuple(f.name for f in TERRITORY_YEARLY.fields
                                      if not f.name.endswith("_masked") and f.name != "current")


def read_figures(client: QueryClient, tz: str, communes: Iterable[str] | None = None) -> list[StoredFigure]:
    """The current figures (each block's current edition only), optionally of some communes."""
    records = read_records(client, tz)
    where = ""
    wanted = sorted(set(communes)) if communes is not None else None
    if wanted is not None:
        if not wanted:
            return []
        where = "WHERE (" + " OR ".join(f'"commune" = {quote_string(c)}' for c in wanted) + ")"
    statement = f"SELECT * FROM {quote_ident(YEARLY)} {where} GROUP BY *"
    out: list[StoredFigure] = []
    for series in client.query_many([statement])[0]:
        out.extend(_stored(series, records, tz))
    return sorted(out, key=lambda f: f.key)


def _stored(series: Series, records: dict[Block, ImportRecord], tz: str) -> list[StoredFigure]:
    tags = series.tags
    out = []
    for row in series.rows():
        ts = row.get("time")
        if not isinstance(ts, int):
            continue
        # Tags written by this module from a Kind and a Source; InfluxDB gives them back as str.
        key = FigureKey(tags.get("kind", ""), tags.get("source", ""),  # type: ignore[arg-type]
                        tags.get("commune", ""), year_of(ts, tz), tags.get("category", ""))
        record = records.get(Block.of(key))
        if record is None or record.edition != tags.get("edition"):
            continue  # an older edition (or one whose import did not finish)
        values: dict[str, float | None] = {}
        masked: dict[str, int] = {}
        for name in AMOUNT_NAMES:
            count = row.get(f"{name}_masked")
            value = row.get(name)
            if count is None and value is None:
                continue
            values[name] = float(value) if isinstance(value, (int, float)) else None
            masked[name] = int(count) if isinstance(count, (int, float)) else 0
        out.append(StoredFigure(key, values, masked))
    return out


# --------------------------------------------------------------------------- import


def plan_import(files: Sequence[ParsedFile], records: dict[Block, ImportRecord], tz: str,
                imported_at: str) -> ImportPlan:
    """What to write for *files* (all parsed without error), given the blocks' current editions.

    Within one run a later file replaces an earlier one for the same block, as it would in two runs.
    """
    chosen: dict[Block, tuple[ParsedFile, list[tuple[FigureKey, Figure]]]] = {}
    current = dict(records)
    outcomes: list[BlockOutcome] = []
    for parsed in files:
        blocks: dict[Block, list[tuple[FigureKey, Figure]]] = {}
        for key, figure in sorted(parsed.figures.items()):
            blocks.setdefault(Block.of(key), []).append((key, figure))
        edition = edition_of(parsed.sha256)
        name = Path(parsed.path).name
        for block, items in blocks.items():
            previous = current.get(block)
            masked = tuple(f"{key.category}.{amount}" for key, figure in items
                           for amount, value in sorted(figure.amounts.items()) if value.masked)
            if previous is not None and previous.edition == edition:
                outcomes.append(BlockOutcome(block, name, "unchanged", previous, masked))
                continue
            outcomes.append(BlockOutcome(block, name, "new" if previous is None else "replaced", previous, masked))
            chosen[block] = (parsed, items)
            current[block] = ImportRecord(edition, name, imported_at, parsed.year_from)

    plan = ImportPlan(outcomes=outcomes)
    for block, (parsed, items) in sorted(chosen.items()):
        edition = edition_of(parsed.sha256)
        plan.figures.extend(figure_point(key, figure, edition, tz) for key, figure in items)
        stored = records.get(block)
        if stored is not None and stored.edition != edition:
            plan.retire.append((block, stored.edition))
        record = ImportRecord(edition, Path(parsed.path).name, imported_at, parsed.year_from)
        plan.records.append(record_point(block, record, tz))
    return plan


def retire_points(client: QueryClient, retire: Sequence[tuple[Block, str]], tz: str) -> list[Point]:
    """``current = 0`` for every point of the given blocks' old editions."""
    if not retire:
        return []
    statements = []
    for block, edition in retire:
        ts = year_start_ms(block.year, tz)
        statements.append(
            f'SELECT "current" FROM {quote_ident(YEARLY)} WHERE "commune" = {quote_string(block.commune)} '
            f'AND "source" = {quote_string(block.source)} AND "kind" = {quote_string(block.kind)} '
            f'AND "edition" = {quote_string(edition)} AND time = {time_ms(ts)} GROUP BY "category"')
    points = []
    for (block, edition), result in zip(retire, client.query_many(statements), strict=True):
        for series in result:
            tags = {"commune": block.commune, "source": block.source, "kind": block.kind,
                    "category": series.tags.get("category", ""), "edition": edition}
            points.append(make_point(YEARLY, tags, {"current": 0}, year_start_ms(block.year, tz)))
    return points


def write_plan(client: QueryClient, write: Writer, plan: ImportPlan, tz: str) -> int:
    """Write the figures, retire the old editions, then the import records (last: see module docstring)."""
    points = [*plan.figures, *retire_points(client, plan.retire, tz), *plan.records]
    for k in range(0, len(points), WRITE_CHUNK):
        rejected = write(points[k : k + WRITE_CHUNK])
        if isinstance(rejected, list) and rejected:
            raise ValueError(f"InfluxDB refused {len(rejected)} point(s), e.g. {rejected[0]}")
    return len(points)
