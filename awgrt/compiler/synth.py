"""Synthesis: quantized segments -> int16 samples, block by block.

Each tone span contributes ``a(u) * sin(2 pi phi(k))`` in float64, where ``phi`` is the span's
start phase plus the closed-form phase advance (:func:`~awgrt.ir.shapes.phase_cycles`), reduced
modulo one cycle before the sine. The sum per hardware channel is scaled by
``gain * full_scale``, clipped at ``clip * full_scale`` (every clipped sample counted), rounded to
the nearest integer and stored as int16 with channels in hardware order.

Memory: the segment is made in blocks of :data:`BLOCK` samples, each summed in float64 and
converted to int16 straight into the output before the next is started. Peak memory is the int16
output plus a working set bounded by :func:`working_set_bytes` (about 40 bytes per block sample
per enabled channel, ~10 MiB for 4 channels, independent of the segment's length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AWGRTError
from ..ir.resolved import Segment, ToneSpan
from ..ir.shapes import amplitude_profile, phase_cycles

#: Samples per block, per channel: the float64 working set is a few of these.
BLOCK = 1 << 16
#: Columns of the per-block matrix product used for constant tones.
HOLD_BLOCK = 1024


def working_set_bytes(n_hw: int, n_tones: int) -> int:
    """Upper bound of synthesis temporaries (bytes) beside the int16 output: the float64 block
    of every channel, about five block-sized float64 temporaries for a moving tone or the
    conversion, and the constant-tone matrices (tones x HOLD_BLOCK and block rows x tones, complex)."""
    rows = BLOCK // HOLD_BLOCK + 2
    return 8 * BLOCK * (n_hw + 6) + 16 * n_tones * (HOLD_BLOCK + rows) + 16 * rows * HOLD_BLOCK * 2


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


def _moving_tone(s: ToneSpan, n: int, k0: int, k1: int, fs: float, out: np.ndarray) -> None:
    """Add samples [k0, k1) of one tone whose frequency or amplitude changes over its piece of
    n samples, in closed form."""
    k = np.arange(k0, k1, dtype=np.float64)
    phi = s.phase0_cycles + phase_cycles(s.f0_hz / fs, s.f1_hz / fs, s.freq_kind, n, k)
    phi -= np.floor(phi)
    phi *= 2.0 * np.pi
    np.sin(phi, out=phi)
    phi *= amplitude_profile(s.a0, s.a1, s.amp_kind, k / n)
    out += phi


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
            for s in piece.tones:
                if not s.constant:
                    _moving_tone(s, piece.n, k0, k1, fs, view)


def synthesize(segment: Segment, sample_rate_hz: float, hardware: dict[str, int], n_hw: int, *, gain: float, clip: float, full_scale: int) -> SynthResult:
    """Int16 samples of one quantized segment (phases must be assigned), block by block."""
    if any(s.phase0_cycles is None for t in segment.tracks for p in t.pieces for s in p.tones):
        raise AWGRTError("segment has unassigned phases: synthesise a quantized IR", segment=segment.name, op="synthesize")
    n = segment.n_samples
    data = np.empty((n, n_hw), dtype=np.int16)
    scale, limit = gain * full_scale, clip * full_scale
    peak = np.zeros(n_hw)
    clipped = np.zeros(n_hw, dtype=np.int64)
    buf = np.empty((n_hw, min(n, BLOCK)))
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        x = buf[:, : b1 - b0]
        x.fill(0.0)
        _block(segment, b0, b1, sample_rate_hz, hardware, x)
        x *= scale
        mag = np.abs(x)
        np.maximum(peak, mag.max(axis=1), out=peak)
        clipped += np.count_nonzero(mag > limit, axis=1)
        np.clip(x, -limit, limit, out=x)
        np.rint(x, out=x)
        data[b0:b1] = x.T
    if not np.all(np.isfinite(peak)):
        raise AWGRTError(f"synthesis produced non-finite samples (peak {peak.max()}); no int16 can represent them", segment=segment.name, op="synthesize", value=float(peak.max()))
    data.flags.writeable = False
    return SynthResult(data, tuple(int(c) for c in clipped), tuple(float(p) / full_scale for p in peak))
