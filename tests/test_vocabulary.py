"""The builder's full vocabulary: instant (time=0) jumps, rearrangement from a loaded subset,
tones added at an index, the hold rule, DC tones refused with a reason, and JSON round trips.

Expected samples come from the independent reference in ``tests/reference.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.errors import AmplitudeError, FrequencyError, ProgramError, TimingError
from awgrt.ir.intent import IntentIR
from tests import reference as ref

FS = 625e6


def _compile(b: AWGProgramBuilder):
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0})
    return compile_sequence_program(q, progress=False)


def _matches(data: np.ndarray, tones: list[ref.Tone]) -> None:
    expected, clipped = ref.to_int16(ref.synthesize(tones, FS, data.shape[0]))
    assert clipped == 0
    err = np.abs(data.astype(np.int64) - expected.astype(np.int64))
    assert err.max() <= 1, f"max error {err.max()} LSB at sample {err.argmax()}"
    assert np.abs(expected).max() > 1000


def test_an_instant_jump_steps_frequency_and_amplitude_at_that_point_phase_continuously():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6, 93e6], amps=[0.2, 0.25], phases=[0.3, 1.9])
        .segment("s")
        .tones("H")
        .use_def("d")
        .hold(time=3.2e-6)  # 2000 samples
        .move(df=[1.5e6, -0.7e6], time=0)
        .ramp_amp_to(amps=0.1, idxs=[0], time=0)
        .hold(time=3.2e-6)
        .last_step("end")
    )
    program = _compile(b)
    tones = [
        ref.Tone((ref.Span(2000, 80e6, a0=0.2), ref.Span(2000, 81.5e6, a0=0.1)), 0.3 / (2 * math.pi)),
        ref.Tone((ref.Span(2000, 93e6, a0=0.25), ref.Span(2000, 92.3e6, a0=0.25)), 1.9 / (2 * math.pi)),
    ]
    _matches(program.segments[0].data[:, 0], tones)
    jumps = program.report.notes_of("instant")
    assert len(jumps) == 3 and all("time=0" in n.detail for n in jumps)
    assert "Deliberate jumps (ops of time 0)" in program.report.format() and "80000000 -> 81500000 Hz" in program.report.format()


def test_rearrangement_from_a_loaded_subset_takes_the_sources_to_the_target_and_drops_the_rest():
    loaded = ([80e6, 84e6, 88e6, 92e6], [0.1, 0.12, 0.14, 0.16], [0.0, 0.5, 1.0, 1.5])
    target = ([82e6, 86e6], [0.2, 0.22], [0.0, 0.0])
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("loaded", logical_channel="H", freqs=loaded[0], amps=loaded[1], phases=loaded[2])
        .define("target", logical_channel="H", freqs=target[0], amps=target[1], phases=target[2])
        .segment("s")
        .tones("H")
        .use_def("loaded")
        .remap_from_def(target_def="target", src=[3, 1], dst="all", time=6.4e-6)  # 4000 samples
        .ramp_amp_to(amps=[0.05], idxs=[0], time=2048 / FS)  # index 0 is now the target's first tone
        .last_step("end")
    )
    resolved = b.build_resolved_ir(sample_rate_hz=FS)
    last = resolved.segments[0].tracks[0].pieces[-1]
    assert [(s.tone, s.f0_hz, s.a0) for s in last.tones] == [(3, 82e6, 0.2), (1, 86e6, 0.22)]  # the sources, in the target's order
    program = _compile(b)
    cyc = [p / (2 * math.pi) for p in loaded[2]]
    tones = [
        ref.Tone((ref.Span(4000, 92e6, 82e6, "min_jerk", 0.16, 0.2, "min_jerk"), ref.Span(2048, 82e6, a0=0.2, a1=0.05)), cyc[3]),
        ref.Tone((ref.Span(4000, 84e6, 86e6, "min_jerk", 0.12, 0.22, "min_jerk"), ref.Span(2048, 86e6, a0=0.22)), cyc[1]),
        ref.Tone((ref.Span(4000, 80e6, a0=0.1, a1=0.0, amp_shape="min_jerk"), ref.Span(2048, 80e6, a0=0.0)), cyc[0]),  # faded, dropped
        ref.Tone((ref.Span(4000, 88e6, a0=0.14, a1=0.0, amp_shape="min_jerk"), ref.Span(2048, 88e6, a0=0.0)), cyc[2]),
    ]
    _matches(program.segments[0].data[:, 0], tones)


@pytest.mark.parametrize(("src", "dst", "match"), [([0], "all", "one source tone per tone"), ([0, 1], "some", "or 'all'")])
def test_a_bad_rearrangement_is_refused(src, dst, match):
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[80e6, 84e6], amps=[0.1, 0.1]).segment("s").tones("H").use_def("d")
    with pytest.raises(ProgramError, match=match):  # refused at the call already
        b.remap_from_def(target_def="d", src=src, dst=dst, time=1e-6)


def test_a_tone_added_at_an_index_starts_silent_by_default_and_takes_that_index():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6, 90e6], amps=[0.2, 0.2], phases=[0.0, 0.0])
        .segment("s")
        .tones("H")
        .use_def("d")
        .add_tone(freq=85e6, at=1, phase=0.7)
        .ramp_amp_to(amps=0.25, idxs=[1], time=2048 / FS, kind="smoothstep")
        .last_step("end")
    )
    piece = b.build_resolved_ir(sample_rate_hz=FS).segments[0].tracks[0].pieces[0]
    assert [(s.f0_hz, s.a0, s.a1) for s in piece.tones] == [(80e6, 0.2, 0.2), (85e6, 0.0, 0.25), (90e6, 0.2, 0.2)]
    added = ref.tone(2048, 85e6, a0=0.0, a1=0.25, amp_shape="smoothstep", phase0_cycles=0.7 / (2 * math.pi))
    tones = [ref.tone(2048, 80e6, a0=0.2), added, ref.tone(2048, 90e6, a0=0.2)]
    _matches(_compile(b).segments[0].data[:, 0], tones)
    with pytest.raises(ProgramError, match="past the end"):
        AWGProgramBuilder().logical_channel("H").segment("s").tones("H").add_tone(freq=80e6, at=1).hold(time=1e-6).build_resolved_ir(sample_rate_hz=FS)


def test_hold_after_tones_holds_only_that_channel_and_every_channel_syncs_them_all():
    def two(every: bool) -> AWGProgramBuilder:
        b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
        b.define("h", logical_channel="H", freqs=[80e6], amps=[0.2]).define("v", logical_channel="V", freqs=[90e6], amps=[0.2])
        b.segment("s").tones("H").use_def("h").tones("V").use_def("v").hold(time=2e-6)  # V only: H stays at 0 s
        return b.tones("H").move(df=1e6, time=1e-6).hold(time=1e-6, every_channel=every)

    plain = {t.channel: [(p.op, p.start, p.n) for p in t.pieces] for t in two(False).build_resolved_ir(sample_rate_hz=FS).segments[0].tracks}
    # H: move 0..1 us, hold 1..2 us (only H); V: hold 0..2 us
    assert plain["H"][0][1:] == (0, 625) and plain["H"][1][1:] == (625, 625) and plain["V"][0][1:] == (0, 1250)
    synced = {t.channel: [(p.start, p.n) for p in t.pieces] for t in two(True).build_resolved_ir(sample_rate_hz=FS).segments[0].tracks}
    # every channel: both lined up at 2 us (H holds 1..2 us for the sync), then both hold 2..3 us
    assert synced["H"][-1] == (1250, 625) and synced["V"][-1] == (1250, 625)


@pytest.mark.parametrize("where", ["define", "add_tone"])
def test_a_zero_hertz_tone_is_refused_with_the_reason(where: str):
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[0.0 if where == "define" else 80e6], amps=[0.1])
    b.segment("s").tones("H").use_def("d")
    with pytest.raises(FrequencyError, match="DC offset, not a tone.*AC-coupled"):
        if where == "add_tone":
            b.add_tone(freq=0.0, amp=0.1)  # refused at the call already
        b.hold(time=1e-6).build_intent_ir()


@pytest.mark.parametrize(
    ("op", "error", "match"),
    [
        (lambda b: b.hold(time=0), TimingError, "> 0"),
        (lambda b: b.ramp_amp_to(amps=0.2, time=1e-6, kind="linear", tau=1e-6), ProgramError, "time constant of an 'exp' ramp"),
        (lambda b: b.ramp_amp_to(amps=0.2, time=1e-6, kind="exp", tau=0.0), TimingError, "time constant > 0"),
        (lambda b: b.ramp_amp_to(amps=0.0, time=1e-6, kind="geo_ramp"), AmplitudeError, "geometric"),
        (lambda b: b.move(df=1e6, time=-1e-9), TimingError, ">= 0"),
    ],
)
def test_bad_ramps_and_times_are_refused(op, error, match):
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[80e6], amps=[0.1]).segment("s").tones("H").use_def("d")
    b.hold(time=1e-6)
    with pytest.raises(error, match=match):
        op(b)  # refused at the call, where it can be; else when resolved
        b.build_resolved_ir(sample_rate_hz=FS)


def test_a_segment_of_instant_ops_only_is_refused():
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[80e6], amps=[0.1]).segment("s").tones("H").use_def("d")
    with pytest.raises(TimingError, match="non-zero time"):
        b.move(df=1e6, time=0).build_intent_ir()


def test_the_new_vocabulary_survives_a_json_round_trip():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6, 84e6, 88e6], amps=[0.1, 0.1, 0.1])
        .define("t", logical_channel="H", freqs=[81e6, 85e6], amps=[0.2, 0.2])
        .segment("s")
        .tones("H")
        .use_def("d")
        .ramp_amp_to(amps=0.2, time=2e-6, kind="exp", tau=0.5e-6)
        .ramp_amp_to(amps=0.1, time=2e-6, kind="geo_ramp")
        .ramp_amp_to(amps=0.0, idxs=[2], time=2e-6, kind="adiabatic_ramp")
        .move(df=0.5e6, time=0)
        .add_tone(freq=95e6, at=0)
        .remap_from_def(target_def="t", src=[1, 2], dst="all", time=2e-6, kind="smoothstep")
        .hold(time=1e-6, every_channel=True)
    )
    intent = b.build_intent_ir()
    back = IntentIR.from_json(intent.to_json())
    assert back == intent and back.digest == intent.digest
    from awgrt.compiler.resolve import resolve_intent_ir

    assert resolve_intent_ir(back, FS).segments == resolve_intent_ir(intent, FS).segments
    assert '"tau_s": 5e-07' in intent.to_json() and '"dst": "all"' in intent.to_json()
