"""HTML pages of the public site: plain HTML5 and inline CSS and SVG, no JavaScript, no other origin.

Every figure is written in the reader's language with its unit and its period;
every estimate has its factor and source next to it. Pages link to one
another with relative URLs, so the site works from any folder of any host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from agent.public.charts import BAR, BAR_LAST_YEAR, BAR_TODAY, Bar, bar_chart
from agent.public.config import PublicConfig
from agent.public.model import OWNER_ORDER, DayValue, NewbornArray, NewbornPanel, PublicView, Roof
from agent.public.numbers import (
    MONTHS,
    MONTHS_SHORT,
    NBSP,
    Lang,
    format_count,
    format_date,
    format_datetime,
    format_energy,
    format_mass_kg,
    format_month_year,
    format_number,
    format_peak_power,
    format_percent,
    format_power,
    format_short_day,
    format_yield,
)
from agent.public.texts import t

STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;
 line-height:1.5;color:#1f2328;background:#f6f5f1}
a{color:#14532d}
a:focus-visible{outline:3px solid #b45309;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:8px}
header.top{background:#17301f;color:#fff;padding:1.25rem 1rem 1.5rem}
header.top a{color:#fff}
.wrap{max-width:60rem;margin:0 auto}
.kicker{margin:0;font-size:.95rem;opacity:.9;letter-spacing:.02em}
h1{margin:.2rem 0 .5rem;font-size:1.75rem;line-height:1.2}
h2{font-size:1.35rem;margin:0 0 .75rem;color:#17301f}
h3{font-size:1.1rem;margin:1.25rem 0 .5rem}
.lang{float:right;margin-left:1rem;font-size:.95rem}
main{padding:0 1rem 2rem}
section{background:#fff;border-radius:10px;padding:1.1rem 1rem;margin:1rem 0;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
section+section+section{content-visibility:auto;contain-intrinsic-size:auto 40rem}
.updated{margin:1rem 0 0;font-size:.95rem;color:#3d4248}
.notice{background:#fff4d6;border-left:5px solid #b45309;padding:.75rem 1rem;margin:1rem 0;color:#3b2a06}
.hero{font-size:2.6rem;font-weight:700;color:#14532d;margin:.1rem 0;line-height:1.1}
.label{margin:0;color:#3d4248}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.75rem;margin-top:1rem;
 padding:0;list-style:none}
.cards li{background:#eef4ef;border-radius:8px;padding:.7rem .8rem}
.cards .v{display:block;font-size:1.45rem;font-weight:700;color:#14532d;white-space:nowrap}
.cards .p{display:block;font-size:.85rem;color:#3d4248}
.bar{background:#e3e7e4;border-radius:6px;height:1.1rem;overflow:hidden;margin:.4rem 0}
.bar span{display:block;height:100%;background:#1f6f43}
.big{font-size:2rem;font-weight:700;color:#14532d;margin:.2rem 0}
.note{font-size:.9rem;color:#3d4248}
figure{margin:0}
.chart{width:100%;max-width:42rem;height:auto;display:block}
.legend{font-size:.9rem;color:#3d4248}
details{margin-top:.5rem}
summary{cursor:pointer;color:#14532d}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #e1e4e8}
td.n,th.n{text-align:right;white-space:nowrap}
.roofs{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));
 gap:.75rem}
.roofs li{border:1px solid #d5d8dc;border-radius:8px;padding:.7rem .8rem}
.roofs .name{font-weight:700}
dl{margin:.3rem 0 0;max-width:30rem;display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;font-size:.95rem}
dt{color:#3d4248}dd{margin:0;text-align:right;white-space:nowrap}
.silent{color:#8a3b00}
.panels{list-style:none;padding:0;margin:.75rem 0;display:grid;grid-template-columns:repeat(auto-fill,2.4rem);gap:4px}
.panels li{height:2.4rem;border-radius:3px;background:#dfe7f0;border:1px solid #9aa9ba;font-size:.75rem;
 display:flex;align-items:center;justify-content:center;color:#2b2f33}
.panels li.given{background:#1d3b5c;border-color:#1d3b5c}
.panels li.given a{color:#fff;text-decoration:none;display:block;width:100%;text-align:center;line-height:2.4rem}
footer{padding:1rem;font-size:.9rem;color:#3d4248}
footer .wrap{border-top:1px solid #d5d8dc;padding-top:1rem}
@media (min-width:48rem){h1{font-size:2.2rem}.hero{font-size:3.2rem}}
"""


@dataclass(frozen=True)
class PageContext:
    lang: Lang
    root: str
    """Relative path from the page to the site's root ("" or "../" …)."""
    home: str
    """Relative path from the page to its language's home page."""
    other: str
    """Relative path to the same page in the other language."""
    title: str


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def page(ctx: PageContext, body: str, footer: str = "") -> str:
    lang = ctx.lang
    other_lang: Lang = "en" if lang == "fr" else "fr"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(ctx.title)}</title>\n"
        '<meta name="referrer" content="no-referrer">\n'
        f'<link rel="alternate" hreflang="{other_lang}" href="{_e(ctx.other)}">\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<a class="skip" href="#main">{_e(t("skip", lang))}</a>\n'
        f"{body}\n"
        f'<footer><div class="wrap">{footer}<p>{_e(t("about", lang))}</p></div></footer>\n'
        "</body>\n</html>\n"
    )


def _header(ctx: PageContext, kicker: str, title: str, intro: str = "") -> str:
    other_lang: Lang = "en" if ctx.lang == "fr" else "fr"
    return (
        '<header class="top"><div class="wrap">'
        f'<a class="lang" href="{_e(ctx.other)}" hreflang="{other_lang}" lang="{other_lang}" '
        f'aria-label="{_e(t("other_lang_label", ctx.lang))}">{_e(t("other_lang", ctx.lang))}</a>'
        f'<p class="kicker">{_e(kicker)}</p><h1>{_e(title)}</h1>'
        + (f"<p>{_e(intro)}</p>" if intro else "")
        + "</div></header>"
    )


def _freshness(view: PublicView, lang: Lang) -> str:
    out = f'<p class="updated">{_e(t("updated", lang, format_datetime(view.at, lang)))}'
    if view.last_reading is not None:
        out += " " + _e(t("last_reading", lang, format_datetime(view.last_reading, lang)))
    out += "</p>"
    if view.last_contact is None:
        out += f'<p class="notice" role="status">{_e(t("no_data", lang))}</p>'
    elif view.stale:
        out += f'<p class="notice" role="status">{_e(t("stale", lang, format_datetime(view.last_contact, lang)))}</p>'
    return out


def _card(label: str, value: str, period: str) -> str:
    return (f'<li><span class="p">{_e(label)}</span><span class="v">{_e(value)}</span>'
            f'<span class="p">{_e(period)}</span></li>')


def _now_section(view: PublicView, lang: Lang) -> str:
    power = (format_power(view.power_now_w, lang) if view.power_now_w is not None
             else t("power_unknown", lang))
    since = t("since", lang, format_date(view.first_day, lang)) if view.first_day else ""
    cards = "".join([
        _card(t("today", lang), format_energy(view.energy_today_wh, lang), t("today_note", lang)),
        _card(t("month", lang), format_energy(view.energy_month_wh, lang), format_month_year(view.at.date(), lang)),
        _card(t("year", lang), format_energy(view.energy_year_wh, lang), str(view.at.year)),
        _card(t("total", lang), format_energy(view.energy_total_wh, lang), since),
    ])
    return (
        '<section aria-labelledby="h-now"><h2 id="h-now">' + _e(t("now_h", lang)) + "</h2>"
        f'<p class="label">{_e(t("power_now", lang))}</p>'
        f'<p class="hero" id="power-now">{_e(power)}</p>'
        f'<ul class="cards" id="energy">{cards}</ul></section>'
    )


def _share_section(view: PublicView, lang: Lang) -> str:
    body = ""
    if view.share_year is None and view.share_12_months is None:
        body += f'<p>{_e(t("share_unknown", lang))}</p>'
    else:
        shares = (("share_year", view.share_year, view.at.year), ("share_12", view.share_12_months, None))
        for key, share, arg in shares:
            label = t(key, lang, arg) if arg is not None else t(key, lang)
            if share is None:
                body += f'<p class="label">{_e(label)}</p><p>{_e(t("share_unknown", lang))}</p>'
                continue
            width = max(0.0, min(share, 1.0)) * 100
            body += (f'<p class="label">{_e(label)}</p><p class="big">{_e(format_percent(share, lang))}</p>'
                     f'<div class="bar" aria-hidden="true"><span style="width:{width:.1f}%"></span></div>')
        body += f'<p class="note">{_e(t("share_method", lang))}</p>'
    r = view.renewable
    if r is not None and r.renewable_share is not None:
        body += (f'<p id="renewable">{_e(t("renewable_share", lang, format_percent(r.renewable_share, lang), r.year))}'
                 f'</p><p class="note">{_e(t("renewable_source", lang))}'
                 + ("" if r.complete else " " + _e(t("balance_partial", lang))) + "</p>")
    if view.target is not None:
        target = t("target", lang, format_percent(view.target.share, lang), view.target.year)
        body += f"<p><strong>{_e(target)}</strong></p>"
    return f'<section aria-labelledby="h-share"><h2 id="h-share">{_e(t("share_h", lang))}</h2>{body}</section>'


def _impact_section(view: PublicView, config: PublicConfig, lang: Lang) -> str:
    factor = f"{format_number(view.co2_kg_per_kwh * 1000, 0, lang)}{NBSP}g"
    household = f"{format_number(view.household_kwh_per_year, 0, lang)}{NBSP}kWh"
    colon = ":" if lang == "en" else f"{NBSP}:"
    return (
        f'<section aria-labelledby="h-impact"><h2 id="h-impact">{_e(t("impact_h", lang))}</h2>'
        f'<p class="label">{_e(t("co2", lang))}</p>'
        f'<p class="big" id="co2">{_e(format_mass_kg(view.co2_avoided_kg_year, lang))}</p>'
        f'<p class="note">{_e(t("co2_factor", lang, factor))} {_e(t("source", lang))}{colon} '
        f"{_e(config.co2_source.get(lang))}</p>"
        f'<p class="label">{_e(t("households", lang))}</p>'
        f'<p class="big" id="households">{_e(format_count(view.households_equivalent, lang))}</p>'
        f'<p class="note">{_e(t("household_factor", lang, household))} {_e(t("source", lang))}{colon} '
        f"{_e(config.household_source.get(lang))}</p>"
        "</section>"
    )


def _daily_figure(days: Sequence[DayValue], title: str, lang: Lang, today_partial: bool = True) -> str:
    bars = []
    for i, d in enumerate(days):
        partial = today_partial and i == len(days) - 1
        bars.append([Bar(format_short_day(d.day, lang), d.wh, BAR_TODAY if partial else BAR)])
    svg = bar_chart(bars, title, "kWh", 1000, lang, label_every=7)
    rows = "".join(
        f'<tr><td>{_e(format_date(d.day, lang))}</td><td class="n">'
        f'{_e(format_energy(d.wh, lang) if d.wh is not None else t("no_value", lang))}</td></tr>'
        for d in reversed(days)
    )
    table = (f'<details><summary>{_e(t("show_figures", lang))}</summary>'
             f'<table><caption class="note">{_e(title)}</caption>'
             f'<thead><tr><th scope="col">{_e(t("col_day", lang))}</th><th scope="col" class="n">'
             f'{_e(t("col_production", lang))}</th></tr></thead><tbody>{rows}</tbody></table></details>')
    return f'<figure>{svg}<figcaption class="legend">{_e(title)}</figcaption>{table}</figure>'


def _monthly_figure(view: PublicView, lang: Lang) -> str:
    year, last = view.at.year, view.at.year - 1
    title = t("monthly_chart", lang, year, last)
    groups = [
        [Bar(MONTHS_SHORT[lang][m], view.months_last_year[m], BAR_LAST_YEAR),
         Bar(MONTHS_SHORT[lang][m], view.months_this_year[m], BAR)]
        for m in range(12)
    ]
    svg = bar_chart(groups, title, "kWh", 1000, lang, label_every=2)

    def cell(v: float | None) -> str:
        return _e(format_energy(v, lang)) if v is not None else "—"

    rows = "".join(
        f'<tr><td>{_e(MONTHS[lang][m])}</td><td class="n">{cell(view.months_this_year[m])}</td>'
        f'<td class="n">{cell(view.months_last_year[m])}</td></tr>'
        for m in range(12)
    )
    table = (f'<details><summary>{_e(t("show_figures", lang))}</summary><table>'
             f'<thead><tr><th scope="col">{_e(t("col_month", lang))}</th><th scope="col" class="n">{year}</th>'
             f'<th scope="col" class="n">{last}</th></tr></thead><tbody>{rows}</tbody></table></details>')
    return f'<figure>{svg}<figcaption class="legend">{_e(title)}</figcaption>{table}</figure>'


def roof_name(roof: Roof, lang: Lang) -> str:
    return roof.name if roof.name is not None else t("citizen_roof", lang, roof.number)


def roof_href(roof: Roof, lang: Lang) -> str:
    return f"{'toits' if lang == 'fr' else 'roofs'}/{roof.key}.html"


def panel_href(panel: NewbornPanel | int, lang: Lang) -> str:
    number = panel if isinstance(panel, int) else panel.panel
    return f"naissances/panneau-{number}.html" if lang == "fr" else f"newborns/panel-{number}.html"


def _status(roof: Roof, lang: Lang) -> str:
    if roof.silent_since is None and roof.last_reading is not None:
        return _e(t("status_live", lang))
    if roof.silent_since is not None:
        return f'<span class="silent">{_e(t("status_silent", lang, format_date(roof.silent_since, lang)))}</span>'
    if roof.has_data:
        return f'<span class="silent">{_e(t("status_long_silent", lang))}</span>'
    return _e(t("status_never", lang))


def _roof_facts(roof: Roof, year: int, lang: Lang) -> str:
    rows = []
    if roof.peak_power_w:
        rows.append((t("peak", lang), format_peak_power(roof.peak_power_w, lang)))
    if not roof.has_data:  # a roof not connected yet: no "0 Wh" that would read as a failure
        return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"
    rows.append((t("year_production", lang, year), format_energy(roof.year_wh, lang)))
    if roof.yield_kwh_per_kwp_year is not None:
        rows.append((t("yield", lang, year), format_yield(roof.yield_kwh_per_kwp_year, lang)))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _roofs_section(view: PublicView, lang: Lang) -> str:
    body = ""
    for owner in OWNER_ORDER:
        roofs = view.roofs_of(owner)
        if not roofs:
            continue
        items = "".join(
            f'<li><a class="name" href="{_e(roof_href(r, lang))}">{_e(roof_name(r, lang))}</a>'
            f"{_roof_facts(r, view.at.year, lang)}<p class=\"note\">{_status(r, lang)}</p></li>"
            for r in roofs
        )
        body += f'<h3>{_e(t("owner_" + owner, lang))}</h3><ul class="roofs">{items}</ul>'
        if owner == "citizen":
            body += f'<p class="note">{_e(t("citizen_note", lang))}</p>'
    if not body:
        body = f'<p>{_e(t("no_roofs", lang))}</p>'
    if view.unlisted_sites:
        body += f'<p class="note">{_e(t("unlisted", lang, view.unlisted_sites))}</p>'
    body += f'<p class="note">{_e(t("yield_note", lang))}</p>'
    return f'<section aria-labelledby="h-roofs"><h2 id="h-roofs">{_e(t("roofs_h", lang))}</h2>{body}</section>'


def panel_title(panel: NewbornPanel, lang: Lang) -> str:
    return t("panel_of", lang, panel.first_name) if panel.first_name else t("panel", lang, panel.panel)


def _newborns_section(array: NewbornArray, lang: Lang) -> str:
    given = {p.panel: p for p in array.registered}
    cells = []
    for number in range(1, array.panels + 1):
        p = given.get(number)
        if p is None:
            cells.append(f"<li>{number}</li>")
        else:
            label = f"{panel_title(p, lang)}, {t('born_in', lang, format_month_year(p.born, lang))}"
            cells.append(f'<li class="given"><a href="{_e(panel_href(p, lang))}" aria-label="{_e(label)}">'
                         f"{number}</a></li>")
    body = f'<p>{_e(t("newborns_intro", lang))}</p>'
    if not array.registered:
        body += f'<p>{_e(t("newborns_empty", lang))}</p>'
    else:
        total = t("newborns_total", lang, format_count(len(array.registered), lang),
                  format_count(array.panels, lang), format_energy(array.energy_total_wh, lang))
        body += f"<p>{_e(total)}</p>"
    if array.panels:
        body += f'<ol class="panels" aria-label="{_e(t("newborns_grid", lang))}">{"".join(cells)}</ol>'
    return f'<section aria-labelledby="h-newborns"><h2 id="h-newborns">{_e(t("newborns_h", lang))}</h2>{body}</section>'


def _open_data_footer(ctx: PageContext) -> str:
    def link(name: str) -> str:
        return f'<a href="{ctx.root}data/{name}">{name}</a>'

    return (f"<h2>{_e(t('open_data_h', ctx.lang))}</h2><p>"
            + t("open_data", ctx.lang, link("summary.json"), link("daily.csv"), link("sites.json")) + "</p>")


def site_title(view: PublicView, config: PublicConfig, lang: Lang) -> str:
    if config.title is not None:
        return config.title.get(lang)
    return t("title", lang, view.territory_name) if view.territory_name else t("title_plain", lang)


def index_page(view: PublicView, config: PublicConfig, lang: Lang) -> str:
    ctx = PageContext(lang, "" if lang == "fr" else "../", "index.html",
                      "en/index.html" if lang == "fr" else "../index.html", site_title(view, config, lang))
    intro = config.intro.get(lang) if config.intro is not None else t("intro", lang)
    body = (
        _header(ctx, view.territory_name, ctx.title, intro)
        + f'<main id="main"><div class="wrap">{_freshness(view, lang)}'
        + _now_section(view, lang)
        + _share_section(view, lang)
        + _impact_section(view, config, lang)
        + f'<section aria-labelledby="h-daily"><h2 id="h-daily">{_e(t("daily_h", lang))}</h2>'
        + _daily_figure(view.daily, t("daily_chart", lang), lang) + "</section>"
        + f'<section aria-labelledby="h-monthly"><h2 id="h-monthly">{_e(t("monthly_h", lang))}</h2>'
        + _monthly_figure(view, lang) + "</section>"
        + _roofs_section(view, lang)
        + (_newborns_section(view.newborns, lang) if view.newborns is not None else "")
        + "</div></main>"
    )
    return page(ctx, body, _open_data_footer(ctx))


def _sub_ctx(view: PublicView, config: PublicConfig, lang: Lang, title: str, fr_path: str, en_path: str) -> PageContext:
    if lang == "fr":  # fr pages at <dir>/x.html, en pages at en/<dir>/x.html
        return PageContext(lang, "../", "../index.html", "../en/" + en_path, title)
    return PageContext(lang, "../../", "../index.html", "../../" + fr_path, title)


def roof_page(view: PublicView, config: PublicConfig, roof: Roof, lang: Lang) -> str:
    name = roof_name(roof, lang)
    ctx = _sub_ctx(view, config, lang, f"{name} — {site_title(view, config, lang)}",
                   roof_href(roof, "fr"), roof_href(roof, "en"))
    power = format_power(roof.power_now_w, lang) if roof.power_now_w is not None else t("power_unknown", lang)
    cards = "".join([
        _card(t("today", lang), format_energy(roof.today_wh, lang), t("today_note", lang)),
        _card(t("year", lang), format_energy(roof.year_wh, lang), str(view.at.year)),
        _card(t("total", lang), format_energy(roof.total_wh, lang), ""),
    ])
    facts = [(t("power_now", lang), power)]
    if roof.peak_power_w:
        facts.append((t("peak", lang), format_peak_power(roof.peak_power_w, lang)))
    if roof.panels:
        facts.append((t("panels", lang), format_count(roof.panels, lang)))
    if roof.yield_kwh_per_kwp_year is not None:
        facts.append((t("yield", lang, view.at.year), format_yield(roof.yield_kwh_per_kwp_year, lang)))
    dl = "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"
    body = (
        _header(ctx, t("owner_" + roof.owner, lang), name)
        + f'<main id="main"><div class="wrap"><p><a href="{ctx.home}">{_e(t("back", lang))}</a></p>'
        + _freshness(view, lang)
        + f'<section aria-labelledby="h-roof"><h2 id="h-roof">{_e(t("roof_figures_h", lang))}</h2>{dl}'
        + f'<ul class="cards">{cards}</ul><p class="note">{_status(roof, lang)}</p></section>'
        + f'<section aria-labelledby="h-rdaily"><h2 id="h-rdaily">{_e(t("roof_daily_h", lang))}</h2>'
        + _daily_figure(roof.daily, t("roof_daily_chart", lang), lang) + "</section>"
        + "</div></main>"
    )
    return page(ctx, body, _open_data_footer(ctx))


def panel_page(view: PublicView, config: PublicConfig, array: NewbornArray, panel: NewbornPanel, lang: Lang) -> str:
    title = panel_title(panel, lang)
    ctx = _sub_ctx(view, config, lang, f"{title} — {site_title(view, config, lang)}",
                   panel_href(panel, "fr"), panel_href(panel, "en"))
    born = t("born_in", lang, format_month_year(panel.born, lang))
    method = t("panel_method", lang, format_date(panel.born, lang), format_count(array.panels, lang))
    kicker = t("newborns_h", lang)
    if panel.first_name:
        born = f"{t('panel', lang, panel.panel)} · {born}"
    body = (
        _header(ctx, kicker, title, born[0].upper() + born[1:])
        + f'<main id="main"><div class="wrap"><p><a href="{ctx.home}">{_e(t("back", lang))}</a></p>'
        + _freshness(view, lang)
        + f'<section aria-labelledby="h-panel"><h2 id="h-panel">{_e(t("panel_energy", lang))}</h2>'
        + f'<p class="hero" id="panel-energy">{_e(format_energy(panel.energy_wh, lang))}</p>'
        + f'<p class="note">{_e(method)}</p>'
        + "</section></div></main>"
    )
    return page(ctx, body, _open_data_footer(ctx))
