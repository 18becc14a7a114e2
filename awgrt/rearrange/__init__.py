"""Rearrangement: from a camera's occupancy of a tweezer array to the card playing the moves.

- :func:`plan_1d` (:mod:`awgrt.rearrange.plan`): which loaded atom goes to which target site.
- :class:`Rearranger` (:mod:`awgrt.rearrange.realtime`): prepares the card once (load and target
  holds, move tables, a reserved slot), then turns each occupancy into moves written into that
  slot while the card keeps looping in the load hold.
"""

from .plan import Plan1D, plan_1d
from .realtime import Move, PrepareReport, Rearranger, ShotReport, TweezerArray

__all__ = ["Move", "Plan1D", "PrepareReport", "Rearranger", "ShotReport", "TweezerArray", "plan_1d"]
