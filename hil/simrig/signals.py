"""Analog signals on the simulated bench, rendered at the instants a scope samples them.

Time here is *true* time in seconds, the AWG's clock: the card's sample n is output during
[n / fs, (n + 1) / fs). A scope model asks for ``n`` samples starting at ``t0_s``, ``dt_s``
apart, through its front-end filter, and optionally for the time derivative (to apply jitter).

:class:`DacOutput` is what a card channel puts out: int16 codes held for one sample each (zero-
order hold), through the card's reconstruction filter. It is rendered exactly in the frequency
domain: the spectrum of the code block (a chirp-z transform evaluates its DTFT on the grid
m / P of a period P longer than the block plus filter tails), times the path's complex response
(hold, reconstruction filter, scope front end) up to ``f_max_hz``, folded onto the scope's
sample grid and inverse-transformed. DAC images above the AWG Nyquist frequency are kept and
alias into the scope's band as they would on the bench.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.fft import ifft, next_fast_len
from scipy.signal import czt

from ..response import Filter, SignalPath


class AnalogSignal(Protocol):
    """Something a scope input can be wired to."""

    def render(self, t0_s: float, dt_s: float, n: int, front_end: Filter, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Volts at t0_s + k * dt_s (k < n) seen through ``front_end``, and dV/dt (V/s) if asked."""


@dataclass(frozen=True)
class FunctionSignal:
    """A signal given as a function of true time (vectorised, volts), already band-limited: the
    scope front end is not applied. ``derivative_fn`` gives dV/dt; without it jitter is ignored."""

    fn: Callable[[np.ndarray], np.ndarray]
    derivative_fn: Callable[[np.ndarray], np.ndarray] | None = None

    def render(self, t0_s: float, dt_s: float, n: int, front_end: Filter, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        t = t0_s + np.arange(n) * dt_s
        dy = self.derivative_fn(t) if (derivative and self.derivative_fn is not None) else None
        return np.asarray(self.fn(t), dtype=np.float64), dy


@dataclass(frozen=True)
class DacOutput:
    """One card channel's analog output (see module doc).

    ``codes``: int16 samples at ``sample_rate_hz`` (the stop level, zero, outside the block);
    ``t_start_s``: true time of ``codes[0]``; ``volts_per_code``: output volts per code
    (amplitude / 32767 into 50 ohm, times any gain error); ``reconstruction``: the card's filter;
    ``f_max_hz``: highest frequency rendered (DAC images beyond it are dropped).
    """

    codes: np.ndarray = field(repr=False)
    sample_rate_hz: float
    volts_per_code: float
    t_start_s: float = 0.0
    reconstruction: Filter = Filter()
    f_max_hz: float = 4e9

    def tail_s(self, front_end: Filter) -> float:
        """How long the impulse response of hold + filters takes to die out (to ~1e-9)."""
        cutoffs = [f.cutoff_hz for f in (self.reconstruction, front_end) if f.kind != "none"]
        slowest = min(cutoffs) if cutoffs else self.sample_rate_hz
        return max(20.0 / self.sample_rate_hz, 40.0 / (2 * math.pi * slowest))

    def render(self, t0_s: float, dt_s: float, n: int, front_end: Filter, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        fs = self.sample_rate_hz
        tail = self.tail_s(front_end)
        i0 = math.floor((t0_s - tail - self.t_start_s) * fs)
        i1 = math.ceil((t0_s + n * dt_s + tail - self.t_start_s) * fs) + 1
        x = np.zeros(i1 - i0, dtype=np.float64)
        lo, hi = max(i0, 0), min(i1, self.codes.shape[0])
        if hi > lo:
            x[lo - i0 : hi - i0] = self.codes[lo:hi]
        tau0 = t0_s - (self.t_start_s + i0 / fs)  # first instant, from the block's first sample
        n_period = next_fast_len(max(n, math.ceil((x.size / fs + 2 * tail) / dt_s)) + 1)
        period = n_period * dt_s
        m = np.arange(math.ceil(self.f_max_hz * period) + 1)
        f = m / period
        spectrum = czt(x, m.size, w=np.exp(-2j * np.pi / (period * fs)), a=1.0)
        path = SignalPath(fs, self.reconstruction, front_end)
        coeff = spectrum * path.response(f) * (self.volts_per_code / fs) * np.exp(2j * np.pi * f * tau0)
        coeff[1:] *= 2.0  # real signal: positive frequencies stand for their mirror images too
        y = self._fold(coeff, m, n_period, n, dt_s)
        dy = self._fold(coeff * (2j * np.pi * f), m, n_period, n, dt_s) if derivative else None
        return y, dy

    @staticmethod
    def _fold(coeff: np.ndarray, m: np.ndarray, n_period: int, n: int, dt_s: float) -> np.ndarray:
        """Sum the Fourier series (1/P) sum_m coeff_m e^{2 pi i m k / L} at k < n (P = L dt)."""
        idx = m % n_period
        folded = np.bincount(idx, coeff.real, n_period) + 1j * np.bincount(idx, coeff.imag, n_period)
        return ifft(folded).real[:n] / dt_s
