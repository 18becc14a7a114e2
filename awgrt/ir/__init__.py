"""The intermediate representations: intent (seconds), resolved (samples), quantized (card-legal)."""

from .intent import Definition, IntentIR, IntentSegment
from .quantized import QuantizedIR
from .resolved import ChannelTrack, Note, Piece, ResolvedIR, Segment, ToneOrigin, ToneSpan

__all__ = ["ChannelTrack", "Definition", "IntentIR", "IntentSegment", "Note", "Piece", "QuantizedIR", "ResolvedIR", "Segment", "ToneOrigin", "ToneSpan"]
