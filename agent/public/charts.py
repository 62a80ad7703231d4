"""Bar charts drawn on the server as inline SVG: no JavaScript, no request, readable on a phone.

The SVG scales with its ``viewBox`` to the width of the page. It is marked
``role="img"`` with a title; the page puts the same figures in a table next to
it for screen readers and for anyone who wants the numbers. A day without
data draws no bar (and the table says "—"), never a bar of height 0 that
would read as "nothing produced".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from agent.public.numbers import Lang, format_number

WIDTH = 420
"""Drawn for a phone (~360 px of width: the text stays close to its nominal size), scaled up on a desktop."""
HEIGHT = 230
LEFT = 44
"""Least left margin; a wider one is taken when the axis labels need it (``15 000`` at 13 px is ~48 px)."""
LABEL_CHAR_W = 8.0
"""Width of one character of a 13 px axis label, rounded up (digits are ~0.6 em)."""
RIGHT = 6
TOP = 26
BOTTOM = 26

BAR = "#1f6f43"
"""Dark green: 6.6:1 against white."""
BAR_TODAY = "#b45309"
"""Amber for the partial bar (today, this month), 4.6:1 against white."""
BAR_LAST_YEAR = "#8a8f98"
GRID = "#d5d8dc"
TEXT = "#2b2f33"


@dataclass(frozen=True)
class Bar:
    label: str
    """Axis label (drawn for every bar or every few bars)."""
    value: float | None
    color: str = BAR


def nice_step(maximum: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 x 10^n) giving about *ticks* grid lines up to *maximum*."""
    if maximum <= 0 or not math.isfinite(maximum):
        return 1.0
    raw = maximum / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * power >= raw:
            return m * power
    return 10 * power


def _axis(values: Sequence[float | None], unit_divisor: float) -> tuple[float, float]:
    top = max((v for v in values if v is not None), default=0.0) / unit_divisor
    step = nice_step(top)
    return step, step * max(1, math.ceil(top / step)) if top > 0 else step * 4


def bar_chart(
    groups: Sequence[Sequence[Bar]],
    title: str,
    unit: str,
    unit_divisor: float,
    lang: Lang,
    label_every: int = 1,
) -> str:
    """An SVG bar chart; each group holds one bar per series (one for daily values, two for year vs year).

    Values are divided by *unit_divisor* (1000 for kWh from Wh) and the axis is labelled in *unit*.
    """
    values = [b.value for group in groups for b in group]
    step, top = _axis(values, unit_divisor)
    decimals = 0 if step >= 1 else 1
    ticks = [i * step for i in range(int(top / step + 0.5) + 1)]
    labels = [format_number(tick, decimals, lang) for tick in ticks]
    left = max(LEFT, math.ceil(LABEL_CHAR_W * max(len(label) for label in labels)) + 10)
    plot_w = WIDTH - left - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(groups), 1)
    per_group = max((len(g) for g in groups), default=1)
    bar_w = slot * 0.8 / per_group
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]
    for tick, label in zip(ticks, labels, strict=True):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{left}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="13" fill="{TEXT}">'
                     f"{escape(label)}</text>")
    parts.append(f'<text x="{left - 6}" y="{TOP - 12}" text-anchor="end" font-size="12" fill="{TEXT}">'
                 f"{escape(unit)}</text>")
    for i, group in enumerate(groups):
        x0 = left + i * slot + slot * 0.1
        for j, b in enumerate(group):
            if b.value is None or b.value <= 0:
                continue
            h = plot_h * (b.value / unit_divisor) / top
            x = x0 + j * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{b.color}"/>')
        if group and i % label_every == 0:
            cx = left + i * slot + slot / 2
            parts.append(f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="13" '
                         f'fill="{TEXT}">{escape(group[0].label)}</text>')
    parts.append(f'<line x1="{left}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="{TEXT}"/>')
    parts.append("</svg>")
    return "".join(parts)
