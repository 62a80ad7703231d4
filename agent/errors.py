"""One exception root for terril; each leaf says what the caller should do about it."""

from __future__ import annotations


class TerrilError(Exception):
    """Root of every error terril raises on purpose."""


class ConfigError(TerrilError):
    """The configuration is invalid. ``problems`` lists every ``key.path: reason`` found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def report(self, what: str = "configuration") -> str:
        """Every problem on its own line, for a person at a terminal (or journalctl).

        The one format of every command that reads a config (``check-config``,
        ``agent``, ``ingest``, ``rollup``, ``sim``…): ``source: key.path: reason``
        per problem (so grep finds the file), then one summary line.
        """
        count = len(self.problems)
        summary = f"{self.source}: invalid {what}: {count} problem{'s' if count != 1 else ''}, nothing was started"
        return "\n".join([*(f"{self.source}: {p}" for p in self.problems), summary])


class TransportError(TerrilError):
    """The link to a device is broken (connection refused, timeout, serial error): reconnect."""


class DeviceBusy(TerrilError):
    """The device answered 'busy' or 'acknowledge': retry at the next poll."""


class IllegalAddress(TerrilError):
    """The device refuses the register range: do not retry, the plan or profile is wrong."""


class ModbusExceptionResponse(TerrilError):
    """Any other Modbus exception response; ``code`` is the Modbus exception code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class WrongDevice(TerrilError):
    """The device is not one the configured driver describes (another family, another model):
    fix the configuration; retrying only helps if the device is replaced."""


class DecodeError(TerrilError):
    """The registers read do not make sense for the model or profile (bad length, bad marker)."""


class WriteForbidden(TerrilError):
    """Something tried to write a Modbus register. terril only ever reads."""
