"""Chirp rate, phase residual and glitch scan over a segment, from the DDC phase.

Digital down-conversion at the segment's centre frequency f_c: z = lowpass(y e^(-j 2 pi f_c t))
with a zero-phase (symmetric, centred) FIR, phi = unwrap(arg z), kept only where the FIR's
whole support lies inside the segment (less its guards): no sample of a neighbouring segment
enters. The programmed phase psi(tau) (relative to the carrier) is fitted as

    phi(tau) = p0 + p1 tau + (1 + q) psi(tau) - d 2 pi (f_prog(tau) - f_c)

p0, p1 absorb phase and frequency offsets, q is the sweep scale error (the chirp-rate error for
a linear move; omitted when the frequency does not change), d the output-to-trigger delay
(omitted when f_prog is linear in time, where it is the same as p1). The residual gives the phase
residual (rms) and the glitch scan: the largest difference between the mean residual over a
window of 1/B before and after any instant, leaving out 1/(2B) on each side where the DDC
low-pass smears a step. DDC samples are correlated over ~1/(2B); sigmas account for
it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, firwin

from ..errors import AnalysisError
from ..limits import Limits
from .budget import conclude
from .observation import Observation
from .phase import GUARD_S
from .result import CheckResult

#: Smallest DDC bandwidth (Hz) and the margin above half the sweep.
MIN_BANDWIDTH_HZ = 4e6


@dataclass(frozen=True)
class Downconverted:
    """What :func:`ddc_phase` gives: decimated times ``t`` (s) and unwrapped ``phase`` (rad), with
    ``volts_per_rad``, which turns a phase residual back into the input noise that makes it."""

    t: np.ndarray
    phase: np.ndarray
    volts_per_rad: float

    def noise_v(self, residual_rad: np.ndarray) -> float:
        """The input noise (V rms) that would leave the phase residual ``residual_rad``."""
        return float(np.sqrt(np.mean(residual_rad**2))) * self.volts_per_rad


def ddc_phase(t: np.ndarray, y: np.ndarray, f_c: float, bandwidth_hz: float) -> Downconverted:
    """``y`` down-converted at ``f_c``, low-passed to ``bandwidth_hz`` and decimated to about 4
    samples per 1/B (see module doc).

    With the FIR h (unit DC gain), a tone of amplitude A = 2 |z| and white input noise sigma_v,
    the phase noise is sigma_v sqrt(2 sum h^2) / A (A: the rms of 1 / A over the window, for a
    changing amplitude)."""
    dt = float(t[1] - t[0])
    taps = int(4.0 / (bandwidth_hz * dt)) | 1
    if taps >= t.size:
        raise AnalysisError(f"DDC: {t.size} samples are too few for a {bandwidth_hz / 1e6:g} MHz low-pass ({taps} taps)")
    h = firwin(taps, bandwidth_hz, fs=1.0 / dt, window=("kaiser", 8.0))
    z = fftconvolve(y * np.exp(-2j * np.pi * f_c * t), h, mode="same")
    half = taps // 2
    step = max(1, int(1.0 / (4 * bandwidth_hz * dt)))
    sel = slice(half, t.size - half, step)
    amplitude = 2 * np.abs(z[sel])
    volts_per_rad = 1.0 / math.sqrt(float(np.mean(1.0 / np.maximum(amplitude, 1e-12) ** 2))) / math.sqrt(2 * float(h @ h))
    return Downconverted(t[sel], np.unwrap(np.angle(z[sel])), volts_per_rad)


def trajectory_checks(obs: Observation, segment: str, limits: Limits) -> list[CheckResult]:
    """Chirp rate (if the frequency moves), phase residual and glitch scan over ``segment``."""
    fs = obs.awg_rate_hz
    e = obs.timeline.entries_of(segment)[0]
    paths, lo, hi = obs.timeline.tones_at(obs.channel, e.sample)
    paths = [p for p in paths if max(p.span.a0, p.span.a1) > 0]
    if len(paths) != 1:
        raise AnalysisError(f"{obs.program}: the trajectory check needs one tone on {obs.channel} in {segment!r}, found {len(paths)}")
    path = paths[0]
    f0, f1 = path.span.f0_hz, path.span.f1_hz
    f_c = 0.5 * (f0 + f1)
    bandwidth = max(MIN_BANDWIDTH_HZ, abs(f1 - f0) / 2 + 2e6)
    t0, t1 = obs.scope_time(lo), obs.scope_time(hi)
    t, y = obs.window(t0 + GUARD_S, t1 - GUARD_S)  # every kept DDC sample's filter lies inside the segment
    ddc = ddc_phase(t, y, f_c, bandwidth)
    tau, phi = ddc.t, ddc.phase
    if tau.size < 16:
        raise AnalysisError(f"{obs.program}: {segment!r} is too short for the DDC ({tau.size} samples)")
    samples = obs.trigger_sample + (tau - obs.delay_s) * fs
    psi = 2 * np.pi * (path.phase_cycles(samples) - f_c * (samples - lo) / fs)
    f_dev = path.frequency_hz(samples) - f_c
    x = (tau - tau.mean()) * 1e6  # microseconds keeps the normal equations well conditioned
    cols = [np.ones_like(x), x]
    names = ["p0", "p1"]
    moving = f0 != f1
    if moving:
        cols.append(psi)
        names.append("scale")
        lin = np.polyfit(x, f_dev, 1)
        if np.std(f_dev - np.polyval(lin, x)) > 1e-6 * abs(f1 - f0):
            cols.append(-2 * np.pi * f_dev)
            names.append("delay")
    design = np.column_stack(cols)
    target = phi if moving else phi - psi
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    dof = max(1, tau.size - design.shape[1])
    corr = (1.0 / (tau[1] - tau[0])) / (2 * bandwidth)  # decimated samples per independent one
    sigma_r = math.sqrt(float(resid @ resid) / dof)
    cov = sigma_r**2 * max(corr, 1.0) * np.linalg.pinv(design.T @ design)
    resid_deg = np.degrees(resid)
    residual_v = ddc.noise_v(resid)  # the fit residual in volts, for :func:`conclude`
    where = f"{segment} {obs.channel}"
    out: list[CheckResult] = []
    if moving:
        k = names.index("scale")
        q, sq = coef[k] - 1.0, math.sqrt(max(cov[k, k], 0.0))
        clocks = "the sweep in scope time: twice the scope's and card's clock errors together"
        if obs.reference is not None:  # in reference time: the scope's timebase (squared: a rate) taken out
            r = obs.reference
            q, sq = (1.0 + q) / r.scale**2 - 1.0, math.hypot(sq, 2 * r.sigma / r.scale) / r.scale**2
            clocks = f"the scope's timebase taken out with the reference tone at {r.input}: twice the card's clock error"
        chirp = CheckResult(
            "chirp_rate",
            obs.program,
            where,
            100 * q,
            100 * sq,
            limits.chirp_rate_ppm * 1e-4,
            "%",
            detail={"f0_hz": f0, "f1_hz": f1, "rate_hz_per_s": (f1 - f0) / (path.n / fs), "ddc_bandwidth_hz": bandwidth, "clocks": clocks},
            plot={
                "kind": "chirp",
                "t": tau,
                "f_measured_hz": f_c + np.gradient(phi, tau) / (2 * np.pi),
                "f_programmed_hz": path.frequency_hz(samples),
                "rate_hz_per_s": (f1 - f0) / (path.n / fs),
            },
        )
        out.append(conclude(chirp, obs, residual_v, limits.sigmas, limits.noise_budget))
    rms = float(np.sqrt(np.mean(resid_deg**2)))
    n_eff = max(2.0, tau.size / corr)
    residual = CheckResult(
        "phase_residual",
        obs.program,
        where,
        rms,
        rms / math.sqrt(2 * n_eff),
        limits.phase_residual_deg,
        "deg",
        two_sided=False,
        detail={"samples": int(tau.size), "ddc_bandwidth_hz": bandwidth},
        plot={"kind": "trajectory", "t": tau, "residual_deg": resid_deg},
    )
    # the residual is what this check measures: more noise can only raise it, so only clipping makes it inconclusive
    out.append(conclude(residual, obs, None, limits.sigmas, limits.noise_budget))
    glitch = _glitch(obs, where, tau, resid_deg, corr, bandwidth, limits)
    # the glitch's own noise: the residual with the step it found fitted out (a real glitch is not noise)
    stepped = np.column_stack([design, (tau >= glitch.detail["at_s"]).astype(float)])
    step_coef, *_ = np.linalg.lstsq(stepped, target, rcond=None)
    out.append(conclude(glitch, obs, ddc.noise_v(target - stepped @ step_coef), limits.sigmas, limits.noise_budget))
    return out


def _glitch(obs: Observation, where: str, tau: np.ndarray, resid_deg: np.ndarray, corr: float, bandwidth: float, limits: Limits) -> CheckResult:
    dt = float(tau[1] - tau[0])
    w = max(2, int(round(1.0 / (bandwidth * dt))))
    g = int(round(0.5 / (bandwidth * dt)))
    if resid_deg.size < 2 * (w + g) + 1:
        raise AnalysisError(f"{obs.program}: too few DDC samples for the glitch scan")
    c = np.concatenate([[0.0], np.cumsum(resid_deg)])
    idx = np.arange(w + g, resid_deg.size - w - g + 1)
    steps = (c[idx + g + w] - c[idx + g]) / w - (c[idx - g] - c[idx - g - w]) / w
    i = int(np.argmax(np.abs(steps)))
    noise = float(np.std(np.diff(resid_deg))) / math.sqrt(2)
    sigma = noise * math.sqrt(2 * max(corr, 1.0) / w)
    return CheckResult(
        "glitch",
        obs.program,
        where,
        float(steps[i]),
        sigma,
        limits.glitch_deg,
        "deg",
        detail={"at_s": float(tau[idx[i]]), "window_s": w * dt},
        plot={"kind": "glitch", "t": tau[idx], "steps_deg": steps},
    )
