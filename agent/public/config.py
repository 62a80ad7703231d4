"""The ``public:`` section of ingest.yaml: where the site goes, how often, its texts and factors.

Example (every key but ``out`` has a default)::

    public:
      out: /var/lib/terril-public/site   # a symlink to the current build; see agent.public.publish
      every: 300                     # seconds between scheduled rebuilds by the ingest
      title: {fr: "Le soleil de Loos-en-Gohelle", en: "Loos-en-Gohelle's solar roofs"}
      intro: {fr: "…", en: "…"}
      co2_kg_per_kwh: 0.052
      co2_source: {fr: "…", en: "…"}
      household_kwh_per_year: 4500
      household_source: {fr: "…", en: "…"}

The estimates (CO₂ avoided, households equivalent) are printed on the page
next to their factor and its source, so a town that uses other figures
changes them here and the page stays honest.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agent.public.numbers import Lang

DEFAULT_CO2_KG_PER_KWH = 0.052
DEFAULT_CO2_SOURCE = {
    "fr": "ADEME, Base Empreinte : mix électrique moyen de consommation en France continentale, "
          "environ 52 g CO₂e par kWh. Le réseau français est déjà très peu carboné (nucléaire, hydraulique) : "
          "le gain est réel mais modeste, et ce chiffre ne déduit pas la fabrication des panneaux.",
    "en": "ADEME, Base Empreinte: average consumption mix of the French mainland grid, about 52 g CO₂e "
          "per kWh. The French grid is already low-carbon (nuclear, hydro): the saving is real but modest, "
          "and this figure does not subtract the making of the panels.",
}
DEFAULT_HOUSEHOLD_KWH_PER_YEAR = 4500.0
DEFAULT_HOUSEHOLD_SOURCE = {
    "fr": "CRE (Commission de régulation de l'énergie) : ordre de grandeur de la consommation "
          "d'électricité moyenne d'un foyer en France, chauffage compris ; une hypothèse que la commune peut "
          "changer.",
    "en": "CRE (the French energy regulator): order of magnitude of the average electricity use of a "
          "French household, heating included; an assumption the town can change.",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(_Strict):
    """A text in French and, optionally, English (French is used where English is missing)."""

    fr: str = Field(min_length=1, max_length=2000)
    en: str | None = Field(None, min_length=1, max_length=2000)

    def get(self, lang: Lang) -> str:
        return self.en if lang == "en" and self.en else self.fr


class PublicConfig(_Strict):
    out: str = Field(min_length=1)
    """The site's folder (a symlink swapped at each build)."""
    every: int = Field(300, ge=30, le=86400)
    """Seconds between two scheduled builds by the ingest."""
    title: LocalText | None = None
    """Default: "L'énergie solaire de <territory>"."""
    intro: LocalText | None = None
    co2_kg_per_kwh: float = Field(DEFAULT_CO2_KG_PER_KWH, ge=0, le=2)
    co2_source: LocalText = LocalText(**DEFAULT_CO2_SOURCE)
    household_kwh_per_year: float = Field(DEFAULT_HOUSEHOLD_KWH_PER_YEAR, gt=0, le=1_000_000)
    household_source: LocalText = LocalText(**DEFAULT_HOUSEHOLD_SOURCE)
