"""Checks across the devices of one agent config: names, shared links, one device configured twice.

Kept apart from the models (``agent.edge.config``) because they run twice: as
the config's own cross-check, and again on the devices that validated when
another part of the file did not, so that every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.configerrors import show

if TYPE_CHECKING:
    from agent.edge.config import DeviceConfig, Transport


def device_set_problems(devices: Iterable[tuple[int, DeviceConfig]]) -> list[tuple[str, str]]:
    """Problems between devices: duplicate names, RS-485 buses that disagree, two configs for one device.

    Takes (index, device) pairs so it also works on the devices that validated
    when others did not: every problem is reported in one pass.
    """
    devices = list(devices)
    problems = duplicate_name_problems((i, dev.name) for i, dev in devices)
    links: dict[str, tuple[int, Transport]] = {}
    targets: dict[tuple[str, int, int], int] = {}
    for i, dev in devices:
        tr = dev.transport
        first = links.setdefault(tr.endpoint, (i, tr))
        if first[0] != i:
            # One TCP connection or one RS-485 bus is shared by its devices (agent.modbus.pool):
            # settings of the link itself must agree, or the agent could not honour both.
            keys = ("baudrate", "parity", "stopbits", "bytesize", "timeout", "pause")
            for key in keys:
                if not hasattr(tr, key):
                    continue
                mine, theirs = getattr(tr, key), getattr(first[1], key)
                if mine != theirs:
                    default = "" if key in first[1].model_fields_set else ", the default"
                    what = "RS-485 bus" if tr.type == "rtu" else "connection"
                    problems.append((
                        f"devices[{i}].transport.{key}",
                        f"{show(mine)} differs from {show(theirs)} of devices[{first[0]}]{default}: devices sharing "
                        f"one {what} ({tr.endpoint.split('://', 1)[1]}) must use the same {key}",
                    ))
        target = (dev.endpoint, dev.unit, dev.logical_device)
        if target in targets:
            problems.append((
                f"devices[{i}]",
                f"same transport, unit and logical_device as devices[{targets[target]}]: "
                "both entries would read the same device",
            ))
        else:
            targets[target] = i
    return problems


def duplicate_name_problems(names: Iterable[tuple[int, object]]) -> list[tuple[str, str]]:
    """Device names must be unique: they are the ``device`` tag of every reading."""
    problems: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, name in names:
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append((f"devices[{i}].name", f"{show(name)} is already the name of devices[{first[name]}]"))
        else:
            first.setdefault(name, i)
    return problems
