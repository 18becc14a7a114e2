"""The simulated card: sequence memory and sequencer (:class:`SimulatedCard`), and
:func:`simulate` to play a compiled program on it."""

from ..spectrum import StopLevel
from .card import SimPolicy, SimulatedCard, StepEvent, trigger_latency_samples
from .playback import Playback, simulate

__all__ = ["Playback", "SimPolicy", "SimulatedCard", "StepEvent", "StopLevel", "emulated_spcm", "simulate", "trigger_latency_samples"]


def __getattr__(name: str):
    if name == "emulated_spcm":  # imported on first use: it is also the `python -m` runner
        from .spcm_emulation import emulated_spcm

        return emulated_spcm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
