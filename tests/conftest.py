"""Shared pytest set-up. Fixtures that start real servers live in their own plugin modules."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.mosquitto",
    "tests.fixtures.influx",
    "tests.fixtures.modbus_servers",
]
