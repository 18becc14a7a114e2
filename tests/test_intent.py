"""The intent IR and the builder: JSON round trip, schema checks, digests, per-segment
fingerprints, the README quick start, the seconds-to-samples rounding rule and the timing model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from awgrt import AWGProgramBuilder, IntentIR, resolve_intent_ir
from awgrt.errors import ProgramError, SerializationError
from awgrt.ir.intent import Hold, IntentSegment, UseDef

FS = 625e6
REPO = Path(__file__).resolve().parents[1]

# A program using every op, every ramp kind, per-index df, both hold forms, sync, manual phases
# and last_step "end". Kept as source text so a subprocess can build exactly the same program.
EVERY_OP_SOURCE = textwrap.dedent(
    """
    from awgrt import AWGProgramBuilder

    def every_op_builder(manual_phases=None, **over):
        p = dict(f_h=(90e6, 95e6), a_h=(0.2, 0.25), hold_s=10e-6, df=(1e6, -2e6), loops=3, ramp_to=0.15, last="end")
        p.update(over)
        manual_phases = manual_phases or {"H": [0.1, 0.2], "V": [0.3]}
        return (
            AWGProgramBuilder()
            .logical_channel("H")
            .logical_channel("V")
            .define("dH", logical_channel="H", freqs=list(p["f_h"]), amps=list(p["a_h"]), phases="auto")
            .define("dV", logical_channel="V", freqs=[100e6], amps=[0.3], phases=[0.5])
            .define("target", logical_channel="H", freqs=[88e6, 92e6, 96e6], amps=[0.1, 0.2, 0.3], phases=[0.0, 1.0, 2.0])
            .segment("load", mode="wait_trig")
            .tones("H").use_def("dH").add_tone(freq=80e6, amp=0.1, phase=0.3)
            .tones("V").use_def("dV").hold(time=2e-6)
            .segment("drop", mode="once")
            .hold(time=p["hold_s"])
            .tones("H").remove_tones(idxs=[2]).hold(time=1e-6)
            .segment("chirp", mode="loop_n", loops=p["loops"])
            .tones("H").move(df=list(p["df"]), time=5e-6, idxs=[0, 1], kind="min_jerk")
            .tones("V").move(df=1e6, time=3e-6, kind="cosine")
            .sync()
            .tones("V").move(df=-1e6, time=2e-6)
            .segment("ramps", mode="once", phase_mode="optimise")
            .tones("H").ramp_amp_to(amps=p["ramp_to"], time=1e-6, kind="linear")
            .ramp_amp_to(amps=[0.2, 0.1], time=1e-6, idxs=[1, 0], kind="min_jerk")
            .ramp_amp_to(amps=0.12, time=1e-6, idxs=[0], kind="cosine")
            .ramp_amp_to(amps=0.3, time=1e-6, kind="exp")
            .segment("remap", mode="once")
            .tones("H").remap_from_def(target_def="target", src=[0, 1], dst=[2, 0], time=4e-6, kind="min_jerk")
            .segment("manual", mode="once", phase_mode="manual", phases=manual_phases)
            .tones("V").hold(time=2e-6)
            .last_step(p["last"])
        )
    """
)
_ns: dict = {}
exec(compile(EVERY_OP_SOURCE, "<every_op>", "exec"), _ns)
every_op_builder = _ns["every_op_builder"]


def every_op_ir(**over) -> IntentIR:
    return every_op_builder(**over).build_intent_ir()


def test_every_op_program_contains_every_op_kind():
    ir = every_op_ir()
    ops = [o for s in ir.segments for o in s.ops]
    names = {type(o).OP for o in ops}
    assert names == {"use_def", "add_tone", "remove_tones", "move", "ramp_amp_to", "remap_from_def", "hold", "sync"}
    assert {o.kind for o in ops if type(o).OP == "ramp_amp_to"} == {"linear", "min_jerk", "cosine", "exp"}
    assert any(type(o).OP == "hold" and o.channel is None for o in ops)
    assert any(type(o).OP == "hold" and o.channel == "H" for o in ops)
    assert any(type(o).OP == "move" and len(o.df_hz) == 2 for o in ops)
    assert ir.last_step == "end"
    assert {s.mode for s in ir.segments} == {"once", "loop_n", "wait_trig"}
    assert {s.phase_mode for s in ir.segments} == {"continue", "optimise", "manual"}


# ------------------------------------------------------------------------------ JSON round trip


@pytest.mark.parametrize("indent", [2, None])
def test_json_round_trip_is_equal_with_identical_digest(indent):
    ir = every_op_ir()
    text = ir.to_json(indent=indent)
    back = IntentIR.from_json(text)
    assert back == ir
    assert back.digest == ir.digest
    assert back.segment_fingerprints() == ir.segment_fingerprints()
    assert back.to_json() == ir.to_json()
    assert json.loads(text)["schema"] == "awgrt.intent"
    assert json.loads(text)["schema_version"] == 1


def test_json_round_trip_keeps_every_value_exactly():
    ir = every_op_ir(f_h=(90.123456789012e6, 0.1 + 0.2), hold_s=1e-6 / 3)
    back = IntentIR.from_json(ir.to_json())
    assert back.definitions[0].freqs_hz == (90.123456789012e6, 0.1 + 0.2)
    hold = next(o for o in back.segments[1].ops if type(o).OP == "hold")
    assert hold.time_s == 1e-6 / 3
    assert back == ir


def test_json_round_trip_then_resolve_gives_same_samples():
    ir = every_op_ir()
    a = resolve_intent_ir(ir, FS)
    b = resolve_intent_ir(IntentIR.from_json(ir.to_json()), FS)
    assert a.digest == b.digest
    assert [s.n_samples for s in a.segments] == [s.n_samples for s in b.segments]


def _doc() -> dict:
    return json.loads(every_op_ir().to_json())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(schema="awgrt.quantized"),
        lambda d: d.update(schema="something.else"),
        lambda d: d.pop("schema"),
        lambda d: d.update(schema_version=2),
        lambda d: d.update(schema_version=0),
        lambda d: d.update(schema_version="1"),
    ],
    ids=["other-awgrt-schema", "foreign-schema", "no-schema", "version-2", "version-0", "version-string"],
)
def test_wrong_schema_or_version_raises(mutate):
    d = _doc()
    mutate(d)
    with pytest.raises(SerializationError):
        IntentIR.from_json(json.dumps(d))


@pytest.mark.parametrize(
    "text",
    ["", "{", "not json", '{"schema": "awgrt.intent",}', "[1, 2]", "null", "42", '"awgrt.intent"'],
    ids=["empty", "open-brace", "words", "trailing-comma", "list", "null", "number", "string"],
)
def test_malformed_json_raises(text):
    with pytest.raises(SerializationError):
        IntentIR.from_json(text)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("segments"),
        lambda d: d.pop("definitions"),
        lambda d: d["segments"][0].pop("mode"),
        lambda d: d["segments"][0]["ops"][0].update(op="teleport"),
        lambda d: d["segments"][0]["ops"][0].pop("op"),
        lambda d: d["segments"][0]["ops"][0].update(bogus_field=1),
        lambda d: d["definitions"][0].pop("freqs_hz"),
        lambda d: d.update(segments=7),
    ],
    ids=["no-segments", "no-definitions", "no-mode", "unknown-op", "no-op-name", "extra-op-field", "no-freqs", "segments-not-list"],
)
def test_structurally_broken_document_raises_serialization_error(mutate):
    d = _doc()
    mutate(d)
    with pytest.raises(SerializationError):
        IntentIR.from_json(json.dumps(d))


def test_document_with_invalid_content_is_held_to_program_rules():
    d = _doc()
    d["segments"][1]["ops"][0]["time_s"] = -1.0
    with pytest.raises(ProgramError, match="'drop'"):
        IntentIR.from_json(json.dumps(d))


def test_construction_with_other_schema_version_raises():
    ir = every_op_ir()
    with pytest.raises(SerializationError):
        IntentIR(ir.logical_channels, ir.definitions, ir.segments, last_step=ir.last_step, schema_version=2)


# ---------------------------------------------------------------------------------- digests

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_same_program_built_twice_has_same_digest():
    a, b = every_op_ir(), every_op_ir()
    assert a is not b
    assert a == b
    assert HEX64.match(a.digest)
    assert a.digest == b.digest
    assert a.segment_fingerprints() == b.segment_fingerprints()


def test_digest_does_not_depend_on_dict_insertion_order():
    a = every_op_ir(manual_phases={"H": [0.1, 0.2], "V": [0.3]})
    b = every_op_ir(manual_phases={"V": [0.3], "H": [0.1, 0.2]})
    assert a.digest == b.digest
    assert a.segment_fingerprints() == b.segment_fingerprints()


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_digest_does_not_depend_on_json_key_order():
    ir = every_op_ir()
    shuffled = json.dumps(_reverse_keys(json.loads(ir.to_json())))
    assert shuffled != ir.to_json(None)
    back = IntentIR.from_json(shuffled)
    assert back == ir
    assert back.digest == ir.digest


def test_digest_is_the_same_in_another_process():
    ir = every_op_ir()
    code = EVERY_OP_SOURCE + "\nprint(every_op_builder().build_intent_ir().digest)\nprint(every_op_builder().build_intent_ir().to_json(None))\n"
    digests = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=True)
        lines = out.stdout.strip().splitlines()
        digests.add(lines[0])
        assert IntentIR.from_json(lines[1]).digest == ir.digest
    assert digests == {ir.digest}


MUTATIONS = {
    "freq": dict(f_h=(90e6, 95.000001e6)),
    "freq-order": dict(f_h=(95e6, 90e6)),
    "amp": dict(a_h=(0.2, 0.2500001)),
    "hold-time": dict(hold_s=10.000001e-6),
    "df": dict(df=(1e6, -2.5e6)),
    "df-sign": dict(df=(-1e6, -2e6)),
    "loops": dict(loops=4),
    "ramp": dict(ramp_to=0.16),
    "last-step": dict(last="ring"),
    "manual-phase": dict(manual_phases={"H": [0.1, 0.2], "V": [0.30001]}),
}


def test_any_parameter_change_changes_the_digest():
    base = every_op_ir()
    digests = {"base": base.digest}
    for name, over in MUTATIONS.items():
        changed = every_op_ir(**over)
        assert changed != base, name
        digests[name] = changed.digest
    assert len(set(digests.values())) == len(digests), digests


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.define("spare", logical_channel="V", freqs=[70e6], amps=[0.1]),
        lambda b: b.logical_channel("W"),
        lambda b: b.segment("extra").hold(time=1e-6),
        lambda b: b.segment("extra", mode="loop_n", loops=2).hold(time=1e-6),
        lambda b: b.segment("extra").tones("H").hold(time=1e-6),
        lambda b: b.segment("extra").tones("V").hold(time=1e-6),
        lambda b: b.segment("extra").tones("H").move(df=1e6, time=1e-6, kind="cosine"),
        lambda b: b.segment("extra").tones("H").move(df=1e6, time=1e-6, idxs=[0]),
        lambda b: b.segment("extra", phase_mode="optimise").hold(time=1e-6),
    ],
)
def test_additions_change_the_digest(edit):
    base = every_op_ir()
    assert edit(every_op_builder()).build_intent_ir().digest != base.digest


def test_small_programs_differing_in_one_field_have_distinct_digests():
    def prog(kind="linear", idxs=None, ch="H", name="s", mode="once"):
        b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
        b = b.define("d", logical_channel="H", freqs=[90e6, 91e6], amps=[0.1, 0.1]).define("e", logical_channel="V", freqs=[90e6, 91e6], amps=[0.1, 0.1])
        b = b.segment(name, mode=mode).tones("H").use_def("d").tones("V").use_def("e")
        return b.tones(ch).move(df=1e6, time=1e-6, idxs=idxs, kind=kind).build_intent_ir().digest

    variants = [prog(), prog(kind="min_jerk"), prog(idxs=[0]), prog(idxs=[1]), prog(idxs=[0, 1]), prog(ch="V"), prog(name="t"), prog(mode="wait_trig")]
    assert len(set(variants)) == len(variants)


# ----------------------------------------------------------------------------- fingerprints


def chain_program(times_us=(1.0, 2.0, 3.0, 4.0), freqs=(90e6,)):
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=list(freqs), amps=[0.1] * len(freqs))
    b = b.segment("s0").tones("H").use_def("d").hold(time=times_us[0] * 1e-6)
    for i, t in enumerate(times_us[1:], start=1):
        b = b.segment(f"s{i}").tones("H").hold(time=t * 1e-6)
    return b.build_intent_ir()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_fingerprints_change_for_changed_segment_and_all_later(k):
    times = [1.0, 2.0, 3.0, 4.0]
    base = chain_program(tuple(times)).segment_fingerprints()
    times[k] += 0.5
    changed = chain_program(tuple(times)).segment_fingerprints()
    assert list(base) == list(changed) == ["s0", "s1", "s2", "s3"]
    for i in range(4):
        name = f"s{i}"
        if i < k:
            assert changed[name] == base[name], name
        else:
            assert changed[name] != base[name], name


def test_fingerprints_are_distinct_and_hex():
    fp = chain_program((1.0, 1.0, 1.0, 1.0)).segment_fingerprints()
    assert all(HEX64.match(v) for v in fp.values())
    assert len(set(fp.values())) == 4  # equal segments at different places still differ (chained)


def test_fingerprints_all_change_when_a_definition_changes():
    base = chain_program().segment_fingerprints()
    changed = chain_program(freqs=(91e6,)).segment_fingerprints()
    assert all(base[n] != changed[n] for n in base)


def test_fingerprints_unchanged_by_appending_a_segment():
    base = chain_program((1.0, 2.0, 3.0)).segment_fingerprints()
    longer = chain_program((1.0, 2.0, 3.0, 4.0)).segment_fingerprints()
    assert all(longer[n] == base[n] for n in base)


# ------------------------------------------------------------------------------ quick start


def _readme_quick_start() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block after '## Quick start'"
    return match.group(1)


def test_readme_quick_start_runs_and_prints_expected_line():
    code = _readme_quick_start()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].strip() == "0.00025 2 2"


# ----------------------------------------------------------------------- the rounding rule


def nearest_sample(time_s: float, fs: float) -> int:
    """round(t * fs) on the exact binary values, ties to even, in integer arithmetic."""
    p, q = time_s.as_integer_ratio()
    r, s = fs.as_integer_ratio()
    num, den = p * r, q * s
    whole, rem = divmod(num, den)
    if 2 * rem > den or (2 * rem == den and whole % 2 == 1):
        whole += 1
    return whole


def boundaries(times: list[float], fs: float) -> list[int]:
    """Sample index of every cumulative boundary (exact rational sum of the binary times)."""
    num, den = 0, 1
    out = [0]
    r, s = fs.as_integer_ratio()
    for t in times:
        p, q = t.as_integer_ratio()
        num, den = num * q + p * den, den * q
        whole, rem = divmod(num * r, den * s)
        if 2 * rem > den * s or (2 * rem == den * s and whole % 2 == 1):
            whole += 1
        out.append(whole)
    return out


def hold_program(times: list[float], fs: float):
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[1e6], amps=[0.1])
    b = b.segment("s").tones("H").use_def("d")
    for t in times:
        b = b.hold(time=t)
    return b.build_resolved_ir(sample_rate_hz=fs)


def test_40_us_at_625_msps_is_exactly_25000_samples():
    assert 40e-6 * 625e6 != 25000  # the float product is 25000.000000000004
    assert nearest_sample(40e-6, 625e6) == 25000
    r = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90e6], amps=[0.3])
        .segment("s")
        .tones("H")
        .use_def("d")
        .hold(time=40e-6)
    )
    r = r.build_resolved_ir(sample_rate_hz=625e6)
    assert r.segments[0].n_samples == 25000
    assert r.n_samples == 25000
    assert [n for n in r.notes if n.kind != "last_step"] == []  # landed on a whole sample: no rounding to report


@pytest.mark.parametrize(
    ("time_s", "fs", "expected"),
    [
        (40e-6, 625e6, 25000),
        (1e-6, 625e6, 625),
        (200e-6, 625e6, 125000),
        (50e-6, 625e6, 31250),
        (1e-3, 1.25e9, 1_250_000),
        (0.3e-6, 1.25e9, 375),
        (3.2e-6, 625e6, 2000),
        (1.6e-9, 625e6, 1),
    ],
)
def test_single_hold_sample_counts(time_s, fs, expected):
    assert nearest_sample(time_s, fs) == expected
    assert hold_program([time_s], fs).segments[0].n_samples == expected


@pytest.mark.parametrize(
    ("times", "fs"),
    [
        ([0.1e-6] * 3, 625e6),
        ([0.1e-6] * 10, 625e6),
        ([1e-7, 2e-7, 3e-7], 625e6),
        ([1.7e-9] * 7, 625e6),
        ([0.3e-6, 0.1e-6, 0.7e-6], 1.25e9),
        ([1 / 3 * 1e-6] * 3, 625e6),
    ],
)
def test_cumulative_holds_round_boundaries_not_lengths(times, fs):
    r = hold_program(times, fs)
    pieces = [p for p in r.segments[0].track("H").pieces]
    edges = boundaries(times, fs)
    assert [p.start for p in pieces] == edges[:-1]
    assert [p.n for p in pieces] == [b - a for a, b in zip(edges, edges[1:])]
    assert r.segments[0].n_samples == edges[-1]


def test_three_tenth_microsecond_holds_known_numbers():
    # the binary value of 0.1e-6 lies just below 1e-7, so the exact boundaries are 62.4999..,
    # 124.9999.., 187.4999.. samples -> 62, 125, 187 (pieces 62, 63, 62). Float arithmetic would
    # give 187.5 -> 188 at the third boundary: the rule works on the exact binary values.
    assert (0.1e-6 + 0.1e-6 + 0.1e-6) * 625e6 == 187.5
    assert boundaries([0.1e-6] * 3, 625e6) == [0, 62, 125, 187]
    r = hold_program([0.1e-6] * 3, 625e6)
    assert [p.n for p in r.segments[0].track("H").pieces] == [62, 63, 62]
    assert r.segments[0].n_samples == 187


@pytest.mark.parametrize(("k", "expected"), [(1, 0), (3, 2), (5, 2), (7, 4), (9, 4), (11, 6)])
def test_exact_ties_round_to_even(k, expected):
    # fs = 2**29 and t = k * 2**-30 are exact binaries: t * fs = k / 2 exactly
    fs, t = float(2**29), k * 2.0**-30
    assert nearest_sample(t, fs) == expected
    if expected == 0:
        with pytest.raises(ProgramError, match="rounds to none"):
            hold_program([t], fs)
    else:
        assert hold_program([t], fs).segments[0].n_samples == expected


def test_exact_ties_along_a_segment():
    fs, t = float(2**29), 5 * 2.0**-30  # 2.5 samples each: boundaries 2.5, 5, 7.5, 10 -> 2, 5, 8, 10
    r = hold_program([t] * 4, fs)
    assert [p.n for p in r.segments[0].track("H").pieces] == [2, 3, 3, 2]


# ---------------------------------------------------------------------------- timing model


def two_channel_builder() -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("dH", logical_channel="H", freqs=[90e6], amps=[0.2])
        .define("dV", logical_channel="V", freqs=[100e6], amps=[0.2])
    )


def spans(track) -> list[tuple[int, int]]:
    return [(p.start, p.n) for p in track.pieces]


def test_ops_on_different_channels_run_in_parallel():
    b = two_channel_builder().segment("par").tones("H").use_def("dH").move(df=1e6, time=1e-6).tones("V").use_def("dV").move(df=2e6, time=1e-6)
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    assert seg.n_samples == 625  # not 1250: both moves start at the segment start
    assert spans(seg.track("H")) == [(0, 625)]
    assert spans(seg.track("V")) == [(0, 625)]
    assert seg.track("H").pieces[0].tones[0].f1_hz == 91e6
    assert seg.track("V").pieces[0].tones[0].f1_hz == 102e6


def test_ops_on_one_channel_run_in_sequence():
    b = two_channel_builder().segment("seq").tones("H").use_def("dH").move(df=1e6, time=1e-6).hold(time=2e-6).move(df=-1e6, time=1e-6)
    b = b.tones("V").use_def("dV")
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    assert spans(seg.track("H")) == [(0, 625), (625, 1250), (1875, 625)]
    assert seg.n_samples == 2500
    assert spans(seg.track("V")) == [(0, 2500)]  # the channel without timed ops holds the whole segment


def test_segment_length_is_longest_channel_and_others_hold():
    b = two_channel_builder().segment("uneven").tones("H").use_def("dH").hold(time=1e-6).tones("V").use_def("dV").hold(time=0.4e-6).hold(time=1e-6)
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    v_end = nearest_sample(0.4e-6, FS) + nearest_sample(1e-6, FS)
    assert v_end == 875
    assert seg.n_samples == 875
    assert spans(seg.track("V")) == [(0, 250), (250, 625)]
    h = seg.track("H")
    assert spans(h) == [(0, 625), (625, 250)]  # H holds its last state to the segment end
    assert all(s.constant for s in h.pieces[-1].tones)


def test_sync_aligns_channels_to_the_latest():
    b = two_channel_builder().segment("synced").tones("H").use_def("dH").hold(time=1e-6).tones("V").use_def("dV").hold(time=0.4e-6)
    b = b.sync().tones("V").move(df=1e6, time=1e-6)
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    v = seg.track("V")
    assert spans(v) == [(0, 250), (250, 375), (625, 625)]  # the move starts at H's end, 1 us
    assert v.pieces[2].tones[0].f0_hz == 100e6 and v.pieces[2].tones[0].f1_hz == 101e6
    assert seg.n_samples == 1250
    assert spans(seg.track("H")) == [(0, 625), (625, 625)]


def test_without_sync_channels_do_not_wait():
    b = two_channel_builder().segment("unsynced").tones("H").use_def("dH").hold(time=1e-6).tones("V").use_def("dV").hold(time=0.4e-6)
    b = b.tones("V").move(df=1e6, time=1e-6)
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    assert spans(seg.track("V")) == [(0, 250), (250, 625)]
    assert seg.n_samples == 875


def test_hold_without_channel_holds_every_channel():
    b = two_channel_builder().segment("first").tones("H").use_def("dH").tones("V").use_def("dV").hold(time=1e-6)
    b = b.segment("all").hold(time=2e-6)
    ir = b.build_intent_ir()
    assert ir.segments[1].ops[0].channel is None
    seg = resolve_intent_ir(ir, FS).segments[1]
    assert seg.n_samples == 1250
    assert spans(seg.track("H")) == [(0, 1250)]
    assert spans(seg.track("V")) == [(0, 1250)]


def test_hold_without_channel_syncs_first():
    # a channel-less hold after channel ops (built directly: the builder keeps a channel selected)
    ops = (UseDef("H", "dH"), UseDef("V", "dV"), Hold("H", 1e-6), Hold(None, 1e-6))
    base = two_channel_builder().segment("x").hold(time=1e-6).build_intent_ir()
    ir = IntentIR(base.logical_channels, base.definitions, (IntentSegment("direct", ops=ops),))
    seg = resolve_intent_ir(ir, FS).segments[0]
    assert seg.n_samples == 1250
    assert spans(seg.track("H")) == [(0, 625), (625, 625)]
    assert spans(seg.track("V")) == [(0, 625), (625, 625)]  # V caught up to H, then held with it


def test_instant_ops_act_at_the_channel_time():
    b = two_channel_builder().segment("grow").tones("H").use_def("dH").hold(time=1e-6).add_tone(freq=80e6, amp=0.1).hold(time=1e-6)
    b = b.tones("V").use_def("dV").hold(time=0.5e-6).remove_tones(idxs=[0]).add_tone(freq=70e6, amp=0.1).hold(time=0.5e-6)
    seg = b.build_resolved_ir(sample_rate_hz=FS).segments[0]
    h = seg.track("H")
    assert [len(p.tones) for p in h.pieces] == [1, 2]
    assert h.pieces[1].start == 625
    v = seg.track("V")
    assert [[t.f0_hz for t in p.tones] for p in v.pieces][:2] == [[100e6], [70e6]]
    assert v.pieces[1].start == nearest_sample(0.5e-6, FS)
    assert seg.n_samples == 1250


def _two_channels() -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("dH", logical_channel="H", freqs=[90e6], amps=[0.3], phases=[0.0])
        .define("dV", logical_channel="V", freqs=[100e6], amps=[0.3], phases=[0.0])
        .segment("s")
        .tones("H")
        .use_def("dH")
        .tones("V")
        .use_def("dV")
    )


def test_parallel_blocks_start_together_and_what_follows_waits_for_the_longest():
    fs = 625e6
    r = (
        _two_channels()
        .tones("H")
        .hold(time=1e-6)  # H is 625 samples ahead before the parallel block
        .parallel(lambda b: b.tones("H").move(df=1e6, time=2e-6), lambda b: b.tones("V").ramp_amp_to(amps=0.1, time=4e-6))
        .tones("H")
        .hold(time=1e-6)
        .build_resolved_ir(sample_rate_hz=fs)
    )
    seg = r.segments[0]
    h = [(p.start, p.n, p.op.split()[1]) for p in seg.track("H").pieces]
    v = [(p.start, p.n, p.op.split()[1]) for p in seg.track("V").pieces]
    # both blocks start at 625 (after the sync), the H move ends at 1875 and H holds to 3125
    assert v[0] == (0, 625, "sync") and v[1] == (625, 2500, "ramp_amp_to")
    assert h[0] == (0, 625, "hold") and h[1] == (625, 1250, "move") and h[2][:2] == (1875, 1250)
    # the hold after parallel() starts when the longest block (V, 4 us) has finished
    assert h[3] == (3125, 625, "hold")
    assert seg.n_samples == 3750


def test_parallel_rejects_blocks_sharing_a_channel():
    with pytest.raises(ProgramError, match="both use channel 'H'") as info:
        _two_channels().parallel(lambda b: b.tones("H").hold(time=1e-6), lambda b: b.tones("H").move(df=1e6, time=1e-6))
    assert info.value.segment == "s" and info.value.op == "parallel"


def test_parallel_rejects_a_block_that_holds_every_channel():
    with pytest.raises(ProgramError, match="block 1 of parallel"):
        _two_channels().parallel(lambda b: b.tones("H").hold(time=1e-6), lambda b: b.hold(time=1e-6))
