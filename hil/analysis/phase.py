"""Phase jumps at known boundaries, and the phase step per wrap of looped segments.

Both use the joint fit of :mod:`hil.analysis.sinefit`: windows [t_b - g - W, t_b - g) and
(t_b + g, t_b + g + W] around the boundary t_b (by default the whole piece on each side, less the
guards g, up to :data:`WINDOW_S`), each side modelled with its own programmed tones (harmonics and
the per-side DAC image included), one shared time scale. The step is wrap(theta_right -
theta_left) for every tone playing on both sides: the phase error *added* at the boundary
relative to what was programmed, so a boundary promised continuous should read 0.
:func:`boundary_checks` also reads each tone's amplitude and frequency change there. Limits are
fixed; :mod:`hil.analysis.budget` says when a reading is inconclusive.

Lines that nothing programmed explains (:mod:`hil.analysis.lines`) are found in each side's
residual and fitted with the tones (named in the results' detail as ``unexplained_lines``), so
they neither bias the steps nor leave a sigma that claims more than the fit knows. A line too
close to a tone for the window to resolve cannot be fitted apart: what the residual shows of it
within the tone's resolution, in quadrature and in phase with the tone, is added to the phase
and amplitude sigmas as the bias it can give (``near_line`` in the detail), which makes such a
check a pass within its sigma or inconclusive, never a false fault.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError
from ..limits import Limits
from ..timeline import TonePath
from .budget import conclude
from .lines import NearExcess, line_columns, near_tone_excess, side_lines
from .observation import Observation
from .result import CheckResult
from .sinefit import Side, joint_fit

#: Longest window per side (s): by default a boundary is fitted over the whole piece on each side
#: (less the guards), up to this.
WINDOW_S = 4e-6
GUARD_S = 20e-9


@dataclass(frozen=True)
class BoundaryStep:
    """What the joint fit at one boundary found, per tone id: phase steps (deg) with sigmas,
    amplitude steps against the programmed ones (dB) with sigmas; the fit's residual (V) and
    sides; and the per-side fits' time scales (AWG time per scope time) with sigmas, whose
    difference is the frequency step (the clock error cancels)."""

    sample: int
    steps_deg: dict[int, float]
    sigmas_deg: dict[int, float]
    sides: tuple[tuple[np.ndarray, np.ndarray], ...]
    residual_v: float = math.nan
    amp_steps_db: dict[int, float] = field(default_factory=dict)
    amp_sigmas_db: dict[int, float] = field(default_factory=dict)
    scales: tuple[tuple[float, float], ...] = ()
    window_s: float = math.nan
    scale: float = 1.0
    #: The fitted model on each side (V), aligned with ``sides`` (for figures).
    models: tuple[np.ndarray, ...] = ()
    #: Lines nothing programmed explains, found in a side's residual and fitted with the tones:
    #: (side, Hz on the scope's timebase, dBc of the side's strongest tone).
    lines: tuple[tuple[str, float, float], ...] = ()
    #: The largest residual excess within the resolution of a fitted tone
    #: (:func:`~hil.analysis.lines.near_tone_excess`); where significant, the sigmas include the
    #: bias it can give.
    near_excess: NearExcess = NearExcess()


def boundary_step(
    obs: Observation,
    sample: int,
    *,
    window_s: float | None = None,
    guard_s: float = GUARD_S,
    each_side: bool = False,
    right_sample: int | None = None,
    slopes: bool = False,
    scale: float | None = None,
    own_scale: bool = False,
) -> BoundaryStep:
    """Fit every common tone at card ``sample`` (a step or wrap boundary): windows of
    ``window_s`` per side (None: the whole piece on each side less the guards, up to
    :data:`WINDOW_S`). ``each_side``: also fit each side alone for its time scale (where every
    tone holds its frequency). ``right_sample``: the right side starts there instead (a piece
    too short to fit lies between; both sides are compared with the programmed phase, which
    runs on through it). ``slopes``: see :func:`~hil.analysis.sinefit.joint_fit`; ``scale``: the
    time scale to use instead of fitting it; by default the observation's own
    (:attr:`~hil.analysis.observation.Observation.fixed_scale`: a shared reference's 1, or the
    record's, whose sigma is then added to the steps' as what it moves them by), and
    ``own_scale`` fits one for these two windows instead."""
    fs = obs.awg_rate_hz
    t_b = obs.scope_time(sample)
    r_at = sample if right_sample is None else right_sample
    t_rb = obs.scope_time(r_at)
    left, lo, _ = obs.timeline.tones_at(obs.channel, sample - 1)
    right, _, hi = obs.timeline.tones_at(obs.channel, r_at)
    want = WINDOW_S if window_s is None else window_s
    w_left = min(want, (sample - lo) / fs - 2 * guard_s)
    w_right = min(want, (hi - r_at) / fs - 2 * guard_s)
    if min(w_left, w_right) < 20 / fs:
        raise AnalysisError(f"{obs.program}: the pieces around sample {sample} are too short for a {want * 1e9:.0f} ns window")
    c = obs.capture
    w_left = min(w_left, t_b - guard_s - c.time_s[0])  # a boundary near the record's edge: what the record holds
    w_right = min(w_right, c.time_s[-1] - t_rb - guard_s)
    if min(w_left, w_right) < 20 / fs:
        raise AnalysisError(f"{obs.program}: the boundary at sample {sample} lies at the edge of the record")
    t_l, y_l = obs.window(t_b - guard_s - w_left, t_b - guard_s)
    t_r, y_r = obs.window(t_rb + guard_s, t_rb + guard_s + w_right)
    common = sorted({p.span.tone for p in left if p.span.a1 > 0} & {p.span.tone for p in right if p.span.a0 > 0})
    if not common:
        raise AnalysisError(f"{obs.program}: no tone plays on both sides of sample {sample}")
    lp = [p for p in left if p.span.a1 > 0]
    rp = [p for p in right if p.span.a0 > 0]
    harmonics = 3 if max(len(lp), len(rp)) <= 2 else 1
    top = max(max(p.span.f0_hz, p.span.f1_hz) for p in lp + rp)
    xl = crosstalk_paths(obs, sample - 1, lp, min(w_left, w_right))
    xr = crosstalk_paths(obs, r_at, rp, min(w_left, w_right))
    sides = [obs.side(t_l, y_l, lp + xl, sample, t_b), obs.side(t_r, y_r, rp + xr, sample, t_b)]
    fixed = obs.fixed_scale if scale is None and not own_scale else scale

    def fit_sides(guess: float = 1.0):
        return joint_fit(sides, harmonics=harmonics, image_rate_hz=fs, max_freq_hz=top, slopes=slopes, fixed_scale=fixed, scale_guess=guess)

    def with_lines(i: int) -> None:  # side i fitted with its lines: no bias from them, and the sigma pays for the correlation
        sides[i] = dataclasses.replace(sides[i], extra=line_columns(sides[i].t, [f for f, _ in lines[i]]))

    fit = fit_sides()
    lines = [side_lines(side, paths, fit.scale, harmonics, fs, slopes)[0] for side, paths in zip(sides, (lp + xl, rp + xr))]
    if any(lines):
        for i in (0, 1):
            if lines[i]:
                with_lines(i)
        fit = fit_sides(fit.scale)
    near = _near(sides, fit, (len(lp), len(rp)))
    at = {tone: (next(k for k, p in enumerate(lp) if p.span.tone == tone), next(k for k, p in enumerate(rp) if p.span.tone == tone)) for tone in common}
    steps, sigmas, amp_steps, amp_sigmas = {}, {}, {}, {}
    for tone, (i, j) in at.items():
        step, sigma = fit.phase_step(i, j)
        steps[tone], sigmas[tone] = math.degrees(step), math.degrees(sigma)
        ra, rb = float(fit.amplitude[0][i]), float(fit.amplitude[1][j])
        pa, pb = lp[i].span, rp[j].span
        want_a = max(pa.a0, pa.a1) * obs.path.magnitude(pa.f1_hz)
        want_b = max(pb.a0, pb.a1) * obs.path.magnitude(pb.f0_hz)
        amp_steps[tone] = 20 * math.log10((rb / ra) / (want_b / want_a))
        amp_sigmas[tone] = 20 / math.log(10) * math.hypot(fit.amplitude_sigma(0, i) / ra, fit.amplitude_sigma(1, j) / rb)
    scales: tuple[tuple[float, float], ...] = ()
    if each_side and all(p.span.f0_hz == p.span.f1_hz for p in lp + rp):
        alone = [joint_fit([side], harmonics=harmonics, image_rate_hz=fs, max_freq_hz=top) for side in sides]
        scales = tuple((f.scale, f.scale_sigma) for f in alone)
    if fixed is not None and scale is None and obs.fixed_scale_sigma > 0:
        # the record's scale is known to its sigma: each side's phase at the boundary moves with it
        # by the mean over the window of d(phase)/d(scale) (the tone's phase rate times the time)
        for tone, (i, j) in at.items():
            moved = _phase_per_scale(sides[1], j, fixed) - _phase_per_scale(sides[0], i, fixed)
            sigmas[tone] = math.hypot(sigmas[tone], math.degrees(moved * obs.fixed_scale_sigma))
    if any(x.significant for side in near for x in side):
        # something within the resolution of a tone (a line too close to be told from it, or the
        # tone's trajectory off the programmed one): the tone's estimates can be off by what it
        # shows in quadrature (phase) and in phase (amplitude) with the tone
        for tone, (i, j) in at.items():
            sigmas[tone] = math.hypot(sigmas[tone], math.degrees(math.hypot(near[0][i].phase_bias_rad, near[1][j].phase_bias_rad)))
            amp_sigmas[tone] = math.hypot(amp_sigmas[tone], 20 / math.log(10) * math.hypot(near[0][i].amplitude_bias, near[1][j].amplitude_bias))
        scales = tuple((v, e * math.sqrt(max([1.0] + [x.ratio_q for x in side if x.phase_bias_rad > 0]))) for (v, e), side in zip(scales, near))
    models = (fit.model[: y_l.size], fit.model[y_l.size :]) if fit.model.size == y_l.size + y_r.size else ()
    named = tuple((side, f, dbc) for side, found in zip(("left", "right"), lines) for f, dbc in found)
    return BoundaryStep(
        sample, steps, sigmas, ((t_l - t_b, y_l), (t_r - t_b, y_r)), fit.residual_rms, amp_steps, amp_sigmas, scales, min(w_left, w_right), fit.scale,
        models, named, max((x for side in near for x in side), key=lambda x: x.ratio, default=NearExcess()),
    )  # fmt: skip


def _phase_per_scale(side: Side, tone: int, scale: float, h: float = 1e-7) -> float:
    """How far (rad) the fitted phase of ``tone`` on ``side`` moves per unit of time scale: the
    mean over the window of d(phase(scale * t))/d(scale)."""
    fn = side.tones[tone]
    return float(np.mean(fn(side.t * scale * (1 + h)) - fn(side.t * scale)) / (scale * h))


def _near(sides: list[Side], fit, counts: tuple[int, int]) -> list[list[NearExcess]]:
    """What each side's residual holds within the resolution of each of its first ``counts``
    tones (the channel's own), in the tone's frame (:func:`~hil.analysis.lines.near_tone_excess`)."""
    resid = np.split(np.concatenate([s.y for s in sides]) - fit.model, [sides[0].y.size])
    out = []
    for k, (side, r, count) in enumerate(zip(sides, resid, counts)):
        ts = side.t * fit.scale
        envelopes = side.envelopes or [None] * len(side.tones)
        per = []
        for i in range(count):
            env = envelopes[i]
            amp = float(fit.amplitude[k][i]) * (float(np.sqrt(np.mean(env(ts) ** 2))) if env is not None else 1.0)
            per.append(near_tone_excess(side.t, r, side.tones[i](ts) + fit.theta[k][i], amp))
        out.append(per)
    return out


def crosstalk_paths(obs: Observation, sample: float, own: list[TonePath], window_s: float) -> list[TonePath]:
    """The other channels' tones playing at card ``sample``, as possible crosstalk terms of a
    fit of ``obs``'s channel: each is fitted with a free amplitude (zero if absent), so a line
    leaking from the neighbour is explained instead of biasing the channel's own tones. Those
    closer than two resolution widths (2 / window) to one of the channel's own tones are left
    out: they could not be told apart."""
    seg = obs.timeline.quantized.segments[obs.timeline.entry_at(sample)[0].step]
    out = []
    for track in seg.tracks:
        if track.channel == obs.channel:
            continue
        paths, _, _ = obs.timeline.tones_at(track.channel, sample)
        for p in paths:
            if max(p.span.a0, p.span.a1) <= 0:
                continue
            f = (p.span.f0_hz, p.span.f1_hz)
            if all(min(abs(a - b) for a in f for b in (q.span.f0_hz, q.span.f1_hz)) > 2 / window_s for q in own):
                out.append(p)
    return out


def _worst(steps: dict[int, float], sigmas: dict[int, float]) -> tuple[int, float, float]:
    tone = max(steps, key=lambda k: abs(steps[k]))
    return tone, steps[tone], sigmas[tone]


def boundary_sample(obs: Observation, from_segment: str, to_segment: str, occurrence: int = 0) -> int:
    """Card sample where ``to_segment`` is entered after ``from_segment`` for the ``occurrence``-th time."""
    entries = [e for i, e in enumerate(obs.timeline.entries) if e.name == to_segment and i > 0 and obs.timeline.entries[i - 1].name == from_segment]
    if len(entries) <= occurrence:
        raise AnalysisError(f"{obs.program}: no boundary {from_segment} -> {to_segment} in the timeline")
    return entries[occurrence].sample


def _judged(result: CheckResult, obs: Observation, fits: list[BoundaryStep], limits: Limits) -> CheckResult:
    """``result`` judged (:func:`~hil.analysis.budget.conclude`) with the residual of its
    boundary ``fits``, with the lines fitted out of them named in its detail, and a note where
    one of them holds something too close to a tone to be told from it (its sigma already
    includes the bias that can give)."""
    rms = float(np.sqrt(np.mean([f.residual_v**2 for f in fits])))
    out = conclude(result, obs, rms, limits.sigmas, limits.noise_budget)
    named = sorted({(side, round(f), round(dbc, 1)) for b in fits for side, f, dbc in b.lines})
    if named:
        out = dataclasses.replace(out, detail={**out.detail, "unexplained_lines": named})
    near = max((b.near_excess for b in fits), key=lambda x: x.ratio)
    if near.significant:
        note = (
            f"the residual within the window's resolution of the tone at {near.hz / 1e6:.6g} MHz is {near.ratio_q:.3g}x (in quadrature) and "
            f"{near.ratio_i:.3g}x (in phase) the noise beside it: something the fit cannot tell from the tone (a line too close to it, or its "
            f"trajectory off the programmed one); the sigmas include the bias it can give ({math.degrees(near.phase_bias_rad):.3g} deg, "
            f"{20 / math.log(10) * near.amplitude_bias:.3g} dB)"
        )
        out = dataclasses.replace(out, detail={**out.detail, "near_line": note})
    return out


def _phase_result(obs: Observation, b: BoundaryStep, where: str, limits: Limits, check: str = "phase_jump") -> CheckResult:
    tone, step, sigma = _worst(b.steps_deg, b.sigmas_deg)
    result = CheckResult(
        check,
        obs.program,
        where,
        step,
        sigma,
        limits.phase_jump_deg,
        "deg",
        detail={"boundary_sample": b.sample, "boundary_time_s": obs.scope_time(b.sample), "worst_tone": tone, "steps_deg": b.steps_deg, "window_s": b.window_s},
        plot={"kind": "boundary", "sides": b.sides, "models": b.models, "steps_deg": b.steps_deg, "sigmas_deg": b.sigmas_deg},
    )
    return _judged(result, obs, [b], limits)


def phase_jump(obs: Observation, from_segment: str, to_segment: str, limits: Limits, *, occurrence: int = 0, window_s: float | None = None) -> CheckResult:
    """Phase jump where ``to_segment`` is entered after ``from_segment`` (its ``occurrence``-th
    entry in the timeline), against ``limits.phase_jump_deg`` (see :mod:`hil.analysis.budget`
    for when it is inconclusive)."""
    b = boundary_step(obs, boundary_sample(obs, from_segment, to_segment, occurrence), window_s=window_s)
    return _phase_result(obs, b, f"{from_segment}->{to_segment} {obs.channel}", limits)


def boundary_checks(
    obs: Observation, sample: int, where: str, limits: Limits, *, window_s: float | None = None, right_sample: int | None = None
) -> list[CheckResult]:
    """Phase, amplitude and frequency continuity of every tone playing on both sides of card
    ``sample``, each against the programmed change (zero, or what the program asks there): the
    worst tone's phase step (deg), amplitude step (dB; the signal path's response at both
    frequencies divided out) and frequency step (ppm: the difference of the two sides' own time
    scales, so the clocks cancel)."""
    b = boundary_step(obs, sample, window_s=window_s, each_side=True, right_sample=right_sample)
    out = [_phase_result(obs, b, where, limits)]
    tone, step, sigma = _worst(b.amp_steps_db, b.amp_sigmas_db)
    tones = list(b.amp_steps_db)
    amp = CheckResult(
        "amplitude_step", obs.program, where, step, sigma, limits.amplitude_step_db, "dB",
        detail={"boundary_sample": b.sample, "worst_tone": tone, "steps_db": b.amp_steps_db, "window_s": b.window_s},
        plot={
            "kind": "levels", "labels": [f"tone {t}" for t in tones],
            "values": [b.amp_steps_db[t] for t in tones], "sigmas": [b.amp_sigmas_db[t] for t in tones],
        },
    )  # fmt: skip
    out.append(_judged(amp, obs, [b], limits))
    if b.scales:  # both sides hold their frequencies (a move's own time scale mixes in the trigger timing: the trajectory checks read it)
        (sl, el), (sr, er) = b.scales
        freq = CheckResult(
            "frequency_step", obs.program, where, (sr - sl) * 1e6, math.hypot(el, er) * 1e6, limits.frequency_step_ppm, "ppm",
            detail={"boundary_sample": b.sample, "scale_left": sl, "scale_right": sr, "window_s": b.window_s},
            plot={
                "kind": "levels", "labels": ["left - nominal", "right - nominal", "right - left (checked)"],
                "values": [(sl - 1) * 1e6, (sr - 1) * 1e6, (sr - sl) * 1e6], "sigmas": [el * 1e6, er * 1e6, math.hypot(el, er) * 1e6],
                "judged": [2],  # the limit applies to the difference, not to each side
            },
        )  # fmt: skip
        out.append(_judged(freq, obs, [b], limits))
    return out


def wrap_step(obs: Observation, segment: str, limits: Limits, *, max_wraps: int = 40, window_s: float | None = None) -> CheckResult:
    """Mean phase step per wrap of looped ``segment`` over up to ``max_wraps`` wraps inside the
    record (inverse-variance weighted per tone; the worst tone is reported), against
    ``limits.wrap_step_deg``. Each side of a wrap is fitted over half a pass (less the guards)."""
    c = obs.capture
    half = obs.timeline.entries_of(segment)[0].n_samples / obs.awg_rate_hz / 2 - 2 * GUARD_S
    w = min(half, WINDOW_S if window_s is None else window_s)
    t_lo, t_hi = c.time_s[0] + w + GUARD_S, c.time_s[-1] - w - GUARD_S
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
    # several tones: a wrap error puts each off its programmed frequency by its own amount, which
    # one shared time scale cannot absorb; each side then reads each tone's phase at the wrap itself
    paths, _, _ = obs.timeline.tones_at(obs.channel, pick[0])
    several = sum(p.span.a0 > 0 for p in paths) > 1
    # each wrap's own fit: its scale's error is its own and averages out over the wraps (one scale
    # for all would bias every wrap alike); with a term per tone and side the scale is redundant: 1
    fits = [boundary_step(obs, b, window_s=w, slopes=several, scale=1.0 if several else None, own_scale=not several) for b in pick]
    means, sigmas = {}, {}
    for tone in fits[0].steps_deg:
        wt = np.array([1 / f.sigmas_deg[tone] ** 2 for f in fits])
        x = np.array([f.steps_deg[tone] for f in fits])
        means[tone] = float(np.sum(wt * x) / np.sum(wt))
        sigmas[tone] = float(1 / math.sqrt(np.sum(wt)))
    tone, step, sigma = _worst(means, sigmas)
    result = CheckResult(
        "wrap_step",
        obs.program,
        f"{segment} {obs.channel}",
        step,
        sigma,
        limits.wrap_step_deg,
        "deg",
        detail={"wraps_fitted": len(fits), "wraps_in_record": len(wraps), "worst_tone": tone, "per_wrap_deg": [f.steps_deg[tone] for f in fits]},
        plot={
            "kind": "wraps",
            "per_wrap_deg": [f.steps_deg[tone] for f in fits],
            "sigmas_deg": [f.sigmas_deg[tone] for f in fits],
            "sides": fits[0].sides,
            "models": fits[0].models,
        },
    )
    return _judged(result, obs, fits, limits)
