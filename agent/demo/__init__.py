"""``make demo`` (``python -m agent.demo``): a whole simulated town on one machine.

``town`` says what the town has and writes the config files, ``services``
starts and stops the child processes (Mosquitto, InfluxDB, agents, ingest),
``summary`` reads the town back from InfluxDB, ``run`` puts them together.
"""
