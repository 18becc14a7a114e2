"""Rearrangement: from a camera's occupancy of a tweezer array to the card playing the moves.

- :func:`plan_1d` (:mod:`awgrt.rearrange.plan`): which loaded atom goes to which target site.
- :class:`Rearranger` (:mod:`awgrt.rearrange.realtime`): prepares the card once (load and target
  holds, move tables, a reserved slot), then turns each occupancy into moves written into that
  slot while the card keeps looping in the load hold.
- :class:`RowRearranger` (:mod:`awgrt.rearrange.rows`): the same for a 2D array, row by row,
  with a crossed pair of AODs as the mobile tweezer.
- :mod:`awgrt.rearrange.cycles`: how both drive the card while it plays.
"""

from .plan import Plan1D, plan_1d
from .realtime import Move, PrepareReport, Rearranger, ShotReport, TweezerArray
from .rows import Grid2D, RowRearranger, RowShotReport

__all__ = ["Grid2D", "Move", "Plan1D", "PrepareReport", "Rearranger", "RowRearranger", "RowShotReport", "ShotReport", "TweezerArray", "plan_1d"]
