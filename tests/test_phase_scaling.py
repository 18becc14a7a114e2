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
    phases._optimise_cached.cache_clear()
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


def test_a_first_compile_books_the_optimisers_import_apart_from_quantize() -> None:
    """In a new process the first phases="auto" compile imports scipy's optimiser (most of a
    second): the run report says so instead of calling it quantization."""
    import json
    import subprocess
    import sys

    script = """
import json, sys
from awgrt import AWGProgramBuilder, Runtime
from awgrt.backends import SimBackend
assert "scipy.optimize" not in sys.modules
def program(amp):
    return (AWGProgramBuilder().logical_channel("H")
            .define("d", logical_channel="H", freqs=[80e6, 81e6, 83e6], amps=[amp] * 3, phases="auto")
            .segment("s", mode="wait_trig").tones("H").use_def("d").hold(time=32e-6))
rt = Runtime(SimBackend("M4i.6631-x8"))
rt.run(program(0.1), sample_rate_hz=625e6)
first = rt.last_report.timings_s
rt.run(program(0.2), sample_rate_hz=625e6)
second = rt.last_report.timings_s
print(json.dumps([dict(first), dict(second)]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    first, second = json.loads(out.stdout.strip().splitlines()[-1])
    assert first["import optimiser"] > 0.05 and first["quantize"] < first["import optimiser"]
    assert "import optimiser" not in second and second["quantize"] > 0


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
