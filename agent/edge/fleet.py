"""The devices of one site, built from its configuration: links, drivers and pollers."""

from __future__ import annotations

from collections.abc import Callable

from agent.devices.base import DeviceIdentity
from agent.devices.registry import make_driver
from agent.edge.config import AgentConfig, DeviceConfig, RtuTransport
from agent.edge.poller import DevicePoller, Site
from agent.modbus.connection import ModbusLink
from agent.modbus.pool import LinkPool
from agent.modbus.types import RegisterReader


def reader_for(pool: LinkPool, device: DeviceConfig, index: int) -> RegisterReader:
    """The unit reader of one device, on the link (TCP endpoint or RS-485 bus) it shares with others."""
    where = f"devices[{index}].transport"
    t = device.transport
    link: ModbusLink
    if isinstance(t, RtuTransport):
        link = pool.rtu(t.port, t.baudrate, t.parity, t.stopbits, t.bytesize, t.timeout, t.pause, where=where)
    else:
        link = pool.tcp(t.host, t.port, t.timeout, t.pause, where=where)
    return pool.unit(link, device.unit, where=where)


def build_pollers(
    config: AgentConfig,
    pool: LinkPool,
    on_identity: Callable[[str, DeviceIdentity], None] | None = None,
) -> list[DevicePoller]:
    """One poller per configured device, in config order."""
    site = Site(config.site.latitude, config.site.longitude, config.site.peak_power_w)
    return [
        DevicePoller(make_driver(device), reader_for(pool, device, i), site, device.interval, on_identity=on_identity)
        for i, device in enumerate(config.devices)
    ]
