"""Misuse and nonsense input: every outcome is an ``AWGRTError`` naming op and value, or a
program that passes ``validate(card)``; numpy scalars work wherever Python numbers do."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from awgrt import CARDS, AWGProgramBuilder, IntentIR, compile_sequence_program, quantize_resolved_ir
from awgrt.calibration import AODCalibration
from awgrt.errors import AWGRTError, CardLimitError, SerializationError, TimingError

FS = 625e6


def two_tones() -> AWGProgramBuilder:
    return AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6, 92e6], amps=[0.3, 0.2], phases=[0.0, 0.0])


def held(time_s=1e-6, **segment) -> AWGProgramBuilder:
    return two_tones().segment("s", **segment).tones("H").use_def("d").hold(time=time_s)


def resolved(time_s=1e-6):
    return held(time_s).build_resolved_ir(sample_rate_hz=FS)


@pytest.mark.parametrize("time_s", [100.0, 1e10, 1e300])
def test_an_absurd_wait_trig_hold_fails_at_once_with_the_card_limit(time_s):
    t0 = time.monotonic()
    with pytest.raises((CardLimitError, TimingError)) as exc:
        quantize_resolved_ir(held(time_s, mode="wait_trig").build_resolved_ir(sample_rate_hz=FS))
    assert time.monotonic() - t0 < 5.0  # was minutes (100 s) or a 28 PiB allocation (1e10 s)
    assert exc.value.segment == "s"
    if isinstance(exc.value, CardLimitError):
        assert "holds at most" in str(exc.value)


@pytest.mark.parametrize(
    ("make", "op", "text"),
    [
        (lambda: held(10**400), "hold", "an integer of 401 digits"),
        (lambda: resolved(1e308), "hold", "samples"),
        (lambda: held().move(df=1e6, time=1e-6, idxs=1.5).build_resolved_ir(sample_rate_hz=FS), "move", "1.5"),
        (lambda: two_tones().segment("s", phase_mode="manual", phases=[0.0]).tones("H").use_def("d").hold(time=1e-6), "segment phases", "[0.0]"),
        (lambda: quantize_resolved_ir(resolved(), ["H"]), "map channels", "['H']"),
        (lambda: quantize_resolved_ir(resolved(), card=5), "quantize", "card=5"),
        (lambda: quantize_resolved_ir(resolved(), stretch_wait_trig=float("nan")), "quantize", "nan"),
        (lambda: quantize_resolved_ir(resolved(), stretch_wait_trig="a"), "quantize", "'a'"),
        (lambda: quantize_resolved_ir(resolved(), max_snap_hz="x"), "snap", "'x'"),
        (lambda: compile_sequence_program(quantize_resolved_ir(resolved()), gain=1e306, progress=False), "compile", "1e+306"),
        (lambda: compile_sequence_program(quantize_resolved_ir(resolved()), gain=10**400, progress=False), "compile", "gain="),
        (lambda: quantize_resolved_ir(resolved(), stretch_wait_trig=10**400), "quantize", "stretch_wait_trig="),
    ],
)
def test_misuse_is_an_awgrt_error_naming_op_and_value(make, op, text):
    with pytest.raises(AWGRTError) as exc:
        make()
    assert exc.value.op is not None and op in exc.value.op
    assert text in str(exc.value)


def _json_with(edit) -> str:
    data = json.loads(held().build_intent_ir().to_json())
    edit(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    "text",
    [
        _json_with(lambda d: d["segments"][0]["ops"].__setitem__(0, "hold")),
        _json_with(lambda d: d["segments"][0].__setitem__("phases", [1, 2])),
        _json_with(lambda d: d["segments"].__setitem__(0, 7)),
        _json_with(lambda d: d["definitions"][0].__setitem__("freqs_hz", 5)),
        "[" * 100_000 + "]" * 100_000,
        '{"schema": "awgrt.intent"}',
    ],
)
def test_malformed_json_programs_are_awgrt_errors(text):
    with pytest.raises(AWGRTError):
        IntentIR.from_json(text)


def test_deep_json_is_a_serialization_error():
    with pytest.raises(SerializationError, match="nested"):
        IntentIR.from_json("[" * 100_000 + "]" * 100_000)


def test_compile_cli_reports_a_missing_file_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "awgrt.cli", "compile", str(tmp_path / "none.json")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "cannot read the program file" in proc.stderr


def test_numpy_scalars_work_wherever_python_numbers_do():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[np.float32(90e6), np.float64(92e6)], amps=[np.float32(0.25), 0.2], phases=[np.float64(0), 0.0])
        .segment("s", mode="loop_n", loops=np.int64(3))
        .tones("H")
        .use_def("d")
        .hold(time=np.float32(1e-6))
        .move(df=np.float64(1e6), time=np.float64(1e-6), idxs=np.int64(0))
        .move(df=1e6, time=1e-6, idxs=[np.int32(1), np.float64(0)])
    )
    plain = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90e6, 92e6], amps=[float(np.float32(0.25)), 0.2], phases=[0.0, 0.0])
        .segment("s", mode="loop_n", loops=3)
        .tones("H")
        .use_def("d")
        .hold(time=float(np.float32(1e-6)))
        .move(df=1e6, time=1e-6, idxs=[0])
        .move(df=1e6, time=1e-6, idxs=[1, 0])
    )
    r = b.build_resolved_ir(sample_rate_hz=np.float32(625e6))
    assert r == plain.build_resolved_ir(sample_rate_hz=625e6)
    q = quantize_resolved_ir(r, {"H": np.int64(0)}, max_snap_hz=np.float64(1e6), stretch_wait_trig=np.float32(0.01))
    p = compile_sequence_program(q, gain=np.float64(1.0), clip=np.float32(0.9), full_scale=np.int16(32767), progress=False)
    p.validate(CARDS["M4i.6631-x8"])


# ------------------------------------------------------------------------------ fuzz

NONSENSE = st.one_of(
    st.just("bogus"),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
    st.just(10**400),
    st.just(1e308),
    st.just(-1.0),
    st.just(0),
    st.just(None),
    st.just("x"),
    st.just([]),
    st.just([0.0] * 40),
    st.just({"H": [0.0]}),
    st.just(True),
    st.sampled_from([np.float32(1e-6), np.float64(90e6), np.int64(2), np.int8(-1), np.float64("nan")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
)
#: Programs drawn per CI run by the builder's fuzz (the whole vocabulary, sensible and nonsense arguments).
BUILDER_FUZZ_EXAMPLES = 600
SENSIBLE = {
    "time": st.floats(0.3e-6, 3e-6),
    "df": st.floats(-2e6, 2e6),
    "freq": st.floats(60e6, 120e6),
    "amp": st.floats(0.0, 0.2),
    "idxs": st.one_of(st.none(), st.just([0]), st.just(0)),
    "amps": st.floats(0.0, 0.2),
    "kind": st.sampled_from(["linear", "min_jerk", "cosine", "exp", "geo_ramp", "adiabatic_ramp", "smoothstep"]),
    "mode": st.sampled_from(["once", "loop_n", "wait_trig"]),
    "loops": st.integers(2, 5),
    "phase_mode": st.sampled_from(["continue", "optimise", "manual"]),
}


def _arg(draw, name):
    return draw(NONSENSE) if draw(st.integers(0, 14)) == 0 else draw(SENSIBLE[name])


@st.composite
def builder_calls(draw):
    def rarely(good, bad):
        return draw(st.sampled_from([good] * 14 + [bad]))

    cal = AODCalibration((60e6, 140e6), (1.0, 0.05), (0.55,), card_mv=1000)
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V", calibration=rarely(None, cal) if draw(st.booleans()) else cal)
    phases = rarely(draw(st.sampled_from(["auto", [0.0, 0.0]])), "bad")
    b.define("d", logical_channel="H", freqs=[_arg(draw, "freq"), 95e6], amps=[0.1, _arg(draw, "amp")], phases=phases)
    b.define("v", logical_channel=rarely("V", "Q"), freqs=[100e6], amps=[0.2])
    for s in range(draw(st.integers(1, 3))):
        mode = _arg(draw, "mode")
        loops = _arg(draw, "loops") if mode == "loop_n" else rarely(1, _arg(draw, "loops"))
        b.segment(rarely(f"s{s}", "s0"), mode=mode, loops=loops, phase_mode=rarely("continue", _arg(draw, "phase_mode")))
        if s == 0:
            b.tones("H").use_def("d").tones(rarely("V", "Z")).use_def("v")
        for _ in range(draw(st.integers(1, 4))):
            call = draw(
                st.sampled_from(
                    ["hold", "hold", "move", "move", "ramp", "ramp", "add", "remove", "remap", "sync", "jump", "remap_all", "add_at", "parallel", "hold_all"]
                )
            )
            b.tones(draw(st.sampled_from(["H", "H", "V"])))
            if call == "hold":
                b.hold(time=_arg(draw, "time"))
            elif call == "move":
                kind = rarely(draw(st.sampled_from(["linear", "min_jerk", "cosine"])), "exp")
                b.move(df=_arg(draw, "df"), time=_arg(draw, "time"), idxs=_arg(draw, "idxs"), kind=kind)
            elif call == "ramp":
                b.ramp_amp_to(amps=_arg(draw, "amps"), time=_arg(draw, "time"), idxs=_arg(draw, "idxs"), kind=_arg(draw, "kind"))
            elif call == "add":
                b.add_tone(freq=_arg(draw, "freq"), amp=_arg(draw, "amp"))
            elif call == "remove":
                b.remove_tones(idxs=_arg(draw, "idxs"))
            elif call == "remap":
                b.remap_from_def(target_def=rarely("d", "nope"), src=[0], dst=[0], time=_arg(draw, "time"))
            elif call == "jump":  # time=0: move, ramp or remap at this point
                which = draw(st.sampled_from(["move", "ramp", "remap"]))
                if which == "move":
                    b.move(df=_arg(draw, "df"), time=0, idxs=_arg(draw, "idxs"))
                elif which == "ramp":
                    b.ramp_amp_to(amps=_arg(draw, "amps"), time=0, idxs=_arg(draw, "idxs"))
                else:
                    b.remap_from_def(target_def="d", src=[0], dst=[rarely(0, 5)], time=0)
            elif call == "remap_all":
                kind = rarely("min_jerk", "geo_ramp")
                b.remap_from_def(target_def="d", src=rarely([0, 1], [0]), dst="all", time=_arg(draw, "time"), kind=kind)
            elif call == "add_at":
                b.add_tone(freq=_arg(draw, "freq"), amp=_arg(draw, "amp"), at=rarely(0, draw(st.sampled_from([-1, 7, 1.5]))))
            elif call == "parallel":
                t1, t2, df, amps, other = _arg(draw, "time"), _arg(draw, "time"), _arg(draw, "df"), _arg(draw, "amps"), rarely("V", "H")
                b.parallel(
                    lambda x, t1=t1, df=df: x.tones("H").move(df=df, time=t1),
                    lambda x, t2=t2, amps=amps, other=other: x.tones(other).ramp_amp_to(amps=amps, time=t2),
                )
            elif call == "hold_all":
                b.hold(time=_arg(draw, "time"), every_channel=True)
            else:
                b.sync()
        b.hold(time=_arg(draw, "time"))
    if draw(st.booleans()):
        b.last_step(rarely(draw(st.sampled_from(["ring", "end"])), "loop"))
    return b, draw(st.sampled_from([625e6, 1.25e9, np.float32(625e6)])), draw(st.sampled_from(["auto", "step"]))


@pytest.mark.filterwarnings("ignore::awgrt.errors.SilenceWarning")
@settings(max_examples=BUILDER_FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_fuzz_builder_calls_give_an_awgrt_error_or_a_valid_program(data):
    card = CARDS["M4i.6631-x8"]
    try:
        b, fs, joint = data.draw(builder_calls())
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=fs), card=card, joint=joint)
        program = compile_sequence_program(q, progress=False)
    except AWGRTError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("compiled")
    note(b.build_intent_ir().to_json(indent=None))
    note(str(program.report))
    program.validate(card)
    clip_level = math.floor(0.9 * 32767) + 1
    for seg in program.segments:
        data_ = np.asarray(seg.data)
        assert data_.dtype == np.int16 and np.abs(data_.astype(int)).max() <= clip_level
    assert all(math.isfinite(s.peak) for s in program.report.segments)


def test_an_exp_ramp_from_a_subnormal_amplitude_stays_finite():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90e6], amps=[5e-324], phases=[0.0])
        .segment("s")
        .tones("H")
        .use_def("d")
        .ramp_amp_to(amps=0.5, time=1e-6, kind="exp")
    )
    program = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS)), progress=False)
    data = np.asarray(program.segments[0].data)[:, 0].astype(float)
    assert math.isfinite(program.report.segments[0].peak) and program.report.segments[0].clipped == 0
    n = 625
    k = np.arange(n)
    want = np.exp(np.log(5e-324) + k / n * (np.log(0.5) - np.log(5e-324))) * np.sin(2 * np.pi * 90e6 / FS * k) * 32767
    assert np.abs(data[:n] - np.rint(want)).max() <= 1


def test_a_mistake_is_raised_at_the_call_that_made_it_not_at_build():
    """Names, kinds and signs are checked when each call is made (against what is declared so far)."""
    from awgrt import AWGProgramBuilder
    from awgrt.errors import ProgramError, TimingError

    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6], amps=[0.1])
    mistakes = [
        (lambda: b.segment("w", mode="wait"), ProgramError, "mode='wait' is not one of"),
        (lambda: b.segment("s").tones("H").use_def("dd"), ProgramError, "unknown definition 'dd'.*define it before using it"),
        (lambda: b.tones("X").hold(time=1e-6), ProgramError, "unknown logical channel 'X'"),
        (lambda: b.tones("H").use_def("d").move(df=1e6, time=1e-6, kind="minjerk"), ProgramError, "kind='minjerk'"),
        (lambda: b.tones("H").hold(time=-1e-6), TimingError, "time=-1e-06"),
    ]
    for call, error, text in mistakes:
        with pytest.raises(error, match=text) as info:
            call()
        assert info.traceback[-1].path.name != "builder.py" or any(e.path.name == "test_misuse.py" for e in info.traceback)
        assert "build_intent_ir" not in "".join(str(e) for e in info.traceback)  # raised at the call, not at build
    b.tones("H").hold(time=1e-6)
    assert b.build_intent_ir().segments[-1].name == "s"  # what was refused was not recorded
