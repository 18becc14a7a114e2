"""2D rearrangement row by row, with a crossed pair of AODs as a mobile tweezer.

The atoms sit in a static 2D array of traps (an SLM pattern or a second AOD pair), column c at
the X AOD frequency ``x_hz[c]`` and row r at the Y frequency ``y_hz[r]``. The mobile tweezers
are the crossed X/Y AODs: while the atoms are loaded and imaged they are silent; a shot then
takes the target rows one after the other. For each row that needs it, one Y tone at that row's
frequency selects it, and X tones at the row's atoms ramp up (picking them up), move along the
row to the target columns (1D compaction: :func:`~awgrt.rearrange.plan_1d`'s order-keeping
rule, least distance, no crossing), and ramp down (dropping them into the static traps), the Y
tone ramping with them. Rows whose atoms are all in place already are skipped; the blocks of the
rows that move are played back to back, and the rest of the move slot is silent.

Every tone starts and ends at zero amplitude, so there is no phase to carry between rows; within
a row each tone's phase is exact (closed form, float64, reduced before the sine). The X tones
start with Newman phases (column c at c^2 / (2 columns) cycles) so that their sum stays low.
The card protocol (silent load and target holds, two cycles, the gate step, the writes while
the card plays) is :mod:`awgrt.rearrange.cycles`'s. Tables: one float32 row per (column,
target column) pair within reach for X and one per target row for Y, each one block long.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._progress import Progress
from ..errors import ProgramError
from ..ir.digest import digest_of
from ..ir.intent import finite_real
from ..ir.shapes import FREQ_SHAPES, phase_cycles
from ..program import CompiledSegment, CompiledSequenceProgram
from ..runtime import Runtime
from .cycles import CycledCard
from .plan import Plan1D, assign
from .realtime import Move, _floats
from .tables import _sine_rows, pairs_within_reach, sum_rows


def _increasing(values: object, what: str) -> tuple[float, ...]:
    hz = np.asarray(values, dtype=np.float64)
    if hz.ndim != 1 or hz.size < 1 or not np.all(np.isfinite(hz)) or np.any(np.diff(hz) <= 0) or hz[0] <= 0:
        raise ProgramError(f"{what} must be positive, finite and increasing", op="Grid2D", value=hz.size)
    return tuple(float(v) for v in hz)


def _indices(values: object, n: int, what: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)  # type: ignore[attr-defined]
    if not out or any(b <= a for a, b in zip(out, out[1:])) or out[0] < 0 or out[-1] >= n:
        raise ProgramError(f"{what} must be increasing indices in 0..{n - 1}", op="Grid2D", value=out[:8])
    return out


@dataclass(frozen=True)
class Grid2D:
    """A static 2D array and the mobile crossed AODs that rearrange it (see module doc):
    column and row frequencies (Hz, increasing), the target columns and rows (indices;
    default rows: all), the X tones' RF amplitude (fraction of full scale, one for all or
    one per column) and the Y tone's, the logical channels of the two AODs, and the ``move``
    (``ramp_s``: the pick-up and the drop ramps)."""

    x_hz: tuple[float, ...]
    y_hz: tuple[float, ...]
    target_cols: tuple[int, ...]
    target_rows: tuple[int, ...] | None = None
    amp_x: float | tuple[float, ...] = 0.05
    amp_y: float = 0.3
    x_channel: str = "X"
    y_channel: str = "Y"
    move: Move = field(default_factory=Move)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x_hz", _increasing(self.x_hz, "x_hz"))
        object.__setattr__(self, "y_hz", _increasing(self.y_hz, "y_hz"))
        object.__setattr__(self, "target_cols", _indices(self.target_cols, len(self.x_hz), "target_cols"))
        rows = range(len(self.y_hz)) if self.target_rows is None else self.target_rows
        object.__setattr__(self, "target_rows", _indices(rows, len(self.y_hz), "target_rows"))
        object.__setattr__(self, "amp_x", _floats(self.amp_x, len(self.x_hz), "amp_x"))
        if not finite_real(self.amp_y) or not 0 < self.amp_y <= 1 or any(not 0 <= a <= 1 for a in self.amp_x):  # type: ignore[union-attr]
            raise ProgramError("amplitudes must be fractions of full scale in 0..1 (amp_y > 0)", op="Grid2D", value=self.amp_y)
        if self.x_channel == self.y_channel:
            raise ProgramError("x_channel and y_channel must differ", op="Grid2D", value=self.x_channel)
        if not isinstance(self.move, Move):
            raise ProgramError("move must be a Move", op="Grid2D", value=type(self.move).__name__)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the occupancy a shot takes."""
        return len(self.y_hz), len(self.x_hz)


@dataclass(frozen=True)
class RowShotReport:
    """What one :meth:`RowRearranger.shot` did: the plan of each target row, the rows moved in
    the order played (one block each), the cycle armed, what was written and the seconds per
    stage (plan, synth, write, total)."""

    plans: Mapping[int, Plan1D]
    rows_moved: tuple[int, ...]
    cycle: str
    slots_written: tuple[int, ...]
    steps_written: tuple[int, ...]
    bytes_written: int
    timings_s: Mapping[str, float]

    @property
    def complete(self) -> bool:
        return all(p.complete for p in self.plans.values())

    def __str__(self) -> str:
        unfilled = sum(len(p.unfilled) for p in self.plans.values())
        t = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in self.timings_s.items())
        return f"cycle {self.cycle}: moved rows {list(self.rows_moved)}, {unfilled} target sites left empty; wrote {self.bytes_written} bytes; {t}"


class RowRearranger(CycledCard):
    """Row-by-row 2D rearrangement on one card (see module doc). ``idle_s``: one pass of the
    silent hold the card loops in between shots (a trigger ends it at the end of a pass, and
    the gate step plays one more: the latency from trigger to the first row)."""

    def __init__(self, grid: Grid2D, *, sample_rate_hz: float = 625e6, idle_s: float = 2e-6) -> None:
        super().__init__()
        if not isinstance(grid, Grid2D):
            raise ProgramError("grid must be a Grid2D", op="RowRearranger", value=type(grid).__name__)
        for name, v in (("sample_rate_hz", sample_rate_hz), ("idle_s", idle_s)):
            if not finite_real(v) or v <= 0:
                raise ProgramError(f"{name}={v!r} must be a number > 0", op="RowRearranger", value=v)
        self.grid, self.sample_rate_hz, self.idle_s = grid, float(sample_rate_hz), float(idle_s)
        self.block_samples = 0
        self.table_bytes = 0

    def prepare(self, runtime: Runtime, *, start: bool = True) -> float:
        """Build the tables and upload the card (silent, both cycles disarmed); start it unless
        ``start`` is False. Returns the seconds it took."""
        if not isinstance(runtime, Runtime):
            raise ProgramError("prepare() needs a Runtime", op="prepare", value=type(runtime).__name__)
        t_start = time.perf_counter()
        g, card, fs = self.grid, runtime.backend.card, self.sample_rate_hz
        mapping = dict(runtime.mapping) if runtime.mapping else {g.x_channel: 0, g.y_channel: 1}
        if set(mapping) != {g.x_channel, g.y_channel}:
            raise ProgramError(f"the runtime maps {sorted(mapping)}; the grid's channels are {g.x_channel!r} and {g.y_channel!r}", op="prepare")
        n_ch = max(mapping.values()) + 1
        n_ch = min(c for c in card.channel_counts if c >= n_ch)
        problem = card.sample_rate_problem(fs)
        if problem:
            raise ProgramError(problem, op="prepare", value=fs)
        gran, least = card.segment_granularity, card.min_segment_length(n_ch)
        idle = max(least, -(-round(self.idle_s * fs) // gran) * gran)
        ramp, move = round(g.move.ramp_s * fs), round(g.move.time_s * fs)
        if ramp < 1 or move < 2:
            raise ProgramError(f"the ramps ({ramp}) and the move ({move}) must last at least 1 and 2 samples", op="prepare", value=(ramp, move))
        block = 2 * ramp + move
        n = max(least, -(-(block * len(g.target_rows)) // gran) * gran)  # type: ignore[arg-type]
        self.block_samples = block
        lsb = runtime.gain * runtime.full_scale
        self._lsb_top = runtime.clip * runtime.full_scale
        if lsb * g.amp_y > self._lsb_top:
            raise ProgramError(f"amp_y={g.amp_y} x gain {runtime.gain} is above the clip level {runtime.clip}", op="prepare", value=g.amp_y)
        self._columns = (mapping[g.x_channel], mapping[g.y_channel])
        k = np.arange(block, dtype=np.float64)
        envelope = np.ones(block)
        envelope[:ramp] = FREQ_SHAPES[g.move.ramp_kind].progress(k[:ramp] / ramp)
        envelope[ramp + move :] = 1.0 - FREQ_SHAPES[g.move.ramp_kind].progress((k[ramp + move :] - ramp - move) / ramp)
        tgt = np.asarray([g.x_hz[c] for c in g.target_cols])
        distance, pair_row = pairs_within_reach(np.asarray(g.x_hz), tgt, g.move.reach_hz)
        self._distance, self._pair_row = distance, pair_row
        self._col_index = {c: j for j, c in enumerate(g.target_cols)}
        pairs = np.empty((int((pair_row >= 0).sum()), block), np.float32)
        km = np.clip(k - ramp, 0, move)
        after = np.maximum(k - ramp - move, 0.0)
        n_cols = len(g.x_hz)
        with Progress(n_cols, "row rearrangement tables") as bar:
            for i in range(n_cols):
                phase0 = i * i / (2.0 * n_cols)  # Newman phases
                f0 = g.x_hz[i] / fs
                for j in (int(j) for j in np.flatnonzero(pair_row[i] >= 0)):
                    f1 = tgt[j] / fs
                    cyc = phase0 + f0 * np.minimum(k, ramp) + phase_cycles(f0, f1, g.move.kind, move, km) + f1 * after
                    pairs[pair_row[i, j]] = _sine_rows(cyc, g.amp_x[i] * envelope, lsb)  # type: ignore[index]
                bar.advance()
        self._pairs = pairs
        ys = np.empty((len(g.y_hz), block), np.float32)
        for r, f in enumerate(g.y_hz):
            ys[r] = _sine_rows((f / fs) * k, g.amp_y * envelope, lsb)
        self._ys = ys
        self._work, self._scratch = np.empty(block, np.float32), np.empty(block, np.float32)
        self.table_bytes = pairs.nbytes + ys.nbytes + distance.nbytes + pair_row.nbytes
        # the bound on |X| in a block: the largest amplitudes of as many tones as can move
        self._x_bound = lsb * float(np.sort(np.asarray(g.amp_x))[::-1][: len(g.target_cols)].sum())
        silent = np.zeros((idle, n_ch), np.int16)
        silent.flags.writeable = False
        hold = CompiledSegment("idle", silent, digest_of("row rearranger idle", idle, n_ch), ("idle",))
        like = CompiledSequenceProgram(fs, n_ch, (hold,), (), hardware_channels=mapping, card=card)
        self._digest = digest_of("row rearranger", like.digest, block, n, self.table_bytes, repr(g))
        self._upload(runtime, hold, hold, n_move=n, like=like, start=start)
        return time.perf_counter() - t_start

    def shot(self, occupancy: np.ndarray) -> RowShotReport:
        """Plan each target row's compaction for ``occupancy`` (booleans, shape (rows, columns)),
        write the blocks of the rows that move into the card and arm them while it idles (see
        module doc). Returns a :class:`RowShotReport`."""
        t_call = time.perf_counter()
        cycle = self._next_cycle()
        occ = np.asarray(occupancy)
        if occ.dtype != np.bool_ or occ.shape != self.grid.shape:
            raise ProgramError(f"occupancy must be booleans of shape {self.grid.shape}, got {occ.dtype} {occ.shape}", op="shot", value=occ.shape)
        t0 = time.perf_counter()
        plans = {r: assign(occ[r], self.grid.target_cols, self._distance) for r in self.grid.target_rows}  # type: ignore[union-attr]
        moving = tuple(r for r, p in plans.items() if any(s != t for s, t in p.moves))
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        rt = self.runtime
        assert rt is not None and rt.program is not None
        out = np.zeros((self.move_samples, rt.program.n_channels), np.int16)
        col_x, col_y = self._columns
        index = self._col_index
        b, w = self.block_samples, self._work
        for n_block, r in enumerate(moving):
            sum_rows([self._pairs[self._pair_row[s, index[t]]] for s, t in plans[r].moves], w, self._scratch)
            if self._x_bound > self._lsb_top and float(np.abs(w).max()) > self._lsb_top:
                raise ProgramError(f"row {r}: the X tones' sum exceeds the clip level: lower amp_x", op="shot", value=r)
            np.rint(w, out=w)
            out[n_block * b : (n_block + 1) * b, col_x] = w
            out[n_block * b : (n_block + 1) * b, col_y] = np.rint(self._ys[r])
        out.flags.writeable = False
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        key = b"".join(np.asarray(plans[r].moves, np.int32).tobytes() + b";" for r in moving)
        slots, written = self._write(cycle, out, digest_of("row rearranger move", self._digest, key), 0, None)
        t_write = time.perf_counter() - t0
        return RowShotReport(
            plans=plans,
            rows_moved=moving,
            cycle="AB"[cycle],
            slots_written=slots,
            steps_written=written,
            bytes_written=out.nbytes,
            timings_s={"plan": t_plan, "synth": t_synth, "write": t_write, "total": time.perf_counter() - t_call},
        )


__all__ = ["Grid2D", "RowRearranger", "RowShotReport"]
