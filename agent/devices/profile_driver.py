"""The driver for devices described by a YAML register profile (Huawei SUN2000, Eastron SDM630, …).

Same shape as the SunSpec driver: ``discover`` once per connection, a read plan
fixed from then on (coalesced by ``plan_reads`` with the profile's ``max_gap``,
each multi-register value an atomic span), and a pure ``decode``. Nothing here
names a register: the profile is data (``agent/devices/profile.py``).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from agent.devices import identify
from agent.devices.base import DecodedPoll, DeviceIdentity
from agent.devices.profile import (
    STATE_BY_NAME,
    Located,
    Profile,
    RegisterDef,
    engineering_value,
    sunspec_event_bits,
)
from agent.devices.sunspec import STATE_FAULT_CODE
from agent.errors import IllegalAddress, ModbusExceptionResponse, WrongDevice
from agent.modbus.plan import MODBUS_MAX_REGISTERS, ReadRequest, RegisterBlock, RegisterSpan, plan_reads
from agent.modbus.types import RegisterReader
from agent.schema import DEVICE_KINDS, STATE_FAULT, STATE_NAMES, DeviceKind, Reading, ReadingKind

log = logging.getLogger(__name__)


class ProfileDriver:
    """A :class:`agent.devices.base.DeviceDriver` reading a device through its register profile.

    *max_registers* (from the device's config) can only lower the profile's own
    limit: the profile knows what the device accepts, the config what the link
    or gateway in front of it accepts.
    """

    def __init__(self, name: str, kind: DeviceKind, profile: Profile, max_registers: int | None = None) -> None:
        if kind not in DEVICE_KINDS:
            raise ValueError(f"device {name}: kind must be one of {DEVICE_KINDS}, got {kind!r}")
        if kind != profile.kind:
            raise ValueError(
                f"device {name}: kind {kind!r} does not match profile {profile.name!r}, "
                f"which describes a {profile.kind}"
            )
        if max_registers is not None and not 1 <= max_registers <= MODBUS_MAX_REGISTERS:
            raise ValueError(f"device {name}: max_registers must be 1..{MODBUS_MAX_REGISTERS}, got {max_registers}")
        self.name = name
        self.kind: DeviceKind = kind
        self.profile = profile
        limit = profile.defaults.max_registers
        self.max_registers = limit if max_registers is None else min(limit, max_registers)
        self._plan = plan_reads(self.spans(), self.max_registers, profile.defaults.max_gap)
        self._discovered = False
        self._unknown_states: set[int] = set()
        self._evt_bits = sunspec_event_bits(kind)
        self.identity: DeviceIdentity | None = None

    def __repr__(self) -> str:
        return f"ProfileDriver(name={self.name!r}, kind={self.kind!r}, profile={self.profile.name!r})"

    # -- plan -----------------------------------------------------------------------

    def _span(self, item: Located) -> RegisterSpan:
        return RegisterSpan(self.profile.table_of(item), self.profile.wire_address(item), item.count)

    def spans(self) -> list[RegisterSpan]:
        """One atomic span per value the plan reads (registers, state, alarm bit fields)."""
        items: list[Located] = [*self.profile.registers, *self.profile.events]
        items.extend(reg.direction for reg in self.profile.registers if reg.direction is not None)
        if self.profile.state is not None:
            items.append(self.profile.state.code_register)
        return [self._span(item) for item in items]

    def plan(self) -> list[ReadRequest]:
        if not self._discovered:
            raise RuntimeError(f"device {self.name}: plan() called before discover()")
        return list(self._plan)

    # -- discovery ------------------------------------------------------------------

    async def discover(self, reader: RegisterReader) -> DeviceIdentity:
        """Check the device is one the profile describes, read its identity, make sure it answers.

        First the identity guard (the profile's ``identify:``): a device of another
        family or model raises :class:`agent.errors.WrongDevice` before anything is
        decoded from it. Identity registers are optional: one the device refuses
        (illegal address, any exception response) is left out. Transport errors
        propagate — the device is not there. When neither the guard nor an identity
        register answered, the first request of the plan is read instead, so a
        wrong profile fails here with a clear message rather than at every poll.
        """
        verdict = await identify.check(self.profile, reader)
        found: dict[str, object] = {}
        for key, item in self.profile.identity:
            if item is None:
                continue
            try:
                words = await reader.read(self.profile.table_of(item), self.profile.wire_address(item), item.count)
            except (IllegalAddress, ModbusExceptionResponse) as exc:
                log.debug("%s: identity register %s (%s) refused: %s", self.name, item.name, key, exc)
                continue
            value = self.profile.decode(item, words)
            if value is None:
                continue
            if key == "rated_power_w":
                if not isinstance(value, str):
                    found[key] = engineering_value(value, item.scale)
            else:
                found[key] = value if isinstance(value, str) else str(value)
        if not found and not (self.profile.identify is not None and verdict.answered) and self._plan:
            first = self._plan[0]
            try:
                await reader.read(first.table, first.address, first.count)
            except (IllegalAddress, ModbusExceptionResponse) as exc:
                if isinstance(exc, ModbusExceptionResponse) and exc.code != identify.ILLEGAL_FUNCTION:
                    raise  # a device failure (0x04) is a hiccup, not an identity
                raise WrongDevice(
                    f"no answer to the registers of profile {self.profile.name!r} ({exc}): not a device of "
                    "that profile; check the device's address, unit id and driver"
                ) from exc
        models = self.profile.metadata.models
        model = found.get("model") or verdict.model
        rated = found.get("rated_power_w")
        self.identity = DeviceIdentity(
            manufacturer=self.profile.metadata.manufacturer,
            model=str(model) if model is not None else (models[0] if len(models) == 1 else None),
            serial=str(found["serial"]) if "serial" in found else None,
            firmware=str(found["firmware"]) if "firmware" in found else None,
            rated_power_w=float(rated) if isinstance(rated, (int, float)) else None,
        )
        self._discovered = True
        log.info(
            "%s: profile %s (%s), %d request(s) per poll",
            self.name, self.profile.name, self.profile.metadata.manufacturer, len(self._plan),
        )
        return self.identity

    # -- decoding -------------------------------------------------------------------

    def _raw(self, block: RegisterBlock, item: Located) -> int | float | str | None:
        words = block.get(self.profile.table_of(item), self.profile.wire_address(item), item.count)
        return None if words is None else self.profile.decode(item, words)

    def _value(self, block: RegisterBlock, reg: RegisterDef) -> float | None:
        raw = self._raw(block, reg)
        if raw is None or isinstance(raw, str):
            return None
        invert = reg.sign == "invert"
        if reg.direction is not None:  # a magnitude whose sign is a status bit
            status = self._raw(block, reg.direction)
            if not isinstance(status, int):
                return None  # direction unknown: leave the value out rather than guess
            raw = abs(raw)
            if status >> reg.direction.negative_bit & 1:
                invert = not invert
        return engineering_value(raw, reg.scale, reg.offset, invert)

    def decode(self, block: RegisterBlock, ts_ms: int) -> DecodedPoll:
        """Readings of one poll. A value missing from *block* or holding a sentinel is left out.

        Registers with ``combine: sum`` add up the parts that are present (a
        single-phase unit on a three-phase profile reports only its phase); the
        field is left out when none is.
        """
        parts: dict[tuple[ReadingKind | None, str | None, str], list[float]] = {}
        for reg in self.profile.registers:
            value = self._value(block, reg)
            if value is not None:
                parts.setdefault((reg.measurement, reg.string, reg.field), []).append(value)
        device_fields: dict[str, float | int] = {}
        strings: dict[str, dict[str, float | int]] = {}
        others: dict[ReadingKind, dict[str, float | int]] = {}
        for (measurement, string_id, field), values in parts.items():
            if string_id is not None:
                target = strings.setdefault(string_id, {})
            elif measurement is not None:
                target = others.setdefault(measurement, {})
            else:
                target = device_fields
            # a sum in decimal, like the scaling: 0.1 + 0.2 is 0.3 here
            target[field] = values[0] if len(values) == 1 else float(sum(Decimal(repr(v)) for v in values))

        events: dict[str, str] = {}
        evt_field: int | None = None
        for event in self.profile.events:
            raw = self._raw(block, event)
            if not isinstance(raw, int):
                continue
            evt_field = evt_field or 0
            for bit, spec in event.bits.items():
                if raw >> bit & 1:
                    events[spec.code] = spec.text
                    if spec.sunspec is not None:
                        evt_field |= 1 << self._evt_bits[spec.sunspec]
        if evt_field is not None:
            device_fields["events"] = evt_field

        state = self._state(block)
        if state is not None:
            device_fields["state"] = state
            if state == STATE_FAULT:
                events[STATE_FAULT_CODE] = f"Operating state {STATE_NAMES[STATE_FAULT]} (SunSpec St = {STATE_FAULT})"

        readings = [Reading(device=self.name, kind=self.kind, ts=ts_ms, fields=device_fields)]
        for string_id, fields in strings.items():
            if fields:
                readings.append(Reading(device=self.name, kind="mppt", ts=ts_ms, fields=fields, string=string_id))
        for measurement, fields in others.items():  # a hybrid's grid meter and battery
            readings.append(Reading(device=self.name, kind=measurement, ts=ts_ms, fields=fields))
        return DecodedPoll(readings=readings, active_events=events, state=state)

    def _state(self, block: RegisterBlock) -> int | None:
        spec = self.profile.state
        if spec is None:
            return None
        raw = self._raw(block, spec.code_register)
        if not isinstance(raw, int):
            return None
        mapped = spec.values.get(raw)
        if mapped is None:
            if raw not in self._unknown_states:  # one line per unknown code, not one per poll
                self._unknown_states.add(raw)
                log.warning(
                    "%s: %s code 0x%04X is not in profile %s; state left out",
                    self.name, spec.code_register.name, raw, self.profile.name,
                )
            return None
        return STATE_BY_NAME[mapped.st]
