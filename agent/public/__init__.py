"""The public site: a static site for citizens, built from InfluxDB and the inventory.

``terril public build -c ingest.yaml --out DIR [--at TIME]`` (and the ingest,
on a schedule, when its config has a ``public:`` section) writes HTML pages in
French and English, SVG charts drawn on the server and open-data files. The
site needs no JavaScript, loads nothing from another origin and can be put on
any static web host: see the README, "The public site".
"""
