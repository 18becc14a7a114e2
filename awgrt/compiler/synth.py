"""Synthesis: quantized segments -> int16 samples, block by block.

Each tone span contributes ``a(u) * sin(2 pi phi(k))``, where ``phi`` is the span's start phase
plus the closed-form phase advance (:func:`~awgrt.ir.shapes.phase_cycles`), exact in float64 and
reduced modulo one cycle before any sine. How a piece's tones are made depends on what they do:

- constant frequency (held, or ramping amplitude): summed as real matrix products of exact
  phasors (:func:`_tone_sum`, no phase accumulated); held tones, exp ramps (their growth split
  exactly into a row and a column factor) and cosine ramps (exactly three held tones each) in one
  product; a linear or min_jerk ramp group is the sum at its amplitude change times the ramp's
  progress, itself one small product of exact Taylor terms (:func:`_poly_envelope`);
- moving together (one shape, one frequency change: a row of tweezers shifted as one): their
  held-tone sum, made as above, turned by one rotation per sample, whose phase is exact in
  float64 and whose sine and cosine are numpy's float32 ones (:func:`_shifted_tones`);
- moving each on its own: every tone's phase is one float64 matrix product of the piece's
  trajectory terms (made once for all its tones) with the tones' coefficients, reduced, rounded
  once to float32 and taken through numpy's vectorised float32 sine; the sines are summed per
  amplitude group by a second product (:func:`_moving_tones`). ``fast_math=True`` anchors their
  exact phase every :data:`FAST_WINDOW` samples and makes the rest in float32
  (:data:`FAST_PHASE_ERROR_RAD`, 1 LSB at full scale) where that pays; never the default.

Either way a moving tone is within :data:`SINE_ERROR_RAD` of exact (below 0.01 LSB at full scale).
The phasors of the tones played are remembered (within :data:`PHASOR_CACHE_BYTES`), since a scan
point usually plays the same tones again.

Amplitudes carry ``gain * full_scale``, so each channel's sum is in LSB; it is clipped at
``clip * full_scale`` (every clipped sample counted), rounded to the nearest integer and stored as
int16 with channels in hardware order.

Memory: the segment is made in blocks of :data:`BLOCK` samples, each summed in float64 and
converted to int16 straight into the output before the next is started. Peak memory is the int16
output plus a working set bounded by :func:`working_set_bytes` (independent of the segment's
length and of how many tones ramp), times the number of ``workers`` threads when blocks are made
in parallel. Each thread keeps its working arrays for the next segment (:func:`_work`; fresh
ones would be mapped and zeroed page by page on first touch, a third of a small compile's time);
:func:`release_work_arrays` lets them go.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..errors import AWGRTError
from ..ir.resolved import Segment, ToneSpan, copy_with
from ..ir.shapes import FREQ_SHAPES, adiabatic_ends, exp_tau_progress, phase_cycles

#: Samples per block, per channel: the float64 working set is a few of these.
BLOCK = 1 << 16
#: Columns of the per-block matrix product used for constant tones.
HOLD_BLOCK = 256
_SPLIT = 16
#: Tone-samples per sub-block of moving tones: their few temporaries stay in the core's cache.
SUB_BLOCK = 1 << 15
_MAX_STEP = 1 << 15
#: Samples per sub-block of tones that share a frequency change (:func:`_shifted_tones`).
SHIFT_STEP = 1 << 14
_MIN_STEP = 1 << 10
#: A segment is shared among threads only when each gets at least this many blocks on average:
#: handing a thread one block costs more than it saves.
MIN_BLOCKS_PER_WORKER = 2
#: Largest error (rad, and so fraction of the tone's amplitude) of one moving tone's sine: the
#: exact float64 phase reduced to [-pi, pi] is rounded to float32 (at most half a float32 step
#: below 4, 2**-23 rad) and numpy's float32 sine is within 2 float32 ulps of the true value
#: (2 * 2**-24 for |sin| <= 1): 2 * 2**-23. Tones sharing a shape and a frequency change are
#: turned by one rotation e^{i psi} made the same way, its sine and cosine each within 2 ulps:
#: at most (1 + sqrt 2) 2**-23 from exact, which bounds both. Summed over a channel whose
#: amplitudes add up to A (fractions of full scale, after gain), the error is below
#: SINE_ERROR_RAD * A * full_scale: 0.0094 LSB at A = 1.
SINE_ERROR_RAD = (1.0 + math.sqrt(2.0)) * 2.0**-23
#: Fast-math (opt-in): samples per window whose moving-tone phases are anchored exactly.
FAST_WINDOW = 32
#: Fast-math takes its own path only for pieces with at least this many tones moving on their own:
#: with fewer it is no faster than the exact path, which is then used (its error is far smaller).
FAST_MIN_TONES = 8
#: Largest phase error (rad) of a moving tone in fast-math: within a window its phase is the
#: exact float64 anchor (reduced, then float32: 2**-25 cycle) plus an offset of at most
#: FAST_WINDOW / 2 cycles (the frequency stays below fs/2) made by a float32 matrix product
#: (frequency and shape coefficients rounded to float32, products and sums rounded: 2.5 half-ulps
#: of 16, 2**-19 cycle each); the reduced phase is turned into radians in float32 (2 pi rounded:
#: pi 2**-24 rad); then the same float32 sine as exact mode. Below 3.1e-5 rad, i.e. 1.0 LSB at
#: full scale, plus the float32 sum over n tones (n * 2**-24 of full scale).
FAST_PHASE_ERROR_RAD = 2.0 * np.pi * (2.5 * 2.0**-19 + 2.0**-25) + np.pi * 2.0**-24 + SINE_ERROR_RAD


def working_set_bytes(n_hw: int, n_tones: int) -> int:
    """Upper bound of synthesis temporaries (bytes) beside the int16 output, whatever the tones
    do: the float64 block of every channel, plus the larger of what constant-frequency tones need
    (complex phasors, 3 tones x (HOLD_BLOCK + block rows), three times over, and eight block-sized
    float64 arrays: the sum, its envelope and the envelope's terms) and what moving tones need
    (fourteen block-sized float64 rows: the trajectory terms of up to four shapes with their
    temporaries and up to three polynomial envelopes, or for tones sharing a frequency change
    their common phase, its sine and cosine, two sums and their envelopes; the phase, its reduction, its float32 sine
    and the group sums of a sub-block of max(SUB_BLOCK, 1024 tones) tone-samples; and eight
    sub-block rows for the other envelopes); plus two block-sized rows for tones sharing one
    amplitude envelope (their sum and the envelope)."""
    rows = BLOCK // HOLD_BLOCK + 2
    held = 16 * 3 * n_tones * (HOLD_BLOCK + rows) * 3 + 8 * (BLOCK + HOLD_BLOCK) * 8  # a cosine ramp: three folded tones
    moving = 8 * BLOCK * 14 + 28 * max(SUB_BLOCK, _MIN_STEP * n_tones) + 8 * _MAX_STEP * 8
    return 8 * BLOCK * n_hw + 16 * BLOCK + max(held, moving)


#: Largest working array (bytes) a synthesis thread keeps for the next block and the next compile
#: (:func:`_work`); a larger one (thousands of moving tones) is allocated each time it is needed.
WORK_ARRAY_BYTES = 4 << 20
_WORKSPACE = threading.local()


def _work(key: str, shape: int | tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """A working array of ``shape`` for the use site ``key``, its contents left over (as from
    ``np.empty``). Each thread keeps its own arrays (up to :data:`WORK_ARRAY_BYTES` each, and
    within :func:`working_set_bytes` in all) from one block and one compile to the next: a fresh
    array of a block's size is fresh memory, which the kernel maps and zeroes page by page on
    first touch (a fault per 4 KiB, costing more than the arithmetic done in the array), and
    the allocator hands such memory back between compiles; and the fewer arrays a compile
    touches, the fewer come from main memory after other work has filled the caches. Two live
    arrays never share a key: a ``temp.`` key is used by steps one after the other."""
    size = shape if isinstance(shape, int) else math.prod(shape)
    try:
        bufs: dict[tuple[str, type], np.ndarray] = _WORKSPACE.bufs
    except AttributeError:
        bufs = _WORKSPACE.bufs = {}
    buf = bufs.get((key, dtype))
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        if buf.nbytes <= WORK_ARRAY_BYTES:
            bufs[(key, dtype)] = buf
    return buf[:size] if isinstance(shape, int) else buf[:size].reshape(shape)


def kept_work_bytes() -> int:
    """Bytes of working arrays the calling thread keeps between compiles (:func:`_work`)."""
    return sum(b.nbytes for b in getattr(_WORKSPACE, "bufs", {}).values())


def release_work_arrays() -> None:
    """Let go of the calling thread's working arrays (the next synthesis makes them again)."""
    _WORKSPACE.bufs = {}


@dataclass(frozen=True)
class SynthResult:
    """Samples of one segment and what happened on the way to int16."""

    data: np.ndarray  # int16 (n_samples, n_channels), read-only
    clipped: tuple[int, ...]  # per hardware channel: samples beyond the clip level
    peak: tuple[float, ...]  # per hardware channel: peak |value| before clipping, fraction of full scale
    sounding: tuple[bool, ...] = ()  # per hardware channel: some sample is not 0 (peak above half an LSB)


def _phasors(base: np.ndarray, step: np.ndarray, count: int) -> np.ndarray:
    """e^{2 pi i (base_t + step_t m)} for m in [0, count), shape (tones, count), with few sines:
    m = h * 16 + l, and the factor for h and the factor for l are each made from an exactly
    reduced phase, so each value is within a few float64 ulps (the float64 sine is slow: one
    per value would cost more than the sum it feeds)."""
    lo = np.arange(_SPLIT, dtype=np.float64)
    hi = np.arange(-(-count // _SPLIT), dtype=np.float64) * _SPLIT
    a = np.exp(2j * np.pi * ((base[:, None] + step[:, None] * hi) % 1.0))
    b = np.exp(2j * np.pi * ((step[:, None] * lo) % 1.0))
    return (a[:, :, None] * b[:, None, :]).reshape(base.size, -1)[:, :count]


#: Rows of :data:`HOLD_BLOCK` samples in a block (and one more for a block not aligned to them).
_ROWS = BLOCK // HOLD_BLOCK + 1


def _row_steps(f: np.ndarray, n: int) -> np.ndarray:
    """e^{2 pi i f r W} for r in [0, min(_ROWS, rows of a piece of n samples + 1)): the row
    factors of tones of frequencies ``f`` relative to a block's first row (see
    :func:`_row_phasors`), remembered for the next scan point."""
    return _remembered_phasors((f * HOLD_BLOCK) % 1.0, min(_ROWS, n // HOLD_BLOCK + 2))


#: Bytes of tone phasors remembered: a table of :data:`_ROWS` phasors per tone step
#: (:func:`_step_rows`), forgotten all at once when full, and the tone sets' tables made from it
#: (:func:`_remembered_phasors`, the least recently used forgotten first), within this many
#: bytes each.
PHASOR_CACHE_BYTES = 16 << 20
_PHASOR_CACHE: OrderedDict[tuple[tuple[float, ...], int, bool], np.ndarray] = OrderedDict()
_PHASOR_LOCK = threading.Lock()
_SET_BYTES = [0]
#: Tone steps the per-step table holds at most.
_STEP_ROWS_MAX = PHASOR_CACHE_BYTES // (16 * _ROWS)
_STEP_INDEX: dict[float, int] = {}  # step -> its row of _STEP_TABLE[0]
_STEP_TABLE = [np.empty((0, _ROWS), dtype=np.complex128)]


def forget_phasors() -> None:
    """Empty the remembered tone phasors (the next synthesis makes them afresh)."""
    with _PHASOR_LOCK:
        _PHASOR_CACHE.clear()
        _SET_BYTES[0] = 0
        _STEP_INDEX.clear()
        _STEP_TABLE[0] = np.empty((0, _ROWS), dtype=np.complex128)


def _make_steps(steps: list[float]) -> bool:
    """Put e^{2 pi i s m} for m in [0, _ROWS) of every step s not yet there into the per-step
    table, all in one :func:`_phasors` call (lock held); False when the steps are more than the
    table holds. A row depends on its step alone, so it is the same whichever tone set or batch
    made it."""
    missing = [s for s in dict.fromkeys(steps) if s not in _STEP_INDEX]
    if not missing:
        return True
    used = len(_STEP_INDEX)
    if used + len(missing) > _STEP_ROWS_MAX:
        if len(missing) > _STEP_ROWS_MAX or len(dict.fromkeys(steps)) > _STEP_ROWS_MAX:
            return False
        _STEP_INDEX.clear()  # full: start again with the tones in hand
        missing, used = list(dict.fromkeys(steps)), 0
    table = _STEP_TABLE[0]
    if used + len(missing) > table.shape[0]:
        grown = np.empty((min(_STEP_ROWS_MAX, max(2 * table.shape[0], used + len(missing), 64)), _ROWS), dtype=np.complex128)
        grown[:used] = table[:used]
        table = _STEP_TABLE[0] = grown
    table[used : used + len(missing)] = _phasors(np.zeros(len(missing)), np.array(missing), _ROWS)
    _STEP_INDEX.update(zip(missing, range(used, used + len(missing))))
    return True


def _step_rows(steps: list[float], count: int) -> np.ndarray:
    """e^{2 pi i s m} for every step s and m in [0, count <= _ROWS), gathered from the per-step
    table (the tone sets of a program share their tones: a segment's held row, its movers, the
    next piece), the missing rows made together (:func:`_make_steps`)."""
    with _PHASOR_LOCK:
        if _make_steps(steps):
            return _STEP_TABLE[0][[_STEP_INDEX[s] for s in steps], :count]
    return _phasors(np.zeros(len(steps)), np.array(steps), count)


def prefetch_phasors(segment: Segment, fs: float) -> None:
    """Make the column and row phasors of every tone of ``segment`` (:func:`_columns`,
    :func:`_row_steps`) in one batch before its pieces ask for them one tone set at a time."""
    f = np.array([s.f0_hz for t in segment.tracks for p in t.pieces for s in p.tones]) / fs
    with _PHASOR_LOCK:
        _make_steps(np.concatenate((f, (f * HOLD_BLOCK) % 1.0)).tolist())


def _remembered_phasors(step: np.ndarray, count: int, columns: bool = False) -> np.ndarray:
    """:func:`_phasors` from phase 0, read-only and remembered by the tones' steps (a scan point
    usually plays the same tones again), within :data:`PHASOR_CACHE_BYTES`; made from
    :func:`_step_rows` (count at most :data:`_ROWS`). ``columns``: as the real matrix of
    :func:`_columns` (imaginary parts over real parts)."""
    steps = step.tolist()
    key = (tuple(steps), count, columns)
    with _PHASOR_LOCK:
        e = _PHASOR_CACHE.get(key)
        if e is not None:
            _PHASOR_CACHE.move_to_end(key)
            return e
    e = _step_rows(steps, count) if count <= _ROWS else _phasors(np.zeros(step.size), step, count)
    if columns:
        e = np.concatenate((e.imag, e.real))
    e.flags.writeable = False
    with _PHASOR_LOCK:
        old = _PHASOR_CACHE.pop(key, None)
        _SET_BYTES[0] += e.nbytes - (0 if old is None else old.nbytes)
        _PHASOR_CACHE[key] = e
        while _SET_BYTES[0] > PHASOR_CACHE_BYTES and len(_PHASOR_CACHE) > 1:
            _SET_BYTES[0] -= _PHASOR_CACHE.popitem(last=False)[1].nbytes
    return e


def _row_phasors(f: np.ndarray, p0: np.ndarray, k0: int, count: int, steps: np.ndarray) -> np.ndarray:
    """e^{2 pi i (p0 + f (k0 + r W))} for r in [0, count): the exact phasor of each tone at k0
    (its phase reduced in float64) times the piece's exact row factors ``steps``; each value
    within a few float64 ulps (a call longer than a block makes its rows afresh)."""
    if count > steps.shape[1]:
        return _phasors((p0 + f * k0) % 1.0, (f * HOLD_BLOCK) % 1.0, count)
    return np.multiply(np.exp(2j * np.pi * ((p0 + f * k0) % 1.0))[:, None], steps[:, :count], out=_work("rows", (f.size, count), np.complex128))


def _lhs(c: np.ndarray, key: str) -> np.ndarray:
    """The (rows x 2 tones) left factor [Re(c) Im(c)] of a :func:`_tone_sum` product, from
    (tones x rows) complex row phasors ``c``, in the working array ``key``."""
    t = c.shape[0]
    out = _work(key, (c.shape[1], 2 * t))
    out[:, :t] = c.real.T
    out[:, t:] = c.imag.T
    return out


def _columns(f: np.ndarray, growth: tuple[np.ndarray, np.ndarray] | None, n: int) -> np.ndarray:
    """The column factors of :func:`_tone_sum` for tones of frequencies ``f``: (2 tones x W) rows
    Im(e_ij) then Re(e_ij), e_ij = e^{2 pi i f_i j} (times e^{G_i j / n} for an exp ramp), made once
    per piece."""
    if growth is None:
        return _remembered_phasors(f, HOLD_BLOCK, columns=True)
    e = _remembered_phasors(f, HOLD_BLOCK) * np.exp(growth[0][:, None] * (np.arange(HOLD_BLOCK, dtype=np.float64) / n))
    return np.concatenate((e.imag, e.real))


def _product_into(lhs: np.ndarray, rhs: np.ndarray, out: np.ndarray, add: bool) -> None:
    """The first ``out.size`` values of the (rows x W) product ``lhs @ rhs`` read row by row,
    written into ``out`` (whole rows straight from BLAS, a last part row through a one-row
    product), or added to it."""
    m = out.size
    shape = (lhs.shape[0], rhs.shape[1])
    if not add and out.flags.c_contiguous:  # the whole rows straight from BLAS, the last part row apart
        full, rest = divmod(m, shape[1])
        if full:
            np.matmul(lhs[:full], rhs, out=out[: full * shape[1]].reshape(full, shape[1]))
        if rest:
            out[full * shape[1] :] = np.matmul(lhs[full : full + 1], rhs, out=_work("product.row", (1, shape[1])))[0, :rest]
        return
    product = np.matmul(lhs, rhs, out=_work("product", shape)).ravel()[:m]
    if add:
        out += product
    else:
        out[...] = product


def _tone_sum(tones: _Product, k0: int, n: int, out: np.ndarray, add: bool = False) -> None:
    """Write (or add) into ``out`` the sum over constant-frequency tones (frequencies ``f`` in
    cycles per sample, amplitudes ``a``, start phases ``p0`` in cycles) of ``a sin(2 pi (p0 + f k))``
    at samples k in [k0, k0 + out.size) of their piece of ``n`` samples; with ``growth`` (per tone:
    G, T), tone i's amplitude is ``a_i e^{G_i (k / n - T_i)}`` (an exp ramp; T its end of larger
    amplitude, so the factor stays at most 1 within the piece).

    Sample k0 + r*W + j of tone i is Im(c_ir * e_ij) with c_ir = a_i e^{2 pi i (p0_i + f_i (k0 + r W))}
    exact per row and e_ij = e^{2 pi i f_i j} exact per column (W = HOLD_BLOCK,
    :func:`_columns`), so no phase is accumulated (an exp ramp's factor splits the same way:
    e^{G ((k0 + r W) / n - T)} per row times e^{G j / n} per column, each from an exact exponent);
    Im(c e) = Re(c) Im(e) + Im(c) Re(e), so the sum over tones is one real product
    (rows x 2 tones) @ (2 tones x W), with BLAS kept to one thread (see compile)."""
    width = HOLD_BLOCK
    rows = -(-out.size // width)
    f = tones.f
    c = _row_phasors(f, tones.p0, k0, rows, tones.row_steps)
    c *= tones.a[:, None]
    if tones.growth is not None:
        g, top = tones.growth
        c *= np.exp(g[:, None] * ((k0 + np.arange(rows, dtype=np.float64) * width) / n - top[:, None]))
    _product_into(_lhs(c, "sum.lhs"), tones.columns, out, add)


#: Amplitude groups of tones sharing a frequency change are made from one sum when they are
#: proportional to within this fraction of the largest amplitude (an error of that order, far
#: below :data:`SINE_ERROR_RAD`).
_SHARED_AMPS = 1e-12
#: Largest |G| W / n for which an exp ramp is folded into the product (its column factor
#: e^{G j / n} then stays within e^{+-60}); steeper ones are multiplied by their envelope.
_FOLD_EXP = 60.0
#: Progress polynomials (coefficients of u^0, u^1, ...) of the polynomial ramp shapes.
_PROGRESS_POLY = {"linear": (0.0, 1.0), "min_jerk": (0.0, 0.0, 0.0, 10.0, -15.0, 6.0), "smoothstep": (0.0, 0.0, 3.0, -2.0)}
#: Their integrals from 0 (the phase advance of a move of that shape, see :mod:`awgrt.ir.shapes`).
_INTEGRAL_POLY = {"linear": (0.0, 0.0, 0.5), "min_jerk": (0.0, 0.0, 0.0, 0.0, 2.5, -3.0, 1.0), "smoothstep": (0.0, 0.0, 0.0, 1.0, -0.5)}


def _taylor(c: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """T with q_m(u) = sum_d u^d T[d, m] the m-th Taylor coefficient at u of the polynomial with
    coefficients c: T[d, m] = c_{m+d} binom(m+d, m) (0 beyond the degree)."""
    index, binomial = _taylor_terms(len(c))
    return np.append(np.asarray(c, dtype=np.float64), 0.0)[index] * binomial


@functools.cache
def _taylor_terms(terms: int) -> tuple[np.ndarray, np.ndarray]:
    """For :func:`_taylor` of ``terms`` coefficients: the index m + d of each entry's coefficient
    (``terms``, a zero, where m + d is beyond the degree) and binom(m + d, m) (0 there)."""
    d, m = np.indices((terms, terms))
    beyond = m + d >= terms
    index = np.where(beyond, terms, m + d)
    binomial = np.array([[0.0 if b else float(math.comb(i, j)) for i, j, b in zip(ri, rj, rb)] for ri, rj, rb in zip(m + d, m, beyond)])
    index.flags.writeable = False
    binomial.flags.writeable = False
    return index, binomial


#: :func:`_taylor` of the fixed shape polynomials, made once each.
_taylor_matrix = functools.cache(_taylor)


@functools.lru_cache(maxsize=256)
def _column_powers(n: int, terms: int) -> np.ndarray:
    """(j / n)^m for m in [0, terms) (rows) and j in [0, W) (columns), remembered per piece length."""
    powers = np.vander(np.arange(HOLD_BLOCK, dtype=np.float64) / n, terms, increasing=True).T.copy()
    powers.flags.writeable = False
    return powers


def _powers(x: np.ndarray, terms: int) -> np.ndarray:
    """x**m for m in [0, terms) (columns) of every x (rows), by running products: the values of
    ``np.vander(x, terms, increasing=True)``, made in contiguous rows (twice as fast)."""
    v = np.empty((terms, x.size))
    v[0] = 1.0
    if terms > 1:
        v[1] = x
        for d in range(2, terms):
            np.multiply(v[d - 1], x, out=v[d])
    return v.T


def _poly_envelope(c: tuple[float, ...], k0: int, k1: int, n: int, out: np.ndarray | None = None, taylor: np.ndarray | None = None) -> np.ndarray:
    """The polynomial with coefficients ``c`` (of u^0, u^1, ...) at u = k / n for k in [k0, k1),
    as one small product: with k = k0 + r W + j, p(u_r + v_j) = sum_m q_m(r) v_j^m exactly
    (u_r = (k0 + r W) / n, v_j = j / n, q_m the m-th Taylor coefficient of p at u_r), so the
    (rows x W) values are (rows x terms) @ (terms x W). Written into ``out`` (k1 - k0 values)
    when given; ``taylor``: :func:`_taylor` of c when the caller made it (c is not remembered then)."""
    width = HOLD_BLOCK
    rows = -(-(k1 - k0) // width)
    ur = (k0 + np.arange(rows, dtype=np.float64) * width) / n
    deg = len(c) - 1
    q = _powers(ur, deg + 1) @ (_taylor_matrix(c) if taylor is None else taylor)
    powers = _column_powers(n, deg + 1)
    if out is None:
        out = np.empty(k1 - k0)
    _product_into(q, powers, out, add=False)
    return out


@dataclass(frozen=True)
class _Moving:
    """Tones of a piece whose frequency changes, as matrices: the phase of tone t at sample k is
    ``coef[t] @ (c_t, k - s0, S_1(u), ...)`` (c_t its exact phase at the sub-block start s0, S_i
    the integral of each frequency shape in use, see :mod:`awgrt.ir.shapes`), and the channel's
    sum is ``sum_g envelope_g(u) * (amps[g] @ sines)`` over amplitude groups g (0: constant)."""

    f0: np.ndarray  # cycles per sample
    p0: np.ndarray  # cycles
    coef: np.ndarray  # tones x (2 + kinds): [unused, f0, (f1 - f0) n for its shape's column]
    kinds: tuple[str, ...]  # frequency shapes, one basis row each
    amps: np.ndarray  # groups x tones
    envelopes: tuple[tuple[str, float], ...]  # per group after the first: (ramp kind, log ratio for exp)


@dataclass(frozen=True)
class _Product:
    """Constant-frequency tones made by one :func:`_tone_sum` product. A piece's folded tones are
    its held tones, exp ramps (their growth folded into the product), and cosine ramps (a tone
    times 1/2 - cos(pi u)/2 is that tone at half the amplitude change plus two tones 1/(2n) cycle
    per sample either side of it at minus a quarter of it: exactly); a ramp group's tones are
    those at their amplitude changes."""

    f: np.ndarray  # cycles per sample
    a: np.ndarray
    p0: np.ndarray  # cycles
    growth: tuple[np.ndarray, np.ndarray] | None  # per tone (G, T) of e^{G (u - T)}, or None when no tone grows
    columns: np.ndarray  # :func:`_columns`, made once per piece
    n: int  # samples in the piece

    @functools.cached_property
    def row_steps(self) -> np.ndarray:
        """:func:`_row_steps` of these tones, made once per piece."""
        return _row_steps(self.f, self.n)


@dataclass(frozen=True)
class _Shifted:
    """Moving tones of a piece that share one shape and one frequency change D (cycles over the
    piece): tone t's phase is p0_t + f0_t k + D S(k / n), so the channel's sum is
    ``sum_g envelope_g(u) Im(H_g(k) e^{2 pi i D S(u)})`` with H_g(k) = sum_t a_gt e^{2 pi i (p0_t + f0_t k)}
    made like held tones (:func:`_shifted_tones`): one rotation per sample for all of them."""

    kind: str  # the frequency shape
    change: float  # D = (f1 - f0) n / fs, cycles
    tones: _Moving  # f0, p0, amplitude groups and envelopes (its coef is not used)
    n: int  # samples in the piece

    @functools.cached_property
    def proportional(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(amplitudes a, weights w) with every group's amplitudes w_g a, to within
        :data:`_SHARED_AMPS` of the largest (tones that all ramp by one factor, or all to zero):
        then one H serves every group. None when the groups are not proportional."""
        amps = self.tones.amps
        top = float(np.abs(amps).max())
        if amps.shape[0] == 1 or not top > 0.0:
            return None
        scaled = amps / top  # tiny amplitudes (1e-170) must not underflow to 0 / 0 below
        ref = scaled[int(np.argmax(np.abs(scaled).sum(axis=1)))]  # its entries' sum is at least 1
        weights = scaled @ ref / float(ref @ ref)
        if np.abs(scaled - np.outer(weights, ref)).max() > _SHARED_AMPS:
            return None
        return ref * top, weights

    @functools.cached_property
    def row_steps(self) -> np.ndarray:
        """:func:`_row_steps` of these tones, made once per piece."""
        return _row_steps(self.tones.f0, self.n)

    @functools.cached_property
    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Column factors giving Im(H) and Re(H) from the row phasors (see :func:`_columns`)."""
        e = _remembered_phasors(self.tones.f0, HOLD_BLOCK)
        return np.concatenate((e.imag, e.real)), np.concatenate((e.real, -e.imag))


@dataclass(frozen=True)
class _PieceTones:
    """The tones of one piece sorted by how they are made: constant-frequency tones folded into
    one product (:class:`_Product`), polynomial ramps (linear, min_jerk) as the sum at their
    amplitude changes times the ramp's progress (:func:`_poly_envelope`), exp ramps too steep to
    fold as their sum times :func:`_ramp_envelope`, moving tones that share a shape and a
    frequency change as held tones times one common rotation (:func:`_shifted_tones`), the other
    moving tones through the float32 sine (:func:`_moving_tones`), and AOD-calibrated tones whose power or frequency changes sample by
    sample (:func:`_calibrated_tones`)."""

    folded: _Product | None
    ramps: tuple[tuple[str, float, _Product], ...]  # (kind, its parameter, tones at their amplitude changes)
    moving: _Moving | None
    calibrated: tuple[tuple[ToneSpan, float], ...] = ()  # optical ramps and moves (:func:`_calibrated_tones`), with the scale
    shifted: tuple[_Shifted, ...] = ()  # moving tones sharing a shape and a frequency change (:func:`_shifted_tones`)
    common: tuple[str, float, float] | None = None  # every tone's amplitude is c_t (offset + slope p(u)): (progress kind, offset, slope)


#: Amplitude ramps of one progress shape whose ends keep one ratio to within this fraction share
#: their envelope (:func:`_common_envelope`): an error of that order, far below :data:`SINE_ERROR_RAD`.
_COMMON_RATIO = 1e-12


def _common_envelope(spans: tuple[ToneSpan, ...]) -> tuple[tuple[str, float, float], tuple[ToneSpan, ...]] | None:
    """When every tone of a piece ramps its amplitude with one progress shape p and one ratio of
    its ends (the whole row brightened or dimmed together, as a rearrangement does), its
    amplitude is c_t g(u) with one envelope g = offset + slope p(u) for all: c = a0 and
    g = 1 + (a1 / a0 - 1) p, or, when every tone starts from zero, c = a1 and g = p. Then the
    piece is its tones at the constant amplitudes c times g, made once (one pass instead of a
    ramp group per kind of tone): returns ((kind, offset, slope), the tones at amplitudes c), or None."""
    kinds = {s.amp_kind for s in spans}
    if len(kinds) != 1 or any(s.a0 == s.a1 or s.optical is not None for s in spans):
        return None
    (kind,) = kinds
    if kind not in _PROGRESS_POLY:
        return None
    if all(s.a0 == 0.0 for s in spans):
        return (kind, 0.0, 1.0), tuple(copy_with(s, a0=s.a1, amp_kind="linear") for s in spans)
    if any(s.a0 == 0.0 for s in spans):
        return None
    ratio = spans[0].a1 / spans[0].a0
    if any(abs(s.a1 / s.a0 - ratio) > _COMMON_RATIO * max(1.0, abs(ratio)) for s in spans):
        return None
    return (kind, 1.0, ratio - 1.0), tuple(copy_with(s, a1=s.a0, amp_kind="linear") for s in spans)


def _amplitude_group(s: ToneSpan) -> list[tuple[tuple[str, float], float]]:
    """(envelope, coefficient) terms of a tone's amplitude: a0 + (a1 - a0) p(u) for a progress
    shape or the time-constant ramp, a0 e^{u L} for a geometric one, and for an adiabatic one
    b0 / (1 + (b0 / b1 - 1) s(u)) - (b0 - a0) (1 - s(u)) - (b1 - a1) s(u) (b: the floored ends,
    s the smoothstep; see :func:`awgrt.ir.shapes.amplitude_profile`)."""
    if s.a0 == s.a1:
        return [(("", 0.0), s.a0)]
    if s.amp_kind == "exp":  # scaled by the larger end, so the envelope is at most 1 (subnormal ends)
        log_ratio = float(np.log(s.a1) - np.log(s.a0))
        return [(("exp", log_ratio), max(s.a0, s.a1))]
    if s.amp_kind == "adiabatic":
        b0, b1 = adiabatic_ends(s.a0, s.a1)
        terms = [(("adiabatic", b0 / b1), b0), (("", 0.0), s.a0 - b0), (("smoothstep", 0.0), (b0 - s.a0) - (b1 - s.a1))]
        return [t for t in terms if t[1] != 0.0]
    return [(("", 0.0), s.a0), ((s.amp_kind, s.amp_param), s.a1 - s.a0)]


def _moving_matrices(moving: list[ToneSpan], fs: float, n: int, scale: float) -> _Moving:
    """The matrices of :class:`_Moving` for these tones of a piece of n samples."""
    kinds = tuple(dict.fromkeys(s.freq_kind for s in moving))
    coef = np.zeros((len(moving), 2 + len(kinds)))
    envelopes: dict[tuple[str, float], int] = {("", 0.0): 0}
    terms = []
    for t, s in enumerate(moving):
        coef[t, 1] = s.f0_hz / fs
        coef[t, 2 + kinds.index(s.freq_kind)] = (s.f1_hz - s.f0_hz) / fs * n
        for key, a in _amplitude_group(s):
            terms.append((envelopes.setdefault(key, len(envelopes)), t, a))
    amps = np.zeros((len(envelopes), len(moving)))
    for g, t, a in terms:
        amps[g, t] += a * scale
    return _Moving(coef[:, 1].copy(), np.array([s.phase0_cycles for s in moving], dtype=np.float64), coef, kinds, amps, tuple(envelopes)[1:])


def _sort_tones(spans: tuple[ToneSpan, ...], fs: float, n: int, scale: float = 1.0) -> _PieceTones:
    """Sort a piece's tones (see :class:`_PieceTones`), amplitudes times ``scale``. A tone of an
    AOD-calibrated channel that holds plays the RF amplitude of its power at its frequency (as
    snapping left it); one whose power or frequency changes goes sample by sample."""
    shared = _common_envelope(spans) if len(spans) > 1 else None
    if shared is not None:
        return copy_with(_sort_tones(shared[1], fs, n, scale), common=shared[0])
    if any(s.optical is not None for s in spans):
        calibrated = tuple((s, scale) for s in spans if s.optical is not None and not s.constant)
        held = []
        for s in spans:
            if s.optical is None:
                held.append(s)
            elif s.constant:
                a = float(s.optical.calibration.rf_amplitude(s.f0_hz, s.optical.p0)[0])
                held.append(ToneSpan(s.tone, s.f0_hz, s.f1_hz, s.freq_kind, a, a, s.amp_kind, s.phase0_cycles))
        return copy_with(_sort_tones(tuple(held), fs, n, scale), calibrated=calibrated)
    folded: list[tuple[float, ...]] = []  # f, a, p0, G, T
    groups: dict[tuple[str, float], list[tuple[float, ...]]] = {}
    moving = [s for s in spans if s.f0_hz != s.f1_hz]
    for s in spans:
        if s.f0_hz != s.f1_hz:
            continue
        f, p0 = s.f0_hz / fs, cast(float, s.phase0_cycles)  # assigned: synthesize checks
        for (kind, ratio), a in _amplitude_group(s):
            if kind == "":
                folded.append((f, a * scale, p0, 0.0, 0.0))
            elif kind == "exp" and abs(ratio) * HOLD_BLOCK / n <= _FOLD_EXP:
                folded.append((f, a * scale, p0, ratio, 1.0 if ratio > 0 else 0.0))
            elif kind == "cosine":
                half = 1.0 / (2 * n)
                folded += [(f, 0.5 * a * scale, p0, 0.0, 0.0), (f + half, -0.25 * a * scale, p0, 0.0, 0.0), (f - half, -0.25 * a * scale, p0, 0.0, 0.0)]
            else:
                groups.setdefault((kind, ratio), []).append((f, a * scale, p0))

    def product(rows: list[tuple[float, ...]]) -> _Product:
        m = np.array(rows, dtype=np.float64)
        f = m[:, 0].copy()
        growth = (m[:, 3].copy(), m[:, 4].copy()) if any(len(r) > 3 and r[3] for r in rows) else None
        return _Product(f, m[:, 1].copy(), m[:, 2].copy(), growth, _columns(f, growth, n), n)

    fold = product(folded) if folded else None
    ramps = tuple((kind, ratio, product(rows)) for (kind, ratio), rows in groups.items())
    by_change: dict[tuple[str, float], list[ToneSpan]] = {}
    for sp in moving:
        by_change.setdefault((sp.freq_kind, (sp.f1_hz - sp.f0_hz) / fs * n), []).append(sp)
    single = [sp for group in by_change.values() if len(group) == 1 for sp in group]
    shifted = tuple(_Shifted(kind, change, _moving_matrices(group, fs, n, scale), n) for (kind, change), group in by_change.items() if len(group) > 1)
    mv = _moving_matrices(single, fs, n, scale) if single else None
    return _PieceTones(fold, ramps, mv, shifted=shifted)


def _ramp_envelope(kind: str, param: float, u: np.ndarray, n: int, k0: int) -> np.ndarray:
    """The factor multiplying a ramp group's sum at u = (k0 + j) / n: a progress shape's s(u);
    the time-constant ramp's (1 - e^{-R u}) / (1 - e^{-R}) (``param`` R = T / tau); an adiabatic
    ramp's 1 / (1 + (r - 1) s(u)) (``param`` r = b0 / b1, s the smoothstep); for exp ramps
    e^{L (u - u_max)} (``param`` L = ln(a1/a0), u_max the end of the larger amplitude, so it never
    exceeds 1) as the product e^{L ((k0 + 16 h) / n - u_max)} e^{L l / n} (j = 16 h + l), each
    factor from an exact exponent (a float64 exp per sample would cost more than the sum)."""
    if kind == "exp_tau":
        return exp_tau_progress(param, u)
    if kind == "adiabatic":
        out = FREQ_SHAPES["smoothstep"].progress(u)
        out *= param - 1.0
        out += 1.0
        return np.reciprocal(out, out=out)
    if kind != "exp":
        return FREQ_SHAPES[kind].progress(u)
    log_ratio = param
    m = u.size
    top = n if log_ratio > 0 else 0
    hi = np.exp(log_ratio * ((k0 - top + np.arange(0, m + _SPLIT, _SPLIT, dtype=np.float64)) / n))
    lo = np.exp(log_ratio * (np.arange(_SPLIT, dtype=np.float64) / n))
    return np.multiply.outer(hi, lo).ravel()[:m]


def _trajectory_basis(mv: _Moving, n: int, k0: int, k1: int, step: int) -> np.ndarray:
    """The piece's trajectory terms at samples [k0, k1) for sub-blocks of ``step`` samples from
    k0: rows 1, the offset in the sub-block, and the integral of each frequency shape in use at
    u = k / n (a polynomial shape as one small product of exact Taylor terms,
    :func:`_poly_envelope`; the cosine in closed form)."""
    m = k1 - k0
    basis = _work("moving.basis", (2 + len(mv.kinds), m))
    basis[0] = 1.0
    offsets = np.arange(min(step, m), dtype=np.float64)
    for s in range(0, m, step):
        basis[1, s : s + step] = offsets[: m - s]
    for i, kind in enumerate(mv.kinds):
        _shape_integral(kind, k0, k1, n, out=basis[2 + i])
    return basis


def _shape_integral(kind: str, k0: int, k1: int, n: int, out: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """A frequency shape's integral S(u) at u = k / n, k in [k0, k1), times ``scale``: a
    polynomial one as one small product of exact Taylor terms (:func:`_poly_envelope`; the scale
    taken into them), the cosine in closed form."""
    if kind in _INTEGRAL_POLY:
        c = _INTEGRAL_POLY[kind]
        return _poly_envelope(c, k0, k1, n, out=out, taylor=None if scale == 1.0 else scale * _taylor_matrix(c))
    values = FREQ_SHAPES[kind].integral(np.arange(k0, k1, dtype=np.float64) / n)
    if scale != 1.0:
        values *= scale
    if out is None:
        return values
    out[...] = values
    return out


def _moving_step(tones: int) -> int:
    """Samples per sub-block of moving tones: about :data:`SUB_BLOCK` tone-samples, a whole number
    of :data:`HOLD_BLOCK` rows (so of :data:`FAST_WINDOW` windows), within [_MIN_STEP, _MAX_STEP]."""
    return min(_MAX_STEP, max(_MIN_STEP, SUB_BLOCK // tones // HOLD_BLOCK * HOLD_BLOCK))


def _polynomial_envelopes(mv: _Moving, n: int, k0: int, k1: int) -> dict[str, np.ndarray]:
    """The polynomial amplitude envelopes the moving tones' groups use, at samples [k0, k1)."""
    return {kind: _poly_envelope(_PROGRESS_POLY[kind], k0, k1, n, out=_work("envelope." + kind, k1 - k0)) for kind, _ in mv.envelopes if kind in _PROGRESS_POLY}


def _reduced_radians(phase: np.ndarray, out: np.ndarray | None = None, whole: np.ndarray | None = None) -> np.ndarray:
    """The argument every float32 sine here takes: ``phase`` (cycles, exact float64) reduced in
    place to [-1/2, 1/2] cycle, then turned into radians in float64 and rounded once to float32
    (half a float32 step, 2**-23 rad: the first part of :data:`SINE_ERROR_RAD`), into ``out``.
    ``whole``: a float64 buffer like ``phase`` for the whole cycles taken off."""
    phase -= np.rint(phase, out=whole)
    if out is None:
        out = np.empty(phase.shape, dtype=np.float32)
    np.multiply(phase, 2.0 * np.pi, out=out, casting="same_kind")
    return out


def _times_envelope(part: np.ndarray, kind: str, param: float, progress: dict[str, np.ndarray], n: int, s0: int, at: int) -> None:
    """Multiply ``part`` (piece samples from s0; offset ``at`` of the call's polynomial envelopes
    ``progress``) by the envelope of kind and parameter."""
    m = part.size
    if kind in progress:
        part *= progress[kind][at : at + m]
    else:
        part *= _ramp_envelope(kind, param, np.arange(s0, s0 + m, dtype=np.float64) / n, n, s0)


def _add_groups(view: np.ndarray, sums: np.ndarray, mv: _Moving, progress: dict[str, np.ndarray], n: int, s0: int, at: int) -> None:
    """Add a sub-block's group sums (starting at piece sample s0, at offset ``at`` of the call's
    envelopes) to ``view``, each group after the first times its envelope."""
    view += sums[0]
    for g, (kind, param) in enumerate(mv.envelopes, start=1):
        part = sums[g]
        _times_envelope(part, kind, param, progress, n, s0, at)
        view += part


def _shifted_tones(sh: _Shifted, n: int, k0: int, k1: int, out: np.ndarray) -> None:
    """Add samples [k0, k1) of moving tones that share a shape and a frequency change (see
    :class:`_Shifted`). H_g is one real product per amplitude group, as for held tones
    (:func:`_tone_sum`: exact row and column phasors, nothing accumulated), or one for all of
    them when they are proportional (:attr:`_Shifted.proportional`); the common phase
    D S(u) is exact in float64, reduced to [-1/2, 1/2] cycle, turned into radians and rounded once
    to float32, and taken through float32 sine and cosine: each within 2 float32 ulps, so the
    rotation is within (1 + sqrt 2) 2**-23 of exact (:data:`SINE_ERROR_RAD`)."""
    mv = sh.tones
    m, width = k1 - k0, HOLD_BLOCK
    common = _shape_integral(sh.kind, k0, k1, n, out=_work("temp.phase", m), scale=sh.change)
    x = _reduced_radians(common, out=_work("temp.x", m, np.float32), whole=_work("temp.whole", m))
    sin32, cos32 = np.sin(x, out=_work("shift.sin", m, np.float32)), np.cos(x, out=x)
    rows = _row_phasors(mv.f0, mv.p0, k0, -(-m // width), sh.row_steps)
    progress = _polynomial_envelopes(mv, n, k0, k1)
    shared = sh.proportional
    total = None  # proportional groups: one sum times the weighted sum of their envelopes
    if shared is not None:
        weights = shared[1]
        total = _work("shift.total", m)
        total.fill(weights[0])
        for w, (kind, param) in zip(weights[1:], mv.envelopes):
            part = _work("shift.part", m)
            part.fill(w)
            _times_envelope(part, kind, param, progress, n, k0, 0)
            total += part
    amplitudes = [shared[0]] if shared is not None else list(mv.amps)
    lhs = [_lhs(amps[:, None] * rows, f"shift.lhs.{g}") for g, amps in enumerate(amplitudes)]
    im_cols, re_cols = sh.columns
    step = min(m, SHIFT_STEP)
    h_im, h_re = _work("shift.him", step), _work("shift.hre", step)
    for s0 in range(0, m, step):  # in sub-blocks that stay in the core's cache
        s1 = min(m, s0 + step)
        size, r0, r1 = s1 - s0, s0 // width, -(-s1 // width)
        hi, hr, sn, cs = h_im[:size], h_re[:size], sin32[s0:s1], cos32[s0:s1]  # float32 taken exactly into float64 products
        for g, left in enumerate(lhs):
            _product_into(left[r0:r1], im_cols, hi, add=False)
            _product_into(left[r0:r1], re_cols, hr, add=False)
            hi *= cs
            hr *= sn
            hi += hr  # Im(H e^{i psi}) = Re(H) sin(psi) + Im(H) cos(psi)
            if total is not None:
                hi *= total[s0:s1]
            elif g:
                kind, param = mv.envelopes[g - 1]
                _times_envelope(hi, kind, param, progress, n, k0 + s0, s0)
            out[s0:s1] += hi


def _single_moving_tone(mv: _Moving, n: int, k0: int, k1: int, out: np.ndarray) -> None:
    """Add samples [k0, k1) of one tone moving on its own with a polynomial shape. Its phase over
    the call is one polynomial in w = (k - k0) / n: its exact phase at k0 (reduced, float64), plus
    f0 n w, plus D (S(k0 / n + w) - S(k0 / n)) with S expanded exactly at k0 / n (its Taylor
    coefficients); that polynomial is one small product (:func:`_poly_envelope`), below half a
    block of cycles, so float64 keeps it far more exact than the float32 sine that follows (the
    same reduction, rounding and sine as :func:`_moving_tones`, :data:`SINE_ERROR_RAD`)."""
    kind, f0, change = mv.kinds[0], float(mv.f0[0]), float(mv.coef[0, 2])
    u0 = k0 / n
    s = _powers(np.array([u0]), len(_INTEGRAL_POLY[kind]))[0] @ _taylor_matrix(_INTEGRAL_POLY[kind])  # S(u0 + w) in w
    poly = change * s
    poly[0] = (float(mv.p0[0]) + f0 * k0 + change * float(s[0])) % 1.0
    poly[1] += f0 * n
    m = k1 - k0
    phi = _poly_envelope(tuple(poly), 0, m, n, out=_work("temp.phase", m), taylor=_taylor(poly))
    x = _reduced_radians(phi, out=_work("temp.x", m, np.float32), whole=_work("temp.whole", m))
    np.sin(x, out=x)
    np.copyto(phi, x)
    if mv.amps.shape[0] == 1:  # one amplitude group: no envelope
        phi *= mv.amps[0, 0]
        out += phi
        return
    progress = _polynomial_envelopes(mv, n, k0, k1)
    sums = np.multiply.outer(mv.amps[:, 0], phi, out=_work("single.sums", (mv.amps.shape[0], m)))
    _add_groups(out, sums, mv, progress, n, k0, 0)


def _moving_tones(mv: _Moving, n: int, k0: int, k1: int, out: np.ndarray) -> None:
    """Add samples [k0, k1) of tones whose frequency changes over their piece of n samples.

    In sub-blocks of about :data:`SUB_BLOCK` tone-samples (the temporaries, allocated once, stay
    in the core's cache), every tone's phase is one matrix product of the piece's trajectory terms
    (:func:`_trajectory_basis`, made once for all tones) with the tones' coefficients, exact in
    float64 (the constant term is each tone's phase at the sub-block start, reduced exactly); it is
    reduced to [-1/2, 1/2] cycle, and only then turned into radians and float32 and taken through
    float32 ``sin`` (see :data:`SINE_ERROR_RAD`). The sines are summed in float64 per amplitude
    group by a second matrix product, times each group's envelope (a polynomial one made once for
    the whole call, the others per sub-block)."""
    tones = mv.f0.size
    step = _moving_step(tones)
    basis = _trajectory_basis(mv, n, k0, k1, step)
    progress = _polynomial_envelopes(mv, n, k0, k1)
    coef = mv.coef.copy()
    width = min(step, k1 - k0)
    phi = _work("moving.phase", (tones, width))
    whole = _work("moving.whole", (tones, width))
    x = _work("moving.x", (tones, width), np.float32)
    sums = _work("moving.sums", (mv.amps.shape[0], width))
    for s0 in range(k0, k1, step):
        m = min(k1, s0 + step) - s0
        p, w, xs, ss = phi[:, :m], whole[:, :m], x[:, :m], sums[:, :m]
        coef[:, 0] = (mv.p0 + mv.f0 * s0) % 1.0
        np.matmul(coef, basis[:, s0 - k0 : s0 - k0 + m], out=p)
        np.sin(_reduced_radians(p, out=xs, whole=w), out=xs)
        np.copyto(w, xs)
        if tones == 1:  # numpy's product of a single column is far slower than this
            np.multiply.outer(mv.amps[:, 0], w[0], out=ss)
        else:
            np.matmul(mv.amps, w, out=ss)
        _add_groups(out[s0 - k0 : s0 - k0 + m], ss, mv, progress, n, s0, s0 - k0)


def _moving_tones_fast(mv: _Moving, n: int, k0: int, k1: int, out: np.ndarray) -> None:
    """Fast-math variant of :func:`_moving_tones` (same arguments): the exact float64 phase is
    computed only at the start of every :data:`FAST_WINDOW` samples; within a window each tone's
    phase is that anchor plus a float32 offset (one float32 matrix product of the window offset
    and each shape's integral change with the tones' coefficients), reduced, and taken through
    the float32 sine; the sines are summed in float32. Error: :data:`FAST_PHASE_ERROR_RAD`."""
    tones, kinds, w = mv.f0.size, len(mv.kinds), FAST_WINDOW
    step = _moving_step(tones)
    basis = _trajectory_basis(mv, n, k0, k1, step)
    progress = _polynomial_envelopes(mv, n, k0, k1)
    coef = mv.coef.copy()
    coef32 = np.ascontiguousarray(mv.coef[:, 1:], dtype=np.float32)
    amps32 = mv.amps.astype(np.float32)
    width = -(-min(step, k1 - k0) // w) * w
    anchor = _work("fast.anchor", (tones, width // w))
    change = _work("fast.change", width)
    offsets = _work("fast.offsets", (1 + kinds, width), np.float32)
    offsets[0] = np.tile(np.arange(w, dtype=np.float32), width // w)
    x = _work("fast.x", (tones, width), np.float32)
    whole = _work("fast.whole", (tones, width), np.float32)
    sums = _work("fast.sums", (mv.amps.shape[0], width), np.float32)
    for s0 in range(k0, k1, step):
        m = min(k1, s0 + step) - s0
        nw = -(-m // w)
        mm = nw * w
        b = basis[:, s0 - k0 : s0 - k0 + m]
        a = anchor[:, :nw]
        coef[:, 0] = (mv.p0 + mv.f0 * s0) % 1.0
        np.matmul(coef, b[:, ::w], out=a)
        a -= np.rint(a)
        for i in range(kinds):  # each shape's integral from its window's start, exact in float64
            change[:m] = b[2 + i]
            change[m:mm] = b[2 + i, -1]
            windows = change[:mm].reshape(nw, w)
            windows -= windows[:, :1].copy()
            offsets[1 + i, :mm] = change[:mm]
        xs, ws, ss = x[:, :mm], whole[:, :mm], sums[:, :mm]
        np.matmul(coef32, offsets[:, :mm], out=xs)
        xs.reshape(tones, nw, w)[...] += a.astype(np.float32)[:, :, None]
        np.rint(xs, out=ws)
        xs -= ws
        xs *= np.float32(2.0 * np.pi)
        np.sin(xs, out=xs)
        np.matmul(amps32, xs, out=ss)
        _add_groups(out[s0 - k0 : s0 - k0 + m], ss[:, :m], mv, progress, n, s0, s0 - k0)


def _calibrated_tones(tones: tuple[tuple[ToneSpan, float], ...], fs: float, n: int, k0: int, k1: int, out: np.ndarray) -> None:
    """Add samples [k0, k1) of calibrated tones whose power or frequency changes: each tone's
    exact float64 phase and sine, times its RF amplitude at every sample (the asked power's, at
    the frequency of that sample: :meth:`~awgrt.ir.resolved.ToneSpan.amplitude_at`)."""
    k = np.arange(k0, k1, dtype=np.float64)
    u = k / n
    for s, scale in tones:
        phase = phase_cycles(s.f0_hz / fs, s.f1_hz / fs, s.freq_kind, n, k)
        phase += s.phase0_cycles
        phase -= np.rint(phase)
        out += scale * s.amplitude_at(u) * np.sin(2.0 * np.pi * phase)


def _piece_samples(tones: _PieceTones, n: int, k0: int, fs: float, view: np.ndarray, scratch: np.ndarray, fast_math: bool, add: bool) -> None:
    """Samples [k0, k0 + view.size) of one piece's tones (of n samples) written into ``view``, or
    added to it with ``add``. ``scratch``: two float64 rows of at least view.size values. Tones
    that share one amplitude envelope (``tones.common``) are made at constant amplitudes and
    multiplied by it once."""
    if tones.common is None:
        _piece_sum(tones, n, k0, fs, view, scratch, fast_math, add)
        return
    kind, offset, slope = tones.common
    m = view.size
    target = _work("piece.sum", m) if add else view
    _piece_sum(tones, n, k0, fs, target, scratch, fast_math, False)
    taylor = slope * _taylor_matrix(_PROGRESS_POLY[kind])  # offset + slope p(u): its Taylor terms
    taylor[0, 0] += offset
    target *= _poly_envelope(_PROGRESS_POLY[kind], k0, k0 + m, n, out=_work("temp.phase", m), taylor=taylor)
    if add:
        view += target


def _piece_sum(tones: _PieceTones, n: int, k0: int, fs: float, view: np.ndarray, scratch: np.ndarray, fast_math: bool, add: bool) -> None:
    """:func:`_piece_samples` of tones at their own amplitudes (``tones.common`` left out)."""
    k1 = k0 + view.size
    if tones.folded is not None:
        _tone_sum(tones.folded, k0, n, view, add)
        add = True
    u = None  # the piece's normalised time, made once if a ramp needs it
    part, envelope = scratch[0, : view.size], scratch[1, : view.size]
    for kind, param, group in tones.ramps:
        _tone_sum(group, k0, n, part)
        if kind in _PROGRESS_POLY:
            _poly_envelope(_PROGRESS_POLY[kind], k0, k1, n, out=envelope)
        else:
            if u is None:
                u = np.arange(k0, k1, dtype=np.float64) / n
            envelope[...] = _ramp_envelope(kind, param, u, n, k0)
        if add:
            part *= envelope
            view += part
        else:
            np.multiply(part, envelope, out=view)
            add = True
    if not add:
        view.fill(0.0)
    if tones.moving is not None:
        moving = tones.moving
        if moving.f0.size == 1 and moving.kinds[0] in _INTEGRAL_POLY:
            _single_moving_tone(moving, n, k0, k1, view)
        else:
            fast = fast_math and moving.f0.size >= FAST_MIN_TONES
            (_moving_tones_fast if fast else _moving_tones)(moving, n, k0, k1, view)
    for shifted in tones.shifted:
        _shifted_tones(shifted, n, k0, k1, view)
    if tones.calibrated:
        _calibrated_tones(tones.calibrated, fs, n, k0, k1, view)


def _block(
    segment: Segment, b0: int, b1: int, fs: float, hardware: dict[str, int], out: np.ndarray, sorted_tones: dict, scratch: np.ndarray, fast_math: bool = False
) -> None:
    """Float64 samples [b0, b1) of every channel (in the units of the sorted amplitudes: LSB) into ``out``
    (shape (n_hw, b1 - b0)): a channel whose track's pieces cover the block is written piece by
    piece, any other is zeroed first and its pieces added."""
    rows = [hardware[t.channel] for t in segment.tracks]
    covering = {}
    for track, row in zip(segment.tracks, rows):
        covered = sum(max(0, min(b1, p.stop) - max(b0, p.start)) for p in track.pieces)
        covering[row] = covered == b1 - b0 and rows.count(row) == 1
    for row in range(out.shape[0]):
        if not covering.get(row, False):
            out[row].fill(0.0)
    for track, row in zip(segment.tracks, rows):
        for piece in track.pieces:
            lo, hi = max(b0, piece.start), min(b1, piece.stop)
            if lo < hi:
                tones = sorted_tones[(track.channel, piece.start)]
                _piece_samples(tones, piece.n, lo - piece.start, fs, out[row, lo - b0 : hi - b0], scratch, fast_math, not covering[row])


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The synthesis threads, started once (starting threads per segment cost milliseconds)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=64, thread_name_prefix="awgrt-synth"))
        return _POOL[0]


def default_workers() -> int:
    """Threads synthesis uses by default: every core this process may run on, at most 8 (numpy
    releases the GIL in the heavy loops; BLAS is kept to one thread meanwhile)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


@dataclass(frozen=True)
class DigitalBits:
    """Marker lines riding on hardware channel ``channel``: its samples keep ``16 - shift`` bits of
    analog, the value divided by 2**shift and rounded once (the card plays them shifted back up,
    at the same full scale), and each (bit, n) of ``high`` sets that bit for the first n samples
    of the segment (0: never)."""

    channel: int
    shift: int
    high: tuple[tuple[int, int], ...]

    def encode(self, x: np.ndarray, b0: int) -> np.ndarray:
        """The int16 words of float samples ``x`` (LSB of the full 16 bits, clipped) from segment sample ``b0``."""
        top = 1 << (15 - self.shift)
        a = np.clip(np.rint(x / (1 << self.shift)), -top, top - 1).astype(np.int32)
        words = a & ((1 << (16 - self.shift)) - 1)
        for bit, n in self.high:
            words[: max(0, min(n - b0, words.size))] |= 1 << bit
        return words.astype(np.uint16).view(np.int16)


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
    fast_math: bool = False,
    on_block: Callable[[int], object] | None = None,
    digital: DigitalBits | None = None,
) -> SynthResult:
    """Int16 samples of one quantized segment (phases must be assigned), block by block.
    ``workers`` threads (at most one per :data:`MIN_BLOCKS_PER_WORKER` blocks) each take the next block as they finish one (each with its own working
    set, so the memory bound grows by that factor); the samples do not depend on it. ``fast_math``: moving tones
    through :func:`_moving_tones_fast` (error :data:`FAST_PHASE_ERROR_RAD`), never the default.
    ``on_block(samples)`` is called after every block (from the worker threads too).
    ``digital``: marker lines on a channel (:class:`DigitalBits`)."""
    if any(s.phase0_cycles is None for t in segment.tracks for p in t.pieces for s in p.tones):
        raise AWGRTError("segment has unassigned phases: synthesise a quantized IR", segment=segment.name, op="synthesize")
    n = segment.n_samples
    data = np.empty((n, n_hw), dtype=np.int16)
    scale, limit = gain * full_scale, clip * full_scale
    starts = list(range(0, n, BLOCK))
    workers = max(1, min(int(workers), len(starts) // MIN_BLOCKS_PER_WORKER))

    prefetch_phasors(segment, sample_rate_hz)
    sorted_tones = {(t.channel, p.start): _sort_tones(p.tones, sample_rate_hz, p.n, scale) for t in segment.tracks for p in t.pieces}

    pending = iter(starts)
    taking = threading.Lock()

    def take() -> int | None:
        with taking:
            return next(pending, None)

    def run() -> tuple[np.ndarray, np.ndarray]:
        peak = np.zeros(n_hw)
        clipped = np.zeros(n_hw, dtype=np.int64)
        buf = _work("block", (n_hw, min(n, BLOCK)))
        scratch = _work("scratch", (2, min(n, BLOCK)))
        while (b0 := take()) is not None:
            b1 = min(n, b0 + BLOCK)
            x = buf[:, : b1 - b0]
            _block(segment, b0, b1, sample_rate_hz, hardware, x, sorted_tones, scratch, fast_math)  # in LSB: amplitudes carry the scale
            top = np.maximum(x.max(axis=1), -x.min(axis=1))
            np.maximum(peak, top, out=peak)
            if top.max() > limit:  # only then is anything counted and clipped
                clipped += np.count_nonzero(x > limit, axis=1) + np.count_nonzero(x < -limit, axis=1)
                np.clip(x, -limit, limit, out=x)
            if digital is not None:  # before rounding: the marked channel is rounded once, at its own resolution
                data[b0:b1, digital.channel] = digital.encode(x[digital.channel], b0)
            np.rint(x, out=x)
            for ch in range(n_hw):  # row by row: a transposed cast of the whole block is 4x slower
                if digital is None or ch != digital.channel:
                    data[b0:b1, ch] = x[ch]
            if on_block is not None:  # progress within the segment (thread-safe callers only)
                on_block(b1 - b0)
        return peak, clipped

    # this thread and workers - 1 of the pool's (kept between calls) each take the next block as
    # they finish one, so a core that another process keeps busy holds nothing up
    futures = [_pool().submit(run) for _ in range(workers - 1)]
    parts = [run()] + [f.result() for f in futures]
    peak = parts[0][0] if len(parts) == 1 else np.max([p for p, _ in parts], axis=0)
    clipped = parts[0][1] if len(parts) == 1 else np.sum([c for _, c in parts], axis=0)
    if not np.isfinite(peak).all():
        raise AWGRTError(
            f"synthesis produced non-finite samples (peak {peak.max()}); no int16 can represent them",
            segment=segment.name,
            op="synthesize",
            value=float(peak.max()),
        )
    data.flags.writeable = False
    # a sample rounds to non-zero exactly when its scaled value exceeds 0.5 (0.5 itself rounds to even)
    return SynthResult(data, tuple(int(c) for c in clipped), tuple(float(p) / full_scale for p in peak), tuple(bool(p > 0.5) for p in peak))
