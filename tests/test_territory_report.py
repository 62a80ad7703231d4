"""The balance arithmetic on hand-made figures: source preference, masked sectors, totals, the target path."""

from __future__ import annotations

import pytest

from agent.central.territory.figures import FigureKey
from agent.central.territory.report import Scope, build_report, target_share
from agent.central.territory.store import StoredFigure

SCOPE = Scope(
    name="Agglo", timezone="Europe/Paris",
    communes=(("62528", "Loos-en-Gohelle"), ("62510", "Liévin"), ("62498", "Lens")),
    site_communes={"mairie": "62528", "ecole": "62510"},
    site_peak_w={"mairie": 36000.0, "ecole": 12000.0, "eglise": 6000.0},
    target_year=2050, target_share=1.0, baseline_year=2019,
)


def fig(kind: str, source: str, commune: str, year: int, category: str, masked: int = 0,
        **values: float | None) -> StoredFigure:
    return StoredFigure(FigureKey(kind, source, commune, year, category),  # type: ignore[arg-type]
                        dict(values), {name: masked for name in values})


FIGURES = [
    # Loos 2019: ORE and Enedis both give electricity: ORE (every operator) wins.
    fig("electricity", "agence_ore", "62528", 2019, "residential", energy_wh=10e9),
    fig("electricity", "agence_ore", "62528", 2019, "tertiary", energy_wh=5e9),
    fig("electricity", "enedis_consumption", "62528", 2019, "residential", energy_wh=9e9),
    fig("gas", "agence_ore", "62528", 2019, "residential", energy_wh=30e9),
    # Loos production 2019: Enedis measured (cogeneration "other" is not renewable); the register too.
    fig("production", "enedis_production", "62528", 2019, "solar", energy_wh=2e9),
    fig("production", "enedis_production", "62528", 2019, "wind", energy_wh=1e9),
    fig("production", "enedis_production", "62528", 2019, "other", energy_wh=4e9),
    fig("installations", "odre_register", "62528", 2019, "solar", power_w=2.5e6, produced_wh=9e9, injected_wh=8e9),
    # Liévin 2019: Enedis consumption with a masked sector; production only from the register, produced
    # energy masked for one source -> injected energies are used.
    fig("electricity", "enedis_consumption", "62510", 2019, "residential", energy_wh=20e9),
    fig("electricity", "enedis_consumption", "62510", 2019, "industry", masked=1, energy_wh=None),
    fig("installations", "odre_register", "62510", 2019, "solar", power_w=1e6, produced_wh=1.1e9, injected_wh=1e9),
    StoredFigure(FigureKey("installations", "odre_register", "62510", 2019, "wind"),
                 {"power_w": 2e6, "produced_wh": None, "injected_wh": 3e9},
                 {"power_w": 0, "produced_wh": 1, "injected_wh": 0}),
]


def test_report_by_hand() -> None:
    report = build_report(SCOPE, FIGURES, {("62528", 2019): 40e6, ("62510", 2019): 12e6}, fleet_yield=1000.0)
    assert report.years == (2019,)
    [loos] = report.communes["62528"]
    assert loos.consumption.source == "agence_ore"
    assert loos.consumption.total == 15e9 and loos.consumption.complete
    assert loos.consumption.parts == {"residential": 10e9, "tertiary": 5e9}
    assert loos.gas.total == 30e9
    assert loos.production_figure == "measured"
    assert loos.production.total == 3e9  # solar + wind, not "other"
    assert loos.production.parts == {"solar": 2e9, "wind": 1e9, "other": 4e9}
    assert loos.installed_power.total == 2.5e6
    assert loos.renewable_share == pytest.approx(3e9 / 15e9)
    assert loos.monitored_production_wh == 40e6

    [lievin] = report.communes["62510"]
    assert lievin.consumption.source == "enedis_consumption"
    assert lievin.consumption.total == 20e9 and not lievin.consumption.complete
    assert lievin.consumption.parts == {"residential": 20e9, "industry": None}
    assert lievin.production_figure == "injected"
    assert lievin.production.total == 4e9
    assert lievin.gas.total is None

    [lens] = report.communes["62498"]  # no data at all: listed, every figure null
    doc = lens.to_json()
    assert doc["consumption_wh"]["total"] is None and doc["production_wh"]["total"] is None
    assert doc["renewable_share"] is None and doc["monitored_production_wh"] is None

    [total] = report.territory
    assert total.consumption.total == 35e9 and not total.consumption.complete  # Lens missing, Liévin masked
    assert total.production.total == 7e9
    assert total.monitored_production_wh == 52e6
    assert total.renewable_share == pytest.approx(7e9 / 35e9)

    assert report.baseline_share == pytest.approx(0.2)
    assert report.median_roof_w == 12000.0
    t2019 = next(t for t in report.trajectory if t.year == 2019)
    assert t2019.target_share == pytest.approx(0.2)
    assert t2019.missing_wh == pytest.approx(35e9 - 7e9)
    assert t2019.missing_peak_power_w == pytest.approx(28e9 / 1000.0)  # 28 GWh / 1000 kWh/kWp = 28 MWp
    assert t2019.missing_roofs == pytest.approx(28e6 / 12000.0)
    assert [t.year for t in report.trajectory] == list(range(2019, 2051))


def test_target_path_is_a_straight_line() -> None:
    assert target_share(SCOPE, 0.2, 2019) == pytest.approx(0.2)
    assert target_share(SCOPE, 0.2, 2050) == 1.0
    assert target_share(SCOPE, 0.2, 2034) == pytest.approx(0.2 + 0.8 * 15 / 31)
    assert target_share(SCOPE, 0.2, 2018) is None
    assert target_share(SCOPE, None, 2030) is None  # no baseline share: only the target point
    assert target_share(SCOPE, None, 2050) == 1.0


def test_the_table_marks_a_share_computed_from_an_incomplete_figure() -> None:
    """Liévin's consumption has a masked sector and the total misses Lens: their shares overstate the
    truth and carry the table's ``*``; Loos's figures are complete and its share has none."""
    from agent.central.territory.cli import format_table

    report = build_report(SCOPE, FIGURES, {}, fleet_yield=1000.0)
    rows = {}
    title = ""
    for line in format_table(report).splitlines():
        if line and not line.startswith((" ", "year")) and not line[0].isdigit():
            title = line
        elif line.startswith("2019"):
            rows[title] = line.split()[-1]
    assert rows["Loos-en-Gohelle (62528)"] == "20.0%"
    assert rows["Liévin (62510)"] == "20.0%*"
    assert rows["Total: Agglo"] == "20.0%*"
