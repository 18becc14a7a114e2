"""Joint sine fits (IEEE 1057 style) with one shared time scale, by variable projection.

A fit has one or more *sides* (time windows). On each side the signal is modelled as the
programmed tones, each with its own amplitude and phase offset on that side::

    y(tau) = sum_i  R_i e_i(s tau) cos(Phi_i(s tau) + theta_i)         fundamental
           + sum_i sum_{k=2..H} (a_ik cos k Phi_i(s tau) + b_ik sin k Phi_i(s tau))   harmonics
           + sum_i (c_i cos(2 pi fs_awg s tau - Phi_i(s tau)) + d_i sin(...))        DAC image
           + offset

where Phi_i is the tone's programmed phase (rad) and e_i its programmed amplitude envelope
(relative; 1 for a constant amplitude; harmonics scale with e_i^k) as functions of AWG time
relative to the reference instant, tau the scope time relative to it, and s the one shared non-linear
parameter: the ratio of AWG time to scope time (1 + the relative clock error; for a constant
tone this is exactly the shared-frequency fit). Everything else is linear and is solved by least
squares inside a 1-D search over s (a grid over the main lobe, then Brent).

Uncertainties come from the Jacobian of the full model at the optimum,
cov = sigma_hat^2 (J^T J)^-1 with sigma_hat^2 = RSS / (N - P), and are propagated to phases,
amplitudes and phase differences by their gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import lstsq
from scipy.optimize import minimize_scalar

from ..errors import AnalysisError

PhaseFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Side:
    """One window of a joint fit: scope times ``t`` (s, relative to the reference instant),
    samples ``y`` (V), each tone's programmed phase ``tones[i](t_awg)`` in rad and, optionally,
    its relative amplitude envelope ``envelopes[i](t_awg)`` (None: constant)."""

    t: np.ndarray
    y: np.ndarray
    tones: Sequence[PhaseFn]
    envelopes: Sequence[PhaseFn | None] | None = None
    #: Extra columns of this side's model (samples x k), fitted with free coefficients: lines
    #: that nothing programmed explains (:mod:`hil.analysis.lines`).
    extra: np.ndarray | None = None


@dataclass(frozen=True)
class JointFit:
    """Result of :func:`joint_fit`: ``scale`` (AWG time per scope time) and, per side and tone,
    the phase offset ``theta`` (rad) and amplitude (V), with the parameter covariance."""

    scale: float
    scale_sigma: float
    theta: list[np.ndarray]
    amplitude: list[np.ndarray]
    residual_rms: float
    n_samples: int
    _coef: np.ndarray = field(repr=False)
    _cov: np.ndarray = field(repr=False)
    _fund: list[list[tuple[int, int]]] = field(repr=False)
    #: The fitted model at every sample of every side, in the sides' order (for figures).
    model: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def _phase_grad(self, side: int, tone: int) -> tuple[float, np.ndarray]:
        return phase_gradient(self._coef, *self._fund[side][tone])

    def phase_step(self, left_tone: int = 0, right_tone: int | None = None, *, left: int = 0, right: int = 1) -> tuple[float, float]:
        """wrap(theta_right - theta_left) and its sigma, in rad, of tone ``left_tone`` of side
        ``left`` and tone ``right_tone`` (default: the same index) of side ``right``."""
        t_l, g_l = self._phase_grad(left, left_tone)
        t_r, g_r = self._phase_grad(right, left_tone if right_tone is None else right_tone)
        g = g_r - g_l
        return wrap_angle(t_r - t_l), math.sqrt(max(float(g @ self._cov @ g), 0.0))

    def amplitude_sigma(self, side: int, tone: int) -> float:
        """Sigma of the amplitude of one tone on one side (V)."""
        _, g = amplitude_gradient(self._coef, *self._fund[side][tone])
        return math.sqrt(max(float(g @ self._cov @ g), 0.0))


def phase_gradient(coef: np.ndarray, ia: int, ib: int) -> tuple[float, np.ndarray]:
    """The phase theta (rad) of a tone fitted as a cos + b sin (columns ``ia``, ``ib`` of ``coef``),
    R cos(Phi + theta), and its gradient with respect to ``coef``."""
    a, b = coef[ia], coef[ib]
    r2 = a * a + b * b
    g = np.zeros(coef.size)
    g[ia], g[ib] = b / r2, -a / r2
    return math.atan2(-b, a), g


def amplitude_gradient(coef: np.ndarray, ia: int, ib: int) -> tuple[float, np.ndarray]:
    """The amplitude R of the same tone and its gradient with respect to ``coef``."""
    a, b = coef[ia], coef[ib]
    r = math.hypot(a, b)
    g = np.zeros(coef.size)
    g[ia], g[ib] = a / r, b / r
    return r, g


def wrap_angle(x: float) -> float:
    """The angle x in radians brought into [-pi, pi)."""
    return (x + math.pi) % (2 * math.pi) - math.pi


def _columns(side: Side, s: float, harmonics: int, image_rate_hz: float | None, slopes: bool = False) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    cols: list[np.ndarray] = []
    fund = []
    ts = side.t * s
    envelopes = side.envelopes or [None] * len(side.tones)
    span = max(float(np.max(np.abs(ts))), 1e-15) if ts.size else 1.0
    for phi_fn, env_fn in zip(side.tones, envelopes):
        phi = phi_fn(ts)
        env = np.ones_like(ts) if env_fn is None else env_fn(ts)
        fund.append((len(cols), len(cols) + 1))
        cols += [env * np.cos(phi), env * np.sin(phi)]
        if slopes:  # the tone's own frequency offset on this side, to first order; zero at the reference instant
            cols += [env * (ts / span) * np.cos(phi), env * (ts / span) * np.sin(phi)]
        for k in range(2, harmonics + 1):
            cols += [env**k * np.cos(k * phi), env**k * np.sin(k * phi)]
        if image_rate_hz:
            img = 2 * np.pi * image_rate_hz * ts - phi
            cols += [env * np.cos(img), env * np.sin(img)]
    cols.append(np.ones_like(ts))
    if side.extra is not None:
        cols += list(side.extra.T)
    return cols, fund


def _design(
    sides: Sequence[Side], s: float, harmonics: int, image_rate_hz: float | None, slopes: bool = False
) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """Block design matrix (rows: samples of all sides; columns: each side's own terms)."""
    blocks, funds, width = [], [], 0
    for side in sides:
        cols, fund = _columns(side, s, harmonics, image_rate_hz, slopes)
        blocks.append(np.stack(cols, axis=1))
        funds.append([(width + a, width + b) for a, b in fund])
        width += len(cols)
    rows = sum(b.shape[0] for b in blocks)
    design = np.zeros((rows, width))
    r = c = 0
    for b in blocks:
        design[r : r + b.shape[0], c : c + b.shape[1]] = b
        r += b.shape[0]
        c += b.shape[1]
    return design, funds


def joint_fit(
    sides: Sequence[Side],
    *,
    harmonics: int = 3,
    image_rate_hz: float | None = None,
    scale_guess: float = 1.0,
    scale_span: float = 2e-4,
    max_freq_hz: float | None = None,
    slopes: bool = False,
    fixed_scale: float | None = None,
) -> JointFit:
    """Fit ``sides`` jointly (see module doc). ``image_rate_hz``: the AWG sample rate, to model
    each tone's DAC image per side (None: no image terms). The shared scale is searched in
    ``scale_guess`` +- ``scale_span``; ``max_freq_hz`` (the highest tone frequency, used to space
    the search grid finer than the likelihood's main lobe) defaults to a search without a grid.
    ``slopes``: each tone may also run off its programmed frequency on each side, by its own
    amount (a first-order term per tone and side), so the phases are those *at the reference
    instant*; for tones whose frequency errors one shared time scale cannot absorb (a wrap
    error of several tones), at the cost of a wider sigma. ``fixed_scale``: the time scale is
    known (card and scope share a reference clock: 1.0) and not fitted, which halves the phase
    step's variance bound."""
    sides = [s for s in sides if s.t.size]
    if not sides:
        raise AnalysisError("joint fit: no samples in any window")
    y = np.concatenate([s.y for s in sides])

    def rss(s: float) -> float:
        design, _ = _design(sides, s, harmonics, image_rate_hz, slopes)
        coef, *_ = lstsq(design, y, lapack_driver="gelsy", check_finite=False)
        r = y - design @ coef
        return float(r @ r)

    if fixed_scale is not None:
        s = float(fixed_scale)
    else:
        span_t = max(float(np.ptp(np.concatenate([s.t for s in sides]))), 1e-12)
        lobe = 1.0 / ((max_freq_hz or 0.0) * span_t) if max_freq_hz else 2 * scale_span
        step = min(lobe / 4, scale_span)
        grid = scale_guess + np.arange(-scale_span, scale_span + step / 2, step)
        values = [rss(g) for g in grid]
        best = grid[int(np.argmin(values))]
        res = minimize_scalar(rss, bounds=(best - step, best + step), method="bounded", options={"xatol": 1e-13 + 1e-6 * step})
        s = float(res.x) if res.fun <= min(values) else float(best)

    design, funds = _design(sides, s, harmonics, image_rate_hz, slopes)
    coef, *_ = lstsq(design, y, lapack_driver="gelsy", check_finite=False)
    resid = y - design @ coef
    n, p = design.shape[0], design.shape[1] + (fixed_scale is None)
    if n <= p:
        raise AnalysisError(f"joint fit: {n} samples for {p} parameters")
    sigma2 = float(resid @ resid) / (n - p)
    if fixed_scale is None:
        h = 1e-8
        d_plus, _ = _design(sides, s + h, harmonics, image_rate_hz, slopes)
        d_minus, _ = _design(sides, s - h, harmonics, image_rate_hz, slopes)
        jac = np.column_stack([(d_plus - d_minus) @ coef / (2 * h), design])
        cov_full = sigma2 * np.linalg.pinv(jac.T @ jac)
    else:  # the scale is known: no column for it (its sigma reads 0)
        cov_full = np.zeros((design.shape[1] + 1, design.shape[1] + 1))
        cov_full[1:, 1:] = sigma2 * np.linalg.pinv(design.T @ design)
    theta, amp = [], []
    for fund in funds:
        theta.append(np.array([math.atan2(-coef[b], coef[a]) for a, b in fund]))
        amp.append(np.array([math.hypot(coef[a], coef[b]) for a, b in fund]))
    return JointFit(
        scale=s,
        scale_sigma=math.sqrt(max(cov_full[0, 0], 0.0)),
        theta=theta,
        amplitude=amp,
        residual_rms=math.sqrt(sigma2),
        n_samples=n,
        model=y - resid,
        _coef=coef,
        _cov=cov_full[1:, 1:],  # marginal covariance of the linear terms: the scale's spread is in it
        _fund=funds,
    )
