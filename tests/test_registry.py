"""Every driver name a configuration may use builds a driver of the right kind."""

from __future__ import annotations

import pytest

from agent.devices.profile import available_profiles, load_profile
from agent.devices.registry import make_driver
from agent.edge.config import parse_agent_config


@pytest.mark.parametrize("driver", ["sunspec", *available_profiles()])
def test_each_driver_name_builds_a_driver(driver: str) -> None:
    kind = "inverter" if driver == "sunspec" else load_profile(driver).metadata.kind
    config = parse_agent_config(
        {
            "site": {"slug": "mairie", "name": "Mairie", "peak_power_w": 1000, "latitude": 50.4, "longitude": 2.8},
            "broker": {"host": "localhost"},
            "devices": [{"name": "d", "kind": kind, "driver": driver, "max_registers": 60,
                         "transport": {"type": "tcp", "host": "127.0.0.1"}}],
        },
        "test",
    )
    built = make_driver(config.devices[0])
    assert built.name == "d"
    assert built.kind == kind


def test_at_least_the_promised_profiles_ship() -> None:
    assert {"huawei_sun2000", "sdm630", "sdm120"} <= set(available_profiles())
    assert len(available_profiles()) >= 4
