"""Fault injection on the simulated rig, to prove that each check catches what it is for.

``--inject`` options (units as written):

- ``phase-jump=2deg``: every tone of the target segment starts 2 degrees late (a phase jump at
  its entry, and the opposite one at its exit);
- ``wrap-delta=0.001``: every constant tone of the target looped segment plays 0.001 cycles
  more per pass than a whole number (a step of -0.36 degrees at each wrap, spurs near -60 dBc);
- ``amp-error=1dB``: the card's output is 1 dB louder than configured;
- ``chirp-rate=0.5%``: every frequency move of the target segment sweeps 0.5 % more;
- ``skew=1.6ns``: the second AWG channel (V) reaches the scope 1.6 ns after the first;
- ``clock=30ppm``: the card's sample clock runs 30 ppm fast (every tone 30 ppm high, every
  instant 30 ppm early): only a shared reference or a reference tone tells it from the scope's
  timebase error;
- ``cable=10ns``: every AWG output reaches the scope 10 ns later than the rig file's
  ``output_delay_s`` says (2 m of cable nobody entered): not a fault of the card; the checks fit
  the delay on every record that moves or ramps, and the ``output_delay`` check reports it.

Segment faults re-synthesise the target segment from its quantized form (awgrt's own synthesis)
with the perturbed tones and swap its samples into the compiled program; the step table and
every other segment stay as compiled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from awgrt.compiler.compile import synthesize_segment
from awgrt.ir.quantized import QuantizedIR
from awgrt.ir.resolved import Segment, ToneSpan
from awgrt.program import CompiledSegment, CompiledSequenceProgram

from ..errors import RigConfigError

_SPEC = re.compile(r"^\s*(phase-jump|wrap-delta|amp-error|chirp-rate|skew|clock|cable)\s*=\s*([-+0-9.eE]+)\s*(deg|db|%|cycles?|ns|ppm)?\s*$", re.IGNORECASE)
_UNITS = {
    "phase-jump": ("deg",),
    "wrap-delta": ("", "cycle", "cycles"),
    "amp-error": ("db",),
    "chirp-rate": ("%",),
    "skew": ("ns",),
    "clock": ("ppm",),
    "cable": ("ns",),
}


@dataclass(frozen=True)
class Faults:
    """Faults to inject (zero: none). ``phase_jump_deg`` in degrees, ``wrap_delta_cycles`` in
    cycles per pass, ``amp_error_db`` in dB, ``chirp_rate_rel`` as a fraction (0.005 = 0.5 %),
    ``skew_s`` in seconds, ``clock_ppm`` in ppm, ``cable_s`` in seconds."""

    phase_jump_deg: float = 0.0
    wrap_delta_cycles: float = 0.0
    amp_error_db: float = 0.0
    chirp_rate_rel: float = 0.0
    skew_s: float = 0.0
    clock_ppm: float = 0.0
    cable_s: float = 0.0

    @property
    def any(self) -> bool:
        return any((self.phase_jump_deg, self.wrap_delta_cycles, self.amp_error_db, self.chirp_rate_rel, self.skew_s, self.clock_ppm, self.cable_s))

    def card_rate_hz(self, sample_rate_hz: float) -> float:
        """The rate the card's samples really come at (true time): the ``clock`` fault's."""
        return sample_rate_hz * (1.0 + self.clock_ppm * 1e-6)

    def output_delay_s(self, hardware_channel: int) -> float:
        """Extra delay of a card channel's output: the ``skew`` fault delays the second (V), the
        ``cable`` fault both."""
        return self.cable_s + (self.skew_s if hardware_channel == 1 else 0.0)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """Faults from ``--inject`` strings such as ``phase-jump=2deg`` (see module doc)."""
        values: dict[str, float] = {}
        for spec in specs:
            m = _SPEC.match(spec)
            unit = (m.group(3) or "").lower() if m else ""
            if not m or unit not in _UNITS[m.group(1).lower()]:
                raise RigConfigError(
                    f"--inject {spec!r}: expected phase-jump=<x>deg, wrap-delta=<cycles>, amp-error=<x>dB, chirp-rate=<x>%, skew=<x>ns, "
                    "clock=<x>ppm or cable=<x>ns",
                    value=spec,
                )
            kind, value = m.group(1).lower(), float(m.group(2))
            key = {
                "phase-jump": "phase_jump_deg",
                "wrap-delta": "wrap_delta_cycles",
                "amp-error": "amp_error_db",
                "chirp-rate": "chirp_rate_rel",
                "skew": "skew_s",
                "clock": "clock_ppm",
                "cable": "cable_s",
            }[kind]
            values[key] = value / 100 if kind == "chirp-rate" else value * 1e-9 if kind in ("skew", "cable") else value
        return cls(**values)

    def describe(self) -> list[str]:
        """The faults in ``--inject`` notation."""
        out = []
        if self.phase_jump_deg:
            out.append(f"phase-jump={self.phase_jump_deg:g}deg")
        if self.wrap_delta_cycles:
            out.append(f"wrap-delta={self.wrap_delta_cycles:g}")
        if self.amp_error_db:
            out.append(f"amp-error={self.amp_error_db:g}dB")
        if self.chirp_rate_rel:
            out.append(f"chirp-rate={self.chirp_rate_rel * 100:g}%")
        if self.skew_s:
            out.append(f"skew={self.skew_s * 1e9:g}ns")
        if self.clock_ppm:
            out.append(f"clock={self.clock_ppm:g}ppm")
        if self.cable_s:
            out.append(f"cable={self.cable_s * 1e9:g}ns")
        return out

    # ------------------------------------------------------------------ segment faults

    def _perturb(self, kind: str, seg: Segment, fs: float) -> Segment:
        def span(s: ToneSpan) -> ToneSpan:
            if kind == "phase-jump":
                return replace(s, phase0_cycles=((s.phase0_cycles or 0.0) + self.phase_jump_deg / 360.0) % 1.0)
            if kind == "wrap-delta" and s.constant:
                df = self.wrap_delta_cycles * fs / seg.n_samples
                return replace(s, f0_hz=s.f0_hz + df, f1_hz=s.f1_hz + df)
            if kind == "chirp-rate" and s.f0_hz != s.f1_hz:
                return replace(s, f1_hz=s.f0_hz + (s.f1_hz - s.f0_hz) * (1.0 + self.chirp_rate_rel))
            return s

        tracks = tuple(replace(t, pieces=tuple(replace(p, tones=tuple(span(s) for s in p.tones)) for p in t.pieces)) for t in seg.tracks)
        return replace(seg, tracks=tracks)

    def apply(
        self, program: CompiledSequenceProgram, quantized: QuantizedIR, targets: Mapping[str, str], *, gain: float, clip: float, full_scale: int
    ) -> CompiledSequenceProgram:
        """``program`` with the segment faults applied to their ``targets`` (fault kind -> segment
        name); kinds without a target, or not injected, leave the program alone."""
        active = {"phase-jump": self.phase_jump_deg, "wrap-delta": self.wrap_delta_cycles, "chirp-rate": self.chirp_rate_rel}
        slots = list(program.segments)
        for kind, name in targets.items():
            if not active.get(kind):
                continue
            index = next((i for i, s in enumerate(quantized.segments) if s.name == name), None)
            if index is None:
                raise RigConfigError(f"fault {kind}: no segment {name!r} in the program", value=name)
            seg = self._perturb(kind, quantized.segments[index], quantized.sample_rate_hz)
            result = synthesize_segment(seg, quantized, gain=gain, clip=clip, full_scale=full_scale)  # its markers as compiled
            slot = quantized.segment_slot[index]
            old = slots[slot]
            slots[slot] = CompiledSegment(old.name, result.data, f"{old.digest}+{kind}", old.names, result.clipped)
        return replace(program, segments=tuple(slots))
