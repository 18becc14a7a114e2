"""Wrap snapping never relocates a tweezer: every looped tone plays within fs/(2N) of what was asked.

Everything here is measured on the int16 output where it can be: a looped segment of N samples
holds whole cycles per pass, so each tone sits exactly on an FFT bin of one pass and the played
frequencies can be read off the spectrum without leakage.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from awgrt import CARDS, AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.errors import QuantizationError, SnapWarning
from tests import reference as ref
from tests.test_properties import FIT_MIN_AMP, FIT_MIN_SAMPLES, _independent_tones, _window_fit

FS = 625e6
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ measuring


def played_tones(program, q, index: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, amplitudes in fractions of full scale) of the spectral lines of one
    pass of looped segment ``index`` on ``channel``, read from its int16 samples."""
    seg = q.segments[index]
    data = np.asarray(program.segments[q.segment_slot[index]].data)[:, q.hardware_channels[channel]].astype(float)
    spec = np.abs(np.fft.rfft(data)) * 2 / seg.n_samples / 32767
    lines = np.flatnonzero(spec > 1e-3)
    return lines * FS / seg.n_samples, spec[lines]


def check_looped_segments(resolved, q, program) -> float:
    """Every constant tone of every looped segment, as measured: within fs/(2N) of what the
    resolved program asked, on its own line (asked-distinct tones never share one), at its asked
    amplitude (so nothing is silent). Returns the largest shift as a fraction of its bound."""
    asked = {s.name: s for s in resolved.segments}
    worst = 0.0
    for index, seg in enumerate(q.segments):
        if not seg.looped:
            continue
        bound = FS / (2 * seg.n_samples)
        for track in asked[seg.name].tracks:
            if not track.constant or not track.entry:
                continue
            f_asked = np.array([s.f0_hz for s in track.entry])
            a_asked = np.array([s.a0 for s in track.entry])
            f_lines, a_lines = played_tones(program, q, index, track.channel)
            assert f_lines.size == np.unique(f_asked).size, (
                f"{seg.name}/{track.channel}: {np.unique(f_asked).size} distinct tones asked, {f_lines.size} lines played"
            )
            for f, a in zip(f_asked, a_asked):
                j = int(np.argmin(np.abs(f_lines - f)))
                shift = abs(f_lines[j] - f)
                assert shift <= bound * (1 + 1e-9), f"{seg.name}/{track.channel}: {f:.1f} Hz played at {f_lines[j]:.1f} Hz, bound {bound:.1f} Hz"
                assert a_lines[j] == pytest.approx(a, abs=2e-4), f"{seg.name}/{track.channel}: tone at {f:.1f} Hz has amplitude {a_lines[j]:.5f}, asked {a}"
                worst = max(worst, shift / bound)
    return worst


def compile_all(builder, **options):
    resolved = builder.build_resolved_ir(sample_rate_hz=FS)
    q = quantize_resolved_ir(resolved, **options)
    return resolved, q, compile_sequence_program(q, progress=False).validate()


# ------------------------------------------------------------------------------ the three cases


def eight_tone_program() -> AWGProgramBuilder:
    """8 tones on H, one on V; a loop_n hold of 20 us directly followed by a wait_trig of 10 us."""
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("dH", logical_channel="H", freqs=[85e6 + 2e6 * i for i in range(8)], amps=[0.05] * 8, phases="auto")
        .define("dV", logical_channel="V", freqs=[95e6], amps=[0.3], phases="auto")
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("dH")
        .tones("V")
        .use_def("dV")
        .hold(time=40e-6)
        .segment("ramp")
        .tones("H")
        .ramp_amp_to(amps=0.08, time=10e-6)
        .segment("move")
        .tones("H")
        .move(df=1e6, time=50e-6, idxs=[0, 1, 2, 3])
        .segment("hold2", mode="loop_n", loops=4)
        .hold(time=20e-6)
        .segment("final", mode="wait_trig")
        .hold(time=10e-6)
    )


def test_back_to_back_looped_holds_keep_every_tone_within_its_bound():
    resolved, q, program = compile_all(eight_tone_program())
    assert check_looped_segments(resolved, q, program) <= 1.0
    # V was never moved: in 'move' it only eases between its snapped frequencies in 'load' and
    # 'hold2', each within that hold's own bound of 95 MHz
    v_move = q.segments[2].track("V").entry[0]
    bounds = {s.name: FS / (2 * s.n_samples) for s in q.segments}
    for f in (v_move.f0_hz, v_move.f1_hz):
        assert abs(f - 95e6) <= max(bounds["load"], bounds["hold2"])
    # the two holds meet with phase-continuous steps, not a shared coarse grid
    edge = next(b for b in q.boundaries if (b.from_segment, b.to_segment) == ("hold2", "final"))
    assert edge.phase_continuous and all(j.snapped for j in edge.jumps)


def test_two_tones_never_cancel_to_silence():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[88.1e6, 90.2e6], amps=[0.2, 0.2], phases="auto")
        .segment("a", mode="loop_n", loops=3)
        .tones("H")
        .use_def("d")
        .hold(time=28.7e-6)
        .segment("b", mode="wait_trig")
        .hold(time=24.5e-6)
    )
    resolved, q, program = compile_all(b)
    check_looped_segments(resolved, q, program)
    for seg in program.segments:
        assert np.abs(seg.data).max() > 0.3 * 32767
    assert max(s.peak for s in program.report.segments) > 0.3


def test_rearrange_example_with_a_30_us_hold_moves_no_tweezer():
    import examples.rearrange as rearrange

    rng = np.random.default_rng(7)
    occupied = sorted(int(i) for i in np.flatnonzero(rng.random(rearrange.N_SITES) < 0.5))
    b = rearrange.build(occupied)
    for seg in b._segments:
        if seg["name"] == "hold":
            seg["ops"] = [dataclasses.replace(op, time_s=30e-6) if type(op).__name__ == "Hold" else op for op in seg["ops"]]
    resolved, q, program = compile_all(b, logical_channel_to_hardware_channel={"H": 0, "V": 1})
    assert _seg_length(resolved, "hold") == 18750
    assert check_looped_segments(resolved, q, program) <= 1.0
    # the rearranged block lands where it was asked, to within the hold's bound, not MHz away
    hold = next(s for s in q.segments if s.name == "hold")
    asked = next(s for s in resolved.segments if s.name == "hold").track("H").entry
    for played, want in zip(hold.track("H").entry, asked):
        assert abs(played.f0_hz - want.f0_hz) <= FS / (2 * hold.n_samples)


def _seg_length(resolved, name):
    return next(s.n_samples for s in resolved.segments if s.name == name)


# ------------------------------------------------------------------------------ bounds, warning, suggestion


def one_hold(time_s: float, freqs, mode="wait_trig", loops=1) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=list(freqs), amps=[0.6 / len(freqs)] * len(freqs), phases=[0.0] * len(freqs))
        .segment("hold", mode=mode, loops=loops)
        .tones("H")
        .use_def("d")
        .hold(time=time_s)
    )


def test_max_snap_hz_per_segment_names_segment_channel_tone_and_frequencies():
    resolved = one_hold(10e-6, [91.01e6, 77.7e6]).build_resolved_ir(sample_rate_hz=FS)
    q = quantize_resolved_ir(resolved, stretch_wait_trig=0.0)
    worst = max(abs(s.shift_hz) for s in q.snaps)
    tone = max(q.snaps, key=lambda s: abs(s.shift_hz))
    with pytest.raises(QuantizationError) as exc:
        quantize_resolved_ir(resolved, stretch_wait_trig=0.0, max_snap_hz={"hold": worst / 2})
    err = exc.value
    assert err.segment == "hold" and "snap" in err.op
    text = str(err)
    assert "channel 'H'" in text and f"tone {tone.index}" in text
    assert f"{tone.asked_hz:.9g}" in text and f"{tone.played_hz:.9g}" in text
    # a bound the shift meets, and a bound on another segment only, both pass
    quantize_resolved_ir(resolved, stretch_wait_trig=0.0, max_snap_hz={"hold": worst * 1.001})
    with pytest.raises(QuantizationError, match="unknown segments"):
        quantize_resolved_ir(resolved, max_snap_hz={"nope": 1.0})
    with pytest.raises(QuantizationError, match="max_snap_hz"):
        quantize_resolved_ir(resolved, max_snap_hz="x")


def test_large_shifts_warn_with_the_worst_tone_and_small_ones_do_not():
    resolved = one_hold(10e-6, [91.01e6, 77.7e6]).build_resolved_ir(sample_rate_hz=FS)
    with pytest.warns(SnapWarning, match=r"segment 'hold'.*of its .* Hz bound"):
        q = quantize_resolved_ir(resolved, stretch_wait_trig=0.0)
    assert max(abs(s.shift_hz) for s in q.snaps) > 10e3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize_resolved_ir(resolved, stretch_wait_trig=0.0, warn_snap_hz=None)
        quantize_resolved_ir(one_hold(32e-6, [80e6, 81e6]).build_resolved_ir(sample_rate_hz=FS))  # whole cycles: no shift


def _worst_shift(freqs, n):
    return max(abs(round(f * n / FS) * FS / n - f) for f in freqs)


def test_report_suggests_the_nearest_hold_time_needing_at_most_100_hz():
    freqs = [80e6 + 1e6 * i for i in range(6)]
    resolved = one_hold(30e-6, freqs, mode="loop_n", loops=5).build_resolved_ir(sample_rate_hz=FS)
    program = compile_sequence_program(quantize_resolved_ir(resolved), progress=False)
    notes = program.report.notes_of("hold_suggestion")
    assert len(notes) == 1 and notes[0].segment == "hold"
    n = notes[0].realised
    # independently: the first multiple of 32 samples from the asked 18750 on that needs <= 100 Hz
    want = next(m for m in range(18752, int(18750 * 1.1) + 1, 32) if _worst_shift(freqs, m) <= 100.0)
    assert n == want == 20000
    assert "32 us" in notes[0].detail and "hold_suggestion" in str(program.report)
    # none within +10 %: no suggestion
    odd = one_hold(30e-6, [80.123457e6, 91.7e6], mode="loop_n", loops=5).build_resolved_ir(sample_rate_hz=FS)
    odd_n = [m for m in range(18752, int(18750 * 1.1) + 1, 32) if _worst_shift([80.123457e6, 91.7e6], m) <= 100.0]
    assert not odd_n
    assert not compile_sequence_program(quantize_resolved_ir(odd), progress=False).report.notes_of("hold_suggestion")


def test_report_opens_with_the_snapping_summary():
    _, q, program = compile_all(eight_tone_program())
    text = str(program.report)
    second = text.splitlines()[1]
    w = max(q.snaps, key=lambda s: abs(s.shift_hz))
    assert second.startswith("  wrap snapping: largest shift")
    assert f"{w.shift_hz:+.1f} Hz" in second and repr(w.segment) in second and f"{w.fraction_of_bound:.2f} of its" in second
    moved = sum(bool(s.shift_hz) for s in q.snaps)
    assert f"{moved} of {len(q.snaps)}" in second and f"{len(q.frequency_steps)} phase-continuous frequency steps" in second


def test_tones_too_close_for_a_short_loop_are_an_error_not_a_merge():
    # 0.2 MHz apart, but a 1 us pass resolves only 1.6 MHz: they would share a bin
    resolved = one_hold(1e-6, [88.1e6, 88.3e6]).build_resolved_ir(sample_rate_hz=FS)
    with pytest.raises(QuantizationError, match="would both play") as exc:
        quantize_resolved_ir(resolved)
    assert exc.value.segment == "hold" and "hold at least" in str(exc.value)
    # long enough: distinct lines
    check_looped_segments(*compile_all(one_hold(10e-6, [88.1e6, 88.3e6])))


# ------------------------------------------------------------------------------ continuity lines


def test_a_tone_faded_to_zero_then_removed_is_seamless_and_the_ring_is_one_line():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6, 82e6, 84e6], amps=[0.2] * 3, phases=[0.0] * 3)
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .segment("fade")
        .tones("H")
        .ramp_amp_to(amps=0.0, idxs=[1], time=10e-6)
        .segment("gone")
        .tones("H")
        .remove_tones(idxs=[1])
        .move(df=1e6, time=10e-6)
        .last_step("ring")  # asked to ring although it ends elsewhere: the edge is listed
    )
    _, q, program = compile_all(b)
    edge = next(x for x in q.boundaries if (x.from_segment, x.to_segment) == ("fade", "gone"))
    assert edge.continuous and [j.kind for j in edge.tones] == ["silent_end"]
    ring = next(x for x in q.boundaries if x.kind == "ring")
    assert not ring.continuous and len(ring.jumps) >= 2
    report = program.report
    ring_lines = [line for line in str(report).splitlines() if line.strip().startswith("ring")]
    assert len(ring_lines) == 1 and "NOT continuous: 3 tones jump" in ring_lines[0]
    detailed = report.format(detail=True)
    assert all(j.describe() in detailed for j in ring.tones)
    assert "ends at zero amplitude (seamless)" in detailed


def test_ir_does_not_import_the_compiler():
    for path in (ROOT / "awgrt" / "ir").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert "compiler" not in target, f"{path.name} imports {target}"
            elif isinstance(node, ast.Import):
                assert not any("compiler" in a.name for a in node.names), path.name


# ------------------------------------------------------------------------------ property


@st.composite
def snap_programs(draw):
    """Random programs with back-to-back looped holds of random lengths, 1-32 tones per channel on
    1-4 channels, once segments that move or ramp in between; with the hardware map and card."""
    n_ch = draw(st.integers(1, 4))
    channels = ["H", "V", "X", "Y"][:n_ch]
    b = AWGProgramBuilder()
    for ch in channels:
        b.logical_channel(ch)
    for ch in channels:
        n = draw(st.integers(1, 32))
        sites = sorted(draw(st.sets(st.integers(0, 300), min_size=n, max_size=n)))
        freqs = [30e6 + 0.5e6 * s + draw(st.floats(0, 0.2e6)) for s in sites]
        amps = [0.8 / n * draw(st.floats(0.3, 1.0)) for _ in sites]
        b.define(f"d_{ch}", logical_channel=ch, freqs=freqs, amps=amps, phases=draw(st.sampled_from(["auto", [0.0] * n])))
    n_seg = draw(st.integers(2, 5))
    modes = [draw(st.sampled_from(["loop_n", "wait_trig", "loop_n", "wait_trig", "once"])) for _ in range(n_seg)]
    if not any(a != "once" and c != "once" for a, c in zip(modes, modes[1:])):
        modes[0], modes[1] = "loop_n", "wait_trig"  # at least one back-to-back looped pair
    for i, mode in enumerate(modes):
        b.segment(f"s{i}", mode=mode, loops=draw(st.integers(2, 6)) if mode == "loop_n" else 1)
        if i == 0:
            for ch in channels:
                b.tones(ch).use_def(f"d_{ch}")
        time_s = draw(st.integers(1500, 25000)) * 1e-9
        if mode == "once" and draw(st.booleans()):
            ch = draw(st.sampled_from(channels))
            if draw(st.booleans()):
                b.tones(ch).move(df=draw(st.floats(-2e6, 2e6)), time=time_s, kind="min_jerk")
            else:
                b.tones(ch).ramp_amp_to(amps=draw(st.floats(0.3, 1.0)) * 0.8 / 32, time=time_s)
            b.sync()
        else:
            b.hold(time=time_s)
    card = CARDS["M4i.6622-x8"] if n_ch > 2 else CARDS["M4i.6631-x8"]
    return b, {ch: i for i, ch in enumerate(channels)}, card, draw(st.sampled_from(["auto", "step"]))


@pytest.mark.slow
@settings(max_examples=40)
@given(snap_programs())
def test_property_every_looped_tone_within_its_bound_distinct_and_audible(drawn):
    b, mapping, card, joint = drawn
    resolved = b.build_resolved_ir(sample_rate_hz=FS)
    try:
        q = quantize_resolved_ir(resolved, mapping, card, joint=joint)
    except QuantizationError as err:
        # only tones closer than the shortest legal pass can resolve may be refused
        event("refused: tones too close for a looped pass")
        assert "would both play" in str(err)
        fa, fb = err.value
        seg = next(s for s in resolved.segments if s.name == err.segment)
        assert abs(fa - fb) < FS / card.legal_length(seg.n_samples, card.active_channel_count(max(mapping.values())))
        return
    most = max(len(t.entry) for s in resolved.segments for t in s.tracks) // 8 * 8
    event(f"compiled: {len(mapping)} channel(s), up to {most}+ tones, {len(q.frequency_steps) > 0 and 'with' or 'no'} steps")
    program = compile_sequence_program(q, progress=False).validate(card)
    assert check_looped_segments(resolved, q, program) <= 1.0
    assert max(abs(s.shift_hz) / s.bound_hz for s in q.snaps) <= 1.0 + 1e-9

    # phase continuity at every edge the report calls (phase-)continuous, on the int16 samples:
    # a reference that integrates every tone's phase across the boundaries matches to 1 LSB ...
    tones = _independent_tones(q)
    hw = q.hardware_channels
    for index, (seg, per_channel) in enumerate(zip(q.segments, tones)):
        data = np.asarray(program.segments[q.segment_slot[index]].data)
        for ch, chan_tones in per_channel.items():
            expected = np.zeros(seg.n_samples)
            for start, t in chan_tones.values():
                expected[start : start + t.n] += t.samples(FS)
            want, _ = ref.to_int16(expected)
            assert np.abs(data[:, hw[ch]].astype(int) - want.astype(int)).max() <= 1, f"{seg.name}/{ch}"
    # ... and the phases fitted on each side of each such edge agree
    for edge in q.boundaries:
        if edge.kind != "next" or not edge.phase_continuous:
            continue
        i = next(k for k, s in enumerate(q.segments) if s.name == edge.from_segment)
        a, c = q.segments[i], q.segments[i + 1]
        w = min(2048, a.n_samples, c.n_samples)
        left_data = np.asarray(program.segments[q.segment_slot[i]].data)
        right_data = np.asarray(program.segments[q.segment_slot[i + 1]].data)
        for ch in hw:
            left = _window_fit(left_data[:, hw[ch]].astype(float), a.n_samples - w, a.n_samples, tones[i][ch])
            right = _window_fit(right_data[:, hw[ch]].astype(float), 0, w, tones[i + 1][ch])
            for tid in set(left) & set(right):
                (pl, al, nl), (pr, ar, nr) = left[tid], right[tid]
                if min(al, ar) < FIT_MIN_AMP / 4 or min(nl, nr) < FIT_MIN_SAMPLES:
                    continue
                assert abs(float(ref.wrap_rad(pr - pl))) < 2e-3, f"{edge.from_segment} -> {edge.to_segment}, {ch} tone #{tid}"



# ----------------------------------------------------------------------------- looped moves


def _shake(df_back: float | None = None, **quantize) -> tuple:
    from awgrt import AWGProgramBuilder, quantize_resolved_ir

    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[71e6, 83.3e6], amps=[0.25, 0.2], phases="auto")
    b.segment("idle", mode="wait_trig").tones("H").use_def("d").hold(time=32e-6)
    back = [-1.5e6, 0.7e6] if df_back is None else [df_back, 0.7e6]
    b.segment("shake", mode="loop_n", loops=4).tones("H").move(df=[1.5e6, -0.7e6], time=40e-6, kind="min_jerk").move(df=back, time=40e-6, kind="cosine")
    b.segment("after").hold(time=10e-6)
    return quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), **quantize)


def test_a_looped_move_that_comes_back_is_closed_for_a_seamless_wrap():
    # asked: out 1.5 MHz and back over 2 x 25000 samples, which is not a whole number of cycles
    # per pass; the loop is shifted as a whole by at most fs/2N and wraps continuously (measured)
    import numpy as np

    from awgrt import compile_sequence_program
    from tests import reference as ref
    from tests.test_resolve_quantize import _boundary_phases, _track_tones

    q = _shake()
    edges = {(b.kind, b.from_segment, b.to_segment): b for b in q.boundaries}
    assert edges[("wrap", "shake", "shake")].continuous
    assert edges[("next", "idle", "shake")].phase_continuous and edges[("next", "shake", "after")].phase_continuous
    shake = [s for s in q.snaps if s.segment == "shake"]
    assert len(shake) == 2 and all(0 < abs(s.shift_hz) <= s.bound_hz for s in shake)
    # the asked trajectory, shifted as a whole: every span of a tone moved by the same amount
    seg = next(s for s in q.segments if s.name == "shake")
    for snap in shake:
        spans = [s for p in seg.track("H").pieces for s in p.tones if s.tone == snap.tone]
        assert spans[0].f0_hz == spans[-1].f1_hz == snap.played_hz
    compiled = compile_sequence_program(q, progress=False)
    segs = {s.name: s for s in q.segments}
    data = {name: compiled.segments[compiled.report.segments[i].slot].data[:, 0] for i, name in enumerate(segs)}
    for x, y in (("shake", "shake"), ("idle", "shake"), ("shake", "after")):
        left, right = _boundary_phases(data[x], _track_tones(segs[x]), data[y], _track_tones(segs[y]))
        assert np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max() < 1e-3, (x, y)


def test_a_looped_move_that_does_not_come_back_is_left_as_asked_and_reported():
    from awgrt.errors import WrapWarning

    with pytest.warns(WrapWarning, match="'shake' is looped but 1 tone"):
        q = _shake(df_back=-1.0e6)  # tone 0 ends 0.5 MHz above where it starts: no pass can close
    wrap = next(b for b in q.boundaries if b.kind == "wrap" and b.from_segment == "shake")
    assert not wrap.continuous and any(j.tone == 0 and j.kind == "frequency" for j in wrap.tones)
    assert [s.tone for s in q.snaps if s.segment == "shake"] == [1]  # tone 1 still closes


def test_closing_a_looped_move_respects_max_snap_hz():
    from awgrt.errors import QuantizationError

    with pytest.raises(QuantizationError, match="shake.*closing its looped move"):
        _shake(max_snap_hz={"shake": 100.0})


def test_the_planners_scalar_whole_cycle_frequency_equals_the_array_one() -> None:
    from awgrt.compiler.snap import _whole_cycle, whole_cycle_hz

    rng = np.random.default_rng(11)
    for _ in range(20000):
        f, n, fs = float(rng.uniform(1e3, 3e8)), int(rng.integers(32, 10**7)), float(rng.choice([625e6, 1.25e9, 1e9]))
        assert _whole_cycle(f, n, fs) == float(whole_cycle_hz(f, n, fs))
    for n in (64, 1000, 20000):  # exact half cycles: both round half to even
        for c in range(1, 60):
            f = (c + 0.5) * 625e6 / n
            assert _whole_cycle(f, n, 625e6) == float(whole_cycle_hz(f, n, 625e6)) == round(c + 0.5) * 625e6 / n


def test_a_looped_hold_shorter_than_the_card_minimum_says_so_with_the_shortest_good_hold():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90.3e6, 91.7e6], amps=[0.1, 0.1])
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=0.1e-6)
        .segment("go")
        .tones("H")
        .move(df=1e6, time=10e-6)
    )
    with pytest.warns(SnapWarning, match=r"shorter than the card's shortest segment \(384 samples at 1 channel\(s\)\).*a hold of (\d+) samples") as rec:
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0})
    assert rec[0].filename == __file__  # at the user's line
    note = next(n for n in q.notes if n.kind == "hold_too_short")
    better = note.realised
    assert f"a hold of {better} samples" in note.detail and note.requested == 62
    # independently: at that length both tones need at most 1 kHz, and no shorter legal length does
    for n in range(384, better + 32, 32):
        worst = max(abs(round(f * n / FS) * FS / n - f) for f in (90.3e6, 91.7e6))
        assert (worst <= 1e3) == (n == better), n


@settings(max_examples=60, deadline=None)
@given(snap_programs(), st.sampled_from(["auto", "step", "common"]), st.sampled_from([None, 2e3, 20e3]), st.sampled_from([0.0, 0.02, 0.05]))
def test_the_chain_planner_costs_every_combination_as_planning_each_does(drawn, joint, max_snap_hz, stretch):
    # the planner costs all combinations of lengths of a chain at once: every cost equals the
    # one planning that combination on its own gives, so the first of least cost is the same
    import itertools

    from awgrt.compiler import snap

    b, mapping, card, _ = drawn
    segments = b.build_resolved_ir(sample_rate_hz=FS).segments
    limit_of = snap.snap_limits(max_snap_hz, tuple(s.name for s in segments))
    chains = [c for c in snap._chains(segments) if len(c) > 1]
    for chain in chains:
        tones = snap._chain_tones(segments, chain)
        n_channels = min(c for c in card.channel_counts if c >= len(mapping))
        options = [snap._length_candidates(segments[si], card, n_channels, FS, stretch if segments[si].mode == "wait_trig" else 0.0)[:6] for si in chain]
        combos = list(itertools.product(*options))
        planned = [snap._plan_chain(segments, tones, dict(zip(chain, c)), FS, joint, limit_of).cost for c in combos]
        assert snap._chain_costs(segments, tones, chain, combos, FS, joint, limit_of) == planned
        event(f"{len(combos) > 1} combinations, {min(planned)[0] > 0} problems")


@pytest.mark.parametrize("joint", ["auto", "step", "common"])
def test_the_chain_planner_costs_common_grids_as_planning_each_does(joint):
    # back-to-back holds of 10,240 and about 20,480 samples (a long common grid), tones near it and
    # tones anywhere: costed at once as planned one by one, for each way of joining them
    import itertools

    from awgrt.compiler import snap

    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    grid = FS / 10240  # the common grid of the two: some tones 3 kHz off it, the others anywhere
    b.define("h", logical_channel="H", freqs=[(1150 + 12 * i) * grid + 3e3 if i % 2 else 70.01e6 + 0.731e6 * i for i in range(9)], amps=[0.05] * 9)
    b.define("v", logical_channel="V", freqs=[90.003e6, 91.2e6], amps=[0.2] * 2)
    b.segment("a", mode="loop_n", loops=4).tones("H").use_def("h").tones("V").use_def("v").hold(time=10240 / FS)
    b.segment("b", mode="wait_trig").hold(time=20480 / FS)
    segments = b.build_resolved_ir(sample_rate_hz=FS).segments
    card = CARDS["M4i.6631-x8"]
    limit_of = snap.snap_limits(None, ("a", "b"))
    (chain,) = snap._chains(segments)
    tones = snap._chain_tones(segments, chain)
    options = [snap._length_candidates(segments[0], card, 2, FS, 0.0), snap._length_candidates(segments[1], card, 2, FS, 0.03)]
    combos = list(itertools.product(*options))
    plans = [snap._plan_chain(segments, tones, dict(zip(chain, c)), FS, joint, limit_of) for c in combos]
    assert len(combos) > 10
    assert snap._chain_costs(segments, tones, chain, combos, FS, joint, limit_of) == [p.cost for p in plans]
    # within every segment's bound the common grid's point is each segment's own nearest one; only
    # joint="common" plays a tone on it beyond a bound (a problem the cost counts)
    off_own = [p for p in plans if any(p.played[si, t.tone] != snap._whole_cycle(t.asked_hz, p.lengths[si], FS) for t in tones for si in (0, 1))]
    assert bool(off_own) == (joint == "common")
    assert (min(p.cost for p in plans)[0] > 0) == (joint == "common")


@settings(max_examples=60, deadline=None)
@given(snap_programs(), st.booleans())
def test_applying_a_plan_that_moves_no_tone_changes_nothing(drawn, ring):
    # quantizing skips applying the plan when every held tone plays as asked (a grid of whole
    # cycles, as 1 MHz tones in holds of 625 samples' multiples): applying it must then change no
    # span, no segment, and note and step nothing, moves, ramps, eases and the ring edge included
    from awgrt.compiler import snap

    b, mapping, card, _ = drawn
    segments = b.build_resolved_ir(sample_rate_hz=FS).segments
    n_channels = min(c for c in card.channel_counts if c >= len(mapping))
    padded = tuple(snap.pad_segment(s, card.legal_length(s.n_samples, n_channels)) for s in segments)
    played = {(i, tone): f for i, seg in enumerate(segments) for _, tone, _, f in snap.held_tones(seg)}
    assert played  # every drawn program has looped holds
    out, notes, steps = snap._apply(padded, played, ring)
    assert out == padded
    assert notes == [] and steps == []


@st.composite
def whole_cycle_chains(draw):
    """Back-to-back looped holds of tones on a 1 MHz grid (whole cycles in every whole
    microsecond at 625 MS/s), some holds of whole microseconds and some not, some tones off the
    grid: chains whose best lengths often need no snapping at all, and some that do."""
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    n = draw(st.integers(1, 12))
    sites = sorted(draw(st.sets(st.integers(60, 120), min_size=n, max_size=n)))
    off = draw(st.sampled_from([0.0, 0.0, 0.0, 1234.5]))
    b.define("h", logical_channel="H", freqs=[1e6 * s + off for s in sites], amps=[0.5 / n] * n)
    b.define("v", logical_channel="V", freqs=[95e6], amps=[0.3])
    modes = [draw(st.sampled_from(["loop_n", "wait_trig"])) for _ in range(draw(st.integers(2, 4)))]
    for i, mode in enumerate(modes):
        b.segment(f"s{i}", mode=mode, loops=3 if mode == "loop_n" else 1)
        if i == 0:
            b.tones("H").use_def("h").tones("V").use_def("v")
        us = draw(st.integers(8, 60))
        b.hold(time=(us if draw(st.booleans()) else us + draw(st.floats(0.01, 0.99))) * 1e-6)
    return b


@settings(max_examples=80, deadline=None)
@given(whole_cycle_chains(), st.sampled_from(["auto", "step", "common"]), st.sampled_from([0.0, 0.02, 0.05]))
def test_a_chain_that_needs_no_snapping_is_planned_as_the_full_search_plans_it(b, joint, stretch):
    # the planner takes each segment's best length without costing the other combinations when
    # it already plays every tone as asked; the full search over every combination chooses the same
    import itertools

    from awgrt.compiler import snap

    card = CARDS["M4i.6631-x8"]
    segments = b.build_resolved_ir(sample_rate_hz=FS).segments
    limit_of = snap.snap_limits(None, tuple(s.name for s in segments))
    stretches = {"wait_trig": stretch, "loop_n": stretch / 2}
    for chain in snap._chains(segments):
        snap._CHAIN_CACHE.clear()
        try:
            got = snap._choose_chain(segments, chain, card, 2, FS, stretches, joint, limit_of)
        except QuantizationError:
            continue
        tones = snap._chain_tones(segments, chain)
        options = [snap._length_candidates(segments[si], card, 2, FS, stretches.get(segments[si].mode, 0.0)) for si in chain]
        if math.prod(len(o) for o in options) > snap.MAX_LENGTH_COMBINATIONS:  # the planner's own bound on the search
            options = [o[: max(1, int(snap.MAX_LENGTH_COMBINATIONS ** (1 / len(chain))))] for o in options]
        combos = list(itertools.product(*options))
        costs = [snap._plan_chain(segments, tones, dict(zip(chain, c)), FS, joint, limit_of).cost for c in combos]
        want = combos[min(range(len(combos)), key=lambda c: (costs[c], c))]
        assert tuple(got.lengths[si] for si in chain) == want
        event(f"no snapping needed: {min(costs)[:4] == (0, 0.0, 0, 0.0)}")
