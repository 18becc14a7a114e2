"""Step-graph edges and what happens to each tone across them.

A :class:`Boundary` is one edge the sequencer can take: where segment ``from_segment`` ends and
``to_segment`` starts. Each tone that does not carry on seamlessly across it is one
:class:`ToneJump`. A tone whose amplitude is zero where it ends (or starts) is seamless and is
recorded with ``kind="silent_end"`` (``"silent_start"``) for the record, not as a jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Kinds of :class:`ToneJump` that break continuity.
JUMP_KINDS = ("stops", "starts", "frequency", "amplitude", "phase")
#: Kinds that are recorded but seamless: the tone ends or starts at zero amplitude.
SEAMLESS_KINDS = ("silent_end", "silent_start")


def format_hz(hz: float) -> str:
    """A frequency (difference) with a unit that keeps it readable: 12.3 Hz, 41.77 kHz, 2.995 MHz."""
    for unit, scale in (("MHz", 1e6), ("kHz", 1e3)):
        if abs(hz) >= scale:
            return f"{hz / scale:.4g} {unit}"
    return f"{hz:.3g} Hz" if hz else "0 Hz"


@dataclass(frozen=True)
class ToneJump:
    """One tone at one edge. ``before``/``after``: the tone's value at the end of the first
    segment and the start of the second (Hz for ``frequency``, fraction of full scale for
    ``amplitude`` / ``stops`` / ``starts`` / the silent kinds, rad for ``phase``, where
    ``after - before`` is the jump wrapped into [-pi, pi)). ``snapped``: a frequency step that
    wrap snapping put there on purpose (phase-continuous)."""

    channel: str
    tone: int
    kind: str
    before: float
    after: float
    snapped: bool = False

    @property
    def size(self) -> float:
        """Magnitude of the jump in the kind's unit."""
        if self.kind == "phase":
            return abs(math.remainder(self.after - self.before, 2 * math.pi))
        return abs(self.after - self.before)

    def describe(self) -> str:
        ch, t = self.channel, self.tone
        if self.kind == "stops":
            return f"{ch}: tone #{t} stops at amplitude {self.before:.4g}"
        if self.kind == "starts":
            return f"{ch}: tone #{t} starts at amplitude {self.after:.4g}"
        if self.kind == "silent_end":
            return f"{ch}: tone #{t} ends at zero amplitude (seamless)"
        if self.kind == "silent_start":
            return f"{ch}: tone #{t} starts at zero amplitude (seamless)"
        if self.kind == "frequency":
            why = " (wrap snapping step, phase-continuous)" if self.snapped else ""
            return f"{ch}: tone #{t} frequency jumps {self.before / 1e6:.6f} -> {self.after / 1e6:.6f} MHz ({self.after - self.before:+.1f} Hz){why}"
        if self.kind == "amplitude":
            return f"{ch}: tone #{t} amplitude jumps {self.before:.4g} -> {self.after:.4g}"
        return f"{ch}: tone #{t} phase jumps {math.remainder(self.after - self.before, 2 * math.pi):+.4f} rad"


@dataclass(frozen=True)
class Boundary:
    """One edge of the step graph. ``kind``: ``"next"`` (program order), ``"wrap"`` (a looped
    segment replayed back to back with itself) or ``"ring"`` (the last step back to the first).
    ``tones``: every tone that jumps, plus those that end or start silently (seamless)."""

    kind: str
    from_segment: str
    to_segment: str
    tones: tuple[ToneJump, ...] = ()
    max_phase_error_rad: float = 0.0

    @property
    def jumps(self) -> tuple[ToneJump, ...]:
        """The tone changes that break continuity."""
        return tuple(j for j in self.tones if j.kind in JUMP_KINDS)

    @property
    def continuous(self) -> bool:
        """Every tone carries on with the same phase, frequency and amplitude (or fades to or
        from zero amplitude)."""
        return not self.jumps

    @property
    def phase_continuous(self) -> bool:
        """Continuous except for frequency steps that wrap snapping made on purpose."""
        return all(j.kind == "frequency" and j.snapped for j in self.jumps)

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per jump, in words."""
        return tuple(j.describe() for j in self.jumps)

    def worst(self, kind: str) -> float:
        """Largest jump of one kind (0.0 when there is none)."""
        return max((j.size for j in self.jumps if j.kind == kind), default=0.0)

    def summary(self) -> str:
        """One line: continuous, or how many tones jump and the worst phase, frequency and
        amplitude step."""
        silent = sum(j.kind in SEAMLESS_KINDS for j in self.tones)
        quiet = f" ({silent} tone{'s' * (silent != 1)} fade to or from zero amplitude)" if silent else ""
        if self.continuous:
            return "continuous" + quiet
        if self.phase_continuous:
            steps = self.jumps
            return (
                f"phase-continuous; {len(steps)} tone{'s' * (len(steps) != 1)} step frequency by up to {format_hz(self.worst('frequency'))} "
                f"(wrap snapping){quiet}"
            )
        tones = {(j.channel, j.tone) for j in self.jumps}
        parts = []
        if self.worst("phase"):
            parts.append(f"phase up to {self.worst('phase'):.3f} rad")
        if self.worst("frequency"):
            parts.append(f"frequency up to {format_hz(self.worst('frequency'))}")
        if self.worst("amplitude"):
            parts.append(f"amplitude up to {self.worst('amplitude'):.4g}")
        for kind in ("stops", "starts"):
            n = sum(j.kind == kind for j in self.jumps)
            if n:
                parts.append(f"{n} {'stop' if kind == 'stops' else 'start'} at non-zero amplitude")
        return f"NOT continuous: {len(tones)} tone{'s' * (len(tones) != 1)} jump ({'; '.join(parts)}){quiet}"
