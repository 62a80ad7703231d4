"""The server-drawn SVG charts: axis labels stay inside the drawing, whatever their width."""

from __future__ import annotations

import re

import pytest

from agent.public.charts import Bar, bar_chart
from agent.public.numbers import Lang


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("top_wh", [800_000.0, 15_000_000.0, 2_500_000_000.0])
def test_axis_labels_are_not_cut_at_the_left_edge(lang: Lang, top_wh: float) -> None:
    svg = bar_chart([[Bar("Jan", top_wh)], [Bar("Fév", top_wh / 3)]], "Production", "kWh", 1000.0, lang)
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end" font-size="13"[^>]*>([^<]+)</text>', svg)
    assert len(labels) >= 3
    for x, text in labels:
        # 13 px digits are about 0.6 em wide: the label's left end must not fall before x=0
        assert float(x) - 0.6 * 13 * len(text) >= 0, f"{text!r} drawn from x={x} is cut off"
