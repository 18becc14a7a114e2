"""Card backends behind one protocol (:class:`Backend`): the simulator and, later, the real card."""

from .base import Backend, BackendBase, OutputConfig, StepNotice
from .sim import SimBackend

__all__ = ["Backend", "BackendBase", "OutputConfig", "SimBackend", "StepNotice"]
