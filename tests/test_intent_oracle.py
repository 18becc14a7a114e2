"""The card plays what the *intent* asked: random programs over the whole builder vocabulary,
compiled, and their int16 output and step table judged by ``tests/intent_oracle.py`` (which shares
no code with the compiler).

The programs: one or two channels (one of them AOD-calibrated, its amplitudes optical powers),
holds of both kinds (one channel, every channel), moves of every shape (row shifts and tones
moving each on its own), amplitude ramps of every kind (exp with and without a time constant,
geo_ramp, adiabatic_ramp), ``time=0`` moves, ramps and remaps at the start, in the middle and at the
end of segments, remaps to a definition (one to one, and ``dst="all"`` from a loaded subset),
tones added and removed, once / loop_n / wait_trig segments, a program ending with ``end`` or
``ring``.
"""

from __future__ import annotations

import json
import os
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.calibration import AODCalibration
from tests.intent_oracle import check_program, check_steps

FS = 625e6
FREQ_SHAPES = ["linear", "min_jerk", "cosine", "smoothstep"]
AMP_SHAPES = [*FREQ_SHAPES, "exp", "geo_ramp", "adiabatic_ramp"]
CAL = AODCalibration(band_hz=(60e6, 140e6), g=(1.0, 0.08, -0.15), v0=(0.55, 0.04))
#: Drawn programs per CI run.
EXAMPLES = 150


def _us(draw, lo: float, hi: float) -> float:
    return round(draw(st.floats(lo, hi)), 3) * 1e-6


@st.composite
def programs(draw):
    calibrated = draw(st.booleans())
    channels = draw(st.sampled_from([["H"], ["H", "V"]]))
    b = AWGProgramBuilder()
    state: dict[str, list[list[float]]] = {}
    targets: dict[str, tuple[list[float], list[float]]] = {}
    for ch in channels:
        b.logical_channel(ch, calibration=CAL if calibrated and ch == channels[-1] else None)
        n = draw(st.integers(1, 3))
        freqs = [80e6 + 8e6 * i + draw(st.floats(0, 1e6)) for i in range(n)]
        amps = [round(draw(st.floats(0.05, 0.7 / n)), 4) for _ in range(n)]
        b.define(f"d_{ch}", logical_channel=ch, freqs=freqs, amps=amps)
        targets[ch] = ([f + draw(st.sampled_from([-2e6, 1.5e6])) for f in freqs], amps[::-1])
        b.define(f"t_{ch}", logical_channel=ch, freqs=targets[ch][0], amps=targets[ch][1])
        state[ch] = [[f, a] for f, a in zip(freqs, amps)]
    n_segments = draw(st.integers(2, 4))
    for s in range(n_segments):
        mode = draw(st.sampled_from(["once", "once", "loop_n", "wait_trig"]))
        b.segment(f"s{s}", mode=mode, loops=draw(st.integers(2, 3)) if mode == "loop_n" else 1)
        if s == 0:
            for ch in channels:
                b.tones(ch).use_def(f"d_{ch}")
        if mode != "once":  # looped: held tones, long enough that wrap snapping stays small
            b.hold(time=_us(draw, 10, 20))
            continue
        for _ in range(draw(st.integers(1, 4))):
            ch = draw(st.sampled_from(channels))
            tones = state[ch]
            b.tones(ch)
            kind = draw(st.sampled_from(["move", "move0", "ramp", "ramp0", "hold", "hold_all", "add", "remove", "remap", "remap0"]))
            t = _us(draw, 2, 8)
            if kind in ("move", "move0"):
                row = draw(st.booleans())
                df = draw(st.floats(-1.5e6, 1.5e6)) if row else None
                dfs = [df if row else draw(st.floats(-0.6e6, 0.6e6)) for _ in tones]
                b.move(df=dfs, time=0 if kind == "move0" else t, kind=draw(st.sampled_from(FREQ_SHAPES)))
                for tone, d in zip(tones, dfs):
                    tone[0] += d
            elif kind in ("ramp", "ramp0"):
                shape = draw(st.sampled_from(AMP_SHAPES))
                to = [round(draw(st.floats(0.05, 0.7 / len(tones))), 4) for _ in tones]
                tau = t / draw(st.floats(0.5, 4)) if shape == "exp" and draw(st.booleans()) else None
                b.ramp_amp_to(amps=to, time=0 if kind == "ramp0" else t, kind=shape, tau=tau)
                for tone, a in zip(tones, to):
                    tone[1] = a
            elif kind == "hold":
                b.hold(time=t)
            elif kind == "hold_all":
                b.hold(time=t, every_channel=True)
            elif kind == "add" and len(tones) < 3:
                f = max(x[0] for x in tones) + 8e6
                share = round(0.7 / (len(tones) + 1), 4)
                b.add_tone(freq=f, amp=share if sum(x[1] for x in tones) + share <= 0.8 else 0.0, at=draw(st.sampled_from([None, len(tones)])))
                tones.append([f, 0.0])
                b.ramp_amp_to(amps=share, time=t, kind=draw(st.sampled_from(FREQ_SHAPES)))  # every tone to an equal share
                for tone in tones:
                    tone[1] = share
            elif kind == "remove" and len(tones) > 1:
                b.remove_tones(idxs=[len(tones) - 1])
                tones.pop()
            elif kind in ("remap", "remap0"):
                target_freqs, target_amps = targets[ch]
                n_target = len(target_freqs)
                if draw(st.booleans()) and len(tones) >= n_target:  # dst="all" from the first sources
                    src = list(range(n_target))
                    b.remap_from_def(target_def=f"t_{ch}", src=src, dst="all", time=0 if kind == "remap0" else t, kind=draw(st.sampled_from(FREQ_SHAPES)))
                    state[ch] = [[f, a] for f, a in zip(target_freqs, target_amps)]
                elif len(tones) == n_target:
                    idx = list(range(n_target))
                    b.remap_from_def(target_def=f"t_{ch}", src=idx, dst=idx, time=0 if kind == "remap0" else t, kind=draw(st.sampled_from(FREQ_SHAPES)))
                    state[ch] = [[f, a] for f, a in zip(target_freqs, target_amps)]
        b.hold(time=_us(draw, 2, 6))  # every once segment ends on a hold (time=0 ops before it land mid-segment)
    b.last_step(draw(st.sampled_from(["end", "ring"])))
    return b, channels


def compile_program(b: AWGProgramBuilder, channels: list[str]):
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), logical_channel_to_hardware_channel={ch: i for i, ch in enumerate(channels)})
    return compile_sequence_program(q, progress=False)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_every_drawn_program_plays_what_its_intent_asked(drawn) -> None:
    b, channels = drawn
    intent = b.build_intent_ir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snapping and wrap warnings: the oracle judges the output itself
        program = compile_program(b, channels)
    assert check_steps(intent, program) == []
    verdict = check_program(intent, program)
    if os.environ.get("AWGRT_ORACLE_STATS"):  # the oracle's census: one line per drawn program
        ops = sorted({type(op).__name__ + ("(time=0)" if getattr(op, "time_s", 1) == 0 else "") for seg in intent.segments for op in seg.ops})
        line = {"windows": verdict.windows, "tones": verdict.tones_compared, "pieces": verdict.pieces, "edges": verdict.edges}
        line |= {"skipped": verdict.skipped, "ops": ops, "steps": len(program.steps), "calibrated": bool(intent.calibrations), "last_step": intent.last_step}
        with open(os.environ["AWGRT_ORACLE_STATS"], "a") as fh:
            fh.write(json.dumps(line) + "\n")
    assert verdict.windows > 0
    assert not verdict.findings, "\n".join([*(str(f) for f in verdict.findings[:10]), "program: " + intent.to_json(indent=None)])


@pytest.mark.parametrize("case", ["jump after wait", "jump after loop", "ease between holds"])
def test_the_oracle_fails_on_a_dropped_jump(case, monkeypatch) -> None:
    """The oracle catches the time=0 jump that snapping once dropped: planted back by putting
    the jump's constant span into the run before it."""
    from awgrt.compiler import snap

    real = snap._runs

    def merged(segments, ring=False):
        runs, span_runs = real(segments, ring)
        # join every run that starts with a constant span into the run before it (the old behaviour)
        by_tone: dict[int, list[int]] = {}
        for r, run in enumerate(runs):
            by_tone.setdefault(run.tone, []).append(r)
        for rs in by_tone.values():
            for a, c in zip(rs, rs[1:]):
                if runs[c].members and runs[a].members:
                    runs[a].members += runs[c].members
                    runs[c].members = []
                    span_runs = {k: tuple(a if x == c else x for x in v) for k, v in span_runs.items()}
        return runs, span_runs

    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90e6], amps=[0.3])
        .segment("w", mode="loop_n" if case == "jump after loop" else "wait_trig", loops=3 if case == "jump after loop" else 1)
        .tones("H")
        .use_def("d")
        .hold(time=20e-6)
        .segment("j")
        .tones("H")
        .move(df=1e6, time=0)
        .hold(time=20e-6)
    )
    if case == "ease between holds":
        b.segment("w2", mode="wait_trig").hold(time=20e-6)
    b.last_step("end")
    intent = b.build_intent_ir()
    assert not check_program(intent, compile_program(b, ["H"])).findings
    monkeypatch.setattr(snap, "_runs", merged)
    snap._CHAIN_CACHE.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        findings = check_program(intent, compile_program(b, ["H"])).findings
    assert any(f.segment == "j" and "Hz off" in f.what for f in findings), findings
