"""The intermediate representations: intent (seconds), resolved (samples), quantized (card-legal)."""

from .boundary import Boundary, ToneJump
from .intent import Definition, IntentIR, IntentSegment
from .quantized import FrequencyStep, QuantizedIR, ToneSnap
from .resolved import ChannelTrack, Note, Piece, ResolvedIR, Segment, ToneOrigin, ToneSpan

__all__ = [
    "Boundary",
    "ChannelTrack",
    "Definition",
    "FrequencyStep",
    "IntentIR",
    "IntentSegment",
    "Note",
    "Piece",
    "QuantizedIR",
    "ResolvedIR",
    "Segment",
    "ToneJump",
    "ToneOrigin",
    "ToneSnap",
    "ToneSpan",
]
