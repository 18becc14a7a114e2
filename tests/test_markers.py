"""Markers: a segment marks a multi-purpose line (X0..X2) at the start of every pass, riding on the
top bits of hardware channel 0. Judged on what the simulated card plays (its lines and DAC
values), against the same program compiled without markers and the step log, never against the
compiler's own encoding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, CompiledSequenceProgram, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend, SpcmBackend
from awgrt.errors import ProgramError, VerificationError
from awgrt.sim import simulate

FS = 625e6


def program(marker: str | tuple[str, ...] = "X0", marker_s: float | None = 2e-6, loops: int = 3) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("d", logical_channel="H", freqs=[90e6, 92e6], amps=[0.3, 0.3])
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.4])
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .tones("V")
        .use_def("v")
        .hold(time=32e-6)
        .segment("go", marker=marker, marker_s=marker_s)
        .tones("H")
        .move(df=1e6, time=20e-6)
        .segment("hold", mode="loop_n", loops=loops, marker=marker, marker_s=marker_s)
        .hold(time=16e-6)
        .segment("back")
        .tones("H")
        .move(df=-1e6, time=20e-6)
    )


def compiled(b: AWGProgramBuilder) -> CompiledSequenceProgram:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0, "V": 1}), progress=False)
    return p.with_intent(b.build_intent_ir())


def test_a_marked_segment_raises_its_line_at_every_pass_and_channel_0_keeps_15_bits() -> None:
    marked, plain = compiled(program()), compiled(program(marker=(), marker_s=None))
    assert marked.marker_lines == ("X0",) and plain.marker_lines == ()
    n = 200_000
    got = simulate(marked, triggers=[1000, 40_000], n_samples=n)
    ref = simulate(plain, triggers=[1000, 40_000], n_samples=n)
    assert got.markers is not None and ref.markers is None
    width = round(2e-6 * FS)
    want = np.zeros(n, np.uint8)
    names = [marked.steps[e.step].name for e in got.events]
    starts = [e.sample for e in got.events]
    passes = {"go": 1, "hold": 3}
    for name, start, nxt in zip(names, starts, starts[1:] + [n]):
        if name in passes:  # the step's segment, pass after pass
            length = (nxt - start) // passes[name]
            for k in range(passes[name]):
                want[start + k * length : start + k * length + width] = 1
    assert passes.keys() <= set(names)
    np.testing.assert_array_equal(got.markers[:, 0], want)
    assert not got.markers[:, 1:].any()
    # channel 0 plays the same waveform at 15 bits: even DAC values within one LSB of the 16-bit
    # program; channel 1 carries no marker and is bit for bit the same
    a, b = got.samples[:, 0].astype(int), ref.samples[:, 0].astype(int)
    assert np.all(a % 2 == 0) and np.max(np.abs(a - b)) <= 1 and np.abs(a).max() > 9000
    np.testing.assert_array_equal(got.samples[:, 1], ref.samples[:, 1])
    assert [e.step for e in got.events] == [e.step for e in ref.events]
    assert any(n.kind == "markers" and "X0 bit 15" in n.detail for n in marked.report.notes)


def test_several_lines_take_the_top_bits_and_a_marker_lasts_at_most_its_segment() -> None:
    p = compiled(program(marker=("X0", "X2"), marker_s=1.0))  # a second: the whole segment
    assert p.marker_lines == ("X0", "X2") and p.x_modes() == {0: 0x8 | 0x01000000 | 0x00100000, 2: 0x8 | 0x01000000 | 0x00400000}
    got = simulate(p, triggers=[1000, 40_000], n_samples=150_000)
    go = next(e for e in got.events if p.steps[e.step].name == "go")
    after = next(e for e in got.events if e.sample > go.sample)
    np.testing.assert_array_equal(got.markers[go.sample : after.sample, 0], 1)  # the whole of "go"
    np.testing.assert_array_equal(got.markers[:, 0], got.markers[:, 2])
    assert not got.markers[:, 1].any() and np.all(got.samples[:, 0].astype(int) % 8 == 0)  # 13 bits left


@pytest.mark.parametrize("lines", [("X0",), ("X1", "X2")])
def test_a_programs_analog_samples_are_what_the_simulated_dacs_play(lines: tuple[str, ...]) -> None:
    # CompiledSequenceProgram.analog takes channel 0's marker bits out as the card does: judged
    # against the simulated card's DAC values, segment by segment
    p = compiled(program(marker=lines))
    got = simulate(p, triggers=[1000, 40_000], n_samples=150_000)
    for e, nxt in zip(got.events, got.events[1:]):
        seg = p.steps[e.step].segment
        n = p.segments[seg].data.shape[0]
        np.testing.assert_array_equal(p.analog(seg), got.samples[e.sample : e.sample + n])
        assert nxt.sample >= e.sample + n
    plain = compiled(program(marker=(), marker_s=None))
    assert plain.analog(0) is plain.segments[0].data


def test_markers_are_checked_when_asked_for_and_kept_by_saved_programs(tmp_path) -> None:
    for bad, text in (("X3", "multi-purpose lines"), (("X0", "X0"), "distinct")):
        with pytest.raises(ProgramError, match=text):
            AWGProgramBuilder().logical_channel("H").segment("s", marker=bad)
    with pytest.raises(ProgramError, match="marker_s"):
        AWGProgramBuilder().logical_channel("H").segment("s", marker="X1", marker_s=-1e-6)
    p = compiled(program())
    loaded = CompiledSequenceProgram.load(p.save(tmp_path / "m.npz"))
    assert loaded.marker_lines == ("X0",) and loaded.digest == p.digest
    assert loaded.intent is not None and loaded.intent.segments[1].markers == ("X0",)


def test_the_runtime_sets_the_lines_verify_reads_them_and_a_program_without_markers_frees_them() -> None:
    be = SimBackend()
    rt = Runtime(be, trigger="software")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt.run(program(), sample_rate_hz=FS)
    assert be.sim.x_modes[0] == 0x8 | 0x01000000 | 0x00100000 and rt.verify() == ()
    be.sim.x_modes[0] = 0  # the line reconfigured behind the runtime's back
    with pytest.raises(VerificationError, match="X0 mode"):
        rt.verify()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt.run(program(marker=(), marker_s=None), sample_rate_hz=FS)  # no markers: a full upload, the line freed
    assert rt.last_report.upload_kind == "full" and be.sim.x_modes[0] == 0 and rt.verify() == ()


def test_markers_through_the_real_spcm_package_on_the_emulated_driver(emu) -> None:
    card = emu.card(0)
    with SpcmBackend("/dev/spcm0") as be, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = Runtime(be, trigger="software")
        rt.run(program(), sample_rate_hz=FS)
        assert card.x_modes[0] == 0x8 | 0x01000000 | 0x00100000 and rt.verify() == ()
        be.stop()


def test_the_loop_count_memo_key_covers_every_segment_field_but_the_loop_count() -> None:
    """A scan point that changes only loop counts reuses the last quantization; anything else a
    segment says (markers included) must change the key, or a new program would play as the old."""
    import dataclasses

    from awgrt.ir.intent import IntentSegment

    covered = {"name", "mode", "phase_mode", "ops", "phases", "markers", "marker_s"}
    assert {f.name for f in dataclasses.fields(IntentSegment)} - {"loops"} == covered  # a new field: add it to loop_blind_key
    base = program().build_intent_ir()
    assert program(loops=7).build_intent_ir().loop_blind_key() == base.loop_blind_key()
    for other in (program(marker="X1"), program(marker_s=3e-6), program(marker=(), marker_s=None)):
        assert other.build_intent_ir().loop_blind_key() != base.loop_blind_key()


def test_a_load_frees_a_line_left_taking_bits_and_leaves_other_line_modes_alone() -> None:
    be = SimBackend()
    be.__enter__()
    try:
        be.sim.set_x_mode(1, 0x8 | 0x01000000 | 0x00100000)  # left by another program: X1 would eat channel 0's top bit
        be.sim.set_x_mode(2, 0x20)  # a trigger output the lab set up: not awgrt's to change
        plain = compiled(program(marker=(), marker_s=None))
        be.configure(sample_rate_hz=FS, n_channels=2)
        be.load(plain)
        assert be.sim.x_modes == [0, 0, 0x20]
        be.start(force_trigger=True)
        be.force_trigger()
        out = be.sim.render(100_000)
        got = simulate(plain, force_trigger=True, triggers=[0], n_samples=1)  # the reference plays the data as written
        assert got.markers is None and np.abs(out[:, 0]).max() > 9000 and np.any(out[:, 0] % 2)  # all 16 bits
    finally:
        be.__exit__(None, None, None)
