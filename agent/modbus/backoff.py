"""Capped exponential backoff with jitter, for reconnecting to a device that went away.

Why: an inverter that sleeps at night, or a gateway that reboots, must not be
hammered with a connection attempt per poll (some inverters lock up when they
are), and twenty agents must not all retry in the same second after a network
outage — hence the jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """When the next connection attempt is allowed, after consecutive failures.

    The n-th consecutive failure waits ``min(maximum, initial * 2**(n-1))``
    seconds, shortened by up to ``jitter`` (a fraction) so the cap is never
    exceeded and peers spread out.
    """

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0
    retry_at: float = 0.0
    """Monotonic time before which no new attempt is made (0: try now)."""

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self.initial}, {self.maximum}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def ready(self, now: float) -> bool:
        """True if a connection attempt may be made at monotonic time *now*."""
        return now >= self.retry_at

    def failed(self, now: float) -> float:
        """Record a failed attempt at *now*; return the delay before the next one."""
        self.failures += 1
        delay = float(min(self.maximum, self.initial * 2 ** (self.failures - 1)))
        delay *= 1.0 - self.jitter * self.rng.random()
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        """The link works again: the next failure starts from ``initial``."""
        self.failures = 0
        self.retry_at = 0.0
