"""Checks on the pair of AWG channels: skew at a common boundary, and crosstalk between them.

**Skew.** At a boundary where both channels add a tone of one frequency f with one programmed
phase (in the same card sample, as the program asks), each channel's record after the boundary is
fitted jointly with all its programmed tones (:func:`~hil.analysis.sinefit.joint_fit`); a channel
that lags by tau reads its new tone's programmed phase late, so its fitted phase offset is lower by
2 pi f tau. The skew is -(theta_second - theta_first) / (2 pi f), unambiguous within half a period
of f (5.4 ns at 93 MHz). One frequency through the same card filter and scope front end means the
path's phase cancels; the channels share one sample clock. The sigma comes from the fits. Limit (``limits.skew_ns``): default
half a card sample or two scope samples, whichever is larger (what the scope can resolve; the
card's channels share one sample clock, so anything beyond is a cable or a fault).

**Crosstalk.** In a hold, each channel's record is projected (Blackman-Harris window) onto the
other channel's tones; the worst ratio to the channel's own strongest tone is the crosstalk in
dBc; its sigma is the record's median noise line relative to it (in dB, at most 10: a level at the
noise floor is only a bound). Limit: ``limits.crosstalk_dbc``, never moved by the record.

Both are judged like every other check (:mod:`hil.analysis.budget`): a pair check is
inconclusive when either record clipped; skew also when the noisier fit's residual exceeds its
noise budget or the rig cannot resolve the limit; crosstalk when the record's noise floor sits
within ``limits.spur_margin_db`` of the limit (it could not see crosstalk at the limit).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal.windows import blackmanharris

from ..errors import AnalysisError
from ..limits import Limits
from .budget import judge
from .observation import Observation
from .phase import GUARD_S
from .result import CheckResult
from .sinefit import joint_fit, wrap_angle

#: Longest window fitted for the skew check.
FIT_WINDOW_S = 2e-6


def _added_tone(obs: Observation, sample: int):
    """The tone path ``obs.channel`` starts at card ``sample``."""
    before, _, _ = obs.timeline.tones_at(obs.channel, sample - 1)
    after, _, _ = obs.timeline.tones_at(obs.channel, sample)
    old = {p.span.tone for p in before}
    new = [p for p in after if p.span.tone not in old and p.span.a0 > 0]
    if len(new) != 1:
        raise AnalysisError(f"{obs.program}: the skew check needs one tone added on {obs.channel} at sample {sample}, found {len(new)}")
    return new[0]


def _phase_offset(obs: Observation, sample: int) -> tuple[float, float, float, float]:
    """(frequency, fitted phase offset from the programmed phase (rad), its sigma, the fit's
    residual rms in V) of the tone added at ``sample``, from a joint fit of every tone over the
    middle of the piece it starts."""
    added = _added_tone(obs, sample)
    paths, lo, hi = obs.timeline.tones_at(obs.channel, sample)
    paths = [p for p in paths if p.span.a0 > 0]
    i = next(k for k, p in enumerate(paths) if p.span.tone == added.span.tone)
    fs = obs.awg_rate_hz
    centre = (lo + hi) / 2
    width = min(FIT_WINDOW_S, (hi - lo) / fs - 2 * GUARD_S)
    t_c = obs.scope_time(centre)
    t, y = obs.window(t_c - width / 2, t_c + width / 2)
    fit = joint_fit([obs.side(t, y, paths, centre, t_c)], harmonics=1, image_rate_hz=fs, max_freq_hz=max(p.span.f0_hz for p in paths))
    amplitude = float(fit.amplitude[0][i])
    return added.span.f0_hz, float(fit.theta[0][i]), fit.amplitude_sigma(0, i) / amplitude, float(fit.residual_rms)


def skew(first: Observation, second: Observation, from_segment: str, to_segment: str, limits: Limits) -> CheckResult:
    """Time (ns) by which ``second`` lags ``first``, from the tone both add at
    ``from_segment -> to_segment`` (see module doc)."""
    entries = first.timeline.entries
    edges = [e for i, e in enumerate(entries) if e.name == to_segment and i > 0 and entries[i - 1].name == from_segment]
    if not edges:
        raise AnalysisError(f"{first.program}: no boundary {from_segment} -> {to_segment} in the timeline")
    sample = edges[0].sample
    f1, theta1, s1, r1 = _phase_offset(first, sample)
    f2, theta2, s2, r2 = _phase_offset(second, sample)
    if abs(f1 - f2) > 1e-6 * f1:
        raise AnalysisError(f"{first.program}: the channels add different tones at {to_segment!r} ({f1:g} and {f2:g} Hz): skew needs one frequency")
    lag = -wrap_angle(theta2 - theta1) / (2 * math.pi * f1)  # a later channel reads an earlier programmed phase
    limit = limits.skew_ns if limits.skew_ns > 0 else max(0.5 / first.awg_rate_hz, 2 * first.capture.x_increment_s) * 1e9
    sigma_ns = math.hypot(s1, s2) / (2 * math.pi * f1) * 1e9
    # judged on both records: either clipped, or the noisier of the two fits beyond its budget, fails it as inconclusive
    n1, n2 = first.nominal_noise_v, second.nominal_noise_v
    worse, resid = (first, r1) if n1 is None or n2 is None or r1 / n1 >= r2 / n2 else (second, r2)
    result = CheckResult(
        "skew",
        first.program,
        f"{from_segment}->{to_segment} {first.channel}/{second.channel}",
        lag * 1e9,
        sigma_ns,
        limit,
        "ns",
        detail={"tone_hz": f1, "phase_first_rad": theta1, "phase_second_rad": theta2, "unambiguous_ns": 0.5e9 / f1},
        plot={"kind": "levels", "labels": [f"{second.channel} after {first.channel}"], "values": [lag * 1e9], "sigmas": [sigma_ns]},
    )
    return judge(result, first.clipped_samples + second.clipped_samples, worse.nominal_noise_v, resid, limits.sigmas, limits.noise_budget)


def _tones(obs: Observation, segment: str) -> tuple[list[float], float, float]:
    e = obs.timeline.entries_of(segment)[0]
    paths, lo, hi = obs.timeline.tones_at(obs.channel, e.sample + e.n_samples // 2)
    return [p.span.f0_hz for p in paths if p.span.constant and p.span.a0 > 0], lo, hi


def _line(y: np.ndarray, t: np.ndarray, f: float, window: np.ndarray) -> float:
    return float(np.abs(np.sum(y * window * np.exp(-2j * np.pi * f * t))))


def _crosstalk_plot(yw: np.ndarray, t: np.ndarray, own: list[float], carrier: float, levels: dict[float, float], floor: float) -> dict:
    """The figure's arrays: this channel's spectrum in the hold (dBc of its strongest tone, the
    same window), its own tones, the other channel's tones at their measured levels, the floor."""
    spec = np.abs(np.fft.rfft(yw))
    freqs = np.fft.rfftfreq(yw.size, float(t[1] - t[0]))
    every = own + list(levels)
    band = (freqs >= min(every) - 2e6) & (freqs <= max(every) + 2e6)
    ref = max(float(spec[np.argmin(np.abs(freqs - f))]) for f in own)  # the carrier as the spectrum sees it
    dbc = 20 * np.log10(np.maximum(spec[band], 1e-300) / ref)
    return {"kind": "crosstalk", "freqs": freqs[band], "dbc": dbc, "own_hz": list(own), "levels": dict(levels), "floor_dbc": floor}


def crosstalk(obs: Observation, other: Observation, segment: str, limits: Limits) -> CheckResult:
    """Worst level (dBc) of ``other``'s tones on ``obs``'s output in hold ``segment``."""
    own, lo, hi = _tones(obs, segment)
    foreign, _, _ = _tones(other, segment)
    if not own or not foreign:
        raise AnalysisError(f"{obs.program}: {segment!r} needs constant tones on both channels for the crosstalk check")
    fs = obs.awg_rate_hz
    t0, t1 = obs.scope_time(lo) + GUARD_S, obs.scope_time(hi) - GUARD_S
    t, y = obs.window(t0, t1)
    y = y - y.mean()
    w = blackmanharris(y.size)
    carrier = max(_line(y, t, f, w) for f in own)
    levels = {f: 20 * math.log10(max(_line(y, t, f, w), 1e-300) / carrier) for f in foreign if all(abs(f - g) > 3 / (t1 - t0) for g in own)}
    if not levels:
        raise AnalysisError(f"{obs.program}: the other channel's tones in {segment!r} sit on this channel's own")
    # the noise floor of this record: the median line level over frequencies clear of every tone
    probe = np.linspace(0.05 * fs, 0.45 * fs, 64)
    clear = [f for f in probe if all(abs(f - g) > 10 / (t1 - t0) for g in own + foreign)]
    floor = float(np.median([20 * math.log10(max(_line(y, t, f, w), 1e-300) / carrier) for f in clear]))
    f_worst = max(levels, key=lambda f: levels[f])
    limit = limits.crosstalk_dbc  # never moved by the record: a noisy record is inconclusive instead
    result = CheckResult(
        "crosstalk",
        obs.program,
        f"{segment} {other.channel}->{obs.channel}",
        levels[f_worst],
        min(10.0, 20 / math.log(10) * 10 ** ((floor - levels[f_worst]) / 20)),  # noise on the line, relative to it
        limit,
        "dBc",
        two_sided=False,
        detail={"frequency_hz": f_worst, "noise_floor_dbc": floor},
        plot=_crosstalk_plot(y * w, t, own, carrier, levels, floor),
    )
    result = judge(result, obs.clipped_samples + other.clipped_samples, None, None, limits.sigmas, limits.noise_budget)  # clipping (its noise: below)
    if floor + limits.spur_margin_db > limit:
        result = result.made_inconclusive(
            f"the record's noise floor ({floor:.1f} dBc) is within {limits.spur_margin_db:g} dB of the {limit:g} dBc limit: it cannot tell crosstalk "
            "at the limit from noise (a noisier record than the rig's)"
        )
    return result
