"""LinkPool: one link per endpoint, contradictory settings refused; Backoff policy."""

from __future__ import annotations

import random

import pytest

from agent.errors import ConfigError
from agent.modbus.backoff import Backoff
from agent.modbus.pool import LinkPool
from agent.modbus.rtu import RtuBus
from agent.modbus.tcp import TcpLink


def test_tcp_links_are_shared_per_endpoint() -> None:
    pool = LinkPool()
    a = pool.tcp("192.168.1.50", 502)
    assert pool.tcp("192.168.1.50 ", 502) is a
    assert pool.tcp("192.168.1.50", 1502) is not a
    assert isinstance(a, TcpLink) and a.name == "192.168.1.50:502"
    assert len(pool.links) == 2


def test_rtu_bus_is_shared_per_port_and_refuses_other_settings() -> None:
    pool = LinkPool()
    bus = pool.rtu("/dev/ttyUSB0", 9600, "N", 1)
    assert isinstance(bus, RtuBus)
    assert pool.rtu("/dev/ttyUSB0", 9600, "N", 1) is bus
    with pytest.raises(ConfigError) as caught:
        pool.rtu("/dev/ttyUSB0", 19200, "E", 1, where="devices[3].transport")
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("devices[3].transport: baudrate 19200 differs from 9600")
    assert "/dev/ttyUSB0" in problems[0] and "parity 'E'" in problems[1]


def test_tcp_link_refuses_a_different_timeout() -> None:
    pool = LinkPool()
    pool.tcp("10.0.0.2", 502, timeout=3.0)
    with pytest.raises(ConfigError, match=r"timeout 5\.0 differs from 3\.0"):
        pool.tcp("10.0.0.2", 502, timeout=5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parity": "X"}, "parity must be one of N, E, O"),
        ({"stopbits": 3}, "stopbits must be 1 or 2"),
        ({"bytesize": 9}, "bytesize must be 7 or 8"),
        ({"baudrate": 0}, "baudrate must be > 0"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"pause": -1}, "pause must be >= 0"),
    ],
)
def test_bad_serial_settings_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        LinkPool(source="agent.yaml").rtu("/dev/ttyUSB1", where="devices[0].transport", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith("agent.yaml: devices[0].transport: /dev/ttyUSB1")


def test_bad_tcp_port_and_unit_are_config_errors() -> None:
    pool = LinkPool()
    with pytest.raises(ConfigError, match=r"TCP port must be 1\.\.65535"):
        pool.tcp("10.0.0.3", 70000)
    with pytest.raises(ConfigError, match=r"unit id must be 0\.\.255"):
        pool.unit(pool.tcp("10.0.0.3", 502), 300, where="devices[1].unit")


def test_backoff_doubles_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, jitter=0.0)
    delays = [backoff.failed(now=0.0) for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert not backoff.ready(59.9) and backoff.ready(60.0)
    backoff.succeeded()
    assert backoff.ready(0.0)
    assert backoff.failed(now=100.0) == 1.0


def test_backoff_jitter_shortens_but_never_exceeds_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.failed(now=0.0) for _ in range(20)]
    assert all(0.8 * min(60, 2**i) <= d <= min(60, 2**i) for i, d in enumerate(delays))
    assert len({round(d, 6) for d in delays[-5:]}) == 5  # peers spread out


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=5, maximum=1)
