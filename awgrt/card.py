"""Card limits (:class:`CardSpec`) and the 64-bit sequence step entry.

A :class:`CardSpec` holds what one card model accepts in sequence replay mode. Values for the
M4i.66xx family come from the vendor data sheet; :meth:`CardSpec.from_reported` builds one from the
limits a card reports in its read-only registers, so a real backend can check a program against
the card in hand.

The step entry layout (one 64-bit word per step)::

    bits  0-15  segment index
    bits 16-31  next step index
    bits 32-51  loop count (1 .. 1,048,575)
    bits 52-61  reserved (zero)
    bit  62     SPCSEQ_ENDLOOPONTRIG: after the loops, repeat until a trigger was seen
    bit  63     SPCSEQ_END: last step, the card stops after it

Encoding range-checks every field: a loop count above 20 bits would wrap silently on the card,
so it is rejected here.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from . import spectrum as sp
from .errors import CardLimitError, UnknownCardError

SEGMENT_MASK = 0xFFFF
NEXT_SHIFT = 16
NEXT_MASK = 0xFFFF
LOOPS_SHIFT = 32
LOOPS_MASK = 0xFFFFF
RESERVED_MASK = ((1 << 62) - 1) & ~((1 << 52) - 1)
SPCSEQ_ENDLOOPONTRIG = 1 << 62
SPCSEQ_END = 1 << 63
SPCSEQ_ENDLOOPALWAYS = 0

#: The multi-purpose lines X0..X2 of an M4i/M4x.66xx [doc].
XIO_LINES = 3
#: The modes every line offers: asynchronous in/out, synchronous digital output, trigger out,
#: run and arm state.
XIO_MODES = sp.SPCM_XMODE_ASYNCIN | sp.SPCM_XMODE_ASYNCOUT | sp.SPCM_XMODE_DIGOUT | sp.SPCM_XMODE_TRIGOUT | sp.SPCM_XMODE_RUNSTATE | sp.SPCM_XMODE_ARMSTATE
#: Loop counts the 20-bit field can hold; 0 is outside the documented range.
MIN_LOOPS = 1
MAX_LOOPS = LOOPS_MASK

GIBI = 1 << 30


@dataclass(frozen=True)
class StepEntry:
    """One decoded step-memory word."""

    segment: int
    next: int
    loops: int
    on_trigger: bool = False
    end: bool = False


def _check_field(name: str, value: object, lo: int, hi: int) -> int:
    if type(value) is int and lo <= value <= hi:  # the common case, without abstract-class checks
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CardLimitError(f"{name}={value!r} is not an integer", op="step entry", value=value)
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise CardLimitError(f"{name}={value!r} is not an integer", op="step entry", value=value)
    whole = int(value)  # type: ignore[call-overload]  # an integral Real: checked above
    if not lo <= whole <= hi:
        raise CardLimitError(f"{name}={whole} is outside the field's range {lo}..{hi}", op="step entry", value=whole)
    return whole


def encode_step_entry(
    segment: int,
    next: int,
    loops: int,
    *,
    on_trigger: bool = False,
    end: bool = False,
) -> int:
    """Return the step word as an unsigned 64-bit integer (0 .. 2**64-1).

    Use :func:`as_int64` for the signed view the driver register takes.
    """
    word = _check_field("segment", segment, 0, SEGMENT_MASK)
    word |= _check_field("next", next, 0, NEXT_MASK) << NEXT_SHIFT
    word |= _check_field("loops", loops, MIN_LOOPS, MAX_LOOPS) << LOOPS_SHIFT
    if on_trigger:
        word |= SPCSEQ_ENDLOOPONTRIG
    if end:
        word |= SPCSEQ_END
    return word


def as_int64(word: int) -> int:
    """The signed 64-bit view of an unsigned step word (bit 63 set reads back negative)."""
    word = _check_field("word", word, 0, (1 << 64) - 1)
    return word - (1 << 64) if word & SPCSEQ_END else word


def decode_step_entry(word: int) -> StepEntry:
    """Decode a step word given either as unsigned 64-bit or as the signed int64 read-back."""
    word = _check_field("word", word, -(1 << 63), (1 << 64) - 1) & ((1 << 64) - 1)
    if word & RESERVED_MASK:
        raise CardLimitError(f"reserved bits 52-61 are set in step word {word:#018x}", op="decode step entry", value=word)
    return StepEntry(
        segment=word & SEGMENT_MASK,
        next=(word >> NEXT_SHIFT) & NEXT_MASK,
        loops=(word >> LOOPS_SHIFT) & LOOPS_MASK,
        on_trigger=bool(word & SPCSEQ_ENDLOOPONTRIG),
        end=bool(word & SPCSEQ_END),
    )


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())


# Sample rates the M4i.66xx synthesiser cannot produce.
_M4I_FORBIDDEN_CLOCK_HZ = ((750e6, 757e6), (1125e6, 1145e6))
_M4I_MIN_SEGMENT = MappingProxyType({1: 384, 2: 192, 4: 96})


@dataclass(frozen=True)
class CardSpec:
    """What one card accepts in sequence replay mode.

    ``memory_samples`` is the data memory in samples, shared by the active channels;
    ``min_segment_samples`` maps an active channel count to the shortest legal segment.
    ``channel_counts`` lists the counts of active channels the card can run with.
    """

    name: str
    physical_channels: int
    max_sample_rate_hz: float
    min_sample_rate_hz: float = 50e6
    sample_rate_step_hz: float = 8.0
    forbidden_sample_rates_hz: tuple[tuple[float, float], ...] = _M4I_FORBIDDEN_CLOCK_HZ
    memory_samples: int = 2 * GIBI
    max_steps: int = 4096
    min_segments: int = 2
    max_segments: int = 65536
    max_loops: int = MAX_LOOPS
    segment_granularity: int = 32
    min_segment_samples: Mapping[int, int] = field(default_factory=lambda: _M4I_MIN_SEGMENT)
    segments_power_of_two: bool = True
    channel_counts: tuple[int, ...] = (1, 2)
    full_scale: int = 32767
    max_amplitude_mv: int = 2500
    min_amplitude_mv: int = 80
    #: Frequencies the external reference clock input takes, Hz [assume: 10 MHz .. 1.25 GHz].
    reference_clock_hz: tuple[float, float] = (10e6, 1.25e9)

    def active_channel_count(self, highest_hardware_channel: int) -> int:
        """Channels the card must enable so that channel ``highest_hardware_channel`` plays."""
        needed = highest_hardware_channel + 1
        for count in sorted(self.channel_counts):
            if count >= needed:
                return count
        raise CardLimitError(
            f"hardware channel {highest_hardware_channel} does not exist on {self.name} ({self.physical_channels} channels)",
            value=highest_hardware_channel,
        )

    def min_segment_length(self, n_channels: int) -> int:
        """Shortest legal segment, in samples per channel, for ``n_channels`` channels."""
        return int(self.min_segment_samples[n_channels])

    def legal_length(self, n_samples: int, n_channels: int) -> int:
        """The shortest card-legal segment length >= ``n_samples`` for ``n_channels`` channels."""
        g = self.segment_granularity
        return max(self.min_segment_length(n_channels), -(-int(n_samples) // g) * g)

    def largest_segment_length(self, n_channels: int) -> int:
        """The longest segment this card can ever hold for ``n_channels`` enabled channels (its
        memory split into the fewest slots)."""
        return self.max_segment_length(n_channels, self.slot_count(1))

    def slot_count(self, n_segments: int) -> int:
        """How many equal memory slots ``n_segments`` distinct segments need."""
        n = max(self.min_segments, int(n_segments))
        return next_power_of_two(n) if self.segments_power_of_two else n

    def max_segment_length(self, n_channels: int, n_slots: int) -> int:
        """Longest legal segment, in samples per channel, for this split of memory."""
        raw = self.memory_samples // n_channels // n_slots
        return raw - raw % self.segment_granularity

    def sample_rate_problem(self, sample_rate_hz: float) -> str | None:
        """Why the card cannot clock at ``sample_rate_hz``, or None if it can."""
        ms = f"{sample_rate_hz / 1e6:.9g} MS/s"
        if not self.min_sample_rate_hz <= sample_rate_hz <= self.max_sample_rate_hz:
            hint = f": did you mean {sample_rate_hz:g}e6 Hz? (sample rates are in hertz)" if 0 < sample_rate_hz < 1e6 else ""
            return f"sample rate {ms} is outside {self.min_sample_rate_hz / 1e6:g}..{self.max_sample_rate_hz / 1e6:g} MS/s{hint}"
        for lo, hi in self.forbidden_sample_rates_hz:
            if lo <= sample_rate_hz <= hi:
                return f"sample rate {ms} lies in the card's clock gap {lo / 1e6:g}..{hi / 1e6:g} MS/s"
        if sample_rate_hz % self.sample_rate_step_hz:
            return f"sample rate {sample_rate_hz!r} Hz is not a multiple of {self.sample_rate_step_hz:g} Hz"
        return None

    @classmethod
    def from_reported(
        cls,
        name: str,
        *,
        physical_channels: int,
        max_sample_rate_hz: float,
        memory_bytes: int,
        avail_max_segments: int,
        avail_max_steps: int,
        avail_max_loops: int,
        base: CardSpec | None = None,
    ) -> CardSpec:
        """A spec from what a card reports (``SPC_PCIMEMSIZE``, ``SPC_SEQMODE_AVAILMAX*``).

        Fields a card does not report (minimum lengths, granularity, clock gaps) are taken from
        ``base`` (default: the M4i.66xx values).
        """
        base = base or CARDS["M4i.6631-x8"]
        if not isinstance(max_sample_rate_hz, numbers.Real) or not math.isfinite(max_sample_rate_hz) or max_sample_rate_hz <= 0:
            raise CardLimitError(f"card reported max_sample_rate_hz={max_sample_rate_hz!r}", op="read card limits", value=max_sample_rate_hz)
        for label, v in (
            ("physical_channels", physical_channels),
            ("memory_bytes", memory_bytes),
            ("avail_max_segments", avail_max_segments),
            ("avail_max_steps", avail_max_steps),
            ("avail_max_loops", avail_max_loops),
        ):
            if int(v) != v or v < 1:
                raise CardLimitError(f"card reported {label}={v!r}", op="read card limits", value=v)
        counts = tuple(c for c in (1, 2, 4, 8) if c <= physical_channels)
        return cls(
            name=name,
            physical_channels=int(physical_channels),
            max_sample_rate_hz=float(max_sample_rate_hz),
            min_sample_rate_hz=base.min_sample_rate_hz,
            sample_rate_step_hz=base.sample_rate_step_hz,
            forbidden_sample_rates_hz=base.forbidden_sample_rates_hz,
            memory_samples=int(memory_bytes) // 2,
            max_steps=int(avail_max_steps),
            min_segments=base.min_segments,
            max_segments=int(avail_max_segments),
            max_loops=min(int(avail_max_loops), MAX_LOOPS),
            segment_granularity=base.segment_granularity,
            min_segment_samples=base.min_segment_samples,
            segments_power_of_two=base.segments_power_of_two,
            channel_counts=counts,
            full_scale=base.full_scale,
            max_amplitude_mv=base.max_amplitude_mv,
            min_amplitude_mv=base.min_amplitude_mv,
        )


#: What the card's sample clock is made from: its own PLL on its quartz, or the PLL locked to a
#: reference clock fed to its clock input (a lab's 10 MHz reference).
ClockSource = Literal["internal", "external_reference"]
CLOCK_SOURCES: tuple[str, ...] = get_args(ClockSource)


@dataclass(frozen=True)
class ClockConfig:
    """The card's clock: ``source`` (:data:`CLOCK_SOURCES`), ``reference_hz`` (the frequency fed
    to the clock input, for ``"external_reference"`` only) and whether the clock output is on."""

    source: ClockSource = "internal"
    reference_hz: float | None = None
    output: bool = False

    def problem(self, card: CardSpec) -> str | None:
        """Why ``card`` cannot run with this clock, or None."""
        if self.source not in CLOCK_SOURCES:
            return f"clock source {self.source!r} must be one of {CLOCK_SOURCES}"
        if not isinstance(self.output, bool):
            return f"clock output {self.output!r} must be True or False"
        if self.source == "internal":
            return None if self.reference_hz is None else "reference_hz applies to clock source 'external_reference' only"
        lo, hi = card.reference_clock_hz
        f = self.reference_hz
        if f is None or isinstance(f, bool) or not isinstance(f, numbers.Real) or not math.isfinite(f) or not lo <= f <= hi or f != int(f):
            return f"reference_hz={f!r}: the external reference of {card.name} is a whole number of Hz in {lo:g}..{hi:g}"
        return None


#: The default clock: the card's own PLL, clock output off.
INTERNAL_CLOCK = ClockConfig()


class _CardTable(Mapping[str, CardSpec]):
    """The known models by name; an unknown name is an :class:`~awgrt.errors.UnknownCardError`
    naming the closest known one."""

    def __init__(self, specs: Mapping[str, CardSpec]) -> None:
        self._specs = dict(specs)

    def __getitem__(self, name: str) -> CardSpec:
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            raise UnknownCardError(unknown_card_message(name, self._specs), code=None, op="card model", value=name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"CARDS({', '.join(self._specs)})"


def unknown_card_message(name: object, known: Iterable[str]) -> str:
    """Why ``name`` is not a card model: the closest known name and all of them."""
    names = list(known)
    text = str(name)
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=1, cutoff=0.0)
    hint = f"; closest: {by_lower[close[0]]}" if close else ""
    return f"unknown card model {name!r}{hint} (known: {', '.join(names)})"


def _family(prefix: str, suffix: str) -> dict[str, CardSpec]:
    """The M4i (PCIe x8) or M4x (PXIe x4) 66xx models: 16-bit DACs, 2 GiS memory, 1, 2 or 4
    channels at 625 MS/s (662x, +-80 mV .. +-2.5 V into 50 Ohm) or 1 or 2 at 1.25 GS/s (663x, up to
    +-2 V), the same sequence memory and segment rules [the M4i/M4x.66xx manual and data sheet]."""
    models = {"6620": (1, 625e6), "6621": (2, 625e6), "6622": (4, 625e6), "6630": (1, 1.25e9), "6631": (2, 1.25e9)}
    out = {}
    for model, (channels, rate) in models.items():
        name = f"{prefix}.{model}-{suffix}"
        out[name] = CardSpec(
            name,
            physical_channels=channels,
            max_sample_rate_hz=rate,
            max_amplitude_mv=2000 if rate > 625e6 else 2500,
            channel_counts=tuple(c for c in (1, 2, 4) if c <= channels),
        )
    return out


#: Data-sheet specs of the supported cards, by model name: the whole M4i.66xx (PCIe) and
#: M4x.66xx (PXIe) family. An unknown name raises :class:`~awgrt.errors.UnknownCardError`.
CARDS: Mapping[str, CardSpec] = _CardTable({**_family("M4i", "x8"), **_family("M4x", "x4")})

DEFAULT_CARD = "M4i.6631-x8"
