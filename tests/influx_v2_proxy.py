"""Test-only stand-in for InfluxDB 1.8's ``/api/v2/write`` in front of Debian's InfluxDB 1.6.

InfluxDB 1.8+ maps ``POST /api/v2/write?org=&bucket=&precision=`` onto
``/write?db=<bucket>``; 1.6 has no such endpoint. This tiny threaded proxy
does the same mapping so the influxdb-client writer path runs against a real
database: the (gzip) body goes through untouched, the status code and error
body come back untouched, and the ``Authorization: Token …`` header is
checked when a token is set (401 otherwise, as a real server answers).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class InfluxV2Proxy:
    def __init__(self, upstream_port: int, token: str | None = None, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.token = token
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # /ping and /health probes
                self._reply(204 if self.path.startswith("/ping") else 404, b"")

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if url.path != "/api/v2/write":
                    self._reply(404, b'{"code":"not found","message":"path not found"}')
                    return
                if proxy.token is not None and self.headers.get("Authorization") != f"Token {proxy.token}":
                    self._reply(401, b'{"code":"unauthorized","message":"unauthorized access"}')
                    return
                query = dict(urllib.parse.parse_qsl(url.query))
                if "bucket" not in query:
                    self._reply(400, b'{"code":"invalid","message":"bucket is required"}')
                    return
                params = {"db": query["bucket"], "precision": query.get("precision", "ns")}
                headers = {"Content-Type": "text/plain; charset=utf-8"}
                if self.headers.get("Content-Encoding"):
                    headers["Content-Encoding"] = self.headers["Content-Encoding"]
                proxy.requests += 1
                try:
                    conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                    conn.request("POST", "/write?" + urllib.parse.urlencode(params), body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    conn.close()
                except OSError as exc:
                    # InfluxDB down behind the proxy: what a load balancer answers.
                    self._reply(503, f'{{"code":"unavailable","message":"{type(exc).__name__}"}}'.encode())
                    return
                self._reply(resp.status, data, resp.getheader("Content-Type") or "application/json")

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="influx-v2-proxy", daemon=True)

    def start(self) -> InfluxV2Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> InfluxV2Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
