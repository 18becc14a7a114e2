"""Wrap snapping: make looped constant holds replay seamlessly while moving no tone further than
the card forces.

A looped segment (``wait_trig``, or ``loop_n`` with loops > 1) of N samples is played back to back
with itself. On a channel whose tones are constant over the whole segment the wrap is seamless
only when every tone advances a whole number of cycles per pass, f = m fs / N: each tone has to
move to that grid, and the nearest grid frequency is never more than **fs / (2N)** away. That is
the bound this module keeps, always: every constant tone of every looped segment plays within
fs / (2N) of the frequency asked for (N the segment's final length).

**Lengths.** Every segment grows to the shortest card-legal length. A looped segment whose mode
may stretch (``wait_trig`` by up to 2 % by default, ``loop_n`` only when asked) takes the length in
its allowed range that needs the least snapping.

**Back-to-back looped segments** (a *chain*: looped segments next to each other in program
order) are planned together. For each tone held across several of them there are two ways:

- a *common grid* fs / gcd(their lengths): one frequency over all of them, strictly continuous.
  It is used only when it keeps the tone within every segment's own bound;
- *own grids*: each segment snaps the tone to its own fs / N and the tone steps frequency,
  phase-continuously, where two of them meet (a :class:`~awgrt.ir.quantized.FrequencyStep`).

The rule: over every combination of allowed lengths (bounded: :data:`MAX_LENGTH_COMBINATIONS`,
each segment's best lengths first), the plan with the smallest worst shift in the chain wins;
ties go to fewer frequency steps, then the smaller sum of the segments' worst shifts, then the
shorter lengths. For given lengths a tone shares the common grid when that does not raise the
chain's worst shift, and otherwise steps. ``joint="step"`` always uses own grids;
``joint="common"`` never steps and fails where a common grid cannot meet the bound.

**Distinct tones stay distinct.** Two tones asked at different frequencies on one channel never
share a frequency bin of a looped segment (which could cancel them to silence); where the
segment is too short to resolve them, that is a :class:`~awgrt.errors.QuantizationError` that
says how long it must be.

**Continuity.** A snapped frequency holds over the tone's whole constant run: the move into the
run ends on it and the move out starts on it. Between two snapped holds separated by other
segments, the tone eases (minimum-jerk) from one snapped frequency to the next over the longest
of those segments' holds (its first half, when it is long enough; the second half holds the new
frequency), so it never leaves the range between the two, each within its own bound.

**Looped moves.** A looped segment whose tones move or ramp (a shake, a sweep out and back)
wraps seamlessly only if each tone comes back to its start frequency after a whole number of
cycles. A tone asked to come back is shifted as a whole, its asked trajectory moved by at most
fs / (2N) so that a pass makes whole cycles; where the segment meets its neighbours it steps by
the difference, phase-continuously. A tone asked to end elsewhere than it starts cannot wrap
continuously; it is left as asked, its wrap shows as a jump in the boundaries, and quantize raises a
:class:`~awgrt.errors.WrapWarning` for it (as for any wrap left with a phase or frequency jump).

**Reported.** Every shift is a :class:`~awgrt.ir.quantized.ToneSnap` and a ``frequency_snapped``
note; every step a ``frequency_step`` note; every easing a ``frequency_eased`` note. A shift above
the user's ``max_snap_hz`` (global, or per segment) is an error; a shift above the warning
threshold (:data:`WARN_SNAP_HZ` unless set) also raises a :class:`~awgrt.errors.SnapWarning`. For
a segment that needs more than :data:`SUGGEST_TOLERANCE_HZ`, a ``hold_suggestion`` note names the
nearest hold time at or above the asked one (within +:data:`SUGGEST_RANGE`) at which every tone
needs at most that.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .._warn import warn
from ..card import CardSpec
from ..errors import CardLimitError, FrequencyError, QuantizationError, SnapWarning
from ..ir.quantized import FrequencyStep, ToneSnap
from ..ir.resolved import ChannelTrack, Note, Piece, Segment, ToneSpan, copy_with
from ..ir.shapes import span_phase_advance
from .ring import ring_tones

#: How back-to-back looped holds may be joined (see module doc).
Joint = Literal["auto", "common", "step"]
JOINTS: tuple[str, ...] = get_args(Joint)
#: A hold eased between two snapped frequencies eases over its first half when it has at least twice
#: this many samples, and holds over the second (a hold the ring edge's phase closing can use).
MIN_EASE_SAMPLES = 2048
#: Most combinations of lengths tried for one chain of back-to-back looped segments.
MAX_LENGTH_COMBINATIONS = 256
#: Shifts above this (Hz) raise a :class:`~awgrt.errors.SnapWarning` by default.
WARN_SNAP_HZ = 10e3
#: Hold suggestions look for lengths at which every tone needs at most this (Hz) ...
SUGGEST_TOLERANCE_HZ = 100.0
#: ... up to this fraction longer than the hold asked for.
SUGGEST_RANGE = 0.10
#: Most stretched lengths examined for one looped segment (beyond that its grid is below 4 Hz).
_MAX_LENGTH_CANDIDATES = 100_000
#: Most candidate lengths a hold suggestion examines.
_SUGGEST_MAX_CANDIDATES = 100_000

SpanKey = tuple[int, int, int, int]  # segment, track, piece, tone position
ToneKey = tuple[int, int]  # segment index, tone id


def whole_cycle_hz(f_hz: float | np.ndarray, n: int | np.ndarray, fs: float) -> float | np.ndarray:
    """The frequency nearest ``f_hz`` with a whole number of cycles in ``n`` samples."""
    return np.round(np.multiply(f_hz, n) / fs) * fs / n


def _whole_cycle(f_hz: float, n: int, fs: float) -> float:
    """:func:`whole_cycle_hz` of one frequency and length, in plain Python (the same value:
    both round half to even, and the cycle count is exact): the chain planner calls it
    thousands of times."""
    return round(f_hz * n / fs) * fs / n


def _pad_track(track: ChannelTrack, n_old: int, n_new: int) -> ChannelTrack:
    last = track.pieces[-1]
    if last.constant:
        pieces = (*track.pieces[:-1], copy_with(last, n=last.n + n_new - n_old))
    else:
        held = tuple(
            copy_with(
                s,
                f0_hz=s.f1_hz,
                a0=s.a1,
                freq_kind="linear",
                amp_kind="linear",
                amp_param=0.0,
                phase0_cycles=None,
                optical=None if s.optical is None else copy_with(s.optical, p0=s.optical.p1),
            )
            for s in last.tones
        )
        pieces = (*track.pieces, Piece(n_old, n_new - n_old, held, "(padding)"))
    return ChannelTrack(track.channel, pieces)


def pad_segment(seg: Segment, n_new: int) -> Segment:
    """``seg`` grown to ``n_new`` samples, every channel holding its end state."""
    if n_new == seg.n_samples:
        return seg
    return copy_with(seg, n_samples=n_new, tracks=tuple(_pad_track(t, seg.n_samples, n_new) for t in seg.tracks))


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class _HeldTone:
    """A tone held at one frequency across consecutive segments of a chain."""

    channel: str
    tone: int
    asked_hz: float
    at: tuple[tuple[int, int], ...]  # (segment index, position among the channel's tones)


def held_tones(seg: Segment) -> list[tuple[str, int, int, float]]:
    """(channel, tone id, position, frequency) of every tone of a looped segment that wrap
    snapping must put on the segment's grid: those of channels constant over the segment."""
    if not seg.looped:
        return []
    return [(t.channel, s.tone, k, s.f0_hz) for t in seg.tracks if t.constant for k, s in enumerate(t.entry)]


def _chains(segments: tuple[Segment, ...]) -> list[list[int]]:
    chains: list[list[int]] = []
    for i, seg in enumerate(segments):
        if not seg.looped:
            continue
        if chains and chains[-1][-1] == i - 1:
            chains[-1].append(i)
        else:
            chains.append([i])
    return chains


def _chain_tones(segments: tuple[Segment, ...], chain: list[int]) -> list[_HeldTone]:
    open_: dict[tuple[str, int], tuple[float, list[tuple[int, int]]]] = {}
    done: list[_HeldTone] = []
    for si in chain:
        now = {(ch, tone): (f, k) for ch, tone, k, f in held_tones(segments[si])}
        for key in list(open_):
            if key not in now or now[key][0] != open_[key][0]:
                f, at = open_.pop(key)
                done.append(_HeldTone(key[0], key[1], f, tuple(at)))
        for key, (f, k) in now.items():
            open_.setdefault(key, (f, []))[1].append((si, k))
    done += [_HeldTone(key[0], key[1], f, tuple(at)) for key, (f, at) in open_.items()]
    return done


@dataclass
class _Problem:
    error: type
    message: str
    segment: str
    value: object
    rank: int  # lower is reported first


@dataclass
class _ChainPlan:
    lengths: dict[int, int]
    played: dict[ToneKey, float] = field(default_factory=dict)
    steps: int = 0
    worst_hz: float = 0.0
    segment_worst_hz: dict[int, float] = field(default_factory=dict)
    problems: list[_Problem] = field(default_factory=list)

    @property
    def cost(self) -> tuple:
        return (len(self.problems), round(self.worst_hz, 6), self.steps, round(sum(self.segment_worst_hz.values()), 6), sum(self.lengths.values()))


def _label(ch: str, k: int, tone: int) -> str:
    return f"channel {ch!r} tone {k} (#{tone})"


def _plan_chain(
    segments: tuple[Segment, ...], tones: list[_HeldTone], lengths: dict[int, int], fs: float, joint: Joint, limit_of: Callable[[str], float | None]
) -> _ChainPlan:
    plan = _ChainPlan(dict(lengths))
    own = {(si, t.tone): _whole_cycle(t.asked_hz, lengths[si], fs) for t in tones for si, _ in t.at}
    worst_own = max((abs(own[si, t.tone] - t.asked_hz) for t in tones for si, _ in t.at), default=0.0)
    for t in tones:
        segs = [si for si, _ in t.at]
        bounds_ok = False
        if len(segs) > 1 and joint != "step":
            g = math.gcd(*(lengths[si] for si in segs))
            common = _whole_cycle(t.asked_hz, g, fs)
            shift = abs(common - t.asked_hz)
            bounds_ok = all(shift <= fs / (2 * lengths[si]) * (1 + 1e-12) for si in segs)
            if joint == "common" and not bounds_ok:
                si, k = t.at[0]
                plan.problems.append(
                    _Problem(
                        QuantizationError,
                        f"{_label(t.channel, k, t.tone)}: the common grid of back-to-back looped segments "
                        f"{[segments[s].name for s in segs]} (fs/{g}) moves {t.asked_hz:.9g} Hz to {common:.9g} Hz ({common - t.asked_hz:+.6g} Hz), "
                        f"beyond the {fs / (2 * max(lengths[s] for s in segs)):.6g} Hz a tone must move at most; use joint='auto' to step instead",
                        segments[si].name,
                        common - t.asked_hz,
                        2,
                    )
                )
            if joint == "common" or (bounds_ok and shift <= worst_own * (1 + 1e-12)):
                for si in segs:
                    plan.played[si, t.tone] = common
                continue
        for si in segs:
            plan.played[si, t.tone] = own[si, t.tone]
        plan.steps += sum(own[a, t.tone] != own[b, t.tone] for a, b in zip(segs, segs[1:]))

    by_segment: dict[int, list[tuple[_HeldTone, int]]] = {}
    for t in tones:
        for si, k in t.at:
            by_segment.setdefault(si, []).append((t, k))
    for si, members in by_segment.items():
        seg, n = segments[si], lengths[si]
        limit = limit_of(seg.name)
        worst = 0.0
        per_channel: dict[str, list[tuple[float, float, int, int]]] = {}
        for t, k in members:
            played = plan.played[si, t.tone]
            shift = played - t.asked_hz
            worst = max(worst, abs(shift))
            per_channel.setdefault(t.channel, []).append((played, t.asked_hz, k, t.tone))
            if not 0 < played < fs / 2:
                plan.problems.append(
                    _Problem(
                        FrequencyError,
                        f"{_label(t.channel, k, t.tone)} at {t.asked_hz:.9g} Hz has no whole-cycles-per-{n}-samples frequency inside (0, fs/2)",
                        seg.name,
                        t.asked_hz,
                        0,
                    )
                )
            elif limit is not None and abs(shift) > limit:
                plan.problems.append(
                    _Problem(
                        QuantizationError,
                        f"{_label(t.channel, k, t.tone)}: snapping {t.asked_hz:.9g} Hz to {played:.9g} Hz for whole cycles per pass of {n} samples "
                        f"moves it by {shift:+.6g} Hz, more than max_snap_hz={limit:g}",
                        seg.name,
                        shift,
                        3,
                    )
                )
        for ch, entries in per_channel.items():
            entries.sort()
            for (pa, fa, ka, ta), (pb, fb, kb, tb) in zip(entries, entries[1:]):
                if pa == pb and fa != fb:
                    need = math.ceil(fs / abs(fb - fa))
                    plan.problems.append(
                        _Problem(
                            QuantizationError,
                            f"channel {ch!r}: tones {ka} (#{ta}, {fa:.9g} Hz) and {kb} (#{tb}, {fb:.9g} Hz) would both play at {pa:.9g} Hz: "
                            f"a looped pass of {n} samples resolves tones only fs/N = {fs / n:.6g} Hz apart; hold at least {need} samples "
                            f"({need / fs * 1e6:.3f} us) or move the tones apart",
                            seg.name,
                            (fa, fb),
                            1,
                        )
                    )
        plan.segment_worst_hz[si] = worst
        plan.worst_hz = max(plan.worst_hz, worst)
    return plan


def _chain_costs(
    segments: tuple[Segment, ...],
    tones: list[_HeldTone],
    chain: list[int],
    combos: list[tuple[int, ...]],
    fs: float,
    joint: Joint,
    limit_of: Callable[[str], float | None],
) -> list[tuple]:
    """:attr:`_ChainPlan.cost` of :func:`_plan_chain` for every combination of lengths at once,
    the same numbers by the same arithmetic (its sums taken in its order), as arrays over the
    combinations: choosing among hundreds of them costs about one plan."""
    pos = {si: j for j, si in enumerate(chain)}
    lengths = np.array(combos, dtype=np.int64).reshape(len(combos), len(chain))
    seg_of, tone_of, asked, key = [], [], [], []  # one entry per (tone, segment it is held in)
    for ti, t in enumerate(tones):
        for si, k in t.at:
            seg_of.append(pos[si])
            tone_of.append(ti)
            asked.append(t.asked_hz)
            key.append((t.channel, k, t.tone))
    f = np.array(asked)
    n = lengths[:, seg_of].astype(np.float64)  # combos x entries
    own = np.round(f * n / fs) * fs / n
    worst_own = np.abs(own - f).max(axis=1, initial=0.0)
    played = own.copy()
    problems = np.zeros(len(combos), dtype=np.int64)
    steps = np.zeros(len(combos), dtype=np.int64)
    groups: dict[tuple[int, ...], list[list[int]]] = {}  # tones held in the same segments, taken together
    start = 0
    for t in tones:
        cols = list(range(start, start + len(t.at)))
        start += len(t.at)
        groups.setdefault(tuple(seg_of[c] for c in cols), []).append(cols)
    for segs, members in groups.items():
        cols_ = np.array(members)  # tones x segments: entry columns
        if len(segs) > 1 and joint != "step":
            g = np.gcd.reduce(lengths[:, list(segs)], axis=1).astype(np.float64)[:, None]  # combos x 1
            ft = f[cols_[:, 0]]
            common = np.round(ft * g / fs) * fs / g  # combos x tones
            shift = np.abs(common - ft)
            half_bins = fs / (2 * lengths[:, list(segs)].astype(np.float64)) * (1 + 1e-12)  # combos x segments
            bounds_ok = np.all(shift[:, :, None] <= half_bins[:, None, :], axis=2)
            if joint == "common":
                problems += (~bounds_ok).sum(axis=1)
                use = np.ones(bounds_ok.shape, dtype=bool)
            else:
                use = bounds_ok & (shift <= worst_own[:, None] * (1 + 1e-12))
            for j in range(len(segs)):
                played[:, cols_[:, j]] = np.where(use, common, own[:, cols_[:, j]])
            for j in range(len(segs) - 1):
                steps += (~use & (own[:, cols_[:, j]] != own[:, cols_[:, j + 1]])).sum(axis=1)
        elif len(segs) > 1:
            for j in range(len(segs) - 1):
                steps += (own[:, cols_[:, j]] != own[:, cols_[:, j + 1]]).sum(axis=1)
    shift = np.abs(played - f)
    bad_range = ~((played > 0) & (played < fs / 2))
    problems += bad_range.sum(axis=1)
    by_segment: dict[int, list[int]] = {}  # in the planner's order: first appearance
    for e, j in enumerate(seg_of):
        by_segment.setdefault(j, []).append(e)
    worst_of = {}
    for j, entries in by_segment.items():
        limit = limit_of(segments[chain[j]].name)
        if limit is not None:
            problems += (~bad_range[:, entries] & (np.abs(played[:, entries] - f[entries]) > limit)).sum(axis=1)
        worst_of[j] = shift[:, entries].max(axis=1)
        channels: dict[str, list[int]] = {}
        for e in entries:
            channels.setdefault(key[e][0], []).append(e)
        for same_channel in channels.values():  # two tones asked apart that would play in one bin
            if len(same_channel) < 2:
                continue
            order = sorted(same_channel, key=lambda e: (f[e], key[e][1], key[e][2]))
            p = played[:, order]
            rank = np.argsort(p, axis=1, kind="stable")  # by played, then (asked, position, tone)
            ps, fsorted = np.take_along_axis(p, rank, axis=1), f[order][rank]
            problems += ((ps[:, 1:] == ps[:, :-1]) & (fsorted[:, 1:] != fsorted[:, :-1])).sum(axis=1)
    worst = np.zeros(len(combos))
    for w in worst_of.values():
        worst = np.maximum(worst, w)
    totals = lengths.sum(axis=1)
    columns = list(worst_of.values())
    return [
        (int(problems[c]), round(float(worst[c]), 6), int(steps[c]), round(sum(float(w[c]) for w in columns), 6), int(totals[c]))
        for c in range(len(combos))
    ]


def check_capacity(segments: tuple[Segment, ...], lengths: Mapping[int, int], card: CardSpec, n_channels: int) -> None:
    """Raise :class:`~awgrt.errors.CardLimitError` for a segment longer than the largest memory
    slot the card can ever offer (its memory split into the fewest slots), before any work that
    scales with its length."""
    largest = card.largest_segment_length(n_channels)
    for i, seg in enumerate(segments):
        if lengths[i] > largest:
            raise CardLimitError(
                f"{lengths[i]} samples ({lengths[i] / largest:.3g} times the most it can hold) do not fit: {card.name} with "
                f"{n_channels} channel(s) holds at most {largest} samples in one segment ({largest * 2 * n_channels / 2**20:.0f} MiB, memory split into "
                f"{card.slot_count(1)} slots)",
                segment=seg.name,
                op="segment length",
                value=lengths[i],
            )


def _length_candidates(seg: Segment, card: CardSpec, n_channels: int, fs: float, stretch: float) -> list[int]:
    """Legal lengths ``seg`` may take, best for its own tones first (ties: shorter first)."""
    n = card.legal_length(seg.n_samples, n_channels)
    if stretch <= 0:
        return [n]
    g = card.segment_granularity
    longest = min(card.largest_segment_length(n_channels), max(n, int(seg.n_samples * (1 + stretch)) // g * g))
    if (longest - n) // g > _MAX_LENGTH_CANDIDATES:  # a very long hold: its own grid is already fine
        return [n]
    lengths = np.arange(n, longest + 1, g)
    freqs = np.array([f for *_, f in held_tones(seg)])
    if freqs.size == 0:
        return [n]
    worst = np.max(np.abs(whole_cycle_hz(freqs[None, :], lengths[:, None], fs) - freqs[None, :]), axis=1)
    order = np.lexsort((lengths, np.round(worst, 6)))
    return [int(m) for m in lengths[order]]


#: Chain plans kept between calls: key -> plan, least recently used first.
_CHAIN_CACHE: OrderedDict[tuple, _ChainPlan] = OrderedDict()
_CHAIN_CACHE_SIZE = 512


def _choose_chain(
    segments: tuple[Segment, ...],
    chain: list[int],
    card: CardSpec,
    n_channels: int,
    fs: float,
    stretch: Mapping[str, float],
    joint: Joint,
    limit_of: Callable[[str], float | None],
) -> _ChainPlan:
    """The best plan for one chain (see module doc), remembered by everything it depends on:
    a scan point usually changes few chains."""
    key = (
        tuple((si, segments[si].name, segments[si].mode, segments[si].n_samples, tuple(held_tones(segments[si])), limit_of(segments[si].name)) for si in chain),
        card.name,
        card.segment_granularity,
        card.legal_length(1, n_channels),
        card.largest_segment_length(n_channels),
        fs,
        tuple(sorted(stretch.items())),
        joint,
    )
    if key in _CHAIN_CACHE:
        _CHAIN_CACHE.move_to_end(key)
        return _CHAIN_CACHE[key]
    tones = _chain_tones(segments, chain)
    options = [_length_candidates(segments[si], card, n_channels, fs, stretch.get(segments[si].mode, 0.0)) for si in chain]
    per = max(1, int(MAX_LENGTH_COMBINATIONS ** (1 / len(chain))))
    if math.prod(len(o) for o in options) > MAX_LENGTH_COMBINATIONS:
        options = [o[:per] for o in options]
    best: _ChainPlan | None = None
    if len(chain) == 1:
        for (n,) in itertools.product(*options):
            plan = _plan_chain(segments, tones, {chain[0]: n}, fs, joint, limit_of)
            if best is None or plan.cost < best.cost:
                best = plan
            if not plan.problems:
                break  # one segment's lengths come best first (see _length_candidates): the first without problems wins
    else:  # every combination costed at once; the first of least cost planned in full
        best = _plan_chain(segments, tones, {si: o[0] for si, o in zip(chain, options)}, fs, joint, limit_of)
        if best.cost[:4] != (0, 0.0, 0, 0.0):
            # (else each segment's best length already plays every tone as asked: no combination
            # costs less, and any other with no shift has each length among those with none,
            # of which the first is the shortest)
            combos = list(itertools.product(*options))
            costs = _chain_costs(segments, tones, chain, combos, fs, joint, limit_of)
            first = min(range(len(combos)), key=lambda c: (costs[c], c))
            best = _plan_chain(segments, tones, dict(zip(chain, combos[first])), fs, joint, limit_of)
    assert best is not None
    if best.problems:
        p = min(best.problems, key=lambda p: p.rank)
        raise p.error(p.message, segment=p.segment, op="snap wrap", value=p.value)
    _CHAIN_CACHE[key] = best
    if len(_CHAIN_CACHE) > _CHAIN_CACHE_SIZE:
        _CHAIN_CACHE.popitem(last=False)
    return best


# ------------------------------------------------------------------------------ applying it


@dataclass
class _Member:
    key: SpanKey
    segment: int
    n: int
    constraint: bool


@dataclass
class _Run:
    """The stretch of a tone's life at one constant frequency, between moves and jumps."""

    tone: int
    channel: str
    members: list[_Member] = field(default_factory=list)
    cyclic: bool = False  # the run goes on through the ring edge into its own start


def _runs(segments: tuple[Segment, ...], ring: bool = False) -> tuple[list[_Run], dict[SpanKey, tuple[int, int]]]:
    """Split every tone's life into constant-frequency runs (a move or a ``time=0`` jump ends
    one); map each span to (start, end) run.
    With ``ring``, a tone the ring edge carries on (:func:`~awgrt.compiler.ring.ring_tones`) has its last run joined
    in front of its first (they are one stretch at one frequency, through the ring edge), or,
    when it never moves, its one run marked cyclic."""
    runs: list[_Run] = []
    current: dict[int, int] = {}
    first: dict[int, int] = {}
    last_hz: dict[int, float] = {}  # each tone's frequency at the end of its latest span
    span_runs: dict[SpanKey, tuple[int, int]] = {}
    for si, seg in enumerate(segments):
        for ti, track in enumerate(seg.tracks):
            constraint = seg.looped and track.constant
            for pi, piece in enumerate(track.pieces):
                for k, s in enumerate(piece.tones):
                    if s.tone not in current:
                        runs.append(_Run(s.tone, track.channel))
                        current[s.tone] = first[s.tone] = len(runs) - 1
                    elif s.f0_hz != last_hz[s.tone]:  # a deliberate jump (time=0): a new run from here
                        runs.append(_Run(s.tone, track.channel))
                        current[s.tone] = len(runs) - 1
                    last_hz[s.tone] = s.f1_hz
                    start = current[s.tone]
                    if s.f1_hz != s.f0_hz:
                        runs.append(_Run(s.tone, track.channel))
                        current[s.tone] = len(runs) - 1
                    else:
                        runs[start].members.append(_Member((si, ti, pi, k), si, piece.n, constraint))
                    span_runs[si, ti, pi, k] = (start, current[s.tone])
    if ring:
        joined: dict[int, int] = {}
        for tone in ring_tones(segments):
            a, z = first[tone], current[tone]
            if a == z:
                runs[a].cyclic = True
                continue
            runs[a].members[:0] = runs[z].members
            runs[z].members = []
            joined[z] = a
        if joined:
            span_runs = {key: (joined.get(r0, r0), joined.get(r1, r1)) for key, (r0, r1) in span_runs.items()}
    return runs, span_runs


def _apply(
    segments: tuple[Segment, ...], played: dict[ToneKey, float], ring: bool = False
) -> tuple[tuple[Segment, ...], list[Note], list[FrequencyStep]]:
    """Segments with every run's frequencies set from ``played`` (see module doc: continuity;
    ``ring``: the last segment is followed by the first)."""
    runs, span_runs = _runs(segments, ring)
    notes: list[Note] = []
    steps: list[FrequencyStep] = []
    start_freq: dict[int, float] = {}
    end_freq: dict[int, float] = {}
    member_freq: dict[SpanKey, tuple[float, float, str | None]] = {}
    for r, run in enumerate(runs):
        held = [i for i, m in enumerate(run.members) if m.constraint]
        if not held:
            continue
        members = run.members
        if run.cyclic:  # through the ring edge: from the first held member round to it again
            members = members[held[0] :] + members[: held[0]]
            held = [i - held[0] for i in held]
            members.append(members[0])
            held.append(len(members) - 1)
        freq_of = [0.0] * len(members)
        for i in held:
            freq_of[i] = played[members[i].segment, run.tone]
        first, last = held[0], held[-1]
        for i in range(first):
            freq_of[i] = freq_of[first]
        for i in range(last + 1, len(members)):
            freq_of[i] = freq_of[last]
        for a, b in zip(held, held[1:]):
            ma, mb = members[a], members[b]
            fa, fb = freq_of[a], freq_of[b]
            if b == a + 1:
                if fa != fb and ma.segment != mb.segment:
                    sa, sb = segments[ma.segment].name, segments[mb.segment].name
                    steps.append(FrequencyStep(sa, sb, run.channel, run.tone, fa, fb))
                    notes.append(
                        Note(
                            "frequency_step",
                            sb,
                            f"{run.channel} tone #{run.tone}: steps {fa:.3f} -> {fb:.3f} Hz ({fb - fa:+.3f} Hz), phase-continuous, "
                            f"from looped {sa!r} to looped {sb!r}",
                            fa,
                            fb,
                            run.channel,
                        )
                    )
                continue
            gap = range(a + 1, b)
            ease = max(gap, key=lambda i: members[i].n)
            for i in gap:
                freq_of[i] = fa if i < ease else fb
            member_freq[members[ease].key] = (fa, fb, "min_jerk" if fa != fb else None)  # no ease where nothing changes
            if fa != fb:
                si, ti, pi, _ = members[ease].key
                seg = segments[si]
                eased_piece = seg.tracks[ti].pieces[pi]
                over = eased_piece.n // 2 if _eases_in_half(eased_piece) else eased_piece.n
                notes.append(
                    Note(
                        "frequency_eased",
                        seg.name,
                        f"{run.channel} tone #{run.tone}: eases {fa:.3f} -> {fb:.3f} Hz (min_jerk) over {over} samples "
                        "to join snapped holds in "
                        f"{segments[ma.segment].name!r} and {segments[mb.segment].name!r}",
                        fa,
                        fb,
                        run.channel,
                    )
                )
        start_freq[r], end_freq[r] = freq_of[0], freq_of[-1]
        for m, f in zip(members, freq_of):
            member_freq.setdefault(m.key, (f, f, None))

    out = []
    for si, seg in enumerate(segments):
        tracks = []
        for ti, track in enumerate(seg.tracks):
            pieces: list[Piece] = []
            for pi, piece in enumerate(track.pieces):
                spans = []
                for k, s in enumerate(piece.tones):
                    key = (si, ti, pi, k)
                    if key in member_freq:
                        f0, f1, kind = member_freq[key]
                        spans.append(s.with_freqs(f0, f1, kind or s.freq_kind))
                    else:
                        r0, r1 = span_runs[key]
                        spans.append(s.with_freqs(end_freq.get(r0, s.f0_hz), start_freq.get(r1, s.f1_hz), s.freq_kind))
                eased = piece.with_tones(tuple(spans))
                if _eases_in_half(piece) and any(x.f0_hz != x.f1_hz for x in eased.tones):
                    pieces.extend(_ease_then_hold(eased))  # the second half stays a free hold (ring closing uses it)
                else:
                    pieces.append(eased)
            tracks.append(ChannelTrack(track.channel, tuple(pieces)))
        out.append(seg.with_tracks(tuple(tracks)))
    return tuple(out), notes, steps


def _eases_in_half(piece: Piece) -> bool:
    """Whether an ease placed in ``piece`` takes only its first half (:func:`_ease_then_hold`):
    when the piece was held as asked (every tone constant) and is long enough."""
    return piece.constant and piece.n >= 2 * MIN_EASE_SAMPLES


def _ease_then_hold(piece: Piece) -> tuple[Piece, Piece]:
    """A piece held as asked in which some tones now ease between snapped frequencies: the ease
    over its first half, then every tone held at its end frequency over the second half."""
    n1 = piece.n // 2
    held = tuple(copy_with(s, f0_hz=s.f1_hz, freq_kind="linear") if s.f0_hz != s.f1_hz else s for s in piece.tones)
    return Piece(piece.start, n1, piece.tones, piece.op), Piece(piece.start + n1, piece.n - n1, held, piece.op)


# ------------------------------------------------------------------------------ suggestions


def suggest_hold(seg: Segment, n_asked: int, card: CardSpec, n_channels: int, fs: float) -> int | None:
    """The shortest legal length >= ``n_asked`` and <= (1 + SUGGEST_RANGE) ``n_asked`` at which
    every tone wrap snapping must move in ``seg`` needs at most SUGGEST_TOLERANCE_HZ, or None."""
    freqs = np.array([f for *_, f in held_tones(seg)])
    if freqs.size == 0:
        return None
    g = card.segment_granularity
    lo = card.legal_length(n_asked, n_channels)
    hi = int(n_asked * (1 + SUGGEST_RANGE)) // g * g
    for start in range(lo, hi + 1, g * 4096):
        lengths = np.arange(start, min(hi, start + g * 4095) + 1, g)
        if start - lo > g * _SUGGEST_MAX_CANDIDATES:
            return None
        worst = np.max(np.abs(whole_cycle_hz(freqs[None, :], lengths[:, None], fs) - freqs[None, :]), axis=1)
        ok = np.flatnonzero(worst <= SUGGEST_TOLERANCE_HZ)
        if ok.size:
            return int(lengths[ok[0]])
    return None


#: A looped hold shorter than the card's shortest segment is said to be so, with the shortest hold
#: at which wrap snapping moves no tone by more than this.
SHORT_HOLD_TOLERANCE_HZ = 1e3


def shortest_hold_within(seg: Segment, card: CardSpec, n_channels: int, fs: float, tolerance_hz: float = SHORT_HOLD_TOLERANCE_HZ) -> int | None:
    """The shortest legal length at which whole cycles per pass move none of ``seg``'s held tones
    by more than ``tolerance_hz`` (searched from the card's shortest segment on, at most
    :data:`_SUGGEST_MAX_CANDIDATES` lengths), or None."""
    freqs = np.array([f for *_, f in held_tones(seg)])
    if freqs.size == 0:
        return None
    g = card.segment_granularity
    lo = card.min_segment_length(n_channels)
    for start in range(lo, lo + g * _SUGGEST_MAX_CANDIDATES, g * 4096):
        lengths = np.arange(start, start + g * 4096, g)
        worst = np.max(np.abs(whole_cycle_hz(freqs[None, :], lengths[:, None], fs) - freqs[None, :]), axis=1)
        ok = np.flatnonzero(worst <= tolerance_hz)
        if ok.size:
            return int(lengths[ok[0]])
    return None


# ------------------------------------------------------------------------------ entry point


def snap_limits(max_snap_hz: float | Mapping[str, float] | None, names: tuple[str, ...]) -> Callable[[str], float | None]:
    """``max_snap_hz`` (None, one bound for every segment, or {segment name: bound}) as a
    lookup from segment name to bound; checked here."""

    def check(v: object, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (float(v) >= 0):
            raise QuantizationError(f"max_snap_hz{where}={v!r} must be a number >= 0 (Hz)", op="snap wrap", value=v)
        return float(v)

    if max_snap_hz is None:
        return lambda name: None
    if isinstance(max_snap_hz, Mapping):
        unknown = sorted(set(max_snap_hz) - set(names), key=str)
        if unknown:
            raise QuantizationError(f"max_snap_hz names unknown segments {unknown} (segments: {list(names)})", op="snap wrap", value=unknown)
        limits = {k: check(v, f"[{k!r}]") for k, v in max_snap_hz.items()}
        return limits.get
    bound = check(max_snap_hz, "")
    return lambda name: bound


@dataclass(frozen=True)
class SnapResult:
    """What :func:`snap_wraps` decided: the padded, snapped segments and everything to report."""

    segments: tuple[Segment, ...]
    notes: tuple[Note, ...]
    snaps: tuple[ToneSnap, ...]
    steps: tuple[FrequencyStep, ...]


def _snap_holds(segments: tuple[Segment, ...], card: CardSpec, n_channels: int, fs: float, options: dict) -> SnapResult:
    """The holds' part of :func:`snap_wraps` (same arguments, the keyword ones in ``options``):
    legal lengths, and looped constant tones on whole cycles per pass."""
    stretch, max_snap_hz, joint = options["stretch"], options["max_snap_hz"], options["joint"]
    warn_snap_hz, snap = options["warn_snap_hz"], options["snap"]
    if joint not in JOINTS:
        raise QuantizationError(f"joint={joint!r} must be one of {JOINTS}", op="snap wrap", value=joint)
    limit_of = snap_limits(max_snap_hz, tuple(s.name for s in segments))
    shortest = {i: card.legal_length(s.n_samples, n_channels) for i, s in enumerate(segments)}
    check_capacity(segments, shortest, card, n_channels)
    lengths = dict(shortest)
    played: dict[ToneKey, float] = {}
    if snap:
        for chain in _chains(segments):
            plan = _choose_chain(segments, chain, card, n_channels, fs, stretch, joint, limit_of)
            lengths.update(plan.lengths)
            played.update(plan.played)

    notes: list[Note] = []
    for i, seg in enumerate(segments):
        n_new = lengths[i]
        if n_new != seg.n_samples:
            why = ""
            if n_new != shortest[i]:
                held = held_tones(seg)
                unstretched = max((abs(_whole_cycle(f, shortest[i], fs) - f) for *_, f in held), default=0.0)
                now = max((abs(played[i, tone] - f) for _, tone, _, f in held), default=0.0)
                why = (
                    f"; {n_new - shortest[i]} samples past the shortest legal length so wrap snapping needs at most {now:.1f} Hz "
                    f"({unstretched:.1f} Hz at the shortest)"
                )
            grown = f"{seg.n_samples} -> {n_new} samples (+{(n_new - seg.n_samples) / fs * 1e9:.1f} ns hold at the end{why})"
            notes.append(Note("length_padded", seg.name, grown, seg.n_samples, n_new))
            least = card.min_segment_length(n_channels)
            shift = max((abs(played[i, tone] - f) for _, tone, _, f in held_tones(seg) if (i, tone) in played), default=0.0)
            if seg.looped and seg.n_samples < least and shift > SHORT_HOLD_TOLERANCE_HZ:
                better = shortest_hold_within(seg, card, n_channels, fs)
                fix = f"; a hold of {better} samples ({better / fs * 1e6:.6g} us) keeps every tone within {SHORT_HOLD_TOLERANCE_HZ:g} Hz" if better else ""
                notes.append(
                    Note(
                        "hold_too_short",
                        seg.name,
                        f"the looped hold asks for {seg.n_samples} samples ({seg.n_samples / fs * 1e6:.6g} us), shorter than the card's shortest "
                        f"segment ({least} samples at {n_channels} channel(s)): it plays {n_new} samples, and whole cycles in {n_new} samples move "
                        f"tones by up to {shift / 1e3:.1f} kHz{fix}",
                        seg.n_samples,
                        better,
                    )
                )
    padded = tuple(pad_segment(s, lengths[i]) for i, s in enumerate(segments))
    if not played:
        return SnapResult(padded, tuple(notes), (), ())

    held_in = [held_tones(seg) for seg in segments]
    asked = {(i, tone): f for i, tones in enumerate(held_in) for _, tone, _, f in tones}
    apply_notes: list[Note] = []
    steps: list[FrequencyStep] = []
    if all(f == asked.get(key) for key, f in played.items()):  # every held tone plays as asked: nothing to apply
        out = padded
    else:
        out, apply_notes, steps = _apply(padded, played, options["ring"])
    snaps = []
    for i, seg in enumerate(segments):
        n = lengths[i]
        moved = []
        for ch, tone, k, f in held_in[i]:
            s = ToneSnap(seg.name, ch, tone, k, f, played[i, tone], n, fs)
            snaps.append(s)
            if s.shift_hz:
                moved.append(s)
                notes.append(
                    Note(
                        "frequency_snapped",
                        seg.name,
                        f"{ch} tone {k} (#{tone}): {f:.3f} -> {s.played_hz:.3f} Hz ({s.shift_hz:+.3f} Hz, {s.fraction_of_bound:.2f} of the "
                        f"{s.bound_hz:.1f} Hz bound; {round(s.played_hz * n / fs)} cycles per {n} samples)",
                        f,
                        s.played_hz,
                        ch,
                    )
                )
        if moved and max(abs(s.shift_hz) for s in moved) > SUGGEST_TOLERANCE_HZ:
            better = suggest_hold(seg, seg.n_samples, card, n_channels, fs)
            if better is not None:
                notes.append(
                    Note(
                        "hold_suggestion",
                        seg.name,
                        f"hold {better / fs * 1e6:.6g} us ({better} samples) instead of {seg.n_samples / fs * 1e6:.6g} us and every tone needs "
                        f"<= {SUGGEST_TOLERANCE_HZ:g} Hz of snapping (now up to {max(abs(s.shift_hz) for s in moved):.1f} Hz)",
                        seg.n_samples,
                        better,
                    )
                )
    notes += apply_notes
    if warn_snap_hz is not None:
        big = [s for s in snaps if abs(s.shift_hz) > warn_snap_hz]
        if big:
            w = max(big, key=lambda s: abs(s.shift_hz))
            hints = [n.detail for n in notes if n.kind == "hold_too_short" and n.segment == w.segment]
            hints += [f"suggestion: {n.detail}" for n in notes if n.kind == "hold_suggestion" and n.segment == w.segment]
            warn(
                f"wrap snapping moves {len(big)} tone(s) by more than {warn_snap_hz:g} Hz; the largest: segment {w.segment!r}, "
                f"{_label(w.channel, w.index, w.tone)}, {w.asked_hz:.6f} -> {w.played_hz:.6f} Hz ({w.shift_hz:+.1f} Hz, "
                f"{w.fraction_of_bound:.2f} of its {w.bound_hz:.1f} Hz bound)" + (f"; {hints[0]}" if hints else ""),
                SnapWarning
            )
    return SnapResult(out, tuple(notes), tuple(snaps), tuple(steps))


def snap_wraps(
    segments: tuple[Segment, ...],
    card: CardSpec,
    n_channels: int,
    fs: float,
    *,
    stretch: Mapping[str, float],
    max_snap_hz: float | Mapping[str, float] | None = None,
    joint: Joint = "auto",
    warn_snap_hz: float | None = WARN_SNAP_HZ,
    snap: bool = True,
    ring: bool = False,
) -> SnapResult:
    """Pad every segment to a legal length and snap looped constant tones (see module doc), then
    close the loops whose tones move: a looped segment's tone that moves (or ramps) and comes back
    to its start frequency is shifted as a whole, by at most fs / (2N), so that one pass makes a
    whole number of cycles and the wrap is phase-continuous (see :func:`_close_moving_loops`).
    ``stretch`` maps a segment mode to the fraction it may grow beyond its shortest legal length.
    With ``snap=False`` segments only get their shortest legal lengths and no tone moves.
    ``ring``: the last segment is followed by the first (``last_step="ring"``), so a tone asked to
    end the program at the frequency it starts it with keeps its snapped frequency through that
    edge too (it is part of the same constant run; see module doc)."""
    options = {"stretch": stretch, "max_snap_hz": max_snap_hz, "joint": joint, "warn_snap_hz": warn_snap_hz, "snap": snap, "ring": ring}
    held = _snap_holds(segments, card, n_channels, fs, options)
    if not snap:
        return held
    out, notes, snaps, steps = _close_moving_loops(held.segments, segments, fs, snap_limits(max_snap_hz, tuple(s.name for s in segments)), ring)
    if warn_snap_hz is not None:
        big = [s for s in snaps if abs(s.shift_hz) > warn_snap_hz]
        if big:
            w = max(big, key=lambda s: abs(s.shift_hz))
            warn(
                f"closing looped moves shifts {len(big)} tone(s) by more than {warn_snap_hz:g} Hz; the largest: segment {w.segment!r}, "
                f"{_label(w.channel, w.index, w.tone)}, {w.shift_hz:+.1f} Hz ({w.fraction_of_bound:.2f} of its {w.bound_hz:.1f} Hz bound)",
                SnapWarning
            )
    return SnapResult(out, held.notes + notes, held.snaps + snaps, held.steps + steps)


def _close_moving_loops(
    segments: tuple[Segment, ...], asked: tuple[Segment, ...], fs: float, limit_of: Callable[[str], float | None], ring: bool = False
) -> tuple[tuple[Segment, ...], tuple[Note, ...], tuple[ToneSnap, ...], tuple[FrequencyStep, ...]]:
    """Close the loops whose tones move (see :func:`snap_wraps`). ``segments``: after the holds
    were snapped and lengths padded; ``asked``: as resolved, piece for piece.

    In a looped segment, a tone of a channel that is not constant over the segment, present from
    its first sample to its last and asked to end at the frequency it starts with, plays its
    asked trajectory shifted as a whole by delta = (round(C) - C) fs / N (C: cycles per pass of N
    samples as asked), |delta| <= fs/(2N), so that every pass makes whole cycles and ends where it
    starts; the wrap is then phase- and frequency-continuous. Where the segment meets its neighbours the tone steps by what
    differs, phase-continuously (:class:`FrequencyStep` s; the shifts are :class:`ToneSnap` s). A
    tone asked to end elsewhere than it starts cannot wrap continuously and is left alone (its
    wrap shows in the boundaries)."""
    out = list(segments)
    notes: list[Note] = []
    snaps: list[ToneSnap] = []
    steps: list[FrequencyStep] = []
    for i, (seg, pre) in enumerate(zip(segments, asked)):
        if not seg.looped:
            continue
        tracks = []
        for track, pre_track in zip(seg.tracks, pre.tracks):
            if pre_track.constant:
                tracks.append(track)
                continue
            trajectories: dict[int, tuple[float, list[tuple[float, float]]]] = {}
            for k, s0 in enumerate(pre_track.pieces[0].tones):
                found = [next((s for s in p.tones if s.tone == s0.tone), None) for p in pre_track.pieces]
                spans = [s for s in found if s is not None]
                if len(spans) != len(found) or spans[-1].f1_hz != s0.f0_hz:
                    continue
                pieces_f = [(s.f0_hz, s.f1_hz) for s in spans]
                pieces_f += [(s0.f0_hz, s0.f0_hz)] * (len(track.pieces) - len(pieces_f))  # length padding holds the end
                kinds = [s.freq_kind for s in spans] + ["linear"] * (len(track.pieces) - len(spans))
                cycles = sum(span_phase_advance(f0 / fs, f1 / fs, kind, p.n) for (f0, f1), kind, p in zip(pieces_f, kinds, track.pieces))
                base, delta = 0.0, (round(cycles) - cycles) * fs / seg.n_samples  # the smallest shift from what was asked
                limit = limit_of(seg.name)
                if limit is not None and abs(base + delta) > limit:
                    raise QuantizationError(
                        f"channel {track.channel!r} {_label(track.channel, k, s0.tone)}: closing its looped move for whole cycles per pass of "
                        f"{seg.n_samples} samples shifts it by {base + delta:+.1f} Hz, more than max_snap_hz={limit:g}",
                        segment=seg.name,
                        op="snap wrap",
                        value=base + delta,
                    )
                trajectories[s0.tone] = (base + delta, [(f0 + delta, f1 + delta) for f0, f1 in pieces_f])
                snaps.append(ToneSnap(seg.name, track.channel, s0.tone, k, s0.f0_hz, s0.f0_hz + base + delta, seg.n_samples, fs))
                if base + delta:
                    notes.append(
                        Note(
                            "frequency_snapped",
                            seg.name,
                            f"{_label(track.channel, k, s0.tone)}: its looped move shifted by {base + delta:+.3f} Hz for whole cycles per "
                            f"pass of {seg.n_samples} samples",
                            s0.f0_hz,
                            s0.f0_hz + base + delta,
                            track.channel,
                        )
                    )
                played = s0.f0_hz + base + delta
                prev_i, next_i = (i - 1) % len(segments), (i + 1) % len(segments)
                for j, before in ((prev_i, True), (next_i, False)):
                    if j == i or (not ring and (j > i) == before):  # no ring edge: the first has no before, the last no after
                        continue
                    neighbour = out[j] if j < i else segments[j]
                    ends = [s for t in neighbour.tracks if t.channel == track.channel for s in (t.exit if before else t.entry) if s.tone == s0.tone]
                    if not ends:
                        continue
                    theirs = ends[0].f1_hz if before else ends[0].f0_hz
                    if theirs != played:
                        a, b = (neighbour.name, seg.name) if before else (seg.name, neighbour.name)
                        steps.append(FrequencyStep(a, b, track.channel, s0.tone, theirs if before else played, played if before else theirs))
            if trajectories:

                def moved(s: ToneSpan, n: int, trajectories: dict = trajectories) -> ToneSpan:
                    if s.tone not in trajectories:
                        return s
                    f0, f1 = trajectories[s.tone][1][n]
                    return s.with_freqs(f0, f1, s.freq_kind if f0 != f1 else "linear")

                tracks.append(ChannelTrack(track.channel, tuple(p.with_tones(tuple(moved(s, n) for s in p.tones)) for n, p in enumerate(track.pieces))))
            else:
                tracks.append(track)
        if any(a is not b for a, b in zip(tracks, seg.tracks)):
            out[i] = seg.with_tracks(tuple(tracks))
    return tuple(out), tuple(notes), tuple(snaps), tuple(steps)
