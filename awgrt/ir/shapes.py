"""Trajectory shapes for frequency moves and amplitude ramps, with exact phase integrals.

A shape maps normalised time u in [0, 1] to progress s(u) in [0, 1], s(0) = 0, s(1) = 1. A tone
moving from f0 to f1 over n samples has, at sample k (u = k/n), frequency f0 + (f1 - f0) s(u) and
phase (in cycles, relative to the start)::

    phi(k) = (f0/fs) k + ((f1 - f0)/fs) n S(u),     S(u) = integral of s from 0 to u

S is evaluated in closed form, so phase is exact at every sample and never accumulated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ..errors import AmplitudeError

Array = np.ndarray


@dataclass(frozen=True)
class Shape:
    """A monotone progress curve and its integral (both of normalised time u)."""

    name: str
    progress: Callable[[Array], Array]
    integral: Callable[[Array], Array]


def _min_jerk(u: Array) -> Array:
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def _min_jerk_integral(u: Array) -> Array:
    u2 = u * u  # not u**4: numpy's general power is ~20x slower than two products
    return u2 * u2 * (2.5 + u * (-3.0 + u))


def _smoothstep(u: Array) -> Array:
    return u * u * (3.0 - 2.0 * u)


def _smoothstep_integral(u: Array) -> Array:
    u2 = u * u
    return u2 * u * (1.0 - 0.5 * u)


def _cosine(u: Array) -> Array:
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _cosine_integral(u: Array) -> Array:
    return 0.5 * u - np.sin(np.pi * u) / (2.0 * np.pi)


#: Names of the shapes a frequency move may take, and of those an amplitude ramp may take.
FreqShape = Literal["linear", "min_jerk", "cosine", "smoothstep"]
AmpShape = Literal["linear", "min_jerk", "cosine", "smoothstep", "exp", "geo_ramp", "adiabatic_ramp"]

#: Shapes a frequency move may take; all are monotone, so endpoint checks bound the whole move.
FREQ_SHAPES: dict[str, Shape] = {
    "linear": Shape("linear", lambda u: u, lambda u: 0.5 * u * u),
    "min_jerk": Shape("min_jerk", _min_jerk, _min_jerk_integral),
    "cosine": Shape("cosine", _cosine, _cosine_integral),
    "smoothstep": Shape("smoothstep", _smoothstep, _smoothstep_integral),
}

#: Shapes an amplitude ramp may take: the frequency shapes (a0 + (a1 - a0) s(u)) and
#:
#: - ``"geo_ramp"``: geometric, a0 (a1 / a0)^u (both ends above zero);
#: - ``"exp"``: with a time constant ``tau``, a0 + (a1 - a0) (1 - e^(-t/tau)) / (1 - e^(-T/tau))
#:   (t from the ramp's start, T its length): it follows start -> end with time constant tau and
#:   ends exactly at a1, leaving no step at the boundary. Without ``tau`` it is ``"geo_ramp"``;
#: - ``"adiabatic_ramp"``: constant adiabaticity, 1/a interpolated along a smoothstep in time,
#:   1/a(u) = 1/a0 + (1/a1 - 1/a0) s(u), s = 3u^2 - 2u^3. An end at zero would make 1/a
#:   infinite: an end below :data:`ADIABATIC_FLOOR` times the larger end (zero above all) is taken
#:   at that floor, and the difference is taken back out along the same smoothstep, so the ramp
#:   still starts and ends exactly where asked (and never goes below zero).
#:
#: Every amplitude shape is monotone between its ends.
AMP_SHAPES: tuple[str, ...] = get_args(AmpShape)

#: Floor (relative to the ramp's larger end) of an adiabatic ramp's end at zero amplitude.
ADIABATIC_FLOOR = 1e-3

#: Shape recorded for spans that do not change.
CONSTANT = "linear"


def span_amp_kind(kind: str, tau_s: float | None, time_s: float) -> tuple[str, float]:
    """The amplitude shape a span records for a ramp of ``kind`` (an :data:`AmpShape`) and its
    parameter: ``"exp"`` geometric (parameter 0), ``"exp_tau"`` (parameter T / tau),
    ``"adiabatic"``, or the progress shape itself."""
    if kind == "geo_ramp" or (kind == "exp" and tau_s is None):
        return "exp", 0.0
    if kind == "exp" and tau_s is not None:
        return "exp_tau", float(time_s) / float(tau_s)
    if kind == "adiabatic_ramp":
        return "adiabatic", 0.0
    return kind, 0.0


def adiabatic_ends(a0: float, a1: float) -> tuple[float, float]:
    """The ends an adiabatic ramp a0 -> a1 interpolates 1/a between (zero ends floored)."""
    floor = ADIABATIC_FLOOR * max(a0, a1)
    return max(a0, floor), max(a1, floor)


def exp_tau_progress(rate: float, u: Array) -> Array:
    """(1 - e^(-R u)) / (1 - e^(-R)), R = T / tau: the time-constant ramp's progress."""
    return np.expm1(-rate * u) / np.expm1(-rate)


def amplitude_profile(a0: float, a1: float, kind: str, u: Array, param: float = 0.0) -> Array:
    """Amplitude at normalised times u of a ramp a0 -> a1 of a span's ``kind`` and ``param``
    (see :func:`span_amp_kind`)."""
    if a0 == a1:
        return np.full_like(u, a0, dtype=np.float64)
    if kind == "exp":  # in the log domain, so subnormal ends cannot overflow a1 / a0
        la0, la1 = np.log(a0), np.log(a1)
        return np.exp(la0 + u * (la1 - la0))
    if kind == "exp_tau":
        return a0 + (a1 - a0) * exp_tau_progress(param, u)
    if kind == "adiabatic":
        b0, b1 = adiabatic_ends(a0, a1)
        s = _smoothstep(u)
        return 1.0 / (1.0 / b0 + (1.0 / b1 - 1.0 / b0) * s) - (b0 - a0) * (1.0 - s) - (b1 - a1) * s
    return a0 + (a1 - a0) * FREQ_SHAPES[kind].progress(u)


def check_amp_shape(kind: str, a0: float, a1: float, tau_s: float | None = None) -> None:
    """Raise if ``kind`` cannot ramp a0 -> a1 (unknown kind, or geometric through zero)."""
    if kind not in AMP_SHAPES:
        raise AmplitudeError(f"unknown ramp kind {kind!r}; choose one of {', '.join(AMP_SHAPES)}", value=kind)
    geometric = kind == "geo_ramp" or (kind == "exp" and tau_s is None)
    if geometric and a0 != a1 and (a0 <= 0.0 or a1 <= 0.0):
        raise AmplitudeError(
            f"a {kind} ramp is geometric and needs both ends above zero, got {a0:g} -> {a1:g} "
            "(give exp a time constant tau=, or use adiabatic_ramp or a progress shape)",
            value=(a0, a1),
        )


def phase_cycles(f0_cps: float, f1_cps: float, kind: str, n: int, k: Array) -> Array:
    """Phase advance in cycles at sample offsets k of a span of n samples.

    ``f0_cps``/``f1_cps`` are start and end frequencies in cycles per sample (f / fs).
    """
    k = np.asarray(k, dtype=np.float64)
    phase = f0_cps * k
    if f1_cps != f0_cps:
        phase = phase + (f1_cps - f0_cps) * n * FREQ_SHAPES[kind].integral(k / n)
    return phase


def span_phase_advance(f0_cps: float, f1_cps: float, kind: str, n: int) -> float:
    """Phase advance in cycles over a whole span of n samples (the start of the next span): the
    same arithmetic as :func:`phase_cycles` at k = n, on scalars."""
    k = float(n)
    phase = f0_cps * k
    if f1_cps != f0_cps:
        phase = phase + (f1_cps - f0_cps) * n * _integral_at_end(kind)  # k / n is exactly 1.0
    return float(phase)


def span_turn(f0_hz: float, f1_hz: float, kind: str, n: int, fs: float) -> float:
    """A span's phase advance in cycles (as :func:`span_phase_advance`) less its nearest whole
    number of cycles, in [-1/2, 1/2]: what the span adds to a start phase. A tone held at the
    frequency nearest a whole number m of cycles over the span (m fs / n rounded once, bit for
    bit what wrap snapping makes) turns by exactly 0.0, so its phase after a looped hold is its
    phase before, bit for bit (two such holds of the same tones are then one slot of card
    memory); the float frequency played is within an ulp of the grid's, a few 1e-10 cycles at
    most over the longest segment. Taking the whole cycles off before the start phase is added
    keeps every bit of the start phase."""
    cycles = f0_hz * n
    if f1_hz != f0_hz:
        cycles = cycles + (f1_hz - f0_hz) * n * _integral_at_end(kind)
    cycles /= fs
    whole = round(cycles)
    if f1_hz == f0_hz and whole * fs / n == f0_hz:
        return 0.0
    return float(cycles - whole)


@functools.cache
def _integral_at_end(kind: str) -> float:
    """A shape's integral at u = 1.0, evaluated once per shape by the same arithmetic."""
    return float(FREQ_SHAPES[kind].integral(np.asarray(1.0)))
