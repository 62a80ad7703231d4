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

import difflib
import json
import os
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
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
from pydantic_core import PydanticCustomError

from agent.devices.registry import SUNSPEC_DRIVER
from agent.errors import ConfigError
from agent.schema import SLUG_RE, TOPIC_ROOT, Topics

PROFILES_DIR = Path(__file__).resolve().parent.parent / "devices" / "profiles"
"""Where YAML register profiles live; a device's ``driver`` names one of them (or ``sunspec``)."""

STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
DEFAULT_SPOOL_FILE = Path("/var/lib/terril/spool.db")

# YAML gives real ints; refuse "10" and true where a number is expected.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # strict float still accepts an int (502 -> 502.0)
Slug = Annotated[str, Field(pattern=SLUG_RE.pattern)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _fail(reason: str) -> PydanticCustomError:
    """An error whose message is already the plain reason we want to show."""
    return PydanticCustomError("terril", "{reason}", {"reason": reason})


def _fail_many(problems: Sequence[tuple[str, str]]) -> PydanticCustomError:
    """Several cross-field problems at once; each is (path relative to the model, reason)."""
    return PydanticCustomError(
        "terril_many", "{summary}", {"summary": "; ".join(r for _, r in problems), "problems": list(problems)}
    )


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else _base_dir(info) / path


def _readable_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.exists():
        raise _fail(f"file {path} does not exist")
    if not path.is_file():
        raise _fail(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise _fail(f"file {path} is not readable by this user")
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
            raise _fail("cert and key go together (client certificate and its private key)")
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
    topic_root: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")] = TOPIC_ROOT

    @field_validator("password", mode="before")
    @classmethod
    def _password_is_text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise _fail("expected a text string (quote it in YAML)")
        if value == "":
            raise _fail("must not be empty")
        return value

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(value, info)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise _fail(f"{path} is not UTF-8 text") from None
        if not text.strip("\r\n"):
            raise _fail(f"{path} is empty")
        return path

    @model_validator(mode="after")
    def _resolve_defaults_and_secret(self) -> BrokerConfig:
        problems: list[tuple[str, str]] = []
        if self.password is not None and self.password_file is not None:
            problems.append(("", "password and password_file are exclusive"))
        if (self.password is not None or self.password_file is not None) and self.username is None:
            problems.append(("username", "required when a password is given"))
        if problems:
            raise _fail_many(problems)
        # Frozen model: fill derived values once, here, without marking them as user-set.
        if self.password_file is not None:
            secret = self.password_file.read_text(encoding="utf-8").strip("\r\n")
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


Transport = Annotated[Union[TcpTransport, RtuTransport], Field(discriminator="type")]  # noqa: UP007


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
            raise _fail(
                f"unknown driver {_show(value)}: expected {_show(SUNSPEC_DRIVER)} or a profile name "
                "(lowercase letters, digits, _ and -)"
            )
        profiles = known_profiles(Path((info.context or {}).get("profiles_dir") or PROFILES_DIR))
        if profiles and value not in profiles:
            raise _fail(
                f"unknown driver {_show(value)}: expected {_show(SUNSPEC_DRIVER)} or one of the profiles "
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
            raise _fail(f"profile {self.driver!r} is invalid: {'; '.join(exc.problems)}") from None
        if profile_kind != self.kind:
            raise _fail(f"kind {_show(self.kind)} does not match profile {_show(self.driver)}, which describes a {profile_kind}")
        return self

    @property
    def endpoint(self) -> str:
        return self.transport.endpoint


def known_profiles(folder: Path = PROFILES_DIR) -> list[str]:
    """Names of the YAML register profiles shipped in *folder* (sorted)."""
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def device_set_problems(devices: Iterable[tuple[int, DeviceConfig]]) -> list[tuple[str, str]]:
    """Problems between devices: duplicate names, RS-485 buses that disagree, two configs for one device.

    Takes (index, device) pairs so it also works on the devices that validated
    when others did not: every problem is reported in one pass.
    """
    devices = list(devices)
    problems = duplicate_name_problems((i, dev.name) for i, dev in devices)
    links: dict[str, tuple[int, TcpTransport | RtuTransport]] = {}
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
                    what = "RS-485 bus" if isinstance(tr, RtuTransport) else "connection"
                    problems.append((
                        f"devices[{i}].transport.{key}",
                        f"{_show(mine)} differs from {_show(theirs)} of devices[{first[0]}]{default}: devices sharing "
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
            problems.append((f"devices[{i}].name", f"{_show(name)} is already the name of devices[{first[name]}]"))
        else:
            first.setdefault(name, i)
    return problems


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
            raise _fail_many(problems)
        if not self.broker.client_id:
            object.__setattr__(self.broker, "client_id", f"terril-{self.site.slug}")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(site=self.site.slug, root=self.broker.topic_root)


# --------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-untyped-call]


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]


def read_yaml(path: str | Path) -> object:
    """Parse a YAML file; syntax errors become a ConfigError naming line and column."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:  # e.g. a key missing its ':'
            cm = exc.context_mark
            what += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
        raise ConfigError(source, [f"{where}: YAML syntax error: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML syntax error: {exc}"]) from None


def load_agent_config(path: str | Path, *, profiles_dir: Path | None = None) -> AgentConfig:
    """Read and validate an agent config file; raise ConfigError listing every problem."""
    path = Path(path)
    return parse_agent_config(read_yaml(path), str(path), base_dir=path.resolve().parent, profiles_dir=profiles_dir)


def parse_agent_config(
    data: object, source: str, *, base_dir: Path | None = None, profiles_dir: Path | None = None
) -> AgentConfig:
    """Validate already-parsed YAML data. *source* names it in errors (usually the file path)."""
    if data is None:
        raise ConfigError(source, ["the file is empty: expected site, broker and devices sections"])
    if not isinstance(data, dict):
        raise ConfigError(source, [f"expected a mapping with site, broker and devices sections, got {_kind(data)}"])
    context = {"base_dir": base_dir, "profiles_dir": profiles_dir}
    try:
        return AgentConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = translate_errors(exc, AgentConfig)
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


# --------------------------------------------------------------------------- pydantic errors -> plain words


def translate_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Turn pydantic's errors into ``key.path: reason`` lines a technician can act on."""
    out: list[str] = []
    for err in exc.errors(include_url=False):
        path, field = _walk(model, err["loc"])
        etype = err["type"]
        ctx = err.get("ctx") or {}
        if etype == "terril_many":
            out += [f"{_join(path, sub) or '(top level)'}: {reason}" for sub, reason in ctx["problems"]]
            continue
        if etype in ("union_tag_invalid", "union_tag_not_found"):
            path = _join(path, ".type")
        out.append(f"{path or '(top level)'}: {_reason(err, field, path)}")
    return out


def _reason(err: Any, field: Any, path: str) -> str:
    etype: str = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    secret = path.endswith("password")
    got = "" if etype == "missing" else f", got {'a hidden value' if secret else _show(value)}"
    if etype == "missing":
        return "required key missing"
    if etype == "extra_forbidden":
        return "unknown key" + _suggest(path, field)
    if etype.startswith("int_") or etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        noun = "an integer" if _is_int(field) or etype.startswith("int_") else "a number"
        return f"expected {noun}{_range(field)}{got}"
    if etype.startswith("float_"):
        return f"expected a number{_range(field)}{got}"
    if etype in ("string_type", "str_type"):
        return f"expected a text string{got}"
    if etype == "string_too_short":
        return "must not be empty"
    if etype == "string_too_long":
        return f"too long (at most {ctx.get('max_length')} characters)"
    if etype == "string_pattern_mismatch":
        if path.endswith(("slug", "name")):
            return f"expected a slug (lowercase letters, digits, _ and -, starting with a letter or digit, at most 63){got}"
        if path.endswith("topic_root"):
            return f"expected topic levels of letters, digits, _ and - separated by / (no wildcards){got}"
        if path.endswith("port"):
            return f"expected a serial device path such as /dev/ttyUSB0{got}"
        return f"does not have the expected form{got}"
    if etype == "literal_error":
        return f"expected one of {_unquote(ctx.get('expected', ''))}{got}"
    if etype == "union_tag_invalid":
        return f"expected one of {_unquote(ctx.get('expected_tags', ''))}, got {_show(ctx.get('tag'))}"
    if etype == "union_tag_not_found":
        return "required key missing (tcp or rtu)"
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys{got}"
    if etype == "list_type":
        return f"expected a list{got}"
    if etype == "too_short":
        return "must contain at least one entry"
    if etype in ("bool_type", "bool_parsing"):
        return f"expected true or false{got}"
    if etype in ("path_type",):
        return f"expected a file path{got}"
    if etype == "terril":
        return str(ctx.get("reason", err["msg"]))
    msg = str(err["msg"])
    return (msg[:1].lower() + msg[1:]) + ("" if secret else got)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _unquote(text: object) -> str:
    return str(text).replace("'", "")


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a text"}.get(type(value), f"the value {_show(value)}")


def _join(base: str, sub: str) -> str:
    if not sub:
        return base
    if not base:
        return sub.lstrip(".")
    return base + (sub if sub[0] in ".[" else "." + sub)


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated and Optional; return the bare type and the constraint metadata found."""
    meta: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            tp, extra = args[0], args[1:]
            for m in extra:
                meta.append(m)
                meta.extend(getattr(m, "metadata", []) or [])
            continue
        if origin is Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, meta


class _FieldView:
    """What the error translator needs to know about the field at an error's location."""

    def __init__(self, annotation: Any, metadata: list[Any], parent: Any) -> None:
        self.type, extra = _unwrap(annotation)
        self.metadata = metadata + extra
        self.parent = parent


def _walk(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, _FieldView | None]:
    """Format *loc* as ``a.b[2].c`` (dropping union tags) and find the field it points at."""
    path = ""
    current: Any = model
    view: _FieldView | None = None
    i = 0
    while i < len(loc):
        key = loc[i]
        bare, _ = _unwrap(current)
        if isinstance(key, int):
            path += f"[{key}]"
            args = get_args(bare)
            current = args[0] if get_origin(bare) in (list, tuple) and args else Any
            view = None
        elif isinstance(bare, type) and issubclass(bare, BaseModel) and key in bare.model_fields:
            info = bare.model_fields[key]
            path = _join(path, str(key))
            view = _FieldView(info.annotation, list(info.metadata), bare)
            current = info.annotation
            if info.discriminator and i + 1 < len(loc):  # skip the union tag pydantic puts in loc
                members = get_args(view.type)
                for member in members:
                    if loc[i + 1] == get_args(member.model_fields[info.discriminator].annotation)[0]:
                        current = member
                        i += 1
                        break
        else:  # a key the model does not know (extra_forbidden), or inside a plain value
            path = _join(path, str(key))
            view = _FieldView(Any, [], bare)
            current = Any
        i += 1
    return path, view


def _suggest(path: str, view: _FieldView | None) -> str:
    parent = view.parent if view else None
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return ""
    key = path.rsplit(".", 1)[-1]
    known = list(parent.model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known keys: {', '.join(known)})"


def _is_int(view: _FieldView | None) -> bool:
    return view is not None and view.type is int


def _range(view: _FieldView | None) -> str:
    if view is None:
        return ""
    lo = hi = None
    lo_open = hi_open = False
    for m in view.metadata:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, annotated_types.Le):
            hi = m.le
        elif isinstance(m, annotated_types.Lt):
            hi, hi_open = m.lt, True
    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f" {lo}–{hi}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '≥'} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '≤'} {hi}")
    return (" " + " and ".join(parts)) if parts else ""
