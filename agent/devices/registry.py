"""Build the driver that a ``devices[i]`` config entry names: SunSpec, or a YAML register profile."""

from __future__ import annotations

from agent.config import DeviceConfig
from agent.devices.base import DeviceDriver

SUNSPEC_DRIVER = "sunspec"


def make_driver(device: DeviceConfig) -> DeviceDriver:
    """The driver of one configured device (``driver: sunspec`` or a profile name)."""
    if device.driver == SUNSPEC_DRIVER:
        from agent.devices.sunspec import SunSpecDriver

        return SunSpecDriver(device.name, device.kind, device.logical_device, device.max_registers)
    from agent.devices.profile import load_profile
    from agent.devices.profile_driver import ProfileDriver

    return ProfileDriver(device.name, device.kind, load_profile(device.driver), device.max_registers)
