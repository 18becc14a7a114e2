"""Phase jumps at known boundaries, and the phase step per wrap of looped segments.

Both use the joint fit of :mod:`hil.analysis.sinefit`: windows [t_b - g - W, t_b - g) and
(t_b + g, t_b + g + W] around the boundary t_b, each side modelled with its own programmed tones
(harmonics and the per-side DAC image included), one shared time scale. The step is
wrap(theta_right - theta_left) for every tone playing on both sides: the phase error *added* at
the boundary relative to what was programmed, so a boundary promised continuous should read 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError
from ..limits import Limits
from .observation import Observation
from .result import CheckResult
from .sinefit import joint_fit

#: Default window per side and guard around a boundary (s).
WINDOW_S = 1e-6
GUARD_S = 20e-9


@dataclass(frozen=True)
class BoundaryStep:
    """Phase steps (deg) at one boundary, per tone id, with sigmas, and the fit's sides."""

    sample: int
    steps_deg: dict[int, float]
    sigmas_deg: dict[int, float]
    sides: tuple[tuple[np.ndarray, np.ndarray], ...]


def boundary_step(obs: Observation, sample: int, *, window_s: float = WINDOW_S, guard_s: float = GUARD_S) -> BoundaryStep:
    """Fit the phase step of every common tone at card ``sample`` (a step or wrap boundary)."""
    fs = obs.awg_rate_hz
    t_b = obs.scope_time(sample)
    left, lo, _ = obs.timeline.tones_at(obs.channel, sample - 1)
    right, _, hi = obs.timeline.tones_at(obs.channel, sample)
    w_left = min(window_s, (sample - lo) / fs - 2 * guard_s)
    w_right = min(window_s, (hi - sample) / fs - 2 * guard_s)
    if min(w_left, w_right) < 20 / fs:
        raise AnalysisError(f"{obs.program}: the pieces around sample {sample} are too short for a {window_s * 1e9:.0f} ns window")
    t_l, y_l = obs.window(t_b - guard_s - w_left, t_b - guard_s)
    t_r, y_r = obs.window(t_b + guard_s, t_b + guard_s + w_right)
    common = sorted({p.span.tone for p in left if p.span.a1 > 0} & {p.span.tone for p in right if p.span.a0 > 0})
    if not common:
        raise AnalysisError(f"{obs.program}: no tone plays on both sides of sample {sample}")
    lp = [p for p in left if p.span.a1 > 0]
    rp = [p for p in right if p.span.a0 > 0]
    fit = joint_fit(
        [obs.side(t_l, y_l, lp, sample, t_b), obs.side(t_r, y_r, rp, sample, t_b)],
        harmonics=3 if max(len(lp), len(rp)) <= 2 else 1,
        image_rate_hz=fs,
        max_freq_hz=max(max(p.span.f1_hz for p in lp), max(p.span.f0_hz for p in rp)),
    )
    steps, sigmas = {}, {}
    for tone in common:
        i = next(k for k, p in enumerate(lp) if p.span.tone == tone)
        j = next(k for k, p in enumerate(rp) if p.span.tone == tone)
        step, sigma = fit.phase_step(i, j)
        steps[tone], sigmas[tone] = math.degrees(step), math.degrees(sigma)
    return BoundaryStep(sample, steps, sigmas, ((t_l - t_b, y_l), (t_r - t_b, y_r)))


def _worst(steps: dict[int, float], sigmas: dict[int, float]) -> tuple[int, float, float]:
    tone = max(steps, key=lambda k: abs(steps[k]))
    return tone, steps[tone], sigmas[tone]


def phase_jump(obs: Observation, from_segment: str, to_segment: str, limits: Limits, *, occurrence: int = 0, window_s: float = WINDOW_S) -> CheckResult:
    """Phase jump where ``to_segment`` is entered after ``from_segment`` (its ``occurrence``-th
    entry in the timeline). Limit: max(``limits.phase_jump_deg``, ``limits.sigmas`` sigma)."""
    entries = [e for i, e in enumerate(obs.timeline.entries) if e.name == to_segment and i > 0 and obs.timeline.entries[i - 1].name == from_segment]
    if len(entries) <= occurrence:
        raise AnalysisError(f"{obs.program}: no boundary {from_segment} -> {to_segment} in the timeline")
    b = boundary_step(obs, entries[occurrence].sample, window_s=window_s)
    tone, step, sigma = _worst(b.steps_deg, b.sigmas_deg)
    return CheckResult(
        "phase_jump",
        obs.program,
        f"{from_segment}->{to_segment} {obs.channel}",
        step,
        sigma,
        max(limits.phase_jump_deg, limits.sigmas * sigma),
        "deg",
        detail={"boundary_sample": b.sample, "boundary_time_s": obs.scope_time(b.sample), "worst_tone": tone, "steps_deg": b.steps_deg, "window_s": window_s},
        plot={"kind": "boundary", "sides": b.sides, "steps_deg": b.steps_deg, "sigmas_deg": b.sigmas_deg},
    )


def wrap_step(obs: Observation, segment: str, limits: Limits, *, max_wraps: int = 6, window_s: float = WINDOW_S) -> CheckResult:
    """Mean phase step per wrap of looped ``segment`` over up to ``max_wraps`` wraps inside the
    record (inverse-variance weighted per tone; the worst tone is reported). Limit:
    max(``limits.wrap_step_deg``, ``limits.sigmas`` sigma)."""
    c = obs.capture
    t_lo, t_hi = c.time_s[0] + window_s + GUARD_S, c.time_s[-1] - window_s - GUARD_S
    wraps = []
    for e in obs.timeline.entries_of(segment):
        n_pass = e.passes if e.passes is not None else 10**9
        for j in range(1, n_pass):
            b = e.sample + j * e.n_samples
            if b >= e.stop or obs.scope_time(b) > t_hi:
                break
            if obs.scope_time(b) >= t_lo:
                wraps.append(b)
    if not wraps:
        raise AnalysisError(f"{obs.program}: no wrap of {segment!r} inside the record")
    pick = [wraps[i] for i in np.unique(np.linspace(0, len(wraps) - 1, min(max_wraps, len(wraps))).round().astype(int))]
    fits = [boundary_step(obs, b, window_s=min(window_s, obs.timeline.entries_of(segment)[0].n_samples / obs.awg_rate_hz / 2 - 2 * GUARD_S)) for b in pick]
    means, sigmas = {}, {}
    for tone in fits[0].steps_deg:
        w = np.array([1 / f.sigmas_deg[tone] ** 2 for f in fits])
        x = np.array([f.steps_deg[tone] for f in fits])
        means[tone] = float(np.sum(w * x) / np.sum(w))
        sigmas[tone] = float(1 / math.sqrt(np.sum(w)))
    tone, step, sigma = _worst(means, sigmas)
    return CheckResult(
        "wrap_step",
        obs.program,
        f"{segment} {obs.channel}",
        step,
        sigma,
        max(limits.wrap_step_deg, limits.sigmas * sigma),
        "deg",
        detail={"wraps_fitted": len(fits), "wraps_in_record": len(wraps), "worst_tone": tone, "per_wrap_deg": [f.steps_deg[tone] for f in fits]},
        plot={"kind": "wraps", "per_wrap_deg": [f.steps_deg[tone] for f in fits], "sigmas_deg": [f.sigmas_deg[tone] for f in fits], "sides": fits[0].sides},
    )
