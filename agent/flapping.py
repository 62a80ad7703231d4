"""Damping of status lines for a device or unit whose status keeps flipping.

The logs say one line per state change. A device that answers an exception on
every second request changes state at every poll: 30 lines a minute, a night of
log flood, and the one line that matters drowned. So each device (and each
Modbus unit) keeps a :class:`FlapDamper`: changes are logged as usual until
``FLAP_CHANGES`` of them happen within ``FLAP_WINDOW_S``; then one line says the
status is flapping, further changes are only counted, one summary line follows
every ``FLAP_SUMMARY_S`` while it lasts, and one line says when the status has
held still for ``FLAP_SETTLE_S``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

FLAP_CHANGES = 3
"""This many status changes within FLAP_WINDOW_S make a status flapping (the third is not logged)."""
FLAP_WINDOW_S = 300.0
FLAP_SUMMARY_S = 600.0
"""While flapping, one summary line this often."""
FLAP_SETTLE_S = 300.0
"""A flapping status that has not changed for this long is stable again."""


class FlapDamper:
    """Decides which status changes of one device or unit get their own log line."""

    def __init__(self, name: str, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.log = logger
        self.clock = clock
        self.flapping = False
        self._recent: deque[float] = deque()
        self._last_change = 0.0
        self._status = ""
        self._reason = ""
        self._since = 0.0
        self._summary_at = 0.0
        self._changes = 0
        """Changes since the flapping started."""
        self._changes_since_summary = 0

    def allow(self, status: str, reason: str) -> bool:
        """Called at each status change: True when the caller should log it as usual."""
        now = self.clock()
        self._last_change, self._status, self._reason = now, status, reason
        if self.flapping:
            self._changes += 1
            self._changes_since_summary += 1
            return False
        self._recent.append(now)
        while self._recent and now - self._recent[0] > FLAP_WINDOW_S:
            self._recent.popleft()
        if len(self._recent) < FLAP_CHANGES:
            return True
        self.flapping = True
        self._since = self._summary_at = now
        self._changes = self._changes_since_summary = 0
        self.log.warning("%s: status flapping (%d changes in %.0f s), now %s (%s); further changes are "
                         "counted and summarised every %.0f min", self.name, len(self._recent),
                         now - self._recent[0], status, reason, FLAP_SUMMARY_S / 60)
        return False

    def tick(self) -> None:
        """Called regularly (each poll or read): the summary line, and the end of the flapping."""
        if not self.flapping:
            return
        now = self.clock()
        if now - self._last_change >= FLAP_SETTLE_S:
            self.log.info("%s: status stable again: %s for %.0f s (%d changes while flapping for %.0f s)",
                          self.name, self._status, now - self._last_change, self._changes,
                          self._last_change - self._since)
            self.flapping = False
            self._recent.clear()
        elif now - self._summary_at >= FLAP_SUMMARY_S:
            self.log.warning("%s: status still flapping: %d changes in the last %.0f min, now %s (%s)",
                             self.name, self._changes_since_summary, (now - self._summary_at) / 60,
                             self._status, self._reason)
            self._summary_at = now
            self._changes_since_summary = 0
