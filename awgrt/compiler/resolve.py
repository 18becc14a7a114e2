"""Resolve: turn an :class:`IntentIR` (seconds) into a :class:`ResolvedIR` (whole samples).

The one rounding rule
---------------------
Within a segment, each channel's timeline is a running sum of op times starting at 0. Every
boundary time t (seconds from the segment start) becomes the sample index ``round(t * fs)``,
computed in exact rational arithmetic on the binary values of t and fs (``fractions.Fraction``),
to the nearest sample with exact ties going to the even sample. A piece lasts from its start
boundary to its end boundary, so rounding never accumulates along a segment. 40 us at 625 MS/s is
exactly 25000 samples (the float product 25000.000000000004 never appears). Any op whose realised
length or end differs from the requested one by more than 1e-6 sample is listed in ``ResolvedIR.notes``;
an op that rounds to no sample is an error.

Resolve also walks the tone state through the program (tone identities, frequencies and
amplitudes at every piece boundary) and raises on everything that needs that state or the sample
rate: tone indices out of range, frequencies at or above fs/2, ramps of an unsupported shape.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from fractions import Fraction
from types import MappingProxyType

import numpy as np

from ..calibration import AODCalibration
from ..errors import CalibrationError, FrequencyError, ProgramError, TimingError
from ..ir.intent import (
    MARKER_WIDTH_S,
    AddTone,
    Hold,
    IntentIR,
    IntentSegment,
    Move,
    Op,
    RampAmp,
    RemapFromDef,
    RemoveTones,
    Sync,
    UseDef,
)
from ..ir.resolved import ChannelTrack, Note, Optical, Piece, ResolvedIR, Segment, ToneOrigin, ToneSpan
from ..ir.shapes import CONSTANT, check_amp_shape, span_amp_kind
from .ring import how_it_differs

#: A realised op length further than this from the requested one (in samples) is reported.
ROUNDING_REPORT_SAMPLES = 1e-6


#: Sample counts are int64; no segment may end later than this (cards hold ~2**31 samples).
MAX_SAMPLES = 2**62


def _ratio(x: float | Fraction) -> tuple[int, int]:
    """The exact value of a float or Fraction as (numerator, denominator)."""
    return (x.numerator, x.denominator) if type(x) is Fraction else float(x).as_integer_ratio()


def time_to_samples(time_s: float | Fraction, sample_rate_hz: float) -> int:
    """The documented rounding rule: nearest whole sample of the exact product, ties to even
    (integer arithmetic on the exact values, as ``round(Fraction(time_s) * Fraction(fs))``)."""
    tn, td = _ratio(time_s)
    fn, fd = _ratio(sample_rate_hz)
    q, r = divmod(tn * fn, td * fd)
    twice, den = 2 * r, td * fd
    return q + 1 if twice > den or (twice == den and q % 2) else q


#: Segments already resolved, keyed by everything that decides them (oldest dropped first).
_SEGMENT_CACHE: dict[tuple, tuple] = {}
_SEGMENT_CACHE_SIZE = 1024


@dataclass
class _Tone:
    """A tone's mutable state during the walk."""

    tone: int
    freq_hz: float
    amp: float


@dataclass
class _RawPiece:
    t0: Fraction
    t1: Fraction
    spans: tuple[ToneSpan, ...]
    op: str
    requested_s: float | None  # None for the implicit hold to the segment end


class _Walker:
    """Walks the intent program, holding each channel's tones and timeline."""

    def __init__(self, intent: IntentIR, sample_rate_hz: float) -> None:
        self.intent = intent
        self.fs = sample_rate_hz
        self.nyquist = sample_rate_hz / 2.0
        self.tones: dict[str, list[_Tone]] = {ch: [] for ch in intent.logical_channels}
        self.origins: list[ToneOrigin] = []
        self.next_group = 0
        self.notes: list[Note] = []
        self.calibrations = dict(intent.calibrations)  # channel -> AOD calibration
        self._segment: str | None = None
        self._op: str | None = None

    # ------------------------------------------------------------------ helpers

    def _check_nyquist(self, f: float, seg: str, op: str, what: str = "frequency") -> None:
        if not 0.0 < f < self.nyquist:
            raise FrequencyError(f"{what} {f:.9g} Hz is outside (0, fs/2 = {self.nyquist:.9g} Hz)", segment=seg, op=op, value=f)

    def _new_tone(self, ch: str, f: float, a: float, seg: str, op: str, phase: float | None, group: int | None) -> _Tone:
        self._check_nyquist(f, seg, op)
        tone = _Tone(len(self.origins), f, a)
        self.origins.append(ToneOrigin(tone.tone, ch, seg, op, phase, group))
        return tone

    def _indices(self, ch: str, idxs: tuple[int, ...] | None, seg: str, op: str) -> list[int]:
        n = len(self.tones[ch])
        if n == 0:
            raise ProgramError(f"channel {ch!r} has no tones here (use_def or add_tone first)", segment=seg, op=op)
        if idxs is None:
            return list(range(n))
        bad = [i for i in idxs if i >= n]
        if bad:
            raise ProgramError(f"tone indices {bad} out of range: channel {ch!r} has {n} tones", segment=seg, op=op, value=bad)
        return list(idxs)

    @staticmethod
    def _per_index(values: tuple[float, ...], idxs: list[int], what: str, seg: str, op: str) -> list[float]:
        """One value per index: a single value is shared, otherwise the counts must match."""
        if len(values) == 1:
            return list(values) * len(idxs)
        if len(values) != len(idxs):
            raise ProgramError(
                f"{what} has {len(values)} values for {len(idxs)} tones {idxs}: give one value, or one per tone", segment=seg, op=op, value=list(values)
            )
        return list(values)

    def _spans(self, ch: str, targets: dict[int, tuple[float, float]], freq_kind: str, amp_kind: str, amp_param: float = 0.0) -> tuple[ToneSpan, ...]:
        """Spans for all tones of ``ch``; tones listed in ``targets`` go to (f1, a1). On a
        calibrated channel the amplitudes are optical powers: the span records them
        (:class:`Optical`) with the RF amplitudes at its ends."""
        spans = []
        cal = self.calibrations.get(ch)
        for i, t in enumerate(self.tones[ch]):
            f1, a1 = targets.get(i, (t.freq_hz, t.amp))
            ramps = a1 != t.amp
            span = ToneSpan(
                t.tone,
                t.freq_hz,
                f1,
                freq_kind if f1 != t.freq_hz else CONSTANT,
                t.amp,
                a1,
                amp_kind if ramps else CONSTANT,
                None,
                amp_param if ramps else 0.0,
            )
            if cal is not None:
                span = self._calibrated(span, cal, ch, i)
            spans.append(span)
            t.freq_hz, t.amp = f1, a1
        return tuple(spans)

    def _note_calibrated(self, seg: str, track: ChannelTrack) -> None:
        """The report's line for a calibrated channel in a segment: asked powers and the RF
        amplitudes that give them."""
        spans = [s for p in track.pieces for s in p.tones]
        if not spans:
            return
        u = np.linspace(0.0, 1.0, 33)
        powers = [x for s in spans if s.optical is not None for x in (s.optical.p0, s.optical.p1)]
        rf = np.concatenate([s.amplitude_at(u) if not s.constant else np.array([s.a0]) for s in spans])
        cal = self.calibrations[track.channel]
        self.notes.append(
            Note(
                "calibrated",
                seg,
                f"channel {track.channel!r}: optical power {min(powers):.4g}..{max(powers):.4g} of the calibrated maximum -> "
                f"RF {np.min(rf):.4g}..{np.max(rf):.4g} of full scale (calibration {cal.digest[:12]}, {cal.band_hz[0] / 1e6:g}..{cal.band_hz[1] / 1e6:g} MHz)",
                channel=track.channel,
            )
        )

    def _calibrated(self, span: ToneSpan, cal: AODCalibration, ch: str, index: int) -> ToneSpan:
        """``span`` (amplitudes: optical powers) with RF amplitudes at its ends and its powers
        kept; a power the AOD cannot give below saturation somewhere along it is noted (clipped)."""
        optical = Optical(span.a0, span.a1, cal)
        try:
            (rf0, rf1), clipped = cal.rf_amplitude([span.f0_hz, span.f1_hz], [span.a0, span.a1])
        except CalibrationError as exc:
            raise CalibrationError(f"channel {ch!r} tone {index}: {exc.detail}", segment=self._segment, op=self._op, value=exc.value) from None
        out = replace(span, a0=float(rf0), a1=float(rf1), optical=optical)
        if not out.constant:  # along a move or ramp: the RF amplitude of every instant
            clipped = clipped | out.optical_rf_at(np.linspace(0.0, 1.0, 257))[1].any()
        if np.any(clipped):
            self.notes.append(
                Note(
                    "saturation",
                    self._segment,
                    f"{self._op}: channel {ch!r} tone {index} asks power {span.a0:.4g} -> {span.a1:.4g} at {span.f0_hz / 1e6:.6g} -> "
                    f"{span.f1_hz / 1e6:.6g} MHz, beyond what the AOD gives below saturation there: clipped at {cal.safety:g} v0(f)",
                    channel=ch,
                )
            )
        return out

    def _jump(self, ch: str, targets: dict[int, tuple[float, float]], seg: str, op: str) -> None:
        """An op of time 0: the tones in ``targets`` jump to (f, a) at this point (phase
        continuous), noted as a deliberate discontinuity."""
        for i, (f1, a1) in sorted(targets.items()):
            t = self.tones[ch][i]
            changes = []
            if f1 != t.freq_hz:
                changes.append(f"frequency {t.freq_hz:.9g} -> {f1:.9g} Hz")
            if a1 != t.amp:
                changes.append(f"amplitude {t.amp:.6g} -> {a1:.6g}")
            if changes:
                self.notes.append(Note("instant", seg, f"{op}: tone {i} (id {t.tone}) jumps, {' and '.join(changes)} (time=0: as asked)", channel=ch))
            t.freq_hz, t.amp = f1, a1

    # ------------------------------------------------------------------ segment walk

    def _state(self) -> tuple:
        return (tuple((ch, tuple((t.tone, t.freq_hz, t.amp) for t in ts)) for ch, ts in self.tones.items()), len(self.origins), self.next_group)

    def remembered_segment(self, seg: IntentSegment) -> Segment:
        """:meth:`segment`, or what it made before from the same segment, program definitions,
        sample rate and walk state (tones, ids): a scan point resolves only what it changed."""
        try:
            key = (self.fs, self.intent.logical_channels, self.intent.definitions, self.intent.calibrations, self.intent.positions, seg, self._state())
            hash(key)
        except TypeError:  # pragma: no cover - every intent value is hashable
            return self.segment(seg)
        found = _SEGMENT_CACHE.get(key)
        if found is None:
            n_origins, n_notes = len(self.origins), len(self.notes)
            made = self.segment(seg)
            if len(_SEGMENT_CACHE) >= _SEGMENT_CACHE_SIZE:
                _SEGMENT_CACHE.pop(next(iter(_SEGMENT_CACHE)))
            _SEGMENT_CACHE[key] = (made, tuple(self.origins[n_origins:]), tuple(self.notes[n_notes:]), self._state())
            return made
        made, origins, notes, (tones, _, next_group) = found
        self.origins += origins
        self.notes += notes
        self.tones = {ch: [_Tone(*t) for t in ts] for ch, ts in tones}
        self.next_group = next_group
        return made

    def segment(self, seg: IntentSegment) -> Segment:
        name = seg.name
        cursor = {ch: Fraction(0) for ch in self.intent.logical_channels}
        raw: dict[str, list[_RawPiece]] = {ch: [] for ch in self.intent.logical_channels}

        def timed(ch: str, time_s: float | Fraction, spans: tuple[ToneSpan, ...], op: str, requested: float | None) -> None:
            t0 = cursor[ch]
            t1 = t0 + (time_s if type(time_s) is Fraction else Fraction.from_float(float(time_s)))
            raw[ch].append(_RawPiece(t0, t1, spans, op, requested))
            cursor[ch] = t1

        def sync(op: str) -> None:
            end = max(cursor.values())
            for ch in cursor:
                if cursor[ch] < end:
                    timed(ch, end - cursor[ch], self._spans(ch, {}, CONSTANT, CONSTANT), op, None)

        self._segment = name
        for i, op in enumerate(seg.ops):
            self._op = op.label(i)
            self._apply(seg, op, op.label(i), timed, sync)
        self._op = "(hold to segment end)"
        sync("(hold to segment end)")

        total = max(cursor.values())
        n_total = time_to_samples(total, self.fs)
        tracks = tuple(ChannelTrack(ch, self._to_samples(name, raw[ch])) for ch in self.intent.logical_channels)
        for track in tracks:
            if track.channel in self.calibrations:
                self._note_calibrated(name, track)
        manual = None
        if seg.phase_mode == "manual":
            manual = MappingProxyType(dict(seg.phases or {}))
            for ch, phases in manual.items():
                n_entry = len(next(t for t in tracks if t.channel == ch).entry)
                if len(phases) != n_entry:
                    raise ProgramError(
                        f"manual phases for channel {ch!r} give {len(phases)} values but it starts with {n_entry} tones",
                        segment=name,
                        value=phases,
                    )
        marker_n = 0
        if seg.markers:  # high from the start of each pass, for marker_s (default 1 us): synthesis stops it at the segment's end
            width = MARKER_WIDTH_S if seg.marker_s is None else seg.marker_s
            marker_n = max(1, time_to_samples(Fraction.from_float(float(width)), self.fs))
        return Segment(name, seg.mode, seg.loops, seg.phase_mode, n_total, tracks, manual, markers=seg.markers, marker_samples=marker_n)

    def _to_samples(self, seg: str, pieces: list[_RawPiece]) -> tuple[Piece, ...]:
        out = []
        fn, fd = _ratio(self.fs)
        t_prev, n_prev = None, 0
        for p in pieces:
            n0 = n_prev if p.t0 is t_prev else time_to_samples(p.t0, self.fs)  # pieces follow on: the last one's end
            n1 = time_to_samples(p.t1, self.fs)
            t_prev, n_prev = p.t1, n1
            if n1 > MAX_SAMPLES:
                raise TimingError(
                    f"ends {float(p.t1):.6g} s after the segment start, a {len(str(n1))}-digit number of samples at {self.fs:g} S/s: "
                    f"beyond the {MAX_SAMPLES:.3g} "
                    f"samples any segment can count (no card holds a fraction of that)",
                    segment=seg,
                    op=p.op,
                    value=p.requested_s,
                )
            n = n1 - n0
            if p.requested_s is not None:
                wanted = float(p.requested_s) * self.fs  # the exact product rounded once, as float(Fraction * Fraction)
                if n <= 0:
                    raise TimingError(
                        f"time={p.requested_s!r} s is {wanted:.3g} samples at {self.fs:g} S/s and rounds to none",
                        segment=seg,
                        op=p.op,
                        value=p.requested_s,
                    )
                end = (p.t1.numerator * fn) / (p.t1.denominator * fd)  # the exact product rounded once
                if abs(n - wanted) > ROUNDING_REPORT_SAMPLES or abs(n1 - end) > ROUNDING_REPORT_SAMPLES:
                    self.notes.append(Note("rounding", seg, f"{p.op}: {wanted:.6f} samples realised as {n}, ending at sample {n1} for {end:.6f}", wanted, n))
            if n > 0:
                out.append(Piece(n0, n, p.spans, p.op))
        return tuple(out)

    def _apply(self, seg: IntentSegment, op: Op, label: str, timed, sync) -> None:
        name = seg.name
        if isinstance(op, Sync):
            sync(label)
        elif isinstance(op, Hold):
            if op.channel is None:
                sync(label)
                for ch in self.intent.logical_channels:
                    timed(ch, op.time_s, self._spans(ch, {}, CONSTANT, CONSTANT), label, op.time_s)
            else:
                timed(op.channel, op.time_s, self._spans(op.channel, {}, CONSTANT, CONSTANT), label, op.time_s)
        elif isinstance(op, Move):
            idxs = self._indices(op.channel, op.idxs, name, label)
            tones = self.tones[op.channel]
            targets = {}
            if op.dx_um is not None:  # displacements: each tone to the frequency of its position plus dx
                pos = self.intent.position(op.channel)
                assert pos is not None  # the op's own check asks for it
                shifts = []
                for i, dx in zip(idxs, self._per_index(op.dx_um, idxs, "dx_um", name, label)):
                    try:
                        f_to = float(pos.frequency_hz(pos.position_um(tones[i].freq_hz) + dx))
                    except CalibrationError as exc:
                        raise CalibrationError(f"tone {i}: {exc.detail}", segment=name, op=label, value=dx) from None
                    shifts.append(f_to - tones[i].freq_hz)
            else:
                shifts = self._per_index(op.df_hz, idxs, "df", name, label)
            for i, df in zip(idxs, shifts):
                f1 = tones[i].freq_hz + df
                self._check_nyquist(f1, name, label, what=f"end frequency of tone {i} (df={df:g} Hz)")
                targets[i] = (f1, tones[i].amp)
            if op.time_s == 0:
                self._jump(op.channel, targets, name, label)
            else:
                timed(op.channel, op.time_s, self._spans(op.channel, targets, op.kind, CONSTANT), label, op.time_s)
        elif isinstance(op, RampAmp):
            idxs = self._indices(op.channel, op.idxs, name, label)
            tones = self.tones[op.channel]
            targets = {}
            for i, a1 in zip(idxs, self._per_index(op.amps, idxs, "amps", name, label)):
                if op.time_s != 0:
                    try:
                        check_amp_shape(op.kind, tones[i].amp, a1, op.tau_s)
                    except ProgramError as exc:
                        raise type(exc)(f"tone {i}: {exc.detail}", segment=name, op=label, value=exc.value) from None
                targets[i] = (tones[i].freq_hz, a1)
            if op.time_s == 0:
                self._jump(op.channel, targets, name, label)
            else:
                kind, param = span_amp_kind(op.kind, op.tau_s, op.time_s)
                timed(op.channel, op.time_s, self._spans(op.channel, targets, CONSTANT, kind, param), label, op.time_s)
        elif isinstance(op, RemapFromDef):
            target = self.intent.definition(op.target_def)
            dst = op.targets(self.intent)
            idxs = self._indices(op.channel, op.src, name, label)
            targets = {i: (target.freqs_hz[j], target.amps[j]) for i, j in zip(idxs, dst)}
            for i, (f1, _) in targets.items():
                self._check_nyquist(f1, name, label, what=f"target frequency of tone {i}")
            dropped = [i for i in range(len(self.tones[op.channel])) if i not in targets] if op.dst == "all" else []
            for i in dropped:  # tones no source goes from: faded out with the move, then dropped
                targets[i] = (self.tones[op.channel][i].freq_hz, 0.0)
            if op.time_s == 0:
                self._jump(op.channel, targets, name, label)
            else:
                timed(op.channel, op.time_s, self._spans(op.channel, targets, op.kind, op.kind), label, op.time_s)
            if op.dst == "all":
                self.tones[op.channel] = [self.tones[op.channel][i] for i in idxs]  # in the target's order
        elif isinstance(op, UseDef):
            d = self.intent.definition(op.definition)
            group = None
            if d.phases == "auto":
                group = self.next_group
                self.next_group += 1
            phases: list[float | None] = [None] * len(d.freqs_hz) if isinstance(d.phases, str) else list(d.phases)
            self.tones[op.channel] = [self._new_tone(op.channel, f, a, name, label, p, group) for f, a, p in zip(d.freqs_hz, d.amps, phases)]
        elif isinstance(op, AddTone):
            tones = self.tones[op.channel]
            at = len(tones) if op.index is None else op.index
            if at > len(tones):
                raise ProgramError(
                    f"at={at} is past the end: channel {op.channel!r} has {len(tones)} tones (at <= {len(tones)})", segment=name, op=label, value=at
                )
            tones.insert(at, self._new_tone(op.channel, op.freq_hz, op.amp, name, label, op.phase_rad, None))
        elif isinstance(op, RemoveTones):
            drop = set(self._indices(op.channel, op.idxs, name, label))
            self.tones[op.channel] = [t for i, t in enumerate(self.tones[op.channel]) if i not in drop]
        else:  # pragma: no cover - every op class is handled above
            raise ProgramError(f"unsupported op {op!r}", segment=name, op=label)


def resolve_intent_ir(intent: IntentIR, sample_rate_hz: float) -> ResolvedIR:
    """Resolve ``intent`` at ``sample_rate_hz`` (see module docstring for the rounding rule)."""
    if isinstance(sample_rate_hz, bool) or not isinstance(sample_rate_hz, numbers.Real) or not math.isfinite(sample_rate_hz) or sample_rate_hz <= 0:
        raise TimingError(f"sample_rate_hz={sample_rate_hz!r} must be finite and > 0", value=sample_rate_hz)
    sample_rate_hz = float(sample_rate_hz)
    walker = _Walker(intent, sample_rate_hz)
    segments = tuple(walker.remembered_segment(s) for s in intent.segments)
    last_step, notes = intent.last_step, list(walker.notes)
    if last_step == "auto":
        why = how_it_differs(segments)
        last_step = "ring" if why is None else "end"
        if why is None:
            detail = "ring: the program comes back to its start, so the card plays it again and again (.last_step('end') stops after one pass)"
        else:
            detail = f"END: the program does not come back to its start ({why}), so the card stops after its last step (.last_step('ring') replays it)"
        notes.append(Note("last_step", segments[-1].name, detail))
    return ResolvedIR(
        sample_rate_hz=sample_rate_hz,
        logical_channels=intent.logical_channels,
        segments=segments,
        tone_origins=tuple(walker.origins),
        last_step=last_step,
        intent=intent,
        notes=tuple(notes),
        positions=intent.positions,
    )
