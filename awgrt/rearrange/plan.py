"""Rearrangement planning: which loaded atom goes to which target site.

:func:`plan_1d` takes a camera's occupancy of a 1D array of sites and the target sites and
assigns atoms to targets **in order** (the k-th atom used goes to the k-th target filled), so
atoms never pass each other. With every atom moving over the same time along the same shape,
two neighbours i < j at positions x_i(u) = s_i + (e_i - s_i) u, u from 0 to 1, stay
(s_j - s_i)(1 - u) + (e_j - e_i) u apart: never closer than the smaller of their start and end
gaps, so no move comes closer than the array's own site spacing.

Among the order-keeping assignments it picks the one that fills the most targets and, among
those, moves the least total distance (a dynamic programme over atoms and targets, O(atoms x
targets), one numpy row per atom). With more atoms than targets the spare atoms are dropped
(their tones are to be ramped off before the move); with fewer, as many targets as there are
atoms are filled, the ones that cost least to reach, and the plan names the targets left empty.
``max_distance``: no atom moves further than this (a move's largest chirp bounds it); a target
no atom can reach in order is left empty and named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ProgramError


@dataclass(frozen=True)
class Plan1D:
    """An assignment: ``moves`` as (source site, target site) in order along the array,
    ``dropped`` the occupied sites not used (their tones go off before the move), ``unfilled``
    the target sites no atom reaches (too few atoms), and ``distance_hz`` the largest distance
    any atom moves (in the units of the site positions given)."""

    moves: tuple[tuple[int, int], ...]
    dropped: tuple[int, ...]
    unfilled: tuple[int, ...]
    distance_hz: float

    @property
    def complete(self) -> bool:
        """Every target is filled."""
        return not self.unfilled


#: Resolution of the planner's integer costs: the largest finite cost maps to this many units.
_COST_UNITS = 2**32


def _banded(cost: np.ndarray) -> list[tuple[int, int]] | None:
    """The order-keeping matching that uses every row or every column (whichever are fewer) at
    the least total cost, or None if that needs a disallowed (inf) pair. With k = min(rows,
    columns) matched, the i-th matched row of the longer side lies within d = |rows - columns|
    places of the i-th of the shorter, so the table is a band of k x (d + 1) cells, each a running
    minimum plus a cost, with a pointer to where that minimum was; ties go to the earliest place
    (plain Python over the band: for the band widths a loading pattern gives, a few dozen cells,
    it beats numpy's per-call overhead)."""
    flip = cost.shape[0] < cost.shape[1]
    k, n_long = sorted(cost.shape)
    if k == 0:
        return []
    d = n_long - k + 1
    # band[j][q]: the cost of matching the j-th of the shorter side to the (j + q)-th of the
    # longer: a strided view of the table, one row and one column further each j
    flat = np.ascontiguousarray(cost, dtype=np.float64)
    s_row, s_col = flat.strides
    band = np.ndarray((k, d), np.float64, flat, 0, (s_row + s_col, s_col if flip else s_row)).tolist()
    total = band[0]
    back: list[list[int]] = []
    for row in band[1:]:
        run, at, here, ptr = total[0], 0, [], []
        for q in range(d):
            if total[q] < run:
                run, at = total[q], q
            here.append(run + row[q])
            ptr.append(at)
        total = here
        back.append(ptr)
    q = min(range(d), key=total.__getitem__)
    if total[q] == np.inf:
        return None
    places = [q]
    for ptr in reversed(back):
        q = ptr[q]
        places.append(q)
    places.reverse()
    return [(j, j + q) for j, q in enumerate(places)] if flip else [(j + q, j) for j, q in enumerate(places)]


def _order_keeping(cost: np.ndarray) -> list[tuple[int, int]]:
    """The order-keeping matching of rows (atoms) to columns (targets) that leaves the fewest
    columns unmatched and, among those, has the least total cost (inf: not allowed): [(row,
    column)] in order. Costs are made integers (exact sums, so no rounding decides a tie); each
    row of the table is one numpy pass, skipping a column costing ``penalty`` (more than any sum
    of allowed costs) by a running minimum. When every row or every column can be matched
    (always, without a reach limit) the banded table of :func:`_banded` gives the answer."""
    banded = _banded(cost)
    if banded is not None:
        return banded
    n_rows, n_cols = cost.shape
    allowed = np.isfinite(cost)
    top = float(cost[allowed].max()) if allowed.any() else 0.0
    units = np.zeros(cost.shape, np.int64)
    if top > 0:
        units[allowed] = np.rint(cost[allowed] * (_COST_UNITS / top)).astype(np.int64)
    penalty = _COST_UNITS * (min(n_rows, n_cols) + 1)
    never = penalty * (n_cols + 2)  # a disallowed match: worse than skipping every column
    units[~allowed] = never
    ramp = penalty * np.arange(n_cols + 1, dtype=np.int64)
    best = ramp.copy()  # no atoms yet: every target skipped
    how = np.zeros((n_rows + 1, n_cols + 1), np.int8)  # 0 skip the atom, 1 skip the target, 2 match
    how[0, 1:] = 1
    for i in range(1, n_rows + 1):
        cand = best.copy()
        take = best[:-1] + units[i - 1]
        matched = take < cand[1:]
        cand[1:] = np.where(matched, take, cand[1:])
        row = np.minimum.accumulate(cand - ramp) + ramp
        skip = row < cand
        how[i] = np.where(skip, 1, 0)
        how[i, 1:][matched & ~skip[1:]] = 2
        best = row
    pairs = []
    i, j = n_rows, n_cols
    while j > 0:
        if how[i, j] == 2:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif how[i, j] == 1:
            j -= 1
        else:
            i -= 1
    return pairs[::-1]


def plan_1d(
    occupied: Sequence[bool] | np.ndarray, target: Sequence[int], site_hz: Sequence[float] | np.ndarray, *, max_distance: float | None = None
) -> Plan1D:
    """Assign the atoms of ``occupied`` (one bool per site) to the ``target`` sites (indices,
    increasing) without crossing; ``site_hz``: each site's position (its tone frequency, or µm);
    ``max_distance``: the furthest an atom may move, in the same unit. See the module doc."""
    occ = np.asarray(occupied)
    pos = np.asarray(site_hz, dtype=np.float64)
    tgt = np.asarray(target)
    if occ.ndim != 1 or occ.dtype != np.bool_:
        raise ProgramError(f"occupancy must be a 1-D boolean array, got {occ.dtype} of shape {occ.shape}", op="plan_1d", value=str(occ.dtype))
    if pos.shape != occ.shape or not np.all(np.isfinite(pos)) or np.any(np.diff(pos) <= 0):
        raise ProgramError(f"site positions must be {occ.size} finite increasing numbers", op="plan_1d", value=pos.shape)
    if tgt.ndim != 1 or tgt.size == 0 or tgt.dtype.kind not in "iu" or np.any(np.diff(tgt) <= 0) or tgt[0] < 0 or tgt[-1] >= occ.size:
        raise ProgramError(f"target must be increasing site indices in 0..{occ.size - 1}", op="plan_1d", value=tgt.tolist()[:8])
    if max_distance is not None and not (isinstance(max_distance, (int, float)) and max_distance >= 0):
        raise ProgramError(f"max_distance={max_distance!r} must be a number >= 0", op="plan_1d", value=max_distance)
    distance = np.abs(pos[:, None] - pos[tgt][None, :])
    if max_distance is not None:
        distance[distance > max_distance] = np.inf
    return assign(occ, tuple(int(t) for t in tgt), distance)


def assign(occupied: np.ndarray, target: Sequence[int], distance: np.ndarray) -> Plan1D:
    """The plan for ``occupied`` (one bool per site), ``target`` (site indices, increasing) and
    ``distance`` (sites x targets, inf where a pair is not allowed): the order-keeping matching
    of :func:`_order_keeping`, with the spare atoms and the unfilled targets named. No input
    checks: :func:`plan_1d` and the rearrangers check theirs before."""
    atoms = np.flatnonzero(occupied).tolist()
    cost = distance[atoms]
    pairs = _order_keeping(cost)
    moves = tuple((atoms[a], int(target[t])) for a, t in pairs)
    used = {a for a, _ in pairs}
    filled = {t for _, t in pairs}
    furthest = max((float(cost[a, t]) for a, t in pairs), default=0.0)
    return Plan1D(moves, tuple(s for a, s in enumerate(atoms) if a not in used), tuple(int(t) for j, t in enumerate(target) if j not in filled), furthest)
