"""The compile report: every decision the compiler made, printable for a person.

``str(report)`` (or :meth:`CompileReport.format`) gives segments and steps, lengths and padding,
snapped frequencies, optimised phases, clipping and the continuity of every step-graph edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..ir.quantized import QuantizedIR
from ..ir.resolved import Note, Segment
from ..program import SequenceStep
from .phases import Boundary
from .synth import SynthResult


@dataclass(frozen=True)
class SegmentReport:
    """One program segment after compilation."""

    name: str
    mode: str
    loops: int
    slot: int
    n_samples: int
    duration_s: float
    tones: Mapping[str, int]  # logical channel -> tone count at the segment start
    peak: float  # largest |sample| before clipping, fraction of full scale
    clipped: int  # samples beyond the clip level, all channels

    @classmethod
    def of(cls, seg: Segment, slot: int, result: SynthResult, q: QuantizedIR) -> SegmentReport:
        return cls(
            name=seg.name,
            mode=seg.mode,
            loops=seg.loops,
            slot=slot,
            n_samples=seg.n_samples,
            duration_s=seg.n_samples / q.sample_rate_hz,
            tones={t.channel: len(t.entry) for t in seg.tracks},
            peak=max(result.peak, default=0.0),
            clipped=sum(result.clipped),
        )


def _si_time(t: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3f} {unit}"
    return f"{t / 1e-9:.1f} ns"


@dataclass(frozen=True)
class CompileReport:
    """Everything the compiler decided for one program (see module doc)."""

    sample_rate_hz: float
    card: str
    hardware_channels: Mapping[str, int]
    n_hardware_channels: int
    slots: int
    segments: tuple[SegmentReport, ...]
    steps: tuple[SequenceStep, ...]
    notes: tuple[Note, ...]
    boundaries: tuple[Boundary, ...]
    synthesised: tuple[str, ...]
    gain: float
    clip: float

    @property
    def clipped_samples(self) -> dict[str, int]:
        return {s.name: s.clipped for s in self.segments}

    @property
    def discontinuities(self) -> tuple[Boundary, ...]:
        """Step-graph edges that are not phase-, frequency- and amplitude-continuous."""
        return tuple(b for b in self.boundaries if not b.continuous)

    def notes_of(self, kind: str) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.kind == kind)

    def format(self) -> str:
        chans = ", ".join(f"{k}->ch{v}" for k, v in self.hardware_channels.items())
        lines = [
            f"awgrt compile report: {len(self.segments)} segments, {len(self.steps)} steps at {self.sample_rate_hz / 1e6:g} MS/s on {self.card}",
            f"  channels {chans}; {self.n_hardware_channels} enabled; {self.slots} memory slots; gain {self.gain:g}, clip {self.clip:g} FS",
            "",
            f"  {'step':>4}  {'segment':<16} {'mode':<9} {'loops':>8} {'slot':>4} {'samples':>10} {'duration':>12}  {'tones':<10} {'peak':>6} {'clipped':>8}",
        ]
        for i, (s, st) in enumerate(zip(self.segments, self.steps)):
            loops = "1+trig" if st.on_trigger else str(st.loops)
            nxt = "END" if st.end else f"->{st.next}"
            tones = "/".join(str(n) for n in s.tones.values())
            lines.append(
                f"  {i:>4}  {s.name:<16} {s.mode:<9} {loops:>8} {s.slot:>4} {s.n_samples:>10} {_si_time(s.duration_s):>12}  "
                f"{tones:<10} {s.peak:>6.3f} {s.clipped:>8}  {nxt}"
            )
        sections = [
            ("Timing", ("rounding", "length_padded")),
            ("Channels and memory", ("channels", "slots_padded", "slots_shared")),
            ("Wrap snapping", ("frequency_snapped", "frequency_eased", "frequency_step")),
            ("Phases", ("phases_optimised",)),
        ]
        for title, kinds in sections:
            notes = [n for n in self.notes if n.kind in kinds]
            lines += ["", f"{title}:"]
            lines += [f"  {n.kind:<18} {n.segment or '-':<16} {n.detail}" for n in notes] or ["  (none)"]
        lines += ["", "Clipping:"]
        clipped = [s for s in self.segments if s.clipped]
        lines += [f"  {s.name:<16} {s.clipped} samples beyond {self.clip:g} FS (peak {s.peak:.3f})" for s in clipped] or ["  (none)"]
        lines += ["", "Continuity of every step-graph edge:"]
        for b in self.boundaries:
            state = "continuous" if b.continuous else "NOT continuous: " + "; ".join(b.reasons)
            lines.append(f"  {b.kind:<5} {b.from_segment + ' -> ' + b.to_segment:<34} {state}")
        return "\n".join(lines)

    __str__ = format
