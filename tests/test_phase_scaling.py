"""phases="auto" at scale: Schroeder's start made in O(tones), large sets in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from awgrt.compiler import phases


@pytest.mark.parametrize("n", [2, 7, 33, 250])
def test_schroeder_phases_follow_their_definition(n: int) -> None:
    rng = np.random.default_rng(n)
    f, a = rng.uniform(0.1, 0.2, n), rng.uniform(0.2, 1.0, n)
    order = np.argsort(f, kind="stable")
    p = a[order] ** 2 / np.sum(a**2)
    want = np.empty(n)
    for rank, tone in enumerate(order):  # -sum over lower tones j of (rank - j) p_j, in frequency order
        want[tone] = -sum((rank - j) * p[j] for j in range(rank))
    got = phases.schroeder_phases(f, a)
    assert np.max(np.abs((got - want + 0.5) % 1.0 - 0.5)) < 1e-9


def test_twenty_thousand_tones_get_low_crest_phases_in_bounded_memory() -> None:
    rng = np.random.default_rng(7)
    f = np.sort(rng.uniform(70e6, 100e6, 20_000)) / 625e6
    a = np.ones(f.size)
    phases._optimised.cache_clear()
    tracemalloc.start()
    try:
        p = phases.optimise_phases(f, a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # O(tones): a few arrays of 20,000 float64
    n = 2048
    k = np.arange(n)
    x = np.zeros(n)
    for i in range(0, f.size, 500):  # the crest factor, summed here in float64
        x += np.sin(2 * np.pi * (f[i : i + 500, None] * k + p[i : i + 500, None])).sum(axis=0)
    crest = np.max(np.abs(x)) / np.sqrt(f.size / 2)
    assert crest < 3.5


def test_the_chunked_crest_factor_matches_a_direct_sum() -> None:
    rng = np.random.default_rng(3)
    f, a, p = rng.uniform(0.1, 0.2, 700), rng.uniform(0.2, 1.0, 700), rng.random(700)
    k = np.arange(1000)
    x = (a[:, None] * np.sin(2 * np.pi * (f[:, None] * k + p[:, None]))).sum(axis=0)
    direct = np.max(np.abs(x)) / np.sqrt(np.sum(a**2) / 2)
    assert phases.crest_factor(f, a, p, 1000) == pytest.approx(direct, rel=1e-5)


def test_a_first_compile_with_auto_phases_imports_no_optimiser() -> None:
    """phases="auto" is refined by awgrt's own quasi-Newton iteration: a first compile in a new
    process imports no scipy (which took most of a second)."""
    import json
    import subprocess
    import sys

    script = """
import json, sys
from awgrt import AWGProgramBuilder, Runtime
from awgrt.backends import SimBackend
rt = Runtime(SimBackend("M4i.6631-x8"))
rt.run(AWGProgramBuilder().logical_channel("H")
       .define("d", logical_channel="H", freqs=[80e6, 81e6, 83e6, 86e6], amps=[0.1] * 4, phases="auto")
       .segment("s", mode="wait_trig").tones("H").use_def("d").hold(time=32e-6), sample_rate_hz=625e6)
notes = [n for n in rt.last_report.compile_report.notes if n.kind == "phases_optimised"]
print(json.dumps([sorted(m for m in sys.modules if m.split(".")[0] == "scipy"), len(notes)]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    scipy_modules, optimised = json.loads(out.stdout.strip().splitlines()[-1])
    assert optimised == 1
    assert scipy_modules == []


def _tone_sets(rng: np.random.Generator, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Uniform, jittered, random and two-band grids, equal and unequal amplitudes (cycles per sample)."""
    sets = []
    for k, n in enumerate(sizes):
        kind = k % 4
        if kind == 0:
            f = 70e6 + 0.4e6 * np.arange(n)
        elif kind == 1:
            f = 70e6 + 0.4e6 * np.arange(n) + rng.normal(0.0, 0.03e6, n)
        elif kind == 2:
            f = np.sort(rng.uniform(60e6, 110e6, n))
        else:
            f = np.concatenate([70e6 + 0.3e6 * np.arange(n // 2), 95e6 + 0.35e6 * np.arange(n - n // 2)])
        a = rng.uniform(0.3, 1.0, n) if k % 3 == 1 else np.ones(n)
        sets.append((f / 625e6, a))
    return sets


def _direct_crest(f: np.ndarray, a: np.ndarray, p: np.ndarray, n: int) -> float:
    k = np.arange(n)
    x = (a[:, None] * np.sin(2 * np.pi * (np.outer(f, k) % 1.0 + p[:, None]))).sum(axis=0)
    return float(np.max(np.abs(x)) / np.sqrt(np.sum(a**2) / 2))


def test_refined_phases_never_peak_above_schroeders_and_mostly_well_below() -> None:
    # crest factors summed here in float64 over the window the phases were chosen on: the
    # refinement never raises Schroeder's, lowers it a lot on average, and the report says what
    # the samples show
    rng = np.random.default_rng(5)
    ratios = []
    for f, a in _tone_sets(rng, [3, 5, 8, 12, 16, 24, 33, 48, 64, 100, 160, 256]):
        phases._optimised.cache_clear()
        got = phases._optimised(f, a)
        n = phases._window(f)
        schroeder = _direct_crest(f, a, phases.schroeder_phases(f, a), n)
        refined = _direct_crest(f, a, np.asarray(got.phases), n)
        assert refined <= schroeder * (1 + 1e-9)
        assert got.crest == pytest.approx(refined, rel=1e-9)
        assert got.crest_zero == pytest.approx(_direct_crest(f, a, np.zeros(f.size), n), rel=1e-9)
        ratios.append(refined / schroeder)
        again = phases._optimise(f, a)  # deterministic
        assert np.array_equal(again.phases, got.phases)
    assert np.mean(ratios) < 0.85, ratios


def test_above_the_refinement_limit_phases_are_schroeders() -> None:
    f, a = _tone_sets(np.random.default_rng(2), [phases.REFINE_MAX_TONES + 1])[0]
    assert np.array_equal(phases._optimise(f, a).phases, phases.schroeder_phases(f, a / a.max()))


def test_more_tones_than_auto_takes_is_a_clear_error_naming_the_segment(monkeypatch) -> None:
    from awgrt import AWGProgramBuilder, quantize_resolved_ir
    from awgrt.errors import ProgramError

    monkeypatch.setattr(phases, "MAX_AUTO_TONES", 3)
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6, 81e6, 82e6, 83e6], amps=[0.1] * 4, phases="auto")
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=32e-6)
    )
    with pytest.raises(ProgramError, match="4 tones.*at most 3") as err:
        quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), {"H": 0})
    assert err.value.segment == "load" and err.value.value == 4
    with pytest.raises(ProgramError, match="at most 3"):
        phases.optimise_phases(np.array([0.1, 0.2, 0.3, 0.4]), np.ones(4))


def test_remembered_phase_sets_are_bounded_by_their_tones(monkeypatch) -> None:
    monkeypatch.setattr(phases, "MEMO_TONES", 100)
    memo = phases._ToneSetMemo(lambda f, a: f * 2)
    rng = np.random.default_rng(0)
    sets = [rng.uniform(0.1, 0.2, 30) for _ in range(6)]
    for f in sets:
        assert np.array_equal(memo(f, np.ones(30)), f * 2)
    assert memo._tones <= 100 and len(memo._seen) == 3  # the three latest sets
    calls = []
    memo = phases._ToneSetMemo(lambda f, a: calls.append(1) or f)
    memo(sets[0], np.ones(30))
    memo(sets[0].copy(), np.ones(30))  # the same values: remembered
    memo(sets[0], np.full(30, 0.5))  # other amplitudes: another set
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("grid_hz", "start_hz", "period"),
    [(1e6, 75e6, 625), (0.5e6, 80e6, 1250), (0.625e6, 70e6, 1000), (2.5e6, 60e6, 250)],
)
def test_tones_on_a_whole_cycle_grid_are_optimised_over_one_period(grid_hz: float, start_hz: float, period: int) -> None:
    # tones on a grid of fs / P repeat every P samples: the phases are chosen over one period, and
    # the crest factors reported are what a long direct float64 sum of the samples shows
    rng = np.random.default_rng(int(grid_hz))
    picks = np.sort(rng.choice(40, size=14, replace=False))
    f = (start_hz + grid_hz * picks) / 625e6
    a = rng.uniform(0.4, 1.0, f.size)
    assert phases._window(f) == period
    phases._optimised.cache_clear()
    got = phases._optimised(f, a)
    long = 8 * period + 13
    assert got.crest == pytest.approx(_direct_crest(f, a, np.asarray(got.phases), long), rel=1e-9)
    assert got.crest_zero == pytest.approx(_direct_crest(f, a, np.zeros(f.size), long), rel=1e-9)
    assert got.crest < _direct_crest(f, a, phases.schroeder_phases(f, a), long)


def test_tones_off_a_whole_cycle_grid_keep_the_beat_window() -> None:
    # the same spacing, but the row starts off the grid (no whole cycles in fs / spacing): no
    # shorter period, so the window spans two of the slowest beats
    f = (75.3e6 + 1e6 * np.arange(16)) / 625e6
    assert phases._window(f) in (1250, 1251)  # ceil(2 / spacing), the spacing a float difference
    f = (70e6 + 0.4e6 * np.arange(16)) / 625e6  # 1562.5 samples per beat: not whole
    assert phases._window(f) in (3125, 3126)


def test_the_crest_factor_does_not_depend_on_the_amplitudes_scale() -> None:
    # peak over RMS is a ratio: tones of 1e-300 of full scale (legal) have the crest factor the
    # same tones have at 0.5, not 0 from squares that underflow
    rng = np.random.default_rng(8)
    for n in (1, 2, 9):
        f, a, p = rng.uniform(0.1, 0.2, n), rng.uniform(0.2, 1.0, n), rng.random(n)
        want = phases.crest_factor(f, 0.5 * a, p, 1500)
        assert want > 0.5
        assert phases.crest_factor(f, 1e-300 * a, p, 1500) == pytest.approx(want, rel=1e-12)
