"""Wrap spurs of a looped segment, in dBc, from the spectrum of the capture.

A segment of L samples (T = L / fs) looped puts each tone's energy on lines (k + m) / T; if a
tone does not fit a whole number of cycles per pass (f T = k + delta) the lines at f + m / T
carry about 20 log10(|delta| / |m|) dBc. Detector: 4-term Blackman-Harris
window over a whole number of passes (at least 8), zero-padded x4; the carrier is the strongest
line within +-1.5 bins of the programmed frequency and each spur the strongest within +-1.5 bins
of carrier + m / T, m = +-1..+-6; lines within 3 bins of another programmed tone are skipped.

A looped segment is periodic, so *everything* it puts out lies on the 1/T grid, including the
intermodulation products of several tones (the AWG's and the scope's own distortion): with tones
k_i / T, products sit at integer combinations of the k_i. They cannot be told apart from wrap
spurs, so a multi-tone loop checked here should space its tones by a common multiple D > 12 of
1/T (all products then stay on the tones' own residue class mod D, clear of k_i +- 1..6).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal.windows import blackmanharris

from ..errors import AnalysisError
from ..limits import Limits
from .budget import conclude
from .observation import Observation
from .phase import GUARD_S
from .result import CheckResult

#: Fewest passes the record must hold for the spur detector.
MIN_LOOPS = 8
#: Spur orders examined on each side of a carrier.
MAX_ORDER = 6


def _peak(freqs: np.ndarray, mag: np.ndarray, f: float, half_width: float) -> tuple[float, float]:
    sel = np.flatnonzero(np.abs(freqs - f) <= half_width)
    if sel.size == 0:
        return 0.0, f
    i = sel[np.argmax(mag[sel])]
    return float(mag[i]), float(freqs[i])


#: Noise bandwidth of the 4-term Blackman-Harris window, in bins: the detector's resolution
#: bandwidth is this over the record's length.
RBW_BINS = 2.0044


def wrap_spurs(obs: Observation, segment: str, limits: Limits) -> CheckResult:
    """Worst wrap spur (dBc) of any tone of looped ``segment`` (see module doc) against
    ``limits.wrap_spur_dbc``; inconclusive where the noise floor is not ``limits.spur_margin_db``
    below that limit (or the record clipped). ``rbw_hz`` in the detail: the resolution bandwidth
    (Blackman-Harris, 1.9 bins)."""
    c = obs.capture
    fs_awg = obs.awg_rate_hz
    for e in obs.timeline.entries_of(segment):
        t0 = max(obs.scope_time(e.sample) + GUARD_S, c.time_s[0])
        t1 = min(obs.scope_time(e.stop), c.time_s[-1]) - GUARD_S
        period = e.n_samples / fs_awg
        loops = int((t1 - t0) // period)
        if loops >= MIN_LOOPS:
            break
    else:
        raise AnalysisError(f"{obs.program}: the record holds fewer than {MIN_LOOPS} passes of {segment!r}")
    _, y = obs.window(t0, t0 + loops * period)
    n = y.size
    spec = np.abs(np.fft.rfft((y - y.mean()) * blackmanharris(n), 4 * n))
    freqs = np.fft.rfftfreq(4 * n, c.x_increment_s)
    bin_hz = 1.0 / (n * c.x_increment_s)
    paths, _, _ = obs.timeline.tones_at(obs.channel, e.sample + e.n_samples // 2)
    tones = [p.span.f0_hz for p in paths if p.span.a0 > 0]
    if not tones:
        raise AnalysisError(f"{obs.program}: {segment!r} plays no tone on {obs.channel}")
    worst, worst_at, lines, carriers = -math.inf, (0.0, 0), [], []
    for f in tones:
        carrier, f_c = _peak(freqs, spec, f, 1.5 * bin_hz)
        carriers.append((f_c, carrier))
        line_spacing = f_c / f / period
        for m in [k for k in range(-MAX_ORDER, MAX_ORDER + 1) if k]:
            f_m = f_c + m * line_spacing
            if f_m <= 0 or any(abs(f_m - g) < 3 * bin_hz for g in tones if g != f):
                continue
            mag, at = _peak(freqs, spec, f_m, 1.5 * bin_hz)
            dbc = 20 * math.log10(max(mag, 1e-300) / carrier)
            lines.append((at, dbc))
            if dbc > worst:
                worst, worst_at = dbc, (f, m)
    # noise floor near the carriers, away from every examined line
    near = np.zeros(freqs.size, dtype=bool)
    for f_c, _ in carriers:
        near |= np.abs(freqs - f_c) <= (MAX_ORDER + 0.5) / period
    for at in [f for f, _ in carriers] + [f for f, _ in lines]:
        near &= np.abs(freqs - at) > 3 * bin_hz
    ref = max(m for _, m in carriers)
    floor = float(np.median(spec[near])) if near.any() else 0.0
    floor_dbc = 20 * math.log10(max(floor, 1e-300) / ref)
    sigma_db = 8.686 * 10 ** ((floor_dbc - worst) / 20)
    result = CheckResult(
        "wrap_spur",
        obs.program,
        f"{segment} {obs.channel}",
        worst,
        sigma_db,
        limits.wrap_spur_dbc,
        "dBc",
        two_sided=False,
        detail={"loops": loops, "tone_hz": worst_at[0], "order": worst_at[1], "floor_dbc": floor_dbc, "bin_hz": bin_hz, "rbw_hz": 1.9 * bin_hz},
        plot={"kind": "spectrum", "freqs": freqs, "spec": spec, "carriers": carriers, "lines": lines, "period": period, "rbw_hz": RBW_BINS * bin_hz},
    )
    result = conclude(result, obs, None, limits.sigmas, limits.noise_budget)
    if floor_dbc + limits.spur_margin_db > limits.wrap_spur_dbc:
        result = result.made_inconclusive(
            f"the noise floor {floor_dbc:.1f} dBc over {loops} passes is less than {limits.spur_margin_db:g} dB below the {limits.wrap_spur_dbc:g} dBc limit: "
            "a spur at the limit could hide in the noise; record more passes"
        )
    return result
