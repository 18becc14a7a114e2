"""Tone frequency and amplitude on a hold, against what was programmed and the signal path.

One window in the middle of a constant piece, fitted with the joint fit (one side): the shared
time scale s gives the frequency error (s - 1, in ppm: the clock error between AWG and scope),
each tone's fitted amplitude is compared with a * V_fs * |H(f)| (programmed fraction of full
scale, the card's full-scale volts, and the path's response: hold sinc, reconstruction filter,
scope front end).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import AnalysisError
from ..limits import Limits
from ..scopes.base import Capture
from .budget import conclude, judge
from .observation import ClockReference, Observation, clipped, nominal_noise
from .phase import GUARD_S
from .result import CheckResult
from .sinefit import Side, joint_fit

WINDOW_S = 4e-6


def tone_checks(obs: Observation, segment: str, limits: Limits, *, window_s: float = WINDOW_S) -> list[CheckResult]:
    """Frequency (ppm) and amplitude (dB, worst tone) checks on the first pass of ``segment``."""
    fs = obs.awg_rate_hz
    e = obs.timeline.entries_of(segment)[0]
    paths, lo, hi = obs.timeline.tones_at(obs.channel, e.sample + e.n_samples // 2)
    paths = [p for p in paths if p.span.constant and p.span.a0 > 0]
    if not paths:
        raise AnalysisError(f"{obs.program}: {segment!r} holds no constant tone on {obs.channel}")
    centre = (lo + hi) / 2
    width = min(window_s, (hi - lo) / fs - 2 * GUARD_S)
    t_c = obs.scope_time(centre)
    t, y = obs.window(t_c - width / 2, t_c + width / 2)
    fit = joint_fit(
        [obs.side(t, y, paths, centre, t_c)],
        harmonics=3 if len(paths) <= 2 else 1,
        image_rate_hz=fs,
        max_freq_hz=max(p.span.f0_hz for p in paths),
    )
    if obs.reference is not None:
        ppm, ppm_sigma = obs.reference.card_error_ppm(fit.scale, fit.scale_sigma)
        clocks = (
            f"the card's own clock error: the scope's timebase ({obs.reference.scope_error_ppm:+.2f} ppm) measured on the "
            f"{obs.reference.hz / 1e6:g} MHz reference tone at {obs.reference.input} and taken out"
        )
    else:
        ppm, ppm_sigma = (fit.scale - 1.0) * 1e6, fit.scale_sigma * 1e6
        clocks = (
            "card and scope share a reference: this is the card's own frequency error"
            if obs.shared_reference
            else "the scope's timebase error and the card's clock error together (no shared reference or reference tone: they cannot be told apart)"
        )
    where = f"{segment} {obs.channel}"
    freq = CheckResult(
        "frequency",
        obs.program,
        where,
        ppm,
        ppm_sigma,
        limits.frequency_ppm,
        "ppm",
        detail={"tones_hz": [p.span.f0_hz for p in paths], "window_s": width, "clocks": clocks, "scale": fit.scale},
        plot={"kind": "fit", "t": t - t_c, "y": y, "model": fit.model, "tones_hz": [p.span.f0_hz for p in paths]},
    )
    errors = []
    for i, p in enumerate(paths):
        expected = p.span.a0 * obs.full_scale_v * obs.path.magnitude(p.span.f0_hz)
        measured = float(fit.amplitude[0][i])
        errors.append((20 * math.log10(measured / expected), 20 / math.log(10) * fit.amplitude_sigma(0, i) / measured, p.span.f0_hz, expected, measured))
    worst = max(errors, key=lambda x: abs(x[0]))
    amp = CheckResult(
        "amplitude",
        obs.program,
        where,
        worst[0],
        worst[1],
        limits.amplitude_db,
        "dB",
        detail={"tone_hz": worst[2], "expected_v": worst[3], "measured_v": worst[4], "per_tone_db": [x[0] for x in errors], "window_s": width},
        plot={"kind": "amplitude", "tones_hz": [x[2] for x in errors], "errors_db": [x[0] for x in errors]},
    )
    return [conclude(r, obs, fit.residual_rms, limits.sigmas, limits.noise_budget) for r in (freq, amp)]


def reference_check(
    capture: Capture,
    hz: float,
    ppm: float,
    limits: Limits,
    program: str,
    *,
    adc_range_v: float | None,
    adc_offset_v: float = 0.0,
    adc_bits: int = 8,
    enob: float | None = None,
) -> tuple[ClockReference, CheckResult]:
    """The scope's timebase error, from the reference tone of ``hz`` (accurate to ``ppm``) in
    ``capture``: a sine fit (with harmonics) over the whole record. Returns the measurement for
    the frequency checks (:class:`ClockReference`) and a ``scope_timebase`` check of it (ppm,
    against ``limits.scope_timebase_ppm``; inconclusive where the record clipped or is noisier
    than the input's nominal noise)."""
    t, y = capture.time_s, capture.volts
    fit = joint_fit([Side(t - t[0], y, [lambda ts: 2 * np.pi * hz * ts])], harmonics=3, max_freq_hz=hz, scale_span=5e-4)
    ref = ClockReference(fit.scale, fit.scale_sigma, capture.channel, hz, ppm)
    sigma = fit.scale_sigma / fit.scale**2 * 1e6
    result = CheckResult(
        "scope_timebase",
        program,
        f"reference {capture.channel}",
        ref.scope_error_ppm,
        sigma,
        limits.scope_timebase_ppm,
        "ppm",
        detail={
            "reference_hz": hz,
            "reference_ppm": ppm,
            "record_s": float(t[-1] - t[0]),
            "clocks": f"the scope's timebase against the {hz / 1e6:g} MHz reference tone: positive runs fast (reads frequencies low)",
        },
        plot={
            "kind": "fit",
            "t": t[:2000] - t[0],
            "y": y[:2000],
            "model": fit.model[:2000],
            "tones_hz": [hz],
            "fitted": (int(t.size), float(t[-1] - t[0])),  # the fit took the whole record; the figure keeps its start
            "xlabel": "time from the record's start (ns)",
        },
    )
    noise = nominal_noise(adc_range_v, adc_bits, enob)
    return ref, judge(result, clipped(capture, adc_range_v, adc_offset_v, adc_bits), noise, fit.residual_rms, limits.sigmas, limits.noise_budget)
