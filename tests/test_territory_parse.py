"""Golden cases of the open-data parsers: ``tests/cases/territory/<case>/`` holds one CSV file and
``expected.json`` (its figures, warnings and errors), checked by hand against the file.

One case per format and header variant (labels, field names, BOM, decimal comma, masked values,
several operators for one commune, ODRÉ aggregated small installations, a pre-2020 ODRÉ edition)
and one per kind of bad file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.central.territory import formats
from agent.central.territory.parse import parse_file

CASES = Path(__file__).parent / "cases" / "territory"
COMMUNES = ("62528", "62510", "01001")
"""The inventory of the cases: Loos-en-Gohelle, Liévin, and a commune whose code starts with 0."""


def case_file(case: Path) -> Path:
    return next(p for p in sorted(case.iterdir()) if p.suffix == ".csv")


def case_result(case: Path) -> dict[str, Any]:
    """The parse of a case's file, as plain data, with the file's path written as its name only."""
    path = case_file(case)
    year = None
    if (case / "year").exists():
        year = int((case / "year").read_text().strip())
    parsed = parse_file(path, COMMUNES, year=year)

    def local(text: str) -> str:
        return text.replace(str(path), path.name)

    figures = []
    if parsed.ok:
        for key, fig in sorted(parsed.figures.items()):
            row: dict[str, Any] = {"kind": key.kind, "source": key.source, "commune": key.commune,
                                   "year": key.year, "category": key.category}
            for name, amount in sorted(fig.amounts.items()):
                row[name] = {"value": amount.total, "known": amount.known, "masked": amount.masked}
            figures.append(row)
    return {
        "source": parsed.source,
        "rows": parsed.rows,
        "kept": parsed.kept,
        "year_from": parsed.year_from,
        "errors": [local(e) for e in parsed.errors],
        "warnings": [local(w) for w in parsed.warnings],
        "figures": figures,
    }


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_case(case: str) -> None:
    expected = json.loads((CASES / case / "expected.json").read_text(encoding="utf-8"))
    assert case_result(CASES / case) == expected


def test_every_good_case_has_figures_and_every_bad_case_errors() -> None:
    for case in CASES.iterdir():
        expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
        if case.name.startswith("bad_"):
            assert expected["errors"] and not expected["figures"], case.name
        else:
            assert expected["figures"] and not expected["errors"], case.name


@pytest.mark.parametrize(("cell", "value"), [
    ("12", 12.0), ("12,5", 12.5), ("1 234,5", 1234.5), ("1\u202f234,5", 1234.5), ("1.234,5", 1234.5),
    ("0.25", 0.25), ("-3", -3.0), ("", None), ("secret", None), ("S", None), (" s ", None),
])
def test_number_cells(cell: str, value: float | None) -> None:
    assert formats.number(cell) == value


@pytest.mark.parametrize("cell", ["12 MWh", "abc", "1,2,3", "nan", "inf"])
def test_bad_number_cells(cell: str) -> None:
    with pytest.raises(formats.CellError):
        formats.number(cell)


@pytest.mark.parametrize(("label", "expected"), [
    ("Solaire", "solar"), ("Eolien", "wind"), ("Éolien", "wind"), ("Hydraulique", "hydro"),
    ("Bioénergies", "bioenergy"), ("Stockage non hydraulique", "storage"), ("Stockage hydraulique", "storage"),
    ("Thermique non renouvelable", "not renewable"), ("Nucléaire", "not renewable"),
    ("Energies Marines", "other"), ("Géothermie", "other"), ("Inconnue", ""),
])
def test_register_labels(label: str, expected: str) -> None:
    assert formats.register_filiere(label) == expected


def test_same_file_twice_same_figures(tmp_path: Path) -> None:
    """A second download of the same file (another name, CRLF line ends) gives the same figures."""
    original = case_file(CASES / "ore_field_names")
    copy = tmp_path / "copy.csv"
    copy.write_bytes(original.read_bytes().replace(b"\n", b"\r\n"))
    a, b = parse_file(original, COMMUNES), parse_file(copy, COMMUNES)
    assert a.figures == b.figures and a.figures


PARSE_IN_A_BOUNDED_PROCESS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (768 * 2**20, 768 * 2**20))
from agent.central.territory.parse import parse_file
parsed = parse_file(sys.argv[1], ["62528"])
print(json.dumps({"errors": parsed.errors, "rows": parsed.rows}))
"""


def parse_bounded(path: Path) -> dict[str, Any]:
    """Parse *path* in a child process with 768 MB of address space and 60 s: a hang or a file read
    whole into memory fails the test instead of stalling the suite."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PARSE_IN_A_BOUNDED_PROCESS, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_device_is_refused_without_reading_it() -> None:
    """``/dev/zero`` never ends: refused as not a regular file, not hashed and read for ever."""
    result = parse_bounded(Path("/dev/zero"))
    assert len(result["errors"]) == 1 and "not a regular file" in result["errors"][0], result


def test_a_gigabyte_without_a_line_end_is_an_error_not_a_memory_hog(tmp_path: Path) -> None:
    """1 GB of zero bytes (sparse: no disk used) with no line end: one error after the first MiB."""
    huge = tmp_path / "zeros.csv"
    with huge.open("wb") as f:
        f.truncate(2**30)
    result = parse_bounded(huge)
    assert len(result["errors"]) == 1 and ":1: a line longer than 1 MiB" in result["errors"][0], result


def test_a_fifo_without_a_writer_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    result = parse_bounded(fifo)
    assert len(result["errors"]) == 1 and "no writer" in result["errors"][0], result


def test_a_pipe_reads_like_the_file(tmp_path: Path) -> None:
    """``terril territory import <(zcat national.csv.gz)``: a pipe is read once, to the same figures
    and the same edition as the file itself."""
    original = case_file(CASES / "ore_field_names")
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(original.read_bytes()))
    writer.start()
    try:
        piped = parse_file(fifo, COMMUNES)
    finally:
        writer.join(timeout=10)
    direct = parse_file(original, COMMUNES)
    assert piped.ok and piped.figures == direct.figures and piped.figures
    assert piped.sha256 == direct.sha256 == hashlib.sha256(original.read_bytes()).hexdigest()
