"""The ingest's counters since start: what its health document, its log summary, the bench and the tests read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IngestStats:
    """Counters since start (also what the bench and the tests read)."""

    messages: int = 0
    points_written: int = 0
    deadletters: int = 0
    acked: int = 0
    writes: int = 0
    write_failures: int = 0
    reconnects: int = 0
    retained_status_skipped: int = 0
    """Retained ``status`` copies the broker re-sent on (re)subscribe: acknowledged, not written."""
    retained_not_stored: int = 0
    """Other retained copies with nothing to store again (invalid, or without ``ts``): acknowledged,
    neither written nor dead-lettered again (their live publication was)."""
    deadletters_refused: int = 0
    """Dead letters the broker refused (PUBACK reason code >= 0x80): originals left unacknowledged."""
    shed_qos0: int = 0
    """QoS 0 messages dropped because the messages held were over the inbox's byte budget."""
    shed_qos0_bytes: int = 0
    received: int = 0
    """Messages paho handed over (incremented on paho's thread only)."""
    settled: int = 0
    """Messages done with: acknowledged, or left for the broker to redeliver (ingest loop only)."""

    @property
    def backlog(self) -> int:
        """Messages received and not yet acknowledged (waiting, batched, or held while InfluxDB is down)."""
        return self.received - self.settled
