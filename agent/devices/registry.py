"""Build the driver that a ``devices[i]`` config entry names: SunSpec, or a YAML register profile.

This module knows nothing of the agent's config file (``agent.edge.config``
imports *it*, for :data:`SUNSPEC_DRIVER`): a driver is made from any object
with the few attributes of :class:`DriverSpec`.
"""

from __future__ import annotations

from typing import Protocol

from agent.devices.base import DeviceDriver
from agent.schema import DeviceKind

SUNSPEC_DRIVER = "sunspec"
"""The ``driver`` value that selects SunSpec discovery; any other value names a profile."""


class DriverSpec(Protocol):
    """What a driver is made from (a ``DeviceConfig`` of the agent's config is one)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> DeviceKind: ...
    @property
    def driver(self) -> str: ...
    @property
    def logical_device(self) -> int: ...
    @property
    def max_registers(self) -> int: ...


def make_driver(device: DriverSpec) -> DeviceDriver:
    """The driver of one configured device (``driver: sunspec`` or a profile name)."""
    if device.driver == SUNSPEC_DRIVER:
        from agent.devices.sunspec import SunSpecDriver

        return SunSpecDriver(device.name, device.kind, device.logical_device, device.max_registers)
    from agent.devices.profile import load_profile
    from agent.devices.profile_driver import ProfileDriver

    return ProfileDriver(device.name, device.kind, load_profile(device.driver), device.max_registers)
