"""The precomputed pieces a rearrangement shot is summed from, per channel.

A shot's move segment (``n_samples`` long) is, per channel, in two parts:

- samples [0, R), the **ramp-off**: every load tone continues from the load hold (frequency,
  phase, amplitude as the hold leaves them); the tones of empty sites and of spare atoms ramp to
  zero (``move.ramp_kind``; on a calibrated channel the optical power ramps). Made as the sum of
  all load tones held (``held``, one row) minus, per tone going off, the difference between
  held and fading (``fade``, one row per site);
- samples [R, n_samples), the **move**: each atom's tone goes from its site to its target along
  ``move.kind`` over T samples, then holds the target frequency to the segment's end. Its
  amplitude goes from the site's to the target's along the same shape (on a calibrated channel
  the optical power does, the RF amplitude following the calibration at each instant's
  frequency). One row per (site, target) pair within reach (``pairs``, indexed by ``pair_row``).

Phase: a tone's phase at the move's start is exactly where the load hold left it (the hold
wraps seamlessly, so that is its start phase plus the ramp-off's advance). At the segment's end
it must be the target hold's start phase; the move's exact advance is computed and the
difference e (|e| <= 1/2 cycle) is added along the move's own shape, e s(k / T): a frequency
deviation of at most max s' x e / T (0.94 / T Hz for min_jerk; 9.4 kHz for a 100 us move), zero
at both ends. Phase and amplitude are continuous at both joins, to float32 rounding.

**Factored tables.** Where every site and target tone has the same RF amplitude (an uncalibrated
array of uniform amplitude), a pair's move row needs no row of its own: its phase is a site part
plus a target part. With P(k) = T S(k / T) + max(k - T, 0) (S the shape's integral) the phase in
cycles is start_s + f_s/fs (k - P(k)) + g_t/fs P(k) + e s(u), and the phase matching e splits
as b_t - a_s, each part reduced to [-1/2, 1/2) cycle (so |e| < 1 cycle: twice the pair tables'
bound). A move row is then Im(site_phasors[s] x target_phasors[t]), one complex product per atom
per sample instead of one addition, from (sites + targets) rows instead of sites x targets.
``kind="auto"`` takes the pair tables while they fit within a memory budget and factored ones
(where allowed) beyond it.

**Double rows.** Neighbouring atoms usually move together: sites s and s + 1 to targets j and
j + 1 (a run of loaded sites compacted in one piece). Where the pair tables leave room in the
memory budget, each such couple also gets one row holding the sum of its two rows (``doubles``,
indexed by ``double_row[s, j]``), so a shot reads one row for it instead of two: at 50-60 %
fill about a third fewer rows, the same sums to the last bit (a float32 addition of the same
two rows).

Unfilled targets leave the target hold without their tone, so partial target holds are summed
from one row per target (``target_rows``) over the target hold's length.

Every row is float32 in LSB (amplitude x gain x full scale), computed in float64 with phases
reduced to [-1/2, 1/2) cycle before the sine. Memory is stated by :attr:`ChannelTables.nbytes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..calibration import AODCalibration
from ..errors import ProgramError
from ..ir.resolved import Optical, ToneSpan
from ..ir.shapes import FREQ_SHAPES, phase_cycles, span_phase_advance

#: The largest slope of each move shape's progress, s'(u): a move of D Hz over T s peaks at s' D / T Hz/s.
PEAK_SLOPE = {"linear": 1.0, "min_jerk": 1.875, "smoothstep": 1.5, "cosine": math.pi / 2}


@dataclass(frozen=True)
class Tone:
    """A hold's tone as the card plays it: frequency (Hz), start phase (cycles), RF amplitude
    (fraction of full scale) and, on a calibrated channel, its optical power."""

    freq_hz: float
    phase_cycles: float
    amp: float
    power: float | None = None


@dataclass(frozen=True)
class ChannelTables:
    """One channel's precomputed rows (see module doc), float32 in LSB."""

    ramp_samples: int
    move_samples: int
    held: np.ndarray  # (R,)
    fade: np.ndarray  # (sites, R)
    pairs: np.ndarray  # (pairs, n_samples - R); (0, n_samples - R) when factored
    pair_row: np.ndarray  # (sites, targets) int32, -1 where out of reach
    distance_hz: np.ndarray  # (sites, targets), inf where out of reach
    target_rows: np.ndarray  # (targets, target hold samples)
    correction_hz: float  # the largest frequency deviation any phase correction makes
    peak_lsb: float = np.inf  # a bound on |move segment| whatever the shot (no clip check needed below the clip level)
    site_phasors: np.ndarray | None = None  # factored: (sites, n_samples - R) complex64, amplitude in LSB
    target_phasors: np.ndarray | None = None  # factored: (targets, n_samples - R) complex64
    doubles: np.ndarray | None = None  # (couples, n_samples - R): pairs[pair_row[s, j]] + pairs[pair_row[s + 1, j + 1]]
    double_row: np.ndarray | None = None  # (sites, targets) int32, -1 where there is none

    @property
    def factored(self) -> bool:
        return self.site_phasors is not None

    @property
    def nbytes(self) -> int:
        arrays: list[np.ndarray | None] = [self.held, self.fade, self.pairs, self.pair_row, self.distance_hz, self.target_rows]
        arrays += [self.site_phasors, self.target_phasors, self.doubles, self.double_row]
        return sum(a.nbytes for a in arrays if a is not None)

    def move_rows(self, moves: list[tuple[int, int]]) -> list[np.ndarray]:
        """The pair-table rows whose sum is the move part of ``moves`` ((site, target index)
        in order along the array), a double row for each couple of neighbours that has one."""
        rows = []
        i, n = 0, len(moves)
        while i < n:
            s, j = moves[i]
            if self.double_row is not None and i + 1 < n and moves[i + 1] == (s + 1, j + 1) and (d := self.double_row[s, j]) >= 0:
                rows.append(self.doubles[d])  # type: ignore[index]
                i += 2
            else:
                rows.append(self.pairs[self.pair_row[s, j]])
                i += 1
        return rows


#: Table kinds: per-pair rows, factored site x target phasors, or the pairs within a memory budget.
TABLE_KINDS = ("auto", "pairs", "factored")
#: ``"auto"`` takes pair tables up to this many bytes per channel.
PAIR_BUDGET_BYTES = 512 * 2**20


def factorable(sites: list[Tone], targets: list[Tone], calibration: AODCalibration | None) -> bool:
    """Whether the factored tables apply: one RF amplitude for every tone, no calibration."""
    amps = {t.amp for t in sites} | {t.amp for t in targets}
    return calibration is None and len(amps) == 1


def pairs_within_reach(site_hz: np.ndarray, target_hz: np.ndarray, reach_hz: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The distance (Hz) of every site to every target, inf beyond ``reach_hz``, and the row each
    pair within reach gets in a pair table (-1 for the others), pairs numbered site by site."""
    distance = np.abs(np.asarray(site_hz, dtype=np.float64)[:, None] - np.asarray(target_hz, dtype=np.float64)[None, :])
    if reach_hz is not None:
        distance[distance > reach_hz * (1 + 1e-12)] = np.inf
    within = np.isfinite(distance)
    pair_row = np.full(distance.shape, -1, np.int32)
    pair_row[within] = np.arange(int(within.sum()), dtype=np.int32)
    return distance, pair_row


def _sine_rows(cycles: np.ndarray, amps: np.ndarray, lsb: float) -> np.ndarray:
    """lsb x amps x sin(2 pi cycles), with the phase reduced before the sine, as float32."""
    reduced = cycles - np.rint(cycles)
    return (lsb * amps * np.sin(2.0 * np.pi * reduced)).astype(np.float32)


def sum_rows(rows: list[np.ndarray], out: np.ndarray, scratch: np.ndarray) -> None:
    """``out`` = the sum of ``rows`` (at least one; float32 rows of out's length), two rows per
    addition into ``scratch``: two streams from memory at once, about a fifth faster than one
    row at a time for rows that come from main memory."""
    rows = list(rows)
    if len(rows) % 2:
        np.copyto(out, rows.pop())
    else:
        np.add(rows.pop(), rows.pop(), out=out)
    for a, b in zip(rows[::2], rows[1::2]):
        np.add(a, b, out=scratch)
        out += scratch


def _amplitude(f0: float, f1: float, kind: str, a0: float, a1: float, p: tuple[float, float] | None, cal: AODCalibration | None, u: np.ndarray) -> np.ndarray:
    """RF amplitude along a span (the compiler's own rule: :meth:`ToneSpan.amplitude_at`)."""
    optical = Optical(p[0], p[1], cal) if cal is not None and p is not None else None
    return ToneSpan(0, f0, f1, kind, a0, a1, kind, optical=optical).amplitude_at(u)


def build_tables(
    sites: list[Tone],
    targets: list[Tone],
    *,
    sample_rate_hz: float,
    n_samples: int,
    ramp_samples: int,
    move_samples: int,
    kind: str,
    ramp_kind: str,
    reach_hz: float | None,
    target_samples: int,
    lsb: float,
    calibration: AODCalibration | None,
    kind_of_tables: str = "auto",
    progress: Callable[[float], None] = lambda _: None,
) -> ChannelTables:
    """The tables of one channel (see module doc); ``progress(units)`` is told of each site done.
    ``kind_of_tables``: one of :data:`TABLE_KINDS`."""
    fs = sample_rate_hz
    R, T = ramp_samples, move_samples
    L = n_samples - R
    k_ramp = np.arange(R, dtype=np.float64)
    held = np.zeros(R, np.float64)
    fade = np.empty((len(sites), R), np.float32)
    for i, s in enumerate(sites):
        cyc = s.phase_cycles + (s.freq_hz / fs) * k_ramp
        sine = np.sin(2.0 * np.pi * (cyc - np.rint(cyc)))
        off = _amplitude(s.freq_hz, s.freq_hz, ramp_kind, s.amp, 0.0, (s.power, 0.0) if s.power is not None else None, calibration, k_ramp / R)
        held += lsb * s.amp * sine
        fade[i] = (lsb * (s.amp - off) * sine).astype(np.float32)
    distance, pair_row = pairs_within_reach(np.array([s.freq_hz for s in sites]), np.array([t.freq_hz for t in targets]), reach_hz)
    n_pairs = int((pair_row >= 0).sum())
    k = np.arange(L, dtype=np.float64)
    k_move = np.minimum(k, T)
    after = np.maximum(k - T, 0.0)
    u = k_move / T
    shape = FREQ_SHAPES[kind].progress(u)
    n_moving = min(len(sites), len(targets))
    common = dict(ramp_samples=R, move_samples=T, held=held.astype(np.float32), fade=fade, pair_row=pair_row, distance_hz=distance)
    k_hold = np.arange(target_samples, dtype=np.float64)
    target_rows = np.empty((len(targets), target_samples), np.float32)
    for j, t in enumerate(targets):
        target_rows[j] = _sine_rows(t.phase_cycles + (t.freq_hz / fs) * k_hold, np.asarray(t.amp), lsb)
    pair_bytes = n_pairs * L * 4
    if kind_of_tables == "factored" or (kind_of_tables == "auto" and pair_bytes > PAIR_BUDGET_BYTES and factorable(sites, targets, calibration)):
        if not factorable(sites, targets, calibration):
            raise ProgramError("factored move tables need one RF amplitude for every site and target, uncalibrated", op="prepare", value=kind_of_tables)
        # P(k): the target's share of the move's phase; the site's is k - P(k)
        share = T * FREQ_SHAPES[kind].integral(u) + after
        share_end = T * float(FREQ_SHAPES[kind].integral(np.asarray(1.0))) + (L - T)
        site_ph = np.empty((len(sites), L), np.complex64)
        alphas = []
        for i, s in enumerate(sites):
            start = s.phase_cycles + (s.freq_hz / fs) * R
            f0 = s.freq_hz / fs
            alpha = start + f0 * (L - share_end)
            alpha -= round(alpha)
            cyc = start + f0 * (k - share) - alpha * shape
            cyc -= np.rint(cyc)
            site_ph[i] = (lsb * s.amp) * np.exp(2j * np.pi * cyc)
            alphas.append(alpha)
            progress(0.5)
        target_ph = np.empty((len(targets), L), np.complex64)
        betas = []
        for j, t in enumerate(targets):
            f1 = t.freq_hz / fs
            beta = t.phase_cycles - f1 * share_end
            beta -= round(beta)
            cyc = f1 * share + beta * shape
            cyc -= np.rint(cyc)
            target_ph[j] = np.exp(2j * np.pi * cyc)
            betas.append(beta)
        for _ in sites:
            progress(0.5)
        a, b = np.array(alphas), np.array(betas)
        miss = np.abs(b[None, :] - a[:, None])[pair_row >= 0]
        return ChannelTables(
            **common,  # type: ignore[arg-type]
            pairs=np.empty((0, L), np.float32),
            target_rows=target_rows,
            correction_hz=PEAK_SLOPE[kind] * float(miss.max(initial=0.0)) * fs / T,
            peak_lsb=max(lsb * sum(t.amp for t in sites), n_moving * lsb * sites[0].amp),
            site_phasors=site_ph,
            target_phasors=target_ph,
        )
    pairs = np.empty((n_pairs, L), np.float32)
    correction = 0.0
    for i, s in enumerate(sites):
        start = s.phase_cycles + (s.freq_hz / fs) * R  # where the ramp-off leaves the tone
        for j in (int(j) for j in np.flatnonzero(pair_row[i] >= 0)):
            t = targets[j]
            f0, f1 = s.freq_hz / fs, t.freq_hz / fs
            end = start + span_phase_advance(f0, f1, kind, T) + f1 * (L - T)
            miss = t.phase_cycles - end
            miss -= round(miss)
            cyc = start + phase_cycles(f0, f1, kind, T, k_move) + f1 * after + miss * shape
            p = (s.power, t.power) if s.power is not None and t.power is not None else None
            amp = _amplitude(s.freq_hz, t.freq_hz, kind, s.amp, t.amp, p, calibration, u)
            pairs[pair_row[i, j]] = _sine_rows(cyc, amp, lsb)
            correction = max(correction, abs(miss))
        progress(1.0)
    row_peak = np.sort(np.abs(pairs).max(axis=1, initial=0.0))[::-1][:n_moving].sum() if n_pairs else 0.0
    peak = max(lsb * sum(t.amp for t in sites), float(row_peak))
    doubles, double_row = _double_rows(pairs, pair_row, budget=PAIR_BUDGET_BYTES - pair_bytes)
    return ChannelTables(
        **common,  # type: ignore[arg-type]
        pairs=pairs,
        target_rows=target_rows,
        correction_hz=PEAK_SLOPE[kind] * correction * fs / T,
        peak_lsb=peak,
        doubles=doubles,
        double_row=double_row,
    )


def _double_rows(pairs: np.ndarray, pair_row: np.ndarray, budget: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The double rows (see module doc) and their index, or (None, None) where they would take
    more than ``budget`` bytes."""
    both = (pair_row[:-1, :-1] >= 0) & (pair_row[1:, 1:] >= 0)
    n = int(both.sum())
    if n == 0 or n * pairs.shape[1] * pairs.itemsize > budget:
        return None, None
    double_row = np.full(pair_row.shape, -1, np.int32)
    double_row[:-1, :-1][both] = np.arange(n, dtype=np.int32)
    doubles = np.empty((n, pairs.shape[1]), np.float32)
    for d, (s, j) in enumerate(zip(*np.nonzero(both))):
        np.add(pairs[pair_row[s, j]], pairs[pair_row[s + 1, j + 1]], out=doubles[d])
    return doubles, double_row
