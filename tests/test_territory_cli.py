"""``terril territory import|report`` and the per-commune rollup, end to end on a real InfluxDB 1.6.7.

Three communes: Loos-en-Gohelle (Agence ORE and Enedis consumption — ORE wins —, Enedis production,
a monitored roof), Liévin (Enedis consumption with a masked sector, production from the ODRÉ
register's injected energy, a monitored roof), Lens (no data at all). Every expected number is
computed by hand below from the files' cells.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import cli
from agent.central.config import load_ingest_config
from agent.central.points import make_point
from agent.central.rollup import Rollup
from tests.fixtures.influx import InfluxServer
from tests.ingest_support import DB, ingest_config_dict, write_config

TZ = "Europe/Paris"
PARIS = ZoneInfo(TZ)
CONSTANT_WH = 50e9

SITES_YAML = """
territory:
  name: Agglo test
  timezone: Europe/Paris
  communes:
    - {insee: "62528", name: Loos-en-Gohelle}
    - {insee: "62510", name: Liévin}
    - {insee: "62498", name: Lens}
  target: {year: 2030, share: 1.0}
  baseline_year: 2022
sites:
  - slug: mairie
    name: Hôtel de ville
    owner: commune
    commune: "62528"
    arrays:
      - {name: sud, inverter: ond-1, peak_power_w: 36000, tilt: 30, azimuth: 180}
  - slug: ecole
    name: École
    owner: commune
    commune: "62510"
    arrays:
      - {name: sud, inverter: ond-1, peak_power_w: 12000, tilt: 30, azimuth: 180}
"""

ORE = """operateur;annee;filiere;code_grand_secteur;conso;pdl;code_commune;libelle_commune
Enedis;2022;Electricité;RESIDENTIEL;12000;3100;62528;Loos-en-Gohelle
Enedis;2022;Electricité;TERTIAIRE;3000;100;62528;Loos-en-Gohelle
SICAE;2022;Electricité;TERTIAIRE;1000;20;62528;Loos-en-Gohelle
GRDF;2022;Gaz;RESIDENTIEL;30000;2500;62528;Loos-en-Gohelle
Enedis;2022;Electricité;RESIDENTIEL;99999;1;59350;Lille
"""
ENEDIS_CONSO = """Année;Code Commune;Nom Commune;CODE GRAND SECTEUR;Conso totale (MWh);Conso moyenne (MWh);Nb sites
2022;62528;Loos-en-Gohelle;RESIDENTIEL;9000;3;3000
2022;62510;Liévin;RESIDENTIEL;20000,5;3;7000
2022;62510;Liévin;INDUSTRIE;secret;secret;2
"""
ENEDIS_PROD = ("annee;nom_commune;code_commune;domaine_de_tension;energie_produite_annuelle_photovoltaique_enedis_mwh;"
               "energie_produite_annuelle_eolien_enedis_mwh;energie_produite_annuelle_cogeneration_enedis_mwh\n") + """\
2022;Loos-en-Gohelle;62528;BT;2000;0;0
2022;Loos-en-Gohelle;62528;HTA;1000;500;4000
"""
ODRE = ("nomInstallation;codeEICResourceObject;codeINSEECommune;commune;filiere;regime;puisMaxInstallee;"
        "nbInstallations;energieAnnuelleGlissanteInjectee;energieAnnuelleGlissanteProduite\n") + """\
Confidentiel;;62510;Liévin;Solaire;;1000;150;1000000;
Parc;17W1;62510;Liévin;Eolien;En service;2000;1;3000000;3100000
Batterie;17W2;62510;Liévin;Stockage non hydraulique;En service;500;1;10;10
"""

# Hand truths (Wh)
LOOS_CONSUMPTION = (12000 + 3000 + 1000) * 1e6       # ORE, both operators; Enedis's 9000 MWh is not used
LOOS_RENEWABLE = (2000 + 1000 + 500) * 1e6            # solar + wind; cogeneration is not renewable
LIEVIN_CONSUMPTION = 20000.5e6                         # industry masked: incomplete
LIEVIN_RENEWABLE = (1000 + 3000) * 1e3 * 1e3           # register, injected (produced unknown for the small ones)
MAIRIE_DAYS = {date(2022, 6, 1): 150e3, date(2022, 6, 2): 170.5e3}
ECOLE_DAYS = {date(2022, 6, 1): 40e3}


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {"ore": ("conso-elec-gaz-annuelle-par-naf-agregee-commune.csv", ORE),
             "conso": ("consommation-electrique-par-secteur-dactivite-commune.csv", ENEDIS_CONSO),
             "prod": ("production-electrique-par-filiere-a-la-maille-commune.csv", ENEDIS_PROD),
             "odre": ("registre-national-installation-production-stockage-electricite-agrege-311222.csv", ODRE)}
    out = {}
    for key, (name, text) in files.items():
        path = tmp_path / "data" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out[key] = path
    return out


@pytest.fixture
def setup(influx: InfluxServer, tmp_path: Path) -> dict[str, Any]:
    influx.create_database(DB)
    (tmp_path / "sites.yaml").write_text(SITES_YAML, encoding="utf-8")
    config = write_config(tmp_path / "ingest.yaml", ingest_config_dict(
        1883, influx.url, inventory="sites.yaml", rollup={"territory_consumption_wh_per_year": CONSTANT_WH}))
    lines = []
    for site, days in (("mairie", MAIRIE_DAYS), ("ecole", ECOLE_DAYS)):
        for d, wh in days.items():
            ts = int(datetime(d.year, d.month, d.day, tzinfo=PARIS).timestamp() * 1000)
            lines.append(make_point("energy_daily", {"site": site}, {"production_wh": wh}, ts).to_line())
    assert influx.write_lines(DB, lines)[0] == 204
    return {"config": config, "files": _files(tmp_path)}


def terril(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def report(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    status, out, err = terril(capsys, "territory", "report", "-c", str(config), "--json")
    assert status == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_import_and_report_numbers_equal_hand_truths(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                     influx: InfluxServer) -> None:
    config, files = setup["config"], setup["files"]
    status, out, err = terril(capsys, "territory", "import", "-c", str(config), *map(str, files.values()))
    assert status == 0, err
    assert "62528 2022 electricity (agence_ore): imported from" in out
    assert ("62510 2022 electricity (enedis_consumption): imported from consommation-electrique-par-secteur-"
            "dactivite-commune.csv; unknown (masked in the file, not 0): industry.energy_wh") in out
    assert "commune 62498 of the inventory is absent" in err  # a warning, not an error

    doc = report(capsys, config)
    communes = {c["insee"]: c for c in doc["communes"]}
    assert [c["insee"] for c in doc["communes"]] == ["62528", "62510", "62498"]
    assert doc["years"] == [2022]

    [loos] = communes["62528"]["years"]
    assert loos["consumption_wh"] == {"total": LOOS_CONSUMPTION, "complete": True, "source": "agence_ore",
                                      "by_sector": {"residential": 12000e6, "tertiary": 4000e6}}
    assert loos["gas_consumption_wh"]["total"] == 30000e6
    assert loos["production_wh"]["total"] == LOOS_RENEWABLE
    assert loos["production_wh"]["by_filiere"] == {"solar": 3000e6, "wind": 500e6, "other": 4000e6}
    assert loos["production_wh"]["source"] == "enedis_production"
    assert loos["production_wh"]["figure"] == "measured"
    assert loos["installed_power_w"]["total"] is None  # the register has no row for Loos
    assert loos["monitored_production_wh"] == pytest.approx(sum(MAIRIE_DAYS.values()))
    assert loos["renewable_share"] == pytest.approx(LOOS_RENEWABLE / LOOS_CONSUMPTION)

    [lievin] = communes["62510"]["years"]
    assert lievin["consumption_wh"]["total"] == pytest.approx(LIEVIN_CONSUMPTION)
    assert lievin["consumption_wh"]["complete"] is False
    assert lievin["consumption_wh"]["by_sector"] == {"residential": pytest.approx(20000.5e6), "industry": None}
    assert lievin["consumption_wh"]["source"] == "enedis_consumption"
    assert lievin["production_wh"]["figure"] == "injected"
    assert lievin["production_wh"]["total"] == pytest.approx(LIEVIN_RENEWABLE)
    assert lievin["installed_power_w"]["by_filiere"] == {"solar": 1e6, "wind": 2e6}  # storage left out
    assert lievin["gas_consumption_wh"]["total"] is None

    [lens] = communes["62498"]["years"]  # listed with no figures, never zeros
    assert lens["consumption_wh"]["total"] is None and lens["production_wh"]["total"] is None
    assert lens["monitored_production_wh"] is None and lens["renewable_share"] is None

    [total] = doc["total"]["years"]
    assert total["consumption_wh"]["total"] == pytest.approx(LOOS_CONSUMPTION + LIEVIN_CONSUMPTION)
    assert total["consumption_wh"]["complete"] is False
    assert total["production_wh"]["total"] == pytest.approx(LOOS_RENEWABLE + LIEVIN_RENEWABLE)
    assert total["renewable_share"] == pytest.approx(
        (LOOS_RENEWABLE + LIEVIN_RENEWABLE) / (LOOS_CONSUMPTION + LIEVIN_CONSUMPTION))

    # The table says the same thing for a person.
    status, table, _ = terril(capsys, "territory", "report", "-c", str(config))
    assert status == 0
    assert "Lens (62498)" in table and "16 000.0" in table and "20 000.5*" in table and "0.3" in table

    # territory_balance, what the dashboards read: the imported year with its share.
    rows = influx.rows('SELECT * FROM "territory_balance" WHERE "commune" = \'_territory\'', DB)
    first = rows[0]
    assert first["consumption_wh"] == pytest.approx(LOOS_CONSUMPTION + LIEVIN_CONSUMPTION)
    assert [r["target_share"] for r in rows][-1] == 1.0 and len(rows) == 2030 - 2022 + 1

    # The same files again: nothing changes.
    before = influx.rows('SELECT * FROM "territory_yearly"', DB)
    status, out, err = terril(capsys, "territory", "import", "-c", str(config), *map(str, files.values()))
    assert status == 0, err
    assert "unchanged" in out and "imported from" not in out and "replaces" not in out
    assert influx.rows('SELECT * FROM "territory_yearly"', DB) == before
    assert report(capsys, config) == doc


@pytest.mark.parametrize(("content", "expected"), [
    ("date;temperature\n2023-01-01;4\n", ":1: unknown format"),
    ("annee;code_commune;code_grand_secteur;nb_sites\n2022;62528;RESIDENTIEL;1\n",
     ":1: missing column(s) conso_totale_mwh"),
    ("annee;code_commune;code_grand_secteur;conso_totale_mwh\n2022;62528;RESIDENTIEL;12\n"
     "2022;62528;TERTIAIRE;douze\n", ":3: column 'conso_totale_mwh': 'douze' is not a number"),
])
def test_a_bad_file_imports_nothing_and_names_its_line(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                       influx: InfluxServer, tmp_path: Path, content: str,
                                                       expected: str) -> None:
    config, files = setup["config"], setup["files"]
    assert terril(capsys, "territory", "import", "-c", str(config), str(files["ore"]))[0] == 0
    before = influx.rows('SELECT * FROM "territory_yearly"', DB)
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    # a good file on the same command line is not imported either
    status, _, err = terril(capsys, "territory", "import", "-c", str(config), str(files["prod"]), str(bad))
    assert status == 2
    assert f"{bad}{expected}" in err
    assert "nothing imported" in err
    assert influx.rows('SELECT * FROM "territory_yearly"', DB) == before


def test_a_newer_file_for_the_same_year_replaces_and_says_so(setup: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    config, files = setup["config"], setup["files"]
    assert terril(capsys, "territory", "import", "-c", str(config), str(files["ore"]))[0] == 0
    newer = tmp_path / "ore-v2.csv"
    newer.write_text(ORE.replace("12000", "12500"), encoding="utf-8")
    status, out, _ = terril(capsys, "territory", "import", "-c", str(config), str(newer))
    assert status == 0
    assert f"62528 2022 electricity (agence_ore): ore-v2.csv replaces the figures of {files['ore'].name}" in out
    [loos] = next(c for c in report(capsys, config)["communes"] if c["insee"] == "62528")["years"]
    assert loos["consumption_wh"]["total"] == LOOS_CONSUMPTION + 500e6


def test_rollup_writes_commune_rows_with_the_imported_reference(setup: dict[str, Any],
                                                                capsys: pytest.CaptureFixture[str],
                                                                influx: InfluxServer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    config_path, files = setup["config"], setup["files"]
    config = load_ingest_config(config_path)
    # Counter readings of the mairie and ecole inverters on 2022-06-01, so the rollup has something to roll up.
    day = date(2022, 6, 1)
    lines = []
    for site, start, end in (("mairie", 1000.0, 151000.0), ("ecole", 500.0, 40500.0)):
        for hour, value in ((6, start), (20, end)):
            ts = int(datetime(2022, 6, 1, hour, tzinfo=PARIS).timestamp() * 1000)
            lines.append(make_point("inverter", {"site": site, "device": "ond-1"}, {"ac_energy_wh": value}, ts)
                         .to_line())
    assert influx.write_lines(DB, lines)[0] == 204

    def rows() -> dict[str, dict[str, Any]]:
        return {r["commune"]: r for r in influx.rows(
            'SELECT * FROM "energy_daily_commune" WHERE time = \'2022-05-31T22:00:00Z\' GROUP BY "commune"', DB)}

    with caplog.at_level(logging.INFO, logger="agent.central.territory.daily"):
        rollup = Rollup.from_config(config)
        assert rollup.extension is not None
        rollup.run_once(now=datetime(2022, 6, 1, 23, tzinfo=PARIS), since=day)
    assert "no year imported: using rollup.territory_consumption_wh_per_year" in caplog.text
    # Before any import: commune rows carry the sites' energy, and no reference.
    before = rows()
    assert before["62528"]["production_wh"] == pytest.approx(150000.0)
    assert before["62510"]["production_wh"] == pytest.approx(40000.0)
    assert before["62528"].get("reference_consumption_wh") is None

    assert terril(capsys, "territory", "import", "-c", str(config_path), *map(str, files.values()))[0] == 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent.central.territory.daily"):
        rollup.run_once(now=datetime(2022, 6, 1, 23, tzinfo=PARIS), since=day)
    after = rows()
    share = 24 / (365.25 * 24)
    assert after["62528"]["reference_consumption_wh"] == pytest.approx(LOOS_CONSUMPTION * share)
    assert after["62510"]["reference_consumption_wh"] == pytest.approx(LIEVIN_CONSUMPTION * share)
    assert "62498" not in after  # Lens: no site, no imported year: no row
    # Lens has no imported year: the territory keeps the constant, and the log says why.
    assert "no year imported for 62498: using rollup.territory_consumption_wh_per_year" in caplog.text
    [territory] = influx.rows('SELECT "reference_consumption_wh" FROM "energy_daily" WHERE "site" = \'_territory\' '
                              "AND time = '2022-05-31T22:00:00Z'", DB)
    assert territory["reference_consumption_wh"] == pytest.approx(CONSTANT_WH * share)

    # Once every commune has an imported year (Lens: 2021 only), the territory's reference is their sum.
    lens = files["conso"].parent / "lens-2021.csv"
    lens.write_text("annee;code_commune;code_grand_secteur;conso_totale_mwh\n2021;62498;RESIDENTIEL;80000\n",
                    encoding="utf-8")
    assert terril(capsys, "territory", "import", "-c", str(config_path), str(lens))[0] == 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent.central.territory.daily"):
        rollup.run_once(now=datetime(2022, 6, 1, 23, tzinfo=PARIS), since=day)
    assert "imported consumption of 3 commune(s) (latest years, oldest 2021)" in caplog.text
    [territory] = influx.rows('SELECT "reference_consumption_wh" FROM "energy_daily" WHERE "site" = \'_territory\' '
                              "AND time = '2022-05-31T22:00:00Z'", DB)
    assert territory["reference_consumption_wh"] == pytest.approx(
        (LOOS_CONSUMPTION + LIEVIN_CONSUMPTION + 80000e6) * share)
    assert rows()["62498"]["reference_consumption_wh"] == pytest.approx(80000e6 * share)


def test_a_failure_of_the_open_data_part_never_stops_the_daily_rows(setup: dict[str, Any], influx: InfluxServer,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A bug or a refused query in the territory part: one warning, the constant, the sites' rows written."""
    from agent.central.territory import daily

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("figures unreadable")

    monkeypatch.setattr(daily, "write_balance", broken)
    ts = int(datetime(2022, 6, 1, 6, tzinfo=PARIS).timestamp() * 1000)
    lines = [make_point("inverter", {"site": "mairie", "device": "ond-1"}, {"ac_energy_wh": v}, ts + k * 3_600_000)
             .to_line() for k, v in enumerate((1000.0, 5000.0))]
    assert influx.write_lines(DB, lines)[0] == 204
    rollup = Rollup.from_config(load_ingest_config(setup["config"]))
    with caplog.at_level(logging.INFO, logger="agent.central.territory.daily"):
        for _ in range(3):
            rollup.run_once(now=datetime(2022, 6, 1, 23, tzinfo=PARIS), since=date(2022, 6, 1))
    assert caplog.text.count("reading the imported open data failed") == 1
    assert "figures unreadable" in caplog.text
    [row] = influx.rows('SELECT "production_wh", "reference_consumption_wh" FROM "energy_daily" '
                        "WHERE \"site\" = '_territory' AND time = '2022-05-31T22:00:00Z'", DB)
    assert row["production_wh"] == pytest.approx(4000.0)
    assert row["reference_consumption_wh"] == pytest.approx(CONSTANT_WH * 24 / (365.25 * 24))
