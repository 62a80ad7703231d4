"""The demo's public site: the ingest builds it every minute (``public:`` in the demo's ingest.yaml);
the demo serves the folder on a local port so it can be opened in a browser.

Python's ``http.server`` is enough for a demo on 127.0.0.1; a town publishes
the folder with nginx, Caddy or any static host (README, "The public site").
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BUILD_EVERY_S = 60


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def public_section(run_dir: Path) -> dict[str, Any]:
    """The ``public:`` section of the demo's ingest.yaml."""
    return {"out": str((run_dir / "public").resolve()), "every": BUILD_EVERY_S}


def serve_folder(folder: Path, port: int) -> ThreadingHTTPServer:
    """Serve *folder* (a symlink swapped at each build: followed at every request) on 127.0.0.1:*port*."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="public-site-http", daemon=True).start()
    return server
