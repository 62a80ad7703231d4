"""The public site built from a real InfluxDB, seeded with readings and the real rollup, at a fixed --at.

Every figure on the pages and in the open data is compared with a truth
computed in closed form from the generator (tests/public_town.py), not with
what the code under test queries. Then the privacy rules (no anonymous
citizen's name, slug, position or device, no consumption of any site, no
first name without consent), the atomic swap and the awkward cases (empty
database, no reference, empty newborn register, InfluxDB down).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.central.config import IngestConfig, parse_ingest_config
from agent.central.influxql import InfluxQLClient, InfluxUnavailable
from agent.central.inventory import Inventory, load_inventory
from agent.central.rollup import line_writer, run_rollup
from agent.public.build import BuiltSite, build_site
from agent.public.numbers import NBSP, NNBSP, format_energy, format_power
from tests import public_town as town
from tests.fixtures.influx import InfluxServer

DB = "terril"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Town:
    influx: InfluxServer
    config: IngestConfig
    inventory: Inventory
    out: Path
    built: BuiltSite
    tmp: Path

    def read(self, rel: str) -> str:
        return html.unescape((self.out / rel).read_text(encoding="utf-8"))

    def summary(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.read("data/summary.json"))
        return doc


def ingest_config(url: str, db: str, public: dict[str, Any] | None = None,
                  reference: float | None = town.REFERENCE_WH_PER_YEAR) -> IngestConfig:
    doc: dict[str, Any] = {
        "influxdb": {"api": "v1", "url": url, "database": db},
        "rollup": {"timezone": town.TZ, "territory_consumption_wh_per_year": reference},
    }
    if public is not None:
        doc["public"] = public
    return parse_ingest_config(doc)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Town]:
    tmp = tmp_path_factory.mktemp("public")
    influx = InfluxServer(tmp).start()
    try:
        influx.create_database(DB)
        lines = town.reading_lines()
        for k in range(0, len(lines), 20000):
            status, body = influx.write_lines(DB, lines[k:k + 20000])
            assert status == 204, body
        client = InfluxQLClient(influx.url, DB, timeout=60)
        run_rollup(client, line_writer(client), town.FIRST_DAY, town.LAST_DAY, town.TZ, town.REFERENCE_WH_PER_YEAR)
        (tmp / "sites.yaml").write_text(town.SITES_YAML, encoding="utf-8")
        (tmp / "newborns.csv").write_text(town.NEWBORNS_CSV, encoding="utf-8")
        inventory = load_inventory(tmp / "sites.yaml")
        config = ingest_config(influx.url, DB, {"out": str(tmp / "site")})
        out = tmp / "site"
        built = build_site(config, out, at=town.AT, inventory=inventory)
        yield Town(influx, config, inventory, out, built, tmp)
    finally:
        influx.stop()


# --------------------------------------------------------------------------- truths


def today() -> date:
    return town.AT.date()


def site_energy(site: str, since: date) -> float:
    return sum(town.produced(inv, since, town.AT) for inv in town.INVERTERS if inv.site == site)


def all_energy(since: date) -> float:
    return sum(town.produced(inv, since, town.AT) for inv in town.INVERTERS)


def power_now() -> float:
    h = town.local_hour(town.AT)
    return sum(town.day_energy(inv, today()) * town.power_fraction(h) for inv in town.INVERTERS
               if inv.stops is None or inv.stops >= town.AT)


def close(actual: float | None, expected: float, tol: float = 0.5) -> bool:
    return actual is not None and math.isclose(actual, expected, abs_tol=tol, rel_tol=1e-9)


# --------------------------------------------------------------------------- figures


def test_summary_figures_equal_the_truth(seeded: Town) -> None:
    s = seeded.summary()
    assert s["at"] == town.AT.isoformat()
    assert close(s["power_now_w"], power_now(), 0.01)
    assert close(s["energy_today_wh"], all_energy(today()))
    assert close(s["energy_month_wh"], all_energy(today().replace(day=1)))
    assert close(s["energy_year_wh"], all_energy(date(2026, 1, 1)))
    assert close(s["energy_total_wh"], all_energy(town.FIRST_DAY))
    assert s["first_day"] == town.FIRST_DAY.isoformat()
    year_reference = town.reference_between(town.midnight(date(2026, 1, 1)), town.AT)
    assert math.isclose(s["share_of_consumption_year"], all_energy(date(2026, 1, 1)) / year_reference, abs_tol=1e-6)
    # the rollup wrote references from FIRST_DAY on: the 12 months cover what exists
    twelve_reference = town.reference_between(town.midnight(town.FIRST_DAY), town.AT)
    assert math.isclose(s["share_of_consumption_12_months"], all_energy(town.FIRST_DAY) / twelve_reference,
                        abs_tol=1e-6)
    assert math.isclose(s["co2_avoided_kg_year"], all_energy(date(2026, 1, 1)) / 1000 * 0.052, rel_tol=1e-6)
    assert math.isclose(s["households_equivalent"], all_energy(town.FIRST_DAY) / 1000 / 4500, abs_tol=0.01)
    assert s["stale"] is False


def test_sites_are_grouped_with_their_yield_and_anonymous_citizens_numbered(seeded: Town) -> None:
    sites = {s["slug"]: s for s in seeded.summary()["sites"]}
    assert list(sites) == ["mairie", "ecole-pasteur", "salle-des-sports", "gymnase-neuf", "cooperative",
                           "citoyen-1", "maison-martin", "panneau-par-naissance"]
    year = date(2026, 1, 1)
    mairie = sites["mairie"]
    assert mairie["owner"] == "commune" and mairie["name"] == "Hôtel de ville"
    assert close(mairie["energy_year_wh"], site_energy("mairie", year))
    assert math.isclose(mairie["yield_kwh_per_kwp_year"], site_energy("mairie", year) / 48_000, rel_tol=1e-6)
    anon = sites["citoyen-1"]
    assert anon == {"slug": "citoyen-1", "name": "Toit citoyen n° 1", "owner": "citizen",
                    "energy_year_wh": anon["energy_year_wh"], "yield_kwh_per_kwp_year": anon["yield_kwh_per_kwp_year"]}
    assert close(anon["energy_year_wh"], site_energy("maison-dupont", year))
    assert sites["maison-martin"]["name"] == "Maison Martin"
    assert close(sites["salle-des-sports"]["energy_year_wh"], site_energy("salle-des-sports", year))
    assert sites["gymnase-neuf"]["energy_year_wh"] == 0


def plain(text: str) -> str:
    return text.replace(NNBSP, " ").replace(NBSP, " ")


def test_pages_show_the_figures_in_each_language(seeded: Town) -> None:
    fr, en = seeded.read("index.html"), seeded.read("en/index.html")
    assert '<html lang="fr">' in fr and '<html lang="en">' in en
    assert format_power(power_now(), "fr") in fr and format_power(power_now(), "en") in en
    for wh in (all_energy(today()), all_energy(date(2026, 3, 1)), all_energy(date(2026, 1, 1))):
        assert format_energy(wh, "fr") in fr
        assert format_energy(wh, "en") in en
    assert "31 mars 2026 à 16 h 00" in plain(fr)
    assert "31 March 2026 at 16:00" in plain(en)
    assert "Toit citoyen n° 1" in plain(fr) and "Citizen roof no. 1" in plain(en)
    assert "ADEME" in fr and "CRE" in fr and "52 g" in plain(fr)
    assert "Pas de mesure depuis le 30 mars 2026" in plain(fr)  # the silent roof
    assert "Pas encore de mesure" in fr  # the roof with no data
    gym = seeded.read("toits/salle-des-sports.html")
    assert "Pas de mesure depuis le 30 mars 2026" in plain(gym)
    assert format_energy(site_energy("salle-des-sports", date(2026, 1, 1)), "fr") in gym
    assert "1 autre(s) installation(s)" in plain(fr)


def test_newborn_pages_with_and_without_consent(seeded: Town) -> None:
    host = next(inv for inv in town.INVERTERS if inv.site == "panneau-par-naissance")
    lea = seeded.read("naissances/panneau-1.html")
    assert "Le panneau de Léa" in lea and "né·e en janvier 2026" in lea
    assert format_energy(town.produced(host, date(2026, 1, 15), town.AT) / 20, "fr") in lea
    anonymous = seeded.read("naissances/panneau-2.html")
    assert "Panneau n° 2" in plain(anonymous) and "Né·e en février 2026" in anonymous
    assert format_energy(town.produced(host, date(2026, 2, 3), town.AT) / 20, "fr") in anonymous
    ines = seeded.read("en/newborns/panel-3.html")
    assert "Inès's panel" in ines and "born in March 2026" in ines
    assert format_energy(town.produced(host, date(2026, 3, 31), town.AT) / 20, "en") in ines
    index = seeded.read("index.html")
    assert index.count('class="given"') == 3 and index.count("<li>") >= 17
    panels = json.loads(seeded.read("data/sites.json"))["newborn_panels"]
    assert [(p["panel"], p["first_name"]) for p in panels] == [(1, "Léa"), (2, None), (3, "Inès")]


def test_no_public_file_holds_private_data(seeded: Town) -> None:
    files = [p for p in seeded.out.rglob("*") if p.is_file()]
    assert len(files) == seeded.built.files
    for path in files:
        text = html.unescape(path.read_text(encoding="utf-8"))
        for secret in town.SECRETS:
            assert secret not in text, f"{secret!r} in {path.relative_to(seeded.out)}"
    assert not (seeded.out / "toits" / "maison-dupont.html").exists()
    assert (seeded.out / "toits" / "citoyen-1.html").exists()


def test_every_link_of_every_page_leads_to_a_file_of_the_site(seeded: Town) -> None:
    pages = [p for p in seeded.out.rglob("*.html")]
    assert len(pages) == 2 * (1 + 8 + 3)  # home, 8 roofs, 3 newborn panels, in two languages
    for page in pages:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if href.startswith("#"):
                continue
            assert "://" not in href and not href.startswith("/"), (page, href)
            target = (page.parent / html.unescape(href)).resolve()
            assert target.is_file() and seeded.out.resolve() in target.parents, (page, href)


def test_daily_csv_has_the_territory_days(seeded: Town) -> None:
    rows = seeded.read("data/daily.csv").splitlines()
    assert rows[0] == "date,production_wh,reference_consumption_wh"
    by_day = {r.split(",")[0]: r.split(",") for r in rows[1:]}
    d = date(2026, 3, 15)
    expected = sum(town.produced(inv, d, town.midnight(d + timedelta(days=1))) for inv in town.INVERTERS)
    assert math.isclose(float(by_day["2026-03-15"][1]), expected, abs_tol=0.1)
    assert "2026-04-01" not in by_day and "2026-03-31" in by_day


def test_build_swaps_atomically_and_keeps_two_builds(seeded: Town) -> None:
    out = seeded.tmp / "swap"
    first = build_site(seeded.config, out, at=town.AT, inventory=seeded.inventory)
    assert out.is_symlink() and out.resolve() == first.build.resolve()
    second = build_site(seeded.config, out, at=town.AT, inventory=seeded.inventory)
    third = build_site(seeded.config, out, at=town.AT, inventory=seeded.inventory)
    assert out.resolve() == third.build.resolve()
    builds = sorted(p.name for p in (seeded.tmp / "swap.builds").iterdir())
    assert builds == sorted([second.build.name, third.build.name])

    # InfluxDB unreachable: the build fails before publishing, the site stays
    down = ingest_config("http://127.0.0.1:9", DB)
    with pytest.raises(InfluxUnavailable):
        build_site(down, out, at=town.AT, inventory=seeded.inventory)
    assert out.resolve() == third.build.resolve() and (out / "index.html").is_file()


def test_a_build_under_the_services_umask_is_readable_by_the_web_server(seeded: Town) -> None:
    """terril-ingest.service runs with UMask=0077; nginx (www-data) must still read every file."""
    out = seeded.tmp / "umask" / "site"
    previous = os.umask(0o077)
    try:
        build_site(seeded.config, out, at=town.AT, inventory=seeded.inventory)
    finally:
        os.umask(previous)
    paths = [out.parent / "site.builds", *(out.parent / "site.builds").rglob("*")]
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o005 if path.is_dir() else 0o004  # others may traverse folders and read files
        assert (mode & wanted) == wanted, (path, oct(mode))


def test_at_night_the_agents_health_keeps_the_page_from_saying_it_is_stale(seeded: Town) -> None:
    """23:30: the inverters sleep since 20:00; the agents still report their health every minute."""
    night = town.AT.replace(hour=23, minute=30)
    out = seeded.tmp / "night"
    before = build_site(seeded.config, out, at=night, inventory=seeded.inventory).view
    assert before.stale and before.power_now_w is None
    lines = [f"agent,site=mairie uptime_s={60.0 * k},up=1i {int(night.timestamp() * 1000) - k * 60_000}"
             for k in range(30)]
    status, body = seeded.influx.write_lines(DB, lines)
    assert status == 204, body
    after = build_site(seeded.config, out, at=night, inventory=seeded.inventory).view
    assert not after.stale and after.last_contact == night
    assert after.last_reading == town.AT.replace(hour=20, minute=0)
    index = html.unescape((out / "index.html").read_text(encoding="utf-8"))
    assert "la nuit, les onduleurs sont en veille" in index and "plus d'une heure" not in index


def test_empty_database_no_reference_and_empty_register_render_sensible_pages(seeded: Town) -> None:
    seeded.influx.create_database("empty")
    folder = seeded.tmp / "empty-town"
    folder.mkdir()
    (folder / "sites.yaml").write_text(town.SITES_YAML, encoding="utf-8")
    (folder / "newborns.csv").write_text("panel,born,first_name,consent\n", encoding="utf-8")
    inventory = load_inventory(folder / "sites.yaml")
    config = ingest_config(seeded.influx.url, "empty", reference=None)
    built = build_site(config, folder / "site", at=town.AT, inventory=inventory)
    index = html.unescape((folder / "site" / "index.html").read_text(encoding="utf-8"))
    assert "Aucune mesure n'a encore été reçue" in index
    assert "consommation de référence du territoire n'est pas encore connue" in index
    assert "Aucun panneau n'a encore été attribué" in index
    summary = json.loads((folder / "site" / "data" / "summary.json").read_text(encoding="utf-8"))
    assert summary["energy_year_wh"] == 0 and summary["power_now_w"] is None
    assert summary["share_of_consumption_year"] is None and summary["stale"] is True
    for path in (folder / "site").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"\b(NaN|nan|None|inf|null W|undefined)\b", text), path
    assert built.view.roofs and all(r.total_wh == 0 for r in built.view.roofs)


def test_the_renewable_share_from_open_data_and_the_target(seeded: Town) -> None:
    """After ``terril territory import`` the site shows all local renewable production / consumption."""
    from agent.central.territory.parse import parse_file
    from agent.central.territory.store import plan_import, read_records, write_plan

    seeded.influx.create_database("opendata")
    client = InfluxQLClient(seeded.influx.url, "opendata")
    folder = Path(__file__).resolve().parent.parent / "config" / "opendata"
    parsed = [parse_file(folder / name, ["62528"]) for name in (
        "conso-elec-gaz-annuelle-par-naf-agregee-commune.csv",
        "production-electrique-par-filiere-a-la-maille-commune.csv")]
    plan = plan_import(parsed, read_records(client, town.TZ), town.TZ, "2026-03-01T00:00:00+00:00")
    write_plan(client, line_writer(client), plan, town.TZ)
    out = seeded.tmp / "opendata-site"
    build_site(ingest_config(seeded.influx.url, "opendata"), out, at=town.AT, inventory=seeded.inventory)
    # 2023, the latest year of the files: ORE electricity of the 4 sectors, Enedis solar (BT + HTA) + masked bio
    consumption = (16890.3 + 11010.8 + 5540.1 + 287.5) * 1e6
    renewable = (3620.5 + 2490.7) * 1e6
    summary = json.loads((out / "data" / "summary.json").read_text(encoding="utf-8"))
    r = summary["renewable_share"]
    assert r["year"] == 2023 and r["complete"] is False  # bioenergy is masked
    assert math.isclose(r["share"], renewable / consumption, abs_tol=1e-6)
    assert math.isclose(r["consumption_wh"], consumption, rel_tol=1e-9)
    assert summary["target"] == {"year": 2050, "share": 1.0}
    index = html.unescape((out / "index.html").read_text(encoding="utf-8"))
    assert re.search(r"couvrait 18\s?% de la consommation d'électricité du territoire en 2023", index), index
    english = html.unescape((out / "en" / "index.html").read_text(encoding="utf-8"))
    assert "of the territory's electricity consumption in 2023" in english


def write_ingest_yaml(seeded: Town, path: Path, url: str, public_out: Path) -> Path:
    doc = {
        "influxdb": {"api": "v1", "url": url, "database": DB},
        "rollup": {"timezone": town.TZ, "territory_consumption_wh_per_year": town.REFERENCE_WH_PER_YEAR},
        "inventory": str(seeded.tmp / "sites.yaml"),
        "public": {"out": str(public_out), "every": 60},
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_terril_public_build_command_writes_the_same_site(seeded: Town) -> None:
    out = seeded.tmp / "cli-site"
    config = write_ingest_yaml(seeded, seeded.tmp / "ingest-cli.yaml", seeded.influx.url, out)
    proc = subprocess.run([sys.executable, "-m", "agent", "public", "build", "-c", str(config), "--out", str(out),
                           "--at", "2026-03-31T16:00:00+02:00"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "files written" in proc.stdout or "file(s) written" in proc.stdout
    for rel in ("data/summary.json", "data/sites.json", "data/daily.csv", "index.html", "en/index.html",
                "toits/citoyen-1.html", "naissances/panneau-1.html"):
        assert (out / rel).read_bytes() == (seeded.out / rel).read_bytes(), rel

    bad = subprocess.run([sys.executable, "-m", "agent", "public", "build", "-c", str(config), "--at", "2026-03-31"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "UTC offset" in bad.stderr


def test_the_ingest_schedules_the_build_and_a_failure_keeps_the_site(seeded: Town,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from agent.central.config import load_ingest_config
    from agent.central.ingest import Ingest
    from agent.public.schedule import PublicSiteJob

    out = seeded.tmp / "job-site"
    good = load_ingest_config(write_ingest_yaml(seeded, seeded.tmp / "ingest-job.yaml", seeded.influx.url, out))
    ingest = Ingest(good)
    job = ingest.scheduler.get_job("public")
    assert job is not None and isinstance(job.func, PublicSiteJob)
    caplog.set_level(logging.INFO, logger="agent.public.schedule")
    assert job.func(at=town.AT) is True
    live = out.resolve()

    down = load_ingest_config(write_ingest_yaml(seeded, seeded.tmp / "ingest-down.yaml", "http://127.0.0.1:9", out))
    failing = PublicSiteJob(down)
    assert failing(at=town.AT) is False and failing(at=town.AT) is False
    assert out.resolve() == live and (out / "index.html").is_file()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "previous site stays online" in warnings[0].getMessage()
    failing.config = good
    assert failing(at=town.AT) is True
    assert out.resolve() != live


# --------------------------------------------------------------------------- a real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
PAGE_BUDGET_BYTES = 150 * 1024

# For every element with its own text: its colour against the first opaque background up the tree,
# WCAG 2 relative luminance; AA asks 4.5:1 (3:1 for large text: 24 px, or 18.66 px bold).
CONTRAST_JS = """() => {
  const lum = (c) => { const m = c.match(/[\\d.]+/g).map(Number);
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return [0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]), m.length > 3 ? m[3] : 1]; };
  const bg = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
      const [l, a] = lum(c); if (a > 0.9) return l; } return 1; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('svg')) continue;
    const s = getComputedStyle(el); if (s.visibility === 'hidden' || s.display === 'none') continue;
    const r = el.getBoundingClientRect(); if (r.width === 0 || r.right < 0) continue;
    const [fg] = lum(s.color); const b = bg(el);
    const ratio = (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) bad.push(el.tagName + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2));
  }
  return bad;
}"""
HEADINGS_JS = "() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => Number(h.tagName[1]))"


@pytest.fixture(scope="module")
def served(seeded: Town) -> Iterator[str]:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(seeded.out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        # Playwright gives the browser a new, empty profile (it refuses --user-data-dir in launch())
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("path", ["index.html", "en/index.html", "toits/citoyen-1.html", "naissances/panneau-1.html"])
def test_pages_in_a_real_browser(served: str, browser: Any, tmp_path: Path, path: str, viewport: str) -> None:
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=True)
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    received: list[int] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))

    def on_response(resp: Any) -> None:
        body = resp.body() if resp.status != 304 else b""
        received.append(len(body))

    page.on("response", on_response)
    response = page.goto(served + path, wait_until="load")
    assert response is not None and response.status == 200
    assert errors == []
    assert requests and all(url.startswith(served) for url in requests), requests
    assert context.cookies() == []
    assert page.evaluate("document.documentElement.lang") in ("fr", "en")
    scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll[0] <= scroll[1], f"horizontal scroll at {width} px: {scroll}"
    levels = page.evaluate(HEADINGS_JS)
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    assert page.evaluate(CONTRAST_JS) == []
    if path.endswith("index.html"):
        assert sum(received) <= PAGE_BUDGET_BYTES, f"{sum(received)} bytes"
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / f"{path.replace('/', '_')}-{viewport}.png"), full_page=True)
    context.close()


def test_key_figures_without_javascript(served: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    page.goto(served + "index.html")
    assert plain(page.inner_text("#power-now")) == plain(format_power(power_now(), "fr"))
    energy = plain(page.inner_text("#energy"))
    for wh in (all_energy(today()), all_energy(date(2026, 3, 1)), all_energy(date(2026, 1, 1))):
        assert plain(format_energy(wh, "fr")) in energy
    assert page.inner_text("#co2") and page.inner_text("#households")
    context.close()
