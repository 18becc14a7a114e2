"""Synthesis (int16 samples), the step table, validate() and save/load.

Every expected sample is computed by the independent reference in ``tests/reference.py`` from the
program as written here (frequencies, shapes, explicit start phases), never by awgrt.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from awgrt import CARDS, AWGProgramBuilder, CompiledSequenceProgram, compile_sequence_program, decode_step_entry, quantize_resolved_ir
from awgrt.errors import CardLimitError, ClipError, ProgramError
from tests import reference as ref

FS = 625e6
TAU = 2 * math.pi


def _cycles(rad: float) -> float:
    return rad / TAU


def _one_channel(defs: dict[str, tuple[list[float], list[float], list[float]]]) -> AWGProgramBuilder:
    b = AWGProgramBuilder().logical_channel("H")
    for name, (freqs, amps, phases) in defs.items():
        b.define(name, logical_channel="H", freqs=freqs, amps=amps, phases=phases)
    return b


def _compile(b: AWGProgramBuilder, mapping=None, card=None, **kw):
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), mapping, card)
    return compile_sequence_program(q, **kw)


# ============================================================================ the reference itself


@pytest.mark.parametrize("shape", ref.FREQ_SHAPES)
def test_reference_closed_forms_match_quadrature(shape):
    for u in (0.0, 0.1, 0.37, 0.5, 0.81, 1.0):
        assert float(ref.progress_integral(shape, u)) == pytest.approx(ref.progress_integral_numeric(shape, u), abs=1e-13)
    assert float(ref.progress(shape, 0.0)) == 0.0 and float(ref.progress(shape, 1.0)) == pytest.approx(1.0, abs=1e-15)
    span = ref.Span(31250, 90e6, 93.5e6, shape)
    for k in (0.0, 1.0, 777.0, 15625.0, 31249.0, 31250.0):
        assert float(span.phase_advance_cycles(k, FS)) == pytest.approx(span.phase_advance_numeric(k, FS), abs=1e-9)
    # a full move gains the mean frequency times its duration for these symmetric shapes
    assert float(span.phase_advance_cycles(31250.0, FS)) == pytest.approx((90e6 + 93.5e6) / 2 * 31250 / FS, abs=1e-9)


def test_reference_fitter_recovers_phases_and_amplitudes():
    n = 3000
    tones = [ref.tone(n, 80e6, a0=0.2, phase0_cycles=0.1), ref.tone(n, 90e6, 91e6, "min_jerk", a0=0.3, a1=0.1, amp_shape="cosine", phase0_cycles=0.7)]
    data, _ = ref.to_int16(ref.synthesize(tones, FS))
    psis = [ref.Tone(t.spans, 0.0).phase_cycles(FS) for t in tones]
    fit = ref.fit_phases(data, psis, [t.amplitudes() / t.spans[0].a0 for t in tones])
    assert np.abs(ref.wrap_rad(fit.phases_rad - TAU * np.array([0.1, 0.7]))).max() < 1e-4
    assert fit.amplitudes == pytest.approx([0.2 * 32767, 0.3 * 32767], rel=1e-4)


# ============================================================================ synthesis


def _hold3():
    freqs, amps, phases = [71.3e6, 88.8e6, 101.01e6], [0.2, 0.25, 0.15], [0.4, -1.1, 2.9]
    b = _one_channel({"d": (freqs, amps, phases)}).segment("s").tones("H").use_def("d").hold(time=10e-6)  # 6250 -> 6272 samples
    return b, [ref.tone(6272, f, a0=a, phase0_cycles=_cycles(p)) for f, a, p in zip(freqs, amps, phases)]


def _move(kind: str, time_s: float, n: int, n_total: int):
    freqs, amps, phases = [80.5e6, 97.25e6], [0.3, 0.2], [1.3, -0.6]
    dfs = [3.3e6, -2.1e6]
    b = _one_channel({"d": (freqs, amps, phases)}).segment("s").tones("H").use_def("d").move(df=dfs, idxs=[0, 1], time=time_s, kind=kind)
    tones = []
    for f, a, p, df in zip(freqs, amps, phases, dfs):
        spans = [ref.Span(n, f, f + df, kind, a)]
        if n_total > n:
            spans.append(ref.Span(n_total - n, f + df, a0=a))  # the padding holds the end state
        tones.append(ref.Tone(tuple(spans), _cycles(p)))
    return b, tones


def _ramp(kind: str, tau: float | None = None, targets=(0.05, 0.35)):
    freqs, amps, phases = [85e6, 99e6], [0.3, 0.05], [0.2, 2.2]
    b = (
        _one_channel({"d": (freqs, amps, phases)})
        .segment("s")
        .tones("H")
        .use_def("d")
        .ramp_amp_to(amps=list(targets), idxs=[0, 1], time=12.8e-6, kind=kind, tau=tau)
    )
    rate = None if tau is None else 12.8e-6 / tau
    return b, [ref.Tone((ref.Span(8000, f, a0=a, a1=t, amp_shape=kind, rate=rate),), _cycles(p)) for f, a, t, p in zip(freqs, amps, targets, phases)]


def _remap():
    start = ([80e6, 84e6, 88e6], [0.1, 0.15, 0.2], [0.0, 1.0, 2.0])
    target = ([81e6, 83e6, 95e6], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    b = (
        _one_channel({"start": start, "target": target})
        .segment("s")
        .tones("H")
        .use_def("start")
        .remap_from_def(target_def="target", src=[0, 2], dst=[1, 2], time=12.8e-6)
    )
    tones = [
        ref.tone(8000, 80e6, 83e6, "min_jerk", 0.1, 0.2, "min_jerk", _cycles(0.0)),
        ref.tone(8000, 84e6, a0=0.15, phase0_cycles=_cycles(1.0)),
        ref.tone(8000, 88e6, 95e6, "min_jerk", 0.2, 0.3, "min_jerk", _cycles(2.0)),
    ]
    return b, tones


PROGRAMS = {
    "hold3": _hold3,
    "move_linear": lambda: _move("linear", 12.8e-6, 8000, 8000),
    "move_min_jerk": lambda: _move("min_jerk", 10e-6, 6250, 6272),
    "move_cosine": lambda: _move("cosine", 25.6e-6, 16000, 16000),
    "ramp_linear": lambda: _ramp("linear"),
    "ramp_min_jerk": lambda: _ramp("min_jerk"),
    "ramp_cosine": lambda: _ramp("cosine"),
    "ramp_exp": lambda: _ramp("exp"),
    "ramp_smoothstep": lambda: _ramp("smoothstep"),
    "move_smoothstep": lambda: _move("smoothstep", 12.8e-6, 8000, 8000),
    "ramp_geo_ramp": lambda: _ramp("geo_ramp"),
    "ramp_exp_tau": lambda: _ramp("exp", tau=3e-6),
    "ramp_exp_tau_slow": lambda: _ramp("exp", tau=40e-6),
    "ramp_adiabatic": lambda: _ramp("adiabatic_ramp"),
    "ramp_adiabatic_to_zero": lambda: _ramp("adiabatic_ramp", targets=(0.0, 0.35)),
    "ramp_exp_tau_to_zero": lambda: _ramp("exp", tau=2e-6, targets=(0.0, 0.35)),
    "remap_from_def": _remap,
}


@pytest.mark.parametrize("gain", [1.0, 0.7])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_single_segment_matches_the_independent_reference(name, gain):
    b, tones = PROGRAMS[name]()
    compiled = _compile(b, gain=gain, clip=0.9, full_scale=32767)
    data = compiled.segments[0].data
    expected, n_clipped = ref.to_int16(ref.synthesize(tones, FS), gain=gain, clip=0.9, full_scale=32767)
    assert n_clipped == 0
    assert data.shape == (len(expected), 1)
    err = np.abs(data[:, 0].astype(np.int64) - expected.astype(np.int64))
    assert err.max() <= 1, f"max error {err.max()} LSB at sample {err.argmax()}"
    # both round the same float to nearest: they differ only where the value sits on a half LSB
    assert np.count_nonzero(err) <= 0.001 * len(err)
    assert np.abs(expected).max() > 0.2 * gain * 32767  # a real signal, not two zero arrays
    assert compiled.report.clipped_samples == {"s": 0}


def test_parallel_channels_and_a_tone_added_mid_segment_match_the_reference():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("h", logical_channel="H", freqs=[80e6], amps=[0.2], phases=[0.3])
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.2], phases=[0.7])
        .segment("s")
        .tones("H")
        .use_def("h")
        .move(df=2e6, time=6.4e-6)
        .add_tone(freq=90e6, amp=0.15, phase=1.1)
        .hold(time=3.2e-6)
        .tones("V")
        .use_def("v")
        .move(df=-3e6, time=12.8e-6, kind="cosine")
    )
    data = _compile(b).segments[0].data
    assert data.shape == (8000, 2)  # V's 12.8 us timeline is the longest; H holds after its 9.6 us
    h = ref.synthesize([ref.Tone((ref.Span(4000, 80e6, 82e6, "linear", 0.2), ref.Span(4000, 82e6, a0=0.2)), _cycles(0.3))], FS)
    h[4000:] += ref.tone(4000, 90e6, a0=0.15, phase0_cycles=_cycles(1.1)).samples(FS)  # born at its given phase
    v = ref.synthesize([ref.tone(8000, 100e6, 97e6, "cosine", 0.2, phase0_cycles=_cycles(0.7))], FS)
    for col, x in ((0, h), (1, v)):
        expected, _ = ref.to_int16(x)
        assert np.abs(data[:, col].astype(int) - expected).max() <= 1, col


def test_gain_and_clip_count_clipped_samples_per_segment():
    loud = ([80e6, 83.3e6], [0.45, 0.45], [0.0, 0.5])
    soft = ([80e6, 83.3e6], [0.1, 0.1], [0.0, 0.5])
    b = (
        _one_channel({"loud": loud, "soft": soft})
        .segment("loud")
        .tones("H")
        .use_def("loud")
        .hold(time=12.8e-6)
        .segment("soft")
        .tones("H")
        .use_def("soft")
        .hold(time=12.8e-6)
    )
    gain, clip = 1.5, 0.8
    compiled = _compile(b, gain=gain, clip=clip, full_scale=32767, clip_policy="count")  # clipping is what this test counts
    limit = clip * 32767
    counts = {}
    for name, (freqs, amps, phases) in (("loud", loud), ("soft", soft)):
        tones = [ref.tone(8000, f, a0=a, phase0_cycles=_cycles(p)) for f, a, p in zip(freqs, amps, phases)]
        expected, counts[name] = ref.to_int16(ref.synthesize(tones, FS), gain=gain, clip=clip, full_scale=32767)
        data = next(s.data for s in compiled.segments if name in s.names)[:, 0]
        assert np.abs(data.astype(int) - expected).max() <= 1
        assert np.abs(data.astype(float)).max() <= round(limit)
    assert counts["loud"] > 500 and counts["soft"] == 0
    assert compiled.report.clipped_samples == counts
    with pytest.raises(ClipError):
        _compile(b, gain=gain, clip=clip, clip_policy="error")
    # gain 1: peaks of at most 0.9 FS, so nothing beyond a clip level of 0.95
    assert sum(_compile(b, gain=1.0, clip=0.95).report.clipped_samples.values()) == 0


def test_data_is_read_only_int16_with_columns_in_hardware_order():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("h", logical_channel="H", freqs=[90e6], amps=[0.3], phases=[0.5])
        .define("v", logical_channel="V", freqs=[100e6, 104e6], amps=[0.2, 0.1], phases=[1.5, -1.0])
        .segment("s")
        .tones("H")
        .use_def("h")
        .tones("V")
        .use_def("v")
        .hold(time=12.8e-6)
    )
    compiled = _compile(b, {"H": 1, "V": 0})
    assert compiled.n_channels == 2
    seg = compiled.segments[0]
    assert seg.data.dtype == np.int16 and seg.data.shape == (8000, 2)
    assert not seg.data.flags.writeable
    with pytest.raises(ValueError):
        seg.data[0, 0] = 1
    h, _ = ref.to_int16(ref.synthesize([ref.tone(8000, 90e6, a0=0.3, phase0_cycles=_cycles(0.5))], FS))
    v, _ = ref.to_int16(
        ref.synthesize([ref.tone(8000, 100e6, a0=0.2, phase0_cycles=_cycles(1.5)), ref.tone(8000, 104e6, a0=0.1, phase0_cycles=_cycles(-1.0))], FS)
    )
    assert np.abs(seg.data[:, 1].astype(int) - h).max() <= 1
    assert np.abs(seg.data[:, 0].astype(int) - v).max() <= 1
    assert dict(compiled.hardware_channels) == {"H": 1, "V": 0}


def test_long_segment_keeps_phase_accuracy_at_the_end():
    f, phase = 90.1234567e6, 1.0
    b = _one_channel({"d": ([f], [0.4], [phase])}).segment("long").tones("H").use_def("d").hold(time=3e-3)
    compiled = _compile(b)
    data = compiled.segments[0].data[:, 0]
    n = len(data)
    assert n == 1875008  # 1,875,000 samples grown to a multiple of 32
    w = 4096
    for lo in (0, n // 2, n - w):
        k = np.arange(lo, lo + w, dtype=np.float64)
        fit = ref.fit_phases(data[lo : lo + w], [(f / FS) * k])
        assert abs(ref.wrap_rad(fit.phases_rad[0] - phase)) < 1e-3, lo
        assert fit.residual_rms < 0.6
        assert fit.amplitudes[0] == pytest.approx(0.4 * 32767, rel=1e-4)


# ============================================================================ steps


def _stepped(last_step="ring"):
    b = (
        _one_channel({"d": ([80e6, 90e6], [0.2, 0.2], [0.0, 1.0])})
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=3.2e-6)
        .segment("chirp")
        .tones("H")
        .move(df=1e6, time=4e-6)
        .segment("loop", mode="loop_n", loops=7)
        .hold(time=3.2e-6)
        .segment("ramp", mode="loop_n", loops=1)
        .tones("H")
        .ramp_amp_to(amps=0.05, time=2e-6)
        .segment("fin")
        .tones("H")
        .ramp_amp_to(amps=0.1, time=2e-6)
        .last_step(last_step)
    )
    return _compile(b)


def _entry(segment, nxt, loops, trig, end):
    return segment | nxt << 16 | loops << 32 | int(trig) << 62 | int(end) << 63


@pytest.mark.parametrize("last_step", ["ring", "end"])
def test_one_step_per_segment_in_program_order(last_step):
    compiled = _stepped(last_step)
    names = ["wait", "chirp", "loop", "ramp", "fin"]
    steps = compiled.steps
    assert [st.name for st in steps] == names
    for st, name in zip(steps, names):
        assert name in compiled.segments[st.segment].names
    assert [st.loops for st in steps] == [1, 1, 7, 1, 1]
    assert [st.on_trigger for st in steps] == [True, False, False, False, False]
    assert [st.next for st in steps] == [1, 2, 3, 4, 0]
    assert [st.end for st in steps] == [False] * 4 + [last_step == "end"]
    assert compiled.start_step == 0
    for st in steps:
        e = decode_step_entry(st.entry)
        assert (e.segment, e.next, e.loops, e.on_trigger, e.end) == (st.segment, st.next, st.loops, st.on_trigger, st.end)
        assert st.entry == _entry(st.segment, st.next, st.loops, st.on_trigger, st.end)
    compiled.validate()


# ============================================================================ validate


@pytest.fixture(scope="module")
def program() -> CompiledSequenceProgram:
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("h", logical_channel="H", freqs=[90e6], amps=[0.3], phases=[0.0])
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.3], phases=[0.0])
        .segment("a", mode="loop_n", loops=3)
        .tones("H")
        .use_def("h")
        .tones("V")
        .use_def("v")
        .hold(time=1.6384e-6)
        .segment("b")
        .tones("H")
        .move(df=1e6, time=1.6384e-6)
    )
    return _compile(b)


def _with_segment(p: CompiledSequenceProgram, i: int, data: np.ndarray) -> CompiledSequenceProgram:
    segs = list(p.segments)
    segs[i] = replace(segs[i], data=data)
    return replace(p, segments=tuple(segs))


def _with_step(p: CompiledSequenceProgram, i: int, **changes) -> CompiledSequenceProgram:
    steps = list(p.steps)
    steps[i] = replace(steps[i], **changes)
    return replace(p, steps=tuple(steps))


def test_compiled_program_passes_validate(program):
    assert program.validate() is program
    assert program.validate(CARDS["M4i.6621-x8"]) is program
    assert [s.n_samples for s in program.segments] == [1024, 1024]
    assert program.n_channels == 2


def _bad_programs(p: CompiledSequenceProgram):
    d = p.segments[0].data
    return {
        "not a multiple of 32": (_with_segment(p, 0, d[:-1]), "multiple of 32"),
        "shorter than the minimum": (_with_segment(p, 0, d[:160]), "minimum 192"),
        "wrong dtype": (_with_segment(p, 0, d.astype(np.int32)), "int16"),
        "float data": (_with_segment(p, 1, p.segments[1].data.astype(np.float64)), "int16"),
        "wrong column count": (_with_segment(p, 0, d[:, :1]), "int16 of shape"),
        "missing segment": (_with_step(p, 1, segment=2), "segment index 2"),
        "next out of range": (_with_step(p, 1, next=2), "next step 2"),
        "loops 0": (_with_step(p, 0, loops=0), "loops=0"),
        "loops 2**20": (_with_step(p, 0, loops=2**20), f"loops={2**20}"),
        "sample rate too low": (replace(p, sample_rate_hz=40e6), "sample rate"),
        "sample rate too high": (replace(p, sample_rate_hz=1.3e9), "sample rate"),
        "sample rate in the clock gap": (replace(p, sample_rate_hz=752e6), "sample rate"),
        "three channels": (replace(p, n_channels=3, segments=tuple(replace(s, data=np.zeros((1024, 3), np.int16)) for s in p.segments)), "3 enabled channels"),
        "start step out of range": (replace(p, start_step=2), "start step"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a multiple of 32",
        "shorter than the minimum",
        "wrong dtype",
        "float data",
        "wrong column count",
        "missing segment",
        "next out of range",
        "loops 0",
        "loops 2**20",
        "sample rate too low",
        "sample rate too high",
        "sample rate in the clock gap",
        "three channels",
        "start step out of range",
    ],
)
def test_validate_rejects_each_broken_rule(program, case):
    bad, message = _bad_programs(program)[case]
    with pytest.raises(CardLimitError, match=message):
        bad.validate(program.card)
    with pytest.raises(CardLimitError):
        bad.validate()


def test_validate_rejects_a_segment_longer_than_the_slot(program):
    # 2 channels x 2 slots x 512 samples of memory: slots of 512 samples, segments of 1024
    small = replace(program.card, name="tiny", memory_samples=2 * 2 * 512)
    with pytest.raises(CardLimitError, match="slot size 512"):
        program.validate(small)
    program.validate(replace(program.card, memory_samples=2 * 2 * 1024))


def test_validate_rejects_too_many_steps(program):
    n = 4097
    steps = tuple(replace(program.steps[i % 2], next=(i + 1) % n, loops=1, on_trigger=False, name=f"s{i}") for i in range(n))
    with pytest.raises(CardLimitError, match="4097 steps"):
        replace(program, steps=steps).validate()
    at_limit = tuple(replace(st, next=(i + 1) % 4096) for i, st in enumerate(steps[:4096]))
    replace(program, steps=at_limit).validate()


def test_validate_against_a_different_card():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("h", logical_channel="H", freqs=[90e6], amps=[0.3], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("h")
        .hold(time=1.6384e-6)
    )
    four = _compile(b, {"H": 3}, CARDS["M4i.6622-x8"])
    assert four.n_channels == 4
    four.validate()
    with pytest.raises(CardLimitError, match="4 enabled channels"):
        four.validate(CARDS["M4i.6621-x8"])


# ============================================================================ save / load


def test_save_load_round_trip(tmp_path):
    compiled = _stepped("end")
    path = compiled.save(tmp_path / "p.npz")
    loaded = CompiledSequenceProgram.load(path)
    assert loaded.digest == compiled.digest
    assert loaded.steps == compiled.steps
    assert loaded.sample_rate_hz == compiled.sample_rate_hz and loaded.n_channels == compiled.n_channels
    assert loaded.start_step == compiled.start_step
    assert dict(loaded.hardware_channels) == dict(compiled.hardware_channels)
    assert loaded.card == compiled.card
    assert len(loaded.segments) == len(compiled.segments)
    for a, b in zip(loaded.segments, compiled.segments):
        assert a.data.dtype == np.int16 and not a.data.flags.writeable
        assert np.array_equal(a.data, b.data)
        assert (a.name, a.names, a.digest) == (b.name, b.names, b.digest)
    loaded.validate()
    # a changed sample changes the digest (so equal digests above mean something)
    d = np.array(compiled.segments[0].data)
    d[0, 0] += 1
    assert _with_segment(compiled, 0, d).digest != compiled.digest


def _temporaries(q, n_hw: int, **options) -> tuple[int, object]:
    """(peak traced bytes beside the int16 output, the result) of synthesising q's first segment."""
    import tracemalloc

    from awgrt.compiler.synth import synthesize

    tracemalloc.start()
    try:
        result = synthesize(q.segments[0], FS, dict(q.hardware_channels), n_hw, gain=1.0, clip=0.9, full_scale=32767, **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - result.data.nbytes, result


def test_synthesis_memory_is_the_output_plus_the_stated_working_set():
    # the documented invariant of awgrt.compiler.synth (exact with tracemalloc, not a timing):
    # whatever the segment's length, temporaries stay within working_set_bytes
    from awgrt.compiler.synth import working_set_bytes

    n_t = 2**20 / FS
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[70e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.define("v", logical_channel="V", freqs=[80e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.segment("s").tones("H").use_def("h").move(df=1e6, time=n_t, idxs=list(range(8))).tones("V").use_def("v").ramp_amp_to(amps=0.02, time=n_t, idxs=[0, 1])
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    extra, result = _temporaries(q, 2)
    assert result.data.nbytes == q.segments[0].n_samples * 2 * 2
    assert extra <= working_set_bytes(2, 32), f"{extra / 2**20:.1f} MiB of temporaries"
    # every tone ramping to its own amplitude, with every ramp shape: still the same bound
    b = AWGProgramBuilder().logical_channel("H")
    b.define("h", logical_channel="H", freqs=[60e6 + 2e6 * i for i in range(32)], amps=[0.02] * 32)
    b.segment("s").tones("H").use_def("h")
    for kind in ["linear", "min_jerk", "cosine", "exp"]:
        b.ramp_amp_to(amps=[0.001 * (i + 1 + len(kind)) for i in range(32)], time=n_t / 4, kind=kind)
    extra, _ = _temporaries(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS)), 1)
    assert extra <= working_set_bytes(1, 32), f"{extra / 2**20:.1f} MiB of temporaries"
    # many moving tones: their sub-block is 1024 samples of every tone, still within the bound
    b = AWGProgramBuilder().logical_channel("H")
    b.define("h", logical_channel="H", freqs=[40e6 + 0.5e6 * i for i in range(160)], amps=[0.005] * 160)
    b.segment("s").tones("H").use_def("h").move(df=0.2e6, time=n_t / 4, kind="cosine")
    extra, _ = _temporaries(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS)), 1)
    assert extra <= working_set_bytes(1, 160), f"{extra / 2**20:.1f} MiB of temporaries"


def test_synthesis_reuses_its_working_arrays_from_one_compile_to_the_next():
    # a block's temporaries are fresh memory the kernel maps page by page on first touch; each
    # thread keeps them (within the stated working set), so the next segment allocates its output
    # and little else: held, ramping, shifted and single moving tones all draw on the kept arrays
    from awgrt.compiler.synth import kept_work_bytes, release_work_arrays, working_set_bytes

    n_t = 2**18 / FS
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[70e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.define("v", logical_channel="V", freqs=[80e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.segment("s").tones("H").use_def("h").move(df=1e6, time=n_t, idxs=list(range(8))).move(df=-1e6, time=n_t, idxs=[9])
    b.ramp_amp_to(amps=0.03, time=n_t, idxs=[10, 11], kind="min_jerk").tones("V").use_def("v").ramp_amp_to(amps=0.02, time=n_t, idxs=[0, 1])
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    release_work_arrays()
    first, result = _temporaries(q, 2, workers=1)
    second, again = _temporaries(q, 2, workers=1)
    assert np.array_equal(result.data, again.data)
    assert first > 4 * 2**20  # the block's arrays, made once
    assert second < 1 * 2**20, f"{second / 2**20:.2f} MiB allocated again"
    assert 2 * 2**20 < kept_work_bytes() <= working_set_bytes(2, 32)  # kept (the block and its temporaries), within the bound


def test_moving_tones_match_a_float64_reference_to_the_stated_bound():
    # 32 moving tones (min_jerk moves and exp ramps) adding up to 0.9 of full scale: the float32
    # sine leaves >= 99.9 % of samples identical to a float64 synthesis and none more than 1 LSB off
    from awgrt.compiler.synth import SINE_ERROR_RAD

    n_t = 40e-6
    b = AWGProgramBuilder().logical_channel("H")
    b.define("h", logical_channel="H", freqs=[40e6 + 5.3e6 * i for i in range(32)], amps=[0.9 / 32] * 32, phases="auto")
    b.segment("s").tones("H").use_def("h").move(df=1.7e6, time=n_t, kind="min_jerk").ramp_amp_to(amps=0.02, time=n_t, kind="exp")
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    seg = q.segments[0]
    got = compile_sequence_program(q, progress=False, clip=1.0).segment_for_step(0).data[:, 0].astype(np.int64)
    want, _ = ref.to_int16(ref.synthesize_pieces(seg.track("H").pieces, FS, seg.n_samples), clip=1.0)
    diff = np.abs(got - want.astype(np.int64))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) / diff.size <= 1e-3, f"{np.count_nonzero(diff)} of {diff.size} samples differ"
    assert SINE_ERROR_RAD * 1.0 * 32767 < 0.01  # the stated bound at full scale
    # and the bound holds for the sine itself over the whole reduced range, measured
    phi = np.random.default_rng(1).uniform(-np.pi, np.pi, 1_000_000)
    x = np.empty(phi.size, dtype=np.float32)
    np.sin(phi, out=x, dtype=np.float32, casting="same_kind")
    assert np.abs(x.astype(np.float64) - np.sin(phi)).max() <= SINE_ERROR_RAD


@pytest.mark.parametrize("start", [0.02, 0.0], ids=["brightened", "from-zero"])
def test_tones_sharing_one_amplitude_envelope_match_a_float64_reference(start):
    # a row brightened together while it moves (held tones, a group shifted as one and a tone
    # moving on its own, every amplitude times one min_jerk envelope), and a row ramped up from
    # zero: made at constant amplitudes times the envelope once, within 1 LSB of a float64 sum
    from awgrt.compiler.synth import _sort_tones

    n_t = 60e-6
    freqs = [60e6 + 2e6 * i for i in range(8)]
    b = AWGProgramBuilder().logical_channel("H")
    b.define("row", logical_channel="H", freqs=freqs, amps=[start] * 8, phases="auto")
    b.define("end", logical_channel="H", freqs=[f + (1e6 if 2 <= i < 5 else 3e6 if i == 6 else 0.0) for i, f in enumerate(freqs)], amps=[0.1] * 8)
    b.segment("s").tones("H").use_def("row").remap_from_def(target_def="end", src=list(range(8)), dst=list(range(8)), time=n_t, kind="min_jerk")
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    seg = q.segments[0]
    piece = seg.track("H").pieces[0]
    sorted_tones = _sort_tones(piece.tones, FS, piece.n)
    assert sorted_tones.common is not None and sorted_tones.ramps == ()  # the shared envelope is what made them
    assert sorted_tones.shifted and sorted_tones.moving is not None and sorted_tones.folded is not None
    got = compile_sequence_program(q, progress=False, clip=1.0).segment_for_step(0).data[:, 0].astype(np.int64)
    want, _ = ref.to_int16(ref.synthesize_pieces(seg.track("H").pieces, FS, seg.n_samples), clip=1.0)
    diff = np.abs(got - want.astype(np.int64))
    assert diff.max() <= 1 and np.abs(want).max() > 2000
    assert np.count_nonzero(diff) / diff.size <= 1e-3, f"{np.count_nonzero(diff)} of {diff.size} samples differ"


def test_parallel_synthesis_gives_the_same_samples():
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[60e6 + 3e6 * i for i in range(6)], amps=[0.1] * 6)
    b.define("v", logical_channel="V", freqs=[90e6], amps=[0.3])
    b.segment("s").tones("H").use_def("h").move(df=1e6, time=400e-6, kind="min_jerk").tones("V").use_def("v").hold(time=400e-6)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    one = compile_sequence_program(q, progress=False, workers=1)
    three = compile_sequence_program(q, progress=False, workers=3)
    assert q.segments[0].n_samples > 3 * 65536
    assert one.digest == three.digest and one.report.segments[0].peak == three.report.segments[0].peak
    with pytest.raises(ProgramError, match="workers"):
        compile_sequence_program(q, progress=False, workers=0)


@pytest.mark.parametrize("moving", [False, True], ids=["constant-frequency", "moving"])
def test_every_ramp_shape_matches_a_float64_reference(moving):
    # amplitude ramps of every shape, up and down, on held tones (summed as products of exact
    # phasors times a shared envelope) and on moving ones (remaps: through the float32 sine), each
    # piece spanning several synthesis blocks: same criterion as above
    n_t = 2 * 65536 / FS + 7e-6
    freqs = [50e6 + 4.1e6 * i for i in range(16)]
    amps = [0.9 / 16 * (0.3 if i % 2 else 1.0) for i in range(16)]
    b = AWGProgramBuilder().logical_channel("H")
    b.define("h", logical_channel="H", freqs=freqs, amps=amps, phases="auto")
    b.segment("s").tones("H").use_def("h")
    if moving:
        for j, kind in enumerate(["linear", "min_jerk", "cosine"]):
            b.define(f"t{j}", logical_channel="H", freqs=[f + (j + 1) * 0.3e6 for f in freqs], amps=amps[::-1] if j % 2 == 0 else amps)
            b.remap_from_def(target_def=f"t{j}", src=list(range(16)), dst=list(range(16)), time=n_t, kind=kind)
    else:
        for i, kind in enumerate(["linear", "min_jerk", "cosine", "exp"]):
            idxs = list(range(4 * i, 4 * i + 4))
            b.ramp_amp_to(amps=[amps[j] * (0.25 if j % 2 == 0 else 3.0) for j in idxs], idxs=idxs, time=n_t, kind=kind)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    seg = q.segments[0]
    pieces = [p for p in seg.track("H").pieces if p.n > 65536]
    assert len(pieces) == (3 if moving else 4)
    for p in pieces:
        ramping = [s for s in p.tones if s.a0 != s.a1]
        assert any(s.a1 > s.a0 for s in ramping) and any(s.a1 < s.a0 for s in ramping)
        assert all((s.f0_hz != s.f1_hz) == moving for s in ramping)
    got = compile_sequence_program(q, progress=False, clip=1.0).segment_for_step(0).data[:, 0].astype(np.int64)
    want, _ = ref.to_int16(ref.synthesize_pieces(seg.track("H").pieces, FS, seg.n_samples), clip=1.0)
    diff = np.abs(got - want.astype(np.int64))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) / diff.size <= 1e-3, f"{np.count_nonzero(diff)} of {diff.size} samples differ"


@pytest.mark.parametrize("lsb", [0.3, 0.499, 0.5, 0.501, 0.7, 3.0])
def test_the_sounding_flag_agrees_with_the_samples(lsb):
    # the compiler's silence check reads SynthResult.sounding instead of scanning the samples: it
    # must say exactly whether any sample of the channel is non-zero, right at half an LSB too
    from awgrt.compiler.synth import synthesize

    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[FS / 4], amps=[lsb / 32767], phases=[np.pi / 2])  # peaks exactly at the amplitude
    b.define("v", logical_channel="V", freqs=[70e6], amps=[0.3])
    b.segment("s").tones("H").use_def("h").tones("V").use_def("v").hold(time=2e-6)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    result = synthesize(q.segments[0], FS, dict(q.hardware_channels), 2, gain=1.0, clip=0.9, full_scale=32767)
    assert result.sounding == tuple(bool(result.data[:, c].any()) for c in range(2))
    assert result.sounding[1]


def test_remembered_tone_phasors_are_exact_read_only_and_bounded():
    # a scan point plays the same tones again, so their phasors are remembered: as made afresh,
    # never writable (a caller cannot change what the next one gets), and within the stated bytes
    from awgrt.compiler import synth

    f = np.random.default_rng(3).uniform(0.05, 0.45, 12)
    first = synth._remembered_phasors(f, synth.HOLD_BLOCK)
    assert synth._remembered_phasors(f.copy(), synth.HOLD_BLOCK) is first
    assert not first.flags.writeable
    np.testing.assert_array_equal(first, synth._phasors(np.zeros(12), f, synth.HOLD_BLOCK))
    for i in range(400):  # far more distinct tone sets than fit
        synth._remembered_phasors(np.full(64, 0.01 + 1e-4 * i), synth.HOLD_BLOCK)
    for i in range(60):  # and far more distinct tones
        synth._remembered_phasors(np.random.default_rng(i).uniform(0.05, 0.45, 256), synth.HOLD_BLOCK)
    assert sum(v.nbytes for v in synth._PHASOR_CACHE.values()) <= synth.PHASOR_CACHE_BYTES
    assert synth._STEP_TABLE[0].nbytes <= synth.PHASOR_CACHE_BYTES
    # a subset and a reordering of remembered tones, and a shorter table, are what a fresh table is
    g = np.concatenate((f[7:2:-1], [0.123456789]))
    np.testing.assert_array_equal(synth._remembered_phasors(g, 40), synth._phasors(np.zeros(g.size), g, 40))


def test_a_segments_tone_phasors_are_made_in_one_batch(monkeypatch):
    # the pieces of a segment ask for column and row phasors one tone set at a time (the held
    # row, the ramped-off ones, the next piece); they are made for every tone at once
    from awgrt.compiler import synth

    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("row", logical_channel="H", freqs=[75e6 + 1e6 * i for i in range(12)], amps=[0.04] * 12, phases="auto")
    b.define("v", logical_channel="V", freqs=[95e6], amps=[0.3])
    b.segment("s").tones("H").use_def("row").tones("V").use_def("v").hold(time=8e-6)
    b.tones("H").ramp_amp_to(amps=0.0, idxs=[1, 4, 7], time=8e-6, kind="min_jerk").remove_tones(idxs=[1, 4, 7]).hold(time=8e-6)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    calls: list[int] = []
    made = synth._phasors
    monkeypatch.setattr(synth, "_phasors", lambda base, step, count: calls.append(step.size) or made(base, step, count))
    synth.forget_phasors()
    first = synth.synthesize(q.segments[0], FS, dict(q.hardware_channels), 2, gain=1.0, clip=0.9, full_scale=32767)
    assert calls == [26]  # 13 tones' columns and rows
    synth.forget_phasors()
    monkeypatch.setattr(synth, "prefetch_phasors", lambda segment, fs: None)
    calls.clear()
    again = synth.synthesize(q.segments[0], FS, dict(q.hardware_channels), 2, gain=1.0, clip=0.9, full_scale=32767)
    assert len(calls) > 2  # without the batch: one call per tone set
    np.testing.assert_array_equal(first.data, again.data)


def test_tiny_amplitudes_moving_together_compile_to_silence_not_an_error():
    # tones moving as one with unequal ramps of amplitudes far below one LSB (1e-170 of full
    # scale, legal): their amplitude groups are compared without squaring them to 0 / 0, so the
    # segment is silence (and said to be), not "non-finite samples"
    import warnings

    from awgrt.errors import SilenceWarning

    a = 1e-170
    b = AWGProgramBuilder().logical_channel("H")
    b.define("row", logical_channel="H", freqs=[78e6, 80e6, 82e6], amps=[a, 2 * a, a])
    b.define("to", logical_channel="H", freqs=[79e6, 81e6, 83e6], amps=[2 * a, 3 * a, 5 * a])
    b.segment("s").tones("H").use_def("row").hold(time=1e-6)
    b.segment("m").tones("H").remap_from_def(target_def="to", src=[0, 1, 2], dst=[0, 1, 2], time=4e-6, kind="min_jerk")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", SilenceWarning)
        program = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS)), progress=False)
    assert [s.name for s in program.segments] == ["s", "m"]
    assert not any(s.data.any() for s in program.segments)
