"""The identity guard of a register profile: is this device one the profile describes?

Two device families can share a block of registers and mean different things by
it: register 5004 counts whole kWh on a Sungrow SG string inverter and 0.1 kWh on
an SH hybrid. A profile pointed at the wrong family would publish wrong values
for years without a warning, so before its first poll a profile reads what the
device says it is (its ``identify:`` section: Sungrow's device type code, Huawei's
model name, the SDM630's system type…) and refuses a device outside its list with
:class:`agent.errors.WrongDevice`, naming what was found and, when a shipped
profile accepts that answer, the profile that fits.

:func:`judge` is pure (the verdict on a value already read); :func:`check` reads
the register; :func:`suggest` reads each distinct identification register of the
shipped profiles once and names those that accept the device (``terril scan``).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.devices.profile import Identify, Located, Profile, available_profiles, load_profile
from agent.errors import DeviceBusy, IllegalAddress, ModbusExceptionResponse, TransportError, WrongDevice
from agent.modbus.plan import Table
from agent.modbus.types import RegisterReader

ILLEGAL_FUNCTION = 0x01
"""Modbus exception code of a device without that register table at all."""

MAX_SHOWN_CHARS = 40
"""A model name read from a device is shown at most this long (it is device-supplied text)."""

RegisterKey = tuple[Table, int, str, int, str]
"""(table, wire address, type, registers, word order): two guards reading the same thing."""


@dataclass(frozen=True)
class Verdict:
    """What a profile makes of a device's answer to its identification register."""

    accepted: bool
    shown: str
    """The answer as a person reads it: ``device type code 0x0E12 (SH8.0RT-20)``, ``Model 'SUN2000-10KTL-M1'``."""
    model: str | None = None
    """The model name the answer stands for, when the profile knows it."""
    answered: bool = True
    """False when the register was refused, empty or a sentinel (then nothing is proved either way)."""


def register_key(profile: Profile, register: Located) -> RegisterKey:
    return (profile.table_of(register), profile.wire_address(register), register.type, register.count,
            profile.word_order_of(register))


def safe_text(value: str) -> str:
    """Device-supplied text made safe for a log line: printable ASCII only, bounded."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in value)
    return cleaned[:MAX_SHOWN_CHARS] + ("…" if len(cleaned) > MAX_SHOWN_CHARS else "")


def _code_text(register: Located, value: int | float) -> str:
    if isinstance(value, int) and register.type.startswith("u"):
        return f"0x{value:0{4 * register.count}X}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _code_key(value: int | float) -> int | None:
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return value


def _name_of(guard: Identify, value: int | float | str) -> str | None:
    if isinstance(value, str):
        return None
    key = _code_key(value)
    if key is None:
        return None
    return guard.values.get(key) or guard.refuse.get(key)


def judge(profile: Profile, value: int | float | str | None, known_names: dict[int, str] | None = None) -> Verdict:
    """The verdict of *profile*'s guard on *value* (None: the register was refused, empty or a sentinel).

    *known_names* names codes the profile itself does not list (other profiles' values),
    so the message says ``0x0E12 (SH8.0RT-20)`` rather than a bare number.
    """
    guard = profile.identify
    if guard is None:
        return Verdict(True, "no identification register")
    register = guard.code_register
    if value is None:
        where = f"{profile.table_of(register)} register {register.address}"
        return Verdict(guard.missing == "accept", f"no answer to {register.name} ({where})", answered=False)
    if isinstance(value, str):
        text = safe_text(value)
        shown = f"{register.name} {text!r}"
        ok = any(value.startswith(prefix) for prefix in guard.prefixes) if guard.prefixes else True
        return Verdict(ok, shown, text if ok else None)
    name = _name_of(guard, value)
    key = _code_key(value)
    if name is None and known_names is not None and key is not None:
        name = known_names.get(key)
    shown = f"{register.name} {_code_text(register, value)}" + (f" ({name})" if name else "")
    if key is not None and key in guard.refuse:
        return Verdict(False, shown)
    if guard.values:
        accepted = key is not None and key in guard.values
        return Verdict(accepted, shown, guard.values[key] if accepted and key is not None else None)
    return Verdict(True, shown)


def _shipped() -> list[Profile]:
    return [load_profile(name) for name in available_profiles()]


def fitting_profiles(profile: Profile, value: int | float | str | None) -> list[str]:
    """Shipped profiles other than *profile* whose guard reads the same register and accepts *value*."""
    if profile.identify is None or value is None:
        return []
    key = register_key(profile, profile.identify.code_register)
    fits = []
    for other in _shipped():
        if other.name == profile.name or other.identify is None or other.kind != profile.kind:
            continue
        if register_key(other, other.identify.code_register) != key:
            continue
        if judge(other, value).accepted:
            fits.append(other.name)
    return fits


def _other_names(profile: Profile) -> dict[int, str]:
    """Code -> model name from every shipped profile reading the same register as *profile*."""
    if profile.identify is None:
        return {}
    key = register_key(profile, profile.identify.code_register)
    names: dict[int, str] = {}
    for other in _shipped():
        if other.identify is not None and register_key(other, other.identify.code_register) == key:
            names.update(other.identify.values)
    return names


def refusal_message(profile: Profile, verdict: Verdict, value: int | float | str | None) -> str:
    """One line: what was found, which profile refused it, which one fits (when one does)."""
    fits = fitting_profiles(profile, value)
    if fits:
        hint = f"profile {fits[0]!r} fits it: set driver: {fits[0]}"
    elif value is None:
        hint = "check the device's address, unit id and driver"
    else:
        hint = "no shipped profile lists it; if this device is of that family, add its code to the profile"
    return f"{verdict.shown}: not a device of profile {profile.name!r} ({profile.metadata.manufacturer}); {hint}"


async def read_identity(profile: Profile, reader: RegisterReader) -> int | float | str | None:
    """The raw answer to *profile*'s identification register; None when refused, empty or a sentinel.

    A transport error, a busy device or a device failure (exception 0x04) propagates:
    silence or a hiccup says nothing about identity. Only "illegal address" and
    "illegal function" mean the device has no such register.
    """
    guard = profile.identify
    if guard is None:
        return None
    register = guard.code_register
    try:
        words = await reader.read(profile.table_of(register), profile.wire_address(register), register.count)
    except IllegalAddress:
        return None
    except ModbusExceptionResponse as exc:
        if exc.code == ILLEGAL_FUNCTION:
            return None
        raise
    return profile.decode(register, words)


async def check(profile: Profile, reader: RegisterReader) -> Verdict:
    """Read *profile*'s identification register; raise WrongDevice when the device is not of the profile."""
    value = await read_identity(profile, reader)
    verdict = judge(profile, value, _other_names(profile))
    if not verdict.accepted:
        raise WrongDevice(refusal_message(profile, verdict, value))
    return verdict


@dataclass(frozen=True)
class Suggestion:
    profile: str
    shown: str
    model: str | None


async def suggest(reader: RegisterReader) -> list[Suggestion]:
    """Shipped profiles whose guard accepts the device behind *reader* (each distinct register read once).

    Guards that accept a missing register (``missing: accept``) only count when the
    register answered: a silent register proves nothing about a device.
    """
    answers: dict[RegisterKey, int | float | str | None] = {}
    found: list[Suggestion] = []
    for profile in _shipped():
        if profile.identify is None:
            continue
        key = register_key(profile, profile.identify.code_register)
        if key not in answers:
            try:
                answers[key] = await read_identity(profile, reader)
            except (DeviceBusy, ModbusExceptionResponse):
                # busy, or "device failure" (0x04) where some firmware means "no such register":
                # no answer from this register, the other profiles' are still asked
                answers[key] = None
            except TransportError:
                break  # nothing answers there: do not wait for a timeout per profile
        value = answers[key]
        if value is None:
            continue
        verdict = judge(profile, value)
        if verdict.accepted:
            found.append(Suggestion(profile.name, verdict.shown, verdict.model))
    return found
