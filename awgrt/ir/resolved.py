"""Resolved IR: *what you mean*, in whole samples at one sample rate.

Every time is an int64 sample count, every tone has a program-wide identity (``tone`` id) so its
phase can be followed across segments, and every segment is, per logical channel, a contiguous
list of :class:`Piece` s. A piece is a stretch of samples over which each of its tones follows one
smooth trajectory (:class:`ToneSpan`): frequency f0 -> f1 with a shape, amplitude a0 -> a1 with a
shape. Tone sets change only between pieces.

The same segment types carry the quantized IR, where ``ToneSpan.phase0_cycles`` is filled in.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np

from ..calibration import AODCalibration, PositionCalibration
from ..errors import ProgramError
from .digest import digest_of
from .intent import IntentIR
from .shapes import FREQ_SHAPES, amplitude_profile


@dataclass(frozen=True)
class Optical:
    """A tone on an AOD-calibrated channel: the optical powers asked at the span's ends
    (fractions of the calibration's maximum) and the calibration. The span's ``a0``/``a1`` are the
    RF amplitudes at its ends; in between (and wherever the frequency moves) the RF amplitude is
    ``calibration.rf_amplitude(f(u), p(u))``, p following the span's amplitude shape from ``p0``
    to ``p1``: the optical power is what was asked at every sample."""

    p0: float
    p1: float
    calibration: AODCalibration


_D = TypeVar("_D")


def copy_with(obj: _D, **changes: object) -> _D:
    """A copy of the frozen dataclass ``obj`` with some fields changed, without running its
    ``__init__`` (these classes check nothing there): a scan point re-phases every span, and a
    frozen dataclass's ``__init__`` costs several times this. Only fields are copied (never a
    remembered property, which the change may alter)."""
    cls: type = type(obj)
    new: _D = object.__new__(cls)
    state = dict(obj.__dict__)
    names = _field_names(cls)
    if len(state) > len(names):
        state = {name: state[name] for name in names}
    state.update(changes)
    object.__setattr__(new, "__dict__", state)
    return new


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class ToneSpan:
    """One tone over one piece. Frequencies in Hz, amplitudes in fractions of full scale,
    ``phase0_cycles`` the phase at the piece start in cycles (None until the phase stage),
    ``amp_param`` the amplitude shape's parameter (``"exp_tau"``: the ramp's length over its time
    constant; see :func:`awgrt.ir.shapes.span_amp_kind`), ``optical`` the asked optical powers
    on an AOD-calibrated channel (:class:`Optical`; None: the amplitudes are RF as asked)."""

    tone: int
    f0_hz: float
    f1_hz: float
    freq_kind: str
    a0: float
    a1: float
    amp_kind: str
    phase0_cycles: float | None = None
    amp_param: float = 0.0
    optical: Optical | None = None

    @property
    def constant(self) -> bool:
        return self.f0_hz == self.f1_hz and self.a0 == self.a1 and (self.optical is None or self.optical.p0 == self.optical.p1)

    def frequency_at(self, u: np.ndarray) -> np.ndarray:
        """Frequency (Hz) at normalised times ``u`` of the span."""
        if self.f0_hz == self.f1_hz:
            return np.full_like(u, self.f0_hz, dtype=np.float64)
        return self.f0_hz + (self.f1_hz - self.f0_hz) * FREQ_SHAPES[self.freq_kind].progress(u)

    def amplitude_at(self, u: np.ndarray) -> np.ndarray:
        """RF amplitude (fraction of full scale) at normalised times ``u``: the shape between the
        ends, or on a calibrated channel the RF amplitude of the asked power at the frequency of
        that instant (see :class:`Optical`)."""
        u = np.asarray(u, dtype=np.float64)
        if self.optical is None:
            return amplitude_profile(self.a0, self.a1, self.amp_kind, u, self.amp_param)
        return self.optical_rf_at(u)[0]

    def optical_rf_at(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """On a calibrated channel: the RF amplitude at normalised times ``u`` that gives the asked
        optical power at that instant's frequency, and where it was clipped below saturation."""
        o = self.optical
        assert o is not None, "optical_rf_at is for spans of a calibrated channel"
        return o.calibration.rf_amplitude(self.frequency_at(u), self.power_at(u))

    def power_at(self, u: np.ndarray) -> np.ndarray:
        """On a calibrated channel: the optical power asked at normalised times ``u`` (fraction of
        the calibration's maximum), which the RF amplitude of :meth:`optical_rf_at` gives."""
        o = self.optical
        assert o is not None, "power_at is for spans of a calibrated channel"
        u = np.asarray(u, dtype=np.float64)
        if self.amp_kind == "adiabatic":  # the trap frequency goes as sqrt(P): 1/sqrt(P) follows the smoothstep
            return amplitude_profile(math.sqrt(o.p0), math.sqrt(o.p1), self.amp_kind, u, self.amp_param) ** 2
        return amplitude_profile(o.p0, o.p1, self.amp_kind, u, self.amp_param)

    def with_phase(self, phase0_cycles: float) -> ToneSpan:
        """This span starting at ``phase0_cycles`` (a faster ``dataclasses.replace``)."""
        return copy_with(self, phase0_cycles=phase0_cycles)

    def with_freqs(self, f0_hz: float, f1_hz: float, freq_kind: str) -> ToneSpan:
        """This span moving from ``f0_hz`` to ``f1_hz`` (itself when nothing changes)."""
        if (f0_hz, f1_hz, freq_kind) == (self.f0_hz, self.f1_hz, self.freq_kind):
            return self
        return ToneSpan(self.tone, f0_hz, f1_hz, freq_kind, self.a0, self.a1, self.amp_kind, self.phase0_cycles, self.amp_param, self.optical)


@dataclass(frozen=True)
class Piece:
    """Samples [start, start + n) of a channel in a segment; ``op`` names what made it."""

    start: int
    n: int
    tones: tuple[ToneSpan, ...]
    op: str

    @property
    def stop(self) -> int:
        return self.start + self.n

    @functools.cached_property
    def constant(self) -> bool:
        return all(t.constant for t in self.tones)

    def with_tones(self, tones: tuple[ToneSpan, ...]) -> Piece:
        """This piece with other spans (itself when they are the same objects)."""
        if len(tones) == len(self.tones) and all(a is b for a, b in zip(tones, self.tones)):
            return self
        return copy_with(self, tones=tones)


@dataclass(frozen=True)
class ChannelTrack:
    """One logical channel across one segment: pieces that tile [0, segment length)."""

    channel: str
    pieces: tuple[Piece, ...]

    @property
    def entry(self) -> tuple[ToneSpan, ...]:
        return self.pieces[0].tones

    @property
    def exit(self) -> tuple[ToneSpan, ...]:
        return self.pieces[-1].tones

    @functools.cached_property
    def constant(self) -> bool:
        """Same tones, frequencies and amplitudes from start to end."""
        first = [(t.tone, t.f0_hz, t.a0) for t in self.pieces[0].tones]
        return all(p.constant and [(t.tone, t.f0_hz, t.a0) for t in p.tones] == first for p in self.pieces)


@dataclass(frozen=True)
class Segment:
    """A segment in samples. ``manual_phases`` maps channel -> start phases (rad) for
    ``phase_mode='manual'``. ``digest`` is filled by quantize (None before)."""

    name: str
    mode: str
    loops: int
    phase_mode: str
    n_samples: int
    tracks: tuple[ChannelTrack, ...]
    manual_phases: Mapping[str, tuple[float, ...]] | None = None
    digest: str | None = None
    #: Multi-purpose lines this segment marks, high for its first ``marker_samples`` samples of each pass.
    markers: tuple[str, ...] = ()
    marker_samples: int = 0

    def with_tracks(self, tracks: tuple[ChannelTrack, ...]) -> Segment:
        """This segment with other tracks and no digest (a faster ``dataclasses.replace``)."""
        return copy_with(self, tracks=tracks, digest=None)

    @property
    def looped(self) -> bool:
        """True when the card may replay this segment back to back with itself."""
        return self.mode == "wait_trig" or (self.mode == "loop_n" and self.loops > 1)

    def track(self, channel: str) -> ChannelTrack:
        for t in self.tracks:
            if t.channel == channel:
                return t
        raise ProgramError(f"segment {self.name!r} has no channel {channel!r} (channels: {[t.channel for t in self.tracks]})", op="track", value=channel)

    def with_digest(self, sample_rate_hz: float, hardware: Mapping[str, int], marker_lines: tuple[str, ...] = ()) -> Segment:
        """This segment with ``digest`` set from exactly what determines its samples: length,
        sample rate, per hardware channel every piece's tone trajectories and start phases, and
        the program's marker lines with this segment's markers (they take bits of channel 0) (not
        names, tone ids, modes or loop counts, so equal digests mean equal samples). Numbers are
        hashed as their exact IEEE doubles (a scan point re-digests every segment, so this is kept
        cheap)."""
        h = hashlib.sha256(b"segment\x00")
        h.update(struct.pack("<dq", sample_rate_hz, self.n_samples))
        if marker_lines:
            h.update(f"markers {marker_lines} {self.markers} {self.marker_samples};".encode())
        for hw, track in sorted(((hardware[t.channel], t) for t in self.tracks), key=lambda x: x[0]):
            h.update(struct.pack("<qq", hw, len(track.pieces)))
            for p in track.pieces:
                h.update(struct.pack("<qqq", p.start, p.n, len(p.tones)))
                for s in p.tones:
                    phase = math.nan if s.phase0_cycles is None else s.phase0_cycles
                    h.update(struct.pack("<6d?", s.f0_hz, s.f1_hz, s.a0, s.a1, phase, s.amp_param, s.phase0_cycles is None))
                    h.update(f"{s.freq_kind},{s.amp_kind};".encode())
                    if s.optical is not None:
                        h.update(struct.pack("<2d", s.optical.p0, s.optical.p1) + s.optical.calibration.digest.encode())
        return copy_with(self, digest=h.hexdigest())


@dataclass(frozen=True)
class ToneOrigin:
    """Where a tone id was born and with which phase: ``phase_rad`` explicit, or None with an
    ``auto_group`` shared by the tones whose phases are optimised together."""

    tone: int
    channel: str
    segment: str
    op: str
    phase_rad: float | None
    auto_group: int | None = None


@dataclass(frozen=True)
class Note:
    """One entry of a stage report: a rounding, padding, snapping or mapping decision."""

    kind: str
    segment: str | None
    detail: str
    requested: float | int | None = None
    realised: float | int | None = None
    channel: str | None = None


@dataclass(frozen=True)
class ResolvedIR:
    """What you mean: the program in whole samples at ``sample_rate_hz`` (see module doc).

    ``notes`` records every time that did not land on a whole sample.
    """

    sample_rate_hz: float
    logical_channels: tuple[str, ...]
    segments: tuple[Segment, ...]
    tone_origins: tuple[ToneOrigin, ...]
    last_step: str
    #: The program this was resolved from (its digest is :attr:`intent_digest`).
    intent: IntentIR = field(repr=False, compare=False)
    notes: tuple[Note, ...] = ()
    #: (channel, position calibration) pairs: where a channel's tones put their tweezers, in um
    #: (the plots draw those channels in um).
    positions: tuple[tuple[str, PositionCalibration], ...] = ()

    @property
    def intent_digest(self) -> str:
        """Content digest of the program this was resolved from (made when first asked for)."""
        return self.intent.digest

    def plot(self, *, fig=None, path=None):
        """Each tone's frequency and amplitude along the step walk, per channel
        (:func:`awgrt.plot.plot_program`): a matplotlib Figure, saved as PNG to ``path`` if given."""
        from ..plot import plot_program

        return plot_program(self, fig=fig, path=path)

    @property
    def n_samples(self) -> int:
        """Samples of one pass through every segment in program order."""
        return sum(s.n_samples for s in self.segments)

    @property
    def duration_s(self) -> float:
        """Duration of one pass through every segment in program order, in seconds."""
        return self.n_samples / self.sample_rate_hz

    def origin(self, tone: int) -> ToneOrigin:
        return self.tone_origins[tone]

    @property
    def digest(self) -> str:
        return digest_of("resolved", self)
