"""The edge agent's configuration: one YAML file, validated strictly and completely.

Why so strict: an agent runs unattended for years. A typo (``intervall:``) that
is silently ignored means a site polled with the wrong settings forever, so
every model here rejects unknown keys, and :func:`load_agent_config` reports
*every* problem at once, each as ``key.path: reason`` in plain words, before
anything starts.

Attribute names are exactly the YAML keys (see ``config/agent.example.yaml``).
Models are frozen: the running agent never changes its configuration.

Defaults are applied by the models, never written into the data, so
``model.model_fields_set`` tells what the user actually wrote (``terril
check-config`` shows the rest as defaults).

Relative paths (``password_file``, ``tls.*``, ``spool.path``) are relative to
the folder of the config file, not to the working directory of the service.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.configerrors import fail, fail_many, show, validate_model
from agent.configfile import FileRefused, check_file, load_yaml, read_secret
from agent.devices.registry import SUNSPEC_DRIVER
from agent.edge.device_checks import device_set_problems, duplicate_name_problems
from agent.errors import ConfigError
from agent.schema import SLUG_RE, TOPIC_ROOT, TOPIC_ROOT_RE, Topics

PROFILES_DIR = Path(__file__).resolve().parent.parent / "devices" / "profiles"
"""Where YAML register profiles live; a device's ``driver`` names one of them (or ``sunspec``)."""

STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
DEFAULT_SPOOL_FILE = Path("/var/lib/terril/spool.db")

# YAML gives real ints; refuse "10" and true where a number is expected.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # strict float still accepts an int (502 -> 502.0)
Slug = Annotated[str, Field(pattern=SLUG_RE.pattern)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else _base_dir(info) / path


def _readable_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    try:
        check_file(path)
    except FileRefused as exc:
        raise fail(exc.reason) from None
    return path


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=False)


# --------------------------------------------------------------------------- site


class SiteConfig(_Model):
    """The building this agent watches; published as retained ``info`` and stored as ``site_info``."""

    slug: Slug
    """Topic segment and InfluxDB tag; also the MQTT username the shipped ACL expects."""
    name: NonEmptyStr
    peak_power_w: Annotated[Float, Field(gt=0)]
    panels: Annotated[Int, Field(ge=0)] | None = None
    owner: NonEmptyStr = "commune"
    latitude: Annotated[Float, Field(ge=-90, le=90)]
    longitude: Annotated[Float, Field(ge=-180, le=180)]


# --------------------------------------------------------------------------- broker


class TlsConfig(_Model):
    """TLS to the broker. No ``ca`` means the system's trusted authorities."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @field_validator("ca", "cert", "key")
    @classmethod
    def _exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _readable_file(value, info)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise fail("cert and key go together (client certificate and its private key)")
        return self


class BrokerConfig(_Model):
    """Where and how to reach the MQTT broker.

    After loading, ``password`` holds the secret whichever way it was given
    (inline or ``password_file``); it is a SecretStr, so it never shows in a
    repr or a log line. ``port`` 0 in the model means "not set": it is replaced
    at load by 8883 with TLS, 1883 without. ``client_id`` "" is replaced by
    ``terril-<site.slug>`` in an agent config.
    """

    host: NonEmptyStr
    port: Annotated[Int, Field(ge=1, le=65535)] = 0
    username: NonEmptyStr | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    client_id: Annotated[str, Field(max_length=256)] = ""
    keepalive: Annotated[Int, Field(ge=5, le=3600)] = 60
    topic_root: Annotated[str, Field(pattern=TOPIC_ROOT_RE.pattern)] = TOPIC_ROOT
    """One or more topic levels; the ingest's ``topic_root`` must be the same (one rule: ``agent.schema``)."""

    @field_validator("password", mode="before")
    @classmethod
    def _password_is_text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise fail("expected a text string (quote it in YAML)")
        if value == "":
            raise fail("must not be empty")
        return value

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(value, info)
        try:
            read_secret(path)
        except FileRefused as exc:
            raise fail(exc.reason) from None
        return path

    @model_validator(mode="after")
    def _resolve_defaults_and_secret(self) -> BrokerConfig:
        problems: list[tuple[str, str]] = []
        if self.password is not None and self.password_file is not None:
            problems.append(("", "password and password_file are exclusive"))
        if (self.password is not None or self.password_file is not None) and self.username is None:
            problems.append(("username", "required when a password is given"))
        if problems:
            raise fail_many(problems)
        # Frozen model: fill derived values once, here, without marking them as user-set.
        if self.password_file is not None:
            try:
                secret = read_secret(self.password_file)
            except FileRefused as exc:  # changed since the field was checked
                raise fail_many([("password_file", exc.reason)]) from None
            object.__setattr__(self, "password", SecretStr(secret))
        if self.port == 0:
            object.__setattr__(self, "port", 8883 if self.tls is not None else 1883)
        return self


# --------------------------------------------------------------------------- devices


class TcpTransport(_Model):
    """Modbus TCP (or an RS-485 gateway speaking Modbus TCP)."""

    type: Literal["tcp"]
    host: NonEmptyStr
    port: Annotated[Int, Field(ge=1, le=65535)] = 502
    timeout: Annotated[Float, Field(gt=0, le=60)] = 3.0
    """Seconds to wait for one answer."""
    pause: Annotated[Float, Field(ge=0, le=10)] = 0.0
    """Seconds between two requests; some dataloggers need a breath."""

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host.lower()}:{self.port}"


class RtuTransport(_Model):
    """Modbus RTU on an RS-485 bus (USB adapter or HAT). Devices on one bus share its settings."""

    type: Literal["rtu"]
    port: Annotated[str, Field(pattern=r"^/\S+$")]
    """Serial device path, e.g. /dev/ttyUSB0 (prefer /dev/serial/by-id/… that survive reboots)."""
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout: Annotated[Float, Field(gt=0, le=60)] = 1.0
    pause: Annotated[Float, Field(ge=0, le=10)] = 0.05
    """Seconds of silence between two requests on the bus."""

    @property
    def endpoint(self) -> str:
        return f"rtu://{self.port}"

    @property
    def line_settings(self) -> tuple[int, str, int, int]:
        """What every device on one bus must agree on: (baudrate, parity, stopbits, bytesize)."""
        return (self.baudrate, self.parity, self.stopbits, self.bytesize)


Transport = Annotated[TcpTransport | RtuTransport, Field(discriminator="type")]


class DeviceConfig(_Model):
    """One inverter or meter. ``unit`` + ``logical_device`` pick it at its transport endpoint."""

    name: Slug
    kind: Literal["inverter", "meter"]
    driver: str
    """``sunspec`` or the name of a profile file ``agent/devices/profiles/<driver>.yaml``."""
    transport: Transport
    unit: Annotated[Int, Field(ge=1, le=247)] = 1
    interval: Annotated[Int, Field(ge=1, le=3600)] = 10
    """Seconds between two polls."""
    logical_device: Annotated[Int, Field(ge=1)] = 1
    """Which SunSpec device (1st, 2nd …) when several answer at the same unit address."""
    max_registers: Annotated[Int, Field(ge=1, le=125)] = 125
    """Most registers per read request (125 is the Modbus limit; some devices want fewer)."""

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str, info: ValidationInfo) -> str:
        if value == SUNSPEC_DRIVER:
            return value
        if not SLUG_RE.fullmatch(value):
            raise fail(
                f"unknown driver {show(value)}: expected {show(SUNSPEC_DRIVER)} or a profile name "
                "(lowercase letters, digits, _ and -)"
            )
        profiles = known_profiles(Path((info.context or {}).get("profiles_dir") or PROFILES_DIR))
        if profiles and value not in profiles:
            raise fail(
                f"unknown driver {show(value)}: expected {show(SUNSPEC_DRIVER)} or one of the profiles "
                f"in agent/devices/profiles/: {', '.join(profiles)}"
            )
        return value

    @model_validator(mode="after")
    def _kind_matches_profile(self, info: ValidationInfo) -> DeviceConfig:
        """A meter profile configured as an inverter would publish nonsense: refuse it at load time."""
        if self.driver == SUNSPEC_DRIVER:
            return self
        folder = Path((info.context or {}).get("profiles_dir") or PROFILES_DIR)
        path = folder / f"{self.driver}.yaml"
        if not path.is_file():
            return self
        from agent.devices.profile import load_profile_file  # lazy: only configs naming a profile pay for it

        try:
            profile_kind = load_profile_file(path).metadata.kind
        except ConfigError as exc:
            raise fail(f"profile {self.driver!r} is invalid: {'; '.join(exc.problems)}") from None
        if profile_kind != self.kind:
            raise fail(f"kind {show(self.kind)} does not match profile {show(self.driver)}, "
                       f"which describes a {profile_kind}")
        return self

    @property
    def endpoint(self) -> str:
        return self.transport.endpoint


def known_profiles(folder: Path = PROFILES_DIR) -> list[str]:
    """Names of the YAML register profiles shipped in *folder* (sorted)."""
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


# --------------------------------------------------------------------------- spool, health, log


def _default_spool_path() -> Path:
    # systemd's StateDirectory=terril exports STATE_DIRECTORY=/var/lib/terril (or the DynamicUser path).
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state_dir) / "spool.db" if state_dir else DEFAULT_SPOOL_FILE


# 7 days of a 20-device site polled every 10 s, with MPPT readings:
#   8 640 polls/day x 20 devices x 3 readings/poll (1 device reading + 2 MPPT strings) x 7 days
#   = 3 628 800 readings  -> rounded up to 3 700 000 rows (about 1 GB of SQLite at ~250 B per row).
DEFAULT_SPOOL_MAX_ROWS = 3_700_000


class SpoolConfig(_Model):
    """The SQLite spool that keeps readings until the broker has acknowledged them."""

    path: Path = Field(default_factory=_default_spool_path)
    max_rows: Annotated[Int, Field(ge=1000)] = DEFAULT_SPOOL_MAX_ROWS
    """When full, the oldest readings are dropped (and counted in health)."""
    max_age_days: Annotated[Int, Field(ge=1, le=3650)] = 7
    batch_size: Annotated[Int, Field(ge=1, le=10000)] = 500
    """Readings per MQTT message when draining a backlog."""
    resend_after: Annotated[Float, Field(ge=1, le=86400)] = 180.0
    """Seconds after which a row the broker accepted, but the ingest has not acknowledged as stored,
    is sent again (doubling up to 8x while it stays unacknowledged; never while the ingest is away)."""

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class HealthConfig(_Model):
    interval: Annotated[Int, Field(ge=5, le=3600)] = 60
    """Seconds between two health messages (``terril/<site>/health``)."""


class LogConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


# --------------------------------------------------------------------------- the whole file


class AgentConfig(_Model):
    """The whole agent configuration file."""

    site: SiteConfig
    broker: BrokerConfig
    devices: Annotated[list[DeviceConfig], Field(min_length=1)]
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        problems = device_set_problems(enumerate(self.devices))
        if problems:
            raise fail_many(problems)
        if not self.broker.client_id:
            object.__setattr__(self.broker, "client_id", f"terril-{self.site.slug}")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(site=self.site.slug, root=self.broker.topic_root)


# --------------------------------------------------------------------------- loading


def load_agent_config(path: str | Path, *, profiles_dir: Path | None = None) -> AgentConfig:
    """Read and validate an agent config file; raise ConfigError listing every problem."""
    path = Path(path)
    return parse_agent_config(load_yaml(path), str(path), base_dir=path.resolve().parent, profiles_dir=profiles_dir)


def parse_agent_config(
    data: object, source: str, *, base_dir: Path | None = None, profiles_dir: Path | None = None
) -> AgentConfig:
    """Validate already-parsed YAML data. *source* names it in errors (usually the file path)."""
    context = {"base_dir": base_dir, "profiles_dir": profiles_dir}
    try:
        return validate_model(AgentConfig, data, source, expected="site, broker and devices sections", context=context)
    except ConfigError as exc:
        if not isinstance(data, dict):
            raise
        problems = exc.problems
    # The cross-device checks did not run (another part failed): run them on the devices that are valid.
    raw_devices = data.get("devices")
    if isinstance(raw_devices, list):
        valid: list[tuple[int, DeviceConfig]] = []
        for i, raw in enumerate(raw_devices):
            try:
                valid.append((i, DeviceConfig.model_validate(raw, context=context)))
            except ValidationError:
                pass
        raw_names = [(i, raw.get("name")) for i, raw in enumerate(raw_devices) if isinstance(raw, dict)]
        cross = duplicate_name_problems(raw_names) + device_set_problems(valid)
        problems += [f"{p}: {r}" for p, r in cross]
    raise ConfigError(source, list(dict.fromkeys(problems)))


