"""SunSpec register images for tests, encoded by pysunspec2 — independently of our decoder.

pysunspec2's ``sunspec2.device.Model`` lays a model out from the official
definition and encodes values (scale factors applied by its own
``set_value(computed=True)``); unset points become its "not implemented"
sentinels. So when our decoder reads back what pysunspec2 wrote, two
implementations agree, not one implementation with itself.

Also a dict-backed :class:`FakeReader` (a ``RegisterReader``) that counts requests
and can refuse or time out on chosen ranges — fine for pure decoding tests.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sunspec2.device as ss_device

from agent.errors import IllegalAddress, TransportError
from agent.modbus.plan import Table

SUNS = (0x5375, 0x6E53)
END = (0xFFFF, 0x0000)


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def encode_model(
    model_id: int,
    values: Mapping[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
    modules: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]] = (),
    length: int | None = None,
) -> list[int]:
    """Registers of one model, header included, as pysunspec2 encodes them.

    *raw*: point values written as they are (scale factors, enums, strings, floats).
    *values*: engineering values that pysunspec2 scales with the point's scale factor.
    *modules*: for a model with a repeating group (model 160), one ``(raw, values)``
    pair per instance. *length*: the ``L`` to declare (model 1 accepts 65).
    """
    data: dict[str, Any] = {}
    if modules:
        group_name = _repeating_group_name(model_id)
        data[group_name] = [{} for _ in modules]
        if "N" in _point_names(model_id):
            data["N"] = len(modules)
    model = ss_device.Model(model_id=model_id, model_len=length or 0, data=data or None)
    assert not model.error_info, model.error_info
    for name, value in (raw or {}).items():
        model.points[name].set_value(value)
    for name, value in (values or {}).items():
        model.points[name].set_value(value, computed=True)
    if modules:
        instances = model.groups[_repeating_group_name(model_id)]
        for instance, (module_raw, module_values) in zip(instances, modules, strict=True):
            for name, value in module_raw.items():
                instance.points[name].set_value(value)
            for name, value in module_values.items():
                instance.points[name].set_value(value, computed=True)
    return _words(model.get_mb())


def _point_names(model_id: int) -> set[str]:
    definition = ss_device.get_model_def(model_id)
    return {p["name"] for p in definition["group"]["points"]}


def _repeating_group_name(model_id: int) -> str:
    definition = ss_device.get_model_def(model_id)
    return str(definition["group"]["groups"][0]["name"])


def common_model(
    manufacturer: str = "Terril",
    model: str = "Sim-3000",
    serial: str = "SN-0001",
    version: str = "1.2.3",
    length: int | None = None,
) -> list[int]:
    """Model 1 (common). ``length=65`` gives the SolarEdge variant without the final pad."""
    return encode_model(
        1, raw={"Mn": manufacturer, "Md": model, "SN": serial, "Vr": version, "DA": 1}, length=length
    )


def image(models: Iterable[list[int]], base: int = 40000, end_marker: bool = True) -> dict[int, int]:
    """A device's holding registers: "SunS" at *base*, the models, then the end marker."""
    words: list[int] = [*SUNS]
    for registers in models:
        words.extend(registers)
    if end_marker:
        words.extend(END)
    return {base + i: w for i, w in enumerate(words)}


def float_words(value: float) -> list[int]:
    return _words(struct.pack(">f", value))


@dataclass
class FakeReader:
    """A RegisterReader over a dict: unmapped registers answer "illegal address"."""

    registers: dict[int, int]
    timeout_ranges: list[range] = field(default_factory=list)
    """Reads touching these addresses raise TransportError (a unit that times out)."""
    requests: int = 0
    log: list[tuple[Table, int, int]] = field(default_factory=list)
    last_sent: float | None = None
    """Never set: a poll through this reader is stamped when it starts."""
    link: object = None

    async def read(self, table: Table, address: int, count: int) -> list[int]:
        self.requests += 1
        self.log.append((table, address, count))
        if not 1 <= count <= 125:
            raise IllegalAddress(f"count {count} out of 1..125")
        wanted = range(address, address + count)
        for r in self.timeout_ranges:
            if wanted.start < r.stop and r.start < wanted.stop:
                raise TransportError(f"timeout reading {table} {address} x{count}")
        if table != "holding" or any(a not in self.registers for a in wanted):
            raise IllegalAddress(f"{table} registers {address}..{address + count - 1} not mapped")
        return [self.registers[a] for a in wanted]
