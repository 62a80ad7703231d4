"""The agent's health as data: what ``terril/<site>/health`` carries every 60 s."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable

from agent.edge.poller import DevicePoller


def current_rss_bytes() -> int:
    """Resident memory now (``/proc/self/statm``), falling back to the peak on other systems."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def health_metrics(
    started_at: float,
    pollers: Iterable[DevicePoller],
    spool_depth: int,
    spool_oldest_s: float,
    spool_dropped: int,
    publish_refused: int,
    now: float | None = None,
) -> tuple[dict[str, float | int], dict[str, dict[str, object]]]:
    """Agent metrics (``agent`` measurement fields) and per-device detail."""
    now = time.time() if now is None else now
    pollers = list(pollers)
    metrics: dict[str, float | int] = {
        "up": 1,
        "uptime_s": round(now - started_at, 1),
        "spool_depth": spool_depth,
        "spool_oldest_s": round(spool_oldest_s, 1),
        "spool_dropped": spool_dropped,
        "poll_ok": sum(p.stats.polls_ok for p in pollers),
        "poll_errors": sum(p.stats.polls_failed for p in pollers),
        "modbus_requests": sum(p.stats.requests_last_poll for p in pollers),
        "publish_refused": publish_refused,
        "rss_bytes": current_rss_bytes(),
    }
    devices = {p.name: p.stats.to_dict() for p in pollers}
    return metrics, devices
