"""Simulator configuration: strict YAML (unknown keys rejected, every error with its key path).

The same models describe a simulator in ``config/simulator.example.yaml``, in
``make demo`` and in the test fixtures, so a layout written for a test is
validated exactly like one written by a user. ``build_servers`` turns a
validated config into ready-to-start ``SimServer`` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.configerrors import validate_model
from agent.configfile import load_yaml
from agent.sim.devices import Identity, SimInverter, SimMeter, evt1_bits
from agent.sim.server import SerialEndpoint, SimServer, SimUnit, TcpEndpoint
from agent.sim.solar import Clouds, SimClock, Site
from agent.sim.sunspec_image import EncodeError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    timezone: str = "Europe/Paris"
    """Time zone of the fault schedule's clock times."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class CloudsConfig(_Strict):
    cloudiness: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0


class ListenConfig(_Strict):
    host: str = "127.0.0.1"


class FaultWindow(_Strict):
    """A fault raised every (simulated) day from ``start`` to ``end`` local time."""

    start: dtime
    end: dtime
    events: list[str] = Field(min_length=1)
    """SunSpec model 103 Evt1 bit names, e.g. GROUND_FAULT."""

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                evt1_bits(name)
            except EncodeError as exc:
                raise ValueError(str(exc)) from None
        return value


class UnitConfig(_Strict):
    unit: int = Field(ge=1, le=247)
    kind: Literal["inverter", "meter"]
    name: str | None = None
    base_address: int = Field(default=40000, ge=0, le=65000)
    common_length: Literal[65, 66] = 66
    """Length L of model 1: 66 per the standard, 65 as SolarEdge sends it."""
    manufacturer: str = "Terril"
    model: str | None = None
    serial: str | None = None
    # inverter
    peak_power_w: float | None = Field(default=None, gt=0)
    strings: int = Field(default=2, ge=0, le=32)
    silent_at_night: bool = False
    faults: list[FaultWindow] = []
    initial_wh: float = Field(default=1_000_000.0, ge=0)
    # meter
    measures: list[int] = []
    """Unit ids (same server) of the inverters behind this meter: their production offsets the load."""
    base_load_w: float = Field(default=2000.0, ge=0)
    day_load_w: float = Field(default=4000.0, ge=0)

    @model_validator(mode="after")
    def _kind_keys(self) -> UnitConfig:
        set_keys = self.model_fields_set
        if self.kind == "inverter":
            if self.peak_power_w is None:
                raise ValueError("an inverter needs peak_power_w")
            wrong = set_keys & {"measures", "base_load_w", "day_load_w"}
        else:
            wrong = set_keys & {"peak_power_w", "strings", "silent_at_night", "faults", "initial_wh"}
        if wrong:
            raise ValueError(f"key(s) {', '.join(sorted(wrong))} do not apply to a {self.kind}")
        return self


class TcpConfig(_Strict):
    port: int = Field(ge=1, le=65535)
    host: str | None = None
    """Overrides ``listen.host`` for this server."""


class SerialConfig(_Strict):
    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    emulate_wire_time: bool = True


class ServerConfig(_Strict):
    tcp: TcpConfig | None = None
    serial: SerialConfig | None = None
    units: list[UnitConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_endpoint_consistent_units(self) -> ServerConfig:
        if (self.tcp is None) == (self.serial is None):
            raise ValueError("give exactly one of tcp or serial")
        bases: dict[int, int] = {}
        inverters = {u.unit for u in self.units if u.kind == "inverter"}
        for u in self.units:
            if bases.setdefault(u.unit, u.base_address) != u.base_address:
                raise ValueError(f"unit {u.unit}: logical devices at one unit must share base_address")
            missing = sorted(set(u.measures) - inverters)
            if missing:
                raise ValueError(f"unit {u.unit}: measures {missing}, which are not inverters of this server")
        return self


class SimulatorConfig(_Strict):
    site: SiteConfig
    time_factor: float = Field(default=1.0, gt=0)
    start: datetime | None = None
    """Simulated time at start (ISO 8601 with offset); default: now."""
    listen: ListenConfig = ListenConfig()
    clouds: CloudsConfig = CloudsConfig()
    servers: list[ServerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_endpoints(self) -> SimulatorConfig:
        seen: set[str] = set()
        for s in self.servers:
            if s.tcp is not None:
                key = f"tcp {s.tcp.port}"
            elif s.serial is not None:
                key = f"serial {s.serial.port}"
            else:  # refused by the server's own check
                continue
            if key in seen:
                raise ValueError(f"two servers use {key}")
            seen.add(key)
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2024-06-21T12:00:00+02:00")
        return self


def parse_config(data: Any, source: str = "simulator config") -> SimulatorConfig:
    """Validate already-parsed YAML/dict data; ConfigError lists every problem with its key path."""
    return validate_model(SimulatorConfig, data, source, expected="servers (and optional start, listen, clouds)")


def load_config(path: str | Path) -> SimulatorConfig:
    return parse_config(load_yaml(path), str(path))


def _fault_schedule(windows: list[FaultWindow], zone: ZoneInfo) -> Callable[[datetime], int] | None:
    if not windows:
        return None
    compiled = [(w.start, w.end, evt1_bits(w.events)) for w in windows]

    def bits_at(t: datetime) -> int:
        local = t.astimezone(zone).time()
        bits = 0
        for start, end, b in compiled:
            inside = start <= local < end if start <= end else (local >= start or local < end)
            if inside:
                bits |= b
        return bits

    return bits_at


def build_servers(cfg: SimulatorConfig, clock: SimClock | None = None) -> list[SimServer]:
    """Devices, units and servers described by ``cfg``, sharing one clock (not started)."""
    clock = clock or SimClock(cfg.start or datetime.now(UTC), cfg.time_factor)
    site = Site(cfg.site.latitude, cfg.site.longitude)
    zone = ZoneInfo(cfg.site.timezone)
    servers: list[SimServer] = []
    for s_index, s in enumerate(cfg.servers):
        inverters: dict[int, SimInverter] = {}
        units: dict[int, SimUnit] = {}
        # Inverters first: a meter needs the inverters it measures.
        ordered = sorted(enumerate(s.units), key=lambda iu: iu[1].kind != "inverter")
        devices: dict[int, SimInverter | SimMeter] = {}
        for index, u in ordered:
            name = u.name or f"{u.kind}-{u.unit}"
            serial = u.serial or f"SIM{s_index}{u.unit:03d}{index}"
            if u.kind == "inverter":
                assert u.peak_power_w is not None
                inv = SimInverter(
                    name,
                    clock=clock,
                    site=site,
                    peak_power_w=u.peak_power_w,
                    strings=u.strings,
                    clouds=Clouds(cfg.clouds.cloudiness, cfg.clouds.seed * 1000 + u.unit),
                    identity=Identity(u.manufacturer, u.model or f"SIM-INV-{round(u.peak_power_w / 1000)}K", serial),
                    silent_at_night=u.silent_at_night,
                    initial_wh=u.initial_wh,
                    common_length=u.common_length,
                    fault_schedule=_fault_schedule(u.faults, zone),
                )
                inverters.setdefault(u.unit, inv)
                devices[index] = inv
            else:
                devices[index] = SimMeter(
                    name,
                    clock=clock,
                    base_load_w=u.base_load_w,
                    day_load_w=u.day_load_w,
                    producers=[inverters[i] for i in u.measures],
                    identity=Identity(u.manufacturer, u.model or "SIM-METER", serial),
                    common_length=u.common_length,
                )
        for index, u in enumerate(s.units):  # chain order = config order
            unit = units.setdefault(u.unit, SimUnit(u.unit, [], u.base_address))
            unit.devices.append(devices[index])
        if s.tcp is not None:
            endpoint: TcpEndpoint | SerialEndpoint = TcpEndpoint(s.tcp.host or cfg.listen.host, s.tcp.port)
        else:
            assert s.serial is not None
            endpoint = SerialEndpoint(
                s.serial.port, s.serial.baudrate, s.serial.parity, s.serial.stopbits, s.serial.emulate_wire_time
            )
        servers.append(SimServer(endpoint, units))
    return servers


def describe(servers: list[SimServer]) -> str:
    """One line listing every endpoint and unit served (for the start-up log line)."""
    return "; ".join(s.describe() for s in servers)
