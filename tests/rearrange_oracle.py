"""An independent check of what a rearrangement shot played, decoded from the card's int16 output.

Written from the physics and the asked program (sites, targets, move time and shape), sharing no
code with awgrt: the tone frequencies are fitted from the output itself, shapes come from
:mod:`tests.reference`'s hand-derived formulas, and the expected assignment is found by an
exhaustive search written here.

What :func:`check_shot` looks at, around the move step the card entered at sample ``m0`` and
the target step it entered at ``m1`` (both from the card's own step log):

- **load -> move join** (``m0``): every loaded tone's phase and amplitude, fitted just before the
  join (frequencies fitted freely near the asked sites) and just after it (same frequencies; the
  tones going off follow the asked ramp envelope), agree within ``phase_tol_rad``;
- **ramp-off**: at the end of the ramp the tones of empty sites and spare atoms are gone (below
  2 % of their amplitude), the others are still there;
- **move**: each planned atom's tone is found along the asked trajectory (the fitted start and end
  frequencies joined by the asked shape): its demodulated amplitude stays within ``track_amp_tol`` (2 %) of the
  asked one and its frequency within ``track_tol_hz`` of the trajectory, at 24 points;
- **move -> target join** (``m1``): each target tone's phase fitted just before the join (along
  the asked trajectory's tail) and just after it (the target hold) agree within ``phase_tol_rad``;
- **target hold**: exactly the planned targets carry a tone (asked amplitude within 2 %), the
  others none, and nothing else is there (residual below ``residual_lsb``); with ``target_pass``
  (the hold's pass length) each tone's phase runs on without a step where the pass wraps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.signal.windows import blackman

from tests.reference import amplitude as ref_amplitude
from tests.reference import progress, progress_integral


@dataclass(frozen=True)
class Asked:
    """What a test asked for one channel: site frequencies (Hz), target site indices, the load
    and target amplitudes (fractions of full scale, gain 1), the ramp and move (seconds, shape)."""

    sites_hz: tuple[float, ...]
    target: tuple[int, ...]
    amp: float
    target_amp: float
    ramp_s: float
    move_s: float
    kind: str = "min_jerk"
    ramp_kind: str = "min_jerk"
    full_scale: int = 32767
    #: An AOD calibration (``amp``/``target_amp`` are then optical powers): its forward and
    #: inverse model define what RF amplitude each asked power needs at each frequency.
    calibration: object = None

    def rf_lsb(self, f_hz: np.ndarray | float, power: np.ndarray | float) -> np.ndarray:
        """The RF amplitude (LSB) the asked amplitude or power means at ``f_hz``."""
        if self.calibration is None:
            return np.broadcast_to(np.asarray(power, dtype=np.float64) * self.full_scale, np.broadcast(f_hz, power).shape)
        return self.calibration.rf_amplitude(f_hz, power)[0] * self.full_scale  # type: ignore[attr-defined]


def best_assignment(occupied: np.ndarray, target: tuple[int, ...], sites_hz: tuple[float, ...], reach_hz: float | None = None) -> tuple[int, float]:
    """The most targets an order-keeping assignment can fill (no atom moving further than
    ``reach_hz``) and the least total distance doing so, by trying every choice."""
    atoms = [i for i, o in enumerate(occupied) if o]
    for n in range(min(len(atoms), len(target)), -1, -1):
        best = np.inf
        for a in itertools.combinations(atoms, n):
            for t in itertools.combinations(target, n):
                d = [abs(sites_hz[x] - sites_hz[y]) for x, y in zip(a, t)]
                if reach_hz is None or max(d, default=0.0) <= reach_hz:
                    best = min(best, sum(d))
        if np.isfinite(best):
            return n, best
    return 0, 0.0


def _design(freqs: np.ndarray, n: np.ndarray, fs: float, envelopes: np.ndarray | None = None) -> np.ndarray:
    """Columns sin and cos of each tone, phase referenced to n = 0, times its envelope."""
    arg = 2 * np.pi * np.outer(n, freqs) / fs
    s, c = np.sin(arg), np.cos(arg)
    if envelopes is not None:
        s, c = s * envelopes, c * envelopes
    return np.hstack([s, c])


def _linear(x: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amplitudes, phases (rad) and residual of the least-squares fit of x on the design."""
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    k = design.shape[1] // 2
    c, d = coef[:k], coef[k:]
    return np.hypot(c, d), np.arctan2(d, c), x - design @ coef


def fit_tones(x: np.ndarray, n: np.ndarray, fs: float, guess_hz: np.ndarray, bound_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit tones near ``guess_hz`` (within ``bound_hz``) to samples x at sample indices n
    (phases referenced to n = 0): frequencies, amplitudes, phases and the residual."""

    def residual(f: np.ndarray) -> np.ndarray:
        return _linear(x, _design(f, n, fs))[2]

    sol = least_squares(residual, guess_hz, bounds=(guess_hz - bound_hz, guess_hz + bound_hz), x_scale=1e3, diff_step=1e-9)
    amps, phases, res = _linear(x, _design(sol.x, n, fs))
    return sol.x, amps, phases, res


def _ramp_off(asked: Asked, f_hz: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The ramp-off envelope (1 at its start) of tones at ``f_hz``, at normalised times u: the
    amplitude (or, calibrated, the optical power) along the asked ramp shape to zero."""
    if asked.calibration is None:
        return np.repeat(ref_amplitude(1.0, 0.0, asked.ramp_kind, u)[:, None], f_hz.size, axis=1)
    power = ref_amplitude(asked.amp, 0.0, asked.ramp_kind, u)
    return asked.rf_lsb(f_hz[None, :], power[:, None]) / asked.rf_lsb(f_hz, asked.amp)[None, :]


def wrap(x: np.ndarray | float) -> np.ndarray:
    return (np.asarray(x) + np.pi) % (2 * np.pi) - np.pi


def check_shot(
    samples: np.ndarray,
    fs: float,
    m0: int,
    m1: int,
    asked: Asked,
    moves: list[tuple[int, int]],
    occupied: np.ndarray,
    *,
    reach_hz: float | None = None,
    phase_tol_rad: float = 1e-3,
    track_tol_hz: float | None = None,
    residual_lsb: float = 3.0,
    track_amp_tol: float = 0.02,
    target_pass: int | None = None,
) -> list[str]:
    """Every way the played shot differs from what was asked (see module doc); [] if none.
    ``samples``: one channel's int16 output, indexed on the card's step-log clock; ``m0`` /
    ``m1``: the samples at which the move step and the target step were entered; ``moves``:
    the plan (source site, target site), checked here against the exhaustive search too."""
    out: list[str] = []
    x = samples.astype(np.float64)
    sites = np.asarray(asked.sites_hz)
    lsb = asked.full_scale
    a_sites = asked.rf_lsb(sites, asked.amp)
    a_load = float(np.max(a_sites))
    R, T = round(asked.ramp_s * fs), round(asked.move_s * fs)
    track_tol = track_tol_hz if track_tol_hz is not None else 1.875 * 0.5 * fs / T + 5e3

    # --- the plan itself: order kept, sources loaded, targets asked, least distance
    src = [s for s, _ in moves]
    dst = [t for _, t in moves]
    if src != sorted(src) or dst != sorted(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        out.append(f"plan crosses or repeats: {moves}")
    if not all(occupied[s] for s in src) or not set(dst) <= set(asked.target):
        out.append(f"plan moves from empty sites or to sites not asked: {moves}")
    most, least = best_assignment(occupied, asked.target, asked.sites_hz, reach_hz)
    if len(moves) != most:
        out.append(f"plan fills {len(moves)} targets, {most} could be")
    total = sum(abs(sites[s] - sites[t]) for s, t in moves)
    if total > least + 1.0:
        out.append(f"plan moves {total:.0f} Hz in all, more than the least ({least:.0f} Hz)")
    if reach_hz is not None and any(abs(sites[s] - sites[t]) > reach_hz for s, t in moves):
        out.append(f"plan moves an atom further than {reach_hz:.0f} Hz")
    # neighbours along the asked tracks never come closer than the array's smallest site spacing
    uu = np.linspace(0.0, 1.0, 201)
    tracks = [sites[s] + (sites[t] - sites[s]) * progress(asked.kind, uu) for s, t in moves]
    closest = min((float(np.min(b - a)) for a, b in zip(tracks, tracks[1:])), default=np.inf)
    if closest < float(np.min(np.diff(sites))) - 1.0:
        out.append(f"planned tracks come {closest:.0f} Hz close, less than the site spacing")

    # --- load hold, just before the join: every site rings
    W = round(4e-6 * fs)
    n_load = np.arange(m0 - W, m0) - m0
    f_site, amp_site, ph_site, res = fit_tones(x[m0 - W : m0], n_load, fs, sites, 60e3)
    if np.max(np.abs(amp_site - a_sites)) > 0.02 * a_load:
        out.append(f"load hold amplitudes {np.round(amp_site, 1).tolist()} differ from {np.round(a_sites, 1).tolist()}")

    # --- just after the join: held tones keep phase; tones going off follow the ramp from their amplitude
    going = np.array([s not in src for s in range(sites.size)])
    w1 = min(R // 4, round(1e-6 * fs))
    n1 = np.arange(0, w1)
    env = np.ones((w1, sites.size))
    env[:, going] = _ramp_off(asked, f_site[going], n1 / R)
    amp1, ph1, res1 = _linear(x[m0 : m0 + w1], _design(f_site, n1, fs, env))
    jump = wrap(ph1 - ph_site)
    for s in range(sites.size):
        if abs(jump[s]) > phase_tol_rad or abs(amp1[s] - amp_site[s]) > 0.01 * a_load:
            out.append(f"site {s}: load -> move join phase {jump[s]:+.2e} rad, amplitude {amp_site[s]:.1f} -> {amp1[s]:.1f}")

    # --- the ramp's last microsecond: the tones going off still follow the asked ramp (not cut before)
    n2 = np.arange(R - w1, R)
    env2 = np.ones((w1, sites.size))
    env2[:, going] = _ramp_off(asked, f_site[going], n2 / R)
    amp2, _, _ = _linear(x[m0 + R - w1 : m0 + R], _design(f_site, n2, fs, env2))
    # --- the move's first microsecond: they are gone, the moving ones (barely moved yet) are there
    n3 = np.arange(R, R + w1)
    amp3, _, _ = _linear(x[m0 + R : m0 + R + w1], _design(f_site, n3, fs))
    for s in range(sites.size):
        what = "spare atom" if occupied[s] else "empty"
        if going[s] and abs(amp2[s] - a_sites[s]) > 0.03 * a_load:
            out.append(f"site {s} ({what}): ramp-off amplitude {amp2[s]:.1f} x the asked ramp near its end, asked {a_sites[s]:.1f}")
        if going[s] and amp3[s] > 0.02 * a_load:
            out.append(f"site {s} ({what}): tone still on after the ramp ({amp3[s]:.1f} LSB)")
        if not going[s] and abs(amp3[s] - a_sites[s]) > 0.02 * a_load:
            out.append(f"site {s} (moving): amplitude {amp3[s]:.1f} as the move starts, not {a_sites[s]:.1f}")

    # --- target hold, just after the second join: exactly the planned targets, nothing else
    targets = np.asarray([sites[t] for t in asked.target])
    n_tgt = np.arange(m1, m1 + W) - m1
    f_tgt, amp_tgt, ph_tgt, res_t = fit_tones(x[m1 : m1 + W], n_tgt, fs, targets, 60e3)
    filled = {asked.target.index(t) for t in dst}
    a_tgts = asked.rf_lsb(targets, asked.target_amp)
    a_target = float(np.max(a_tgts))
    for j in range(targets.size):
        want = a_tgts[j] if j in filled else 0.0
        if abs(amp_tgt[j] - want) > 0.02 * a_target:
            out.append(f"target {asked.target[j]}: amplitude {amp_tgt[j]:.1f} in the target hold, asked {want:.1f}")
    rms = float(np.sqrt(np.mean(res_t**2)))
    if rms > residual_lsb:
        out.append(f"target hold: {rms:.1f} LSB rms left besides the target tones (a tone left on?)")
    if target_pass is not None:  # the target hold's loop wraps seamlessly: no phase step where a pass ends
        b = m1 + target_pass
        _, amp_a, ph_a, _ = fit_tones(x[b - W : b], np.arange(b - W, b) - b, fs, f_tgt, 5e3)
        amp_b, ph_b, _ = _linear(x[b : b + W], _design(f_tgt, np.arange(0, W), fs))
        wrap_step = wrap(ph_b - ph_a)
        for j in sorted(filled):
            if abs(wrap_step[j]) > phase_tol_rad:
                out.append(f"target {asked.target[j]}: the target hold's wrap steps the phase by {wrap_step[j]:+.2e} rad")

    # --- each atom along its asked track, and into the target hold without a phase step
    wt = blackman(round(4e-6 * fs))
    half = wt.size // 2
    n_seg = m1 - m0
    k = np.arange(n_seg)
    u = np.clip((k - R) / T, 0.0, 1.0)
    for s, t in moves:
        j = asked.target.index(t)
        f0, f1 = f_site[s], f_tgt[j]
        d = f1 - f0
        # phase (cycles) along the asked trajectory from the load hold's fitted tone, from the move step's start
        cyc = (f0 * np.minimum(k, R) + f0 * np.clip(k - R, 0, T) + d * T * progress_integral(asked.kind, u) + f1 * np.maximum(k - R - T, 0)) / fs
        z = x[m0 : m1] * np.exp(-2j * np.pi * cyc)
        centres = np.linspace(R + half, R + T - half, 24).astype(int)
        mag, ang = [], []
        for c in centres:
            v = np.dot(wt, z[c - half : c - half + wt.size]) / wt.sum()
            mag.append(2 * abs(v))
            ang.append(np.angle(v))
        mag, ang = np.array(mag), np.unwrap(np.array(ang))
        uc = (centres - R) / T
        if asked.calibration is None:
            want = ref_amplitude(asked.amp, asked.target_amp, asked.kind, uc) * lsb
        else:  # the asked power along the shape, at each instant's frequency
            want = asked.rf_lsb(f0 + d * progress(asked.kind, uc), asked.amp + (asked.target_amp - asked.amp) * progress(asked.kind, uc))
        if np.max(np.abs(mag - want) / want) > track_amp_tol:
            out.append(f"atom {s} -> {t}: amplitude off the asked track by {np.max(np.abs(mag - want) / want):.1%}")
        freq_err = np.diff(ang) / np.diff(centres) * fs / (2 * np.pi)
        if np.max(np.abs(freq_err)) > track_tol:
            out.append(f"atom {s} -> {t}: frequency {np.max(np.abs(freq_err)) / 1e3:.1f} kHz off the asked track")
        # the tail before the target join, along the asked trajectory, against the target hold's phase
        w3 = round(1e-6 * fs)
        kk = np.arange(n_seg - w3, n_seg)
        uu = np.clip((kk - R) / T, 0.0, 1.0)
        tail = 2 * np.pi * d * T * ((1 - uu) - progress_integral(asked.kind, 1.0) + progress_integral(asked.kind, uu)) / fs
        others = [tt for _, tt in moves if tt != t]
        cols = [f1] + [f_tgt[asked.target.index(tt)] for tt in others]
        env3 = np.ones((w3, len(cols)))
        design = _design(np.array(cols), kk - n_seg, fs, env3)
        # this tone's column carries its tail phase exactly; the others are at most a fraction of a cycle off over 1 us
        design[:, 0] = np.sin(2 * np.pi * f1 * (kk - n_seg) / fs + tail)
        design[:, len(cols)] = np.cos(2 * np.pi * f1 * (kk - n_seg) / fs + tail)
        amp3, ph3, _ = _linear(x[m0 + n_seg - w3 : m1], design)
        step = float(wrap(ph_tgt[j] - ph3[0]))
        if abs(step) > phase_tol_rad or abs(amp3[0] - amp_tgt[j]) > 0.01 * a_target:
            out.append(f"atom {s} -> {t}: move -> target join phase {step:+.2e} rad, amplitude {amp3[0]:.1f} -> {amp_tgt[j]:.1f}")
    return out

