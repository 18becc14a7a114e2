"""Rearrangement planning: which loaded atom goes to which target site.

:func:`plan_1d` takes a camera's occupancy of a 1D array of sites and the target sites and
assigns atoms to targets **in order** (the k-th atom used goes to the k-th target filled), so
atoms never pass each other. With every atom moving over the same time along the same shape,
two neighbours i < j at positions x_i(u) = s_i + (e_i - s_i) u, u from 0 to 1, stay
(s_j - s_i)(1 - u) + (e_j - e_i) u apart: never closer than the smaller of their start and end
gaps, so no move comes closer than the array's own site spacing.

Among the order-keeping assignments it picks the one with the least total distance moved (a
dynamic programme over atoms and targets, O(atoms x targets), one numpy row per atom). With more
atoms than targets the spare atoms are dropped (their tones are to be ramped off before the
move); with fewer, as many targets as there are atoms are filled, the ones that cost least to
reach, and the plan names the targets left empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ProgramError


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


def _order_keeping(cost: np.ndarray) -> list[tuple[int, int]]:
    """The order-keeping injection of the columns (targets) into the rows (atoms), rows >=
    columns, of least total cost: [(row, column)] in order."""
    n_rows, n_cols = cost.shape
    best = np.full((n_rows + 1, n_cols + 1), np.inf)
    best[:, 0] = 0.0
    took = np.zeros((n_rows + 1, n_cols + 1), bool)
    for i in range(1, n_rows + 1):
        skip = best[i - 1, 1:]
        take = best[i - 1, :-1] + cost[i - 1]
        took[i, 1:] = take < skip
        best[i, 1:] = np.minimum(skip, take)
    pairs = []
    i, j = n_rows, n_cols
    while j > 0:
        if took[i, j]:
            pairs.append((i - 1, j - 1))
            j -= 1
        i -= 1
    return pairs[::-1]


def plan_1d(occupied: Sequence[bool] | np.ndarray, target: Sequence[int], site_hz: Sequence[float] | np.ndarray) -> Plan1D:
    """Assign the atoms of ``occupied`` (one bool per site) to the ``target`` sites (indices,
    increasing) without crossing; ``site_hz``: each site's position (its tone frequency, or µm).
    See the module doc."""
    occ = np.asarray(occupied)
    pos = np.asarray(site_hz, dtype=np.float64)
    tgt = np.asarray(target)
    if occ.ndim != 1 or occ.dtype != np.bool_:
        raise ProgramError(f"occupancy must be a 1-D boolean array, got {occ.dtype} of shape {occ.shape}", op="plan_1d", value=str(occ.dtype))
    if pos.shape != occ.shape or not np.all(np.isfinite(pos)) or np.any(np.diff(pos) <= 0):
        raise ProgramError(f"site positions must be {occ.size} finite increasing numbers", op="plan_1d", value=pos.shape)
    if tgt.ndim != 1 or tgt.size == 0 or tgt.dtype.kind not in "iu" or np.any(np.diff(tgt) <= 0) or tgt[0] < 0 or tgt[-1] >= occ.size:
        raise ProgramError(f"target must be increasing site indices in 0..{occ.size - 1}", op="plan_1d", value=tgt.tolist()[:8])
    atoms = np.flatnonzero(occ)
    if atoms.size >= tgt.size:
        pairs = _order_keeping(np.abs(pos[atoms][:, None] - pos[tgt][None, :]))
        moves = tuple((int(atoms[a]), int(tgt[t])) for a, t in pairs)
    else:
        pairs = _order_keeping(np.abs(pos[tgt][:, None] - pos[atoms][None, :]))
        moves = tuple((int(atoms[a]), int(tgt[t])) for t, a in pairs)
    used = {s for s, _ in moves}
    filled = {t for _, t in moves}
    distance = max((abs(pos[s] - pos[t]) for s, t in moves), default=0.0)
    return Plan1D(moves, tuple(int(a) for a in atoms if a not in used), tuple(int(t) for t in tgt if t not in filled), float(distance))
