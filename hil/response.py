"""Analog frequency responses of the signal path, shared by the simulated rig (to make the
signal) and the checks (to say what amplitude to expect).

The path from DAC codes to scope samples is: zero-order hold at the AWG rate, the card's
reconstruction filter, cable, the scope's front end. Every response is a complex gain at
frequencies in Hz; filters are the analog Butterworth or Bessel prototypes with their -3 dB
point at ``cutoff_hz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from .errors import RigConfigError

FILTER_KINDS = ("none", "butterworth", "bessel")


@lru_cache(maxsize=32)
def _prototype(kind: str, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of the prototype with its -3 dB point at 1 rad/s."""
    if kind == "butterworth":
        return signal.butter(order, 1.0, analog=True)
    return signal.bessel(order, 1.0, analog=True, norm="mag")


@dataclass(frozen=True)
class Filter:
    """An analog low-pass: ``kind`` none / butterworth / bessel, ``order``, -3 dB at ``cutoff_hz``."""

    kind: str = "none"
    cutoff_hz: float = 0.0
    order: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise RigConfigError(f"filter kind {self.kind!r} is not one of {FILTER_KINDS}", value=self.kind)
        if self.kind != "none" and not (self.cutoff_hz > 0 and isinstance(self.order, int) and 1 <= self.order <= 10):
            raise RigConfigError(f"{self.kind} filter needs cutoff_hz > 0 and order 1..10, got {self.cutoff_hz!r}, {self.order!r}", value=self.order)

    def response(self, f_hz: np.ndarray) -> np.ndarray:
        """Complex gain at frequencies ``f_hz`` (Hz)."""
        f = np.asarray(f_hz, dtype=np.float64)
        if self.kind == "none":
            return np.ones(f.shape, dtype=np.complex128)
        b, a = _prototype(self.kind, self.order)
        s = 1j * f / self.cutoff_hz
        return np.polyval(b, s) / np.polyval(a, s)


def zero_order_hold(f_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Complex gain of holding each sample for one period 1/fs, relative to an ideal impulse of
    area 1/fs: sinc(f/fs) * exp(-j pi f/fs) (a delay of half a sample)."""
    x = np.asarray(f_hz, dtype=np.float64) / sample_rate_hz
    return np.sinc(x) * np.exp(-1j * np.pi * x)


@dataclass(frozen=True)
class SignalPath:
    """The whole analog path from DAC to scope ADC: hold at ``awg_sample_rate_hz``, the card's
    ``reconstruction`` filter and the scope's ``front_end``, with a flat ``gain`` (1: none)."""

    awg_sample_rate_hz: float
    reconstruction: Filter = Filter()
    front_end: Filter = Filter()
    gain: float = 1.0

    def response(self, f_hz: np.ndarray) -> np.ndarray:
        """Complex gain at ``f_hz``."""
        return self.gain * zero_order_hold(f_hz, self.awg_sample_rate_hz) * self.reconstruction.response(f_hz) * self.front_end.response(f_hz)

    def magnitude(self, f_hz: float) -> float:
        """|gain| at one frequency: the factor between a programmed and a measured amplitude."""
        return float(np.abs(self.response(np.array([f_hz])))[0])
