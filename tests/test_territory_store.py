"""Yearly open-data figures in a real InfluxDB 1.6.7: import, re-import, a newer edition of the same year."""

from __future__ import annotations

from pathlib import Path

from agent.central.influxql import InfluxQLClient
from agent.central.rollup import line_writer
from agent.central.territory.parse import parse_file
from agent.central.territory.store import plan_import, read_figures, read_records, write_plan
from tests.fixtures.influx import InfluxServer

TZ = "Europe/Paris"
DB = "terril"
HEADER = "annee;code_commune;nom_commune;code_grand_secteur;conso_totale_mwh;nb_sites\n"


def import_files(client: InfluxQLClient, *paths: Path) -> list[tuple[str, str]]:
    parsed = [parse_file(p, ["62528"]) for p in paths]
    assert all(p.ok for p in parsed), [p.errors for p in parsed]
    plan = plan_import(parsed, read_records(client, TZ), TZ, "2026-11-30T08:00:00+00:00")
    write_plan(client, line_writer(client), plan, TZ)
    return [(o.file, o.status) for o in plan.outcomes]


def count_points(influx: InfluxServer) -> int:
    rows = influx.rows('SELECT count("current") FROM "territory_yearly"', DB)
    return int(rows[0]["count"]) if rows else 0


def test_reimport_changes_nothing_and_a_newer_edition_replaces_the_year(influx: InfluxServer, tmp_path: Path) -> None:
    influx.create_database(DB)
    client = InfluxQLClient(influx.url, DB)
    first = tmp_path / "conso-2022.csv"
    first.write_text(HEADER + "2022;62528;Loos;RESIDENTIEL;12000;3100\n2022;62528;Loos;TERTIAIRE;4000;121\n"
                     "2022;62528;Loos;INDUSTRIE;800;4\n2021;62528;Loos;RESIDENTIEL;11800;3050\n"
                     "2022;62498;Lens;RESIDENTIEL;99999;1\n", encoding="utf-8")
    assert import_files(client, first) == [("conso-2022.csv", "new"), ("conso-2022.csv", "new")]
    assert count_points(influx) == 4

    # The same file again, under another name: nothing written.
    again = tmp_path / "download(1).csv"
    again.write_bytes(first.read_bytes())
    lines_before = influx.rows('SELECT * FROM "territory_import"', DB)
    assert import_files(client, again) == [("download(1).csv", "unchanged"), ("download(1).csv", "unchanged")]
    assert count_points(influx) == 4
    assert influx.rows('SELECT * FROM "territory_import"', DB) == lines_before

    # A corrected 2022: residential revised, industry now masked, tertiary gone. 2021 untouched.
    newer = tmp_path / "conso-2022-v2.csv"
    newer.write_text(HEADER + "2022;62528;Loos;RESIDENTIEL;12100;3100\n2022;62528;Loos;INDUSTRIE;secret;2\n",
                     encoding="utf-8")
    assert import_files(client, newer) == [("conso-2022-v2.csv", "replaced")]
    figures = {(f.key.year, f.key.category): f for f in read_figures(client, TZ, ["62528"])}
    assert set(figures) == {(2021, "residential"), (2022, "residential"), (2022, "industry")}
    assert figures[(2022, "residential")].value("energy_wh") == 12_100e6
    assert figures[(2022, "industry")].value("energy_wh") is None  # masked: unknown, not the old 800 MWh
    assert not figures[(2022, "industry")].complete("energy_wh")
    assert figures[(2021, "residential")].value("energy_wh") == 11_800e6
    # The old edition's points are kept, marked not current (what dashboards filter on).
    current = influx.rows('SELECT "current", "energy_wh" FROM "territory_yearly" WHERE "kind" = \'electricity\' '
                          'GROUP BY "edition", "category"', DB)
    old = [r for r in current if r["current"] == 0]
    assert {r["category"] for r in old} == {"residential", "tertiary", "industry"}
    assert sum(r["energy_wh"] or 0 for r in current if r["current"] == 1) == 12_100e6 + 11_800e6

    # Going back to the first file is a replacement too, and restores its figures exactly.
    assert import_files(client, first) == [("conso-2022.csv", "unchanged"), ("conso-2022.csv", "replaced")]
    figures = {(f.key.year, f.key.category): f for f in read_figures(client, TZ, ["62528"])}
    assert figures[(2022, "industry")].value("energy_wh") == 800e6
    assert figures[(2022, "tertiary")].value("energy_wh") == 4000e6


def test_two_files_for_one_block_in_one_run_the_later_wins(influx: InfluxServer, tmp_path: Path) -> None:
    influx.create_database(DB)
    client = InfluxQLClient(influx.url, DB)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(HEADER + "2022;62528;Loos;RESIDENTIEL;1;1\n", encoding="utf-8")
    b.write_text(HEADER + "2022;62528;Loos;RESIDENTIEL;2;1\n", encoding="utf-8")
    assert import_files(client, a, b) == [("a.csv", "new"), ("b.csv", "replaced")]
    [figure] = read_figures(client, TZ)
    assert figure.value("energy_wh") == 2e6
    assert count_points(influx) == 1  # a.csv's figures were never written
