"""Lines in a record that nothing programmed explains (a neighbouring RF source, a spur of the
rig), found in a fit's residual and fitted as extra sinusoids.

A stationary line beside a fitted tone biases the tone's phase and amplitude in every window
where the two are not fully resolved, and a fit that does not know the line takes its beat for
white noise: its sigma then claims far more than it knows (a -40 dBc line 1 MHz away moves a
4 us boundary fit's phase step by 0.2 deg at a sigma of 0.03 deg). :func:`find_lines` picks the
residual spectrum's peaks that stand clear of the noise, are not next to a programmed frequency
(what a fault of that tone leaves stays in) and keep their amplitude and phase from the first
half of the window to the second (what a step leaves does not); :func:`line_columns` gives the
cos/sin columns that fit them, so a fit that includes them is unbiased and its covariance
(the tones' terms correlated with the lines') is the honest sigma.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..timeline import TonePath
from .sinefit import Side, _columns

#: Most lines taken from one window, and how far (in |DFT| over its median) a residual peak must
#: stand to count as one: a Rayleigh-distributed noise bin passes 5.2 times its median with
#: probability exp(-0.693 * 5.2^2) = 7e-9, about 1e-4 per window of 10^4 bins.
MAX_LINES, LINE_FACTOR = 5, 5.2
#: Resolution widths (DFT bins of the window) around a programmed frequency where no line is
#: taken: what a glitch or an error of that tone leaves in the residual lies there.
GUARD_BINS = 2.5
#: Shortest window searched (samples).
MIN_SAMPLES = 64


def _steady(design: np.ndarray, t: np.ndarray, y: np.ndarray, f: float) -> bool:
    """Whether a sinusoid at ``f`` (Hz) is seen on each half of the window (above 6 sigma) and
    keeps its amplitude and phase from the first half to the second (within 35 %), each half
    fitted with the model ``design``: a line does, the residual of a step does not."""
    x = line_columns(t, [f])
    half = t.size // 2
    z, noise = [], []
    for sl in (slice(0, half), slice(half, t.size)):
        m = np.column_stack([design[sl], x[sl]])
        coef, *_ = np.linalg.lstsq(m, y[sl], rcond=None)
        r = y[sl] - m @ coef
        z.append(complex(coef[-2], coef[-1]))
        noise.append(float(np.sqrt(np.mean(r * r))) * math.sqrt(2.0 / max(1, r.size)))  # sigma of |z| in noise
    top = max(abs(z[0]), abs(z[1]))
    seen = all(abs(zi) > 6 * ni for zi, ni in zip(z, noise))
    return seen and abs(z[0] - z[1]) <= 0.35 * top


def line_columns(t: np.ndarray, freqs: Iterable[float]) -> np.ndarray:
    """cos and sin columns of each frequency (Hz) at times ``t`` (s, taken from their mean)."""
    tt = t - t.mean() if t.size else t
    cols = [g(2 * np.pi * f * tt) for f in freqs for g in (np.cos, np.sin)]
    return np.column_stack(cols) if cols else np.zeros((t.size, 0))


def find_lines(t: np.ndarray, y: np.ndarray, design: np.ndarray, fund: list[tuple[int, int]], programmed_hz: Iterable[float]) -> list[tuple[float, float]]:
    """Lines in ``y`` (at scope times ``t``, evenly spaced) that the model ``design`` (whose
    fundamental tones are the column pairs ``fund``) does not explain: [(Hz, dBc of the
    strongest fitted tone)], strongest first (see module doc). ``programmed_hz``: every
    frequency the model's tones pass through (none is taken near them)."""
    n = y.size
    if n < MIN_SAMPLES:
        return []
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    win = np.hanning(n)
    spec = np.abs(np.fft.rfft(resid * win))
    bin_hz = 1.0 / (n * float(t[1] - t[0]))
    floor = float(np.median(spec[1:])) or 1e-300
    carrier = max((math.hypot(coef[a], coef[b]) for a, b in fund), default=1.0)
    programmed = list(programmed_hz)
    lines: list[tuple[float, float]] = []
    taken: list[int] = []
    for i in np.argsort(spec)[::-1][: 4 * MAX_LINES]:
        if spec[i] < LINE_FACTOR * floor or len(lines) >= MAX_LINES:
            break
        if i == 0 or i >= spec.size - 1 or any(abs(i - j) <= 2 for j in taken):
            continue
        if any(abs(i * bin_hz - f) <= GUARD_BINS * bin_hz for f in programmed):
            continue
        a, b, c = np.log(spec[i - 1 : i + 2])
        delta = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0  # parabolic peak of the log spectrum
        f = (i + delta) * bin_hz
        if not _steady(design, t, y, f):
            continue
        taken.append(int(i))
        level = spec[i] / (np.sum(win) / 2)
        lines.append((float(f), 20 * math.log10(max(level, 1e-300) / carrier)))
    return lines


def side_lines(
    side: Side, paths: Sequence[TonePath], scale: float, harmonics: int, fs: float, slopes: bool = False
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """:func:`find_lines` in a joint-fit ``side`` modelled with its programmed ``paths`` at time
    ``scale``: the lines, and the side's model columns."""
    cols, fund = _columns(side, scale, harmonics, fs, slopes)
    design = np.stack(cols, axis=1)
    return find_lines(side.t, side.y, design, fund, [f for p in paths for f in (p.span.f0_hz, p.span.f1_hz)]), design


#: Bins beside a tone's near band (:data:`GUARD_BINS`) used as its local noise reference.
LOCAL_BINS = 32
#: Residual power within :data:`GUARD_BINS` of a fitted tone, over the local noise floor beside
#: that band, that says the band holds something besides noise. White noise reads about 1 in
#: each half (the fit takes the tone's own bin, so often less); the mean of a band's two or three
#: free bins passes 4 with probability about 5e-3 and 9 about 1e-5 (a Gamma(1.5)). A line shows
#: in both halves alike: both above :data:`NEAR_LINE` (noise: about 3e-5). A trajectory slightly
#: off the programmed one (an amplitude ramp's timing) shows in one: it counts above
#: :data:`NEAR_ONE`. Clean simulated records (several hundred tone windows a run) stay below both.
NEAR_LINE = 4.0
NEAR_ONE = 9.0


@dataclass(frozen=True)
class NearExcess:
    """What a fit's residual holds within the resolution of one of its tones, in the tone's own
    frame (the residual demodulated by the tone's fitted phase): ``ratio_i`` / ``ratio_q``, the
    power in phase with the tone (amplitude wobble) and in quadrature (phase wobble) within
    :data:`GUARD_BINS` of it, over the noise beside the band (white noise reads 1); ``in_phase_v``
    / ``quadrature_v`` the amplitude of a sinusoid carrying the power above the noise there
    (what the residual shows; the part of a line the tone's own terms absorbed is not seen);
    ``hz`` the tone's mean frequency in the window and ``amplitude_v`` its fitted amplitude.
    A line at any offset shows in both halves alike; a trajectory slightly off (timing of an
    amplitude ramp) only in phase."""

    ratio_i: float = 0.0
    ratio_q: float = 0.0
    in_phase_v: float = 0.0
    quadrature_v: float = 0.0
    hz: float = math.nan
    amplitude_v: float = math.inf

    @property
    def ratio(self) -> float:
        return max(self.ratio_i, self.ratio_q)

    @property
    def line(self) -> bool:
        """Both halves stand above the noise: a line (see :data:`NEAR_LINE`)."""
        return min(self.ratio_i, self.ratio_q) > NEAR_LINE

    @property
    def significant(self) -> bool:
        return self.line or self.ratio > NEAR_ONE

    @property
    def phase_bias_rad(self) -> float:
        """The phase error the quadrature excess can give the tone (0 unless significant)."""
        return 2 * self.quadrature_v / self.amplitude_v if self.line or self.ratio_q > NEAR_ONE else 0.0

    @property
    def amplitude_bias(self) -> float:
        """The relative amplitude error the in-phase excess can give the tone (0 unless significant)."""
        return 2 * self.in_phase_v / self.amplitude_v if self.line or self.ratio_i > NEAR_ONE else 0.0


def near_tone_excess(t: np.ndarray, resid: np.ndarray, phase_rad: np.ndarray, amplitude_v: float) -> NearExcess:
    """What ``resid`` (at scope times ``t``, evenly spaced) holds within :data:`GUARD_BINS` of the
    tone whose fitted phase at each sample is ``phase_rad`` and amplitude ``amplitude_v`` (see
    :class:`NearExcess`)."""
    n = resid.size
    if n < MIN_SAMPLES:
        return NearExcess()
    win = np.hanning(n)
    z = resid * np.exp(-1j * phase_rad)  # the tone's own frame: what is near it lies near 0 Hz
    scale = 4.0 / (n * float(np.sum(win * win)))  # a sinusoid of amplitude B puts N B^2 sum(w^2) / 4 into the one-sided spectrum
    out = []
    for part in (z.real, z.imag):
        power = np.abs(np.fft.rfft(part * win)) ** 2
        near = power[: int(GUARD_BINS) + 1]
        local = power[int(GUARD_BINS) + 1 : int(GUARD_BINS) + 1 + LOCAL_BINS]
        if local.size < 8:
            return NearExcess()
        floor = float(np.median(local)) / math.log(2)  # an exponential's median is ln 2 of its mean
        excess = max(0.0, float(np.sum(near - floor)))
        out.append((float(near.mean() / floor), math.sqrt(excess * scale)))
    (ri, vi), (rq, vq) = out
    hz = float(np.mean(np.diff(phase_rad)) / (2 * np.pi * (t[1] - t[0])))
    return NearExcess(ri, rq, vi, vq, abs(hz), amplitude_v)
