"""Card backends behind one protocol (:class:`Backend`): the simulator and the real card.

``SpcmBackend`` imports the vendor's ``spcm`` package only when a card is opened.
"""

from ..card import CLOCK_SOURCES, ClockConfig
from ..program import StepEvent
from .base import Backend, BackendBase, OutputConfig
from .sim import SimBackend
from .spcm import SpcmBackend

__all__ = ["CLOCK_SOURCES", "Backend", "BackendBase", "ClockConfig", "OutputConfig", "SimBackend", "SpcmBackend", "StepEvent"]
