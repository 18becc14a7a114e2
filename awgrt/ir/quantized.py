"""Quantized IR: *what you can upload*.

Segments have card-legal lengths, looped constant holds have their tones snapped to whole cycles
per pass, every tone span has its exact start phase, logical channels are mapped to hardware
channels, and each segment carries a digest of everything that determines its samples (so equal
digests mean equal samples, and a changed digest is the only reason to re-synthesise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..calibration import PositionCalibration
from ..card import CardSpec
from .boundary import Boundary
from .digest import digest_of
from .intent import IntentIR
from .resolved import Note, Segment, ToneOrigin


@dataclass(frozen=True)
class ToneSnap:
    """One constant tone of one looped segment, moved to whole cycles per pass.

    ``tone`` is the program-wide tone id, ``index`` its position among the channel's tones in
    the segment; ``asked_hz`` what the program asked, ``played_hz`` what the card plays over the
    segment (a whole number of cycles in ``n_samples``)."""

    segment: str
    channel: str
    tone: int
    index: int
    asked_hz: float
    played_hz: float
    n_samples: int
    sample_rate_hz: float

    @property
    def shift_hz(self) -> float:
        return self.played_hz - self.asked_hz

    @property
    def bound_hz(self) -> float:
        """fs / (2 N): the most any tone must move to make whole cycles in N samples."""
        return self.sample_rate_hz / (2 * self.n_samples)

    @property
    def fraction_of_bound(self) -> float:
        return abs(self.shift_hz) / self.bound_hz


@dataclass(frozen=True)
class FrequencyStep:
    """A tone stepping frequency, phase-continuously, where two back-to-back looped segments
    snapped to different grids meet."""

    from_segment: str
    to_segment: str
    channel: str
    tone: int
    before_hz: float
    after_hz: float

    @property
    def size_hz(self) -> float:
        return self.after_hz - self.before_hz


def marker_bit(line: str) -> int:
    """The bit of hardware channel 0's samples that carries marker line ``line``: X0 bit 15,
    X1 bit 14, X2 bit 13."""
    return 15 - int(line[1:])


def marker_shift(lines: tuple[str, ...]) -> int:
    """Bits hardware channel 0 gives up to marker ``lines`` (its analog keeps the 16 - shift
    below the lowest line's bit, played shifted back up)."""
    return 16 - min(marker_bit(m) for m in lines)


@dataclass(frozen=True)
class QuantizedIR:
    """What you can upload (see module doc). ``n_channels`` is the number of channels
    the card enables (columns of every segment's data); ``slots`` the number of equal memory
    slots the data memory is split into; ``segment_slot[i]`` the slot of segment i (segments
    with equal digests share one). ``snaps`` lists every constant tone of every looped segment
    with the frequency asked and played; ``frequency_steps`` where such a tone steps between two
    back-to-back looped segments."""

    sample_rate_hz: float
    card: CardSpec
    hardware_channels: Mapping[str, int]
    n_channels: int
    segments: tuple[Segment, ...]
    segment_slot: tuple[int, ...]
    slots: int
    tone_origins: tuple[ToneOrigin, ...]
    last_step: str
    boundaries: tuple[Boundary, ...]
    notes: tuple[Note, ...]
    #: The program this was made from (its digest is :attr:`intent_digest`).
    intent: IntentIR = field(repr=False, compare=False)
    snaps: tuple[ToneSnap, ...] = ()
    frequency_steps: tuple[FrequencyStep, ...] = ()
    #: The multi-purpose lines any segment marks (see :func:`marker_bit`): they take the top bits
    #: of hardware channel 0 in every segment.
    marker_lines: tuple[str, ...] = ()
    #: (channel, position calibration) pairs, as the resolved IR had them (for the plots).
    positions: tuple[tuple[str, PositionCalibration], ...] = ()

    @property
    def intent_digest(self) -> str:
        """Content digest of the program this was made from (made when first asked for)."""
        return self.intent.digest

    def plot(self, *, fig=None, path=None):
        """Each tone's frequency and amplitude along the step walk, per channel
        (:func:`awgrt.plot.plot_program`): a matplotlib Figure, saved as PNG to ``path`` if given."""
        from ..plot import plot_program

        return plot_program(self, fig=fig, path=path)

    def plot_plane(self, x: str, y: str, *, fig=None, path=None):
        """The tweezer plane of the 2D AOD pair on channels ``x`` and ``y`` (:func:`awgrt.plot.plot_plane`)."""
        from ..plot import plot_plane

        return plot_plane(self, x, y, fig=fig, path=path)

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
