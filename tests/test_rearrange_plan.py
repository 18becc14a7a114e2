"""The 1D rearrangement planner against an exhaustive search written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from awgrt.errors import ProgramError
from awgrt.rearrange import plan_1d


def brute_force(occ: np.ndarray, target: list[int], pos: np.ndarray) -> float:
    """The least total distance of any order-keeping assignment filling min(atoms, targets)
    targets, by trying every choice of atoms and of targets."""
    atoms = [i for i, o in enumerate(occ) if o]
    n = min(len(atoms), len(target))
    best = np.inf
    for a in itertools.combinations(atoms, n):
        for t in itertools.combinations(target, n):
            best = min(best, sum(abs(pos[x] - pos[y]) for x, y in zip(a, t)))
    return best


@pytest.mark.parametrize("seed", range(60))
def test_the_plan_is_the_least_distance_order_keeping_assignment(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_sites = int(rng.integers(4, 11))
    pos = np.cumsum(rng.uniform(0.5e6, 1.5e6, n_sites)) + 80e6
    occ = rng.random(n_sites) < rng.uniform(0.2, 0.9)
    target = sorted(rng.choice(n_sites, size=int(rng.integers(1, n_sites + 1)), replace=False).tolist())
    plan = plan_1d(occ, target, pos)
    atoms = [i for i, o in enumerate(occ) if o]
    sources = [s for s, _ in plan.moves]
    targets = [t for _, t in plan.moves]
    assert len(plan.moves) == min(len(atoms), len(target))
    assert all(occ[s] for s in sources) and set(targets) <= set(target)
    assert sources == sorted(sources) and targets == sorted(targets)  # order kept: no atom passes another
    assert len(set(sources)) == len(sources) and len(set(targets)) == len(targets)
    assert set(plan.dropped) == set(atoms) - set(sources)
    assert set(plan.unfilled) == set(target) - set(targets)
    assert plan.complete == (len(atoms) >= len(target))
    total = sum(abs(pos[s] - pos[t]) for s, t in plan.moves)
    assert total == pytest.approx(brute_force(occ, target, pos), rel=1e-12, abs=1e-6)
    assert plan.distance_hz == pytest.approx(max((abs(pos[s] - pos[t]) for s, t in plan.moves), default=0.0))


def test_neighbours_never_come_closer_than_a_site_spacing_along_the_move() -> None:
    rng = np.random.default_rng(7)
    pos = 80e6 + 1e6 * np.arange(32)
    for _ in range(50):
        occ = rng.random(32) < 0.55
        plan = plan_1d(occ, list(range(8, 24)), pos)
        u = np.linspace(0, 1, 101)[:, None]
        x = np.array([pos[s] for s, _ in plan.moves]) + np.array([pos[t] - pos[s] for s, t in plan.moves]) * u
        if x.shape[1] > 1:
            assert np.min(np.diff(x, axis=1)) >= 1e6 - 1e-3


@pytest.mark.parametrize(
    ("occ", "target", "pos", "match"),
    [
        ([1, 0, 1], [0, 1], [1.0, 2.0, 3.0], "boolean"),
        ([True, False], [0, 1], [1.0, 1.0], "increasing"),
        ([True, False], [1, 0], [1.0, 2.0], "target"),
        ([True, False], [2], [1.0, 2.0], "target"),
        ([True, False], [], [1.0, 2.0], "target"),
        ([True, False], [0], [1.0, float("nan")], "finite"),
    ],
)
def test_bad_input_is_a_clear_error(occ, target, pos, match: str) -> None:
    with pytest.raises(ProgramError, match=match):
        plan_1d(np.asarray(occ), target, pos)


@pytest.mark.parametrize("seed", range(40))
def test_a_reach_limit_fills_the_most_targets_within_reach_at_least_distance(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n_sites = int(rng.integers(4, 10))
    pos = np.cumsum(rng.uniform(0.5e6, 1.5e6, n_sites)) + 80e6
    occ = rng.random(n_sites) < rng.uniform(0.2, 0.9)
    target = sorted(rng.choice(n_sites, size=int(rng.integers(1, n_sites + 1)), replace=False).tolist())
    reach = float(rng.uniform(0.5e6, 4e6))
    plan = plan_1d(occ, target, pos, max_distance=reach)
    atoms = [i for i, o in enumerate(occ) if o]
    most, least = 0, 0.0
    for n in range(min(len(atoms), len(target)), 0, -1):  # exhaustive: the most targets any in-reach order-keeping choice fills
        totals = [
            sum(abs(pos[x] - pos[y]) for x, y in zip(a, t))
            for a in itertools.combinations(atoms, n)
            for t in itertools.combinations(target, n)
            if all(abs(pos[x] - pos[y]) <= reach for x, y in zip(a, t))
        ]
        if totals:
            most, least = n, min(totals)
            break
    assert len(plan.moves) == most
    assert all(abs(pos[s] - pos[t]) <= reach for s, t in plan.moves)
    assert [s for s, _ in plan.moves] == sorted(s for s, _ in plan.moves) and [t for _, t in plan.moves] == sorted(t for _, t in plan.moves)
    assert sum(abs(pos[s] - pos[t]) for s, t in plan.moves) == pytest.approx(least, rel=1e-9, abs=1.0)
