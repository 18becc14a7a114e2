"""Bad input raises a subclass of :class:`awgrt.errors.AWGRTError` naming the segment, the op and
the offending value, before anything touches a card. Also: a tone-count change inside a segment
is supported and the samples after the change carry the new tone set."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest

import awgrt
from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.errors import (
    AmplitudeError,
    AWGRTError,
    CardError,
    CardLimitError,
    ClipError,
    FrequencyError,
    ProgramError,
    QuantizationError,
    TimingError,
    UnknownCardError,
)

FS = 625e6
NAN = float("nan")
INF = float("inf")


def builder() -> AWGProgramBuilder:
    """Two channels; H has a two-tone definition, V a one-tone one."""
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("dH", logical_channel="H", freqs=[90e6, 95e6], amps=[0.2, 0.2], phases="auto")
        .define("dV", logical_channel="V", freqs=[100e6], amps=[0.2], phases=[0.0])
    )


def loaded(name: str = "seg") -> AWGProgramBuilder:
    """A builder with a segment ``name`` whose H channel has the two tones of dH (op #0)."""
    return builder().segment(name).tones("H").use_def("dH")


def resolve(b: AWGProgramBuilder, fs: float = FS):
    return b.build_resolved_ir(sample_rate_hz=fs)


def check_context(exc: AWGRTError, *, segment: str | None, op: str | None, value_text: str | None) -> None:
    """The message names segment, op and value; the attributes agree."""
    msg = str(exc)
    assert isinstance(exc, AWGRTError)
    if segment is not None:
        assert repr(segment) in msg, msg
        assert exc.segment == segment
    if op is not None:
        assert op in msg, msg
        assert exc.op is not None and op in exc.op
    if value_text is not None:
        assert value_text in msg, msg


def test_error_classes_share_one_base():
    for cls in (TimingError, FrequencyError, AmplitudeError, ProgramError, QuantizationError, CardLimitError, ClipError, awgrt.errors.SerializationError):
        assert issubclass(cls, AWGRTError)


# ------------------------------------------------------------------------------------ times

TIMED_OPS = {
    "hold": lambda b, t: b.hold(time=t),
    "move": lambda b, t: b.move(df=1e6, time=t),
    "ramp_amp_to": lambda b, t: b.ramp_amp_to(amps=0.1, time=t),
    "remap_from_def": lambda b, t: b.remap_from_def(target_def="dH", src=[0], dst=[1], time=t),
}


BAD_TIMES = [(NAN, "nan"), (INF, "inf"), (-INF, "-inf"), (-1e-6, "-1e-06")]
ZERO_TIMES = [(0.0, "0.0"), (-0.0, "-0.0")]


@pytest.mark.parametrize(
    ("op", "time", "text"),
    [(op, t, text) for op in sorted(TIMED_OPS) for t, text in BAD_TIMES] + [("hold", t, text) for t, text in ZERO_TIMES],  # 0 s: an instant jump, but no hold
)
def test_bad_times_raise_timing_error(op, time, text):
    b = loaded("timed_seg")
    with pytest.raises(TimingError, match=re.escape(f"time={text}")) as info:
        resolve(TIMED_OPS[op](b, time))  # refused at the call already
    check_context(info.value, segment="timed_seg", op=f"#1 {op}", value_text=text)
    if time == time:  # not nan
        assert info.value.value == time


@pytest.mark.parametrize("time", [NAN, 0.0, -2e-6])
def test_bad_time_on_all_channel_hold_names_segment(time):
    b = loaded("first").hold(time=1e-6).segment("all_hold")
    with pytest.raises(TimingError) as info:
        b.hold(time=time).build_intent_ir()  # refused at the call already
    check_context(info.value, segment="all_hold", op="#0 hold", value_text=repr(time))


@pytest.mark.parametrize(("op", "time"), [("hold", 0.4e-9), ("move", 0.5e-12), ("ramp_amp_to", 1e-10), ("remap_from_def", 7e-10)])
def test_time_rounding_to_zero_samples_raises(op, time):
    # 1 sample at 625 MS/s is 1.6 ns; all these are below half a sample
    assert time * FS < 0.5
    b = TIMED_OPS[op](loaded("tiny").hold(time=1e-6), time)
    with pytest.raises(TimingError, match="rounds to none") as info:
        resolve(b)
    check_context(info.value, segment="tiny", op=f"#2 {op}", value_text=repr(time))
    assert info.value.value == time


def test_time_of_one_sample_is_fine():
    r = resolve(loaded("one").hold(time=1.6e-9))
    assert r.segments[0].n_samples == 1


# ------------------------------------------------------------------------------ frequencies


@pytest.mark.parametrize(("freq", "text"), [(0.0, "0.0"), (-1e6, "-1000000.0"), (NAN, "nan"), (INF, "inf")])
def test_definition_frequency_not_positive_or_finite(freq, text):
    b = AWGProgramBuilder().logical_channel("H").define("bad_def", logical_channel="H", freqs=[90e6, freq], amps=[0.1, 0.1])
    b = b.segment("s").tones("H").use_def("bad_def").hold(time=1e-6)
    with pytest.raises(FrequencyError) as info:
        b.build_intent_ir()
    # a definition is not inside a segment: the message names the definition instead
    check_context(info.value, segment=None, op="bad_def", value_text=text)
    assert "define" in str(info.value)


@pytest.mark.parametrize(("freq", "text"), [(FS / 2, "312500000"), (400e6, "400000000"), (312.5e6 + 1, "312500001")])
def test_definition_frequency_at_or_above_nyquist_raises_where_used(freq, text):
    b = AWGProgramBuilder().logical_channel("H").define("hi", logical_channel="H", freqs=[freq], amps=[0.1])
    b = b.segment("s0").tones("H").add_tone(freq=10e6, amp=0.1).hold(time=1e-6).segment("uses_hi").tones("H").use_def("hi").hold(time=1e-6)
    with pytest.raises(FrequencyError) as info:
        resolve(b)
    check_context(info.value, segment="uses_hi", op="#0 use_def", value_text=text)
    assert info.value.value == freq


@pytest.mark.parametrize(("freq", "text"), [(0.0, "0.0"), (-5e6, "-5000000.0"), (NAN, "nan"), (INF, "inf")])
def test_add_tone_frequency_not_positive_or_finite(freq, text):
    with pytest.raises(FrequencyError) as info:
        loaded("adds").add_tone(freq=freq, amp=0.1).hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment="adds", op="#1 add_tone", value_text=text)


@pytest.mark.parametrize(("freq", "text"), [(FS / 2, "312500000"), (500e6, "500000000")])
def test_add_tone_frequency_at_or_above_nyquist(freq, text):
    with pytest.raises(FrequencyError) as info:
        resolve(loaded("adds").add_tone(freq=freq, amp=0.1).hold(time=1e-6))
    check_context(info.value, segment="adds", op="#1 add_tone", value_text=text)
    assert info.value.value == freq


@pytest.mark.parametrize(("df", "end_text"), [(-90e6, "0 Hz"), (-100e6, "-10000000"), (250e6, "340000000"), (222.5e6, "312500000")])
def test_move_end_frequency_outside_nyquist_band(df, end_text):
    # tone 0 of dH is at 90 MHz
    b = loaded("start").hold(time=1e-6).segment("chirp").tones("H").move(df=df, time=1e-6, idxs=[0])
    b.build_intent_ir()  # the intent is fine: only the resolved end frequency is bad
    with pytest.raises(FrequencyError) as info:
        resolve(b)
    check_context(info.value, segment="chirp", op="#0 move", value_text=end_text)
    assert info.value.value == 90e6 + df


def test_move_per_index_df_checks_each_end_frequency():
    b = loaded("start").hold(time=1e-6).segment("chirp2").tones("H").move(df=[1e6, 220e6], time=1e-6, idxs=[0, 1])
    with pytest.raises(FrequencyError) as info:
        resolve(b)
    check_context(info.value, segment="chirp2", op="#0 move", value_text="315000000")
    assert "tone 1" in str(info.value)


def test_move_non_finite_df():
    with pytest.raises(FrequencyError) as info:
        loaded("nan_df").move(df=NAN, time=1e-6).build_intent_ir()
    check_context(info.value, segment="nan_df", op="#1 move", value_text="nan")


def test_remap_target_frequency_checked_against_nyquist_at_resolve():
    b = builder().define("far", logical_channel="H", freqs=[300e6], amps=[0.1])
    b = b.segment("remap_seg").tones("H").use_def("dH").remap_from_def(target_def="far", src=[0], dst=[0], time=1e-6)
    assert resolve(b, 625e6).segments[0].n_samples == 625
    with pytest.raises(FrequencyError) as info:
        resolve(b, 500e6)
    check_context(info.value, segment="remap_seg", op="#1 remap_from_def", value_text="300000000")


# --------------------------------------------------------------------------- definitions


def test_definition_amps_freqs_length_mismatch():
    b = AWGProgramBuilder().logical_channel("H").define("mismatch", logical_channel="H", freqs=[90e6, 91e6, 92e6], amps=[0.2, 0.2])
    b = b.segment("s").hold(time=1e-6)
    with pytest.raises(ProgramError) as info:
        b.build_intent_ir()
    check_context(info.value, segment=None, op="mismatch", value_text="3 frequencies but 2 amplitudes")


def test_definition_phases_length_mismatch():
    b = AWGProgramBuilder().logical_channel("H").define("ph", logical_channel="H", freqs=[90e6, 91e6], amps=[0.2, 0.2], phases=[0.0])
    with pytest.raises(ProgramError, match="phases") as info:
        b.segment("s").hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment=None, op="ph", value_text=None)


def test_definition_on_unknown_channel():
    b = AWGProgramBuilder().logical_channel("H").define("dX", logical_channel="X", freqs=[90e6], amps=[0.2])
    with pytest.raises(ProgramError) as info:
        b.segment("s").hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment=None, op="dX", value_text="'X'")


# ------------------------------------------------------------------------------ amplitudes

AMP_OPS = {
    "add_tone": lambda b, a: b.add_tone(freq=80e6, amp=a),
    "ramp_amp_to": lambda b, a: b.ramp_amp_to(amps=a, time=1e-6),
}


@pytest.mark.parametrize("op", sorted(AMP_OPS))
@pytest.mark.parametrize(("amp", "text"), [(-0.1, "-0.1"), (1.1, "1.1"), (1.0000001, "1.0000001"), (NAN, "nan"), (INF, "inf")])
def test_amplitude_outside_zero_one_in_ops(op, amp, text):
    b = loaded("amp_seg")
    with pytest.raises(AmplitudeError) as info:
        AMP_OPS[op](b, amp).hold(time=1e-6).build_intent_ir()  # refused at the call already
    check_context(info.value, segment="amp_seg", op=f"#1 {op}", value_text=f"amplitude {text}")


@pytest.mark.parametrize(("amp", "text"), [(-0.5, "-0.5"), (2.0, "2.0")])
def test_amplitude_outside_zero_one_in_definition(amp, text):
    b = AWGProgramBuilder().logical_channel("H").define("loud", logical_channel="H", freqs=[90e6], amps=[amp])
    with pytest.raises(AmplitudeError) as info:
        b.segment("s").tones("H").use_def("loud").hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment=None, op="loud", value_text=text)


def test_amplitudes_zero_and_one_are_legal():
    r = resolve(builder().define("edge", logical_channel="H", freqs=[90e6, 91e6], amps=[0.0, 1.0]).segment("s").tones("H").use_def("edge").hold(time=1e-6))
    assert r.segments[0].n_samples == 625


def test_exp_ramp_through_zero_amplitude():
    with pytest.raises(AmplitudeError) as info:
        resolve(loaded("expseg").ramp_amp_to(amps=0.0, time=1e-6, kind="exp"))
    check_context(info.value, segment="expseg", op="#1 ramp_amp_to", value_text="0.2 -> 0")


# ------------------------------------------------------------------------- names and channels


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda: builder().segment("names").tones("H").use_def("nope").hold(time=1e-6), "#0 use_def"),
        (lambda: loaded("names").remap_from_def(target_def="nope", src=[0], dst=[0], time=1e-6), "#1 remap_from_def"),
    ],
    ids=["use_def", "remap_from_def"],
)
def test_unknown_definition(make, op):
    with pytest.raises(ProgramError, match="unknown definition") as info:
        make().build_intent_ir()
    check_context(info.value, segment="names", op=op, value_text="'nope'")
    assert info.value.value == "nope"


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda b: b.tones("X").use_def("dH"), "#0 use_def"),
        (lambda b: b.tones("X").hold(time=1e-6), "#0 hold"),
        (lambda b: b.tones("X").add_tone(freq=80e6, amp=0.1), "#0 add_tone"),
        (lambda b: b.tones("X").move(df=1e6, time=1e-6), "#0 move"),
    ],
    ids=["use_def", "hold", "add_tone", "move"],
)
def test_unknown_channel(make, op):
    b = builder().segment("chan_seg")
    with pytest.raises(ProgramError, match="unknown logical channel") as info:
        make(b).tones("H").add_tone(freq=80e6, amp=0.1).hold(time=1e-6).build_intent_ir()  # refused at the call already
    check_context(info.value, segment="chan_seg", op=op, value_text="'X'")
    assert info.value.value == "X"


def test_unknown_channel_in_manual_phases():
    b = builder().segment("man", phase_mode="manual", phases={"Q": [0.0]}).tones("H").use_def("dH").hold(time=1e-6)
    with pytest.raises(ProgramError, match="'Q'") as info:
        b.build_intent_ir()
    check_context(info.value, segment="man", op=None, value_text="'Q'")


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda b: b.tones("V").use_def("dH"), "#0 use_def"),
        (lambda b: b.tones("V").use_def("dV").remap_from_def(target_def="dH", src=[0], dst=[0], time=1e-6), "#1 remap_from_def"),
    ],
    ids=["use_def", "remap_from_def"],
)
def test_definition_used_on_wrong_channel(make, op):
    b = builder().segment("wrong_ch")
    with pytest.raises(ProgramError, match="belongs to channel 'H'") as info:
        make(b).hold(time=1e-6).build_intent_ir()  # refused at the call already
    check_context(info.value, segment="wrong_ch", op=op, value_text="'dH'")


def test_tone_op_without_selected_channel():
    with pytest.raises(ProgramError, match=r"\.tones") as info:
        builder().segment("nosel").use_def("dH")
    check_context(info.value, segment="nosel", op="use_def", value_text=None)


def test_op_before_any_segment():
    with pytest.raises(ProgramError, match="segment"):
        builder().hold(time=1e-6)


# ------------------------------------------------------------------------------------ loops


@pytest.mark.parametrize(("loops", "text"), [(0, "0"), (-3, "-3"), (1_048_576, "1048576"), (2**32, "4294967296"), (2.0, "2.0"), (2.5, "2.5"), (True, "True")])
def test_loops_outside_card_range(loops, text):
    b = builder().segment("looped", mode="loop_n", loops=loops).tones("H").use_def("dH").hold(time=1e-6)
    with pytest.raises(ProgramError) as info:
        b.build_intent_ir()
    check_context(info.value, segment="looped", op=None, value_text=f"loops={text}")
    assert info.value.value is loops


@pytest.mark.parametrize("loops", [1, 2, 1_048_575])
def test_loops_inside_card_range(loops):
    ir = builder().segment("looped", mode="loop_n", loops=loops).tones("H").use_def("dH").hold(time=1e-6).build_intent_ir()
    assert ir.segments[0].loops == loops


@pytest.mark.parametrize(("mode", "loops"), [("once", 2), ("wait_trig", 3), ("once", 1_048_575)])
def test_loops_other_than_one_need_loop_n(mode, loops):
    b = builder().segment("misloop", mode=mode, loops=loops).tones("H").use_def("dH").hold(time=1e-6)
    with pytest.raises(ProgramError, match="loop_n") as info:
        b.build_intent_ir()
    check_context(info.value, segment="misloop", op=None, value_text=f"loops={loops}")


# ------------------------------------------------------------------------------ mode names


def test_bad_segment_mode():
    with pytest.raises(ProgramError) as info:
        builder().segment("modal", mode="forever").tones("H").use_def("dH").hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment="modal", op=None, value_text="'forever'")


def test_bad_phase_mode():
    with pytest.raises(ProgramError) as info:
        builder().segment("phasey", phase_mode="random").tones("H").use_def("dH").hold(time=1e-6).build_intent_ir()
    check_context(info.value, segment="phasey", op=None, value_text="'random'")


@pytest.mark.parametrize(
    ("op", "make", "kind"),
    [
        ("move", lambda b, k: b.move(df=1e6, time=1e-6, kind=k), "cubic"),
        ("ramp_amp_to", lambda b, k: b.ramp_amp_to(amps=0.1, time=1e-6, kind=k), "sigmoid"),
        ("remap_from_def", lambda b, k: b.remap_from_def(target_def="dH", src=[0], dst=[1], time=1e-6, kind=k), "exp"),
        ("move", lambda b, k: b.move(df=1e6, time=1e-6, kind=k), "LINEAR"),
    ],
)
def test_bad_kind_names(op, make, kind):
    with pytest.raises(ProgramError) as info:
        make(loaded("kinds"), kind).build_intent_ir()
    check_context(info.value, segment="kinds", op=f"#1 {op}", value_text=repr(kind))
    assert info.value.value == kind


def test_bad_last_step_mode():
    with pytest.raises(ProgramError, match="'stop'"):
        loaded().hold(time=1e-6).last_step("stop").build_intent_ir()


# --------------------------------------------------------------------------- program shape


def test_empty_program_has_no_segment():
    with pytest.raises(ProgramError, match="no segment"):
        builder().build_intent_ir()


def test_program_without_channels():
    with pytest.raises(ProgramError, match="logical channel"):
        AWGProgramBuilder().segment("s").hold(time=1e-6).build_intent_ir()


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b.segment("untimed"),
        lambda b: b.segment("untimed").tones("H").use_def("dH"),
        lambda b: b.segment("untimed").tones("H").use_def("dH").add_tone(freq=80e6, amp=0.1).remove_tones(idxs=[0]).sync(),
    ],
    ids=["empty", "instant-only", "instant-and-sync"],
)
def test_segment_without_timed_op(make):
    b = make(builder().segment("first").tones("H").use_def("dH").hold(time=1e-6))
    with pytest.raises(TimingError, match="no timed op") as info:
        b.build_intent_ir()
    check_context(info.value, segment="untimed", op=None, value_text=None)


def test_duplicate_segment_names():
    b = loaded("twice").hold(time=1e-6).segment("twice").hold(time=1e-6)
    with pytest.raises(ProgramError, match="'twice'"):
        b.build_intent_ir()


# ------------------------------------------------------------------------------ tone indices

INDEX_OPS = {
    "move": lambda b, i: b.move(df=1e6, time=1e-6, idxs=[0, i]),
    "ramp_amp_to": lambda b, i: b.ramp_amp_to(amps=0.1, time=1e-6, idxs=[i]),
    "remove_tones": lambda b, i: b.remove_tones(idxs=[i]).hold(time=1e-6),
    "remap_from_def": lambda b, i: b.remap_from_def(target_def="dH", src=[i], dst=[0], time=1e-6),
}


@pytest.mark.parametrize("op", sorted(INDEX_OPS))
@pytest.mark.parametrize("index", [2, 5])
def test_tone_index_out_of_range(op, index):
    b = INDEX_OPS[op](loaded("idx_seg"), index)  # dH has tones 0 and 1
    with pytest.raises(ProgramError, match="out of range") as info:
        resolve(b)
    check_context(info.value, segment="idx_seg", op=f"#1 {op}", value_text=str(index))
    assert index in info.value.value


def test_tone_index_out_of_range_after_removal():
    b = loaded("shrunk").remove_tones(idxs=[0]).hold(time=1e-6).move(df=1e6, time=1e-6, idxs=[1])
    with pytest.raises(ProgramError, match="1 tones") as info:
        resolve(b)
    check_context(info.value, segment="shrunk", op="#3 move", value_text="[1]")


def test_remap_destination_index_out_of_range():
    with pytest.raises(ProgramError, match="out of range") as info:
        loaded("dst_seg").remap_from_def(target_def="dH", src=[0], dst=[7], time=1e-6).build_intent_ir()
    check_context(info.value, segment="dst_seg", op="#1 remap_from_def", value_text="7")


@pytest.mark.parametrize("op", sorted(INDEX_OPS))
def test_negative_tone_index(op):
    b = loaded("neg_seg")
    with pytest.raises(ProgramError) as info:
        resolve(INDEX_OPS[op](b, -1))  # refused at the call already
    check_context(info.value, segment="neg_seg", op=f"#1 {op}", value_text="-1")


def test_tone_op_on_channel_without_tones():
    with pytest.raises(ProgramError, match="no tones") as info:
        resolve(builder().segment("bare").tones("V").move(df=1e6, time=1e-6))
    check_context(info.value, segment="bare", op="#0 move", value_text=None)


@pytest.mark.parametrize(
    ("op", "make"),
    [
        ("ramp_amp_to", lambda b: b.ramp_amp_to(amps=[0.1, 0.2, 0.3], time=1e-6)),
        ("ramp_amp_to", lambda b: b.add_tone(freq=80e6, amp=0.1).ramp_amp_to(amps=[0.3, 0.4], time=1e-6)),
        ("move", lambda b: b.move(df=[1e6, 2e6, 3e6], time=1e-6)),
        ("move", lambda b: b.add_tone(freq=80e6, amp=0.1).move(df=[1e6, 2e6], time=1e-6)),
    ],
    ids=["ramp-3-values-2-tones", "ramp-2-values-3-tones", "move-3-values-2-tones", "move-2-values-3-tones"],
)
def test_per_tone_values_must_match_tone_count_when_idxs_omitted(op, make):
    """With idxs=None a list of several values is one per tone: a count that differs from the
    channel's tone count must be an error, not silently truncated or applied to some tones only."""
    with pytest.raises(ProgramError) as info:
        resolve(make(loaded("count_seg")))
    check_context(info.value, segment="count_seg", op=op, value_text=None)


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda b: b.hold(time=None), "hold"),
        (lambda b: b.hold(time="abc"), "hold"),
        (lambda b: b.move(df=1e6, time=None), "move"),
        (lambda b: b.add_tone(freq="x", amp=0.1), "add_tone"),
        (lambda b: b.add_tone(freq=80e6, amp=None), "add_tone"),
    ],
    ids=["hold-None", "hold-str", "move-time-None", "add_tone-freq-str", "add_tone-amp-None"],
)
def test_non_numeric_builder_arguments_raise_awgrt_errors(make, op):
    """Non-numbers get the library's own error naming the op, not a bare TypeError/ValueError."""
    with pytest.raises(AWGRTError) as info:
        make(loaded("typed")).hold(time=1e-6).build_intent_ir()
    assert op in str(info.value)


def test_numpy_integer_loops_are_accepted():
    """A loop count taken from a numpy scan array is an integer in range and must be accepted."""
    ir = builder().segment("np_loops", mode="loop_n", loops=np.int64(5)).tones("H").use_def("dH").hold(time=1e-6).build_intent_ir()
    assert ir.segments[0].loops == 5


# ------------------------------------------------------------------------------ mapping


def resolved_hv():
    return resolve(loaded("s1").tones("V").use_def("dV").hold(time=1e-6))


@pytest.mark.parametrize(
    ("mapping", "exc", "text"),
    [
        ({"H": 0}, ProgramError, "'V'"),
        ({"H": 0, "V": 1, "Z": 0}, ProgramError, "'Z'"),
        ({"H": 0, "V": 2}, CardLimitError, "hardware channel 2"),
        ({"H": 0, "V": -1}, CardLimitError, "hardware channel -1"),
        ({"H": 0, "V": 1.0}, CardLimitError, "hardware channel 1.0"),
        ({"H": 1, "V": 1}, ProgramError, "share a hardware channel"),
    ],
)
def test_channel_mapping_errors(mapping, exc, text):
    with pytest.raises(exc) as info:
        quantize_resolved_ir(resolved_hv(), logical_channel_to_hardware_channel=mapping)
    check_context(info.value, segment=None, op="map channels", value_text=text)


def test_hardware_channel_valid_on_four_channel_card_only():
    q = quantize_resolved_ir(resolved_hv(), logical_channel_to_hardware_channel={"H": 0, "V": 2}, card="M4i.6622-x8")
    assert q.n_channels == 4
    with pytest.raises(CardLimitError):
        quantize_resolved_ir(resolved_hv(), logical_channel_to_hardware_channel={"H": 0, "V": 2}, card="M4i.6621-x8")


def test_unknown_card_name():
    with pytest.raises(CardError, match="unknown card model 'M4i.9999'; closest: M4i") as err:
        quantize_resolved_ir(resolved_hv(), card="M4i.9999")
    assert isinstance(err.value, UnknownCardError) and err.value.value == "M4i.9999"


# ------------------------------------------------------------------------------ card limits

CARD = awgrt.CARDS["M4i.6631-x8"]


def one_channel_program(*hold_samples: int):
    """Segments s0, s1, ... on one channel holding for the given sample counts at 625 MS/s."""
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6], amps=[0.3])
    b = b.segment("s0").tones("H").use_def("d").hold(time=hold_samples[0] / FS)
    for i, n in enumerate(hold_samples[1:], start=1):
        b = b.segment(f"s{i}").tones("H").hold(time=n / FS)
    return resolve(b)


def test_segment_longer_than_memory_slot():
    small = dataclasses.replace(CARD, memory_samples=1 << 16)
    # 1 channel, 2 slots: each slot holds 65536 / 1 / 2 = 32768 samples
    q = quantize_resolved_ir(one_channel_program(640, 32768), card=small)
    assert q.segments[1].n_samples == 32768
    with pytest.raises(CardLimitError) as info:
        quantize_resolved_ir(one_channel_program(640, 32768 + 32), card=small)
    check_context(info.value, segment="s1", op=None, value_text="32800")
    assert info.value.value == 32800


def test_segment_longer_than_memory_slot_with_two_channels_and_more_slots():
    small = dataclasses.replace(CARD, memory_samples=1 << 16)
    b = builder().segment("a").tones("H").use_def("dH").tones("V").use_def("dV").hold(time=640 / FS)
    b = b.segment("b").hold(time=4096 / FS).segment("c").hold(time=(8192 + 32) / FS)
    # 2 channels, 3 distinct segments -> 4 slots: 65536 / 2 / 4 = 8192 samples per slot
    with pytest.raises(CardLimitError) as info:
        quantize_resolved_ir(resolve(b), card=small)
    check_context(info.value, segment="c", op=None, value_text=str(8192 + 32))


def test_more_steps_than_card_holds():
    few = dataclasses.replace(CARD, max_steps=3)
    assert len(quantize_resolved_ir(one_channel_program(640, 672, 704), card=few).segments) == 3
    with pytest.raises(CardLimitError, match="4 steps") as info:
        quantize_resolved_ir(one_channel_program(640, 672, 704, 736), card=few)
    assert info.value.value == 4
    assert "3" in str(info.value)


def test_more_distinct_segments_than_card_holds():
    few = dataclasses.replace(CARD, max_segments=4)
    assert quantize_resolved_ir(one_channel_program(640, 672, 704, 736), card=few).slots == 4
    with pytest.raises(CardLimitError, match="5 distinct segments") as info:
        quantize_resolved_ir(one_channel_program(640, 672, 704, 736, 768), card=few)
    assert info.value.value == 5


@pytest.mark.parametrize(
    ("card", "fs", "text"),
    [
        ("M4i.6631-x8", 753e6, "753"),
        ("M4i.6631-x8", 1e6, "1 MS/s"),
        ("M4i.6631-x8", 1130e6, "1130"),
        ("M4i.6621-x8", 1.25e9, "1250"),
        ("M4i.6631-x8", 625e6 + 4, "625000004"),
    ],
)
def test_sample_rate_card_cannot_run(card, fs, text):
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[100e3], amps=[0.3])
        .segment("s")
        .tones("H")
        .use_def("d")
        .hold(time=1e-3)
    )
    r = resolve(b, fs)  # resolve knows no card: fine
    with pytest.raises(CardLimitError) as info:
        quantize_resolved_ir(r, card=card)
    msg = str(info.value)
    assert "sample rate" in msg
    assert text in msg, msg
    assert info.value.value == fs


@pytest.mark.parametrize("fs", [0.0, -625e6, NAN, INF])
def test_non_positive_sample_rate_at_resolve(fs):
    with pytest.raises(TimingError):
        resolve(loaded().hold(time=1e-6), fs)


# ------------------------------------------------------------------------- snapping and clipping


def looped_program(freq: float):
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[freq], amps=[0.3])
    return resolve(b.segment("loopy", mode="wait_trig").tones("H").use_def("d").hold(time=640 / FS))


def test_max_snap_hz_exceeded():
    # 640 samples at 625 MS/s: grid 976562.5 Hz; 90.1234567 MHz sits ~280 kHz from the nearest
    with pytest.raises(QuantizationError) as info:
        quantize_resolved_ir(looped_program(90.1234567e6), max_snap_hz=1.0, stretch_wait_trig=0.0)
    check_context(info.value, segment="loopy", op="snap", value_text="max_snap_hz")
    grid = FS / 640
    expected_shift = round(90.1234567e6 / grid) * grid - 90.1234567e6
    assert info.value.value == pytest.approx(expected_shift, rel=1e-9)


def test_max_snap_hz_not_exceeded_on_grid():
    # 90 MHz * 640 / 625 MHz = 92.16 cycles: not on grid; 625 MHz * 92 / 640 is
    on_grid = FS * 92 / 640
    q = quantize_resolved_ir(looped_program(on_grid), max_snap_hz=1e-6, stretch_wait_trig=0.0)
    assert q.segments[0].n_samples == 640


def clipping_program():
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6, 91e6, 93e6], amps=[0.1, 0.1, 0.1], phases=[0.0, 0.0, 0.0])
    return quantize_resolved_ir(
        resolve(b.segment("quiet").tones("H").use_def("d").hold(time=1e-6).segment("loud").tones("H").ramp_amp_to(amps=0.5, time=1e-6).hold(time=1e-6))
    )


def test_clip_policy_error_names_segment():
    q = clipping_program()
    counted = compile_sequence_program(q, clip=0.9, clip_policy="count")  # counted in the report only
    assert int(np.abs(np.asarray(counted.segments[1].data, dtype=np.int64)).max()) <= round(0.9 * 32767)
    with pytest.raises(ClipError) as info:
        compile_sequence_program(q, clip=0.9, clip_policy="error")
    check_context(info.value, segment="loud", op="synthesize", value_text="clip=0.9")
    assert info.value.value > 0.9


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"gain": 0.0}, "gain"),
        ({"gain": NAN}, "gain"),
        ({"clip": 1.5}, "clip"),
        ({"full_scale": 40000}, "full_scale"),
        ({"clip_policy": "ignore"}, "clip_policy"),
    ],
)
def test_bad_compile_arguments(kwargs, text):
    with pytest.raises(ProgramError, match=text):
        compile_sequence_program(quantize_resolved_ir(resolved_hv()), **kwargs)


# ------------------------------------------------------------------- tone count changes (supported)


def fit_amplitudes(x: np.ndarray, freqs: list[float], fs: float) -> np.ndarray:
    """Least-squares amplitudes of sinusoids at ``freqs`` (plus offset) in samples ``x``."""
    k = np.arange(x.size)
    cols = [np.ones(x.size)]
    for f in freqs:
        cols += [np.sin(2 * np.pi * f / fs * k), np.cos(2 * np.pi * f / fs * k)]
    coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), x.astype(np.float64), rcond=None)
    return np.hypot(coef[1::2], coef[2::2])


def compile_one_segment(b: AWGProgramBuilder) -> tuple[np.ndarray, int]:
    r = resolve(b)
    program = compile_sequence_program(quantize_resolved_ir(r), gain=1.0, clip=1.0, full_scale=32767)
    assert len(program.segments) == 1
    return np.asarray(program.segments[0].data), r.segments[0].n_samples


def test_remove_tones_between_holds_inside_one_segment():
    f = [80e6, 100e6, 120e6]
    b = AWGProgramBuilder().logical_channel("H").define("three", logical_channel="H", freqs=f, amps=[0.2, 0.25, 0.3], phases=[0.0, 1.0, 2.0])
    b = b.segment("drop").tones("H").use_def("three").hold(time=3200 / FS).remove_tones(idxs=[1]).hold(time=3200 / FS)
    data, n = compile_one_segment(b)
    assert n == 6400
    x = data[:, 0] / 32767
    before = fit_amplitudes(x[100:3100], f, FS)
    after = fit_amplitudes(x[3300:6300], f, FS)
    np.testing.assert_allclose(before, [0.2, 0.25, 0.3], atol=2e-3)
    np.testing.assert_allclose(after, [0.2, 0.0, 0.3], atol=2e-3)
    assert after[1] < 1e-3


def test_add_tone_mid_segment():
    b = AWGProgramBuilder().logical_channel("H").define("one", logical_channel="H", freqs=[80e6], amps=[0.3], phases=[0.0])
    b = b.segment("grow").tones("H").use_def("one").hold(time=3200 / FS).add_tone(freq=110e6, amp=0.2, phase=0.5).hold(time=3200 / FS)
    data, n = compile_one_segment(b)
    assert n == 6400
    x = data[:, 0] / 32767
    before = fit_amplitudes(x[100:3100], [80e6, 110e6], FS)
    after = fit_amplitudes(x[3300:6300], [80e6, 110e6], FS)
    np.testing.assert_allclose(before, [0.3, 0.0], atol=2e-3)
    np.testing.assert_allclose(after, [0.3, 0.2], atol=2e-3)


def test_tone_count_change_on_one_channel_leaves_other_channel_alone():
    b = builder().segment("mixed").tones("H").use_def("dH").tones("V").use_def("dV").hold(time=3200 / FS)
    b = b.tones("H").remove_tones(idxs=[0]).hold(time=3200 / FS).tones("V").hold(time=3200 / FS)
    r = resolve(b)
    program = compile_sequence_program(quantize_resolved_ir(r, {"H": 0, "V": 1}), clip=1.0)
    data = np.asarray(program.segments[0].data) / 32767
    h_after = fit_amplitudes(data[3300:6300, 0], [90e6, 95e6], FS)
    v_after = fit_amplitudes(data[3300:6300, 1], [100e6], FS)
    np.testing.assert_allclose(h_after, [0.0, 0.2], atol=2e-3)
    np.testing.assert_allclose(v_after, [0.2], atol=2e-3)


def test_likely_unit_mistakes_warn_at_the_users_line_with_what_was_probably_meant():
    from awgrt.errors import UnitWarning

    with pytest.warns(UnitWarning, match=r"define 'd': 90 Hz is below 1 kHz: did you mean 90e6 Hz \(90 MHz\)\?") as rec:
        b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90, 91], amps=[0.1, 0.1])
    assert rec[0].filename == __file__  # the user's line, not the library's
    with pytest.warns(UnitWarning, match=r"segment 's', move: 2 Hz is below 1 kHz: did you mean 2e6 Hz"):
        b.segment("s").tones("H").use_def("d").move(df=2, time=10e-6)
    with pytest.warns(UnitWarning, match=r"segment 's', hold: time=32 s is longer than a second: did you mean 32e-6 s \(32 us\)\?"):
        b.hold(time=32)
    with pytest.warns(UnitWarning, match="add_tone: 5 Hz"):
        b.add_tone(freq=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitWarning)  # ordinary values: nothing to say
        AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6], amps=[0.1]).segment("s").tones(
            "H"
        ).use_def("d").move(df=2e6, time=10e-6).hold(time=32e-6).ramp_amp_to(amps=0.2, time=0.5)
    problem = awgrt.CARDS["M4i.6631-x8"].sample_rate_problem(625.0)  # sample_rate_hz=625, meant MS/s
    assert problem is not None and problem.endswith("did you mean 625e6 Hz? (sample rates are in hertz)")
