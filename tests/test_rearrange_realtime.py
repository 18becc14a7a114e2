"""Real-time rearrangement, judged on the card's output: random shots decoded independently.

Each shot's int16 output is checked by :mod:`tests.rearrange_oracle` (phase at both joins, each
atom's frequency and amplitude along the asked track, tones ramped off, the target hold holding
exactly the planned targets), and the oracle is shown to catch each fault a fast path could
make: a crossing, a phase jump, a wrong target, a tone left on an empty site, a stale slot.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import hilbert

from awgrt import CompiledSequenceProgram, Runtime
from awgrt.backends import SimBackend, SpcmBackend
from awgrt.calibration import AODCalibration, PositionCalibration
from awgrt.errors import CardError, ClipError, ClipWarning, ProgramError, VerificationError
from awgrt.rearrange import Move, Rearranger, TweezerArray
from awgrt.rearrange import tables as tables_module
from awgrt.sim import SimulatedCard
from tests.rearrange_oracle import Asked, check_shot

FS = 625e6
SITES = tuple(80e6 + 1e6 * i for i in range(12))
TARGET = tuple(range(3, 9))
AMP = 0.04
MOVE = Move(time_s=40e-6, ramp_s=5e-6)
ASKED = Asked(SITES, TARGET, AMP, AMP, MOVE.ramp_s, MOVE.time_s)
HOLD_S = 32e-6  # 20000 samples: the 1 MHz grid wraps exactly


def make(backend=None, *, start: bool = True, **kw):
    be = backend or SimBackend("M4i.6631-x8")
    rt = Runtime(be, trigger="external")
    r = Rearranger(TweezerArray(target=TARGET, sites_hz=SITES, amp=AMP, move=kw.pop("move", MOVE)), load_hold_s=HOLD_S, target_hold_s=HOLD_S, **kw)
    r.prepare(rt, start=start)
    return be, rt, r


def occupancies(seed: int, n: int, fill: float = 0.55) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(len(SITES)) < fill for _ in range(n)]


def play(card: SimulatedCard, r: Rearranger, report) -> tuple[np.ndarray, int, int]:
    """Trigger the armed shot and return the card's output (indexed on its own clock from
    ``x0``: the first sample returned is ``x0``) with the samples at which the card entered its
    move and target steps (from the card's step log), then leave the target hold for the next
    cycle's load hold. Works the same for SimBackend's card and an emulated spcm card."""
    steps = r.cycle_steps(report.cycle)
    t0 = card.now
    card.external_trigger(t0 + 1000)
    n = 4 * 20000 + r.move_samples + 5000
    x = card.render(n)
    events = card.events_between(t0, t0 + n)
    m0 = next(e.sample for e in events if e.step == steps["move"])
    m1 = next(e.sample for e in events if e.step == steps["target"] and e.sample > m0)
    card.external_trigger(card.now + 1000)
    card.advance(45000)
    return x, m0 - t0, m1 - t0


def started(card: SimulatedCard) -> None:
    card.external_trigger(card.now + 100)  # the first trigger starts the load hold
    card.advance(30000)


@pytest.mark.parametrize("seed,tables", [(0, "pairs"), (1, "pairs"), (2, "factored"), (3, "factored"), (4, "auto")])
def test_random_shots_play_what_was_asked(seed: int, tables: str) -> None:
    be, rt, r = make(tables=tables)
    started(be.sim)
    for occ in occupancies(seed, 3):
        report = r.shot(occ)
        assert rt.verify() == ()
        x, m0, m1 = play(be.sim, r, report)
        assert m1 - m0 == r.move_samples
        # factored tables match the target phase with up to a cycle (pair tables half a cycle): twice the deviation
        tol = 1.875 * 1.0 / MOVE.time_s + 5e3 if r._channels[0].tables.factored else None
        problems = check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ, track_tol_hz=tol, target_pass=20000)
        assert problems == [], problems
    assert r._channels[0].tables.factored == (tables == "factored")
    assert be.sim.live_slot_writes == 0


def test_too_few_atoms_fill_what_can_be_filled_and_leave_no_tone_on_the_empty_targets() -> None:
    be, rt, r = make()
    started(be.sim)
    occ = np.zeros(len(SITES), bool)
    occ[[0, 5, 11]] = True
    report = r.shot(occ)
    plan = report.plans["X"]
    assert not report.complete and len(plan.moves) == 3 and len(plan.unfilled) == 3
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(plan.moves), occ) == []
    # the next, complete shot restores every target tone in the other cycle and in this one
    for occ in (np.ones(len(SITES), bool), occupancies(5, 1, 0.9)[0]):
        report = r.shot(occ)
        x, m0, m1 = play(be.sim, r, report)
        assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ) == []


def test_a_trigger_before_the_shot_is_armed_plays_no_move_and_no_stale_slot() -> None:
    be, rt, r = make()
    started(be.sim)
    occ = occupancies(11, 2)
    report = r.shot(occ[0])
    play(be.sim, r, report)  # cycle A played; the card waits in cycle B's load hold
    begin = be.sim.now
    be.sim.external_trigger(begin + 1000)  # nothing armed for cycle B
    be.sim.advance(100000)
    entered = [e.step for e in be.sim.events_between(begin, be.sim.now)]
    assert 6 in entered and 7 not in entered and 2 not in entered  # B's move step played one load pass, back to B's load hold
    assert rt.program.steps[6].segment == 0 and be.current_step() == 4
    report = r.shot(occ[1])
    assert report.cycle == "B"
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ[1]) == []


def test_shots_armed_twice_before_a_trigger_play_the_last() -> None:
    be, rt, r = make()
    started(be.sim)
    a, b = occupancies(3, 2)
    r.shot(a)
    report = r.shot(b)
    assert report.steps_written[0] == 2  # disarmed before its slot was rewritten
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), b) == []


def test_a_shot_between_the_trigger_and_the_target_hold_is_refused() -> None:
    be, rt, r = make()
    started(be.sim)
    r.shot(occupancies(1, 1)[0])
    be.sim.external_trigger(be.sim.now + 100)
    while be.current_step() not in (1, 2):
        be.sim.advance(2000)
    with pytest.raises(CardError, match="between a trigger and the target hold"):
        r.shot(occupancies(2, 1)[0])


def test_bad_occupancies_are_refused_naming_the_channel() -> None:
    be, rt, r = make()
    with pytest.raises(ProgramError, match="12 booleans"):
        r.shot(np.ones(11, bool))
    with pytest.raises(ProgramError, match="12 booleans"):
        r.shot(np.ones(12, int))
    with pytest.raises(ProgramError, match="occupancies for"):
        r.shot({"Y": np.ones(12, bool)})


def test_a_chirp_limit_leaves_targets_out_of_reach_unfilled() -> None:
    move = Move(time_s=40e-6, ramp_s=5e-6, max_chirp_hz_per_s=1.875 * 2.2e6 / 40e-6)  # reach 2.2 MHz: two sites
    be, rt, r = make(move=move)
    started(be.sim)
    occ = np.zeros(len(SITES), bool)
    occ[[0, 1, 2, 11]] = True
    report = r.shot(occ)
    plan = report.plans["X"]
    assert all(abs(SITES[s] - SITES[t]) <= 2.2e6 + 1e5 for s, t in plan.moves)
    assert plan.moves == ((1, 3), (2, 4)) and plan.unfilled == (5, 6, 7, 8)  # 0 and 11 are 3 MHz from any target
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(plan.moves), occ, reach_hz=2.2e6 + 1e5) == []


def test_double_rows_stand_for_two_neighbours_and_are_left_out_beyond_the_budget(monkeypatch) -> None:
    _, _, r = make()
    tables = r._channels[0].tables
    assert tables.doubles is not None and tables.doubles.shape[0] == int(((tables.pair_row[:-1, :-1] >= 0) & (tables.pair_row[1:, 1:] >= 0)).sum())
    index = {t: j for j, t in enumerate(TARGET)}
    for occ in occupancies(5, 40):
        moves = [(s, index[t]) for s, t in r._plan(r._channels[0], occ).moves]
        rows = tables.move_rows(moves)
        couples = sum(1 for m, n in zip(moves, moves[1:]) if n == (m[0] + 1, m[1] + 1))
        assert len(moves) - couples <= len(rows) <= len(moves) - couples // 2  # each run of neighbours read two at a time
        single = sum(tables.pairs[tables.pair_row[s, j]].astype(np.float64) for s, j in moves)
        assert np.max(np.abs(sum(row.astype(np.float64) for row in rows) - single), initial=0.0) < 1e-3
    monkeypatch.setattr(tables_module, "PAIR_BUDGET_BYTES", tables.pairs.nbytes + 1000)
    _, _, r = make(tables="pairs")
    small = r._channels[0].tables
    assert small.doubles is None and small.double_row is None
    assert len(small.move_rows([(3, 0), (4, 1)])) == 2
    assert r.prepared.table_bytes == small.nbytes < tables.nbytes


# ---------------------------------------------------------------------- the oracle catches faults


def _faulty(fault: str):
    """A prepared rearranger whose tables or writes carry ``fault``, shot once; the problems found."""
    be, rt, r = make()
    started(be.sim)
    occ = np.zeros(len(SITES), bool)
    occ[[1, 2, 5, 6, 9, 10, 11]] = True
    tables = r._channels[0].tables
    if fault == "stale slot":
        first = r.shot(occupancies(8, 1)[0])
        play(be.sim, r, first)  # cycle A played
        report = r.shot(occupancies(9, 1)[0])  # cycle B
        play(be.sim, r, report)
        be._update_segments = lambda program, indices: None  # type: ignore[method-assign]  # the slot write never lands
        report = r.shot(occ)  # cycle A again: its slot keeps the first shot's moves
        with pytest.raises(VerificationError, match="move A"):
            rt.verify()  # the read-back sees it too
        x, m0, m1 = play(be.sim, r, report)
        return check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ)
    if fault in ("crossing", "wrong target"):  # faults in single rows: shots read no double rows
        tables.double_row[:] = -1
    if fault == "crossing":  # two atoms' rows swapped: they pass each other
        report_plan = r._plan(r._channels[0], occ)
        (s1, t1), (s2, t2) = report_plan.moves[:2]
        i, j = TARGET.index(t1), TARGET.index(t2)
        tables.pair_row[s1, i], tables.pair_row[s1, j] = tables.pair_row[s1, j], tables.pair_row[s1, i]
        tables.pair_row[s2, i], tables.pair_row[s2, j] = tables.pair_row[s2, j], tables.pair_row[s2, i]
    elif fault == "wrong target":  # one atom's row goes one site further than planned
        s1, t1 = r._plan(r._channels[0], occ).moves[-1]
        i = TARGET.index(t1)
        tables.pair_row[s1, i] = tables.pair_row[s1, i - 1]
    elif fault == "wrong double row":  # a couple of neighbours reads the double row of the couple one target earlier
        moves = r._plan(r._channels[0], occ).moves
        s1, t1 = next(m for m, n in zip(moves, moves[1:]) if n == (m[0] + 1, m[1] + 1) and TARGET.index(m[1]) > 0)
        i = TARGET.index(t1)
        assert tables.double_row[s1, i - 1] >= 0
        tables.double_row[s1, i] = tables.double_row[s1, i - 1]
    elif fault == "phase jump":  # every move 0.01 rad off: a step where the move meets the target hold
        for rows in (tables.pairs, tables.doubles):
            rows[:] = np.real(hilbert(rows.astype(np.float64), axis=1) * np.exp(-1j * 0.01)).astype(np.float32)
    elif fault == "tone left on":  # the empty sites' tones are not ramped off during the ramp (cut at its end)
        tables.fade[:] = 0.0
    report = r.shot(occ)
    if fault == "target wrap step":  # the target hold's pass drifts 0.01 rad: a step where it wraps
        data = rt.program.segments[1].data[:, 0].astype(np.float64)
        drift = np.real(hilbert(data) * np.exp(-1j * 0.01 * np.arange(data.size) / data.size))
        be.sim.select_segment(1)
        be.sim.write_segment_data(np.rint(drift).astype(np.int16)[:, None])
    x, m0, m1 = play(be.sim, r, report)
    return check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ, target_pass=20000)


@pytest.mark.parametrize("fault", ["crossing", "wrong target", "wrong double row", "phase jump", "tone left on", "stale slot", "target wrap step"])
def test_the_oracle_catches(fault: str) -> None:
    problems = _faulty(fault)
    assert problems, f"{fault} went unnoticed"


def test_the_oracle_passes_an_unmodified_shot_of_the_fault_pattern() -> None:
    be, rt, r = make()
    started(be.sim)
    occ = np.zeros(len(SITES), bool)
    occ[[1, 2, 5, 6, 9, 10, 11]] = True
    report = r.shot(occ)
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ) == []



def test_shots_on_the_real_spcm_package_over_the_emulated_driver(emu) -> None:
    """The same shots through SpcmBackend: spcm writes the slot (WRITESEGMENT, SEGMENTSIZE, DMA)
    and the step entries (STEPMEM registers) while the emulated card keeps playing."""
    card = emu.card(0)
    with SpcmBackend("/dev/spcm0") as be:
        be, rt, r = make(be)
        started(card)
        for occ in occupancies(21, 3):
            report = r.shot(occ)
            assert rt.verify() == ()
            x, m0, m1 = play(card, r, report)
            assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ) == []
        assert card.live_slot_writes == 0


def test_two_channels_carry_independent_arrays_one_calibrated_in_micrometres() -> None:
    """H as above; V an AOD-calibrated array placed in um (optical power held along each move,
    the RF amplitude following the calibration at each instant's frequency)."""
    cal = AODCalibration(band_hz=(70e6, 110e6), g=(1.0, 0.05, -0.18), v0=(0.5, 0.04), card_mv=1000)
    position = PositionCalibration.linear(2.0, 90e6, (70e6, 110e6))
    v_um = tuple(3.0 * (i - 4) for i in range(9))  # 84 .. 96 MHz, 1.5 MHz apart
    v_hz = tuple(float(f) for f in position.frequency_hz(np.asarray(v_um)))
    move_v = Move(time_s=30e-6, ramp_s=4e-6)
    arrays = {
        "H": TweezerArray(target=TARGET, sites_hz=SITES, amp=AMP, move=MOVE),
        "V": TweezerArray(target=(3, 4, 5), sites_um=v_um, position=position, amp=0.04, calibration=cal, move=move_v),
    }
    be = SimBackend("M4i.6631-x8")
    rt = Runtime(be, trigger="external")
    r = Rearranger(arrays, load_hold_s=HOLD_S, target_hold_s=HOLD_S)
    r.prepare(rt)
    started(be.sim)
    asked_v = Asked(v_hz, (3, 4, 5), 0.04, 0.04, move_v.ramp_s, move_v.time_s, calibration=cal)
    rng = np.random.default_rng(4)
    for _ in range(2):
        occ = {"H": rng.random(12) < 0.55, "V": rng.random(9) < 0.5}
        report = r.shot(occ)
        x, m0, m1 = play(be.sim, r, report)
        assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["H"].moves), occ["H"]) == []
        problems = check_shot(x[:, 1], FS, m0, m1, asked_v, list(report.plans["V"].moves), occ["V"])
        assert problems == [], problems


def test_factored_tables_are_refused_where_amplitudes_differ_and_auto_keeps_pairs_there() -> None:
    be = SimBackend("M4i.6631-x8")
    rt = Runtime(be, trigger="external")
    uneven = TweezerArray(target=TARGET, sites_hz=SITES, amp=[AMP * (1 + 0.01 * i) for i in range(12)], move=MOVE)
    with pytest.raises(ProgramError, match="one RF amplitude"):
        Rearranger(uneven, load_hold_s=HOLD_S, target_hold_s=HOLD_S, tables="factored").prepare(rt)
    with pytest.raises(ProgramError, match="tables="):
        Rearranger(uneven, tables="fast")
    r = Rearranger(uneven, load_hold_s=HOLD_S, target_hold_s=HOLD_S, tables="auto")
    r.prepare(rt)
    assert not r._channels[0].tables.factored and r.prepared.table_bytes > 0


def test_a_shot_after_another_program_was_run_or_an_upload_failed_asks_for_prepare() -> None:
    be, rt, r = make()
    started(be.sim)
    rt.run(CompiledSequenceProgram.load(_saved_demo()))
    with pytest.raises(ProgramError, match="prepare\\(\\) again"):
        r.shot(occupancies(1, 1)[0])
    be, rt, r = make()
    started(be.sim)

    def refuse(*a, **k):
        raise CardError("DMA refused", code=0x107)

    be._update_segments = refuse  # type: ignore[method-assign]
    with pytest.raises(CardError, match="DMA refused"):
        r.shot(occupancies(2, 1)[0])
    assert not be.is_running() and be.program is None and rt.program is None  # stopped, nothing half-programmed left running
    with pytest.raises(ProgramError, match="prepare"):
        r.shot(occupancies(3, 1)[0])


def _saved_demo():
    import tempfile

    from awgrt.demo import demo_builder

    path = tempfile.mkdtemp() + "/demo.npz"
    rt = Runtime(SimBackend("M4i.6631-x8"))
    return rt.run(demo_builder(), sample_rate_hz=FS, start=False).save(path)


def test_moves_that_would_clip_warn_or_raise_before_anything_is_written() -> None:
    """Rows made louder than any real array here (every pair row x 8, past the clip level when
    summed): the runtime's clip policy decides, and an error leaves the card as it was."""
    occ = np.ones(len(SITES), bool)
    for policy in ("warn", "error", "count"):
        be = SimBackend("M4i.6631-x8")
        rt = Runtime(be, trigger="external", clip_policy=policy)
        r = Rearranger(TweezerArray(target=TARGET, sites_hz=SITES, amp=AMP, move=MOVE), load_hold_s=HOLD_S, target_hold_s=HOLD_S)
        r.prepare(rt)
        tables = r._channels[0].tables
        assert tables.peak_lsb <= 0.9 * 32767  # the real rows cannot clip: the scan is skipped
        tables.pairs[:] *= 8.0
        tables.doubles[:] *= 8.0
        object.__setattr__(tables, "peak_lsb", np.inf)
        started(be.sim)
        before = rt.program
        if policy == "error":
            with pytest.raises(ClipError, match="clip level"):
                r.shot(occ)
            assert rt.program is before and be.is_running() and rt.verify() == ()
            continue
        if policy == "warn":
            with pytest.warns(ClipWarning, match="clipped"):
                report = r.shot(occ)
        else:
            report = r.shot(occ)
        assert report.clipped > 0
        x = rt.program.segments[3].data[:, 0].astype(int)
        assert np.abs(x).max() == round(0.9 * 32767)  # held at the clip level, never wrapped


def test_the_tables_bound_every_shot_below_their_stated_peak() -> None:
    be, rt, r = make()
    bound = r._channels[0].tables.peak_lsb
    for occ in occupancies(17, 20, 0.8):
        r.shot(occ)
        assert np.abs(rt.program.segments[3].data.astype(int)).max() <= bound + 1


def test_an_interrupt_while_a_shot_is_written_leaves_the_card_stopped_and_unknown() -> None:
    be, rt, r = make()
    started(be.sim)
    real = be.sim.write_step

    def interrupted(index, word):
        raise KeyboardInterrupt  # Ctrl-C between the slot write and the step entries

    be.sim.write_step = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        r.shot(occupancies(6, 1)[0])
    be.sim.write_step = real  # type: ignore[method-assign]
    assert not be.is_running() and be.program is None and rt.program is None
    r.prepare(rt)  # a new prepare uploads everything again and the shots work
    started(be.sim)
    occ = occupancies(7, 1)[0]
    report = r.shot(occ)
    x, m0, m1 = play(be.sim, r, report)
    assert check_shot(x[:, 0], FS, m0, m1, ASKED, list(report.plans["X"].moves), occ) == []
