"""Synthesis: quantized segments -> int16 samples, block by block.

Each tone span contributes ``a(u) * sin(2 pi phi(k))``, where ``phi`` is the span's start phase
plus the closed-form phase advance (:func:`~awgrt.ir.shapes.phase_cycles`), exact in float64 and
reduced modulo one cycle before the sine. Held tones are summed by an exact complex matrix
product per block; moving tones take the reduced phase through numpy's vectorised float32 sine,
whose error is bounded by :data:`SINE_ERROR_RAD` (below 0.01 LSB at full scale). The sum per hardware channel is scaled by
``gain * full_scale``, clipped at ``clip * full_scale`` (every clipped sample counted), rounded to
the nearest integer and stored as int16 with channels in hardware order.

Memory: the segment is made in blocks of :data:`BLOCK` samples, each summed in float64 and
converted to int16 straight into the output before the next is started. Peak memory is the int16
output plus a working set bounded by :func:`working_set_bytes` (8 bytes per block sample for each
enabled channel and 12 more, ~11 MiB for 4 channels and 64 tones, independent of the segment's
length and of how many tones ramp), times the
number of ``workers`` threads when blocks are made in parallel.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import AWGRTError
from ..ir.resolved import Segment, ToneSpan
from ..ir.shapes import FREQ_SHAPES, amplitude_profile

#: Samples per block, per channel: the float64 working set is a few of these.
BLOCK = 1 << 16
#: Columns of the per-block matrix product used for constant tones.
HOLD_BLOCK = 1024
#: Largest error (rad, and so fraction of the tone's amplitude) of one moving tone's sine: the
#: exact float64 phase reduced to [-pi, pi] is rounded to float32 (at most half a float32 step
#: below 4, 2**-23 rad) and numpy's float32 sine is within 2 float32 ulps of the true value
#: (2 * 2**-24 for |sin| <= 1). Summed over a channel whose amplitudes add up to A (fractions of
#: full scale, after gain), the error is below SINE_ERROR_RAD * A * full_scale: 0.008 LSB at A = 1.
SINE_ERROR_RAD = 2.0**-23 + 2.0 * 2.0**-24


def working_set_bytes(n_hw: int, n_tones: int) -> int:
    """Upper bound of synthesis temporaries (bytes) beside the int16 output, whatever the tones
    do: the float64 block of every channel; for moving tones the sample index, normalised time,
    phase, amplitude, a scratch array and the float32 sine (5.5 blocks), plus one shape integral
    and one amplitude progress per shape (at most 3 + 3 blocks); and the constant-tone matrices
    (tones x HOLD_BLOCK and block rows x tones, complex)."""
    rows = BLOCK // HOLD_BLOCK + 2
    return 8 * BLOCK * (n_hw + 12) + 16 * n_tones * (HOLD_BLOCK + rows) + 16 * rows * HOLD_BLOCK * 2


@dataclass(frozen=True)
class SynthResult:
    """Samples of one segment and what happened on the way to int16."""

    data: np.ndarray  # int16 (n_samples, n_channels), read-only
    clipped: tuple[int, ...]  # per hardware channel: samples beyond the clip level
    peak: tuple[float, ...]  # per hardware channel: peak |value| before clipping, fraction of full scale


def _constant_tones(spans: list[ToneSpan], k0: int, k1: int, fs: float, out: np.ndarray) -> None:
    """Add constant tones over samples [k0, k1) of their piece to ``out`` (length k1 - k0).

    Sample r*W + j of tone i is Im(a_i e^{2 pi i (phi_i + f_i r W)} * e^{2 pi i f_i j}): the
    first factor is exact per row, the second exact per column, so no phase is accumulated, and
    the sum over tones is a BLAS product (rows x tones) @ (tones x W), W = HOLD_BLOCK.
    """
    f = np.array([s.f0_hz / fs for s in spans])
    a = np.array([s.a0 for s in spans])
    p0 = np.array([s.phase0_cycles for s in spans])
    width = HOLD_BLOCK
    cols = np.exp(2j * np.pi * ((f[:, None] * np.arange(width)) % 1.0))
    r0, r1 = k0 // width, -(-k1 // width)
    starts = np.arange(r0, r1, dtype=np.float64) * width
    coeff = a * np.exp(2j * np.pi * ((p0 + f * starts[:, None]) % 1.0))
    block = (coeff @ cols).imag.ravel()
    out += block[k0 - r0 * width : k1 - r0 * width]


def _moving_tones(spans: list[ToneSpan], n: int, k0: int, k1: int, fs: float, out: np.ndarray) -> None:
    """Add samples [k0, k1) of tones whose frequency or amplitude changes over their piece of n
    samples. Each trajectory term of the piece (the shape's integral, the amplitude's progress)
    is computed once for all its tones; each tone's phase is exact in float64, reduced to
    [-1/2, 1/2] cycle, and only then turned into radians and taken through float32 ``sin``
    (see :data:`SINE_ERROR_RAD`)."""
    k = np.arange(k0, k1, dtype=np.float64)
    u = k / n
    integral: dict[str, np.ndarray] = {}
    progress: dict[str, np.ndarray] = {}  # per shape, not per tone: the working set stays bounded
    phi, tmp, amp = np.empty(k.size), np.empty(k.size), np.empty(k.size)
    x = np.empty(k.size, dtype=np.float32)
    for s in spans:
        f0, f1 = s.f0_hz / fs, s.f1_hz / fs
        np.multiply(k, f0, out=phi)
        if f1 != f0:
            if s.freq_kind not in integral:
                integral[s.freq_kind] = FREQ_SHAPES[s.freq_kind].integral(u)
            np.multiply(integral[s.freq_kind], (f1 - f0) * n, out=tmp)
            phi += tmp
        phi += s.phase0_cycles
        np.rint(phi, out=tmp)
        phi -= tmp
        phi *= 2.0 * np.pi
        np.sin(phi, out=x, dtype=np.float32, casting="same_kind")
        if s.a0 == s.a1:
            np.multiply(x, s.a0, out=tmp, dtype=np.float64)
        else:
            if s.amp_kind != "exp" and s.amp_kind not in progress:
                progress[s.amp_kind] = FREQ_SHAPES[s.amp_kind].progress(u)
            amplitude_profile(s.a0, s.a1, s.amp_kind, u, progress=progress.get(s.amp_kind), out=amp)
            np.multiply(x, amp, out=tmp, dtype=np.float64)
        out += tmp


def _block(segment: Segment, b0: int, b1: int, fs: float, hardware: dict[str, int], out: np.ndarray) -> None:
    """Float64 samples [b0, b1) of every channel (fractions of full scale) into ``out``
    (shape (n_hw, b1 - b0), zeroed by the caller)."""
    for track in segment.tracks:
        row = out[hardware[track.channel]]
        for piece in track.pieces:
            lo, hi = max(b0, piece.start), min(b1, piece.stop)
            if lo >= hi:
                continue
            view = row[lo - b0 : hi - b0]
            k0, k1 = lo - piece.start, hi - piece.start
            constant = [s for s in piece.tones if s.constant]
            if constant:
                _constant_tones(constant, k0, k1, fs, view)
            moving = [s for s in piece.tones if not s.constant]
            if moving:
                _moving_tones(moving, piece.n, k0, k1, fs, view)


def default_workers() -> int:
    """Threads synthesis uses by default: every core this process may run on, at most 8 (numpy
    releases the GIL in the heavy loops; BLAS is kept to one thread meanwhile)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def synthesize(
    segment: Segment,
    sample_rate_hz: float,
    hardware: dict[str, int],
    n_hw: int,
    *,
    gain: float,
    clip: float,
    full_scale: int,
    workers: int = 1,
) -> SynthResult:
    """Int16 samples of one quantized segment (phases must be assigned), block by block.
    ``workers`` threads take interleaved blocks (each with its own working set, so the memory
    bound grows by that factor); the samples do not depend on it."""
    if any(s.phase0_cycles is None for t in segment.tracks for p in t.pieces for s in p.tones):
        raise AWGRTError("segment has unassigned phases: synthesise a quantized IR", segment=segment.name, op="synthesize")
    n = segment.n_samples
    data = np.empty((n, n_hw), dtype=np.int16)
    scale, limit = gain * full_scale, clip * full_scale
    starts = list(range(0, n, BLOCK))
    workers = max(1, min(int(workers), len(starts)))

    def run(share: list[int]) -> tuple[np.ndarray, np.ndarray]:
        peak = np.zeros(n_hw)
        clipped = np.zeros(n_hw, dtype=np.int64)
        buf = np.empty((n_hw, min(n, BLOCK)))
        for b0 in share:
            b1 = min(n, b0 + BLOCK)
            x = buf[:, : b1 - b0]
            x.fill(0.0)
            _block(segment, b0, b1, sample_rate_hz, hardware, x)
            x *= scale
            np.maximum(peak, np.maximum(x.max(axis=1), -x.min(axis=1)), out=peak)
            clipped += np.count_nonzero(x > limit, axis=1) + np.count_nonzero(x < -limit, axis=1)
            np.clip(x, -limit, limit, out=x)
            np.rint(x, out=x)
            data[b0:b1] = x.T
        return peak, clipped

    if workers == 1:
        parts = [run(starts)]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="awgrt-synth") as pool:
            parts = list(pool.map(run, [starts[i::workers] for i in range(workers)]))
    peak = np.max([p for p, _ in parts], axis=0)
    clipped = np.sum([c for _, c in parts], axis=0)
    if not np.all(np.isfinite(peak)):
        raise AWGRTError(f"synthesis produced non-finite samples (peak {peak.max()}); no int16 can represent them", segment=segment.name, op="synthesize", value=float(peak.max()))
    data.flags.writeable = False
    return SynthResult(data, tuple(int(c) for c in clipped), tuple(float(p) / full_scale for p in peak))
