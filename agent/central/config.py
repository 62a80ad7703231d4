"""The ingest's configuration file (``/etc/terril/ingest.yaml``), checked strictly at load time.

Shape: DESIGN.md, "Ingest config shape". Unknown keys are rejected and every
problem is reported at once with its key path, so a technician fixes the file
in one go. Secrets (broker password, InfluxDB token or password) are held as
``SecretStr``: they never show in a repr or a log line.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.central.validate import DEFAULT_MAX_PAYLOAD_BYTES
from agent.configerrors import fail, fail_many, show, validate_model
from agent.configfile import FileRefused, check_file, load_yaml, read_secret
from agent.errors import ConfigError
from agent.public.config import PublicConfig
from agent.schema import TOPIC_ROOT, TOPIC_ROOT_RE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(path: str, key: str) -> SecretStr:
    """The secret in file *path* (surrounding whitespace stripped); a problem is reported at *key*."""
    try:
        return SecretStr(read_secret(path, strip=None))
    except FileRefused as exc:
        raise fail_many([(key, exc.reason)]) from None


def _secret_file(path: str | None) -> str | None:
    """Field check of a secret file, so that it is reported with every other problem of its section."""
    if path is not None:
        try:
            read_secret(path, strip=None)
        except FileRefused as exc:
            raise fail(exc.reason) from None
    return path


class TlsConfig(_Strict):
    ca: str | None = None
    """CA certificate that signed the broker's certificate (None: the system's CAs)."""
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    """Skip the host name check (test set-ups with self-signed certificates only)."""

    @field_validator("ca", "cert", "key")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        """Checked now: found missing by ``check-config``, not by the running ingest's TLS handshake."""
        if value is not None:
            try:
                check_file(value)
            except FileRefused as exc:
                raise fail(exc.reason) from None
        return value

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise fail("cert and key go together: set both or neither")
        return self


class BrokerConfig(_Strict):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600)

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, value: str | None) -> str | None:
        return _secret_file(value)

    @model_validator(mode="after")
    def _password(self) -> BrokerConfig:
        if self.password is not None and self.password_file is not None:
            raise fail("password and password_file are exclusive")
        if self.password_file is not None:
            object.__setattr__(self, "password", _read_secret(self.password_file, "password_file"))
        return self


def _default_client_id() -> str:
    return f"terril-ingest-{socket.gethostname()}"[:64]


class SubscriptionConfig(_Strict):
    group: str = "terril-ingest"
    """Shared-subscription group: every ingest instance of one group splits the messages."""
    session_expiry: int = Field(604800, ge=0, le=0xFFFFFFFF)
    """Seconds the broker keeps the session (and its queued messages) while the ingest is away."""
    client_id: str = Field(default_factory=_default_client_id)
    """Must be unique per instance and stable across restarts (the persistent session is keyed by it)."""
    receive_maximum: int = Field(500, ge=1, le=65535)
    """Unacknowledged messages the broker may have in flight to this instance (MQTT 5 Receive Maximum).

    They are all in this process's memory while InfluxDB is down: worst case
    receive_maximum x the broker's max_packet_size = 500 x 1 MB = 500 MB, at most half
    of the unit's MemoryMax=1G (the other half: decoded batches, Python, the rollup).
    """
    max_queue_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024, le=2**40)
    """Bytes of received messages the ingest holds before it drops QoS 0 ones (counted: ``shed_qos0``).

    QoS 1 messages are never dropped: they are bounded by receive_maximum instead (above).
    """

    @model_validator(mode="after")
    def _names(self) -> SubscriptionConfig:
        problems: list[tuple[str, str]] = []
        if not self.group or any(c in self.group for c in "/+#"):
            problems.append(("group", f"expected a non-empty name without / + #, got {show(self.group)}"))
        if not self.client_id:
            problems.append(("client_id", "must not be empty"))
        if problems:
            raise fail_many(problems)
        return self


class InfluxConfig(_Strict):
    api: Literal["v2", "v1"] = "v2"
    """v2: InfluxDB 2.x, 3.x and 1.8+ (influxdb-client); v1: InfluxDB before 1.8 (``/write``)."""
    url: str = "http://localhost:8086"
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    token_file: str | None = None
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    timeout: float = Field(10.0, gt=0, le=300)
    """Seconds before one write attempt counts as failed (and is retried)."""
    retry_max_delay: float = Field(30.0, ge=0.1, le=3600)
    """Cap of the exponential back-off between write attempts while InfluxDB is down."""

    @field_validator("password_file", "token_file")
    @classmethod
    def _secret_files_readable(cls, value: str | None) -> str | None:
        return _secret_file(value)

    @model_validator(mode="after")
    def _by_api(self) -> InfluxConfig:
        problems = self._api_problems()
        if problems:
            raise fail_many(problems)
        if self.api == "v2" and self.token_file is not None:
            object.__setattr__(self, "token", _read_secret(self.token_file, "token_file"))
        if self.api == "v1" and self.password_file is not None:
            object.__setattr__(self, "password", _read_secret(self.password_file, "password_file"))
        return self

    def _api_problems(self) -> list[tuple[str, str]]:
        """Keys that the chosen ``api`` needs, or does not use; secrets given twice."""
        problems: list[tuple[str, str]] = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(("url", f"expected a URL starting with http:// or https://, got {show(self.url)}"))
        if self.token is not None and self.token_file is not None:
            problems.append(("", "token and token_file are exclusive"))
        if self.password is not None and self.password_file is not None:
            problems.append(("", "password and password_file are exclusive"))
        if self.api == "v2":
            needed: tuple[str, ...] = ("org", "bucket")
            unused: tuple[str, ...] = ("database", "retention_policy", "username", "password", "password_file")
            other = "only for api v1 (v2 uses org, bucket, token)"
        else:
            needed = ("database",)
            unused = ("org", "bucket", "token", "token_file")
            other = "only for api v2 (v1 uses database, username, password)"
            if (self.password is not None or self.password_file is not None) and self.username is None:
                problems.append(("username", "required when a password is given"))
        problems += [(k, f"required key missing with api {self.api}") for k in needed if getattr(self, k) is None]
        problems += [(k, other) for k in unused if getattr(self, k) is not None]
        return problems


class BatchConfig(_Strict):
    max_points: int = Field(5000, ge=1, le=1_000_000)
    """Write as soon as this many points are waiting."""
    max_delay: float = Field(1.0, gt=0, le=60)
    """Write at the latest this many seconds after the first waiting point arrived."""


class RollupConfig(_Strict):
    timezone: str = "Europe/Paris"
    every: int = Field(300, ge=10)
    territory_consumption_wh_per_year: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _tz(self) -> RollupConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail_many([("timezone", f"{show(self.timezone)} is not a known IANA time zone")]) from None
        return self


class PerformanceConfig(_Strict):
    """Yield analytics (``agent.central.performance``): the clear-sky model's assumptions and the rules' thresholds.

    Every default is the documented one (README, "Yield analytics"); the model's
    assumptions move all roofs alike, so they change clear-sky ratios, hardly the index.
    """

    system_losses_percent: float = Field(14.08, ge=0, lt=100)
    """PVWatts total losses: soiling, shading, mismatch, wiring, connections, LID, nameplate, availability."""
    inverter_efficiency: float = Field(0.96, gt=0.5, le=1)
    air_temperature_c: float = Field(15.0, ge=-40, le=60)
    wind_speed_m_s: float = Field(1.0, ge=0, le=40)
    albedo: float = Field(0.25, ge=0, le=1)
    sky_model: Literal["haydavies", "perez"] = "haydavies"
    index_threshold: float = Field(0.85, gt=0, lt=2)
    sunny_ratio: float = Field(0.4, ge=0, le=2)
    window_days: int = Field(5, ge=1, le=60)
    low_days: int = Field(3, ge=1, le=60)
    lookback_days: int = Field(14, ge=1, le=60)
    min_peers: int = Field(2, ge=1, le=1000)
    string_threshold: float = Field(0.5, gt=0, lt=1)
    string_sunny_days: int = Field(2, ge=1, le=30)

    @model_validator(mode="after")
    def _days(self) -> PerformanceConfig:
        if self.low_days > self.window_days:
            raise ValueError(f"low_days ({self.low_days}) cannot exceed window_days ({self.window_days})")
        return self


class IngestConfig(_Strict):
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    subscription: SubscriptionConfig = Field(default_factory=SubscriptionConfig)
    influxdb: InfluxConfig
    batch: BatchConfig = Field(default_factory=BatchConfig)
    public: PublicConfig | None = None
    """The public static site (agent.public): built by the ingest every ``public.every`` seconds."""
    rollup: RollupConfig = Field(default_factory=RollupConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    topic_root: Annotated[str, Field(pattern=TOPIC_ROOT_RE.pattern)] = TOPIC_ROOT
    """One or more topic levels, the same as the agents' ``broker.topic_root`` (one rule: ``agent.schema``)."""
    inventory: Path | None = None
    """The town's inventory of roofs (``sites.yaml``, DESIGN.md "Inventory"); relative to this file's folder."""
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, ge=1024, le=256 * 1024 * 1024)
    """Bigger messages are dead-lettered unread (a backlog of 500 readings is about 250 kB).

    Keep it below the broker's max_packet_size (1 MB in config/mosquitto/terril.conf):
    a message the broker would refuse never reaches the ingest anyway.
    """


def parse_ingest_config(data: Any, source: str = "<config>") -> IngestConfig:
    """Check an already-parsed YAML document; raise ConfigError listing every problem."""
    return validate_model(IngestConfig, data, source, expected="broker, influxdb… sections")


def load_ingest_config(path: str | os.PathLike[str]) -> IngestConfig:
    """Read and check an ingest config file; raise ConfigError with ``key.path: reason`` lines."""
    data = load_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("inventory"), str):
        named = Path(data["inventory"]).expanduser()
        data = {**data, "inventory": str(named if named.is_absolute() else Path(path).resolve().parent / named)}
    source = os.fspath(path)
    config = parse_ingest_config(data, source)
    if config.inventory is not None:
        _check_inventory(config.inventory, source)
    return config


def _check_inventory(path: Path, source: str) -> None:
    """The inventory is part of the ingest's configuration: its problems are the config's problems."""
    from agent.central.inventory import load_inventory_cached

    try:
        load_inventory_cached(path)
    except ConfigError as exc:
        raise ConfigError(source, [f"inventory: {exc.source}: {p}" for p in exc.problems]) from None
