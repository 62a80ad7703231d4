"""The territory's energy balance from French open data, per commune and year.

* :mod:`~agent.central.territory.formats` recognises the four open-data files
  from their header and reads their cells (decimal comma, masked values);
* :mod:`~agent.central.territory.parse` streams a file and keeps the
  inventory's communes as yearly :class:`~agent.central.territory.figures.Figure`s;
* :mod:`~agent.central.territory.store` writes and reads them in InfluxDB;
* :mod:`~agent.central.territory.report` builds the balance per commune and
  year (``terril territory report``), and :func:`territory_balance` for the
  public site;
* :mod:`~agent.central.territory.cli` is ``terril territory import|report``.
"""
