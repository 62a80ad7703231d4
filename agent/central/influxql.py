"""A tiny InfluxQL client over the v1 HTTP API (``/query`` and ``/write``).

Why not influxdb-client: InfluxQL is the one query language that InfluxDB 1.x,
2.x (v1-compatibility API with a DBRP mapping) and 3 Core all speak, over the
same ``/query`` endpoint, and the rollups need nothing more than "send a few
statements, read back series". The standard library does that in a page, with
no dependency to pin on the central server.

Authentication, the same on the three versions:
* ``token`` -> ``Authorization: Token <token>`` (2.x and 3.x);
* ``username`` and ``password`` -> HTTP Basic (1.x with auth enabled; 3.x
  accepts a token as the password too).

Errors say what to do: :class:`InfluxUnavailable` (connection refused,
timeout, HTTP 5xx: try again later) and :class:`InfluxQueryError` (the server
refused the statement or the credentials: retrying will not help).
Secrets never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.errors import TerrilError

MAX_URL_CHARS = 7000
"""Statements are sent with GET (the one method every version documents for
``/query``), so a batch of statements is split to keep each URL under common
proxy limits (8 kB)."""


class InfluxUnavailable(TerrilError):
    """InfluxDB did not answer, or answered 5xx: try again later."""


class InfluxQueryError(TerrilError):
    """InfluxDB refused a statement, the database or the credentials: fix the query or config."""


@dataclass(frozen=True)
class Series:
    """One series of a statement's result: ``values`` rows follow ``columns`` (``time`` first)."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        """Each row as a mapping column -> value."""
        return [dict(zip(self.columns, row, strict=False)) for row in self.values]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier (measurement, field, tag key) in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal (tag value) in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_ms(ms: int) -> str:
    """An epoch-milliseconds time literal, e.g. ``1761343200000ms``."""
    return f"{int(ms)}ms"


@dataclass(frozen=True)
class InfluxQLClient:
    """Send InfluxQL statements to one database and get :class:`Series` back.

    Times in results are epoch milliseconds (``epoch=ms``).
    """

    url: str
    """Base URL, e.g. ``http://localhost:8086`` (a path prefix behind a proxy is kept)."""
    database: str
    """Database (1.x, 3.x) or bucket name mapped by DBRP (2.x)."""
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    retention_policy: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"InfluxDB url {self.url!r} must start with http:// or https://")
        if not self.database:
            raise ValueError("InfluxDB database (or bucket) name is empty")

    # ------------------------------------------------------------------ queries

    def query(self, q: str, params: dict[str, str] | None = None) -> list[Series]:
        """Run one statement; return its series (empty when nothing matched)."""
        return self.query_many([q], params)[0]

    def query_many(self, statements: Sequence[str], params: dict[str, str] | None = None) -> list[list[Series]]:
        """Run several statements (in as few requests as URL length allows); one result per statement."""
        results: list[list[Series]] = []
        for batch in self._batches(statements, params):
            results.extend(self._request(batch, params))
        return results

    def _base_params(self, params: dict[str, str] | None) -> dict[str, str]:
        out = {"db": self.database, "epoch": "ms"}
        if self.retention_policy:
            out["rp"] = self.retention_policy
        out.update(params or {})
        return out

    def _batches(self, statements: Sequence[str], params: dict[str, str] | None) -> Iterable[list[str]]:
        overhead = len(self.url) + len(urllib.parse.urlencode(self._base_params(params))) + 16
        batch: list[str] = []
        size = overhead
        for stmt in statements:
            stmt = stmt.strip().rstrip(";")
            cost = len(urllib.parse.quote_plus(stmt + ";"))
            if batch and size + cost > MAX_URL_CHARS:
                yield batch
                batch, size = [], overhead
            batch.append(stmt)
            size += cost
        if batch:
            yield batch

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        elif self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return headers

    def _request(self, statements: list[str], params: dict[str, str] | None) -> list[list[Series]]:
        query = dict(self._base_params(params), q=";".join(statements))
        url = self.url.rstrip("/") + "/query?" + urllib.parse.urlencode(query)
        body = self._send(urllib.request.Request(url, headers=self._headers(), method="GET"), "query")
        try:
            doc = json.loads(body)
        except ValueError:
            raise InfluxQueryError(f"InfluxDB {self.url}: /query answered something that is not JSON") from None
        if isinstance(doc, dict) and doc.get("error"):
            raise InfluxQueryError(f"InfluxDB {self.url}: {doc['error']}")
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list) or len(results) != len(statements):
            raise InfluxQueryError(
                f"InfluxDB {self.url}: expected {len(statements)} result(s) from /query, got {results!r:.200}"
            )
        out: list[list[Series]] = []
        for stmt, result in zip(statements, results, strict=False):
            if result.get("error"):
                raise InfluxQueryError(f"InfluxDB {self.url} refused {stmt!r}: {result['error']}")
            out.append(
                [
                    Series(s.get("name", ""), dict(s.get("tags") or {}), list(s["columns"]), list(s["values"]))
                    for s in result.get("series") or []
                ]
            )
        return out

    # ------------------------------------------------------------------ writes

    def write_lines(self, lines: Sequence[str]) -> None:
        """POST line protocol (millisecond timestamps) to ``/write`` of the same database.

        ``/write`` is the v1 endpoint that 1.x, 2.x (v1-compatibility, DBRP) and
        3.x all serve. A write of a point that already exists (same series and
        timestamp) overwrites its fields: this is what makes rollups idempotent.
        """
        if not lines:
            return
        query = {"db": self.database, "precision": "ms"}
        if self.retention_policy:
            query["rp"] = self.retention_policy
        url = self.url.rstrip("/") + "/write?" + urllib.parse.urlencode(query)
        headers = dict(self._headers(), **{"Content-Type": "text/plain; charset=utf-8"})
        data = ("\n".join(lines) + "\n").encode("utf-8")
        self._send(urllib.request.Request(url, data=data, headers=headers, method="POST"), "write")

    # ------------------------------------------------------------------ transport

    def _send(self, request: urllib.request.Request, what: str) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code >= 500:
                raise InfluxUnavailable(f"InfluxDB {self.url}: /{what} answered HTTP {exc.code}: {detail}") from None
            if exc.code in (401, 403):
                raise InfluxQueryError(
                    f"InfluxDB {self.url}: /{what} refused the credentials (HTTP {exc.code}): {detail}"
                ) from None
            raise InfluxQueryError(f"InfluxDB {self.url}: /{what} answered HTTP {exc.code}: {detail}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfluxUnavailable(f"InfluxDB {self.url} unreachable for /{what}: {reason}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else ""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("error"):
            return str(doc["error"])
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    except ValueError:
        pass
    return body.strip()[:300]
