"""Synthesis: quantized segments -> int16 samples.

Reference synthesis is float64: each tone span contributes ``a(u) * sin(2 pi phi(k))`` where
``phi`` is the span's start phase plus the closed-form phase advance
(:func:`~awgrt.ir.shapes.phase_cycles`), reduced modulo one cycle before the sine. The sum
per hardware channel is scaled by ``gain * full_scale``, clipped at ``clip * full_scale`` (every
clipped sample counted), rounded to the nearest integer and stored as int16 with channels in
hardware order. Work is done in blocks so memory stays bounded for long segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import AWGRTError
from ..ir.resolved import Segment, ToneSpan
from ..ir.shapes import amplitude_profile, phase_cycles

#: Samples synthesised per block (bounds temporary memory per tone to a few MiB).
BLOCK = 1 << 17
#: Columns of the per-block matrix product used for constant tones.
HOLD_BLOCK = 1024


@dataclass(frozen=True)
class SynthResult:
    """Samples of one segment and what happened on the way to int16."""

    data: np.ndarray  # int16 (n_samples, n_hardware_channels), read-only
    clipped: tuple[int, ...]  # per hardware channel: samples beyond the clip level
    peak: tuple[float, ...]  # per hardware channel: peak |value| before clipping, fraction of full scale


def _constant_tones(spans: list[ToneSpan], n: int, fs: float, out: np.ndarray) -> None:
    """Add constant tones over n samples to ``out`` with one complex matrix product per block.

    Sample b*B + j of tone i is Im(a_i e^{2 pi i (phi_i + f_i b B)} * e^{2 pi i f_i j}): the
    first factor is exact per block row, the second exact per column, so no phase is
    accumulated, and the sum over tones is a BLAS product (rows x tones) @ (tones x B).
    """
    f = np.array([s.f0_hz / fs for s in spans])
    a = np.array([s.a0 for s in spans])
    p0 = np.array([s.phase0_cycles for s in spans])
    width = min(n, HOLD_BLOCK)
    cols = np.exp(2j * np.pi * ((f[:, None] * np.arange(width)) % 1.0))
    rows_per_chunk = max(1, BLOCK // width)
    n_rows = -(-n // width)
    for r0 in range(0, n_rows, rows_per_chunk):
        starts = np.arange(r0, min(n_rows, r0 + rows_per_chunk), dtype=np.float64) * width
        coeff = a * np.exp(2j * np.pi * ((p0 + f * starts[:, None]) % 1.0))
        block = (coeff @ cols).imag.ravel()
        lo = r0 * width
        hi = min(n, lo + block.size)
        out[lo:hi] += block[: hi - lo]


def _moving_tone(s: ToneSpan, n: int, fs: float, out: np.ndarray) -> None:
    """Add one tone whose frequency or amplitude changes, sample by sample in closed form."""
    for b0 in range(0, n, BLOCK):
        k = np.arange(b0, min(n, b0 + BLOCK), dtype=np.float64)
        phi = s.phase0_cycles + phase_cycles(s.f0_hz / fs, s.f1_hz / fs, s.freq_kind, n, k)
        phi -= np.floor(phi)
        out[b0 : b0 + k.size] += amplitude_profile(s.a0, s.a1, s.amp_kind, k / n) * np.sin(2.0 * np.pi * phi)


def reference(segment: Segment, sample_rate_hz: float, hardware: dict[str, int], n_hw: int) -> np.ndarray:
    """Float64 samples in fractions of full scale, shape (n_samples, n_hw)."""
    out = np.zeros((n_hw, segment.n_samples), dtype=np.float64)
    for track in segment.tracks:
        row = out[hardware[track.channel]]
        for piece in track.pieces:
            view = row[piece.start : piece.stop]
            constant = [s for s in piece.tones if s.constant]
            if constant:
                _constant_tones(constant, piece.n, sample_rate_hz, view)
            for s in piece.tones:
                if not s.constant:
                    _moving_tone(s, piece.n, sample_rate_hz, view)
    return out.T


def to_int16(ref: np.ndarray, *, gain: float, clip: float, full_scale: int) -> tuple[np.ndarray, tuple[int, ...], tuple[float, ...]]:
    """Scale, clip, count and round float samples (fractions of full scale) to int16."""
    x = ref * (gain * full_scale)
    limit = clip * full_scale
    peak = tuple(float(v) for v in (np.max(np.abs(x), axis=0) / full_scale if x.size else np.zeros(x.shape[1])))
    clipped = tuple(int(v) for v in np.count_nonzero(np.abs(x) > limit, axis=0))
    np.clip(x, -limit, limit, out=x)
    data = np.rint(x).astype(np.int16)
    data.flags.writeable = False
    return data, clipped, peak


def synthesize(segment: Segment, sample_rate_hz: float, hardware: dict[str, int], n_hw: int, *, gain: float, clip: float, full_scale: int) -> SynthResult:
    """Int16 samples of one quantized segment (phases must be assigned)."""
    if any(s.phase0_cycles is None for t in segment.tracks for p in t.pieces for s in p.tones):
        raise AWGRTError("segment has unassigned phases: synthesise a quantized IR", segment=segment.name, op="synthesize")
    data, clipped, peak = to_int16(reference(segment, sample_rate_hz, hardware, n_hw), gain=gain, clip=clip, full_scale=full_scale)
    if not all(math.isfinite(p) for p in peak):
        raise AWGRTError(f"synthesis produced non-finite samples (peak {max(peak)}); no int16 can represent them", segment=segment.name, op="synthesize", value=max(peak))
    return SynthResult(data, clipped, peak)
