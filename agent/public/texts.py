"""Every sentence of the public site, in French (the town's language) and English.

One table, so a translation is reviewed in one place and a missing key fails
the tests rather than showing a blank. ``{}`` fields are filled by the pages.
"""

from __future__ import annotations

from agent.public.numbers import NBSP, Lang

TEXTS: dict[str, dict[Lang, str]] = {
    "title": {"fr": "L'énergie solaire de {}", "en": "{}'s solar energy"},
    "title_plain": {"fr": "L'énergie solaire du territoire", "en": "Our territory's solar energy"},
    "intro": {
        "fr": "Les toits de la commune, de la société citoyenne et des habitants produisent de l'électricité. "
              "Voici ce qu'ils produisent, mis à jour automatiquement.",
        "en": "The roofs of the town, of the citizens' solar company and of residents produce electricity. "
              "Here is what they produce, updated automatically.",
    },
    "skip": {"fr": "Aller au contenu", "en": "Skip to content"},
    "other_lang": {"fr": "English", "en": "Français"},
    "other_lang_label": {"fr": "Read this page in English", "en": "Lire cette page en français"},
    "updated": {"fr": "Page mise à jour le {}.", "en": "Page updated on {}."},
    "last_reading": {"fr": "Dernière mesure reçue le {}.", "en": "Latest reading received on {}."},
    "stale": {
        "fr": "Attention : les dernières données reçues datent de plus d'une heure (le {}). Les chiffres "
              "ci-dessous ne sont peut-être pas à jour.",
        "en": "Note: the latest data received is more than an hour old ({}). The figures below may not be "
              "up to date.",
    },
    "no_data": {
        "fr": "Aucune mesure n'a encore été reçue : les chiffres apparaîtront dès les premières mesures.",
        "en": "No reading has been received yet: the figures will appear with the first readings.",
    },
    "now_h": {"fr": "En ce moment", "en": "Right now"},
    "power_now": {"fr": "Puissance solaire produite maintenant", "en": "Solar power being produced now"},
    "power_unknown": {
        "fr": "aucune production mesurée depuis 15 minutes (la nuit, les onduleurs sont en veille)",
        "en": "no production measured for 15 minutes (at night the inverters sleep)",
    },
    "today": {"fr": "Aujourd'hui", "en": "Today"},
    "today_note": {"fr": "depuis minuit", "en": "since midnight"},
    "month": {"fr": "Ce mois-ci", "en": "This month"},
    "year": {"fr": "Cette année", "en": "This year"},
    "total": {"fr": "Depuis le début", "en": "Since the start"},
    "since": {"fr": "depuis le {}", "en": "since {}"},
    "share_h": {"fr": "Vers un territoire à énergie positive", "en": "Towards an energy-positive territory"},
    "share_year": {
        "fr": "Part de la consommation d'électricité du territoire couverte par ces toits en {}",
        "en": "Share of the territory's electricity consumption covered by these roofs in {}",
    },
    "share_12": {"fr": "Sur les 12 derniers mois", "en": "Over the last 12 months"},
    "renewable_share": {
        "fr": "Toute la production renouvelable locale (solaire, éolien, hydraulique, bioénergies) couvrait {} "
              "de la consommation d'électricité du territoire en {}.",
        "en": "All local renewable production (solar, wind, hydro, bioenergy) covered {} of the territory's "
              "electricity consumption in {}.",
    },
    "renewable_source": {
        "fr": "Source : données ouvertes annuelles des gestionnaires de réseau (Agence ORE, Enedis, ODRÉ).",
        "en": "Source: the grid operators' annual open data (Agence ORE, Enedis, ODRÉ).",
    },
    "share_unknown": {
        "fr": "La consommation de référence du territoire n'est pas encore connue pour cette période.",
        "en": "The territory's reference consumption is not known yet for this period.",
    },
    "share_method": {
        "fr": "Production mesurée de ces toits divisée par la consommation d'électricité de référence du "
              "territoire sur la même période.",
        "en": "Measured production of these roofs divided by the territory's reference electricity "
              "consumption over the same period.",
    },
    "target": {
        "fr": "Objectif : produire {} de la consommation d'ici {}.",
        "en": "Target: produce {} of the consumption by {}.",
    },
    "balance_partial": {
        "fr": "Données partielles : une commune ou un secteur est masqué ou manquant cette année-là.",
        "en": "Partial data: a commune or a sector is masked or missing that year.",
    },
    "impact_h": {"fr": "Ce que cela représente", "en": "What it amounts to"},
    "co2": {"fr": "CO₂ évité cette année (estimation)", "en": "CO₂ avoided this year (estimate)"},
    "co2_factor": {"fr": "Facteur : {} CO₂e par kWh produit.", "en": "Factor: {} CO₂e per kWh produced."},
    "households": {
        "fr": "Foyers dont la consommation d'électricité est couverte sur 12 mois (estimation)",
        "en": "Households whose electricity use is covered over 12 months (estimate)",
    },
    "household_factor": {"fr": "Facteur : {} par foyer et par an.", "en": "Factor: {} per household per year."},
    "source": {"fr": "Source", "en": "Source"},
    "daily_h": {"fr": "Les 30 derniers jours", "en": "The last 30 days"},
    "daily_chart": {
        "fr": "Production quotidienne des 30 derniers jours, en kWh (aujourd'hui en orange, journée en cours)",
        "en": "Daily production over the last 30 days, in kWh (today in orange, day in progress)",
    },
    "monthly_h": {"fr": "Mois par mois", "en": "Month by month"},
    "monthly_chart": {
        "fr": "Production mensuelle en kWh : {} en vert, {} en gris",
        "en": "Monthly production in kWh: {} in green, {} in grey",
    },
    "show_figures": {"fr": "Voir les chiffres", "en": "Show the figures"},
    "col_day": {"fr": "Jour", "en": "Day"},
    "col_month": {"fr": "Mois", "en": "Month"},
    "col_production": {"fr": "Production", "en": "Production"},
    "no_value": {"fr": "pas de mesure", "en": "no reading"},
    "roofs_h": {"fr": "Les toits", "en": "The roofs"},
    "owner_commune": {"fr": "Bâtiments de la commune", "en": "Town buildings"},
    "owner_cooperative": {"fr": "Société citoyenne de production", "en": "Citizens' solar company"},
    "owner_citizen": {"fr": "Toits des habitants", "en": "Residents' roofs"},
    "citizen_roof": {"fr": f"Toit citoyen n°{NBSP}{{}}", "en": f"Citizen roof no.{NBSP}{{}}"},
    "citizen_note": {
        "fr": "Les toits des habitants apparaissent sans nom ni adresse, sauf accord de leur propriétaire.",
        "en": "Residents' roofs are shown without name or address unless their owner agreed.",
    },
    "peak": {"fr": "Puissance installée", "en": "Installed power"},
    "panels": {"fr": "Panneaux", "en": "Panels"},
    "year_production": {"fr": "Production {}", "en": "Production {}"},
    "yield": {"fr": "Rendement {}", "en": "Yield {}"},
    "yield_note": {
        "fr": "Le rendement (kWh par kWc installé) permet de comparer des toits de tailles différentes.",
        "en": "The yield (kWh per installed kWp) compares roofs of different sizes.",
    },
    "status_live": {"fr": "Mesures reçues aujourd'hui", "en": "Readings received today"},
    "status_silent": {"fr": "Pas de mesure depuis le {}", "en": "No reading since {}"},
    "status_long_silent": {"fr": "Pas de mesure depuis plus de 45 jours", "en": "No reading for more than 45 days"},
    "status_never": {"fr": "Pas encore de mesure", "en": "No reading yet"},
    "unlisted": {
        "fr": "{} autre(s) installation(s) mesurée(s) compte(nt) dans les totaux sans être encore décrite(s).",
        "en": "{} other monitored installation(s) count in the totals without being described yet.",
    },
    "no_roofs": {"fr": "Aucun toit n'est encore décrit.", "en": "No roof is described yet."},
    "newborns_h": {"fr": "Un panneau par naissance", "en": "One panel for every newborn"},
    "newborns_intro": {
        "fr": "La commune offre à chaque nouveau-né un panneau symbolique. Chaque case est un panneau ; "
              "les cases foncées ont été attribuées.",
        "en": "The town gives every newborn a symbolic panel. Each square is a panel; the dark squares "
              "have been given.",
    },
    "newborns_grid": {"fr": "Panneaux du champ des naissances", "en": "Panels of the newborns' array"},
    "newborns_empty": {"fr": "Aucun panneau n'a encore été attribué.", "en": "No panel has been given yet."},
    "newborns_total": {
        "fr": "{} panneaux attribués sur {}. Le champ a produit {} depuis la première naissance.",
        "en": "{} panels given out of {}. The array has produced {} since the first birth.",
    },
    "panel": {"fr": f"Panneau n°{NBSP}{{}}", "en": f"Panel no.{NBSP}{{}}"},
    "panel_of": {"fr": "Le panneau de {}", "en": "{}'s panel"},
    "born_in": {"fr": "né·e en {}", "en": "born in {}"},
    "panel_energy": {
        "fr": "Sa part de la production depuis la naissance",
        "en": "Its share of the production since the birth",
    },
    "panel_method": {
        "fr": "Production du champ des naissances depuis le {} divisée par ses {} panneaux.",
        "en": "Production of the newborns' array since {} divided by its {} panels.",
    },
    "back": {"fr": "Retour à l'accueil", "en": "Back to the home page"},
    "roof_figures_h": {"fr": "Sa production", "en": "Its production"},
    "roof_daily_h": {"fr": "Les 30 derniers jours", "en": "The last 30 days"},
    "roof_daily_chart": {
        "fr": "Production quotidienne de ce toit sur 30 jours, en kWh",
        "en": "Daily production of this roof over 30 days, in kWh",
    },
    "open_data_h": {"fr": "Données ouvertes", "en": "Open data"},
    "open_data": {
        "fr": "Ces chiffres sont libres de réutilisation : résumé {}, production quotidienne {}, toits {}.",
        "en": "These figures are free to reuse: summary {}, daily production {}, roofs {}.",
    },
    "about": {
        "fr": "Mesures des onduleurs relevées par terril, logiciel libre. Les énergies viennent des "
              "compteurs des onduleurs ; la journée en cours est partielle.",
        "en": "Inverter readings collected by terril, free software. Energies come from the inverters' "
              "counters; the current day is partial.",
    },
}


def t(key: str, lang: Lang, *args: object) -> str:
    """The text *key* in *lang*, with ``{}`` filled by *args*."""
    text = TEXTS[key][lang]
    return text.format(*args) if args else text
