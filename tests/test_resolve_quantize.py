"""Resolve (seconds -> samples), quantize (legal lengths, slots, wrap snapping) and phases.

Expected values are computed here from the rules in the README (exact rational products,
multiples of 32, whole cycles per pass, ...) and measured on the int16 output with the
independent reference in ``tests/reference.py``, never taken from awgrt itself.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from awgrt import CARDS, AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir, resolve_intent_ir
from awgrt.errors import QuantizationError
from tests import reference as ref

FS = 625e6
W = 2048  # fit window (samples)


def _builder(*channels: str) -> AWGProgramBuilder:
    b = AWGProgramBuilder()
    for ch in channels or ("H",):
        b.logical_channel(ch)
    return b


def _legal(n: int, minimum: int) -> int:
    return max(minimum, -(-n // 32) * 32)


def _exact(time_s: float, fs: float = FS) -> Fraction:
    return Fraction(time_s) * Fraction(fs)


def _notes(q, kind: str):
    return [n for n in q.notes if n.kind == kind]


def _spans(seg, channel: str = "H"):
    """[(start, n, [(tone, f0, f1, kind, a0, a1)])] of one channel of a segment."""
    return [(p.start, p.n, [(s.tone, s.f0_hz, s.f1_hz, s.freq_kind, s.a0, s.a1) for s in p.tones]) for p in seg.track(channel).pieces]


def _seg(q, name: str):
    return next(s for s in q.segments if s.name == name)


def _data(compiled, name: str) -> np.ndarray:
    return next(s.data for s in compiled.segments if name in s.names)


def _freq(seg, channel: str = "H", idx: int = 0) -> float:
    """Frequency of tone ``idx`` of a channel held constant over the whole segment."""
    fs_ = {p.tones[idx].f0_hz for p in seg.track(channel).pieces} | {p.tones[idx].f1_hz for p in seg.track(channel).pieces}
    assert len(fs_) == 1, f"tone {idx} of {seg.name} is not constant: {fs_}"
    return fs_.pop()


def _boundary_phases(data_left: np.ndarray, tones_left: list[ref.Tone], data_right: np.ndarray, tones_right: list[ref.Tone], fs: float = FS):
    """Phase (rad) of every tone at the boundary, measured from the end of the left data and from
    the start of the right data. Trajectories are the reference ones with start phase 0."""
    n = len(data_left)
    psi_l, env_l, psi_r, env_r = [], [], [], []
    for t in tones_left:
        t0 = ref.Tone(t.spans, 0.0)
        psi_l.append(t0.phase_cycles(fs)[n - W :] - t0.end_phase_cycles(fs))
        env_l.append(t0.amplitudes()[n - W :])
    for t in tones_right:
        t0 = ref.Tone(t.spans, 0.0)
        psi_r.append(t0.phase_cycles(fs)[:W])
        env_r.append(t0.amplitudes()[:W])
    left = ref.fit_phases(data_left[n - W :], psi_l, env_l)
    right = ref.fit_phases(data_right[:W], psi_r, env_r)
    return left, right


def _holds(n: int, freqs, amps=None) -> list[ref.Tone]:
    amps = amps or [1.0] * len(freqs)
    return [ref.tone(n, f, a0=a) for f, a in zip(freqs, amps)]


def _track_tones(seg, channel: str = "H") -> list[ref.Tone]:
    """Reference tones (trajectories only, start phase 0) of a channel over a whole segment."""
    found = ref.tones_from_pieces(seg.track(channel).pieces, phase0_cycles={s.tone: 0.0 for p in seg.track(channel).pieces for s in p.tones})
    assert all(start == 0 and t.n == seg.n_samples for start, t in found.values())
    return [t for _, t in found.values()]


# ============================================================================ resolve


@pytest.mark.parametrize(
    ("time_s", "fs", "expected"),
    [
        (40e-6, 625e6, 25000),  # float product is 25000.000000000004; exact product rounds to 25000
        (4e-9, 625e6, 3),  # exact product is a hair above 2.5 (the float product 2.5 would go to 2)
        (2.4e-9, 625e6, 1),  # exact product is a hair below 1.5 (the float product 1.5 would go to 2)
        (5 * 2.0**-27, 2.0**26, 2),  # exactly 2.5: tie goes to the even sample
        (7 * 2.0**-27, 2.0**26, 4),  # exactly 3.5: tie goes to the even sample
        (3 * 2.0**-27, 2.0**26, 2),  # exactly 1.5
    ],
)
def test_rounding_is_nearest_sample_of_exact_product_ties_to_even(time_s, fs, expected):
    # the expectations above are hand-derived; check the premise (exact value) independently
    exact = _exact(time_s, fs)
    assert abs(exact - expected) <= Fraction(1, 2)
    r = _builder().define("d", logical_channel="H", freqs=[10e6], amps=[0.5], phases=[0.0]).segment("s").tones("H").use_def("d").hold(time=time_s)
    resolved = r.build_resolved_ir(sample_rate_hz=fs)
    seg = resolved.segments[0]
    assert seg.n_samples == expected
    assert [(p.start, p.n) for p in seg.track("H").pieces] == [(0, expected)]
    assert resolved.n_samples == expected


def test_ten_short_holds_use_cumulative_boundaries():
    b = _builder().define("d", logical_channel="H", freqs=[10e6], amps=[0.5], phases=[0.0]).segment("s").tones("H").use_def("d")
    for _ in range(10):
        b.hold(time=0.1e-6)
    resolved = b.build_resolved_ir(sample_rate_hz=FS)
    pieces = resolved.segments[0].track("H").pieces
    # boundary i is round(i * 0.1 us * fs) of the exact cumulative time; 0.1e-6 is a hair below 1e-7
    bounds = [round(sum([Fraction(0.1e-6)] * i) * Fraction(FS)) for i in range(11)]
    assert bounds[-1] == 625
    assert [p.start for p in pieces] == bounds[:-1]
    assert [p.n for p in pieces] == [62, 63] * 5
    assert resolved.segments[0].n_samples == 625 != 10 * 62
    notes = _notes(resolved, "rounding")
    assert len(notes) == 10
    assert all(n.segment == "s" for n in notes)
    assert sorted(n.realised for n in notes) == [62] * 5 + [63] * 5
    assert all(abs(n.requested - 62.5) < 1e-6 for n in notes)


def test_rounding_note_only_for_ops_off_the_sample_grid():
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=[10e6], amps=[0.5], phases=[0.0])
        .segment("exact")
        .tones("H")
        .use_def("d")
        .hold(time=40e-6)
        .move(df=1e6, time=32e-6)
        .segment("off")
        .tones("H")
        .hold(time=0.1e-6)
        .hold(time=32e-6)
        .segment("shifted")
        .tones("H")
        .hold(time=0.1e-6)
        .hold(time=40e-6)
        .segment("ops")
        .tones("H")
        .move(df=1e6, time=1.00001e-6)
        .ramp_amp_to(amps=0.2, time=1.6e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    assert [p.n for p in resolved.segments[0].track("H").pieces] == [25000, 20000]
    # "off": the first hold wants 62.4999... samples and gets 62; the 32 us hold after it keeps
    # exactly 20000 samples (boundaries 62 and round(20062.4999...) = 20062)
    assert [p.n for p in resolved.segments[1].track("H").pieces] == [62, 20000]
    # "shifted": 40 us is a hair above 25000 samples, so its end boundary 25062.5000...02 rounds
    # up and the hold realises 25001 samples: its length is off the grid too
    assert _exact(0.1e-6) + _exact(40e-6) > Fraction(50125, 2)
    assert [p.n for p in resolved.segments[2].track("H").pieces] == [62, 25001]
    # "ops": a move of 625.00625 samples realises 625; the 1000-sample ramp after it stays whole
    assert [p.n for p in resolved.segments[3].track("H").pieces] == [625, 1000]
    notes = _notes(resolved, "rounding")
    # every op whose length or end is off the sample grid is reported: the whole-length ops that
    # follow an off-grid op ("off" 32 us, "ops" ramp) end off the grid too, so they are listed
    assert [(n.segment, n.realised) for n in notes] == [("off", 62), ("off", 20000), ("shifted", 62), ("shifted", 25001), ("ops", 625), ("ops", 1000)]
    assert notes[0].requested == pytest.approx(float(_exact(0.1e-6)), abs=1e-9)
    assert notes[3].requested == pytest.approx(25000, abs=1e-6)


def test_tone_identity_across_segments():
    resolved = (
        _builder("H", "V")
        .define("h", logical_channel="H", freqs=[80e6, 82e6, 84e6], amps=[0.1] * 3, phases=[0.0] * 3)
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.2], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("h")
        .tones("V")
        .use_def("v")
        .hold(time=4e-6)
        .segment("b")
        .tones("H")
        .move(df=1e6, time=4e-6, idxs=[1])
        .remove_tones(idxs=[0])
        .add_tone(freq=90e6, amp=0.1)
        .hold(time=2e-6)
        .segment("c")
        .tones("H")
        .use_def("h")
        .hold(time=2e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    a, b, c = resolved.segments
    ids_a = [s.tone for s in a.track("H").entry]
    v_id = a.track("V").entry[0].tone
    assert len(set(ids_a)) == 3 and v_id not in ids_a
    # b: the same three tones move/hold, then tone 0 is removed and a new one is added
    assert [s.tone for s in b.track("H").pieces[0].tones] == ids_a
    after = [s.tone for s in b.track("H").pieces[-1].tones]
    assert after[:2] == ids_a[1:]
    new = after[2]
    assert new not in ids_a and new != v_id
    # V keeps its tone through every segment
    assert all(s.tone == v_id for seg in (a, b, c) for p in seg.track("V").pieces for s in p.tones)
    # c: use_def makes new tones, distinct from everything before
    ids_c = [s.tone for s in c.track("H").entry]
    assert len(set(ids_c)) == 3 and not set(ids_c) & {*ids_a, new, v_id}
    assert len(resolved.tone_origins) == 3 + 1 + 1 + 3
    # the moved tone ends b's move at 83 MHz and holds there
    moved = [s for p in b.track("H").pieces for s in p.tones if s.tone == ids_a[1]]
    assert moved[0].f0_hz == 82e6 and moved[0].f1_hz == 83e6 and all(s.f0_hz == s.f1_hz == 83e6 for s in moved[1:])


def _tiling_program():
    return (
        _builder("H", "V")
        .define("h", logical_channel="H", freqs=[80e6, 82e6], amps=[0.1] * 2, phases=[0.0] * 2)
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.2], phases=[0.0])
        .segment("par")
        .tones("H")
        .use_def("h")
        .move(df=1e6, time=10e-6)
        .tones("V")
        .use_def("v")
        .move(df=-1e6, time=20.0001e-6)
        .ramp_amp_to(amps=0.1, time=3.3e-9)
        .segment("sync")
        .tones("H")
        .hold(time=1.23456e-6)
        .add_tone(freq=88e6, amp=0.05)
        .sync()
        .hold(time=0.7e-6)
        .tones("V")
        .hold(time=0.3e-6)
        .segment("short")
        .hold(time=0.05e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )


def _assert_tiles(seg):
    for track in seg.tracks:
        pieces = track.pieces
        assert pieces and pieces[0].start == 0
        for p, q in zip(pieces, pieces[1:]):
            assert p.n > 0 and p.start + p.n == q.start
        assert pieces[-1].start + pieces[-1].n == seg.n_samples


def test_pieces_tile_every_channel_in_resolved_and_quantized():
    resolved = _tiling_program()
    par, sync, short = resolved.segments
    # the segment lasts as long as its longest channel: V's 20.0001 us + 3.3 ns
    assert par.n_samples == round((Fraction(20.0001e-6) + Fraction(3.3e-9)) * Fraction(FS))
    assert par.track("H").pieces[0].n == 6250
    for seg in resolved.segments:
        _assert_tiles(seg)
    q = quantize_resolved_ir(resolved, {"H": 0, "V": 1})
    for seg, before in zip(q.segments, resolved.segments):
        _assert_tiles(seg)
        assert seg.n_samples == _legal(before.n_samples, 192)
    assert _seg(q, "short").n_samples == 192


# ============================================================================ quantize: lengths and slots


@pytest.mark.parametrize(
    ("channels", "mapping", "card", "n_channels", "minimum"),
    [
        (("H",), {"H": 0}, "M4i.6631-x8", 1, 384),
        (("H", "V"), {"H": 0, "V": 1}, "M4i.6631-x8", 2, 192),
        (("H",), {"H": 1}, "M4i.6621-x8", 2, 192),
        (("H",), {"H": 3}, "M4i.6622-x8", 4, 96),
    ],
)
def test_minimum_length_and_enabled_channels(channels, mapping, card, n_channels, minimum):
    b = _builder(*channels)
    for ch in channels:
        b.define(f"d{ch}", logical_channel=ch, freqs=[50e6], amps=[0.4], phases=[0.0])
    b.segment("tiny")
    for ch in channels:
        b.tones(ch).use_def(f"d{ch}")
    b.hold(time=0.05e-6)  # 31.25 samples -> 31
    b.segment("odd")
    b.hold(time=1.6e-6)  # 1000 samples -> 1024
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), mapping, card=card)
    assert q.n_channels == n_channels
    assert [s.n_samples for s in q.segments] == [minimum, _legal(1000, minimum)]
    padded = _notes(q, "length_padded")
    assert [(n.segment, n.requested, n.realised) for n in padded] == [("tiny", 31, minimum), ("odd", 1000, _legal(1000, minimum))]
    compiled = compile_sequence_program(q)
    for seg in compiled.segments:
        assert seg.data.shape == (seg.n_samples, n_channels)
        assert seg.n_samples % 32 == 0 and seg.n_samples >= minimum
        used = sorted(mapping.values())
        unused = [c for c in range(n_channels) if c not in used]
        assert not seg.data[:, unused].any()
        assert all(np.abs(seg.data[:, c]).max() > 1000 for c in used)
    compiled.validate()
    # the padded samples continue the held tone: one sinusoid fits the whole padded segment
    data = _data(compiled, "odd")[:, used[0]]
    fit = ref.fit_phases(data, [ref.hold_phase(0, len(data), 50e6, FS)])
    assert fit.residual_rms < 0.6
    assert fit.amplitudes[0] == pytest.approx(0.4 * 32767, rel=1e-4)


def test_slot_count_is_padded_to_a_power_of_two():
    b = _builder().define("d", logical_channel="H", freqs=[50e6], amps=[0.4], phases=[0.0]).segment("a").tones("H").use_def("d").hold(time=1e-6)
    q1 = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    assert q1.slots == 2
    assert [(n.requested, n.realised) for n in _notes(q1, "slots_padded")] == [(1, 2)]
    b.segment("b").tones("H").move(df=1e6, time=1e-6).segment("c").tones("H").ramp_amp_to(amps=0.1, time=1e-6)
    q3 = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    assert q3.slots == 4 and len(set(q3.segment_slot)) == 3
    assert [(n.requested, n.realised) for n in _notes(q3, "slots_padded")] == [(3, 4)]
    compiled = compile_sequence_program(q3)
    assert len(compiled.segments) == 3
    assert compiled.max_segments == 4
    b.segment("d").tones("H").ramp_amp_to(amps=0.2, time=1e-6)
    q4 = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    assert q4.slots == 4 and not _notes(q4, "slots_padded")


F_WHOLE = FS / 64  # 64 samples per cycle exactly: a 2048-sample hold is 32 whole cycles
T_WHOLE = 2048 / FS


def test_identical_segments_share_one_slot():
    # a: the tone is born at phase 0 and advances exactly 32 cycles, so b ("continue") starts
    # where a did; d resets to the defined phase ("manual"): a, b and d play the same samples
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=[F_WHOLE], amps=[0.4], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("d")
        .hold(time=T_WHOLE)
        .segment("b")
        .hold(time=T_WHOLE)
        .segment("c")
        .tones("H")
        .ramp_amp_to(amps=0.2, time=T_WHOLE)
        .segment("d", phase_mode="manual", phases={"H": [0.0]})
        .tones("H")
        .ramp_amp_to(amps=0.4, time=T_WHOLE / 2)
        .segment("e", phase_mode="manual")
        .hold(time=T_WHOLE)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    compiled = compile_sequence_program(q)
    assert [s.n_samples for s in q.segments] == [2048, 2048, 2048, 1024, 2048]
    assert len(compiled.steps) == 5
    assert len(compiled.segments) == 3 < len(compiled.steps)
    assert [st.segment for st in compiled.steps] == [0, 0, 1, 2, 0]
    assert compiled.segments[0].names == ("a", "b", "e")
    shared = _notes(q, "slots_shared")
    assert len(shared) == 1 and "'b'" in shared[0].detail and "'e'" in shared[0].detail
    assert (shared[0].requested, shared[0].realised) == (5, 3)
    assert q.slots == 4
    # what the shared slot holds: the hold at phase 0 (reference, independent)
    expected, _ = ref.to_int16(ref.synthesize([ref.tone(2048, F_WHOLE, a0=0.4)], FS))
    assert np.abs(compiled.segments[0].data[:, 0].astype(int) - expected).max() <= 1
    compiled.validate()


def test_whole_cycle_holds_with_a_nonzero_phase_share_a_slot():
    # same as above with a start phase of 0.25 rad: b's samples equal a's exactly (README:
    # "Segments with identical samples share one memory slot")
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=[F_WHOLE], amps=[0.4], phases=[0.25])
        .segment("a")
        .tones("H")
        .use_def("d")
        .hold(time=T_WHOLE)
        .segment("b")
        .hold(time=T_WHOLE)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    compiled = compile_sequence_program(q)
    expected, _ = ref.to_int16(ref.synthesize([ref.tone(2048, F_WHOLE, a0=0.4, phase0_cycles=0.25 / (2 * math.pi))], FS))
    data = [compiled.segments[st.segment].data[:, 0] for st in compiled.steps]
    assert all(np.abs(d.astype(int) - expected).max() <= 1 for d in data)
    assert np.array_equal(data[0], data[1])
    assert compiled.steps[0].segment == compiled.steps[1].segment
    assert len(compiled.segments) == 1


# ============================================================================ quantize: wrap snapping


def _grid(f: float, n: int, fs: float = FS) -> float:
    return round(f * n / fs) * fs / n


@pytest.mark.parametrize(("mode", "loops"), [("wait_trig", 1), ("loop_n", 5)])
def test_looped_hold_snaps_every_tone_to_whole_cycles_per_pass(mode, loops):
    freqs = [90e6, 91.01e6, 95.123457e6]  # 90 MHz is 2880 cycles per 20000 samples already
    b = (
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2] * 3, phases=[0.0, 1.0, 2.0])
        .segment("loop", mode=mode, loops=loops)
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
    )
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), stretch_wait_trig=0.0)
    compiled = compile_sequence_program(q)
    data = _data(compiled, "loop")[:, 0]
    n = len(data)
    assert n == 20000
    seg = _seg(q, "loop")
    snapped = [_freq(seg, "H", i) for i in range(3)]
    for f, f_req in zip(snapped, freqs):
        cycles = f * n / FS
        assert abs(cycles - round(cycles)) < 1e-6
        assert abs(f - f_req) <= FS / (2 * n) + 1e-6
        assert f == pytest.approx(_grid(f_req, n), abs=1e-6)
    notes = _notes(q, "frequency_snapped")
    shifted = [f for f in freqs if _grid(f, n) != f]
    assert len(shifted) == 2
    assert sorted(n_.requested for n_ in notes) == sorted(shifted)
    assert all(n_.realised == pytest.approx(_grid(n_.requested, n), abs=1e-6) for n_ in notes)
    # the samples really hold the snapped frequencies (not the requested ones) and wrap seamlessly
    fit = ref.fit_phases(data, [ref.hold_phase(0, n, f, FS) for f in snapped])
    assert fit.residual_rms < 0.6
    bad = ref.fit_phases(data, [ref.hold_phase(0, n, f, FS) for f in freqs])
    assert bad.residual_rms > 50
    left, right = _boundary_phases(data, _holds(n, snapped), data, _holds(n, snapped))
    assert np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max() < 1e-3
    wraps = [bd for bd in q.boundaries if bd.kind == "wrap"]
    assert [(bd.from_segment, bd.continuous) for bd in wraps] == [("loop", True)]


def test_moves_into_and_out_of_a_snapped_hold_use_the_snapped_frequency():
    f0 = [90.01e6, 70.02e6]
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=f0, amps=[0.2, 0.3], phases=[0.0, 0.5])
        .segment("in")
        .tones("H")
        .use_def("d")
        .move(df=1e6, time=10e-6)
        .segment("hold", mode="wait_trig")
        .hold(time=32e-6)
        .segment("out")
        .tones("H")
        .move(df=-1e6, time=10e-6)
        .last_step("end")
        .build_resolved_ir(sample_rate_hz=FS)
    )
    hold = _seg(q, "hold")
    n = hold.n_samples
    for i, f_start in enumerate(f0):
        f = _freq(hold, "H", i)
        assert abs(f * n / FS - round(f * n / FS)) < 1e-6
        assert abs(f - (f_start + 1e6)) <= FS / (2 * n)
        assert f != f_start + 1e6
        move_in = _seg(q, "in").track("H").pieces[0].tones[i]
        move_out = _seg(q, "out").track("H").pieces[0].tones[i]
        assert move_in.f0_hz == f_start and move_in.f1_hz == f
        assert move_out.f0_hz == f and move_out.f1_hz == f_start
        # the padding after the move into the hold holds the snapped frequency too
        assert all(s.f0_hz == s.f1_hz == f for p in _seg(q, "in").track("H").pieces[1:] for s in [p.tones[i]])
    assert len(_notes(q, "frequency_snapped")) == 2
    assert all(bd.continuous for bd in q.boundaries)
    # measured: phase continuous at both boundaries
    compiled = compile_sequence_program(q)
    segs = [_seg(q, name) for name in ("in", "hold", "out")]
    datas = [_data(compiled, s.name)[:, 0] for s in segs]
    for (sa, da), (sb, db) in zip(zip(segs, datas), list(zip(segs, datas))[1:]):
        left, right = _boundary_phases(da, _track_tones(sa), db, _track_tones(sb))
        assert np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max() < 1e-3, (sa.name, sb.name)


@pytest.mark.parametrize(("mode", "loops"), [("once", 1), ("loop_n", 1)])
def test_segments_that_do_not_loop_are_not_snapped(mode, loops):
    freqs = [91.01e6, 77.7777e6]
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2] * 2, phases=[0.0] * 2)
        .segment("s", mode=mode, loops=loops)
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    seg = _seg(q, "s")
    assert [_freq(seg, "H", i) for i in range(2)] == freqs
    assert not _notes(q, "frequency_snapped")
    assert seg.n_samples == 20000
    assert not [bd for bd in q.boundaries if bd.kind == "wrap"]


def test_two_looped_holds_get_their_own_grids_and_the_segment_between_eases():
    f_req = 90.01e6
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=[f_req], amps=[0.3], phases=[0.0])
        .segment("a", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .segment("b")
        .hold(time=10e-6)
        .segment("c", mode="loop_n", loops=3)
        .hold(time=20.48e-6)
        .last_step("end")
        .build_resolved_ir(sample_rate_hz=FS)
    )
    a, b, c = (_seg(q, x) for x in "abc")
    fa, fc = _freq(a), _freq(c)
    assert c.n_samples == 12800
    for f, n in ((fa, a.n_samples), (fc, c.n_samples)):
        assert abs(f * n / FS - round(f * n / FS)) < 1e-6
        assert abs(f - f_req) <= FS / (2 * n)
    assert fc == pytest.approx(_grid(f_req, 12800), abs=1e-6)
    assert fa != fc
    # b eases from a's grid to c's
    tb = [p.tones[0] for p in b.track("H").pieces]
    assert tb[0].f0_hz == fa and tb[-1].f1_hz == fc
    assert any(s.f0_hz != s.f1_hz for s in tb)
    eased = _notes(q, "frequency_eased")
    assert [(n.segment, n.requested, n.realised) for n in eased] == [("b", fa, fc)]
    assert len(_notes(q, "frequency_snapped")) == 2
    # the whole output is frequency continuous: every span ends where the next one starts
    spans = [p.tones[0] for s in q.segments for p in s.track("H").pieces]
    assert all(x.f1_hz == y.f0_hz for x, y in zip(spans, spans[1:]))
    assert all(bd.continuous for bd in q.boundaries)
    # measured on the samples: phase continuous at every edge (wraps of a and c, a->b, b->c)
    compiled = compile_sequence_program(q)
    datas = {s.name: _data(compiled, s.name)[:, 0] for s in (a, b, c)}
    for x, y in (("a", "a"), ("a", "b"), ("b", "c"), ("c", "c")):
        left, right = _boundary_phases(datas[x], _track_tones(_seg(q, x)), datas[y], _track_tones(_seg(q, y)))
        assert abs(ref.wrap_rad(left.phases_rad[0] - right.phases_rad[0])) < 1e-3, (x, y)
    # b's samples follow the eased trajectory (a smooth chirp between the two grids)
    ref_b, _ = ref.to_int16(ref.synthesize_pieces(b.track("H").pieces, FS, b.n_samples))
    assert np.abs(datas["b"].astype(int) - ref_b).max() <= 1


def test_max_snap_hz_bounds_the_shift():
    f = 91.01e6  # 2912.32 cycles per 20000 samples: snapping to 2912 moves it by -10 kHz
    shift = _grid(f, 20000) - f
    assert shift == pytest.approx(-10e3, abs=1e-3)
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=[f], amps=[0.3], phases=[0.0])
        .segment("loop", mode="loop_n", loops=2)
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    with pytest.raises(QuantizationError, match="max_snap_hz") as exc:
        quantize_resolved_ir(resolved, max_snap_hz=5e3)
    assert exc.value.segment == "loop"
    q = quantize_resolved_ir(resolved, max_snap_hz=10.001e3)
    assert _freq(_seg(q, "loop")) == pytest.approx(f + shift, abs=1e-6)
    with pytest.raises(QuantizationError):
        quantize_resolved_ir(resolved, max_snap_hz=9.999e3)


def test_snap_false_leaves_the_wrap_discontinuous():
    f = 91.01e6
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=[f], amps=[0.3], phases=[0.0])
        .segment("loop", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    q = quantize_resolved_ir(resolved, snap=False)
    seg = _seg(q, "loop")
    assert seg.n_samples == 20000  # not stretched either
    assert _freq(seg) == f
    assert not _notes(q, "frequency_snapped")
    wraps = [bd for bd in q.boundaries if bd.kind == "wrap"]
    assert len(wraps) == 1 and not wraps[0].continuous
    assert any("phase" in r for r in wraps[0].reasons)
    # measured: the phase jumps at the wrap by 2 pi frac(f n / fs)
    data = _data(compile_sequence_program(q), "loop")[:, 0]
    left, right = _boundary_phases(data, _holds(20000, [f]), data, _holds(20000, [f]))
    expected_jump = 2 * math.pi * ((f * 20000 / FS) % 1.0)
    assert abs(ref.wrap_rad(left.phases_rad[0] - right.phases_rad[0] - expected_jump)) < 1e-3
    assert abs(ref.wrap_rad(expected_jump)) > 0.5


def _worst_shift(freqs, m):
    return max(abs(_grid(f, m) - f) for f in freqs)


def _stretch_program():
    freqs = [91.01e6, 77.7e6]
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2] * 2, phases=[0.0] * 2)
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    return freqs, resolved


def test_wait_trig_length_stretches_to_need_less_snapping():
    freqs, resolved = _stretch_program()
    q = quantize_resolved_ir(resolved)  # default stretch_wait_trig = 2 %
    n = _seg(q, "wait").n_samples
    assert n > 20000 and n % 32 == 0
    # at least as good as the best length within 2 %, and far better than no stretch
    within = list(range(20000, 20400 + 1, 32))
    assert _worst_shift(freqs, n) <= min(_worst_shift(freqs, m) for m in within) + 1e-3
    assert _worst_shift(freqs, n) < 0.5 * _worst_shift(freqs, 20000)
    padded = [x for x in _notes(q, "length_padded") if x.segment == "wait"]
    assert [(x.requested, x.realised) for x in padded] == [(20000, n)]
    assert str(n - 20000) in padded[0].detail
    # the snapped tones are on the stretched length's grid, the shift is what that grid needs
    for i, f_req in enumerate(freqs):
        f = _freq(_seg(q, "wait"), "H", i)
        assert abs(f * n / FS - round(f * n / FS)) < 1e-6
        assert f == pytest.approx(_grid(f_req, n), abs=1e-6)
    # no stretch asked: the shortest legal length
    assert _seg(quantize_resolved_ir(resolved, stretch_wait_trig=0.0), "wait").n_samples == 20000


def test_wait_trig_stretch_stays_within_the_allowed_fraction():
    # README: "wait_trig segments may grow by up to 2 %": 20000 samples may become at most 20400
    # (20384 on the 32-sample grid); the best length in that range for these tones is 20320
    freqs, resolved = _stretch_program()
    for stretch in (0.02, 0.01):
        n = _seg(quantize_resolved_ir(resolved, stretch_wait_trig=stretch), "wait").n_samples
        allowed = [m for m in range(20000, 21000, 32) if m <= 20000 * (1 + stretch)]
        assert n <= 20000 * (1 + stretch), (stretch, n)
        best = min(_worst_shift(freqs, m) for m in allowed)
        assert n == min(m for m in allowed if _worst_shift(freqs, m) <= best + 1e-3)


def test_stretching_a_wait_trig_next_to_another_looped_hold_does_not_worsen_snapping():
    # a wait_trig hold played back to back with a loop_n hold of the same tone: the two share one
    # grid, fs / gcd(lengths). Unstretched (20000 and 20000 samples) that grid is 31.25 kHz and
    # 91.01 MHz moves by 10 kHz; stretching only the wait_trig must not make the shared grid coarser
    f = 91.01e6
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=[f], amps=[0.3], phases=[0.0])
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .segment("loop", mode="loop_n", loops=4)
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    unstretched = quantize_resolved_ir(resolved, stretch_wait_trig=0.0)
    assert _freq(_seg(unstretched, "wait")) == _freq(_seg(unstretched, "loop")) == pytest.approx(91.0e6, abs=1e-6)
    q = quantize_resolved_ir(resolved)  # default stretch
    n_wait, n_loop = _seg(q, "wait").n_samples, _seg(q, "loop").n_samples
    fw, fl = _freq(_seg(q, "wait")), _freq(_seg(q, "loop"))
    assert fw == fl
    for n in (n_wait, n_loop):
        assert abs(fw * n / FS - round(fw * n / FS)) < 1e-6
    assert abs(fw - f) <= FS / (2 * 20000), f"snapped {f / 1e6:.6f} MHz to {fw / 1e6:.6f} MHz with lengths {n_wait} and {n_loop}"


def test_loop_n_length_is_not_stretched_by_default():
    freqs = [91.01e6, 77.7e6]
    resolved = (
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2] * 2, phases=[0.0] * 2)
        .segment("loop", mode="loop_n", loops=3)
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .build_resolved_ir(sample_rate_hz=FS)
    )
    q = quantize_resolved_ir(resolved)
    assert _seg(q, "loop").n_samples == 20000
    assert not _notes(q, "length_padded")
    for i, f_req in enumerate(freqs):
        assert _freq(_seg(q, "loop"), "H", i) == pytest.approx(_grid(f_req, 20000), abs=1e-6)
    # asked for: it stretches like wait_trig does
    assert _seg(quantize_resolved_ir(resolved, stretch_loop_n=0.02), "loop").n_samples > 20000


# ============================================================================ phases


def test_continue_keeps_every_tone_phase_across_boundaries():
    freqs = [80.3e6, 91.7e6, 103.1e6]
    given = [0.1, 1.0, 2.0]
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2, 0.25, 0.3], phases=given)
        .segment("a")
        .tones("H")
        .use_def("d")
        .hold(time=20e-6)
        .segment("b")
        .tones("H")
        .move(df=1.5e6, time=16e-6, idxs=[1])
        .segment("c")
        .tones("H")
        .ramp_amp_to(amps=0.1, time=12.8e-6, idxs=[0], kind="cosine")
        .last_step("end")
        .build_resolved_ir(sample_rate_hz=FS)
    )
    compiled = compile_sequence_program(q)
    na, nb, nc = 12512, 10016, 8000  # 12500, 10000 and 8000 samples grown to multiples of 32
    assert [s.n_samples for s in compiled.segments] == [na, nb, nc]
    da, db, dc = (s.data[:, 0] for s in compiled.segments)
    amps = [0.2, 0.25, 0.3]
    tones_a = [ref.tone(na, f, a0=a) for f, a in zip(freqs, amps)]
    tones_b = [
        ref.tone(nb, freqs[0], a0=amps[0]),
        ref.Tone((ref.Span(10000, freqs[1], freqs[1] + 1.5e6, "linear", amps[1]), ref.Span(16, freqs[1] + 1.5e6, a0=amps[1]))),
        ref.tone(nb, freqs[2], a0=amps[2]),
    ]
    tones_c = [
        ref.tone(nc, freqs[0], a0=amps[0], a1=0.1, amp_shape="cosine"),
        ref.tone(nc, freqs[1] + 1.5e6, a0=amps[1]),
        ref.tone(nc, freqs[2], a0=amps[2]),
    ]
    # start of a: the defined phases
    start = ref.fit_phases(da[:W], [t.phase_cycles(FS)[:W] for t in tones_a])
    assert np.abs(ref.wrap_rad(start.phases_rad - given)).max() < 1e-3
    for left_data, left_tones, right_data, right_tones in ((da, tones_a, db, tones_b), (db, tones_b, dc, tones_c)):
        left, right = _boundary_phases(left_data, left_tones, right_data, right_tones)
        assert np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max() < 1e-3
        assert left.residual_rms < 0.6 and right.residual_rms < 0.6
    assert all(bd.continuous for bd in q.boundaries)
    # and the expected absolute phase at the start of c, integrated by the reference from a's start
    whole = [ref.Tone(ta.spans + tb.spans, g / (2 * math.pi)) for ta, tb, g in zip(tones_a, tones_b, given)]
    fit_c = ref.fit_phases(dc[:W], [ref.Tone(t.spans, 0.0).phase_cycles(FS)[:W] for t in tones_c], [t.amplitudes()[:W] for t in tones_c])
    expected_c = np.array([2 * math.pi * t.end_phase_cycles(FS) for t in whole])
    assert np.abs(ref.wrap_rad(fit_c.phases_rad - expected_c)).max() < 1e-3


def _comb(n_tones=10, f0=80e6, df=1e6, amp=0.08):
    return [f0 + df * i for i in range(n_tones)], [amp] * n_tones


def test_optimise_resets_phases_and_lowers_the_crest_factor():
    freqs, amps = _comb()
    q = quantize_resolved_ir(
        _builder()
        .define("zero", logical_channel="H", freqs=freqs, amps=amps, phases=[0.0] * 10)
        .segment("zero")
        .tones("H")
        .use_def("zero")
        .hold(time=16e-6)
        .segment("opt", phase_mode="optimise")
        .hold(time=16e-6)
        .last_step("end")
        .build_resolved_ir(sample_rate_hz=FS)
    )
    compiled = compile_sequence_program(q)
    dz, do = _data(compiled, "zero")[:, 0], _data(compiled, "opt")[:, 0]
    cf_zero, cf_opt = ref.crest_factor(dz), ref.crest_factor(do)
    assert cf_zero > 3.5  # ten aligned tones: close to sqrt(2 * 10)
    assert cf_opt < 0.7 * cf_zero
    edges = [bd for bd in q.boundaries if (bd.from_segment, bd.to_segment) == ("zero", "opt")]
    assert len(edges) == 1 and not edges[0].continuous
    assert any("phase" in r for r in edges[0].reasons)
    # measured: the phases do jump at the boundary
    n = len(dz)
    left, right = _boundary_phases(dz, _holds(n, freqs), do, _holds(len(do), freqs))
    assert np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad)).max() > 0.1
    assert any(x.segment == "opt" for x in _notes(q, "phases_optimised"))


def test_manual_phases_start_where_given():
    freqs = [80.3e6, 91.7e6, 103.1e6]
    defined = [0.5, -1.5, 2.5]
    given = [0.3, 1.2, -2.0]
    q = quantize_resolved_ir(
        _builder()
        .define("d", logical_channel="H", freqs=freqs, amps=[0.2] * 3, phases=defined)
        .segment("a")
        .tones("H")
        .use_def("d")
        .hold(time=12.8e-6)
        .segment("b", phase_mode="manual", phases={"H": given})
        .hold(time=12.8e-6)
        .segment("c", phase_mode="manual")
        .hold(time=12.8e-6)
        .last_step("end")
        .build_resolved_ir(sample_rate_hz=FS)
    )
    compiled = compile_sequence_program(q)
    for name, want in (("a", defined), ("b", given), ("c", defined)):
        data = _data(compiled, name)[:, 0]
        fit = ref.fit_phases(data[:W], [ref.hold_phase(0, W, f, FS) for f in freqs])
        assert np.abs(ref.wrap_rad(fit.phases_rad - np.array(want))).max() < 1e-3, name
        assert fit.amplitudes == pytest.approx([0.2 * 32767] * 3, rel=1e-3)
    assert not next(bd for bd in q.boundaries if bd.to_segment == "b").continuous


def test_auto_phases_give_a_lower_crest_factor_than_zero_phases():
    freqs, amps = _comb(f0=70e6, df=1.5e6)
    crest = {}
    for phases in ("auto", [0.0] * 10):
        q = quantize_resolved_ir(
            _builder()
            .define("d", logical_channel="H", freqs=freqs, amps=amps, phases=phases)
            .segment("s")
            .tones("H")
            .use_def("d")
            .hold(time=16e-6)
            .build_resolved_ir(sample_rate_hz=FS)
        )
        crest[str(phases)] = ref.crest_factor(compile_sequence_program(q).segments[0].data[:, 0])
    assert crest[str([0.0] * 10)] > 3.5
    assert crest["auto"] < 0.7 * crest[str([0.0] * 10)]


def _quick_start(last_step="ring"):
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("init_H", logical_channel="H", freqs=[90e6], amps=[0.3], phases="auto")
        .define("init_V", logical_channel="V", freqs=[100e6], amps=[0.3], phases="auto")
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("init_H")
        .tones("V")
        .use_def("init_V")
        .hold(time=200e-6)
        .segment("chirp_H", mode="once")
        .tones("H")
        .move(df=+2e6, time=50e-6, idxs=[0])
        .last_step(last_step)
    )
    return quantize_resolved_ir(resolve_intent_ir(b.build_intent_ir(), FS), logical_channel_to_hardware_channel={"H": 0, "V": 1})


def test_report_lists_every_discontinuous_step_graph_edge_with_reasons():
    q = _quick_start()
    compiled = compile_sequence_program(q, gain=1.0, clip=0.9, full_scale=32767)
    report = compiled.report
    # the step graph: wait wraps onto itself, wait -> chirp_H, and the ring chirp_H -> wait
    assert sorted((bd.kind, bd.from_segment, bd.to_segment) for bd in report.boundaries) == [
        ("next", "wait", "chirp_H"),
        ("ring", "chirp_H", "wait"),
        ("wrap", "wait", "wait"),
    ]
    bad = report.discontinuities
    assert [(bd.kind, bd.from_segment, bd.to_segment) for bd in bad] == [("ring", "chirp_H", "wait")]
    # H ends the chirp 2 MHz above where wait starts it
    assert any("H" in r and "frequency" in r for r in bad[0].reasons)
    text = str(report)
    ring_line = next(line for line in text.splitlines() if "chirp_H -> wait" in line)
    assert "NOT continuous" in ring_line and "frequency" in ring_line
    # measured: H really is continuous into the chirp (fit with the wait's snapped frequency and a chirp from it)
    wait, chirp = _seg(q, "wait"), _seg(q, "chirp_H")
    dw, dc = _data(compiled, "wait"), _data(compiled, "chirp_H")
    for col, ch in ((0, "H"), (1, "V")):
        left, right = _boundary_phases(dw[:, col], _track_tones(wait, ch), dc[:, col], _track_tones(chirp, ch))
        assert abs(ref.wrap_rad(left.phases_rad[0] - right.phases_rad[0])) < 1e-3, ch
    # the chirp ends 2 MHz up: at the ring the frequency jumps back
    f_end = chirp.track("H").exit[0].f1_hz
    assert abs(f_end - _freq(wait, "H") - 2e6) < 1e4
    # ending the sequence instead removes the ring edge, and with it every discontinuity
    ended = compile_sequence_program(_quick_start("end"))
    assert not ended.report.discontinuities
    assert "ring" not in {bd.kind for bd in ended.report.boundaries}


def test_quantize_rejects_a_sample_rate_the_card_cannot_clock():
    resolved = _builder().define("d", logical_channel="H", freqs=[50e6], amps=[0.4], phases=[0.0]).segment("a").tones("H").use_def("d").hold(time=1e-6)
    with pytest.raises(Exception, match="sample rate"):
        quantize_resolved_ir(resolved.build_resolved_ir(sample_rate_hz=1e9), card=CARDS["M4i.6621-x8"])


def _back_to_back(joint: str):
    b = (
        _builder()
        .define("d", logical_channel="H", freqs=[91.01e6, 120.3e6], amps=[0.2, 0.2], phases=[0.0, 0.0])
        .segment("a", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
        .segment("b", mode="loop_n", loops=4)
        .hold(time=20e-6)
    )
    return quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), joint=joint)


def test_back_to_back_looped_holds_of_different_lengths_step_within_their_own_bounds_by_default():
    # 32 us (20000 samples, stretched a little) and 20 us (12512 samples): their common grid
    # fs / gcd is far coarser than either bound, so each snaps to its own grid and steps
    q = _back_to_back("auto")
    a, b = q.segments
    assert math.gcd(a.n_samples, b.n_samples) < b.n_samples
    for seg in (a, b):
        for s, want in zip(seg.track("H").entry, [91.01e6, 120.3e6]):
            assert s.f0_hz * seg.n_samples / FS == pytest.approx(round(s.f0_hz * seg.n_samples / FS), abs=1e-6)
            assert abs(s.f0_hz - want) <= FS / (2 * seg.n_samples) + 1e-6
    # the ring edge (b back to a) is crossed the same way: a phase-continuous step
    assert {(st.from_segment, st.to_segment) for st in q.frequency_steps} == {("a", "b"), ("b", "a")}
    for kind in ("next", "ring"):
        edge = next(x for x in q.boundaries if x.kind == kind)
        assert not edge.continuous and edge.phase_continuous
        assert "phase-continuous" in edge.summary()


def test_back_to_back_looped_holds_of_equal_length_share_their_grid():
    b = (
        _builder()
        .define("d", logical_channel="H", freqs=[91.01e6, 120.3e6], amps=[0.2, 0.2], phases=[0.0, 0.0])
        .segment("a", mode="loop_n", loops=3)
        .tones("H")
        .use_def("d")
        .hold(time=20e-6)
        .segment("b", mode="loop_n", loops=4)
        .hold(time=20e-6)
    )
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    a, b = q.segments
    assert a.n_samples == b.n_samples == 12512
    assert [s.f0_hz for s in a.track("H").entry] == [s.f0_hz for s in b.track("H").entry]
    assert not q.frequency_steps and all(x.continuous for x in q.boundaries)


def test_joint_common_refuses_a_common_grid_beyond_the_bound():
    with pytest.raises(QuantizationError, match="common grid") as exc:
        _back_to_back("common")
    assert exc.value.segment == "a" and exc.value.op == "snap wrap"


def test_joint_step_snaps_each_looped_hold_to_its_own_grid_and_steps_between():
    q = _back_to_back("step")
    a, b = q.segments
    fa = [s.f0_hz for s in a.track("H").entry]
    fb = [s.f0_hz for s in b.track("H").entry]
    for f, n in [(f, a.n_samples) for f in fa] + [(f, b.n_samples) for f in fb]:
        assert f * n / FS == pytest.approx(round(f * n / FS), abs=1e-6)
    # each grid is fine, so every tone stays within half its own grid of where it was asked
    for f, want in zip(fa, [91.01e6, 120.3e6]):
        assert abs(f - want) <= FS / a.n_samples / 2 + 1e-6
    for f, want in zip(fb, [91.01e6, 120.3e6]):
        assert abs(f - want) <= FS / b.n_samples / 2 + 1e-6
    steps = _notes(q, "frequency_step")
    assert sorted(n.segment for n in steps) == ["a", "a", "b", "b"]  # a -> b, and b -> a at the ring edge
    edge = next(x for x in q.boundaries if x.kind == "next")
    assert not edge.continuous and all("frequency jumps" in r for r in edge.reasons)
    # the phase still carries over: the samples of b start where a's tones left off
    compiled = compile_sequence_program(q)
    end_phases = {tid: t.end_phase_cycles(FS) for tid, (_, t) in ref.tones_from_pieces(a.track("H").pieces).items()}
    head = ref.synthesize_pieces(b.track("H").pieces, FS, b.n_samples, phase0_cycles=end_phases)
    want_b, _ = ref.to_int16(head)
    got_b = compiled.segment_for_step(1).data[:, 0]
    assert np.abs(got_b.astype(int) - want_b.astype(int)).max() <= 1


def test_unknown_joint_is_rejected():
    with pytest.raises(QuantizationError, match="joint"):
        _back_to_back("merge")


def test_remembered_segments_resolve_exactly_like_a_cold_walk():
    # the resolver remembers segments by their intent and the walk state they start from: a scan
    # of edits (amplitudes, added tones, a changed definition, reordered segments) resolved warm
    # must equal the same programs resolved with nothing remembered
    from awgrt.compiler import resolve as resolve_module

    def program(amp: float, extra: bool, freq: float, swap: bool) -> AWGProgramBuilder:
        b = _builder("H", "V")
        b.define("d", logical_channel="H", freqs=[freq, 91e6], amps=[0.2, 0.2], phases="auto")
        b.define("v", logical_channel="V", freqs=[80e6], amps=[0.3])
        b.segment("a", mode="wait_trig").tones("H").use_def("d").tones("V").use_def("v").hold(time=1.6e-6)
        names = ["b", "c"] if not swap else ["c", "b"]
        for name in names:
            b.segment(name).tones("H").ramp_amp_to(amps=[amp if name == "b" else 0.1], idxs=[0], time=1.1e-6)
        if extra:
            b.segment("x").tones("H").add_tone(freq=97e6, amp=0.05).hold(time=0.7e-6)
        b.segment("z").tones("V").move(df=1e6, time=1.3e-6).tones("H").hold(time=1.3e-6)
        return b

    points = [
        (0.3, False, 88e6, False),
        (0.35, False, 88e6, False),
        (0.3, True, 88e6, False),
        (0.3, True, 88.5e6, False),
        (0.3, True, 88e6, True),
        (0.3, False, 88e6, False),
    ]
    resolve_module._SEGMENT_CACHE.clear()
    warm = [resolve_intent_ir(program(*p).build_intent_ir(), FS) for p in points]
    assert len(resolve_module._SEGMENT_CACHE) < 5 * len(points)  # segments were reused
    for p, got in zip(points, warm):
        resolve_module._SEGMENT_CACHE.clear()
        cold = resolve_intent_ir(program(*p).build_intent_ir(), FS)
        assert got == cold, p


def test_a_span_of_whole_cycles_turns_a_phase_by_exactly_nothing() -> None:
    # the phase a span adds, less whole cycles, against exact rational arithmetic; at the
    # frequency nearest whole cycles (m fs / n rounded once, as wrap snapping makes it) it adds
    # exactly 0.0, so the phase after it is bit for bit the phase before
    from awgrt.ir.shapes import span_turn

    rng = np.random.default_rng(11)
    for _ in range(300):
        n = 32 * int(rng.integers(1, 200_000))
        m = int(rng.integers(1, n // 3))
        f = m * FS / n
        assert abs(Fraction(f) * n / Fraction(FS) - m) < 1e-6
        assert span_turn(f, f, "linear", n, FS) == 0.0
        g = float(rng.uniform(1e6, 300e6))
        exact = Fraction(g) * n / Fraction(FS)
        assert abs(span_turn(g, g, "linear", n, FS) - float(exact - round(exact))) < 4e-16 * float(exact) + 1e-16
        h = float(rng.uniform(1e6, 300e6))
        exact = (Fraction(g) + Fraction(h)) * n / 2 / Fraction(FS)  # a min_jerk move advances by its mean frequency
        got = span_turn(g, h, "min_jerk", n, FS)
        assert abs((got - float(exact - round(exact)) + 0.5) % 1.0 - 0.5) < 1e-15 * float(exact) + 1e-15


def test_looped_holds_of_the_same_tones_after_whole_cycles_share_one_slot() -> None:
    # a counted hold snapped to whole cycles leaves every tone's phase as it found it: the
    # wait_trig hold after it plays the same samples, so it is one slot of card memory and made
    # once; what the card plays there is still the tones as asked (independent reference)
    b = _builder("H")
    b.define("row", logical_channel="H", freqs=[78e6 + 1e6 * i for i in range(6)], amps=[0.05] * 6, phases="auto")
    b.segment("move").tones("H").use_def("row").hold(time=3.1e-6)
    b.segment("hold", mode="loop_n", loops=8).hold(time=32e-6)
    b.segment("done", mode="wait_trig").hold(time=32e-6)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    hold, done = q.segments[1], q.segments[2]
    assert hold.n_samples == done.n_samples == 20000
    assert [s.phase0_cycles for s in hold.tracks[0].entry] == [s.phase0_cycles for s in done.tracks[0].entry]
    assert hold.digest == done.digest and q.segment_slot[1] == q.segment_slot[2]
    program = compile_sequence_program(q, progress=False)
    assert program.report.synthesised == ("move", "hold")
    data = program.segments[q.segment_slot[2]].data[:, 0].astype(float)
    tones = [ref.tone(20000, s.f0_hz, s.f0_hz, "linear", s.a0, phase0_cycles=s.phase0_cycles) for s in done.tracks[0].entry]
    want, _ = ref.to_int16(ref.synthesize(tones, FS))
    assert np.max(np.abs(data - want)) <= 1
    # and the phases are those the move left, carried on exactly: after "move", each tone is at
    # its start phase plus f n / fs cycles (exact rational arithmetic)
    move = q.segments[0]
    for s0, s1 in zip(move.tracks[0].entry, hold.tracks[0].entry):
        exact = Fraction(s0.phase0_cycles) + Fraction(s0.f0_hz) * move.n_samples / Fraction(FS)
        assert abs((s1.phase0_cycles - float(exact % 1) + 0.5) % 1.0 - 0.5) < 1e-12
