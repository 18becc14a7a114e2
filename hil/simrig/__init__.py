"""The simulated rig: the card's analog output, a scope model, simulated scopes speaking the
Keysight / Tektronix / Rigol command sets, a loopback SCPI server, and fault injection."""

from .bench import Bench
from .faults import Faults
from .instrument import SIMULATED, KeysightSim, RigolSim, SimulatedScope, TektronixSim
from .scope_model import ScopeModel
from .server import LoopbackScpiServer
from .signals import AnalogSignal, DacOutput, FunctionSignal

__all__ = [
    "SIMULATED",
    "AnalogSignal",
    "Bench",
    "DacOutput",
    "Faults",
    "FunctionSignal",
    "KeysightSim",
    "LoopbackScpiServer",
    "RigolSim",
    "ScopeModel",
    "SimulatedScope",
    "TektronixSim",
]
