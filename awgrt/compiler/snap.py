"""Wrap snapping: make looped constant holds replay seamlessly, keeping the program continuous.

A looped segment (``wait_trig``, or ``loop_n`` with loops > 1) is played back to back with
itself. On a channel whose tones are constant over the whole segment, the wrap is seamless when
every tone advances a whole number of cycles per pass: f = m * fs / n. Snapping moves each such
tone to the nearest such frequency.

Continuity is kept by working on *runs*: the stretch of a tone's life at one constant frequency,
between moves (or birth and removal). Within a run:

- looped segments that hold the tone constant are *constraints*; constraints with no other
  segment of the run between them form a *cluster*, snapped together to the grid fs / gcd(their
  lengths) (one frequency that suits them all). With ``joint="step"`` each looped segment is
  its own cluster instead, and the frequency steps (phase-continuously) where two meet: a few
  hertz of step instead of the coarse common grid, reported as ``frequency_step`` and as a
  frequency jump in the continuity report;
- the run's spans before its first cluster take the first cluster's frequency and those after
  its last take the last one's, so the move into the run ends on the snapped frequency and the
  move out of it starts on it;
- between two clusters the tone eases from one snapped frequency to the next (minimum-jerk) over
  the longest non-constraint span between them: frequency and phase stay continuous.

Every shift and every easing is reported; a shift above ``max_snap_hz`` is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..errors import FrequencyError, QuantizationError
from ..ir.resolved import ChannelTrack, Note, Segment

SpanKey = tuple[int, int, int, int]
#: How looped holds played back to back are joined: "common" snaps them to one shared grid
#: (strictly frequency-continuous, but the grid fs / gcd(lengths) can be coarse); "step" snaps
#: each to its own grid and steps the frequency, phase-continuously, where they meet.
JOINTS = ("common", "step")  # segment, track, piece, tone position


@dataclass
class _Member:
    key: SpanKey
    segment: int
    n: int
    constraint: bool


@dataclass
class _Run:
    tone: int
    channel: str
    freq_hz: float
    members: list[_Member] = field(default_factory=list)
    index: int = 0  # the tone's index within its channel where the run is first constrained


@dataclass
class _Cluster:
    lengths: set[int]
    segments: list[str]
    first: int  # member index range [first, last]
    last: int
    freq_hz: float = 0.0


def _runs(segments: tuple[Segment, ...]) -> tuple[list[_Run], dict[SpanKey, tuple[int, int]]]:
    """Split every tone's life into constant-frequency runs; map each span to (start, end) run."""
    runs: list[_Run] = []
    current: dict[int, int] = {}
    span_runs: dict[SpanKey, tuple[int, int]] = {}
    for si, seg in enumerate(segments):
        for ti, track in enumerate(seg.tracks):
            constraint = seg.looped and track.constant
            for pi, piece in enumerate(track.pieces):
                for k, s in enumerate(piece.tones):
                    if s.tone not in current:
                        runs.append(_Run(s.tone, track.channel, s.f0_hz))
                        current[s.tone] = len(runs) - 1
                    start = current[s.tone]
                    if s.f1_hz != s.f0_hz:
                        runs.append(_Run(s.tone, track.channel, s.f1_hz))
                        current[s.tone] = len(runs) - 1
                    else:
                        member = _Member((si, ti, pi, k), si, piece.n, constraint)
                        run = runs[start]
                        if constraint and not any(m.constraint for m in run.members):
                            run.index = k
                        run.members.append(member)
                    span_runs[si, ti, pi, k] = (start, current[s.tone])
    return runs, span_runs


def _clusters(run: _Run, segments: tuple[Segment, ...], joint: str) -> list[_Cluster]:
    clusters: list[_Cluster] = []
    open_cluster: _Cluster | None = None
    for i, m in enumerate(run.members):
        if m.constraint:
            new_segment = open_cluster is not None and segments[m.segment].name not in open_cluster.segments
            if open_cluster is None or (joint == "step" and new_segment):
                open_cluster = _Cluster(set(), [], i, i)
                clusters.append(open_cluster)
            open_cluster.last = i
            n = segments[m.segment].n_samples
            open_cluster.lengths.add(n)
            name = segments[m.segment].name
            if name not in open_cluster.segments:
                open_cluster.segments.append(name)
        else:
            open_cluster = None
    return clusters


def _snap_cluster(run: _Run, c: _Cluster, fs: float, max_snap_hz: float | None) -> Note | None:
    g = math.gcd(*c.lengths)
    cycles = round(run.freq_hz * g / fs)
    c.freq_hz = cycles * fs / g
    where = ", ".join(repr(s) for s in c.segments)
    label = f"{run.channel} tone {run.index} (#{run.tone})"
    if not 0 < c.freq_hz < fs / 2:
        raise FrequencyError(
            f"{label} at {run.freq_hz:.9g} Hz has no whole-cycles-per-{g}-samples frequency inside (0, fs/2)",
            segment=c.segments[0],
            op="snap wrap",
            value=run.freq_hz,
        )
    shift = c.freq_hz - run.freq_hz
    if max_snap_hz is not None and abs(shift) > max_snap_hz:
        hint = " (looped segments back to back share one grid: put a 'once' segment between them, or quantize with joint='step')" if len(c.lengths) > 1 else ""
        raise QuantizationError(
            f"{label}: snapping {run.freq_hz:.9g} Hz to whole cycles per pass of {g} samples moves it by {shift:+.6g} Hz, "
            f"more than max_snap_hz={max_snap_hz:g} (looped in {where}){hint}",
            segment=c.segments[0],
            op="snap wrap",
            value=shift,
        )
    if shift == 0.0:
        return None
    return Note(
        "frequency_snapped",
        c.segments[0],
        f"{label}: {run.freq_hz:.3f} -> {c.freq_hz:.3f} Hz ({shift:+.3f} Hz, {cycles} cycles per {g} samples; looped in {where})",
        run.freq_hz,
        c.freq_hz,
        run.channel,
    )


def snap_wraps(segments: tuple[Segment, ...], fs: float, max_snap_hz: float | None, joint: str = "common") -> tuple[tuple[Segment, ...], list[Note]]:
    """Snap looped constant tones to whole cycles per pass (see module doc)."""
    if joint not in JOINTS:
        raise QuantizationError(f"joint={joint!r} must be one of {JOINTS}", op="snap wrap", value=joint)
    runs, span_runs = _runs(segments)
    notes: list[Note] = []
    start_freq: dict[int, float] = {}  # run -> frequency at its start / end, when changed
    end_freq: dict[int, float] = {}
    member_freq: dict[SpanKey, tuple[float, float, str | None]] = {}  # (f0, f1, kind if easing)

    for r, run in enumerate(runs):
        clusters = _clusters(run, segments, joint)
        if not clusters:
            continue
        for c in clusters:
            note = _snap_cluster(run, c, fs, max_snap_hz)
            if note:
                notes.append(note)
        start_freq[r], end_freq[r] = clusters[0].freq_hz, clusters[-1].freq_hz
        freq_of = [clusters[0].freq_hz] * len(run.members)
        for a, b in zip(clusters, clusters[1:]):
            for i in range(a.last + 1, len(run.members)):
                freq_of[i] = b.freq_hz
            gap = range(a.last + 1, b.first)
            if not gap:  # back-to-back looped holds snapped apart (joint="step")
                if a.freq_hz != b.freq_hz:
                    notes.append(
                        Note(
                            "frequency_step",
                            b.segments[0],
                            f"{run.channel} tone #{run.tone}: steps {a.freq_hz:.3f} -> {b.freq_hz:.3f} Hz, phase-continuous, "
                            f"from looped {a.segments[-1]!r} to looped {b.segments[0]!r}",
                            a.freq_hz,
                            b.freq_hz,
                            run.channel,
                        )
                    )
                continue
            ease = max(gap, key=lambda i: run.members[i].n)
            for i in gap:
                if i < ease:
                    freq_of[i] = a.freq_hz
            member_freq[run.members[ease].key] = (a.freq_hz, b.freq_hz, "min_jerk")
            if a.freq_hz != b.freq_hz:
                seg = segments[run.members[ease].segment]
                notes.append(
                    Note(
                        "frequency_eased",
                        seg.name,
                        f"{run.channel} tone #{run.tone}: eases {a.freq_hz:.3f} -> {b.freq_hz:.3f} Hz (min_jerk) over "
                        f"{run.members[ease].n} samples to join snapped holds in {a.segments[-1]!r} and {b.segments[0]!r}",
                        a.freq_hz,
                        b.freq_hz,
                        run.channel,
                    )
                )
        for m, f in zip(run.members, freq_of):
            member_freq.setdefault(m.key, (f, f, None))

    if not start_freq:
        return segments, notes

    out = []
    for si, seg in enumerate(segments):
        tracks = []
        for ti, track in enumerate(seg.tracks):
            pieces = []
            for pi, piece in enumerate(track.pieces):
                spans = []
                for k, s in enumerate(piece.tones):
                    key = (si, ti, pi, k)
                    if key in member_freq:
                        f0, f1, kind = member_freq[key]
                        spans.append(replace(s, f0_hz=f0, f1_hz=f1, freq_kind=kind or s.freq_kind))
                    else:
                        r0, r1 = span_runs[key]
                        spans.append(replace(s, f0_hz=end_freq.get(r0, s.f0_hz), f1_hz=start_freq.get(r1, s.f1_hz)))
                pieces.append(replace(piece, tones=tuple(spans)))
            tracks.append(ChannelTrack(track.channel, tuple(pieces)))
        out.append(replace(seg, tracks=tuple(tracks)))
    return tuple(out), notes
