"""The whole record: every boundary in it, and a glitch scan of everything between them.

:func:`boundaries_in_record` lists every card sample in the record where what a channel plays
changes: each step entry after the first (``from->to``), each piece edge inside a segment's
pass (``segment@offset``) and the first wrap of each looped step (``segment wrap``; the phase
step over many wraps is :func:`~hil.analysis.phase.wrap_step`).

:func:`glitch_scan` follows every tone's phase and amplitude through every piece in the record.
The record's time scale is fitted once (:func:`_record_scale`); with it fixed, windows of W (at least :data:`GLITCH_WINDOW_S`, and
two periods of the closest spacing between the piece's tones, so they stay resolved) hop by W/2
across it, and each is fitted linearly for every tone's phase offset and amplitude against the
programmed trajectory. Window k ends W/2 before window k + 3 starts, and as k steps these gaps
tile the piece, so a phase or amplitude step anywhere in it (beyond the guards at its edges,
which the boundary checks cover) falls between some such pair and shows in full as their
difference. Reported: the largest phase change (deg) and amplitude change (dB) of any tone (the other channels' tones, as
possible crosstalk, are fitted over the whole piece and taken out first, and so are lines that
nothing programmed explains, found in the whole piece's residual spectrum, steady from its first
half to its second (what a step leaves is not), and named in the detail as
``unexplained_lines``: (segment, Hz, dBc))
between such windows, with the position, against ``limits.glitch_deg`` and
``limits.amplitude_step_db``; pieces too short for four windows are named in the detail as not
scanned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import AnalysisError
from ..limits import Limits
from ..timeline import TonePath
from .budget import conclude
from .lines import line_columns, side_lines
from .observation import Observation
from .phase import GUARD_S, crosstalk_paths
from .result import CheckResult
from .sinefit import _columns, amplitude_gradient, joint_fit, phase_gradient

#: Shortest window of the glitch scan (s); longer where the tones are close or weak (see
#: :func:`_width_for_limit`).
GLITCH_WINDOW_S = 0.2e-6


def _record_samples(obs: Observation) -> tuple[float, float]:
    """Card samples at the first and last instant of the record."""
    c = obs.capture
    fs = obs.awg_rate_hz
    return obs.trigger_sample + (c.time_s[0] - obs.delay_s) * fs, obs.trigger_sample + (c.time_s[-1] - obs.delay_s) * fs


def pieces_in_record(obs: Observation) -> list[tuple[int, int, list[TonePath], str]]:
    """Every piece the channel plays inside the record: (lo, hi, paths, segment name)."""
    first, last = _record_samples(obs)
    out = []
    for e in obs.timeline.entries:
        lo_e, hi_e = e.sample, e.stop
        if hi_e <= first or lo_e >= last:
            continue
        s = max(lo_e, math.floor(first))
        while s < min(hi_e, last):
            paths, lo, hi = obs.timeline.tones_at(obs.channel, s)
            out.append((lo, hi, paths, e.name))
            s = hi
    return out


#: Shortest piece fitted on its own at a boundary (s); a shorter one is bridged (see below).
MIN_PIECE_S = 0.1e-6


def boundaries_in_record(obs: Observation, margin_s: float = 0.1e-6, *, until_s: float | None = None) -> list[tuple[int, int, str]]:
    """(card sample, right sample, label) of every step entry, in-pass piece edge and first wrap
    of a looped step inside the record (with ``margin_s`` of record on each side) where some tone
    plays on both sides. ``until_s``: as if the record ended that long after the trigger (the
    boundaries a record of the asked length would hold).
    Edges closer together than :data:`MIN_PIECE_S` (a short padding piece, say) are one
    boundary: fitted from before the first to after the last (``right sample``), the label
    naming both."""
    first, last = _record_samples(obs)
    fs = obs.awg_rate_hz
    if until_s is not None:
        last = obs.trigger_sample + (until_s - obs.delay_s) * fs
    margin = margin_s * fs
    entries = obs.timeline.entries
    found: dict[int, str] = {}
    for i, e in enumerate(entries):
        if i > 0:
            found[e.sample] = f"{entries[i - 1].name}->{e.name}"
        seg = obs.timeline.quantized.segments[e.step]
        edges = [p.start for p in seg.track(obs.channel).pieces[1:]]
        n_pass = e.passes if e.passes is not None else 10**9
        for j in range(n_pass):
            base = e.sample + j * e.n_samples
            if base >= min(e.stop, last):
                break
            if j == 1:  # the first wrap of a looped step (wrap_step follows many of them)
                found.setdefault(base, f"{e.name} wrap")
            for k in edges:
                found.setdefault(base + k, f"{e.name}@{k}")
    merged: list[list] = []
    for sample in sorted(found):
        if merged and sample - merged[-1][1] < (MIN_PIECE_S + 2 * GUARD_S) * fs:
            merged[-1][1] = sample
            merged[-1][2] += f"+{found[sample]}"
        else:
            merged.append([sample, sample, found[sample]])
    out = []
    for sample, right, label in merged:
        if not (first + margin <= sample and right <= last - margin):
            continue
        left_tones, _, _ = obs.timeline.tones_at(obs.channel, sample - 1)
        right_tones, _, _ = obs.timeline.tones_at(obs.channel, right)
        if {p.span.tone for p in left_tones if p.span.a1 > 0} & {p.span.tone for p in right_tones if p.span.a0 > 0}:
            out.append((sample, right, label))
    return out


def _remove_unexplained_lines(obs, paths, t, y, ref, t_ref, scale):
    """Find lines in the residual of the whole piece (after its programmed tones, harmonics and
    images are fitted) that nothing programmed explains (:func:`~hil.analysis.lines.find_lines`),
    fit them as extra sinusoids over the whole piece and take them out. Returns the cleaned
    samples and [(Hz, dBc of the strongest programmed tone)] of each line found (a stationary
    line beating with a tone would otherwise read as phase and amplitude wobble in short windows)."""
    lines, d = side_lines(obs.side(t, y, paths, ref, t_ref), paths, scale, 3 if len(paths) <= 2 else 1, obs.awg_rate_hz)
    if not lines:
        return y, []
    return _take_out(d, line_columns(t, [f for f, _ in lines]), y), lines


def _take_out(model: np.ndarray, extra: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` less what the ``extra`` columns explain, fitted together with the ``model`` columns."""
    coef, *_ = np.linalg.lstsq(np.column_stack([model, extra]), y, rcond=None)
    return y - extra @ coef[model.shape[1] :]


def _window_fits(obs: Observation, paths: list[TonePath], lo: int, hi: int, scale: float, width_s: float):
    """Per window (hop width/2): centre time, phase offsets (rad) and amplitudes per tone, their
    sigmas, and the residual rms, for the piece [lo, hi) with the time scale fixed."""
    fs = obs.awg_rate_hz
    t0, t1 = obs.scope_time(lo) + GUARD_S, obs.scope_time(hi) - GUARD_S
    ref = (lo + hi) / 2
    t_ref = obs.scope_time(ref)
    t_all, y_all = obs.window(t0, t1)
    others = crosstalk_paths(obs, ref, paths, (hi - lo) / fs)
    if others:  # the neighbours' lines, fitted over the whole piece (where they are resolved) and taken out
        own, _ = _columns(obs.side(t_all, y_all, paths, ref, t_ref), scale, 1, None)
        theirs, _ = _columns(obs.side(t_all, y_all, others, ref, t_ref), scale, 1, None)
        y_all = _take_out(np.stack(own, axis=1), np.stack(theirs[:-1], axis=1), y_all)
    y_all, lines = _remove_unexplained_lines(obs, paths, t_all, y_all, ref, t_ref, scale)
    dt = obs.capture.x_increment_s
    per = max(8, int(round(width_s / dt)))
    hop = per // 2
    cols, fund = _columns(obs.side(t_all, y_all, paths, ref, t_ref), scale, 3 if len(paths) <= 2 else 1, fs)
    design = np.stack(cols, axis=1)
    rows = []
    for a in range(0, t_all.size - per + 1, hop):
        d, y = design[a : a + per], y_all[a : a + per]
        coef, *_ = np.linalg.lstsq(d, y, rcond=None)
        r = y - d @ coef
        s2 = float(r @ r) / max(1, per - d.shape[1])
        cov = s2 * np.linalg.pinv(d.T @ d)
        ph, amp, sph, samp = [], [], [], []
        for ia, ib in fund:
            theta, g_ph = phase_gradient(coef, ia, ib)
            r_amp, g_a = amplitude_gradient(coef, ia, ib)
            ph.append(theta)
            amp.append(r_amp)
            sph.append(math.sqrt(max(float(g_ph @ cov @ g_ph), 0.0)))
            samp.append(math.sqrt(max(float(g_a @ cov @ g_a), 0.0)))
        rows.append((float(t_all[a + per // 2]), ph, amp, sph, samp, math.sqrt(s2)))
    return rows, per * dt, lines


def _width_for_limit(obs: Observation, paths: list[TonePath], limits: Limits) -> float:
    """Window (s) long enough that, at the rig's nominal noise, the weakest tone's phase change
    between two windows resolves ``limits.glitch_deg`` to ``limits.sigmas`` sigmas (with 30 %
    to spare): sigma = sqrt(2) n / (A sqrt(N / 2)) rad for N samples per window."""
    noise = obs.nominal_noise_v
    if noise is None:
        return 0.0
    amp = min(max(p.span.a0, p.span.a1) * obs.full_scale_v * obs.path.magnitude(p.span.f0_hz) for p in paths)
    target = math.radians(limits.glitch_deg) / (1.3 * limits.sigmas)
    n = 4 * (noise / (amp * target)) ** 2
    return n * obs.capture.x_increment_s


#: Longest stretch fitted for the record's time scale (s).
SCALE_WINDOW_S = 4e-6


def _record_scale(obs: Observation, piece: tuple[int, int, list[TonePath], str]) -> float:
    """The record's time scale (AWG time per scope time), fitted on up to :data:`SCALE_WINDOW_S`
    at the middle of its longest piece (an error of 1e-7 moves a 100 MHz tone's phase 0.004 deg
    between windows a microsecond apart)."""
    if obs.fixed_scale is not None:  # a shared reference's, or the record's own, fitted once
        return obs.fixed_scale
    lo, hi, paths, _ = piece
    fs = obs.awg_rate_hz
    mid = (lo + hi) / 2
    half = min(SCALE_WINDOW_S / 2, (hi - lo) / fs / 2 - GUARD_S)
    if half <= 20 / fs:
        return 1.0
    t_ref = obs.scope_time(mid)
    t, y = obs.window(t_ref - half, t_ref + half)
    top = max(max(p.span.f0_hz, p.span.f1_hz) for p in paths)
    return joint_fit([obs.side(t, y, paths, mid, t_ref)], harmonics=3 if len(paths) <= 2 else 1, image_rate_hz=fs, max_freq_hz=top).scale


def glitch_scan(obs: Observation, limits: Limits) -> list[CheckResult]:
    """Phase and amplitude glitches anywhere in the record (see module doc)."""
    fs = obs.awg_rate_hz
    worst_ph: tuple[float, float, Any] = (0.0, 1.0, None)  # value, sigma, where
    worst_amp: tuple[float, float, Any] = (0.0, 1.0, None)
    residuals, scanned, skipped, tracks, amp_tracks, lines = [], [], [], [], [], []
    first, last = _record_samples(obs)
    pieces = []
    for lo, hi, paths, name in pieces_in_record(obs):
        paths = [p for p in paths if max(p.span.a0, p.span.a1) > 0]
        lo_c, hi_c = max(lo, math.ceil(first)), min(hi, math.floor(last))
        if paths and hi_c > lo_c:
            pieces.append((lo_c, hi_c, paths, name))
    if not pieces:
        raise AnalysisError(f"{obs.program}: {obs.channel} plays nothing in the record")
    scale = _record_scale(obs, max(pieces, key=lambda p: p[1] - p[0]))
    for lo_c, hi_c, paths, name in pieces:
        freqs = sorted(f for p in paths for f in (p.span.f0_hz, p.span.f1_hz))
        spacing = min((b - a for a, b in zip(freqs, freqs[1:]) if b - a > 0), default=math.inf)
        shortest = max(GLITCH_WINDOW_S, 2.0 / spacing)
        span_s = (hi_c - lo_c) / fs - 2 * GUARD_S
        if span_s < 2.5 * shortest:
            skipped.append(f"{name} [{lo_c}, {hi_c})")
            continue
        # as long as the limit needs, but short enough for windows k and k + 3 to fit
        width = min(max(shortest, _width_for_limit(obs, paths, limits)), span_s / 2.5)
        rows, width_s, found = _window_fits(obs, paths, lo_c, hi_c, scale, width)
        lines += [(name, f, dbc) for f, dbc in found]
        if len(rows) < 4:
            skipped.append(f"{name} [{lo_c}, {hi_c})")
            continue
        scanned.append(f"{name} [{lo_c}, {hi_c})")
        residuals += [r[5] for r in rows]
        for k in range(len(rows) - 3):
            a, b = rows[k], rows[k + 3]
            for i, p in enumerate(paths):
                d = math.degrees((b[1][i] - a[1][i] + math.pi) % (2 * math.pi) - math.pi)
                s = math.degrees(math.hypot(a[3][i], b[3][i]))
                if abs(d) > abs(worst_ph[0]):
                    worst_ph = (d, s, (name, p.span.tone, (a[0] + b[0]) / 2))
                ratio = b[2][i] / a[2][i] if a[2][i] > 0 else math.inf
                d_db = 20 * math.log10(ratio) if ratio > 0 else -math.inf
                s_db = 20 / math.log(10) * math.hypot(a[4][i] / max(a[2][i], 1e-30), b[4][i] / max(b[2][i], 1e-30))
                if abs(d_db) > abs(worst_amp[0]):
                    worst_amp = (d_db, s_db, (name, p.span.tone, (a[0] + b[0]) / 2))
        centres = [r[0] for r in rows]
        tracks.append((name, centres, [math.degrees(r[1][0]) for r in rows]))
        amp_tracks.append((name, centres, [20 * math.log10(max(r[2][0], 1e-30) / max(rows[0][2][0], 1e-30)) for r in rows]))
    if not scanned:
        raise AnalysisError(f"{obs.program}: no piece of {obs.channel} in the record is long enough for the glitch scan (skipped: {skipped})")
    residual = float(np.sqrt(np.mean(np.square(residuals))))
    where = f"record {obs.channel}"
    out = []
    for check, (value, sigma, at), limit, unit in (
        ("glitch_scan", worst_ph, limits.glitch_deg, "deg"),
        ("amplitude_glitch", worst_amp, limits.amplitude_step_db, "dB"),
    ):
        named = [(seg, round(f), round(dbc, 1)) for seg, f, dbc in lines]
        detail = {"scanned": scanned, "not_scanned": skipped, "window_s": GLITCH_WINDOW_S, "unexplained_lines": named}
        if at is not None:
            detail.update({"segment": at[0], "tone": at[1], "at_s": at[2]})
        ylabel = "phase of the first tone (deg)" if unit == "deg" else "its amplitude (dB)"
        plot = {"kind": "tracks", "tracks": tracks if unit == "deg" else amp_tracks, "ylabel": ylabel}
        result = CheckResult(check, obs.program, where, value, sigma, limit, unit, detail=detail, plot=plot)
        out.append(conclude(result, obs, residual, limits.sigmas, limits.noise_budget))
    return out
