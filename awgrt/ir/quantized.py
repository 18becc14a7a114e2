"""Quantized IR: *what you can upload*.

Segments have card-legal lengths, looped constant holds have their tones snapped to whole cycles
per pass, every tone span has its exact start phase, logical channels are mapped to hardware
channels, and each segment carries a digest of everything that determines its samples (so equal
digests mean equal samples, and a changed digest is the only reason to re-synthesise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..card import CardSpec
from ..compiler.phases import Boundary
from .digest import digest_of
from .resolved import Note, Segment, ToneOrigin


@dataclass(frozen=True)
class QuantizedIR:
    """What you can upload (see module doc). ``n_hardware_channels`` is the number of channels
    the card enables (columns of every segment's data); ``slots`` the number of equal memory
    slots the data memory is split into; ``segment_slot[i]`` the slot of segment i (segments
    with equal digests share one)."""

    sample_rate_hz: float
    card: CardSpec
    hardware_channels: Mapping[str, int]
    n_hardware_channels: int
    segments: tuple[Segment, ...]
    segment_slot: tuple[int, ...]
    slots: int
    tone_origins: tuple[ToneOrigin, ...]
    last_step: str
    boundaries: tuple[Boundary, ...]
    notes: tuple[Note, ...]
    intent_digest: str

    @property
    def n_samples(self) -> int:
        """Samples of one pass through every segment in program order."""
        return sum(s.n_samples for s in self.segments)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    @property
    def digest(self) -> str:
        return digest_of("quantized", self)
