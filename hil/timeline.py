"""When each step plays, and what each tone is programmed to do at any card sample.

:func:`step_entries` walks a compiled program's step table from the trigger that starts replay,
with the card's documented timing (first sample ``trigger_latency_samples`` after the trigger;
``loops`` passes per step; an ENDLOOPONTRIG step leaves at the end of the first pass that ends
after a trigger that came while it played). Boundary times for the checks come from here, never
from looking at the capture.

:class:`Timeline` adds the quantized program (which tones each segment plays, with exact start
phases) so a check can ask for the programmed phase, frequency and amplitude of every tone at
any card sample (:meth:`Timeline.tones_at`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from awgrt.ir.quantized import QuantizedIR
from awgrt.ir.resolved import ToneSpan
from awgrt.ir.shapes import phase_cycles
from awgrt.program import CompiledSequenceProgram
from awgrt.sim import trigger_latency_samples

from .errors import AnalysisError


@dataclass(frozen=True)
class StepEntry:
    """Step ``step`` (program segment ``step``, named ``name``) entered at card ``sample``, playing
    ``passes`` passes of ``n_samples`` each (None: still waiting for a trigger at the end)."""

    sample: int
    step: int
    name: str
    n_samples: int
    passes: int | None

    @property
    def stop(self) -> float:
        """Sample after its last pass (inf while it waits)."""
        return float("inf") if self.passes is None else self.sample + self.passes * self.n_samples


def step_entries(program: CompiledSequenceProgram, triggers: Sequence[int], until: int) -> list[StepEntry]:
    """Every step entry from the replay start up to card sample ``until``. ``triggers``: external
    trigger samples on the card clock (the first starts replay)."""
    if not triggers:
        return []
    trig = sorted(triggers)
    t = trig[0] + trigger_latency_samples(program.sample_rate_hz)
    pending = trig[1:]
    step = program.start_step
    out: list[StepEntry] = []
    while t < until:
        st = program.steps[step]
        n = program.segments[st.segment].n_samples
        passes: int = st.loops
        if st.on_trigger:
            pending = [x for x in pending if x >= t]
            if not pending:
                out.append(StepEntry(t, step, st.name, n, None))
                break
            passes = max(st.loops, (pending[0] - t) // n + 1)
            pending = [x for x in pending if x >= t + passes * n]
        out.append(StepEntry(t, step, st.name, n, passes))
        if st.end:
            break
        t += passes * n
        step = st.next
    return out


@dataclass(frozen=True)
class TonePath:
    """One tone over one piece of a segment: card samples [start, start + n) follow ``span``."""

    span: ToneSpan
    start: float
    n: int
    sample_rate_hz: float

    def phase_cycles(self, sample: np.ndarray) -> np.ndarray:
        """Programmed phase (cycles) at card samples ``sample`` (real-valued), extended beyond the
        piece with its end frequency so windows may reach a little past it."""
        k = np.asarray(sample, dtype=np.float64) - self.start
        fs = self.sample_rate_hz
        inside = np.clip(k, 0.0, self.n)
        phase = self.span.phase0_cycles + phase_cycles(self.span.f0_hz / fs, self.span.f1_hz / fs, self.span.freq_kind, self.n, inside)
        return phase + (k - inside) * np.where(k < 0, self.span.f0_hz, self.span.f1_hz) / fs

    def frequency_hz(self, sample: np.ndarray) -> np.ndarray:
        """Programmed frequency (Hz) at card samples ``sample``."""
        u = np.clip((np.asarray(sample, dtype=np.float64) - self.start) / self.n, 0.0, 1.0)
        fs = self.sample_rate_hz
        h = 1e-6
        lo, hi = np.clip(u - h, 0, 1), np.clip(u + h, 0, 1)
        d = phase_cycles(self.span.f0_hz / fs, self.span.f1_hz / fs, self.span.freq_kind, self.n, hi * self.n) - phase_cycles(
            self.span.f0_hz / fs, self.span.f1_hz / fs, self.span.freq_kind, self.n, lo * self.n
        )
        return d / ((hi - lo) * self.n) * fs

    def amplitude(self, sample: np.ndarray) -> np.ndarray:
        """Programmed amplitude (fraction of full scale) at card samples ``sample``."""
        u = np.clip((np.asarray(sample, dtype=np.float64) - self.start) / self.n, 0.0, 1.0)
        return self.span.amplitude_at(u)


@dataclass(frozen=True)
class Timeline:
    """A compiled program played from given triggers, with its quantized IR (see module doc)."""

    quantized: QuantizedIR
    program: CompiledSequenceProgram
    triggers: tuple[int, ...]
    entries: tuple[StepEntry, ...]

    @classmethod
    def of(cls, quantized: QuantizedIR, program: CompiledSequenceProgram, triggers: Sequence[int], until: int) -> Timeline:
        return cls(quantized, program, tuple(triggers), tuple(step_entries(program, triggers, until)))

    @property
    def sample_rate_hz(self) -> float:
        return self.program.sample_rate_hz

    def entries_of(self, name: str) -> list[StepEntry]:
        """Entries of the step named ``name`` (program segment name), in time order."""
        found = [e for e in self.entries if e.name == name]
        if not found:
            raise AnalysisError(f"segment {name!r} is not played within the timeline ({[e.name for e in self.entries]})")
        return found

    def entry_at(self, sample: float) -> tuple[StepEntry, int]:
        """The step playing at card ``sample`` and the offset into its current pass."""
        for e in self.entries:
            if e.sample <= sample < e.stop:
                return e, int((sample - e.sample) % e.n_samples)
        raise AnalysisError(f"card sample {sample:g} is outside the played timeline")

    def tones_at(self, channel: str, sample: float) -> tuple[list[TonePath], int, int]:
        """The tones ``channel`` plays at card ``sample``: their paths (positioned on the card
        clock) and the card-sample span [lo, hi) of the piece they belong to."""
        entry, offset = self.entry_at(sample)
        seg = self.quantized.segments[entry.step]
        track = seg.track(channel)
        pass_start = sample - offset
        for piece in track.pieces:
            if piece.start <= offset < piece.stop:
                lo = pass_start + piece.start
                paths = [TonePath(s, lo, piece.n, self.sample_rate_hz) for s in piece.tones]
                return paths, int(lo), int(lo + piece.n)
        raise AnalysisError(f"segment {seg.name!r} channel {channel!r} has no piece at offset {offset}")
