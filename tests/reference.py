"""Independent reference synthesiser and phase fitter for the awgrt tests.

Written from the physics, not from awgrt's code, so tests can compare awgrt's output with it.

Signal model
------------
A tone is a sequence of :class:`Span` s, each lasting ``n`` samples at sample rate ``fs``. Within a
span, at sample offset k (time t = k / fs from the span start, normalised time u = k / n) the tone has

* instantaneous frequency  f(u) = f0 + (f1 - f0) s(u),  s the frequency shape's progress curve;
* amplitude                a(u) = a0 + (a1 - a0) s_a(u) (or a0 (a1 / a0)**u for ``"exp"``);
* phase (cycles)           phi(k) = phi_start + integral_0^{k/fs} f dt
                                  = phi_start + (f0 / fs) k + ((f1 - f0) / fs) n S(u),
  where S(u) = integral_0^u s(v) dv.

The output is sum over tones of a(u) sin(2 pi phi(k)). A tone's phase carries over exactly from one
span into the next (phase at the start of span j+1 = phase at offset n of span j).

Progress curves and their integrals (derived by hand, see :func:`progress_integral`):

* ``linear``:   s(u) = u                          S(u) = u^2 / 2
* ``min_jerk``: s(u) = 10 u^3 - 15 u^4 + 6 u^5     S(u) = 5/2 u^4 - 3 u^5 + u^6
* ``cosine``:   s(u) = (1 - cos(pi u)) / 2         S(u) = u / 2 - sin(pi u) / (2 pi)
* ``smoothstep``: s(u) = 3 u^2 - 2 u^3             S(u) = u^3 - u^4 / 2

Amplitude ramps besides those (``amplitude``): ``geo_ramp`` (and ``exp`` without a time constant)
a0 (a1 / a0)^u; ``exp`` with R = T / tau, a0 + (a1 - a0) (1 - e^(-R u)) / (1 - e^(-R));
``adiabatic_ramp``, 1/a moving along the smoothstep from 1/a0 to 1/a1, with an end at zero
replaced by 1e-3 of the other end and that replacement taken back out along the smoothstep.

:func:`progress_integral_numeric` evaluates S by adaptive quadrature (``scipy.integrate.quad``) so the
closed forms can themselves be checked (to far better than 1e-9 cycles).

Phase fitting
-------------
:func:`fit_phases` fits, by linear least squares, the constant phase offset and amplitude of each
tone in a window of samples, given every tone's known phase trajectory (and optionally its
amplitude envelope) up to those constants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.integrate import quad

FREQ_SHAPES = ("linear", "min_jerk", "cosine", "smoothstep")
AMP_SHAPES = (*FREQ_SHAPES, "exp", "geo_ramp", "adiabatic_ramp")

TWO_PI = 2.0 * math.pi


# ------------------------------------------------------------------------------------- shapes


def progress(shape: str, u: np.ndarray | float) -> np.ndarray:
    """Progress s(u) in [0, 1] of a trajectory of the given shape at normalised time u in [0, 1]."""
    u = np.asarray(u, dtype=np.float64)
    if shape == "linear":
        return u.copy()
    if shape == "min_jerk":
        # Minimum-jerk profile: the quintic with s(0)=0, s(1)=1 and zero velocity and acceleration at both ends.
        return 10.0 * u**3 - 15.0 * u**4 + 6.0 * u**5
    if shape == "cosine":
        return 0.5 * (1.0 - np.cos(math.pi * u))
    if shape == "smoothstep":
        return u * u * (3.0 - 2.0 * u)
    raise ValueError(f"unknown shape {shape!r}")


def progress_integral(shape: str, u: np.ndarray | float) -> np.ndarray:
    """S(u) = integral_0^u s(v) dv in closed form (derivation in the module docstring)."""
    u = np.asarray(u, dtype=np.float64)
    if shape == "linear":
        return 0.5 * u * u
    if shape == "min_jerk":
        # integral of 10 v^3 - 15 v^4 + 6 v^5 = 10/4 u^4 - 15/5 u^5 + 6/6 u^6
        return 2.5 * u**4 - 3.0 * u**5 + u**6
    if shape == "cosine":
        # integral of (1 - cos(pi v)) / 2 = u / 2 - sin(pi u) / (2 pi)
        return 0.5 * u - np.sin(math.pi * u) / (2.0 * math.pi)
    if shape == "smoothstep":
        # integral of 3 v^2 - 2 v^3 = u^3 - u^4 / 2
        return u**3 - 0.5 * u**4
    raise ValueError(f"unknown shape {shape!r}")


def progress_integral_numeric(shape: str, u: float) -> float:
    """S(u) by adaptive Gauss-Kronrod quadrature of s (independent check of the closed forms)."""
    value, _ = quad(lambda v: float(progress(shape, v)), 0.0, float(u), epsabs=1e-15, epsrel=1e-13, limit=200)
    return value


def amplitude(a0: float, a1: float, shape: str, u: np.ndarray | float, rate: float | None = None) -> np.ndarray:
    """Amplitude a(u) of a ramp a0 -> a1 (see the module docstring); ``rate`` = T / tau of an
    ``"exp"`` ramp with a time constant (None: geometric)."""
    u = np.asarray(u, dtype=np.float64)
    if a0 == a1:
        return np.full(u.shape, float(a0))
    if shape in ("exp", "geo_ramp") and rate is None:
        if a0 <= 0 or a1 <= 0:
            raise ValueError("a geometric ramp needs both ends > 0")
        return a0 * (a1 / a0) ** u
    if shape == "exp":
        return a0 + (a1 - a0) * (1.0 - np.exp(-rate * u)) / (1.0 - math.exp(-rate))
    if shape == "adiabatic_ramp":
        e0, e1 = (a if a > 0 else 1e-3 * max(a0, a1) for a in (a0, a1))
        s = progress("smoothstep", u)
        return 1.0 / ((1.0 - s) / e0 + s / e1) - (e0 - a0) * (1.0 - s) - (e1 - a1) * s
    return a0 + (a1 - a0) * progress(shape, u)


# ------------------------------------------------------------------------------------- tones


@dataclass(frozen=True)
class Span:
    """``n`` samples of one smooth trajectory: frequency f0 -> f1 (Hz, shape ``freq_shape``) and
    amplitude a0 -> a1 (fractions of full scale, shape ``amp_shape``). ``f1_hz`` / ``a1`` default
    to the start values (a hold)."""

    n: int
    f0_hz: float
    f1_hz: float | None = None
    freq_shape: str = "linear"
    a0: float = 1.0
    a1: float | None = None
    amp_shape: str = "linear"
    rate: float | None = None  # T / tau of an "exp" amplitude ramp with a time constant

    @property
    def f_end(self) -> float:
        return self.f0_hz if self.f1_hz is None else self.f1_hz

    @property
    def a_end(self) -> float:
        return self.a0 if self.a1 is None else self.a1

    def phase_advance_cycles(self, k: np.ndarray | float, fs: float) -> np.ndarray:
        """Phase gained (cycles) from the span start to sample offset k (k may be fractional or
        reach n): (f0 / fs) k + ((f1 - f0) / fs) n S(k / n)."""
        k = np.asarray(k, dtype=np.float64)
        phase = (self.f0_hz / fs) * k
        if self.f_end != self.f0_hz:
            phase = phase + ((self.f_end - self.f0_hz) / fs) * self.n * progress_integral(self.freq_shape, k / self.n)
        return phase

    def phase_advance_numeric(self, k: float, fs: float) -> float:
        """Same as :meth:`phase_advance_cycles` at one offset, by quadrature of f(t) over time."""
        t_end = k / fs
        duration = self.n / fs
        f0, f1 = self.f0_hz, self.f_end
        if f0 == f1:
            return f0 * t_end
        # integrate f0 + (f1 - f0) s(t / T) dt exactly split as f0 t + (f1 - f0) * integral s(t/T) dt
        value, _ = quad(lambda t: float(progress(self.freq_shape, t / duration)), 0.0, t_end, epsabs=1e-18, epsrel=1e-13, limit=200)
        return f0 * t_end + (f1 - f0) * value

    def amplitude(self, k: np.ndarray) -> np.ndarray:
        return amplitude(self.a0, self.a_end, self.amp_shape, np.asarray(k, dtype=np.float64) / self.n, self.rate)


@dataclass(frozen=True)
class Tone:
    """One tone: spans played back to back, starting at ``phase0_cycles`` (cycles, not radians)."""

    spans: tuple[Span, ...]
    phase0_cycles: float = 0.0

    @property
    def n(self) -> int:
        return sum(s.n for s in self.spans)

    def span_start_phases(self, fs: float) -> list[float]:
        """Phase (cycles, reduced to [0, 1)) at the start of every span, and after the last one."""
        out = [self.phase0_cycles % 1.0]
        for s in self.spans:
            out.append(float((out[-1] + s.phase_advance_cycles(float(s.n), fs)) % 1.0))
        return out

    def end_phase_cycles(self, fs: float) -> float:
        """Phase (cycles, in [0, 1)) one sample after the tone's last sample."""
        return self.span_start_phases(fs)[-1]

    def phase_cycles(self, fs: float) -> np.ndarray:
        """Phase (cycles, reduced to [0, 1)) at every sample 0 .. n-1."""
        starts = self.span_start_phases(fs)
        parts = []
        for s, p0 in zip(self.spans, starts):
            parts.append((p0 + s.phase_advance_cycles(np.arange(s.n, dtype=np.float64), fs)) % 1.0)
        return np.concatenate(parts) if parts else np.zeros(0)

    def amplitudes(self) -> np.ndarray:
        """Amplitude (fraction of full scale) at every sample 0 .. n-1."""
        parts = [s.amplitude(np.arange(s.n, dtype=np.float64)) for s in self.spans]
        return np.concatenate(parts) if parts else np.zeros(0)

    def samples(self, fs: float) -> np.ndarray:
        """a(k) sin(2 pi phi(k)) at every sample (float64, fractions of full scale)."""
        return self.amplitudes() * np.sin(TWO_PI * self.phase_cycles(fs))


def tone(
    n: int,
    f0_hz: float,
    f1_hz: float | None = None,
    freq_shape: str = "linear",
    a0: float = 1.0,
    a1: float | None = None,
    amp_shape: str = "linear",
    phase0_cycles: float = 0.0,
) -> Tone:
    """A one-span tone (the simple form: f0, f1, shape, a0, a1, amp shape, start phase, n)."""
    return Tone((Span(n, f0_hz, f1_hz, freq_shape, a0, a1, amp_shape),), phase0_cycles)


def synthesize(tones: Sequence[Tone], fs: float, n: int | None = None) -> np.ndarray:
    """Float64 sum of the tones' samples (fractions of full scale). Every tone must last ``n``
    samples (default: the first tone's length)."""
    if n is None:
        n = tones[0].n if tones else 0
    out = np.zeros(n, dtype=np.float64)
    for t in tones:
        if t.n != n:
            raise ValueError(f"tone lasts {t.n} samples, expected {n}")
        out += t.samples(fs)
    return out


def synthesize_simple(specs: Sequence[tuple], n: int, fs: float) -> np.ndarray:
    """Float64 samples of tones given as tuples ``(f0, f1, freq_shape, a0, a1, amp_shape, phase0_cycles)``
    over ``n`` samples at ``fs``: sum a(t) sin(2 pi phi(t))."""
    return synthesize([tone(n, f0, f1, fk, a0, a1, ak, p0) for (f0, f1, fk, a0, a1, ak, p0) in specs], fs, n)


def to_int16(x: np.ndarray, *, gain: float = 1.0, clip: float = 0.9, full_scale: int = 32767) -> tuple[np.ndarray, int]:
    """Scale by ``gain * full_scale``, clip at ``clip * full_scale``, round to nearest; return the int16
    samples and how many samples lay beyond the clip level before clipping."""
    y = np.asarray(x, dtype=np.float64) * (gain * full_scale)
    limit = clip * full_scale
    n_clipped = int(np.count_nonzero(np.abs(y) > limit))
    return np.rint(np.clip(y, -limit, limit)).astype(np.int16), n_clipped


# ------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class PhaseFit:
    """Result of :func:`fit_phases`: per tone the phase offset (rad, in (-pi, pi]) and amplitude
    (in the units of the samples), plus the rms of the residual."""

    phases_rad: np.ndarray
    amplitudes: np.ndarray
    residual_rms: float


def fit_phases(samples: np.ndarray, phases_cycles: Sequence[np.ndarray], envelopes: Sequence[np.ndarray] | None = None) -> PhaseFit:
    """Fit x(k) = sum_i A_i e_i(k) sin(2 pi psi_i(k) + theta_i) by linear least squares.

    ``samples``: 1-D window (int16 or float). ``phases_cycles[i]``: the known phase trajectory psi_i
    of tone i over the window (cycles, any constant offset). ``envelopes[i]``: its known amplitude
    shape (default 1). Each tone contributes two columns, e sin(2 pi psi) and e cos(2 pi psi); with
    coefficients (c_s, c_c) = (A cos theta, A sin theta), theta = atan2(c_c, c_s). So the tone's
    absolute phase at sample k is 2 pi psi_i(k) + theta_i.
    """
    x = np.asarray(samples, dtype=np.float64)
    cols = []
    for i, psi in enumerate(phases_cycles):
        psi = np.asarray(psi, dtype=np.float64)
        if psi.shape != x.shape:
            raise ValueError(f"trajectory {i} has shape {psi.shape}, samples {x.shape}")
        env = np.ones_like(x) if envelopes is None else np.asarray(envelopes[i], dtype=np.float64)
        arg = TWO_PI * (psi % 1.0)
        cols += [env * np.sin(arg), env * np.cos(arg)]
    m = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(m, x, rcond=None)
    c_s, c_c = coef[0::2], coef[1::2]
    resid = x - m @ coef
    return PhaseFit(np.arctan2(c_c, c_s), np.hypot(c_s, c_c), float(np.sqrt(np.mean(resid**2))))


def wrap_rad(x: np.ndarray | float) -> np.ndarray:
    """Wrap angles (rad) into [-pi, pi)."""
    return (np.asarray(x, dtype=np.float64) + math.pi) % TWO_PI - math.pi


def hold_phase(n0: int, n1: int, f_hz: float, fs: float) -> np.ndarray:
    """Phase trajectory (cycles) of a constant tone over samples n0 .. n1-1, zero at sample 0."""
    return (f_hz / fs) * np.arange(n0, n1, dtype=np.float64)


def crest_factor(x: np.ndarray) -> float:
    """Peak over rms of a 1-D signal."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.max(np.abs(x)) / np.sqrt(np.mean(x**2)))


def exact_samples(time_s: float, fs: float) -> float:
    """t * fs computed exactly on the binary values (returned as float for display)."""
    return float(Fraction(time_s) * Fraction(fs))


# ------------------------------------------------------------------------------------- adapter


def tones_from_pieces(pieces: Sequence, *, phase0_cycles: dict[int, float] | None = None) -> dict[int, tuple[int, Tone]]:
    """Rebuild tone trajectories from piece-like objects (duck-typed: ``.start``, ``.n`` and
    ``.tones``, each tone with ``.tone``, ``.f0_hz``, ``.f1_hz``, ``.freq_kind``, ``.a0``, ``.a1``,
    ``.amp_kind`` and optionally ``.phase0_cycles``), e.g. one channel track of a compiled IR.

    Only the trajectory fields are read: the phase within and between the pieces is integrated
    here. Returns ``{tone id: (first sample, Tone)}`` for tones present in consecutive pieces. The
    start phase is ``phase0_cycles[id]`` if given, else the first span's ``phase0_cycles`` (or 0).
    """
    out: dict[int, tuple[int, list[Span], float]] = {}
    last_piece: dict[int, int] = {}
    for i, piece in enumerate(pieces):
        for s in piece.tones:
            # awgrt's span records its amplitude shape as "exp" (geometric), "exp_tau" (with T / tau
            # in amp_param) or "adiabatic"; the reference names them as the builder does
            kind, rate = s.amp_kind, None
            if kind == "exp_tau":
                kind, rate = "exp", float(s.amp_param)
            elif kind == "adiabatic":
                kind = "adiabatic_ramp"
            span = Span(int(piece.n), s.f0_hz, s.f1_hz, s.freq_kind, s.a0, s.a1, kind, rate)
            if s.tone in out:
                if last_piece[s.tone] != i - 1:
                    raise ValueError(f"tone {s.tone} is absent from a piece in between")
                out[s.tone][1].append(span)
            else:
                p0 = (phase0_cycles or {}).get(s.tone, getattr(s, "phase0_cycles", None) or 0.0)
                out[s.tone] = (int(piece.start), [span], p0)
            last_piece[s.tone] = i
    return {tid: (start, Tone(tuple(spans), p0)) for tid, (start, spans, p0) in out.items()}


def synthesize_pieces(pieces: Sequence, fs: float, n: int, *, phase0_cycles: dict[int, float] | None = None) -> np.ndarray:
    """Float64 samples (length ``n``) of piece-like objects (see :func:`tones_from_pieces`)."""
    out = np.zeros(n, dtype=np.float64)
    for start, t in tones_from_pieces(pieces, phase0_cycles=phase0_cycles).values():
        out[start : start + t.n] += t.samples(fs)
    return out
