"""The ingest's scheduled rebuild of the public site (``public.every`` seconds).

A failed build (InfluxDB down, an inventory being edited) publishes nothing:
the previous site stays online. The job logs one line when builds start
failing and one when they work again, never one per attempt, and never raises
into the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import TerrilError

log = logging.getLogger(__name__)


@dataclass
class PublicSiteJob:
    config: Any
    """The ``IngestConfig``; its ``public`` section says where and how."""
    failing: bool = field(default=False, init=False)
    built: int = field(default=0, init=False)

    def __call__(self, at: datetime | None = None) -> bool:
        from agent.public.build import build_site

        public = self.config.public
        try:
            result = build_site(self.config, Path(public.out), at=at, public=public)
        except (TerrilError, OSError, ValueError) as exc:
            if not self.failing:
                log.warning("public site: build failed, the previous site stays online: %s", exc)
            self.failing = True
            return False
        except Exception as exc:  # a bug must not stop the ingest's scheduler either; say what it was
            if not self.failing:
                log.warning("public site: build failed (%s: %s), the previous site stays online",
                            type(exc).__name__, exc, exc_info=True)
            self.failing = True
            return False
        if self.failing or self.built == 0:
            log.info("public site: built %d file(s) in %s", result.files, public.out)
        self.failing = False
        self.built += 1
        return True
