"""The ingest's side of the end-to-end acknowledgement: "InfluxDB holds these messages of yours".

An agent keeps every reading in its spool until the ingest says it is stored
(DESIGN.md, "Delivery guarantees"): a broker's PUBACK only means the broker
has it, and a broker killed, restored from a backup or replaced loses what it
held in RAM. So once a batch is written (the moment the ingest also
acknowledges the MQTT messages to the broker), the ids of its messages are
published back, QoS 1, one message per site per flush, on ``<root>/<site>/ack``
(``agent.schema.ack_payload``). Dead-lettered messages are acknowledged too:
they are kept on the dead-letter topic, and an agent must not resend garbage
for ever.

An ack that gets lost (the ingest killed between its write and its ack, the
agent offline) costs a resend: the agent sends the rows again after its
``resend_after``, the ingest rewrites the same points (same series and
timestamp: nothing doubles) and acknowledges them again.

Presence: each instance keeps a retained ``online`` status on
``<root>/_ingest/<client_id>/status`` with an ``offline`` last will
(``agent.schema.ingest_status_payload``). It tells the agents that this ingest
acknowledges (``"acks": 1``; an agent that sees no such status falls back to
deleting at PUBACK), and when every instance is away, agents stop resending
rather than fill the broker's queue with copies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from agent.schema import Topics, ack_payload, ingest_status_payload, ingest_status_topic


def _encode(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Stored:
    """One message done with: its site and the agent's id for it (None for messages without one)."""

    site: str | None
    message_id: str | None


def group_by_site(messages: Iterable[Stored]) -> dict[str, list[str]]:
    """Message ids per site, in arrival order, each id once (a redelivered copy in the same batch)."""
    out: dict[str, list[str]] = {}
    for msg in messages:
        if msg.site is None or msg.message_id is None:
            continue
        ids = out.setdefault(msg.site, [])
        if msg.message_id not in ids[-8:]:
            ids.append(msg.message_id)
    return out


class AckPublisher:
    """Publishes the acknowledgements and the presence of one ingest instance through its paho client."""

    def __init__(self, client: mqtt.Client, client_id: str, topic_root: str) -> None:
        self._client = client
        self.client_id = client_id
        self.topic_root = topic_root
        self.status_topic = ingest_status_topic(client_id, topic_root)
        self.published = 0
        """Ack messages handed to paho (one per site per flush)."""
        self.ids_acked = 0
        """Message ids acknowledged in them."""

    def set_last_will(self) -> None:
        """Before connecting: the broker publishes ``offline`` (retained) if this instance vanishes."""
        self._client.will_set(self.status_topic, _encode(ingest_status_payload(self.client_id, online=False)),
                              qos=1, retain=True)

    def announce(self, online: bool, session_present: bool | None = None) -> mqtt.MQTTMessageInfo:
        """Publish this instance's status, retained. ``session_present`` is the CONNACK flag."""
        session = None if session_present is None else ("resumed" if session_present else "new")
        payload = ingest_status_payload(self.client_id, online, session)  # type: ignore[arg-type]
        return self._client.publish(self.status_topic, _encode(payload), qos=1, retain=True)

    def acknowledge(self, messages: Iterable[Stored]) -> int:
        """One QoS 1 ack per site for the messages of a flush; returns how many ack messages were published.

        Not waited for: paho sends it now or after its next reconnection, and an ack that is
        lost only makes the agent resend (the rewrite is idempotent)."""
        sent = 0
        for site, ids in group_by_site(messages).items():
            self._client.publish(Topics(site, self.topic_root).ack, _encode(ack_payload(site, ids)), qos=1)
            self.ids_acked += len(ids)
            sent += 1
        self.published += sent
        return sent
