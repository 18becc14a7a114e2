"""The record's own timing, fitted once: its time scale and the card's output delay.

**Time scale** (AWG time per scope time: the card's clock against the scope's timebase). Each
of the record's longest pieces where the channel holds its frequencies (up to
:data:`MAX_PIECES`, each up to :data:`MAX_PIECE_S`) is fitted for its own scale
(:mod:`hil.analysis.sinefit`); the record's is their inverse-variance weighted mean (to first
order the joint fit with one shared scale): several long holds, not one boundary's two windows,
so its sigma is several times smaller than a boundary fit's own.
The boundary fits then take the scale as known (as with a shared reference) and add what its
sigma moves their steps by: the phase sigma falls to about the fixed-scale bound. With a shared
reference the scale is 1, exactly.

**Output delay** (card sample to scope input: cable, amplifiers, the scope's trigger skew of this
acquisition). A hold cannot show it (a delay only moves its phase, which is fitted), but a
frequency move can: a chirp read a few ns early or late runs off the programmed frequency by its
rate times the delay. The record's longest moves (up to :data:`MAX_PIECES`) are the sides of one
fit whose delay is searched (the scale fixed); the sigma is from the curvature of the residual.
Amplitude ramps are not used: their envelope through the analog path is only as good as the
path's model. Records without a move keep the rig file's ``output_delay_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lstsq
from scipy.optimize import minimize_scalar

from ..errors import AnalysisError
from ..limits import Limits
from .budget import conclude
from .observation import Observation
from .phase import GUARD_S
from .record import pieces_in_record
from .result import CheckResult
from .sinefit import Side, _design, joint_fit

#: Longest stretch of one piece used (s), centred in it: enough to fix the scale and the delay,
#: short enough to keep the fits quick.
MAX_PIECE_S = 8e-6
#: Shortest piece used (AWG samples), and the most pieces used for each fit (the longest).
MIN_PIECE_SAMPLES = 64
MAX_PIECES = 6
#: The delay is searched within this of the rig file's (s), on a grid of :data:`DELAY_STEP_S` (a
#: chirp of an AOD move turns a delay error of a few ns into a small phase slope: the residual is
#: one smooth valley over the span).
DELAY_SPAN_S = 60e-9
DELAY_STEP_S = 5e-9


@dataclass(frozen=True)
class RecordTiming:
    """The record's fitted timing: ``scale`` +- ``scale_sigma`` (None: no hold long enough, or a
    shared reference gives it: then 1 +- 0 and ``scale_fitted`` is False), and ``delay_s`` +-
    ``delay_sigma_s`` (the rig file's, sigma nan, where nothing moved or ramped; then
    ``delay_fitted`` is False), with the pieces each used."""

    scale: float = 1.0
    scale_sigma: float = 0.0
    scale_fitted: bool = False
    delay_s: float = 0.0
    delay_sigma_s: float = math.nan
    delay_fitted: bool = False
    scale_pieces: tuple[str, ...] = ()
    delay_pieces: tuple[str, ...] = ()
    #: The residual (V rms) of the delay's fit, for judging it like the other checks.
    delay_residual_v: float = math.nan


Piece = tuple[int, int, list, str]


def _pieces(obs: Observation) -> list[Piece]:
    """The record's pieces where the channel plays something, long enough to fit."""
    out = []
    for lo, hi, paths, name in pieces_in_record(obs):
        paths = [p for p in paths if max(p.span.a0, p.span.a1) > 0]
        if paths and hi - lo >= MIN_PIECE_SAMPLES:
            out.append((lo, hi, paths, name))
    return out


def _sides(obs: Observation, pieces: list[Piece], moving: bool) -> tuple[list[Side], list[str]]:
    """One side per piece where every tone holds its frequency (``moving`` False) or some tone
    moves (True): the :data:`MAX_PIECES` longest."""
    fs = obs.awg_rate_hz
    c = obs.capture
    sides, names = [], []
    chosen = [piece for piece in pieces if any(p.span.f0_hz != p.span.f1_hz for p in piece[2]) == moving]
    for lo, hi, paths, name in sorted(chosen, key=lambda piece: piece[0] - piece[1])[:MAX_PIECES]:
        mid = (lo + hi) / 2
        half = min((hi - lo) / fs / 2 - GUARD_S, MAX_PIECE_S / 2)
        t_mid = obs.scope_time(mid)
        t0, t1 = max(t_mid - half, c.time_s[0]), min(t_mid + half, c.time_s[-1])
        if t1 - t0 < MIN_PIECE_SAMPLES / fs:
            continue
        t, y = obs.window(t0, t1)
        sides.append(obs.side(t, y, paths, mid, t_mid))
        names.append(f"{name} [{lo}, {hi})")
    return sides, names


def _harmonics(sides: list[Side]) -> int:
    return 3 if max(len(s.tones) for s in sides) <= 2 else 1


def _weighted_mean(values: list[float], sigmas: list[float]) -> tuple[float, float]:
    """The inverse-variance weighted mean of ``values`` and its sigma."""
    w = 1 / np.square(sigmas)
    return float(np.sum(w * np.asarray(values)) / np.sum(w)), float(1 / math.sqrt(np.sum(w)))


def _fit_scale(obs: Observation, pieces: list[Piece]) -> RecordTiming | None:
    """The scale of the record's longest holds (see module doc) as a timing with no delay
    fitted, or None where no hold can give it."""
    holds, names = _sides(obs, pieces, moving=False)
    if not holds:
        return None
    top = max(max(p.span.f0_hz, p.span.f1_hz) for piece in pieces for p in piece[2])
    fits = [joint_fit([side], harmonics=_harmonics([side]), image_rate_hz=obs.awg_rate_hz, max_freq_hz=top) for side in holds]
    fits = [f for f in fits if f.scale_sigma > 0]
    if not fits:
        return None
    scale, sigma = _weighted_mean([f.scale for f in fits], [f.scale_sigma for f in fits])
    return RecordTiming(scale=scale, scale_sigma=sigma, scale_fitted=True, delay_s=obs.delay_s, scale_pieces=tuple(names))


def fit_record_timing(obs: Observation) -> RecordTiming:
    """The record's time scale and output delay (see module doc)."""
    pieces = _pieces(obs)
    out = RecordTiming(delay_s=obs.delay_s)
    if not obs.shared_reference:  # with one, the scale is 1, exactly
        out = _fit_scale(obs, pieces) or out
    moving, names = _sides(obs, pieces, moving=True)
    if not moving:
        return out
    delay, sigma, residual = _fit_delay(moving, out.scale, _harmonics(moving), obs.awg_rate_hz)
    if not (math.isfinite(delay) and math.isfinite(sigma)):
        return out
    return dataclasses.replace(out, delay_s=obs.delay_s + delay, delay_sigma_s=sigma, delay_fitted=True, delay_pieces=tuple(names), delay_residual_v=residual)


def _fit_delay(sides: list[Side], scale: float, harmonics: int, fs: float) -> tuple[float, float, float]:
    """The extra delay (s) that best explains the moving ``sides`` (their scope times read that
    much late), its sigma and the fit's residual (V rms)."""
    y = np.concatenate([s.y for s in sides])

    def rss(d: float) -> float:
        shifted = [dataclasses.replace(s, t=s.t - d) for s in sides]
        design, _ = _design(shifted, scale, harmonics, fs)
        coef, *_ = lstsq(design, y, lapack_driver="gelsy", check_finite=False)
        r = y - design @ coef
        return float(r @ r)

    grid = np.arange(-DELAY_SPAN_S, DELAY_SPAN_S + DELAY_STEP_S / 2, DELAY_STEP_S)
    values = [rss(g) for g in grid]
    k = int(np.argmin(values))
    if k in (0, grid.size - 1):
        return math.nan, math.nan, math.nan  # no minimum inside the span: the record cannot tell the delay
    res = minimize_scalar(rss, bounds=(grid[k - 1], grid[k + 1]), method="bounded", options={"xatol": 1e-14})
    d = float(res.x)
    design, _ = _design([dataclasses.replace(s, t=s.t - d) for s in sides], scale, harmonics, fs)
    n, p = y.size, design.shape[1] + 1
    sigma2 = float(res.fun) / max(1, n - p)
    h = 2e-11
    curvature = (rss(d + h) - 2 * float(res.fun) + rss(d - h)) / h**2
    if not curvature > 0:
        return math.nan, math.nan, math.nan
    return d, math.sqrt(2 * sigma2 / curvature), math.sqrt(sigma2)


def timed(observations: dict[str, Observation]) -> tuple[dict[str, Observation], dict[str, RecordTiming]]:
    """The records of one acquisition with their own timing (:func:`fit_record_timing`): each its
    scale, fixed for its fits, and all one output delay, the inverse-variance weighted mean of the
    channels' fitted delays (the card's channels must step together: a skew between them is for
    the skew check to read, not for the delay to absorb). Records that show no delay keep theirs.
    When the delay moves by more than a guard's worth, each scale is fitted again with the pieces
    where they really are. A channel whose timing cannot be fitted is left out of the result's
    timings (its observation is unchanged)."""
    timings: dict[str, RecordTiming] = {}
    for channel, obs in observations.items():
        with contextlib.suppress(AnalysisError):
            timings[channel] = fit_record_timing(obs)
    fitted = [t for t in timings.values() if t.delay_fitted and t.delay_sigma_s > 0]
    if not fitted:
        return {ch: _with(obs, timings.get(ch), obs.delay_s) for ch, obs in observations.items()}, timings
    common, _ = _weighted_mean([t.delay_s for t in fitted], [t.delay_sigma_s for t in fitted])
    out = {}
    for channel, obs in observations.items():
        t = timings.get(channel)
        if t is not None and t.scale_fitted and abs(common - obs.delay_s) > GUARD_S / 4:
            with contextlib.suppress(AnalysisError):
                moved = dataclasses.replace(obs, delay_s=common)
                again = _fit_scale(moved, _pieces(moved))
                if again is not None:
                    t = dataclasses.replace(t, scale=again.scale, scale_sigma=again.scale_sigma, scale_pieces=again.scale_pieces)
        out[channel] = _with(obs, t, common)
    return out, timings


def _with(obs: Observation, timing: RecordTiming | None, delay_s: float) -> Observation:
    record_scale = (timing.scale, timing.scale_sigma) if timing is not None and timing.scale_fitted else None
    return dataclasses.replace(obs, delay_s=delay_s, record_scale=record_scale)


def delay_check(obs: Observation, timing: RecordTiming, configured_s: float, limits: Limits) -> CheckResult:
    """The output delay fitted on the record against the rig file's (ns): a check that says what
    to enter when the two disagree by more than ``limits.output_delay_ns`` (the fits use the
    fitted one), judged like the others (:mod:`hil.analysis.budget`)."""
    limit_ns = limits.output_delay_ns
    measured = (timing.delay_s - configured_s) * 1e9
    detail = {
        "fitted_delay_s": timing.delay_s,
        "rig_file_delay_s": configured_s,
        "pieces": list(timing.delay_pieces),
        "scale": timing.scale,
        "scale_sigma": timing.scale_sigma,
        "scale_pieces": list(timing.scale_pieces),
    }
    if abs(measured) > limit_ns:
        detail["advice"] = f"set [card] output_delay_s = {timing.delay_s:.4g} in the rig file (the cable or the wiring changed)"
    plot = {"kind": "levels", "labels": ["fitted - rig file"], "values": [measured], "sigmas": [timing.delay_sigma_s * 1e9]}
    result = CheckResult("output_delay", obs.program, obs.channel, measured, timing.delay_sigma_s * 1e9, limit_ns, "ns", detail=detail, plot=plot)
    return conclude(result, obs, timing.delay_residual_v, limits.sigmas, limits.noise_budget)
