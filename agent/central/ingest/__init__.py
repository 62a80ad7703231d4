"""The central ingest (MQTT 5 → InfluxDB), one concept per module.

* :mod:`~agent.central.ingest.service` — :class:`Ingest`: the decode and write
  loops, health, watchdog and scheduled rollups (its docstring tells the
  delivery guarantees as a whole);
* :mod:`~agent.central.ingest.session` — the persistent MQTT session;
* :mod:`~agent.central.ingest.deadletters` — what cannot be stored, republished;
* :mod:`~agent.central.ingest.acks` — stored messages acknowledged back to their agents, and this
  instance's presence (retained status with a last will);
* :mod:`~agent.central.ingest.batching` — messages and batches between threads;
* :mod:`~agent.central.ingest.stats` — the counters.
"""

from __future__ import annotations

from agent.central.ingest.deadletters import deadletter_payload
from agent.central.ingest.service import Ingest
from agent.central.ingest.session import subscription_topics
from agent.central.ingest.stats import IngestStats

__all__ = ["Ingest", "IngestStats", "deadletter_payload", "subscription_topics"]
