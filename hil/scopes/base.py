"""The scope interface every driver implements, and the canonical capture it returns.

A :class:`Scope` is set up with :class:`AcquisitionSettings` (channels with their full-scale
range and offset, sample rate, record length, how much of the record lies before the trigger, and
the trigger), then :meth:`Scope.arm` starts a single acquisition, :meth:`Scope.wait` blocks until
it is complete and :meth:`Scope.read` transfers one channel as a :class:`Capture`.

Channel names are canonical (``"CH1"`` .. ``"CH4"``, ``"EXT"`` for the external trigger input);
each driver translates them to its command set.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import ScopeError

CHANNELS = ("CH1", "CH2", "CH3", "CH4")
TRIGGER_SOURCES = (*CHANNELS, "EXT")


@dataclass(frozen=True)
class Capture:
    """One channel of one acquisition, as the scope sent it.

    ``codes``: the raw sample codes (read-only integer array). Volts and time follow one formula
    for every scope family::

        volts = (codes - y_reference) * y_increment_v + y_origin_v
        time_s = x_origin_s + i * x_increment_s          (t = 0 at the trigger)

    ``metadata``: what the driver knows about how the record was made (scope identity, data
    format, byte order, settings read back).
    """

    channel: str
    codes: np.ndarray = field(repr=False)
    x_increment_s: float
    x_origin_s: float
    y_increment_v: float
    y_origin_v: float
    y_reference: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
            raise ScopeError(f"capture of {self.channel}: codes must be a 1-D integer array, got {codes.dtype} {codes.shape}")
        if not (np.isfinite(self.x_increment_s) and self.x_increment_s > 0):
            raise ScopeError(f"capture of {self.channel}: sample interval {self.x_increment_s!r} s is not positive")
        if not (np.isfinite(self.y_increment_v) and self.y_increment_v != 0):
            raise ScopeError(f"capture of {self.channel}: vertical increment {self.y_increment_v!r} V is unusable")
        codes = codes.astype(codes.dtype.newbyteorder("="))  # native byte order, a private copy
        codes.flags.writeable = False
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.codes.size)

    @property
    def sample_rate_hz(self) -> float:
        """Samples per second on the scope's timebase."""
        return 1.0 / self.x_increment_s

    @property
    def volts(self) -> np.ndarray:
        """Samples in volts (float64)."""
        return (self.codes.astype(np.float64) - self.y_reference) * self.y_increment_v + self.y_origin_v

    @property
    def time_s(self) -> np.ndarray:
        """Sample times in seconds on the scope's timebase, t = 0 at the trigger."""
        return self.x_origin_s + np.arange(self.n) * self.x_increment_s

    def index_at(self, t_s: float) -> int:
        """Index of the first sample at or after time ``t_s`` (clipped to the record)."""
        return int(np.clip(np.ceil((t_s - self.x_origin_s) / self.x_increment_s - 1e-9), 0, self.n))


@dataclass(frozen=True)
class ChannelSettings:
    """Vertical set-up of one input: ``range_v`` full-scale (peak to peak of the screen) and
    ``offset_v`` the voltage at the screen centre."""

    range_v: float
    offset_v: float = 0.0


@dataclass(frozen=True)
class TriggerSettings:
    """Edge trigger on ``source`` (a channel or ``"EXT"``) at ``level_v``, ``slope`` rising or falling."""

    source: str = "CH2"
    level_v: float = 0.5
    slope: str = "rising"


@dataclass(frozen=True)
class AcquisitionSettings:
    """What to acquire: ``channels`` to record (name -> vertical set-up), ``sample_rate_hz``,
    ``n_points`` per channel, ``pre_trigger_s`` of record before the trigger, and the trigger."""

    channels: Mapping[str, ChannelSettings]
    sample_rate_hz: float
    n_points: int
    pre_trigger_s: float = 0.0
    trigger: TriggerSettings = TriggerSettings()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.channels) - set(CHANNELS))
        if unknown or not self.channels:
            raise ScopeError(f"acquisition channels must be a non-empty subset of {CHANNELS}, got {sorted(self.channels)}")
        if self.trigger.source not in TRIGGER_SOURCES:
            raise ScopeError(f"trigger source {self.trigger.source!r} is not one of {TRIGGER_SOURCES}")
        if self.trigger.slope not in ("rising", "falling"):
            raise ScopeError(f"trigger slope {self.trigger.slope!r} must be 'rising' or 'falling'")
        if not (self.sample_rate_hz > 0 and self.n_points > 0):
            raise ScopeError(f"sample rate {self.sample_rate_hz!r} S/s and record length {self.n_points!r} must be positive")
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))

    @property
    def duration_s(self) -> float:
        """Record length in seconds."""
        return self.n_points / self.sample_rate_hz


class Scope(abc.ABC):
    """One small interface for every scope family (see module doc). A context manager: closing
    releases the connection."""

    #: Name of the family, as used in rig files (``"keysight"``, ``"tektronix"``, ...).
    family: str = ""

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """The scope's ``*IDN?`` answer."""

    @abc.abstractmethod
    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        """Set channels, timebase, record length and trigger; return what the scope actually uses."""

    @abc.abstractmethod
    def arm(self) -> None:
        """Start a single acquisition that completes on the next trigger."""

    @abc.abstractmethod
    def wait(self, timeout_s: float) -> None:
        """Block until the armed acquisition is complete (raise ScopeTimeoutError after ``timeout_s``)."""

    @abc.abstractmethod
    def read(self, channel: str) -> Capture:
        """Transfer one channel of the last acquisition."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def read_all(self, channels: Sequence[str]) -> dict[str, Capture]:
        """Transfer several channels of the last acquisition."""
        return {ch: self.read(ch) for ch in channels}
