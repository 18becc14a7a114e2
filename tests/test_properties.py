"""Property tests over random programs.

Hypothesis draws multi-tone programs on one or two channels (holds, chirps of every shape, amplitude
ramps of every kind, tones added and removed, once / loop_n / wait_trig segments, continue /
optimise / manual phase modes, ring or end, 2- and 4-channel cards, both ways of joining
back-to-back looped holds) and checks, for every one of them:

- the compiled program passes ``validate(card)``;
- the int16 output of every segment equals, to within one LSB, an independent reference that the
  test synthesises itself (``tests/reference.py``): it integrates every tone's phase across all
  boundaries in program order, taking from the compiler only the trajectories and the phases of
  tones at their birth or at a segment that resets phases. So every promised boundary is
  phase-continuous, sample for sample;
- at every promised boundary, each tone's phase fitted on the int16 samples just before the
  boundary and just after it agree within 1e-3 rad;
- every looped segment whose tones are constant wraps seamlessly: whole cycles per pass, and the
  reference continued past the end of one pass reproduces the start of the data;
- JSON round trips are exact and digests are stable.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from awgrt import CARDS, AWGProgramBuilder, IntentIR, compile_sequence_program, quantize_resolved_ir, resolve_intent_ir
from tests import reference as ref

FS = 625e6
FULL_SCALE = 32767
AMP_BUDGET = 0.8  # sum of amplitudes per channel stays below the 0.9 clip level
FIT_MIN_AMP = 0.04
FIT_MIN_SAMPLES = 128  # a tone must be seen this long on each side for its phase to be compared


@st.composite
def programs(draw):
    """A random valid program, with its hardware map and card."""
    channels = draw(st.sampled_from([["H"], ["H", "V"]]))
    b = AWGProgramBuilder()
    for ch in channels:
        b.logical_channel(ch)
    state: dict[str, list[list[float]]] = {}  # channel -> [[freq, amp], ...] as the generator tracks it
    for ch in channels:
        n = draw(st.integers(1, 4))
        slots = sorted(draw(st.sets(st.integers(0, 40), min_size=n, max_size=n)))
        freqs = [40e6 + 4e6 * s + draw(st.floats(0, 0.5e6)) for s in slots]
        amps = [draw(st.floats(0.05, AMP_BUDGET / 5)) for _ in slots]
        phases = draw(st.one_of(st.just("auto"), st.lists(st.floats(-math.pi, math.pi), min_size=n, max_size=n)))
        b.define(f"def_{ch}", logical_channel=ch, freqs=freqs, amps=amps, phases=phases)
        state[ch] = [[f, a] for f, a in zip(freqs, amps)]

    n_segments = draw(st.integers(1, 4))
    for s in range(n_segments):
        mode = draw(st.sampled_from(["once", "once", "loop_n", "wait_trig"]))
        loops = draw(st.integers(2, 5)) if mode == "loop_n" else 1
        phase_mode = "continue" if s == 0 else draw(st.sampled_from(["continue"] * 5 + ["optimise", "manual"]))
        b.segment(f"s{s}", mode=mode, loops=loops, phase_mode=phase_mode)
        if s == 0:
            for ch in channels:
                b.tones(ch).use_def(f"def_{ch}")
        timed = False
        for _ in range(draw(st.integers(1, 3))):
            ch = draw(st.sampled_from(channels))
            tones = state[ch]
            time_s = draw(st.integers(700, 12000)) * 1e-9
            kind = draw(st.sampled_from(["hold", "hold", "move_all", "move_one", "ramp", "ramp", "add", "remove", "jump"]))
            b.tones(ch)
            if kind == "move_all":
                df = draw(st.floats(-2e6, 2e6))
                b.move(df=df, time=time_s, kind=draw(st.sampled_from(["linear", "min_jerk", "cosine", "smoothstep"])))
                for t in tones:
                    t[0] += df
            elif kind == "move_one":
                i = draw(st.integers(0, len(tones) - 1))
                df = draw(st.floats(-0.1e6, 0.1e6))
                b.move(df=df, time=time_s, idxs=[i], kind=draw(st.sampled_from(["linear", "min_jerk", "cosine"])))
                tones[i][0] += df
            elif kind == "ramp":
                amp_kind = draw(st.sampled_from(["linear", "min_jerk", "cosine", "smoothstep", "exp", "geo_ramp", "exp_tau", "adiabatic_ramp"]))
                tau = draw(st.floats(0.05, 3.0)) * time_s if amp_kind == "exp_tau" else None
                targets = [draw(st.floats(0.05, AMP_BUDGET / 5)) for _ in tones]
                b.ramp_amp_to(amps=targets, time=time_s, kind="exp" if amp_kind == "exp_tau" else amp_kind, tau=tau)
                for t, a in zip(tones, targets):
                    t[1] = a
            elif kind == "add" and len(tones) < 5:
                used = {round((t[0] - 40e6) / 4e6) for t in tones}
                free = [k for k in range(0, 44) if all(abs(k - u) > 1 for u in used)]
                f = 40e6 + 4e6 * draw(st.sampled_from(free))
                b.add_tone(freq=f, amp=0.05, phase=draw(st.floats(-math.pi, math.pi)))
                tones.append([f, 0.05])
                continue
            elif kind == "jump":  # an instant frequency or amplitude step (time=0): deliberate, phase continuous
                if draw(st.booleans()):
                    df = draw(st.floats(-0.5e6, 0.5e6))
                    b.move(df=df, time=0)
                    for t in tones:
                        t[0] += df
                else:
                    a = draw(st.floats(0.05, AMP_BUDGET / 5))
                    b.ramp_amp_to(amps=a, time=0)
                    for t in tones:
                        t[1] = a
                continue
            elif kind == "remove" and len(tones) > 1:
                i = draw(st.integers(0, len(tones) - 1))
                b.remove_tones(idxs=[i])
                del tones[i]
                continue
            else:
                b.hold(time=time_s)
            timed = True
        if not timed:
            b.tones(channels[0]).hold(time=2e-6)
    if draw(st.booleans()):
        b.last_step("end")
    use_4ch = len(channels) == 2 and draw(st.booleans())
    mapping = {"H": 0, "V": 3} if use_4ch else {ch: i for i, ch in enumerate(channels)}
    card = CARDS["M4i.6622-x8"] if use_4ch else CARDS["M4i.6631-x8"]
    joint = draw(st.sampled_from(["auto", "step"]))
    return b, mapping, card, joint


def _compile(drawn):
    b, mapping, card, joint = drawn
    resolved = b.build_resolved_ir(sample_rate_hz=FS)
    q = quantize_resolved_ir(resolved, mapping, card, joint=joint)
    return q, compile_sequence_program(q, progress=False)


def _data_of(program, q, index: int) -> np.ndarray:
    return np.asarray(program.segments[q.segment_slot[index]].data)


def _independent_tones(q):
    """Per segment and channel, the reference tones integrated by the test across boundaries."""
    carried: dict[int, float] = {}
    out = []
    for seg in q.segments:
        per_channel = {}
        for track in seg.tracks:
            entry_ids = {s.tone for s in track.entry}
            given = {}
            for piece in track.pieces:
                for s in piece.tones:
                    if s.tone in given:
                        continue
                    promised = seg.phase_mode == "continue" or s.tone not in entry_ids
                    if promised and s.tone in carried:
                        given[s.tone] = carried[s.tone]
                    else:  # a tone's birth, or a reset the segment asks for: its phase is an input
                        given[s.tone] = s.phase0_cycles
            tones = ref.tones_from_pieces(track.pieces, phase0_cycles=given)
            for tid, (start, t) in tones.items():
                if start + t.n == seg.n_samples:
                    carried[tid] = t.end_phase_cycles(FS)
                else:
                    carried.pop(tid, None)
            per_channel[track.channel] = tones
        out.append(per_channel)
    return out


@settings(max_examples=40)
@given(programs())
def test_every_compiled_program_is_card_legal(drawn):
    _, mapping, card, _ = drawn
    q, program = _compile(drawn)
    program.validate(card)
    assert len(program.steps) == len(q.segments)
    assert program.n_channels in card.channel_counts
    for seg in program.segments:
        assert seg.data.dtype == np.int16 and not seg.data.flags.writeable
        assert seg.n_samples % 32 == 0 and seg.n_samples >= card.min_segment_length(program.n_channels)


@settings(max_examples=30)
@given(programs())
def test_output_matches_an_independent_reference_with_continuous_phase(drawn):
    q, program = _compile(drawn)
    hw = q.hardware_channels
    for index, (seg, tones) in enumerate(zip(q.segments, _independent_tones(q))):
        data = _data_of(program, q, index)
        for ch, chan_tones in tones.items():
            expected = np.zeros(seg.n_samples)
            for start, t in chan_tones.values():
                expected[start : start + t.n] += t.samples(FS)
            want, clipped = ref.to_int16(expected)
            assert clipped == 0
            err = np.abs(data[:, hw[ch]].astype(np.int64) - want.astype(np.int64))
            assert err.max() <= 1, f"segment {seg.name!r} channel {ch}: max error {err.max()} LSB at sample {err.argmax()}"
        for col in set(range(q.n_channels)) - set(hw.values()):
            assert not np.any(data[:, col])


def _window_fit(data: np.ndarray, lo: int, hi: int, chan_tones) -> dict[int, tuple[float, float, int]]:
    """Fit every tone present over samples [lo, hi) of one segment against the reference phase
    trajectory; return {tone: (phase offset from the reference in rad, fitted amplitude, samples
    the tone is present in the window)}.

    The reference trajectories are continuous across boundaries by construction, so the offset
    fitted just before a boundary and just after it must agree when the output is continuous."""
    ids, psis, envs = [], [], []
    for tid, (start, t) in chan_tones.items():
        a, b = max(lo, start), min(hi, start + t.n)
        if a >= b:
            continue
        # a tone present over part of the window gets a column that is zero where it is absent
        psi, env = np.zeros(hi - lo), np.zeros(hi - lo)
        psi[a - lo : b - lo] = t.phase_cycles(FS)[a - start : b - start]
        env[a - lo : b - lo] = t.amplitudes()[a - start : b - start]
        ids.append(tid)
        psis.append(psi)
        envs.append(env)
    if not ids:
        return {}
    fit = ref.fit_phases(data[lo:hi], psis, envs)
    # tones closer than a few bins of the window cannot be told apart (snapping of back-to-back
    # looped holds may even merge them): their fitted phases are not measurements, so skip them
    mean_f = np.array([np.mean(np.diff(np.unwrap(2 * np.pi * p[e > 0]))) / (2 * np.pi) if np.count_nonzero(e) > 1 else np.nan for p, e in zip(psis, envs)])
    resolvable = [bool(np.all(np.abs(np.delete(mean_f, i) - f) > 4.0 / (hi - lo))) for i, f in enumerate(mean_f)]
    return {tid: (float(th), float(a), int(np.count_nonzero(e))) for tid, th, a, e, ok in zip(ids, fit.phases_rad, fit.amplitudes, envs, resolvable) if ok}


@settings(max_examples=25)
@given(programs())
def test_fitted_phase_is_continuous_at_every_promised_boundary(drawn):
    q, program = _compile(drawn)
    hw = q.hardware_channels
    tones = _independent_tones(q)
    for i in range(len(q.segments) - 1):
        a, b = q.segments[i], q.segments[i + 1]
        if b.phase_mode != "continue":
            continue
        w = min(1024, a.n_samples, b.n_samples)
        left_data, right_data = _data_of(program, q, i), _data_of(program, q, i + 1)
        for ch in q.hardware_channels:
            left = _window_fit(left_data[:, hw[ch]].astype(float), a.n_samples - w, a.n_samples, tones[i][ch])
            right = _window_fit(right_data[:, hw[ch]].astype(float), 0, w, tones[i + 1][ch])
            for tid in set(left) & set(right):
                (p_left, amp_left, n_left), (p_right, amp_right, n_right) = left[tid], right[tid]
                if min(amp_left, amp_right) < FIT_MIN_AMP or min(n_left, n_right) < FIT_MIN_SAMPLES:
                    continue
                jump = float(ref.wrap_rad(p_right - p_left))
                assert abs(jump) < 1e-3, f"{a.name} -> {b.name}, {ch} tone #{tid}: phase jumps {jump:.2e} rad"


@settings(max_examples=30)
@given(programs())
def test_looped_constant_segments_wrap_seamlessly(drawn):
    q, program = _compile(drawn)
    hw = q.hardware_channels
    tones = _independent_tones(q)
    # what was *asked* to hold: each tone at one frequency over the whole looped segment. A tone asked
    # to move, even by 1 Hz that snapping then absorbs, or to jump (time=0), ends elsewhere than it
    # starts: the compiler says such a wrap cannot be seamless (WrapWarning), as asked
    asked = {
        (s.name, t.channel)
        for s in drawn[0].build_resolved_ir(sample_rate_hz=FS).segments
        for t in s.tracks
        if t.constant and len({(x.tone, x.f0_hz) for p in t.pieces for x in p.tones}) == len({x.tone for p in t.pieces for x in p.tones})
    }
    for index, seg in enumerate(q.segments):
        if not seg.looped:
            continue
        data = _data_of(program, q, index)
        for track in seg.tracks:
            if not track.constant or (seg.name, track.channel) not in asked:
                continue
            for s in track.entry:
                cycles = s.f0_hz * seg.n_samples / FS
                assert abs(cycles - round(cycles)) < 1e-6, f"{seg.name}: {cycles} cycles per pass"
            # the reference continued for 64 samples past the pass must equal the pass's start
            cont = np.zeros(64)
            for _start, t in tones[index][track.channel].values():
                last = t.spans[-1]
                p_end = t.end_phase_cycles(FS)
                k = np.arange(64, dtype=np.float64)
                cont += last.a_end * np.sin(2 * np.pi * (p_end + last.f_end / FS * k))
            want, _ = ref.to_int16(cont)
            got = data[:64, hw[track.channel]]
            assert np.abs(want.astype(int) - got.astype(int)).max() <= 1, f"{seg.name}: wrap is not seamless"


@settings(max_examples=40)
@given(programs())
def test_json_round_trip_and_digests_are_stable(drawn):
    b, mapping, card, joint = drawn
    ir = b.build_intent_ir()
    again = IntentIR.from_json(ir.to_json())
    assert again == ir
    assert again.digest == ir.digest
    assert again.segment_fingerprints() == ir.segment_fingerprints()
    assert IntentIR.from_json(again.to_json(indent=None)).to_json() == ir.to_json()
    q1 = quantize_resolved_ir(resolve_intent_ir(ir, FS), mapping, card, joint=joint)
    q2 = quantize_resolved_ir(resolve_intent_ir(again, FS), mapping, card, joint=joint)
    assert [s.digest for s in q1.segments] == [s.digest for s in q2.segments]
    p1, p2 = compile_sequence_program(q1, progress=False), compile_sequence_program(q2, progress=False)
    assert p1.digest == p2.digest
