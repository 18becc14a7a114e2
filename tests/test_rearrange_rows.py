"""2D row-by-row rearrangement, judged on the card's output decoded block by block.

Each moved row's block is decoded independently of awgrt: on Y exactly the row's tone (ramped up
from and down to zero), on X exactly the planned atoms' tones, starting at their columns after
the pick-up ramp and ending at their target columns before the drop, following the asked track in
between; the plan is checked against an exhaustive search, rows already in place play no block,
and the slot after the last block is silent.
"""

from __future__ import annotations

import numpy as np
import pytest

from awgrt import Runtime
from awgrt.backends import SimBackend, SpcmBackend
from awgrt.errors import ProgramError
from awgrt.rearrange import Grid2D, Move, RowRearranger
from tests.rearrange_oracle import _design, _linear, best_assignment
from tests.reference import amplitude as ref_amplitude
from tests.reference import progress_integral

FS = 625e6
X_HZ = tuple(80e6 + 1e6 * i for i in range(10))
Y_HZ = tuple(90e6 + 1.5e6 * i for i in range(6))
COLS = tuple(range(3, 7))
MOVE = Move(time_s=20e-6, ramp_s=3e-6)
AMP_X, AMP_Y = 0.05, 0.3
GRID = Grid2D(X_HZ, Y_HZ, COLS, target_rows=(1, 2, 3, 4), amp_x=AMP_X, amp_y=AMP_Y, move=MOVE)


def check_block(x: np.ndarray, y: np.ndarray, row: int, moves: list[tuple[int, int]]) -> list[str]:
    out = []
    lsb = 32767
    R, T = round(MOVE.ramp_s * FS), round(MOVE.time_s * FS)
    a, ay = AMP_X * lsb, AMP_Y * lsb
    if max(abs(float(x[0])), abs(float(x[-1])), abs(float(y[0])), abs(float(y[-1]))) > 2:
        out.append(f"row {row}: the block does not start and end at zero")
    w = round(1e-6 * FS)
    cols = np.asarray(X_HZ)
    src = {s for s, _ in moves}
    dst = {t for _, t in moves}
    n = np.arange(R, R + w)  # just after pick-up: the atoms' own columns (barely moved yet)
    amp, _, res = _linear(x[R : R + w].astype(float), _design(cols, n, FS))
    for c in range(cols.size):
        want = a if c in src else 0.0
        if abs(amp[c] - want) > 0.02 * a:
            out.append(f"row {row}, column {c}: {amp[c]:.1f} LSB after pick-up, asked {want:.1f}")
    n = np.arange(R + T - w, R + T)  # just before the drop: the target columns
    amp, _, res = _linear(x[R + T - w : R + T].astype(float), _design(cols, n, FS))
    for c in range(cols.size):
        want = a if c in dst else 0.0
        if abs(amp[c] - want) > 0.02 * a:
            out.append(f"row {row}, column {c}: {amp[c]:.1f} LSB before the drop, asked {want:.1f}")
    k = np.arange(x.size)
    u = np.clip((k - R) / T, 0.0, 1.0)
    for s, t in moves:  # each atom along the asked track
        f0, f1 = X_HZ[s], X_HZ[t]
        cyc = (f0 * np.minimum(k, R) + f0 * np.clip(k - R, 0, T) + (f1 - f0) * T * progress_integral("min_jerk", u) + f1 * np.maximum(k - R - T, 0)) / FS
        z = x.astype(float) * np.exp(-2j * np.pi * cyc)
        win = np.blackman(round(4e-6 * FS))
        centres = np.linspace(R + win.size // 2, R + T - win.size // 2, 12).astype(int)
        v = np.array([np.dot(win, z[c - win.size // 2 : c - win.size // 2 + win.size]) / win.sum() for c in centres])
        if np.max(np.abs(2 * np.abs(v) - a)) > 0.02 * a:
            out.append(f"row {row}: atom {s} -> {t} off its track (amplitude {2 * np.abs(v).min():.1f} .. {2 * np.abs(v).max():.1f})")
        err = np.diff(np.unwrap(np.angle(v))) / np.diff(centres) * FS / (2 * np.pi)
        if np.max(np.abs(err)) > 3e3:
            out.append(f"row {row}: atom {s} -> {t} {np.max(np.abs(err)) / 1e3:.1f} kHz off its track")
    mid = x.size // 2
    n = np.arange(mid - w, mid + w)
    amp_y, _, _ = _linear(y[mid - w : mid + w].astype(float), _design(np.asarray(Y_HZ), n, FS))
    for r in range(len(Y_HZ)):
        want = ay if r == row else 0.0
        if abs(amp_y[r] - want) > 0.01 * ay:
            out.append(f"Y in row {row}'s block: row {r} tone {amp_y[r]:.1f} LSB, asked {want:.1f}")
    env = ref_amplitude(0.0, 1.0, "min_jerk", np.arange(R) / R)
    overshoot = np.max(np.abs(y[:R] / ay)) > 1.0 + 1e-3
    top = abs(np.max(np.abs(y[R - w // 4 : R])) / ay - 1) > 0.01
    early = np.max(np.abs(y[: R // 10])) > ay * env[R // 10] * 1.05 + 2
    if overshoot or top or early:
        out.append(f"row {row}: the Y tone does not ramp up as asked")
    return out


def played(card, r: RowRearranger, report) -> tuple[np.ndarray, int]:
    steps = r.cycle_steps(report.cycle)
    t0 = card.now
    card.external_trigger(t0 + 500)
    x = card.render(4000 + r.move_samples + 4000)
    m0 = next(e.sample for e in card.events_between(t0, card.now) if e.step == steps["move"]) - t0
    card.external_trigger(card.now + 100)
    card.advance(6000)
    return x, m0


def check_shot(x: np.ndarray, m0: int, r: RowRearranger, report, occ: np.ndarray) -> list[str]:
    problems = []
    b = r.block_samples
    for row, plan in report.plans.items():
        most, least = best_assignment(occ[row], COLS, X_HZ)
        if len(plan.moves) != most or sum(abs(X_HZ[s] - X_HZ[t]) for s, t in plan.moves) > least + 1:
            problems.append(f"row {row}: plan {plan.moves} is not the least-distance order-keeping one")
        in_place = all(s == t for s, t in plan.moves)
        if in_place == (row in report.rows_moved):
            problems.append(f"row {row}: {'moved although in place' if in_place else 'not moved'}")
    for i, row in enumerate(report.rows_moved):
        block = x[m0 + i * b : m0 + (i + 1) * b]
        problems += check_block(block[:, 0], block[:, 1], row, list(report.plans[row].moves))
    rest = x[m0 + len(report.rows_moved) * b : m0 + r.move_samples]
    if rest.size and np.abs(rest).max() > 0:
        problems.append("the move slot is not silent after the last block")
    return problems


def make(backend=None):
    be = backend or SimBackend("M4i.6631-x8")
    rt = Runtime(be, trigger="external")
    r = RowRearranger(GRID)
    r.prepare(rt)
    card = be.sim if isinstance(be, SimBackend) else None
    return be, rt, r, card


@pytest.mark.parametrize("seed", range(3))
def test_random_2d_shots_move_each_row_as_asked(seed: int) -> None:
    be, rt, r, card = make()
    card.external_trigger(card.now + 100)
    card.advance(5000)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        occ = rng.random(GRID.shape) < 0.55
        report = r.shot(occ)
        assert rt.verify() == ()
        x, m0 = played(card, r, report)
        problems = check_shot(x, m0, r, report, occ)
        assert problems == [], problems
    assert card.live_slot_writes == 0


def test_rows_already_in_place_play_no_block_and_a_full_grid_moves_nothing() -> None:
    be, rt, r, card = make()
    card.external_trigger(card.now + 100)
    card.advance(5000)
    occ = np.zeros(GRID.shape, bool)
    occ[:, list(COLS)] = True  # every target row already holds its block
    occ[2, 0] = True  # one spare atom in row 2: it stays (row-by-row moves atoms along rows only)
    report = r.shot(occ)
    assert report.rows_moved == () and report.complete
    x, m0 = played(card, r, report)
    assert not np.any(x[m0 : m0 + r.move_samples])


def test_the_2d_decoder_catches_a_wrong_row_and_a_swapped_pair() -> None:
    be, rt, r, card = make()
    card.external_trigger(card.now + 100)
    card.advance(5000)
    occ = np.zeros(GRID.shape, bool)
    occ[1, [0, 2, 8, 9]] = True
    occ[3, [1, 9]] = True
    r._ys[[1, 3]] = r._ys[[3, 1]]  # the Y tables of rows 1 and 3 swapped: each block selects the other row
    report = r.shot(occ)
    x, m0 = played(card, r, report)
    assert any("Y in row" in p for p in check_shot(x, m0, r, report, occ))
    be, rt, r, card = make()
    card.external_trigger(card.now + 100)
    card.advance(5000)
    i, j = r._pair_row[0, 0], r._pair_row[0, 1]
    r._pairs[[i, j]] = r._pairs[[j, i]]  # column 0's atom goes to the second target, not the first
    report = r.shot(occ)
    x, m0 = played(card, r, report)
    assert any("off its track" in p or "before the drop" in p for p in check_shot(x, m0, r, report, occ))


def test_2d_shots_through_spcm_over_the_emulated_driver(emu) -> None:
    card = emu.card(1 - 1)
    with SpcmBackend("/dev/spcm0") as spcm_be:
        be, rt, r, _ = make(spcm_be)
        card.external_trigger(card.now + 100)
        card.advance(5000)
        occ = np.random.default_rng(9).random(GRID.shape) < 0.5
        report = r.shot(occ)
        assert rt.verify() == ()
        x, m0 = played(card, r, report)
        assert check_shot(x, m0, r, report, occ) == []


def test_bad_grids_and_occupancies_are_refused() -> None:
    with pytest.raises(ProgramError, match="target_cols"):
        Grid2D(X_HZ, Y_HZ, (3, 3))
    with pytest.raises(ProgramError, match="x_hz"):
        Grid2D((80e6, 79e6), Y_HZ, (0,))
    be, rt, r, card = make()
    with pytest.raises(ProgramError, match="shape"):
        r.shot(np.ones((3, 10), bool))
