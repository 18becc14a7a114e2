"""The ring edge (last segment back to the first) of a program that ends as it starts is crossed
like any other edge: at one frequency and without a phase jump, measured on the int16 output."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.errors import WrapWarning
from tests import reference as ref
from tests.test_resolve_quantize import _boundary_phases, _track_tones

FS = 625e6
FREQS = [71.3e6, 83.31e6, 90.07e6]


def _program(hold_s: float = 300e-6, last_step: str = "ring", back: float = -1.0e6) -> AWGProgramBuilder:
    """Idle (a looped hold, snapped) -> out 1 MHz -> hold -> back (by ``back``) -> hold."""
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=FREQS, amps=[0.2, 0.25, 0.2], phases="auto")
    b.segment("idle", mode="wait_trig").tones("H").use_def("d").hold(time=7.3e-6)
    b.segment("out").tones("H").move(df=1.0e6, time=40e-6, kind="min_jerk").hold(time=hold_s)
    b.segment("back").tones("H").move(df=back, time=40e-6, kind="min_jerk")
    b.segment("after").tones("H").hold(time=hold_s)
    b.last_step(last_step)
    return b


def _compile(b: AWGProgramBuilder, **quantize):
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), **quantize)
    return q, compile_sequence_program(q, progress=False)


def _ring_phase_jump_rad(q, compiled) -> float:
    """Largest phase jump over the tones, measured on the samples either side of the ring edge."""
    first, last = q.segments[0], q.segments[-1]
    data = {s.name: compiled.segments[compiled.report.segments[i].slot].data[:, 0] for i, s in enumerate(q.segments)}
    left, right = _boundary_phases(data[last.name], _track_tones(last), data[first.name], _track_tones(first))
    return float(np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max())


def test_a_program_that_ends_as_it_starts_crosses_the_ring_edge_seamlessly():
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrapWarning)
        q, compiled = _compile(_program())
    ring = next(b for b in q.boundaries if b.kind == "ring")
    assert ring.continuous, ring.summary()
    # measured on the output: the phases either side of the edge agree
    assert _ring_phase_jump_rad(q, compiled) < 1e-3
    # the last segment ends on the idle's snapped frequencies, not the asked ones
    idle, after = q.segments[0], q.segments[-1]
    assert [s.f1_hz for s in after.track("H").exit] == [s.f0_hz for s in idle.track("H").entry]
    assert [s.f0_hz for s in idle.track("H").entry] != FREQS  # idle really was snapped
    # closed by small excursions in the free holds, each reported, each back at its frequency at the piece edges
    closed = [n for n in q.notes if n.kind == "ring_closed"]
    free = 2 * q.segments[1].track("H").pieces[-1].n  # roughly: the two holds
    assert closed and all(abs(n.realised) <= 1.01 * FS / free for n in closed)
    for seg in q.segments[1:]:
        for piece in seg.track("H").pieces:
            for s in piece.tones:
                if s.freq_kind == "min_jerk" and abs(s.f1_hz - s.f0_hz) < 20e3:  # an excursion half
                    assert any(abs(s.f0_hz - f) < 1 or abs(s.f1_hz - f) < 1 for f in [t.f0_hz for t in idle.track("H").entry] + [f + 1e6 for f in FREQS])
    assert "ring_closed" in {n.kind for n in compiled.report.notes}


def test_an_end_step_program_is_not_bent():
    q, _ = _compile(_program(last_step="end"))
    assert not [n for n in q.notes if n.kind == "ring_closed"]
    after = q.segments[-1]
    assert all(p.constant for p in after.track("H").pieces)
    assert [s.f0_hz for s in after.track("H").entry] == FREQS


def test_a_deliberate_restart_is_left_as_asked_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrapWarning)
        q, _ = _compile(_program(back=-0.5e6))  # ends 0.5 MHz above where it starts
    ring = next(b for b in q.boundaries if b.kind == "ring")
    assert not ring.continuous and any(j.kind == "frequency" for j in ring.tones)
    assert not [n for n in q.notes if n.kind == "ring_closed"]


def test_a_gap_too_large_to_close_is_warned_about_and_close_ring_hz_lifts_the_bound():
    short = _program(hold_s=3e-6)  # free holds of a few us: closing needs far more than 10 kHz
    with pytest.warns(WrapWarning, match="ring edge.*close_ring_hz"):
        q, _ = _compile(short)
    assert not next(b for b in q.boundaries if b.kind == "ring").phase_continuous
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrapWarning)
        q, compiled = _compile(short, close_ring_hz=None)
    assert next(b for b in q.boundaries if b.kind == "ring").continuous
    assert _ring_phase_jump_rad(q, compiled) < 1e-3


def test_max_snap_hz_also_bounds_the_excursion():
    with pytest.warns(WrapWarning, match="ring edge"):
        q, _ = _compile(_program(), max_snap_hz={"after": 1.0})  # a free hold the excursion would bend
    assert not [n for n in q.notes if n.kind == "ring_closed"]


def test_a_tone_that_never_moves_closes_round_the_ring_between_two_looped_holds():
    # a (looped) -> b (eases from a's grid to c's over its first half, then holds: a free hold) ->
    # b2 (a free hold) -> c (looped, another length) -> back to a: the tone steps,
    # phase-continuously, from c's grid to a's at the ring edge
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[80.123e6], amps=[0.3], phases=[0.0])
    b.segment("a", mode="wait_trig").tones("H").use_def("d").hold(time=5e-6)
    b.segment("b").hold(time=200e-6)
    b.segment("b2").hold(time=150e-6)
    b.segment("c", mode="loop_n", loops=3).hold(time=7e-6)
    q, compiled = _compile(b)
    fa, fc = (q.segments[i].track("H").entry[0].f0_hz for i in (0, 3))
    assert fa != fc
    assert [(s.from_segment, s.to_segment) for s in q.frequency_steps] == [("c", "a")]
    assert [n.segment for n in q.notes if n.kind == "frequency_eased"] == ["b"]
    closed = [n for n in q.notes if n.kind == "ring_closed"]
    assert [n.segment for n in closed] == ["b"] and "(b, b2;" in closed[0].detail
    ring = next(x for x in q.boundaries if x.kind == "ring")
    assert ring.phase_continuous and [j.kind for j in ring.tones] == ["frequency"] and ring.tones[0].snapped
    assert all(x.phase_continuous for x in q.boundaries)
    assert _ring_phase_jump_rad(q, compiled) < 1e-3


def test_an_eased_hold_keeps_its_second_half_free_for_the_ring():
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[80.123e6], amps=[0.3], phases=[0.0])
    b.segment("a", mode="wait_trig").tones("H").use_def("d").hold(time=5e-6)
    b.segment("b").hold(time=200e-6)  # eases from a's grid to c's over its first half
    b.segment("c", mode="loop_n", loops=3).hold(time=7e-6)
    q, compiled = _compile(b)
    assert [n.segment for n in q.notes if n.kind == "ring_closed"] == ["b"]
    ease, *free = q.segments[1].track("H").pieces  # the ease, then the free half (bent out and back by the closing)
    assert ease.n == sum(p.n for p in free) and len(free) == 2
    assert _ring_phase_jump_rad(q, compiled) < 1e-3


def test_no_free_hold_to_close_in_is_warned_about():
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[80.123e6], amps=[0.3], phases=[0.0])
    b.segment("a", mode="wait_trig").tones("H").use_def("d").hold(time=5e-6)
    b.segment("b").hold(time=3e-6)  # eased from a's grid to c's over all of it (too short to split): not free
    b.segment("c", mode="loop_n", loops=3).hold(time=7e-6)
    with pytest.warns(WrapWarning, match="no hold outside looped segments"):
        q, _ = _compile(b)
    assert not next(x for x in q.boundaries if x.kind == "ring").phase_continuous


def test_close_ring_hz_is_checked():
    from awgrt.errors import QuantizationError

    with pytest.raises(QuantizationError, match="close_ring_hz"):
        _compile(_program(), close_ring_hz=-1.0)


def test_a_program_that_does_not_end_as_it_starts_is_said_so_once_plainly_at_the_users_line():
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "examples"))
    import rearrange

    b = rearrange.build([1, 2, 5, 6, 8, 11, 13, 14])
    # by default a program that does not come back to its start ends: no ring edge, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrapWarning)
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), {"H": 0, "V": 1})
    assert q.last_step == "end" and not [x for x in q.boundaries if x.kind == "ring"]
    said = [n.detail for n in q.notes if n.kind == "last_step"]
    assert len(said) == 1 and said[0].startswith("END: the program does not come back to its start (channel 'H' starts with 16 tone(s) and ends with 8)")
    program = compile_sequence_program(q, progress=False)
    assert [st.end for st in program.steps] == [False] * 4 + [True]
    # asked to ring, it says once, plainly, at the user's line, what the ring edge does
    b.last_step("ring")
    with pytest.warns(WrapWarning) as rec:
        quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), {"H": 0, "V": 1})
    ring = [w for w in rec if "ring edge" in str(w.message)]
    assert len(ring) == 1 and ring[0].filename == __file__  # once, at this line
    text = str(ring[0].message)
    # the tones that change by design and the ones asked to carry on add up to the edge's jumps
    import re

    changed = int(re.match(r"the program does not end as it starts: (\d+) tone\(s\) change at the ring edge 'done' -> 'load'", text).group(1))
    carried = int(re.search(r"; (\d+) tone\(s\) that do end as they start jump in phase there", text).group(1))
    jumping = int(re.search(r"\[NOT continuous: (\d+) tones jump", text).group(1))
    assert changed >= 1 and carried >= 1 and changed + carried == jumping
    assert text.endswith("If the program is not meant to repeat, end it with .last_step('end').")
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrapWarning)  # the fix it names silences it
        quantize_resolved_ir(b.last_step("end").build_resolved_ir(sample_rate_hz=625e6), {"H": 0, "V": 1})


def test_by_default_a_program_rings_when_it_comes_back_to_its_start_and_ends_when_it_does_not():
    from awgrt.errors import ProgramError

    # out 1 MHz and back: every tone ends where it starts -> ring, closed in phase as asked for "ring"
    q, compiled = _compile(_program(last_step="auto"))
    assert q.last_step == "ring" and not compiled.steps[-1].end and compiled.steps[-1].next == 0
    assert next(b for b in q.boundaries if b.kind == "ring").continuous
    note = [n for n in q.notes if n.kind == "last_step"]
    assert len(note) == 1 and note[0].detail.startswith("ring: the program comes back to its start")
    assert "After the last step:" in str(compiled.report) and note[0].detail in str(compiled.report)
    # back by only 0.5 MHz: ends 0.5 MHz above its start -> END, naming the tone and both frequencies
    q, compiled = _compile(_program(last_step="auto", back=-0.5e6))
    assert q.last_step == "end" and compiled.steps[-1].end
    assert not [b for b in q.boundaries if b.kind == "ring"]
    (note,) = [n.detail for n in q.notes if n.kind == "last_step"]
    assert "channel 'H' starts with a tone at 71.3 MHz and ends with it at 71.8 MHz" in note, note
    # an amplitude that ends elsewhere is a program that does not come back either
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[80e6], amps=[0.2], phases=[0.0])
    b.segment("a", mode="wait_trig").tones("H").use_def("d").hold(time=2e-6)
    b.segment("b").tones("H").ramp_amp_to(amps=0.3, time=2e-6)
    q, _ = _compile(b)
    assert q.last_step == "end"
    assert "amplitude 0.2 and ends with it at 0.3" in next(n.detail for n in q.notes if n.kind == "last_step")
    # the mode is checked when it is given, and an explicit choice is not second-guessed
    with pytest.raises(ProgramError, match=r"last_step\('loop'\).*\('auto', 'ring', 'end'\)"):
        AWGProgramBuilder().last_step("loop")
    q, _ = _compile(b.last_step("ring"))
    assert q.last_step == "ring" and not [n for n in q.notes if n.kind == "last_step"]
