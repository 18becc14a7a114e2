"""Errors the hardware-in-the-loop harness raises; all subclass :class:`awgrt.errors.AWGRTError`."""

from __future__ import annotations

from awgrt.errors import AWGRTError


class HILError(AWGRTError):
    """Base class of every harness error."""


class ScopeError(HILError):
    """A scope could not be reached, refused a command or sent something unusable.

    ``resource`` is the VISA resource name and ``command`` the SCPI command involved (None where
    none applies); both are prefixed to the message.
    """

    def __init__(self, message: str, *, resource: str | None = None, command: str | None = None) -> None:
        self.resource = resource
        self.command = command
        where = []
        if resource:
            where.append(f"scope {resource}")
        if command:
            where.append(f"command {command!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ScopeConnectionError(ScopeError):
    """The scope could not be opened (wrong resource name, unreachable host, no VISA backend)."""


class ScopeTimeoutError(ScopeError):
    """The scope did not answer within the timeout (no trigger, or a truncated transfer)."""


class ScopeProtocolError(ScopeError):
    """The scope answered with something that is not what the command set promises."""


class GeneratorError(HILError):
    """The function generator refused a command or cannot make the burst asked for."""


class RigConfigError(HILError, ValueError):
    """A rig file (rig.toml) or rig option is malformed or names something unknown."""


class AnalysisError(HILError, ValueError):
    """A check cannot be computed on this capture (too short, no samples in a window, no tone)."""
