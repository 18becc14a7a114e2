"""Quantize: make a :class:`ResolvedIR` card-legal and fix every tone's phase.

In order:

1. **Channels.** Logical channels map to hardware channels (default: in declaration order,
   0, 1, ...). The card enables the smallest channel count it supports that covers the highest
   mapped channel; unmapped enabled channels play zeros.
2. **Lengths.** Each segment grows to a multiple of the card's granularity (32) and at least the
   minimum for the enabled channel count (384/192/96 for 1/2/4), by holding its last state for the
   extra samples at its end. Segments are never shortened.
3. **Wrap snapping** (:mod:`awgrt.compiler.snap`): tones held constant in looped segments move
   to whole cycles per pass so every wrap is seamless, keeping the program frequency- and
   phase-continuous. Shifts above ``max_snap_hz`` raise :class:`~awgrt.errors.QuantizationError`.
4. **Phases** (:mod:`awgrt.compiler.phases`) and the step-graph continuity check.
5. **Slots.** Segments with equal content digests share a memory slot; the slot count is padded
   to what the card needs (a power of two, at least 2), and each segment is checked against the
   slot size. More steps or segments than the card holds, or a segment that does not fit,
   raise :class:`~awgrt.errors.CardLimitError`.

Every change is recorded as a :class:`~awgrt.ir.resolved.Note` in ``QuantizedIR.notes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from ..card import CARDS, DEFAULT_CARD, CardSpec
from ..errors import CardLimitError, ProgramError
from ..ir.quantized import QuantizedIR
from ..ir.resolved import ChannelTrack, Note, Piece, ResolvedIR, Segment
from .phases import assign_phases, step_graph_boundaries
from .snap import snap_wraps


def _card(card: CardSpec | str | None) -> CardSpec:
    if card is None:
        return CARDS[DEFAULT_CARD]
    if isinstance(card, str):
        if card not in CARDS:
            raise CardLimitError(f"unknown card {card!r} (known: {', '.join(CARDS)})", value=card)
        return CARDS[card]
    return card


def map_channels(logical: tuple[str, ...], mapping: Mapping[str, int] | None, card: CardSpec) -> tuple[dict[str, int], int, list[Note]]:
    """Check the logical -> hardware map; return it, the enabled channel count and notes."""
    if mapping is None:
        mapping = {ch: i for i, ch in enumerate(logical)}
    mapping = dict(mapping)
    unknown = sorted(set(mapping) - set(logical))
    if unknown:
        raise ProgramError(f"hardware map names unknown logical channels {unknown} (declared: {list(logical)})", op="map channels", value=unknown)
    missing = [ch for ch in logical if ch not in mapping]
    if missing:
        raise ProgramError(f"logical channels {missing} have no hardware channel", op="map channels", value=missing)
    for ch, hw in mapping.items():
        if isinstance(hw, bool) or not isinstance(hw, int) or not 0 <= hw < card.n_channels:
            raise CardLimitError(
                f"logical channel {ch!r} -> hardware channel {hw!r}: {card.name} has channels 0..{card.n_channels - 1}",
                op="map channels",
                value=hw,
            )
    if len(set(mapping.values())) != len(mapping):
        raise ProgramError(f"two logical channels share a hardware channel: {mapping}", op="map channels", value=mapping)
    n_active = card.active_channel_count(max(mapping.values()))
    notes = []
    idle = sorted(set(range(n_active)) - set(mapping.values()))
    if idle:
        notes.append(Note("channels", None, f"{card.name} enables {n_active} channels; hardware channels {idle} play zeros", len(mapping), n_active))
    return mapping, n_active, notes


# ------------------------------------------------------------------------------ lengths


def _pad_track(track: ChannelTrack, n_old: int, n_new: int) -> ChannelTrack:
    last = track.pieces[-1]
    if last.constant:
        pieces = (*track.pieces[:-1], replace(last, n=last.n + n_new - n_old))
    else:
        held = tuple(replace(s, f0_hz=s.f1_hz, a0=s.a1, freq_kind="linear", amp_kind="linear", phase0_cycles=None) for s in last.tones)
        pieces = (*track.pieces, Piece(n_old, n_new - n_old, held, "(padding)"))
    return ChannelTrack(track.channel, pieces)


def legal_length(n: int, card: CardSpec, n_active: int) -> int:
    """The shortest card-legal length >= n."""
    g = card.segment_granularity
    return max(card.min_segment_length(n_active), -(-n // g) * g)


def worst_snap_hz(seg: Segment, n: int, fs: float) -> float:
    """Largest shift wrap snapping would make to the constant tones of ``seg`` at length n."""
    worst = 0.0
    for track in seg.tracks:
        if track.constant:
            for s in track.entry:
                worst = max(worst, abs(round(s.f0_hz * n / fs) * fs / n - s.f0_hz))
    return worst


def choose_length(seg: Segment, card: CardSpec, n_active: int, fs: float, stretch: float) -> int:
    """Legal length for ``seg``: the shortest, or for a looped segment allowed to stretch by up
    to ``stretch`` (fraction of its length, never exceeded), the legal length in that range that
    needs the least wrap snapping."""
    n = legal_length(seg.n_samples, card, n_active)
    if not seg.looped or stretch <= 0:
        return n
    g = card.segment_granularity
    longest = max(n, int(seg.n_samples * (1 + stretch)) // g * g)
    candidates = range(n, longest + 1, g)
    return min(candidates, key=lambda m: (round(worst_snap_hz(seg, m, fs), 6), m))


def pad_segments(segments: tuple[Segment, ...], card: CardSpec, n_active: int, fs: float, stretch: dict[str, float]) -> tuple[tuple[Segment, ...], list[Note]]:
    """Grow every segment to a legal length (see :func:`choose_length`), holding its end state."""
    out, notes = [], []
    for i, seg in enumerate(segments):
        # Looped segments played back to back share one snapping grid, fs / gcd(lengths):
        # stretching one alone could only coarsen it, so such neighbours keep their lengths.
        neighbours = segments[max(0, i - 1) : i] + segments[i + 1 : i + 2]
        alone = not any(other.looped for other in neighbours)
        n_new = choose_length(seg, card, n_active, fs, stretch.get(seg.mode, 0.0) if alone else 0.0)
        if n_new != seg.n_samples:
            shortest = legal_length(seg.n_samples, card, n_active)
            why = ""
            if n_new != shortest:
                why = (
                    f"; {n_new - shortest} samples past the shortest legal length so wrap snapping needs at most "
                    f"{worst_snap_hz(seg, n_new, fs):.1f} Hz instead of {worst_snap_hz(seg, shortest, fs):.1f} Hz"
                )
            notes.append(
                Note(
                    "length_padded",
                    seg.name,
                    f"{seg.n_samples} -> {n_new} samples (+{(n_new - seg.n_samples) / fs * 1e9:.1f} ns hold at the end{why})",
                    seg.n_samples,
                    n_new,
                )
            )
            seg = replace(seg, n_samples=n_new, tracks=tuple(_pad_track(t, seg.n_samples, n_new) for t in seg.tracks))
        out.append(seg)
    return tuple(out), notes


# ------------------------------------------------------------------------------ slots


def assign_slots(segments: tuple[Segment, ...], card: CardSpec, n_active: int) -> tuple[tuple[int, ...], int, list[Note]]:
    """Slot per segment (equal digests share), padded slot count, and notes; checks card fit."""
    if len(segments) > card.max_steps:
        raise CardLimitError(f"{len(segments)} steps, but {card.name} holds at most {card.max_steps}", op="steps", value=len(segments))
    by_digest: dict[str, int] = {}
    slot_of = tuple(by_digest.setdefault(s.digest, len(by_digest)) for s in segments)
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
    limit = card.max_segment_length(n_active, slots)
    for s in segments:
        if s.n_samples > limit:
            raise CardLimitError(
                f"{s.n_samples} samples ({s.n_samples * n_active * 2 / 2**20:.1f} MiB) do not fit a memory slot: "
                f"{card.name} with {n_active} channels and {slots} slots holds at most {limit} samples per segment",
                segment=s.name,
                value=s.n_samples,
            )
    return slot_of, slots, notes


# ------------------------------------------------------------------------------ entry point


def quantize_resolved_ir(
    resolved: ResolvedIR,
    logical_channel_to_hardware_channel: Mapping[str, int] | None = None,
    card: CardSpec | str | None = None,
    *,
    max_snap_hz: float | None = None,
    snap: bool = True,
    stretch_wait_trig: float = 0.02,
    stretch_loop_n: float = 0.0,
    joint: str = "common",
) -> QuantizedIR:
    """Make ``resolved`` card-legal for ``card`` (default ``M4i.6631-x8``); see module doc.

    ``max_snap_hz`` bounds the frequency shift wrap snapping may make (None: no bound, every
    shift is still reported). ``snap=False`` leaves looped tones alone; their wraps then show
    as discontinuous in ``QuantizedIR.boundaries``. ``stretch_wait_trig`` / ``stretch_loop_n``
    let a looped segment of that mode grow by up to that fraction beyond its shortest legal
    length, to the length that needs the least snapping (a wait_trig pass only sets how soon a
    trigger is answered; a loop_n pass multiplies into the program's timing, so it does not
    stretch unless asked). ``joint`` says how looped holds played back to back are snapped
    (``"common"`` grid or a phase-continuous frequency ``"step"``; see :mod:`awgrt.compiler.snap`).
    """
    card = _card(card)
    fs = resolved.sample_rate_hz
    problem = card.sample_rate_problem(fs)
    if problem:
        raise CardLimitError(f"{card.name}: {problem}", op="sample rate", value=fs)
    mapping, n_active, notes = map_channels(resolved.logical_channels, logical_channel_to_hardware_channel, card)
    notes = list(resolved.notes) + notes
    segments, pad_notes = pad_segments(
        resolved.segments, card, n_active, fs, {"wait_trig": stretch_wait_trig if snap else 0.0, "loop_n": stretch_loop_n if snap else 0.0}
    )
    notes += pad_notes
    if snap:
        segments, snap_notes = snap_wraps(segments, fs, max_snap_hz, joint)
        notes += snap_notes
    segments, phase_notes = assign_phases(segments, resolved.tone_origins, fs)
    notes += phase_notes
    segments = tuple(s.with_digest(fs, mapping) for s in segments)
    slot_of, slots, slot_notes = assign_slots(segments, card, n_active)
    notes += slot_notes
    return QuantizedIR(
        sample_rate_hz=fs,
        card=card,
        hardware_channels=MappingProxyType(mapping),
        n_hardware_channels=n_active,
        segments=segments,
        segment_slot=slot_of,
        slots=slots,
        tone_origins=resolved.tone_origins,
        last_step=resolved.last_step,
        boundaries=step_graph_boundaries(segments, resolved.last_step, fs),
        notes=tuple(notes),
        intent_digest=resolved.intent_digest,
    )


def replace_segments(q: QuantizedIR, segments: tuple[Segment, ...], note: Note | None = None) -> QuantizedIR:
    """``q`` with its segments replaced (same count and lengths), slots and the continuity of
    every step-graph edge recomputed. Used by the runtime to keep invariant segments."""
    if len(segments) != len(q.segments) or any(a.n_samples != b.n_samples for a, b in zip(segments, q.segments)):
        raise ProgramError("replacement segments must match the originals in count and length", op="replace segments")
    slot_of, slots, slot_notes = assign_slots(segments, q.card, q.n_hardware_channels)
    kept = tuple(n for n in q.notes if n.kind not in ("slots_shared", "slots_padded"))
    return replace(
        q,
        segments=segments,
        segment_slot=slot_of,
        slots=slots,
        boundaries=step_graph_boundaries(segments, q.last_step, q.sample_rate_hz),
        notes=kept + tuple(slot_notes) + ((note,) if note else ()),
    )
