"""The town's inventory (sites.yaml): the example loads, every mistake is named with its key path."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from agent.central.config import load_ingest_config
from agent.central.inventory import inventory_for, load_inventory, load_newborns
from agent.demo.town import TOWN, inventory_document, newborn_register_text
from agent.errors import ConfigError

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "config" / "sites.example.yaml"

MINIMAL = {
    "territory": {"name": "Loos-en-Gohelle", "communes": [{"insee": "62528", "name": "Loos-en-Gohelle"}]},
    "sites": [{"slug": "mairie", "name": "Hôtel de ville", "owner": "commune"}],
}


def write(tmp_path: Path, doc: object, name: str = "sites.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, doc: object) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_inventory(write(tmp_path, doc))
    return exc.value.problems


def test_example_loads_with_its_defaults() -> None:
    inv = load_inventory(EXAMPLE)
    assert inv.territory.target is not None and inv.territory.target.year == 2050
    mairie = inv.site("mairie")
    assert mairie is not None and mairie.peak_power_w == 48000 and mairie.public is True
    assert [a.name for a in mairie.arrays_of("onduleur-toiture-sud")] == ["toiture-sud"]
    citizen = inv.site("toit-rue-des-mineurs")
    assert citizen is not None and citizen.public is False, "citizen roofs are anonymous unless they opt in"
    assert citizen.commune == "62528", "a site without commune belongs to the territory's first commune"
    assert inv.array_for("mairie", "onduleur-toiture-nord").string_peak_power_w == (6000, 6000)  # type: ignore[union-attr]
    assert inv.array_for("mairie", "nope") is None and inv.site("nope") is None
    assert inv.sites_in_commune("62528") == inv.sites
    assert inv.newborn_array_panels() == 42
    assert inv.newborn_panels is not None and inv.newborn_panels.register.is_absolute()
    newborns = load_newborns(inv.newborn_panels.register)
    assert [(n.panel, n.first_name) for n in newborns] == [(1, "Léa"), (2, None), (3, "Noah"), (17, None)]
    assert newborns[0].born == date(2024, 1, 12)


def test_every_problem_at_once_with_key_paths(tmp_path: Path) -> None:
    doc = {
        "territory": {"name": "T", "timezone": "Europe/Lille",
                      "communes": [{"insee": "6252", "name": "X"}], "target": {"year": 2050, "share": 0}},
        "sites": [
            {"slug": "Mairie", "name": "H", "owner": "town", "colour": "red"},
            {"slug": "ecole", "name": "E", "owner": "commune",
             "arrays": [{"name": "a", "inverter": "o", "peak_power_w": -1, "tilt": 95, "azimuth": 180}]},
        ],
    }
    problems = problems_of(tmp_path, doc)
    joined = "\n".join(problems)
    for expected in ("territory.timezone:", "territory.communes[0].insee:", "territory.target.share:",
                     "sites[0].slug:", "sites[0].owner:", "sites[0].colour: unknown key",
                     "sites[1].arrays[0].peak_power_w: expected a number > 0",
                     "sites[1].arrays[0].tilt: expected a number 0\N{EN DASH}90",
                     "territory.target.share: expected a number > 0 and ≤ 10"):
        assert expected in joined, f"{expected} missing from:\n{joined}"
    assert "Europe/Lille" in joined


def test_cross_references_are_checked(tmp_path: Path) -> None:
    doc = {
        "territory": {"name": "T", "communes": [{"insee": "62528", "name": "L"}, {"insee": "62528", "name": "L"}]},
        "sites": [{"slug": "a", "name": "A", "owner": "commune", "commune": "59350", "latitude": 50.4},
                  {"slug": "a", "name": "A2", "owner": "commune",
                   "arrays": [{"name": "x", "inverter": "o", "peak_power_w": 1000, "tilt": 30, "azimuth": 180},
                              {"name": "x", "inverter": "p", "peak_power_w": 1000, "tilt": 30, "azimuth": 180}]}],
        "newborn_panels": {"site": "b", "register": "n.csv"},
    }
    joined = "\n".join(problems_of(tmp_path, doc))
    assert "territory.communes: commune 62528 is listed twice" in joined
    doc["territory"]["communes"] = [{"insee": "62528", "name": "L"}]  # type: ignore[index]
    joined = "\n".join(problems_of(tmp_path, doc))
    assert "sites[0].commune: 59350 is not one of territory.communes (62528)" in joined
    assert "sites[1].slug: site 'a' is listed twice" in joined
    assert "sites[0]: latitude and longitude go together: set both or neither" in joined
    assert "sites[1].arrays: array name 'x' is used twice" in joined
    assert "newborn_panels.site: no site 'b' in sites" in joined


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    text = "territory: {name: T, communes: [{insee: '62528', name: L}]}\nsites: []\nsites: []\n"
    problems = problems_of(tmp_path, text)
    assert any("sites" in p and "duplicate" in p.lower() for p in problems), problems


def test_insee_codes_must_be_quoted_strings(tmp_path: Path) -> None:
    text = "territory: {name: T, communes: [{insee: 2528, name: L}]}\n"
    assert any(p.startswith("territory.communes[0].insee:") for p in problems_of(tmp_path, text))


@pytest.mark.parametrize(("register", "expected"), [
    ("panel,born,first_name,consent\n1,2024-13-01,A,true\n", "line 2: born: expected a date YYYY-MM-DD"),
    ("panel,born,first_name,consent\nx,2024-01-01,A,true\n", "line 2: panel: expected a panel number"),
    ("panel,born,first_name,consent\n1,2024-01-01,A,maybe\n", "line 2: consent: expected true or false"),
    ("panel,born,first_name,consent\n1,2024-01-01,A,true\n1,2024-02-01,B,true\n",
     "line 3: panel 1 already given on line 2"),
    ("panel,born,name\n", "line 1: missing column first_name, consent"),
    ("panel,born,first_name,consent\n1,2024-01-01,\"A\x1b[2J\",true\n", "line 2: first_name: expected a printable"),
    ("panel,born,first_name,consent\n99,2024-01-01,A,true\n", "panel 99 is beyond the array's 42 panels"),
])
def test_newborn_register_problems_name_their_line(tmp_path: Path, register: str, expected: str) -> None:
    (tmp_path / "n.csv").write_text(register, encoding="utf-8")
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["newborn_panels"]["register"] = "n.csv"
    problems = problems_of(tmp_path, doc)
    assert any(p.startswith("newborn_panels.register:") and expected in p for p in problems), problems


def test_first_names_without_consent_are_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("\ufeffpanel,born,first_name,consent\n3,2024-03-17,Noah,non\n1,2024-01-01,Léa,oui\n\n",
                    encoding="utf-8")
    assert [(n.panel, n.first_name, n.consent) for n in load_newborns(path)] == [(1, "Léa", True), (3, None, False)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_register_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "n.csv"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as exc:
        load_newborns(fifo)
    assert exc.value.problems == [f"{fifo} is a named pipe (FIFO), not a regular file"]


def test_ingest_config_names_the_inventory_relative_to_itself(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    ingest = tmp_path / "ingest.yaml"
    ingest.write_text("influxdb: {api: v1, database: terril}\ninventory: sites.yaml\n", encoding="utf-8")
    config = load_ingest_config(ingest)
    assert config.inventory == tmp_path.resolve() / "sites.yaml"
    inv = inventory_for(config)
    assert inv is not None and inv.site("mairie") is not None
    assert inventory_for(config) is inv, "unchanged file: read once"
    write(tmp_path, {**MINIMAL, "sites": []})
    os.utime(tmp_path / "sites.yaml", (1, 1))
    again = inventory_for(config)
    assert again is not None and again.sites == ()


def test_check_config_reports_inventory_problems_as_the_ingests(tmp_path: Path) -> None:
    write(tmp_path, {**MINIMAL, "sites": [{"slug": "mairie", "name": "H", "owner": "mayor"}]})
    ingest = tmp_path / "ingest.yaml"
    ingest.write_text("influxdb: {api: v1, database: terril}\ninventory: sites.yaml\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "agent", "check-config", str(ingest)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"{ingest}: inventory: {tmp_path.resolve() / 'sites.yaml'}: sites[0].owner: expected one of" in run.stderr
    write(tmp_path, MINIMAL)
    run = subprocess.run([sys.executable, "-m", "agent", "check-config", str(ingest)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Loos-en-Gohelle, 1 commune, 1 sites, 0 arrays" in run.stdout


def test_check_config_compares_an_agent_with_the_inventory(tmp_path: Path) -> None:
    agent_yaml = tmp_path / "agent.yaml"
    doc = yaml.safe_load((ROOT / "config" / "agent.example.yaml").read_text(encoding="utf-8"))
    doc["broker"].pop("password_file", None)
    doc["broker"].pop("tls", None)
    doc["site"]["name"] = "Mairie (ancien nom)"
    agent_yaml.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "agent", "check-config", str(agent_yaml), "--inventory", str(EXAMPLE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "note: site.name 'Mairie (ancien nom)' differs from the inventory's 'Hôtel de ville'" in run.stdout


def test_demo_inventory_matches_the_simulated_town(tmp_path: Path) -> None:
    (tmp_path / "newborns.csv").write_text(newborn_register_text(), encoding="utf-8")
    inv = load_inventory(write(tmp_path, inventory_document(TOWN, "newborns.csv")))
    assert [s.slug for s in inv.sites] == [s.slug for s in TOWN]
    for plan in TOWN:
        site = inv.site(plan.slug)
        assert site is not None and site.peak_power_w == plan.peak_power_w
        assert {a.inverter for a in site.arrays} == {i.name for i in plan.inverters}
    assert inv.newborn_panels is not None
    consented = [n for n in load_newborns(inv.newborn_panels.register) if n.first_name]
    assert consented and all(n.consent for n in consented)


@pytest.mark.parametrize("when", ["2021-13-01", "2021-02-30", "2021-06-15 25:00:00"])
def test_an_impossible_date_is_a_config_error_not_a_traceback(tmp_path: Path, when: str) -> None:
    """YAML reads ``2021-13-01`` as a date and PyYAML raises a bare ValueError for it: the loader
    turns it into one line naming the key's line and column (``terril check-config`` exits 2)."""
    text = ("territory: {name: T, communes: [{insee: '62528', name: L}]}\n"
            "sites:\n  - slug: mairie\n    name: H\n    owner: commune\n    arrays:\n"
            "      - {name: a, inverter: x, peak_power_w: 5000, panels: 10, tilt: 30, azimuth: 180,\n"
            f"         commissioned: {when}}}\n")
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and "line 8, column 24" in problems[0] and when in problems[0], problems


def test_territory_and_site_cross_checks_are_reported_together(tmp_path: Path) -> None:
    """A commune listed twice, a baseline after the target and a site's unknown commune: one report
    (the territory's checks used to stop at the first and hide the sites' ones)."""
    doc = {
        "territory": {"name": "T", "communes": [{"insee": "62528", "name": "L"}, {"insee": "62528", "name": "L2"}],
                      "target": {"year": 2030, "share": 1.0}, "baseline_year": 2040},
        "sites": [{"slug": "mairie", "name": "H", "owner": "commune", "commune": "99999"},
                  {"slug": "mairie", "name": "H2", "owner": "commune"}],
    }
    joined = "\n".join(problems_of(tmp_path, doc))
    for expected in ("territory.communes: commune 62528 is listed twice",
                     "territory.baseline_year: 2040 must be before target.year 2030",
                     "sites[0].commune: 99999 is not one of territory.communes",
                     "sites[1].slug: site 'mairie' is listed twice"):
        assert expected in joined, f"{expected} missing from:\n{joined}"


def test_a_missing_inventory_is_a_config_problem_not_a_traceback(tmp_path: Path) -> None:
    ingest = tmp_path / "ingest.yaml"
    ingest.write_text("influxdb: {api: v1, database: terril}\ninventory: sites.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_ingest_config(ingest)
    assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith("inventory: ")
