"""Dead letters: a message that cannot be stored is republished with its reason, then acknowledged.

Garbage never blocks valid data, and is never silently dropped: the original
is acknowledged only once its dead letter on ``<root>/_deadletter`` was
acknowledged by the broker. A dead letter never exceeds the broker's Maximum
Packet Size (from CONNACK; 1 MB when unstated): past it the broker would drop
the connection and the original would come back for ever, so a huge original
is carried as its length, sha256 and first 64 KiB. A dead letter the broker
refuses (PUBACK reason code >= 0x80, an ACL without write on the dead-letter
topic) leaves its original unacknowledged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from paho.mqtt.reasoncodes import ReasonCode

from agent.central.ingest.batching import Message
from agent.central.ingest.stats import IngestStats

if TYPE_CHECKING:
    from agent.central.ingest.session import BrokerSession

log = logging.getLogger(__name__)

DEADLETTER_LOG_EVERY_S = 60.0
DEFAULT_MAX_PACKET_BYTES = 1_000_000
"""Dead-letter size budget when the broker's CONNACK states no Maximum Packet Size (the shipped
config/mosquitto/terril.conf sets max_packet_size to this)."""
PACKET_OVERHEAD_BYTES = 1024
"""Room left in a packet for the fixed header, the topic and the properties of a dead letter."""
DEADLETTER_HEAD_BYTES = 64 * 1024
"""A dead letter too big for the broker carries the first this-many bytes of the original, its length and sha256."""
DEADLETTER_MAX_REFUSED_LINES = 20


def _payload_fields(payload: bytes, cut: bool) -> dict[str, str]:
    """``payload`` as text when it is UTF-8 (a cut may split the last character), else ``payload_base64``."""
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(payload) - 3 and exc.reason == "unexpected end of data":
            return {"payload": payload[: exc.start].decode("utf-8")}
        return {"payload_base64": base64.b64encode(payload).decode("ascii")}


def deadletter_payload(msg: Message, client_id: str, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> bytes:
    """JSON: the reason, the topic and the original payload (base64 when it is not UTF-8), in at most *max_bytes*.

    The whole original is carried whenever the dead letter fits the broker's packet limit.
    When it does not (a huge garbage message: JSON escaping or base64 makes it up to six
    times bigger), the dead letter says so (``payload_truncated``) and carries the
    original's length, its sha256 and its first 64 KiB — a dead letter the broker
    refuses would drop our connection, and the original would come back for ever.
    """
    reason = "; ".join(msg.problems) if len(msg.problems) <= 5 else (
        "; ".join(msg.problems[:5]) + f"; … {len(msg.problems) - 5} more")
    body: dict[str, object] = {
        "reason": reason,
        "topic": msg.topic,
        "site": msg.site,
        "received_ms": msg.received_ms,
        "ingest": client_id,
    }
    if msg.refused_lines:
        body["refused_lines"] = msg.refused_lines
    data = json.dumps({**body, **_payload_fields(msg.payload, cut=False)}, ensure_ascii=True).encode("ascii")
    if len(data) <= max_bytes:
        return data
    body["reason"] = reason[:2000]
    if len(msg.refused_lines) > DEADLETTER_MAX_REFUSED_LINES:
        body["refused_lines"] = msg.refused_lines[:DEADLETTER_MAX_REFUSED_LINES]
        body["refused_lines_total"] = len(msg.refused_lines)
    body.update(payload_truncated=True, payload_bytes=len(msg.payload),
                payload_sha256=hashlib.sha256(msg.payload).hexdigest())
    head = DEADLETTER_HEAD_BYTES
    while True:
        data = json.dumps({**body, **_payload_fields(msg.payload[:head], cut=True)},
                          ensure_ascii=True).encode("ascii")
        if len(data) <= max_bytes or head == 0:
            return data
        head //= 2
        if head < 64:
            head = 0
            body.pop("refused_lines", None)


class DeadLetterLog:
    """One log line per (site, kind of reason) per minute, so a stream of garbage cannot flood the journal."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[tuple[str | None, str], float] = {}
        self._suppressed = 0

    @staticmethod
    def _kind(reason: str) -> str:
        """The words of a reason before its first value: ``"device 'X Y' is not a slug"`` -> ``"device"``."""
        text = re.sub(r"^readings\[\d+\]: ", "", reason)
        return re.split(r"['\"=\d\[{(]", text, maxsplit=1)[0].strip()[:60]

    def note(self, site: str | None, reason: str) -> None:
        now = self._clock()
        key = (site, self._kind(reason))
        if now - self._last.get(key, -1e9) < DEADLETTER_LOG_EVERY_S:
            self._suppressed += 1
            return
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < DEADLETTER_LOG_EVERY_S}
        self._last[key] = now
        more = f" ({self._suppressed} other dead letters since the last such line)" if self._suppressed else ""
        self._suppressed = 0
        log.warning("dead letter from site %s: %s%s", site or "?", reason[:200], more)


class DeadLetters:
    """Publishes the dead letters of a batch and tells whether their originals may be acknowledged."""

    def __init__(self, session: BrokerSession, topic: str, stats: IngestStats, beat: Callable[[], None]) -> None:
        self._session = session
        self.topic = topic
        self._stats = stats
        self._beat = beat
        """Called while waiting for PUBACKs: the writer thread is making progress."""
        self._log = DeadLetterLog(time.monotonic)
        self._refused = False
        """The broker refused a dead letter (ACL?) and no dead letter got through since: logged once."""

    def publish(self, dead: list[Message], stop: threading.Event) -> bool:
        """Publish every dead letter at QoS 1 and wait for the broker's PUBACKs before acking originals.

        False when the connection dropped first, or when the broker refused a dead letter
        (PUBACK reason code >= 0x80, e.g. 0x87 when the ingest user may not write on
        ``<root>/_deadletter``): the originals stay unacknowledged — the broker redelivers
        them on the next connection — rather than be acknowledged and lost. A dead letter
        may then be published twice, never zero times.
        """
        session = self._session
        budget = session.max_packet_bytes - PACKET_OVERHEAD_BYTES
        infos = []
        for msg in dead:
            self._log.note(msg.site, msg.problems[0])
            infos.append(session.client.publish(self.topic, deadletter_payload(msg, session.client_id, budget), qos=1))
        refused: list[ReasonCode] = []
        for info in infos:
            try:
                while not info.is_published():
                    if stop.is_set() or not session.connected.is_set():
                        return False
                    info.wait_for_publish(timeout=0.1)
                    self._beat()
            except (ValueError, RuntimeError):  # not sent: no connection
                return False
            code = session.take_puback(info.mid)
            if code is not None and code.is_failure:
                refused.append(code)
        if refused:
            self._stats.deadletters_refused += len(refused)
            if not self._refused:
                self._refused = True
                log.error("the broker refused %d dead letter(s) on %s (%s): their %d original message(s) stay "
                          "unacknowledged; let the ingest user write on %s (ACL) and restart the ingest",
                          len(refused), self.topic, refused[0], len(dead), self.topic)
            return False
        if self._refused:
            self._refused = False
            log.info("the broker accepts dead letters on %s again", self.topic)
        self._stats.deadletters += len(dead)
        return True
