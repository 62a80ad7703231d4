"""terril — solar monitoring for a town: edge agent, ingest and dashboards."""

from __future__ import annotations

__version__ = "0.1.0"
