"""The ring edge: a program that ends as it starts replays without a jump.

With ``last_step="ring"`` the sequencer goes from the last segment back to the first. A tone
asked to end the program at the frequency it starts it with should cross that edge as it crosses
any other: at one frequency (wrap snapping keeps it on the first segment's snapped grid through
the edge, see :mod:`awgrt.compiler.snap`) and **without a phase jump**. The phase it reaches at
the end of the program is fixed by everything it plays on the way, so it generally differs from
the phase it starts with, by some d in [-1/2, 1/2) cycle.

:func:`close_ring` closes that gap where nothing else can be disturbed: in the program's
*free holds* (pieces of at least :data:`MIN_FREE_HOLD_SAMPLES` samples of segments that are not
looped, in which every tone of the channel is constant; after the tone's last phase reset, since a
reset fixes its phase afresh). Each such
piece is split in two halves and the tone makes a minimum-jerk excursion f -> f + delta over
the first half and back over the second, which adds delta * n / 2 cycles over a piece of n
samples; the same peak delta = 2 d / (sum of the pieces' lengths) in every free hold adds d in
all. So the excursion is at most fs / (sum of the free holds' lengths), never a step, and the
tone is back at its asked frequency at every piece edge. The added phase is exact (closed form,
:func:`~awgrt.ir.shapes.span_phase_advance`), so the ring edge closes to float precision.

The excursion is kept small: a tone whose gap would need more than ``close_ring_hz`` (quantize's
option, :data:`CLOSE_RING_HZ` by default) or more than the ``max_snap_hz`` of a segment it would
bend, or that has no free hold after its last reset, is left as it is, and quantize warns about
its jump (:class:`~awgrt.errors.WrapWarning`, saying what closing it would take). Every closure
is a ``ring_closed`` note.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..ir.boundary import format_hz
from ..ir.resolved import ChannelTrack, Note, Piece, Segment, ToneSpan
from .phases import check_boundary

#: Largest excursion (Hz) used to close a tone's phase at the ring edge by default; a larger one
#: (``close_ring_hz`` raised, or None) also raises a :class:`~awgrt.errors.SnapWarning`.
CLOSE_RING_HZ = 10e3
#: Shortest free hold (samples) an excursion is made in: never in slivers such as a few samples of
#: padding, where closing a phase gap would take a tone megahertz away.
MIN_FREE_HOLD_SAMPLES = 64

ToneKey = tuple[str, int]  # channel, tone id
Place = tuple[int, int, int]  # segment, track, piece


def ring_tones(segments: tuple[Segment, ...]) -> set[int]:
    """Tones the ring edge carries on at the frequency they were asked to start with: present at
    the end of the last segment and the start of the first, on the same channel, asked at the
    same frequency there (``segments`` as asked)."""
    if len(segments) < 2:
        return set()
    ends = {(t.channel, s.tone): s.f1_hz for t in segments[-1].tracks for s in t.exit}
    return {s.tone for t in segments[0].tracks for s in t.entry if ends.get((t.channel, s.tone)) == s.f0_hz}


def how_it_differs(segments: tuple[Segment, ...]) -> str | None:
    """Why the program does not come back to its start, or None when it does: every channel
    ends the last segment with the tones it starts the first with, at the same frequencies and
    amplitudes (``segments`` as asked). Names the first channel that differs and how."""
    starts = {t.channel: sorted((s.f0_hz, s.a0) for s in t.entry) for t in segments[0].tracks}
    ends = {t.channel: sorted((s.f1_hz, s.a1) for s in t.exit) for t in segments[-1].tracks}
    for ch in dict.fromkeys([*starts, *ends]):
        a, b = starts.get(ch, []), ends.get(ch, [])
        if a == b:
            continue
        if len(a) != len(b):
            return f"channel {ch!r} starts with {len(a)} tone(s) and ends with {len(b)}"
        (fa, aa), (fb, ab) = next((x, y) for x, y in zip(a, b) if x != y)
        if fa != fb:
            return f"channel {ch!r} starts with a tone at {format_hz(fa)} and ends with it at {format_hz(fb)}"
        return f"channel {ch!r} starts with a tone at {format_hz(fa)} of amplitude {aa:g} and ends with it at {ab:g}"
    return None


def ring_gaps(phased: tuple[Segment, ...], tones: set[int], fs: float) -> dict[ToneKey, float]:
    """Phase (cycles, in [-1/2, 1/2)) each of ``tones`` must gain over the program for the ring
    edge of ``phased`` (start phases assigned) to be continuous: the phase jumps the edge's own
    continuity check finds there (above its tolerance, of tones audible at the edge)."""
    edge = check_boundary("ring", phased[-1], phased[0], fs)
    return {(j.channel, j.tone): (j.after - j.before) / (2 * math.pi) for j in edge.tones if j.kind == "phase" and j.tone in tones}


def _free_holds(segments: tuple[Segment, ...], keys: set[ToneKey]) -> dict[ToneKey, list[Place]]:
    """Per tone, the free holds (see module doc) after its last phase reset."""
    start: dict[ToneKey, int] = {}
    for si, seg in enumerate(segments[1:], 1):
        if seg.phase_mode in ("optimise", "manual"):
            for t in seg.tracks:
                for s in t.entry:
                    if (t.channel, s.tone) in keys:
                        start[t.channel, s.tone] = si
    where: dict[ToneKey, list[Place]] = {}
    for si, seg in enumerate(segments):
        if seg.looped:
            continue
        for ti, t in enumerate(seg.tracks):
            for pi, p in enumerate(t.pieces):
                if p.n < MIN_FREE_HOLD_SAMPLES or not p.constant:
                    continue
                for s in p.tones:
                    key = (t.channel, s.tone)
                    if key in keys and si >= start.get(key, 0):
                        where.setdefault(key, []).append((si, ti, pi))
    return where


def _split(piece: Piece, peaks: dict[int, float]) -> tuple[Piece, Piece]:
    """``piece`` as two halves in which the tones in ``peaks`` go out by their peak (Hz) and back."""
    n1 = piece.n // 2

    def half(s: ToneSpan, out: bool) -> ToneSpan:
        peak = peaks.get(s.tone, 0.0)
        if not peak:
            return s
        f, g = (s.f0_hz, s.f0_hz + peak) if out else (s.f0_hz + peak, s.f0_hz)
        return s.with_freqs(f, g, "min_jerk")

    return (
        Piece(piece.start, n1, tuple(half(s, True) for s in piece.tones), piece.op),
        Piece(piece.start + n1, piece.n - n1, tuple(half(s, False) for s in piece.tones), piece.op),
    )


def close_ring(
    segments: tuple[Segment, ...], gaps: dict[ToneKey, float], fs: float, limit_of: Callable[[str], float | None], close_hz: float | None
) -> tuple[tuple[Segment, ...], tuple[Note, ...], dict[ToneKey, float], dict[ToneKey, float | None]]:
    """``segments`` (before phases are assigned) with every tone of ``gaps`` making the excursion
    in the free holds that adds its gap (see module doc); the notes; the peak excursion (Hz) per
    tone closed; and the tones left open, with the excursion they would need (None: no free
    hold). A tone is left open where its excursion would exceed ``close_hz`` (None: no bound)
    or the ``max_snap_hz`` of a segment it would bend."""
    where = _free_holds(segments, set(gaps))
    bends: dict[Place, dict[int, float]] = {}
    notes: list[Note] = []
    peaks: dict[ToneKey, float] = {}
    left: dict[ToneKey, float | None] = {}
    for key, d in gaps.items():
        places = where.get(key)
        if not places:
            left[key] = None
            continue
        total = sum(segments[si].tracks[ti].pieces[pi].n for si, ti, pi in places)
        peak = 2.0 * d / total * fs
        names = list(dict.fromkeys(segments[si].name for si, _, _ in places))
        bounds = [b for b in [close_hz, *(limit_of(name) for name in names)] if b is not None]
        if bounds and abs(peak) > min(bounds):
            left[key] = peak
            continue
        for place in places:
            bends.setdefault(place, {})[key[1]] = peak
        peaks[key] = peak
        notes.append(
            Note(
                "ring_closed",
                names[0],
                f"{key[0]} tone #{key[1]}: {2 * math.pi * d:+.4f} rad closed for a continuous ring edge by a min-jerk excursion of "
                f"{peak:+.3f} Hz and back in each of {len(places)} free hold(s) ({', '.join(names)}; {total} samples)",
                0.0,
                peak,
                key[0],
            )
        )
    if not bends:
        return segments, tuple(notes), peaks, left
    out = []
    for si, seg in enumerate(segments):
        tracks = []
        for ti, t in enumerate(seg.tracks):
            pieces: list[Piece] = []
            for pi, p in enumerate(t.pieces):
                bend = bends.get((si, ti, pi))
                pieces.extend(_split(p, bend) if bend else (p,))
            tracks.append(t if len(pieces) == len(t.pieces) else ChannelTrack(t.channel, tuple(pieces)))
        out.append(seg.with_tracks(tuple(tracks)) if any(a is not b for a, b in zip(tracks, seg.tracks)) else seg)
    return tuple(out), tuple(notes), peaks, left
