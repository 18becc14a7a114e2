"""Quantize: make a :class:`ResolvedIR` card-legal and fix every tone's phase.

In order:

1. **Channels.** Logical channels map to hardware channels (default: in declaration order,
   0, 1, ...). The card enables the smallest channel count it supports that covers the highest
   mapped channel; unmapped enabled channels play zeros.
2. **Lengths.** Each segment grows to a multiple of the card's granularity (32) and at least the
   minimum for the enabled channel count (384/192/96 for 1/2/4), by holding its last state for the
   extra samples at its end. Segments are never shortened.
3. **Wrap snapping** (:mod:`awgrt.compiler.snap`): tones held constant in looped segments move
   to whole cycles per pass so every wrap is seamless, each by at most fs / (2N) for a segment
   of N samples, keeping the program phase-continuous. Shifts above ``max_snap_hz`` raise
   :class:`~awgrt.errors.QuantizationError`.
4. **Phases** (:mod:`awgrt.compiler.phases`) and the step-graph continuity check. With
   ``last_step="ring"``, tones asked to end the program as they start it are also closed in
   phase at the ring edge (:mod:`awgrt.compiler.ring`).
5. **Slots.** Segments with equal content digests share a memory slot; the slot count is padded
   to what the card needs (a power of two, at least 2), and each segment is checked against the
   slot size. More steps or segments than the card holds, or a segment that does not fit,
   raise :class:`~awgrt.errors.CardLimitError`.

Every change is recorded as a :class:`~awgrt.ir.resolved.Note` in ``QuantizedIR.notes``.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, TypedDict

from .._progress import Progress
from .._warn import warn
from ..card import CARDS, DEFAULT_CARD, CardSpec
from ..errors import CalibrationError, CardLimitError, ProgramError, QuantizationError, SnapWarning, WrapWarning
from ..ir.boundary import Boundary, format_hz
from ..ir.intent import MARKER_LINES, finite_real
from ..ir.quantized import FrequencyStep, QuantizedIR, marker_bit
from ..ir.resolved import Note, ResolvedIR, Segment
from .phases import assign_phases, step_graph_boundaries
from .ring import CLOSE_RING_HZ, close_ring, ring_gaps, ring_tones
from .snap import WARN_SNAP_HZ, Joint, snap_limits, snap_wraps

log = logging.getLogger(__name__)


def _card(card: CardSpec | str | None) -> CardSpec:
    if card is None:
        return CARDS[DEFAULT_CARD]
    if isinstance(card, str):
        return CARDS[card]  # an unknown name: UnknownCardError, with the closest known one
    if not isinstance(card, CardSpec):
        raise ProgramError(f"card={card!r} must be a card name ({', '.join(CARDS)}) or a CardSpec", op="quantize", value=card)
    return card


def map_channels(logical: tuple[str, ...], mapping: Mapping[str, int] | None, card: CardSpec) -> tuple[dict[str, int], int, list[Note]]:
    """Check the logical -> hardware map; return it, the enabled channel count and notes."""
    if mapping is None:
        mapping = {ch: i for i, ch in enumerate(logical)}
    if not isinstance(mapping, Mapping):
        raise ProgramError(
            f"the hardware map {mapping!r} must map logical channel names to hardware channels, e.g. {{'H': 0, 'V': 1}}",
            op="map channels",
            value=mapping,
        )
    mapping = {k: int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v for k, v in mapping.items()}
    unknown = sorted(set(mapping) - set(logical))
    if unknown:
        raise ProgramError(f"hardware map names unknown logical channels {unknown} (declared: {list(logical)})", op="map channels", value=unknown)
    missing = [ch for ch in logical if ch not in mapping]
    if missing:
        raise ProgramError(f"logical channels {missing} have no hardware channel", op="map channels", value=missing)
    for ch, hw in mapping.items():
        if isinstance(hw, bool) or not isinstance(hw, int) or not 0 <= hw < card.physical_channels:
            raise CardLimitError(
                f"logical channel {ch!r} -> hardware channel {hw!r}: {card.name} has channels 0..{card.physical_channels - 1}",
                op="map channels",
                value=hw,
            )
    if len(set(mapping.values())) != len(mapping):
        raise ProgramError(f"two logical channels share a hardware channel: {mapping}", op="map channels", value=mapping)
    n_channels = card.active_channel_count(max(mapping.values()))
    notes = []
    idle = sorted(set(range(n_channels)) - set(mapping.values()))
    if idle:
        notes.append(Note("channels", None, f"{card.name} enables {n_channels} channels; hardware channels {idle} play zeros", len(mapping), n_channels))
    return mapping, n_channels, notes


# ------------------------------------------------------------------------------ slots


def assign_slots(segments: tuple[Segment, ...], card: CardSpec, n_channels: int) -> tuple[tuple[int, ...], int, list[Note]]:
    """Slot per segment (equal digests share), padded slot count, and notes; checks card fit."""
    if len(segments) > card.max_steps:
        raise CardLimitError(f"{len(segments)} steps, but {card.name} holds at most {card.max_steps}", op="steps", value=len(segments))
    by_digest: dict[str, int] = {}
    slot_of = tuple(by_digest.setdefault(s.digest or s.name, len(by_digest)) for s in segments)  # digests are set by now
    distinct = len(by_digest)
    slots = card.slot_count(distinct)
    if slots > card.max_segments:
        raise CardLimitError(
            f"{distinct} distinct segments need {slots} memory slots, but {card.name} holds at most {card.max_segments}",
            op="slots",
            value=distinct,
        )
    notes = []
    if distinct < len(segments):
        first = {slot: i for i, slot in reversed(list(enumerate(slot_of)))}
        shared = [s.name for i, (s, slot) in enumerate(zip(segments, slot_of)) if first[slot] != i]
        notes.append(Note("slots_shared", None, f"segments {shared} repeat earlier ones and share their memory slots", len(segments), distinct))
    if slots != distinct:
        notes.append(Note("slots_padded", None, f"{distinct} distinct segments -> {slots} memory slots", distinct, slots))
    limit = card.max_segment_length(n_channels, slots)
    for s in segments:
        if s.n_samples > limit:
            raise CardLimitError(
                f"{s.n_samples} samples ({s.n_samples * n_channels * 2 / 2**20:.1f} MiB) do not fit a memory slot: "
                f"{card.name} with {n_channels} channels and {slots} slots holds at most {limit} samples per segment",
                segment=s.name,
                value=s.n_samples,
            )
    return slot_of, slots, notes


# ------------------------------------------------------------------------------ entry point


class QuantizeOptions(TypedDict, total=False):
    """The keyword options of :func:`quantize_resolved_ir` (for ``Runtime(quantize_options=...)``)."""

    max_snap_hz: float | Mapping[str, float] | None
    snap: bool
    stretch_wait_trig: float
    stretch_loop_n: float
    joint: Joint
    warn_snap_hz: float | None
    close_ring_hz: float | None


def _fraction(value: Any, name: str) -> float:
    """A stretch fraction: a finite number >= 0."""
    if not finite_real(value) or value < 0:
        raise QuantizationError(f"{name}={value!r} must be a finite number >= 0 (fraction of the segment length)", op="quantize", value=value)
    return float(value)


def _bound(value: Any, name: str) -> float | None:
    """An optional bound in Hz: None, or a number >= 0."""
    if value is None:
        return None
    if not finite_real(value) and value != float("inf") or value < 0:
        raise QuantizationError(f"{name}={value!r} must be None or a number >= 0 (Hz)", op="quantize", value=value)
    return float(value)


def _step_keys(steps: tuple[FrequencyStep, ...]) -> set[tuple[str, str, int]]:
    return {(s.from_segment, s.to_segment, s.tone) for s in steps}


def _check_calibrated_bands(played: tuple[Segment, ...], asked: tuple[Segment, ...]) -> None:
    """Raise :class:`~awgrt.errors.CalibrationError` for a tone of an AOD-calibrated channel that
    wrap snapping or ring closing took outside its calibration's band (it was asked inside):
    naming the segment, the tone, what was asked and what it would play."""
    for seg, pre in zip(played, asked):
        for track in seg.tracks:
            for piece in track.pieces:
                for s in piece.tones:
                    if s.optical is None:
                        continue
                    lo, hi = s.optical.calibration.band_hz
                    out = [f for f in (s.f0_hz, s.f1_hz) if not lo * (1 - 1e-12) <= f <= hi * (1 + 1e-12)]
                    if not out:
                        continue
                    was = [x for t in pre.tracks if t.channel == track.channel for p in t.pieces for x in p.tones if x.tone == s.tone]
                    asked_hz = was[0].f0_hz if was else float("nan")
                    raise CalibrationError(
                        f"channel {track.channel!r} tone #{s.tone}, asked at {asked_hz / 1e6:.6f} MHz, would play at {out[0] / 1e6:.6f} MHz after "
                        f"wrap snapping (whole cycles per pass of the looped segment) or ring closing: outside the calibrated band "
                        f"{lo / 1e6:.6g}..{hi / 1e6:.6g} MHz, where the AOD model is not known; ask it further inside the band (by "
                        f"{abs(out[0] - asked_hz) / 1e3:.1f} kHz or more), hold the looped segment longer (finer grid), or calibrate a wider band",
                        segment=seg.name,
                        op="snap wrap",
                        value=out[0],
                    )


def quantize_resolved_ir(
    resolved: ResolvedIR,
    logical_channel_to_hardware_channel: Mapping[str, int] | None = None,
    card: CardSpec | str | None = None,
    *,
    max_snap_hz: float | Mapping[str, float] | None = None,
    snap: bool = True,
    stretch_wait_trig: float = 0.02,
    stretch_loop_n: float = 0.0,
    joint: Joint = "auto",
    warn_snap_hz: float | None = WARN_SNAP_HZ,
    close_ring_hz: float | None = CLOSE_RING_HZ,
    progress: bool = True,
) -> QuantizedIR:
    """Make ``resolved`` card-legal for ``card`` (default ``M4i.6631-x8``); see module doc.

    Wrap snapping never moves a tone of a looped segment of N samples by more than fs / (2N).
    ``max_snap_hz`` bounds the shift further: one bound in Hz for every segment, or a mapping
    {segment name: Hz}; a larger shift is a :class:`~awgrt.errors.QuantizationError`. Shifts
    above ``warn_snap_hz`` (None: never) also raise a :class:`~awgrt.errors.SnapWarning`.
    ``snap=False`` leaves looped tones alone; their wraps then show as discontinuous in
    ``QuantizedIR.boundaries``. ``stretch_wait_trig`` / ``stretch_loop_n`` let a looped segment
    of that mode grow by up to that fraction beyond its shortest legal length, to the length that
    needs the least snapping (a wait_trig pass only sets how soon a trigger is answered; a loop_n
    pass multiplies into the program's timing, so it does not stretch unless asked). ``joint``
    says how looped holds played back to back are snapped: ``"auto"`` (a shared grid where it
    keeps every tone within its bound and costs no extra shift, else a phase-continuous frequency
    step), ``"step"`` or ``"common"`` (see :mod:`awgrt.compiler.snap`). With ``last_step="ring"``
    a tone asked to end the program as it starts it is closed in phase at the ring edge by a
    min-jerk frequency excursion of at most ``close_ring_hz`` (None: any) in the holds outside
    looped segments (see :mod:`awgrt.compiler.ring`); one that would need more is left and warned
    about (:class:`~awgrt.errors.WrapWarning`). With ``progress`` a bar naming the stage in hand
    is drawn on stderr once quantizing has taken more than a second.
    """
    with Progress(4, "quantizing", enabled=progress) as bar:  # shown once it takes a second (thousands of tones, phases="auto")
        return _quantized(
            resolved,
            logical_channel_to_hardware_channel,
            card,
            bar,
            max_snap_hz=max_snap_hz,
            snap=snap,
            stretch_wait_trig=stretch_wait_trig,
            stretch_loop_n=stretch_loop_n,
            joint=joint,
            warn_snap_hz=warn_snap_hz,
            close_ring_hz=close_ring_hz,
        )


def _quantized(
    resolved: ResolvedIR,
    logical_channel_to_hardware_channel: Mapping[str, int] | None,
    card: CardSpec | str | None,
    bar: Progress,
    *,
    max_snap_hz: float | Mapping[str, float] | None,
    snap: bool,
    stretch_wait_trig: float,
    stretch_loop_n: float,
    joint: Joint,
    warn_snap_hz: float | None,
    close_ring_hz: float | None,
) -> QuantizedIR:
    """:func:`quantize_resolved_ir`'s work, stage by stage on ``bar``."""
    card = _card(card)
    fs = resolved.sample_rate_hz
    problem = card.sample_rate_problem(fs)
    if problem:
        raise CardLimitError(f"{card.name}: {problem}", op="sample rate", value=fs)
    mapping, n_channels, notes = map_channels(resolved.logical_channels, logical_channel_to_hardware_channel, card)
    notes = list(resolved.notes) + notes
    bar.note = "snapping looped segments to whole cycles"
    snapped = snap_wraps(
        resolved.segments,
        card,
        n_channels,
        fs,
        stretch={"wait_trig": _fraction(stretch_wait_trig, "stretch_wait_trig"), "loop_n": _fraction(stretch_loop_n, "stretch_loop_n")},
        max_snap_hz=max_snap_hz,
        joint=joint,
        warn_snap_hz=warn_snap_hz,
        snap=snap,
        ring=resolved.last_step == "ring",
    )
    notes += snapped.notes
    bar.note = "the ring edge"  # each advance shows the stage now in hand
    bar.advance()
    carried = ring_tones(resolved.segments) if resolved.last_step == "ring" and snap else set()
    gaps: dict[tuple[str, int], float] = {}
    if carried:  # the phases at the ring edge first: only its two segments are made
        edge, _ = assign_phases(snapped.segments, resolved.tone_origins, fs, only=(0, len(snapped.segments) - 1))
        gaps = ring_gaps(edge, carried, fs)
    left: dict[tuple[str, int], float | None] = {}
    unphased = snapped.segments
    if gaps:  # the ring edge carries tones on as asked: close their phase there too
        limits = snap_limits(max_snap_hz, tuple(s.name for s in resolved.segments))
        bent, ring_notes, peaks, left = close_ring(snapped.segments, gaps, fs, limits, _bound(close_ring_hz, "close_ring_hz"))
        if peaks:
            unphased = bent
            notes += ring_notes
            big = {k: v for k, v in peaks.items() if abs(v) > CLOSE_RING_HZ}
            if big:
                (ch, tone), peak = max(big.items(), key=lambda kv: abs(kv[1]))
                warn(
                    f"closing the ring edge's phase takes {len(big)} tone(s) more than {CLOSE_RING_HZ:g} Hz away from their frequency "
                    f"(largest: {ch} tone #{tone}, a min-jerk excursion of {peak:+.1f} Hz and back; see the ring_closed notes)",
                    SnapWarning
                )
    _check_calibrated_bands(unphased, resolved.segments)
    bar.note = "assigning phases (crest factors where phases='auto')"
    bar.advance()
    segments, phase_notes = assign_phases(unphased, resolved.tone_origins, fs)
    notes += phase_notes
    bar.note = "checking every edge of the step graph"
    bar.advance()
    lines = tuple(m for m in MARKER_LINES if any(m in s.markers for s in segments))
    if lines:
        bits = ", ".join(f"{m} bit {marker_bit(m)}" for m in lines)
        notes.append(
            Note(
                "markers",
                None,
                f"marker lines {bits} of hardware channel 0, which plays the {marker_bit(lines[-1])} bits below them in every segment "
                f"(marked: {', '.join(f'{s.name} {s.markers}' for s in segments if s.markers)})",
            )
        )
    segments = tuple(s.with_digest(fs, mapping, lines) for s in segments)
    slot_of, slots, slot_notes = assign_slots(segments, card, n_channels)
    notes += slot_notes
    boundaries = step_graph_boundaries(segments, resolved.last_step, fs, _step_keys(snapped.steps))
    if snap:  # what snapping could not make seamless is said, not only listed
        for b in boundaries:  # phase and frequency: amplitude shapes and tones added in a loop are as asked
            jumps = [j for j in b.tones if j.kind == "phase" or (j.kind == "frequency" and not j.snapped)]
            if b.kind == "wrap" and jumps:
                warn(
                    f"segment {b.from_segment!r} is looped but {len({(j.channel, j.tone) for j in jumps})} tone(s) jump in phase or frequency at its wrap "
                    f"({b.summary()}): the card repeats that every pass (a tone that ends elsewhere than it starts cannot wrap seamlessly)",
                    WrapWarning
                )
            if b.kind == "ring" and left:
                warn(_ring_message(b, left, close_ring_hz), WrapWarning)
    log.info(
        "quantized %d segments for %s at %.9g MS/s: %d tone(s) snapped to wrap, %d phase set(s) optimised, %d discontinuous edge(s)",
        len(segments),
        card.name,
        fs / 1e6,
        sum(1 for s in snapped.snaps if s.shift_hz),
        sum(1 for n in phase_notes if n.kind == "phases_optimised"),
        sum(1 for b in boundaries if b.tones),
    )
    return QuantizedIR(
        sample_rate_hz=fs,
        card=card,
        hardware_channels=MappingProxyType(mapping),
        n_channels=n_channels,
        segments=segments,
        segment_slot=slot_of,
        slots=slots,
        tone_origins=resolved.tone_origins,
        last_step=resolved.last_step,
        boundaries=boundaries,
        notes=tuple(notes),
        intent=resolved.intent,
        snaps=snapped.snaps,
        frequency_steps=snapped.steps,
        marker_lines=lines,
        positions=resolved.positions,
    )


def _ring_message(edge: Boundary, left: Mapping[tuple[str, int], float | None], close_ring_hz: float | None) -> str:
    """What the ring edge does, plainly: the tones that change there by design (the program does
    not end as it starts) apart from the ones asked to carry on through it that could not be
    closed in phase, and the fix."""
    carried = set(left)
    changed = {(j.channel, j.tone) for j in edge.jumps} - carried
    where = f"at the ring edge {edge.from_segment!r} -> {edge.to_segment!r} (after its last step the card plays its first again)"
    parts = []
    if changed:
        parts.append(f"the program does not end as it starts: {len(changed)} tone(s) change {where}, a jump every time it repeats")
    needs = [v for v in left.values() if v is not None]
    what = f"{len(carried)} tone(s) that do end as they start jump in phase {'there' if changed else where}"
    if needs:
        parts.append(
            f"{what}: closing them needs excursions of up to {format_hz(abs(max(needs, key=abs)))}, more than close_ring_hz={close_ring_hz} "
            "or max_snap_hz allow (hold longer outside looped segments to need less)"
        )
    else:
        parts.append(f"{what}: they have no hold outside looped segments after their last phase reset to be closed in (add one)")
    return "; ".join(parts) + f" [{edge.summary()}]. If the program is not meant to repeat, end it with .last_step('end')."


def replace_segments(q: QuantizedIR, segments: tuple[Segment, ...], note: Note | None = None) -> QuantizedIR:
    """``q`` with its segments replaced (same count and lengths), slots and the continuity of
    every step-graph edge recomputed. Used by the runtime to keep invariant segments."""
    if len(segments) != len(q.segments) or any(a.n_samples != b.n_samples for a, b in zip(segments, q.segments)):
        raise ProgramError("replacement segments must match the originals in count and length", op="replace segments")
    slot_of, slots, slot_notes = assign_slots(segments, q.card, q.n_channels)
    kept = tuple(n for n in q.notes if n.kind not in ("slots_shared", "slots_padded"))
    return replace(
        q,
        segments=segments,
        segment_slot=slot_of,
        slots=slots,
        boundaries=step_graph_boundaries(segments, q.last_step, q.sample_rate_hz, _step_keys(q.frequency_steps)),
        notes=kept + tuple(slot_notes) + ((note,) if note else ()),
    )
