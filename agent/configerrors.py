"""Pydantic's validation errors in plain words: ``key.path: reason``, every problem at once.

One translator for every configuration model terril has (agent, ingest,
inventory, device profiles, simulator), so the same mistake reads the same
wherever it is made: ``devices[0].transport.port: expected an integer
1–65535, got 70000``, ``broker.colour: unknown key; did you mean …``.

Validators raise :func:`fail` (one reason, already in plain words) or
:func:`fail_many` (several cross-field problems, each with its own key path
relative to the model); a plain ``ValueError`` also reads well (its text is the
reason). :func:`validate_model` runs a model on parsed YAML and raises a
:class:`~agent.errors.ConfigError` listing every problem.
"""

from __future__ import annotations

import difflib
import json
import types
from collections import abc
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from agent.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def fail(reason: str) -> PydanticCustomError:
    """An error whose message is already the plain reason we want to show."""
    return PydanticCustomError("terril", "{reason}", {"reason": reason})


def fail_many(problems: Sequence[tuple[str, str]]) -> PydanticCustomError:
    """Several cross-field problems at once; each is (path relative to the model, reason)."""
    return PydanticCustomError(
        "terril_many", "{summary}", {"summary": "; ".join(r for _, r in problems), "problems": list(problems)}
    )


def validate_model(
    model: type[M], data: object, source: str, *, expected: str, context: Mapping[str, Any] | None = None
) -> M:
    """*data* (parsed YAML) as *model*, or a ConfigError with every problem as ``key.path: reason``.

    *expected* says what the top level should hold, for an empty file or one
    that is not a mapping (``"site, broker and devices sections"``).
    """
    if data is None:
        raise ConfigError(source, [f"the file is empty: expected {expected}"])
    if not isinstance(data, dict):
        raise ConfigError(source, [f"expected a mapping with {expected}, got {kind_of(data)}"])
    try:
        return model.model_validate(data, context=dict(context) if context is not None else None)
    except ValidationError as exc:
        raise ConfigError(source, translate_errors(exc, model)) from None


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


_PLAIN: dict[str, str] = {
    "missing": "required key missing",
    "string_type": "expected a text string{got}",
    "str_type": "expected a text string{got}",
    "string_too_short": "must not be empty",
    "union_tag_not_found": "required key missing (tcp or rtu)",
    "model_type": "expected a mapping of keys{got}",
    "model_attributes_type": "expected a mapping of keys{got}",
    "dict_type": "expected a mapping of keys{got}",
    "list_type": "expected a list{got}",
    "too_short": "must contain at least one entry",
    "bool_type": "expected true or false{got}",
    "bool_parsing": "expected true or false{got}",
    "path_type": "expected a file path{got}",
}
"""Pydantic error type -> our reason, for the errors whose wording does not depend on the field."""

_PATTERN_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("slug", "name"), "expected a slug (lowercase letters, digits, _ and -, starting with a letter or digit, "
                       "at most 63)"),
    (("topic_root",), "expected topic levels of letters, digits, _ and - separated by / (no wildcards)"),
    (("port",), "expected a serial device path such as /dev/ttyUSB0"),
)
"""Key name endings -> what a text that does not match its pattern should have looked like."""

_NUMBER_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _reason(err: Any, field: Any, path: str) -> str:
    etype: str = err["type"]
    ctx = err.get("ctx") or {}
    secret = path.endswith(("password", "token"))
    got = "" if etype == "missing" else f", got {'a hidden value' if secret else show(err.get('input'))}"
    if etype in _PLAIN:
        return _PLAIN[etype].format(got=got)
    if etype == "extra_forbidden":
        return "unknown key" + _suggest(path, field)
    if etype.startswith(("int_", "float_")) or etype in _NUMBER_ERRORS:
        noun = "an integer" if etype.startswith("int_") or (_is_int(field) and not etype.startswith("float_")) \
            else "a number"
        return f"expected {noun}{_range(field)}{got}"
    if etype == "string_too_long":
        return f"too long (at most {ctx.get('max_length')} characters)"
    if etype == "string_pattern_mismatch":
        expected = next((text for ends, text in _PATTERN_REASONS if path.endswith(ends)),
                        f"expected text matching {ctx.get('pattern')}")
        return expected + got
    if etype == "literal_error":
        return f"expected one of {_unquote(ctx.get('expected', ''))}{got}"
    if etype == "union_tag_invalid":
        return f"expected one of {_unquote(ctx.get('expected_tags', ''))}, got {show(ctx.get('tag'))}"
    if etype == "terril":
        return str(ctx.get("reason", err["msg"]))
    if etype in ("value_error", "assertion_error"):  # a validator's own words
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = str(err["msg"])
    return (msg[:1].lower() + msg[1:]) + ("" if secret else got)


def show(value: object) -> str:
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


def kind_of(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a text"}
    return names.get(type(value), f"the value {show(value)}")


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


_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence)
_MAPPINGS = (dict, abc.Mapping)


def _item_type(container: Any) -> Any:
    """The type of the items of ``list[X]``, ``tuple[X, ...]`` or the values of ``dict[K, X]`` (else Any)."""
    origin, args = get_origin(container), get_args(container)
    if origin in _SEQUENCES and args:
        return args[0]
    if origin in _MAPPINGS and len(args) == 2:
        return args[1]
    return Any


def _walk(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, _FieldView | None]:
    """Format *loc* as ``a.b[2].c`` (dropping union tags) and find the field it points at."""
    path = ""
    current: Any = model
    view: _FieldView | None = None
    i = 0
    while i < len(loc):
        key = loc[i]
        bare, _ = _unwrap(current)
        item = _item_type(bare)
        if isinstance(key, int):
            path += f"[{key}]"
            current = item
            view = _FieldView(item, [], bare) if item is not Any else None
        elif get_origin(bare) in _MAPPINGS:
            path = _join(path, str(key))
            current = item
            view = _FieldView(item, [], bare)
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
    lo: Any = None
    hi: Any = None
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
