"""awgrt: compile multi-tone RF programs for Spectrum AWG cards in sequence replay mode.

Data flow: :class:`AWGProgramBuilder` -> :class:`~awgrt.ir.IntentIR` -> :func:`resolve_intent_ir`
-> :func:`quantize_resolved_ir` -> :func:`compile_sequence_program` ->
:class:`CompiledSequenceProgram` (int16 segments and a step table).
"""

import logging as _logging

from . import errors
from ._version import __version__ as __version__
from .builder import AWGProgramBuilder
from .card import CARDS, CardSpec, decode_step_entry, encode_step_entry
from .compiler.compile import compile_sequence_program
from .compiler.quantize import quantize_resolved_ir
from .compiler.resolve import resolve_intent_ir
from .ir import IntentIR, QuantizedIR, ResolvedIR
from .program import CompiledSegment, CompiledSequenceProgram, SequenceStep
from .runtime import RunReport, Runtime, StepInfo

__all__ = [
    "AWGProgramBuilder",
    "CARDS",
    "CardSpec",
    "CompiledSegment",
    "CompiledSequenceProgram",
    "IntentIR",
    "QuantizedIR",
    "ResolvedIR",
    "RunReport",
    "Runtime",
    "StepInfo",
    "SequenceStep",
    "compile_sequence_program",
    "decode_step_entry",
    "encode_step_entry",
    "errors",
    "quantize_resolved_ir",
    "resolve_intent_ir",
]

# the library logs through the "awgrt" logger and leaves handlers to the application (the CLI
# sets one up); without one, nothing is printed
_logging.getLogger("awgrt").addHandler(_logging.NullHandler())
