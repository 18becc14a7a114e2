"""The simulated card: sequence memory and sequencer (:class:`SimulatedCard`), and
:func:`simulate` to play a compiled program on it."""

from .card import SimPolicy, SimulatedCard, StepEvent, trigger_latency_samples
from .playback import Playback, simulate
from .spectrum import StopLevel

__all__ = ["Playback", "SimPolicy", "SimulatedCard", "StepEvent", "StopLevel", "simulate", "trigger_latency_samples"]
