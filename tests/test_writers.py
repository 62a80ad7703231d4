"""Both InfluxDB writers against a real InfluxDB 1.6 (v2 path through the test proxy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.central.points import make_point
from agent.central.writers import V1Writer, V2Writer, WriteUnavailable
from tests.fixtures.influx import InfluxServer
from tests.fixtures.ports import free_port
from tests.influx_v2_proxy import InfluxV2Proxy

DB = "terril"
TS = 1_700_000_000_000


@pytest.fixture(params=["v1", "v2"])
def writer_and_db(request: pytest.FixtureRequest, influx: InfluxServer) -> Iterator[tuple[object, InfluxServer]]:
    influx.create_database(DB)
    if request.param == "v1":
        w: V1Writer | V2Writer = V1Writer(influx.url, DB, timeout=5)
        yield w, influx
        w.close()
    else:
        with InfluxV2Proxy(influx.port, token="s3cret") as proxy:
            w = V2Writer(proxy.url, "ville", DB, "s3cret", timeout=5)
            yield w, influx
            w.close()


def _inverter(device: str, ts: int, **fields: float | int) -> object:
    return make_point("inverter", {"site": "mairie", "device": device}, dict(fields), ts)


def test_points_are_stored_with_their_types(writer_and_db: tuple) -> None:
    writer, influx = writer_and_db
    points = [_inverter("ond-1", TS + i * 1000, ac_power_w=1000 + i, state=4) for i in range(50)]
    assert writer.write(points) == []
    rows = influx.rows('SELECT ac_power_w, state FROM inverter GROUP BY "device"', DB)
    assert len(rows) == 50
    assert rows[0]["device"] == "ond-1" and rows[0]["time"] == TS and rows[0]["ac_power_w"] == 1000.0
    types = influx.rows("SHOW FIELD KEYS FROM inverter", DB)
    assert {r["fieldKey"]: r["fieldType"] for r in types} == {"ac_power_w": "float", "state": "integer"}


def test_type_conflict_isolates_the_one_point(writer_and_db: tuple) -> None:
    writer, influx = writer_and_db
    status, _ = influx.write_lines(DB, f"inverter,site=mairie,device=x temp_cabinet_c=1i {TS}")
    assert status == 204
    points = [_inverter("ond-1", TS + i, ac_power_w=float(i)) for i in range(20)]
    bad = _inverter("ond-2", TS + 5, ac_power_w=1.0, temp_cabinet_c=30.5)
    points.insert(7, bad)
    rejected = writer.write(points)
    assert [r.point for r in rejected] == [bad]
    assert "conflict" in rejected[0].reason
    rows = influx.rows("SELECT count(ac_power_w) FROM inverter WHERE device = 'ond-1'", DB)
    assert rows[0]["count"] == 20


def test_unreachable_server_is_retryable() -> None:
    port = free_port()
    for writer in (V1Writer(f"http://127.0.0.1:{port}", DB, timeout=1),
                   V2Writer(f"http://127.0.0.1:{port}", "o", DB, "t", timeout=1)):
        with pytest.raises(WriteUnavailable):
            writer.write([_inverter("a", TS, ac_power_w=1.0)])
        writer.close()


def test_wrong_token_is_retryable_not_a_dead_letter(influx: InfluxServer) -> None:
    influx.create_database(DB)
    with InfluxV2Proxy(influx.port, token="right") as proxy:
        writer = V2Writer(proxy.url, "ville", DB, "wrong", timeout=5)
        with pytest.raises(WriteUnavailable) as exc:
            writer.write([_inverter("a", TS, ac_power_w=1.0)])
        assert exc.value.status == 401
        assert "wrong" not in repr(writer)
        writer.close()


def test_v1_survives_influx_restart(influx: InfluxServer) -> None:
    influx.create_database(DB)
    writer = V1Writer(influx.url, DB, timeout=5)
    assert writer.write([_inverter("a", TS, ac_power_w=1.0)]) == []
    influx.stop()
    with pytest.raises(WriteUnavailable):
        writer.write([_inverter("a", TS + 1, ac_power_w=2.0)])
    influx.start()
    assert writer.write([_inverter("a", TS + 1, ac_power_w=2.0)]) == []
    assert influx.rows("SELECT count(ac_power_w) FROM inverter", DB)[0]["count"] == 2
    writer.close()


def _short_retention(influx: InfluxServer) -> None:
    status, body = influx._post("/query", {"q": f'CREATE RETENTION POLICY "hour" ON "{DB}" DURATION 1h '
                                                "REPLICATION 1 DEFAULT"})
    assert status == 200, body


class CountingV1Writer(V1Writer):
    """Counts the HTTP requests (bisection costs one per half)."""

    requests = 0

    def _send(self, body: bytes) -> None:
        self.requests += 1
        super()._send(body)


def test_a_backlog_beyond_retention_is_refused_whole_not_point_by_point(influx: InfluxServer) -> None:
    """InfluxDB 1.x says "points beyond retention policy dropped=N": when N is every line sent,
    the range is refused at once, and the ingest's watchdog hears of every request."""
    import time

    influx.create_database(DB)
    _short_retention(influx)
    now = int(time.time() * 1000)
    old = [f"inverter,site=mairie,device=ond-1 ac_power_w={i}.0 {now - 3 * 86_400_000 + i * 1000}"
           for i in range(2000)]
    fresh = [f"inverter,site=mairie,device=ond-1 ac_power_w={i}.0 {now - 60_000 + i}" for i in range(10)]
    writer = CountingV1Writer(influx.url, DB, timeout=5)
    beats: list[int] = []
    try:
        refused = writer.write_lines(old)
        assert [i for i, _ in refused] == list(range(2000))
        assert "beyond retention" in refused[0][1]
        assert writer.requests == 1  # was 3999: a bisection down to every single point

        writer.requests, beats[:] = 0, []
        refused = writer.write_lines(old + fresh, progress=lambda: beats.append(writer.requests))
        assert [i for i, _ in refused] == list(range(2000))
        assert writer.requests <= 30  # was ~2 per point
        assert len(beats) == writer.requests  # one progress call before every request
    finally:
        writer.close()
    assert influx.rows("SELECT count(ac_power_w) FROM inverter", DB)[0]["count"] == 10


TEXTS = ["a\nb", "line 1\r\nline 2\n", 'quote " and \\ backslash', "ends with a backslash \\", "tab\there", "\n"]


def test_text_fields_round_trip_newlines_quotes_and_backslashes(writer_and_db: tuple) -> None:
    """Issue 13.4: ``a\\nb`` was stored as a literal backslash-n. Each text sits between ordinary
    points of the same request, so a raw newline inside the quotes must not end the line there."""
    writer, influx = writer_and_db
    points = []
    for i, text in enumerate(TEXTS):
        points.append(_inverter("ond-1", TS + i, ac_power_w=float(i)))
        points.append(make_point("event", {"site": "mairie", "device": "ond-1", "code": f"C{i}"},
                                 {"active": 1, "text": text}, TS + i))
    points.append(make_point("site_info", {"site": "mairie"}, {"name": "Hôtel\nde ville", "panels": 3}, TS))
    assert writer.write(points) == []
    rows = influx.rows('SELECT "text" FROM event GROUP BY "code"', DB)
    assert {r["code"]: r["text"] for r in rows} == {f"C{i}": t for i, t in enumerate(TEXTS)}
    assert influx.rows("SELECT count(ac_power_w) FROM inverter", DB)[0]["count"] == len(TEXTS)
    assert influx.rows('SELECT "name", panels FROM site_info', DB)[0]["name"] == "Hôtel\nde ville"
