"""What every device driver (SunSpec, YAML profile) offers the poller.

A driver is created from one ``devices[i]`` config entry. ``discover`` runs once
per connection (and again after a reconnect); it learns the register layout and
the identity. ``plan`` is then fixed; each poll executes it and ``decode``s the
registers into readings. Drivers do no I/O outside ``discover``: decode is pure,
so it is tested against register images without any network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agent.modbus.plan import ReadRequest, RegisterBlock
from agent.modbus.types import RegisterReader
from agent.schema import DeviceKind, Reading


@dataclass(frozen=True)
class DeviceIdentity:
    """What the device says about itself (SunSpec model 1 / 120, or a profile's identity registers)."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    rated_power_w: float | None = None
    models: tuple[int, ...] = ()
    """SunSpec model ids found (empty for profile devices)."""

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


@dataclass
class DecodedPoll:
    """One poll's result: the device reading, its MPPT string readings, and named event bits."""

    readings: list[Reading]
    active_events: dict[str, str] = field(default_factory=dict)
    """Event code -> human text for every event bit set in this poll (empty when none)."""
    state: int | None = None
    """SunSpec operating state (St) when the device reports one."""


class DeviceDriver(Protocol):
    kind: DeviceKind
    name: str

    async def discover(self, reader: RegisterReader) -> DeviceIdentity:
        """Find the device's registers and identity; raise TerrilError when it is not there."""
        ...

    def plan(self) -> list[ReadRequest]:
        """The requests one poll needs (valid after ``discover``)."""
        ...

    def decode(self, block: RegisterBlock, ts_ms: int) -> DecodedPoll:
        """Turn the registers of one poll into readings; missing values are omitted."""
        ...
