"""Trajectory shapes for frequency moves and amplitude ramps, with exact phase integrals.

A shape maps normalised time u in [0, 1] to progress s(u) in [0, 1], s(0) = 0, s(1) = 1. A tone
moving from f0 to f1 over n samples has, at sample k (u = k/n), frequency f0 + (f1 - f0) s(u) and
phase (in cycles, relative to the start)::

    phi(k) = (f0/fs) k + ((f1 - f0)/fs) n S(u),     S(u) = integral of s from 0 to u

S is evaluated in closed form, so phase is exact at every sample and never accumulated.
"""

from __future__ import annotations

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


def _cosine(u: Array) -> Array:
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _cosine_integral(u: Array) -> Array:
    return 0.5 * u - np.sin(np.pi * u) / (2.0 * np.pi)


#: Names of the shapes a frequency move may take, and of those an amplitude ramp may take.
FreqShape = Literal["linear", "min_jerk", "cosine"]
AmpShape = Literal["linear", "min_jerk", "cosine", "exp"]

#: Shapes a frequency move may take; all are monotone, so endpoint checks bound the whole move.
FREQ_SHAPES: dict[str, Shape] = {
    "linear": Shape("linear", lambda u: u, lambda u: 0.5 * u * u),
    "min_jerk": Shape("min_jerk", _min_jerk, _min_jerk_integral),
    "cosine": Shape("cosine", _cosine, _cosine_integral),
}

#: Shapes an amplitude ramp may take: the frequency shapes plus "exp" (geometric interpolation).
AMP_SHAPES: tuple[str, ...] = get_args(AmpShape)

#: Shape recorded for spans that do not change.
CONSTANT = "linear"


def amplitude_profile(a0: float, a1: float, kind: str, u: Array) -> Array:
    """Amplitude at normalised times u of a ramp a0 -> a1 of the given kind."""
    if a0 == a1:
        return np.full_like(u, a0, dtype=np.float64)
    if kind == "exp":  # in the log domain, so subnormal ends cannot overflow a1 / a0
        la0, la1 = np.log(a0), np.log(a1)
        return np.exp(la0 + u * (la1 - la0))
    return a0 + (a1 - a0) * FREQ_SHAPES[kind].progress(u)


def check_amp_shape(kind: str, a0: float, a1: float) -> None:
    """Raise if ``kind`` cannot ramp a0 -> a1 (unknown kind, or exp through zero)."""
    if kind not in AMP_SHAPES:
        raise AmplitudeError(f"unknown ramp kind {kind!r}; choose one of {', '.join(AMP_SHAPES)}", value=kind)
    if kind == "exp" and a0 != a1 and (a0 <= 0.0 or a1 <= 0.0):
        raise AmplitudeError(f"an exp ramp needs both ends above zero, got {a0:g} -> {a1:g}", value=(a0, a1))


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
        phase = phase + (f1_cps - f0_cps) * n * float(FREQ_SHAPES[kind].integral(np.float64(k / n)))
    return float(phase)
