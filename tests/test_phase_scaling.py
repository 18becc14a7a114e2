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
