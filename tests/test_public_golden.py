"""Golden pages of the public site, rendered from fixed facts (no database): a newborn panel with and
without consent, a citizen roof without ``public: true``, and the open-data summary.

The files under ``tests/cases/public/`` are the reviewed output. After an
intended change, regenerate them with ``TERRIL_UPDATE_GOLDEN=1 pytest
tests/test_public_golden.py`` and read the diff.
"""

from __future__ import annotations

import html
import os
from datetime import date, datetime
from pathlib import Path

import pytest

from agent.central.inventory import load_inventory, load_newborns
from agent.central.territory.report import TerritoryBalance
from agent.public.build import render_files
from agent.public.config import PublicConfig
from agent.public.model import public_view
from agent.public.query import Facts, SiteFacts, TerritoryDay
from tests import public_town as town

CASES = Path(__file__).resolve().parent / "cases" / "public"
GOLDEN = ("naissances/panneau-1.html", "naissances/panneau-2.html", "en/newborns/panel-2.html",
          "toits/citoyen-1.html", "en/roofs/citoyen-1.html", "data/summary.json")
AT = datetime(2026, 3, 31, 16, 0, tzinfo=town.ZONE)


def facts() -> Facts:
    ms = int(datetime(2026, 3, 31, 15, 55, tzinfo=town.ZONE).timestamp() * 1000)
    sites = {
        "mairie": SiteFacts("mairie", 12_345.0, 98_765.4, 12_345_678.9, 23_456_789.0, ms, date(2026, 3, 30),
                            {date(2026, 3, 30): 150_000.0, date(2026, 3, 31): 98_765.4}),
        "maison-dupont": SiteFacts("maison-dupont", 2_100.0, 9_876.5, 1_950_000.0, 3_210_000.0, ms,
                                   date(2026, 3, 30), {date(2026, 3, 29): 17_000.0, date(2026, 3, 31): 9_876.5}),
        "panneau-par-naissance": SiteFacts("panneau-par-naissance", 800.0, 4_000.0, 600_000.0, 700_000.0, ms,
                                           date(2026, 3, 30), {date(2026, 3, 31): 4_000.0}),
    }
    territory = (TerritoryDay(date(2026, 3, 30), 180_000.0, 13_689_253.9),
                 TerritoryDay(date(2026, 3, 31), 112_641.9, 9_126_169.3))
    host = {date(2026, 1, 15): 20_000.0, date(2026, 2, 3): 30_000.0, date(2026, 3, 31): 4_000.0}
    return Facts(AT, town.TZ, sites, territory, 26_000_000.0, date(2025, 12, 20), host)


def rendered(tmp_path: Path) -> dict[str, bytes]:
    (tmp_path / "sites.yaml").write_text(town.SITES_YAML, encoding="utf-8")
    (tmp_path / "newborns.csv").write_text(town.NEWBORNS_CSV, encoding="utf-8")
    inventory = load_inventory(tmp_path / "sites.yaml")
    register = load_newborns(tmp_path / "newborns.csv")
    config = PublicConfig.model_validate({"out": str(tmp_path / "site")})
    f = facts()
    renewable = TerritoryBalance("Loos-en-Gohelle", 2024, 41_200_000_000.0, 5_150_000_000.0, 0.125, False,
                                 2050, 1.0, 0.2, ("agence_ore", "enedis_production"))
    return render_files(public_view(f, inventory, config, register, renewable=renewable), f, config)


@pytest.mark.parametrize("rel", GOLDEN)
def test_golden_page(tmp_path: Path, rel: str) -> None:
    files = rendered(tmp_path)
    golden = CASES / rel
    if os.environ.get("TERRIL_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(files[rel])
    assert files[rel].decode("utf-8") == golden.read_text(encoding="utf-8"), f"{rel} differs from {golden}"


def test_what_the_golden_pages_say(tmp_path: Path) -> None:
    files = {rel: data.decode("utf-8") for rel, data in rendered(tmp_path).items()}
    assert "Le panneau de Léa" in files["naissances/panneau-1.html"]
    without = files["naissances/panneau-2.html"]
    assert "Panneau n°\u00a02" in without and "Né·e en février 2026" in without and "Hugo" not in without
    index = html.unescape(files["index.html"])
    assert ("Toute la production renouvelable locale (solaire, éolien, hydraulique, bioénergies) couvrait "
            "12\u00a0% de la consommation d'électricité du territoire en 2024.") in index
    assert "Données partielles" in index
    roof = files["toits/citoyen-1.html"]
    assert "Toit citoyen n°\u00a01" in roof
    for secret in ("maison-dupont", "Dupont", "Mineurs", "50.4581"):
        assert all(secret not in text for text in files.values()), secret


def test_hostile_names_are_escaped_and_an_anonymous_roof_never_takes_a_named_roofs_page(tmp_path: Path) -> None:
    sites = town.SITES_YAML.replace("slug: maison-martin", "slug: citoyen-1").replace(
        "name: Hôtel de ville", 'name: "Hôtel <script>alert(1)</script>"')
    (tmp_path / "sites.yaml").write_text(sites, encoding="utf-8")
    (tmp_path / "newborns.csv").write_text(
        'panel,born,first_name,consent\n1,2026-01-15,"<img src=x onerror=alert(1)>",true\n', encoding="utf-8")
    inventory = load_inventory(tmp_path / "sites.yaml")
    register = load_newborns(tmp_path / "newborns.csv")
    config = PublicConfig.model_validate({"out": str(tmp_path / "site")})
    f = facts()
    files = {rel: data.decode("utf-8") for rel, data in
             render_files(public_view(f, inventory, config, register), f, config).items()}
    assert "Maison Martin" in files["toits/citoyen-1.html"]  # the named roof keeps its page
    assert "Toit citoyen n°\u00a01" in files["toits/citoyen-1-anonyme.html"]
    for rel, text in files.items():  # JSON carries the names as data; pages escape them
        if rel.endswith(".html"):
            assert "<script>" not in text and "<img src=x" not in text, rel
    assert "&lt;img src=x onerror=alert(1)&gt;" in files["naissances/panneau-1.html"]
