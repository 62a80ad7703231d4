"""Reading the files a configuration names: regular files only, small, UTF-8, strict YAML.

Every YAML file terril reads (agent, ingest, inventory, device profiles,
simulator) goes through :func:`load_yaml`, and every file a configuration points
at (a password or token file, a TLS certificate) through :func:`read_secret` or
:func:`check_file`. One place decides what a bad file is, and one wording says
so, whichever command meets it (``check-config``, ``agent``, ``ingest``…).

Why so careful with something as plain as a file:

* a named pipe (``mkfifo``) given as a config or password file would block the
  command forever with no output, and ``/dev/zero`` would be read until memory
  runs out: only regular files are opened for reading, without blocking, and at
  most a few hundred KiB are read (a config or a password is small);
* PyYAML silently keeps the *last* of two equal keys (a technician who adds a
  second ``unit:`` further down gets one of them, silently): duplicates are
  refused, with the line of each;
* YAML nested thousands of levels deep ends PyYAML's recursive composer with a
  ``RecursionError`` traceback: nesting is bounded far above any real config.

Problems with the file itself are raised as :class:`FileRefused`; a caller
validating a key (``broker.password_file``) turns it into that key's problem,
a loader reading the config itself into a :class:`~agent.errors.ConfigError`.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from agent.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Largest YAML file read (an inventory of every roof of a town is well under 1 MiB)."""
MAX_SECRET_BYTES = 64 * 1024
"""Largest password or token file read."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of YAML collections accepted (terril's configs nest fewer than 8 levels)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """A file a configuration names cannot be used; ``reason`` says why, in plain words, naming the file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is instead (for the message)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The content of the regular file *path*, at most *limit* bytes, or FileRefused.

    Opened with ``O_NONBLOCK`` so that opening a FIFO does not wait for a writer,
    then checked with ``fstat`` on the open descriptor (no window between check
    and read).
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileRefused(f"file {name} does not exist") from None
    except OSError as exc:
        raise FileRefused(f"cannot read {name}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        kind = _kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise FileRefused(f"{name} is {kind}, not a regular file")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileRefused(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FileRefused(f"{name} is larger than {_size(limit)}: not a file terril reads")
    return data


def read_text(path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8, or FileRefused."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{os.fspath(path)} is not UTF-8 text (byte {exc.start})") from None


def read_secret(path: str | os.PathLike[str], strip: str | None = "\r\n") -> str:
    """A password or token kept in its own file: the text less its line ending (*strip*), never empty."""
    secret = read_text(path, MAX_SECRET_BYTES).strip(strip)
    if not secret:
        raise FileRefused(f"{os.fspath(path)} is empty")
    return secret


def check_file(path: str | os.PathLike[str]) -> None:
    """A file another library will read (a TLS certificate): it exists, is regular and readable."""
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise FileRefused(f"file {name} does not exist") from None
    except OSError as exc:
        raise FileRefused(f"cannot read {name}: {exc.strerror or exc}") from None
    kind = _kind_of(mode)
    if kind is not None:
        raise FileRefused(f"{name} is {kind}, not a regular file")
    if not os.access(name, os.R_OK):
        raise FileRefused(f"file {name} is not readable by this user")


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and collections nested deeper than MAX_YAML_DEPTH."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # PyYAML composes recursively (3 Python frames per level): bound the depth
        # before Python's recursion limit does it with a traceback.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                where = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # PyYAML's parser is untyped
                raise ComposerError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", where)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _StrictLoader, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            first = seen[key].start_mark
            raise ConstructorError(
                "while reading a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark,
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _construct_timestamp(loader: _StrictLoader, node: ScalarNode) -> object:
    """A YAML date or time; one that looks like a date but is none (``2021-13-01``) is a YAML
    error at its line, where PyYAML would raise a bare ValueError (a traceback)."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as exc:
        raise ConstructorError(None, None, f"{node.value!r} is not a valid date or time ({exc})",
                               node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def parse_yaml(text: str, source: str) -> object:
    """Parse YAML *text*; any problem becomes a ConfigError naming line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no Python objects built
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
    except RecursionError:  # pragma: no cover - compose_node bounds the depth first
        raise ConfigError(source, [f"YAML nested too deeply (more than {MAX_YAML_DEPTH} levels)"]) from None


def load_yaml(path: str | os.PathLike[str], source: str | None = None) -> object:
    """Read and parse the YAML file *path* (*source* names it in errors; default: the path)."""
    source = os.fspath(path) if source is None else source
    try:
        text = read_text(path)
    except FileRefused as exc:
        raise ConfigError(source, [exc.reason]) from None
    return parse_yaml(text, source)
