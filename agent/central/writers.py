"""InfluxDB writers: the same line protocol, two ways of sending it.

* :class:`V2Writer` — InfluxDB 2.x, 3.x and 1.8+, through influxdb-client's
  synchronous write API (``/api/v2/write``, org, bucket, token).
* :class:`V1Writer` — InfluxDB 1.x before 1.8, through ``/write?db=&rp=``
  (``http.client`` with keep-alive, basic auth).

Both gzip the body, use millisecond precision, and split failures in two kinds,
because the ingest must answer them in opposite ways:

* :class:`WriteUnavailable` — InfluxDB is down, slow, overloaded or refuses
  us (connection refused, timeout, 5xx, 429, 401/403/404): nothing is lost by
  waiting, so the ingest keeps the MQTT messages unacknowledged and retries.
* a point-level rejection (400/422: field type conflict, bad line, 413: too
  large) — retrying would fail forever and block every later point. ``write``
  bisects the batch until each refused point stands alone, writes the rest,
  and returns the refused points with InfluxDB's message for the dead letter.
  Re-sending a half that was already (partly) written is harmless: a point
  with the same series and timestamp overwrites itself.

  InfluxDB 1.x ends a partial-write error with ``dropped=N``. When N is the
  number of lines sent, every one of them was refused for that same reason
  (typically a backlog older than the retention policy: "points beyond
  retention policy"), so the whole range is returned at once instead of
  being bisected down to single points, two requests per point.

``write_lines`` calls its ``progress`` callback before every request, so the
ingest's watchdog sees a long bisection as progress, not as a stuck loop.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import logging
import re
import socket
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.central.points import Point, encode_line
from agent.errors import TerrilError

log = logging.getLogger(__name__)

POINT_LEVEL_STATUSES = frozenset({400, 413, 422})
"""Statuses that depend on the points sent, not on the server's health."""
_DROPPED_RE = re.compile(r"\bdropped=(\d+)")


def dropped_count(message: str) -> int | None:
    """N of InfluxDB 1.x's ``partial write: … dropped=N`` (None when the message names no count)."""
    found = _DROPPED_RE.search(message)
    return int(found.group(1)) if found else None


class WriteUnavailable(TerrilError):
    """InfluxDB cannot take the write now (down, timeout, 5xx, 429, auth): retry later, lose nothing."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PointsRejected(TerrilError):
    """InfluxDB refused the body for what it contains (4xx that concerns points). Internal to bisection."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Rejected:
    """A point InfluxDB refuses, and its words for why."""

    point: Point
    reason: str


class InfluxWriter(Protocol):
    def write(self, points: list[Point]) -> list[Rejected]:
        """Store *points*; return the ones refused point by point. Raise WriteUnavailable to retry later."""
        ...

    def write_lines(
        self, lines: Sequence[str], progress: Callable[[], None] | None = None
    ) -> list[tuple[int, str]]:
        """Store line-protocol *lines*; return (index, reason) of each line refused on its own.

        The ingest's path: its lines are encoded once, while being validated. *progress*
        is called before each HTTP request (a bisection makes several).
        """
        ...

    def close(self) -> None: ...


def _error_message(status: int, body: bytes | str | None) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("error") or data.get("message") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    return f"HTTP {status}: {text[:300]}" if text else f"HTTP {status}"


class _BisectingWriter:
    """Splits a refused batch until the refused points are isolated."""

    def _send(self, body: bytes) -> None:
        raise NotImplementedError

    def write(self, points: list[Point]) -> list[Rejected]:
        if not points:
            return []
        return [Rejected(points[i], reason) for i, reason in self.write_lines([encode_line(p) for p in points])]

    def write_lines(
        self, lines: Sequence[str], progress: Callable[[], None] | None = None
    ) -> list[tuple[int, str]]:
        if not lines:
            return []
        return self._write_range(lines, 0, len(lines), progress)

    def _write_range(
        self, lines: Sequence[str], start: int, end: int, progress: Callable[[], None] | None
    ) -> list[tuple[int, str]]:
        if progress is not None:
            progress()
        try:
            self._send("\n".join(lines[start:end]).encode("utf-8"))
            return []
        except PointsRejected as exc:
            reason = str(exc)
            if end - start == 1 or dropped_count(reason) == end - start:
                return [(i, reason) for i in range(start, end)]  # every line of the range refused
            mid = (start + end) // 2
            return self._write_range(lines, start, mid, progress) + self._write_range(lines, mid, end, progress)


def _classify(status: int, body: bytes | str | None) -> None:
    """Raise the error a non-2xx status means."""
    message = _error_message(status, body)
    if status in POINT_LEVEL_STATUSES:
        raise PointsRejected(message, status)
    raise WriteUnavailable(message, status)


class V1Writer(_BisectingWriter):
    """``POST /write?db=&rp=&precision=ms`` on one kept-alive connection (InfluxDB 1.x)."""

    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"InfluxDB url {url!r} must be http(s)://host[:port]")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        query = {"db": database, "precision": "ms"}
        if retention_policy:
            query["rp"] = retention_policy
        self._database = database
        self._username = username
        self._base = parsed.path.rstrip("/")
        self._path = self._base + "/write?" + urllib.parse.urlencode(query)
        self._timeout = timeout
        self._headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:  # never show the credentials
        return f"V1Writer({self._host}:{self._port}{self._path})"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, body: bytes) -> None:
        data = gzip.compress(body, compresslevel=1)
        status, payload = self._post(self._path, data, self._headers)
        if status == 404 and b"database not found" in payload:
            self._create_database()
            status, payload = self._post(self._path, data, self._headers)
        if 200 <= status < 300:
            return
        _classify(status, payload)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive connection the server closed while idle: one fresh try.
                self._drop_connection()
                if attempt == 2:
                    raise WriteUnavailable(f"connection lost: {exc}") from None
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                kind = "timeout" if isinstance(exc, socket.timeout) else type(exc).__name__
                raise WriteUnavailable(f"{kind}: {exc}") from None
            if resp.will_close:
                self._drop_connection()
            return resp.status, payload
        raise AssertionError("unreachable")

    def _create_database(self) -> None:
        """The database is missing: create it when our user may (no authentication, or an
        admin), else say exactly what an admin must run. Nothing is acknowledged meanwhile."""
        statement = f'CREATE DATABASE "{self._database}"'
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, payload = self._post(self._base + "/query", urllib.parse.urlencode({"q": statement}).encode(), headers)
        if status == 200 and b'"error"' not in payload:
            log.warning("InfluxDB database %r did not exist: created it", self._database)
            return
        who = f"user {self._username!r}" if self._username else "this ingest (no user configured)"
        raise WriteUnavailable(
            f"InfluxDB database {self._database!r} does not exist and {who} may not create it "
            f"({_error_message(status, payload)}); as an InfluxDB admin run: "
            f"curl -XPOST {'https' if self._https else 'http'}://{self._host}:{self._port}/query -u ADMIN "
            f"--data-urlencode 'q={statement}'  (see grafana/README.md)",
            404,
        )

    def close(self) -> None:
        self._drop_connection()


class V2Writer(_BisectingWriter):
    """influxdb-client's synchronous write API (InfluxDB 2.x, 3.x, 1.8+ ``/api/v2/write``)."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout: float = 10.0) -> None:
        # Imported here: the edge agent never loads influxdb-client (not installed on a Pi).
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        self._url = url
        self._org = org
        self._bucket = bucket
        self._precision = WritePrecision.MS
        # retries=False: the ingest owns the retry policy (back-off, no ack meanwhile).
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=int(timeout * 1000), enable_gzip=True, retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def __repr__(self) -> str:
        return f"V2Writer({self._url}, org={self._org!r}, bucket={self._bucket!r})"

    def _send(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._bucket, org=self._org, record=body,
                            write_precision=self._precision)  # type: ignore[arg-type]  # WritePrecision.MS is a str
        except ApiException as exc:
            _classify(int(exc.status or 0), exc.body)
        except Exception as exc:  # urllib3 connection errors, timeouts: all mean "not now"
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]  # influxdb-client leaves close() unannotated
        self._client.close()  # type: ignore[no-untyped-call]


def make_writer(influx: object) -> InfluxWriter:
    """The writer the ``influxdb`` section of the ingest config asks for."""
    from agent.central.config import InfluxConfig

    assert isinstance(influx, InfluxConfig)
    if influx.api == "v2":
        assert influx.org is not None and influx.bucket is not None
        token = influx.token.get_secret_value() if influx.token is not None else None
        return V2Writer(influx.url, influx.org, influx.bucket, token, influx.timeout)
    assert influx.database is not None
    password = influx.password.get_secret_value() if influx.password is not None else None
    return V1Writer(influx.url, influx.database, influx.retention_policy, influx.username, password, influx.timeout)
