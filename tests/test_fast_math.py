"""Opt-in fast-math synthesis: stated error bounds against a float64 reference, exact phase
continuity at every boundary and wrap, and the report saying which arithmetic was used."""

from __future__ import annotations

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend
from awgrt.compiler import synth
from awgrt.errors import ProgramError
from tests import reference as ref
from tests.test_resolve_quantize import _boundary_phases, _track_tones

FS = 625e6


def _remap_piece(n_tones: int, kind: str, n: int = 70001):
    freqs = [45e6 + 190e6 / max(1, n_tones) * i for i in range(n_tones)]
    amps = [0.9 / n_tones * (1.0 if i % 2 else 0.4) for i in range(n_tones)]
    b = AWGProgramBuilder().logical_channel("H")
    b.define("a", logical_channel="H", freqs=freqs, amps=amps, phases="auto")
    b.define("b", logical_channel="H", freqs=[f + 1.3e6 * (1 if i % 3 else -2) for i, f in enumerate(freqs)], amps=amps[::-1])
    b.segment("s").tones("H").use_def("a").remap_from_def(target_def="b", src=list(range(n_tones)), dst=list(range(n_tones)), time=n / FS, kind=kind)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    piece = max(q.segments[0].track("H").pieces, key=lambda p: p.n)
    assert all(s.f0_hz != s.f1_hz for s in piece.tones)
    return piece


@pytest.mark.parametrize("kind", ["linear", "min_jerk", "cosine"])
@pytest.mark.parametrize("n_tones", [1, 8, 64])
def test_moving_tones_stay_within_the_stated_errors(n_tones, kind):
    piece = _remap_piece(n_tones, kind)
    want = ref.synthesize_pieces([piece], FS, piece.n)  # float64, exact phase
    total = sum(max(s.a0, s.a1) for s in piece.tones)
    moving = synth._moving_matrices(list(piece.tones), FS, piece.n, 1.0)  # every tone through the per-tone path
    errors = {}
    for name, fn in (("exact", synth._moving_tones), ("fast", synth._moving_tones_fast)):
        out = np.zeros(piece.n)
        fn(moving, piece.n, 0, piece.n, out)
        errors[name] = np.abs(out - want).max()
    assert errors["exact"] <= synth.SINE_ERROR_RAD * total
    assert errors["fast"] <= synth.FAST_PHASE_ERROR_RAD * total + n_tones * 2.0**-24 * total
    assert errors["fast"] > errors["exact"]  # the fast path really is a different computation


@pytest.mark.parametrize("kind", ["linear", "min_jerk", "cosine", "smoothstep"])
@pytest.mark.parametrize(("amp_kind", "param"), [("linear", 0.0), ("min_jerk", 0.0), ("exp", 0.0), ("exp_tau", 3.0), ("adiabatic", 0.0)])
def test_tones_sharing_a_frequency_change_stay_within_the_stated_error(kind, amp_kind, param):
    # a row of tones shifted together (one shape, one frequency change) while their amplitudes
    # ramp, made as one rotation of their held-tone sum; two tones moving on their own take the
    # per-tone path beside them; all against a float64 synthesis of the exact phase
    from awgrt.ir.resolved import Piece, ToneSpan

    n, rng = 70001, np.random.default_rng(7)
    spans = [
        ToneSpan(i, 45e6 + 11e6 * i, 45e6 + 11e6 * i + df, kind, 0.07 + 0.005 * i, 0.02 + 0.004 * i, amp_kind, float(rng.random()), param)
        for i, df in enumerate([2.5e6] * 10 + [-1.1e6, 0.7e6])
    ]
    piece = Piece(0, n, tuple(spans), "move")
    sorted_tones = synth._sort_tones(piece.tones, FS, n)
    assert [g.tones.f0.size for g in sorted_tones.shifted] == [10] and sorted_tones.moving.f0.size == 2
    want = ref.synthesize_pieces([piece], FS, n)
    got = np.full(n, np.nan)
    synth._piece_samples(sorted_tones, n, 0, FS, got, np.empty((2, n)), fast_math=False, add=False)
    total = sum(max(s.a0, s.a1) for s in spans)
    assert np.abs(got - want).max() <= synth.SINE_ERROR_RAD * total


def _looping_chirps() -> AWGProgramBuilder:
    # "shake" moves every tone out and back over 2 x 25600 samples: each tone makes a whole number
    # of cycles per pass (2 f0 n + df n, any shape with half its move's integral), so it wraps
    # seamlessly and its wrap is a real test of the moving-tone arithmetic; eight tones, each
    # moving by its own amount, so that fast-math takes its own path (FAST_MIN_TONES)
    assert synth.FAST_MIN_TONES <= 8
    dfs = [1.5625e6 * (i + 1) * (-1) ** i for i in range(8)]
    b = AWGProgramBuilder().logical_channel("H")
    b.define("d", logical_channel="H", freqs=[78.125e6 + 12.5e6 * i for i in range(8)], amps=[0.09] * 8, phases="auto")
    b.segment("idle", mode="wait_trig").tones("H").use_def("d").hold(time=32e-6)
    b.segment("shake", mode="loop_n", loops=4).tones("H").move(df=dfs, time=25600 / FS, kind="min_jerk")
    b.move(df=[-df for df in dfs], time=25600 / FS, kind="cosine")
    b.segment("go").tones("H").move(df=3e6, time=50e-6, kind="linear")
    b.segment("park", mode="wait_trig").hold(time=32e-6)
    return b


def test_fast_math_keeps_phase_continuity_at_boundaries_and_wraps():
    q = quantize_resolved_ir(_looping_chirps().build_resolved_ir(sample_rate_hz=FS))
    fast = compile_sequence_program(q, progress=False, fast_math=True)
    exact = compile_sequence_program(q, progress=False)
    assert fast.digest != exact.digest
    segs = {s.name: s for s in q.segments}
    data = {name: fast.segments[fast.report.segments[i].slot].data[:, 0] for i, name in enumerate(segs)}
    edges = [("idle", "shake"), ("shake", "shake"), ("shake", "go"), ("go", "park"), ("park", "park")]
    assert {(b.from_segment, b.to_segment) for b in q.boundaries if b.continuous} >= set(edges)
    for x, y in edges:
        left, right = _boundary_phases(data[x], _track_tones(segs[x]), data[y], _track_tones(segs[y]))
        jumps = np.abs(ref.wrap_rad(left.phases_rad - right.phases_rad))
        assert jumps.max() < 1e-3, (x, y, jumps)
    for name, seg in segs.items():  # and every sample within the stated error of the float64 reference
        want, _ = ref.to_int16(ref.synthesize_pieces(seg.track("H").pieces, FS, seg.n_samples))
        assert np.abs(data[name].astype(int) - want).max() <= 1 + synth.FAST_PHASE_ERROR_RAD * 0.75 * 32767, name


def test_the_report_says_which_arithmetic_was_used():
    q = quantize_resolved_ir(_looping_chirps().build_resolved_ir(sample_rate_hz=FS))
    fast = compile_sequence_program(q, progress=False, fast_math=True).report
    exact = compile_sequence_program(q, progress=False).report
    assert fast.fast_math and not exact.fast_math
    assert "synthesis fast-math" in str(fast) and f"{synth.FAST_PHASE_ERROR_RAD:.1e} rad" in str(fast)
    assert "synthesis exact" in str(exact) and f"{synth.SINE_ERROR_RAD:.1e} rad" in str(exact)


def test_fast_math_is_opt_in_and_checked():
    q = quantize_resolved_ir(_looping_chirps().build_resolved_ir(sample_rate_hz=FS))
    for bad in ("yes", 1, None):
        with pytest.raises(ProgramError, match="fast_math"):
            compile_sequence_program(q, progress=False, fast_math=bad)
        with pytest.raises(ProgramError, match="fast_math"):
            Runtime(SimBackend(), fast_math=bad)
    with Runtime(SimBackend(), trigger="software") as rt:
        rt.run(_looping_chirps(), sample_rate_hz=FS)
        assert not rt.program.report.fast_math
        rt.fast_math = True
        rt.run(_looping_chirps(), sample_rate_hz=FS)
        assert rt.program.report.fast_math and rt.last_report.compiled_segments  # resynthesised, not taken from the exact cache


@pytest.mark.parametrize("kind", ["linear", "min_jerk", "smoothstep"])
@pytest.mark.parametrize(("amp_kind", "param"), [("linear", 0.0), ("min_jerk", 0.0), ("exp_tau", 2.0), ("adiabatic", 0.0)])
def test_one_tone_moving_on_its_own_stays_within_the_stated_error(kind, amp_kind, param):
    # a lone moving tone's phase is one polynomial per block, expanded at the block's start: made
    # block by block over a piece several blocks long, against a float64 synthesis of the exact phase
    from awgrt.ir.resolved import Piece, ToneSpan

    n = 3 * synth.BLOCK + 12345
    span = ToneSpan(0, 61.3e6, 61.3e6 + 23.7e6, kind, 0.83, 0.21, amp_kind, 0.377, param)
    piece = Piece(0, n, (span,), "move")
    tones = synth._sort_tones(piece.tones, FS, n)
    assert tones.moving is not None and tones.moving.f0.size == 1 and not tones.shifted
    want = ref.synthesize_pieces([piece], FS, n)
    got = np.full(n, np.nan)
    for k0 in range(0, n, synth.BLOCK):
        k1 = min(n, k0 + synth.BLOCK)
        synth._piece_samples(tones, n, k0, FS, got[k0:k1], np.empty((2, k1 - k0)), fast_math=False, add=False)
    assert np.abs(got - want).max() <= synth.SINE_ERROR_RAD * 0.83
