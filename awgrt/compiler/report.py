"""The compile report: every decision the compiler made, printable for a person.

``str(report)`` (or :meth:`CompileReport.format`) opens with a summary of wrap snapping (the
largest shift, as a fraction of its bound; how many tones moved; frequency steps), then gives
segments and steps, lengths and padding, snapping per looped segment, optimised phases, clipping
and one line per step-graph edge. ``format(detail=True)`` lists every tone: each snap, easing and
step, and each tone that jumps at an edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..ir.boundary import Boundary
from ..ir.quantized import FrequencyStep, QuantizedIR, ToneSnap
from ..ir.resolved import Note, Segment
from ..program import SequenceStep
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
    #: per hardware channel with clipped samples: (channel, samples clipped, first and last sample at the clip level)
    clipped_where: tuple[tuple[int, int, int, int], ...] = ()

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
            clipped_where=clip_locations(result),
        )

    def clip_summary(self, sample_rate_hz: float) -> str:
        """Where this segment clips, per hardware channel, in words."""
        parts = [
            f"channel {ch}: {n} samples, first at sample {a} ({a / sample_rate_hz * 1e6:.3f} us), last at {b} ({b / sample_rate_hz * 1e6:.3f} us)"
            for ch, n, a, b in self.clipped_where
        ]
        return f"{self.clipped} samples clipped (peak {self.peak:.3f} of full scale; " + "; ".join(parts) + ")"


def clip_locations(result: SynthResult) -> tuple[tuple[int, int, int, int], ...]:
    """(hardware channel, clipped count, first and last sample at the clip level) of every
    channel of ``result`` that clipped (the synthesis clips to exactly that level)."""
    out = []
    for ch, n in enumerate(result.clipped):
        if n:
            col = np.abs(result.data[:, ch].astype(np.int32))
            at = np.flatnonzero(col == col.max())
            out.append((ch, int(n), int(at[0]), int(at[-1])))
    return tuple(out)


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
    n_channels: int
    slots: int
    segments: tuple[SegmentReport, ...]
    steps: tuple[SequenceStep, ...]
    notes: tuple[Note, ...]
    boundaries: tuple[Boundary, ...]
    synthesised: tuple[str, ...]
    gain: float
    clip: float
    snaps: tuple[ToneSnap, ...] = ()
    frequency_steps: tuple[FrequencyStep, ...] = ()
    fast_math: bool = False

    @property
    def arithmetic(self) -> str:
        """How moving tones were synthesised, with the stated worst-case error."""
        from .synth import FAST_PHASE_ERROR_RAD, SINE_ERROR_RAD  # noqa: PLC0415

        if self.fast_math:
            return (
                f"fast-math: tones moving each on its own (eight or more in a piece) within {FAST_PHASE_ERROR_RAD:.1e} rad of exact phase "
                f"(<= {FAST_PHASE_ERROR_RAD * 32767:.1f} LSB at full scale); every other tone exact"
            )
        return f"exact: every tone within {SINE_ERROR_RAD:.1e} rad (<= {SINE_ERROR_RAD * 32767:.3f} LSB at full scale)"

    @property
    def largest_snap(self) -> ToneSnap | None:
        """The constant tone of a looped segment that wrap snapping moved furthest (None: none moved)."""
        moved = [s for s in self.snaps if s.shift_hz]
        return max(moved, key=lambda s: abs(s.shift_hz)) if moved else None

    def snap_summary(self) -> str:
        """One line: the largest shift (tone, segment, Hz, fraction of its bound), how many tones
        moved, and the frequency steps."""
        w = self.largest_snap
        if w is None:
            looped = len({s.segment for s in self.snaps})
            return f"no tone moved ({looped} looped segment{'s' * (looped != 1)} already whole cycles per pass)" if looped else "no looped constant tones"
        moved = [s for s in self.snaps if s.shift_hz]
        steps = ""
        if self.frequency_steps:
            big = max(self.frequency_steps, key=lambda s: abs(s.size_hz))
            steps = (
                f"; {len(self.frequency_steps)} phase-continuous frequency steps "
                f"(largest {big.size_hz:+.1f} Hz, {big.from_segment!r} -> {big.to_segment!r})"
            )
        return (
            f"largest shift {w.shift_hz:+.1f} Hz ({w.channel} tone {w.index} (#{w.tone}) in {w.segment!r}, {w.fraction_of_bound:.2f} of its "
            f"{w.bound_hz:.1f} Hz bound fs/2N); {len(moved)} of {len(self.snaps)} looped tone holds moved{steps}"
        )

    @property
    def clipped_samples(self) -> dict[str, int]:
        return {s.name: s.clipped for s in self.segments}

    @property
    def discontinuities(self) -> tuple[Boundary, ...]:
        """Step-graph edges that are not phase-, frequency- and amplitude-continuous."""
        return tuple(b for b in self.boundaries if not b.continuous)

    def notes_of(self, kind: str) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.kind == kind)

    def _snapping_lines(self, detail: bool) -> list[str]:
        kinds = ("frequency_snapped", "frequency_eased", "frequency_step", "hold_suggestion")
        if detail:
            return [f"  {n.kind:<18} {n.segment or '-':<16} {n.detail}" for n in self.notes if n.kind in kinds]
        lines = []
        for seg in dict.fromkeys(s.segment for s in self.snaps):
            snaps = [s for s in self.snaps if s.segment == seg]
            w = max(snaps, key=lambda s: abs(s.shift_hz))
            moved = sum(bool(s.shift_hz) for s in snaps)
            lo, hi = min(s.shift_hz for s in snaps), max(s.shift_hz for s in snaps)
            if not moved:
                lines.append(f"  {'whole cycles':<18} {seg:<16} all {len(snaps)} tones already make whole cycles per {w.n_samples} samples")
                continue
            lines.append(
                f"  {'snapped':<18} {seg:<16} {moved} of {len(snaps)} tones moved to whole cycles per {w.n_samples} samples: "
                f"{lo:+.1f} .. {hi:+.1f} Hz, worst {w.fraction_of_bound:.2f} of the {w.bound_hz:.1f} Hz bound"
            )
        for eased_seg in dict.fromkeys(n.segment for n in self.notes_of("frequency_eased")):
            eased = [n for n in self.notes_of("frequency_eased") if n.segment == eased_seg]
            big = max(abs(float(n.realised or 0.0) - float(n.requested or 0.0)) for n in eased)  # eased notes carry both
            lines.append(
                f"  {'eased':<18} {eased_seg or '-':<16} {len(eased)} tones ease between the snapped frequencies of the holds around it "
                f"(largest change {big:.1f} Hz)"
            )
        for edge in dict.fromkeys((s.from_segment, s.to_segment) for s in self.frequency_steps):
            steps = [s for s in self.frequency_steps if (s.from_segment, s.to_segment) == edge]
            big = max(abs(s.size_hz) for s in steps)
            lines.append(f"  {'stepped':<18} {edge[1]:<16} {len(steps)} tones step frequency, phase-continuously, from {edge[0]!r} (largest {big:.1f} Hz)")
        lines += [f"  {n.kind:<18} {n.segment or '-':<16} {n.detail}" for n in self.notes_of("hold_suggestion")]
        return lines

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython and Jupyter show the formatted report, not the fields."""
        printer.text(str(self))

    def format(self, detail: bool = False) -> str:
        """The report as text; ``detail`` lists every tone's snap, easing, step and edge jump."""
        chans = ", ".join(f"{k}->ch{v}" for k, v in self.hardware_channels.items())
        lines = [
            f"awgrt compile report: {len(self.segments)} segments, {len(self.steps)} steps at {self.sample_rate_hz / 1e6:g} MS/s on {self.card}",
            f"  wrap snapping: {self.snap_summary()}",
            f"  channels {chans}; {self.n_channels} enabled; {self.slots} memory slots; gain {self.gain:g}, clip {self.clip:g} FS",
            f"  synthesis {self.arithmetic}",
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
            ("Deliberate jumps (ops of time 0)", ("instant",)),
            ("AOD-calibrated channels (amplitudes asked as optical power)", ("calibrated", "saturation")),
            ("Channels and memory", ("channels", "slots_padded", "slots_shared")),
            ("After the last step", ("last_step",)),
        ]
        for title, kinds in sections:
            notes = [n for n in self.notes if n.kind in kinds]
            lines += ["", f"{title}:"]
            lines += [f"  {n.kind:<18} {n.segment or '-':<16} {n.detail}" for n in notes] or ["  (none)"]
        lines += ["", "Wrap snapping:"]
        lines += self._snapping_lines(detail) or ["  (none)"]
        lines += ["", "Phases:"]
        lines += [f"  {n.kind:<18} {n.segment or '-':<16} {n.detail}" for n in self.notes if n.kind in ("phases_optimised", "ring_closed")] or ["  (none)"]
        lines += ["", "Clipping:"]
        clipped = [s for s in self.segments if s.clipped]
        lines += [f"  {s.name:<16} beyond {self.clip:g} FS: {s.clip_summary(self.sample_rate_hz)}" for s in clipped]
        lines += [f"  {n.segment:<16} {n.detail}" for n in self.notes_of("silent")]
        if not clipped and not self.notes_of("silent"):
            lines.append("  (none)")
        lines += ["", "Continuity of every step-graph edge:"]
        for b in self.boundaries:
            lines.append(f"  {b.kind:<5} {b.from_segment + ' -> ' + b.to_segment:<34} {b.summary()}")
            if detail:
                lines += [f"        {j.describe()}" for j in b.tones]
        if not detail and any(len(b.tones) for b in self.boundaries):
            lines.append("  (per-tone detail: report.format(detail=True), or awgrt compile --detail)")
        return "\n".join(lines)

    __str__ = format
