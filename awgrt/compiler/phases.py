"""Phases: give every tone span its exact start phase, and check every step-graph boundary.

Phase modes, applied at a segment's start to the tones a channel has there:

- ``continue`` (default): a tone carried over from the previous segment in program order keeps
  its phase: its start phase is its end phase in the previous segment, computed in closed form
  (:func:`~awgrt.ir.shapes.span_turn`), never accumulated sample by sample.
- ``optimise``: the tones' phases are reset to crest-factor-optimised values.
- ``manual``: the tones start at the segment's ``phases=`` or, failing that, the phases they
  were born with (definition or ``add_tone``).

A tone born inside the program (``use_def``, ``add_tone``) starts at its stated phase; tones a
``use_def`` with ``phases="auto"`` brings in are optimised together for low crest factor.

All phases here are in cycles (turns) in [0, 1); radians only at the user-facing edges.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, cast

import numpy as np

from ..errors import ProgramError
from ..ir.boundary import Boundary, ToneJump
from ..ir.resolved import ChannelTrack, Note, Segment, ToneOrigin, ToneSpan
from ..ir.shapes import span_turn

#: Largest phase mismatch (rad) still called continuous; closed-form tracking is ~1e-10 rad.
PHASE_TOLERANCE_RAD = 1e-6
#: Relative frequency / absolute amplitude mismatch still called continuous.
FREQ_TOLERANCE_REL = 1e-12
AMP_TOLERANCE = 1e-12


#: Start phases are rounded to this many fractional bits of a cycle (2**-44 cycle = 3.6e-13 rad),
#: so float noise in carried phases cannot make equal segments look different.
PHASE_BITS = 44


_PHASE_UNITS = 2.0**PHASE_BITS


def canonical_phase(phase_cycles: float) -> float:
    """``phase_cycles`` in [0, 1) rounded to a multiple of 2**-PHASE_BITS."""
    return (round(phase_cycles * _PHASE_UNITS) / _PHASE_UNITS) % 1.0


# ------------------------------------------------------------------------------ crest factor


#: Tones summed at a time by :func:`crest_factor`: its working memory is this many x 2 sqrt(n) complex128.
CREST_CHUNK = 256
#: Tone sets of more than this many tones keep Schroeder's phases: the refinement costs
#: O(tones x window) time and memory (up to 32 bytes per tone and window sample: 32 MiB at this
#: size and the longest window; about 25 ms). Below it, it lowered the peak of Schroeder's
#: phases by 22 % (40 tones) to 37 % (256 tones) on average over mixed sets (uniform, jittered,
#: random and two-band grids, equal and unequal amplitudes).
REFINE_MAX_TONES = 256


def crest_factor(freqs_cps: np.ndarray, amps: np.ndarray, phases_cycles: np.ndarray, n: int) -> float:
    """Peak over RMS of x(k) = sum(a sin(2 pi (f k + phi))) over k = 0 .. n-1.

    Made in blocks of B ~ sqrt(n) samples: with k = jB + m a tone's phasor is
    e^{2 pi i (f jB + phi)} x e^{2 pi i f m}, so the samples are the imaginary part of one complex
    matrix product C (blocks x tones) @ E (tones x B): J + B phasors per tone instead of n sines,
    the rest in BLAS. Every phase is reduced to [-1/2, 1/2) cycle in float64 before its
    exponential (the result is exact to float64 rounding). Tones are taken :data:`CREST_CHUNK`
    at a time: memory independent of the number of tones. Amplitudes are taken relative to the
    largest (the ratio does not depend on their scale; tiny ones must not underflow to 0 / 0)."""
    freqs_cps, amps, phases_cycles = (np.asarray(v, dtype=np.float64) for v in (freqs_cps, amps, phases_cycles))
    top = float(np.max(np.abs(amps))) if amps.size else 0.0
    if not top > 0.0 or n <= 0:
        return 0.0
    amps = amps / top
    rms = math.sqrt(float(np.sum(amps**2)) / 2.0)
    width = max(1, math.isqrt(n - 1) + 1)
    m = np.arange(width, dtype=np.float64)
    starts = np.arange(0, n, width, dtype=np.float64)
    x = np.zeros((starts.size, width))
    for i in range(0, freqs_cps.size, CREST_CHUNK):
        part = slice(i, i + CREST_CHUNK)
        f = freqs_cps[part]
        within = f[:, None] * m
        within -= np.rint(within)
        start = starts[:, None] * f + phases_cycles[part]
        start -= np.rint(start)
        x += ((amps[part] * np.exp(2j * np.pi * start)) @ np.exp(2j * np.pi * within)).imag
    return float(np.max(np.abs(x.ravel()[:n])) / rms)


def _phasor_rows(freqs_cps: np.ndarray, n: int) -> np.ndarray:
    """e^{2 pi i f k} for every tone and k = 0 .. n-1 (tones x n complex128), as products of
    e^{2 pi i f jB} and e^{2 pi i f m} over blocks k = jB + m of B ~ sqrt(n) samples: 2 sqrt(n)
    exponentials per tone instead of n, each of a phase reduced to [-1/2, 1/2) cycle in float64."""
    width = max(1, math.isqrt(n - 1) + 1)
    within = freqs_cps[:, None] * np.arange(width, dtype=np.float64)
    within -= np.rint(within)
    start = freqs_cps[:, None] * np.arange(0, n, width, dtype=np.float64)
    start -= np.rint(start)
    rows = np.exp(2j * np.pi * start)[:, :, None] * np.exp(2j * np.pi * within)[:, None, :]
    return rows.reshape(freqs_cps.size, -1)[:, :n]


def schroeder_phases(freqs_cps: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Schroeder's low-crest phases (cycles, in [0, 1)) for the tones' power distribution: in
    frequency order, tone i gets -sum_{j<i} (i - j) p_j with p the relative powers, made in
    O(tones) from two running sums."""
    order = np.argsort(freqs_cps, kind="stable")
    power = amps[order] ** 2 / float(np.sum(amps**2))
    i = np.arange(power.size, dtype=np.float64)
    below = np.concatenate(([0.0], np.cumsum(power)[:-1]))  # sum of p_j for j < i
    moment = np.concatenate(([0.0], np.cumsum(i * power)[:-1]))  # sum of j p_j for j < i
    out = np.empty(power.size)
    out[order] = -(i * below - moment)
    return out % 1.0


#: Tones whose cycles over P samples are whole to within this many cycles repeat every P samples
#: (:func:`_window`): the sum after one period differs from its start by at most 2 pi times this.
PERIOD_TOLERANCE = 1e-9


def _window(freqs_cps: np.ndarray) -> int:
    """Samples long enough to see the slowest beat between neighbouring tones (bounded), or one
    period when the tones repeat sooner: tones whose spacings are all multiples of the smallest
    one, fs / P with whole cycles of every tone in P samples (a grid such as 1 MHz at 625 MS/s),
    sum to a signal of period P, and one period shows every sample value there is."""
    spacing = np.diff(np.sort(freqs_cps))
    spacing = spacing[spacing > 0]
    if spacing.size == 0:
        return 256
    least = float(spacing.min())
    window = min(4096, max(256, math.ceil(2.0 / least)))
    period = round(1.0 / least)
    if 0 < period < window:
        cycles = freqs_cps * period
        if float(np.max(np.abs(cycles - np.rint(cycles)))) <= PERIOD_TOLERANCE:
            return period
    return window


#: The most tones one ``phases="auto"`` set may have: beyond it a clear error, not a MemoryError
#: later. Memory is linear below it: about 100 bytes per tone while the phases and their two
#: crest factors are made, plus CREST_CHUNK x 2 sqrt(window) complex128 (a few MiB in all at the
#: limit).
MAX_AUTO_TONES = 100_000
#: Tones the remembered phase sets may hold in all (about 40 bytes each): the least recently
#: used sets are forgotten beyond it.
MEMO_TONES = 1_000_000


class _ToneSetMemo:
    """``fn(freqs, amps)`` remembered per tone set (keyed by the arrays' bytes), the least
    recently used sets dropped once they hold more than :data:`MEMO_TONES` tones in all."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        self._fn = fn
        self._seen: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()
        self._tones = 0

    def __call__(self, freqs_cps: np.ndarray, amps: np.ndarray) -> Any:
        key = freqs_cps.tobytes() + amps.tobytes()
        if key in self._seen:
            self._seen.move_to_end(key)
            return self._seen[key][0]
        value = self._fn(freqs_cps, amps)
        self._seen[key] = (value, freqs_cps.size)
        self._tones += freqs_cps.size
        while self._tones > MEMO_TONES and len(self._seen) > 1:
            self._tones -= self._seen.popitem(last=False)[1][1]
        return value

    def cache_clear(self) -> None:
        self._seen.clear()
        self._tones = 0


def _tone_set(freqs_cps: np.ndarray, amps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, a = np.asarray(freqs_cps, dtype=np.float64).ravel(), np.asarray(amps, dtype=np.float64).ravel()
    if f.size > MAX_AUTO_TONES:
        raise ProgramError(f"{f.size} tones to optimise together; phases='auto' takes at most {MAX_AUTO_TONES}", op="phases", value=f.size)
    return f, a


def optimise_phases(freqs_cps: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Deterministic crest-factor-optimised start phases (cycles) for tones at ``freqs_cps``
    (cycles per sample) with amplitudes ``amps`` (see :func:`_optimise`); remembered, since a
    scan point usually asks for the same tones again. At most :data:`MAX_AUTO_TONES` tones."""
    return np.array(_optimised(*_tone_set(freqs_cps, amps)).phases)


class _PhaseSet(NamedTuple):
    phases: np.ndarray  # cycles, read-only
    crest_zero: float  # crest factor over the window with zero phases (for the report)
    crest: float  # ... and with these phases


#: Quasi-Newton iterations of the crest-factor refinement at most (more for fewer than 16 tones,
#: whose iterations are cheap: REFINE_WORK // tones) ...
REFINE_ITERATIONS = 20
REFINE_WORK = 320
#: ... and the steps it remembers (L-BFGS history).
REFINE_MEMORY = 6
#: The refinement stops once an iteration lowers its objective by less than this fraction.
REFINE_TOLERANCE = 1e-3


def _refine(rows: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, float]:
    """L-BFGS from ``start`` on the 8-norm of x(k) = Im(sum_t e^{2 pi i phi_t} z_tk) over the window
    (z: each tone's phasor at every sample, times its amplitude; ``rows``: Im(z) over Re(z), 2
    tones x window, so x = [cos 2 pi phi, sin 2 pi phi] @ rows), a smooth stand-in for the peak;
    the objective is taken relative to its start, so the stopping rule does not depend on the
    tones' number or amplitudes. Each evaluation is two real products of 2 tones x window; steps
    backtrack (halving) until the objective falls by the Armijo fraction. Returns the iterate of
    lowest peak |x| over the window (the start among them) and that peak."""
    two_pi = 2.0 * np.pi
    tones = rows.shape[0] // 2

    def value_and_gradient(phi: np.ndarray) -> tuple[float, np.ndarray, float]:
        turn = two_pi * phi
        cs = np.concatenate((np.cos(turn), np.sin(turn)))
        x = cs @ rows
        x2 = x * x  # x**7 by products: numpy's general power is far slower
        x7 = x2 * x2
        x7 *= x2
        x7 *= x
        g = rows @ x7  # (im @ x7, re @ x7)
        return float(x7 @ x), 8.0 * two_pi * (cs[:tones] * g[tones:] - cs[tones:] * g[:tones]), max(float(x.max()), -float(x.min()))

    phi = np.array(start, dtype=np.float64)
    value, grad, peak = value_and_gradient(phi)
    best, lowest = phi, peak
    if not value > 0.0:
        return phi % 1.0, peak
    scale = 1.0 / value
    value, grad = 1.0, grad * scale
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / y.s)
    for _ in range(max(REFINE_ITERATIONS, REFINE_WORK // tones)):
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(steps):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if steps:
            s, y, _rho = steps[-1]
            q *= float(s @ y) / float(y @ y)
        else:  # the first step moves the phase most asked to move by 1/50 cycle
            q *= 0.02 / max(float(np.max(np.abs(q))), 1e-300)
        for (s, y, rho), a in zip(steps, reversed(alphas)):
            q += s * (a - rho * float(y @ q))
        slope = -float(grad @ q)
        if not slope < 0.0:
            break
        t = 1.0
        for _ in range(16):
            trial = phi - t * q
            new_value, new_grad, peak = value_and_gradient(trial)
            new_value *= scale
            if new_value <= value + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        new_grad *= scale
        s, y = trial - phi, new_grad - grad
        sy = float(s @ y)
        if sy > 1e-12:
            steps.append((s, y, 1.0 / sy))
            del steps[:-REFINE_MEMORY]
        done = value - new_value < REFINE_TOLERANCE * value
        phi, value, grad = trial, new_value, new_grad
        if peak < lowest:
            best, lowest = phi, peak
        if done:
            break
    return best % 1.0, lowest


def _optimise(freqs_cps: np.ndarray, amps: np.ndarray) -> _PhaseSet:
    """Deterministic crest-factor-optimised start phases (cycles) for tones at ``freqs_cps``
    (cycles per sample) with amplitudes ``amps``, and the crest factors before and after over
    the window the phases were chosen on.

    Starts from Schroeder's phases for the tones' power distribution and, for at most
    :data:`REFINE_MAX_TONES` tones, refines them (:func:`_refine`) over a window that spans the
    slowest beat: of the refinement's iterates, Schroeder's among them, the one of lowest peak
    over the window is returned. Beyond that size time and memory are O(tones). Nothing is
    imported on first use.
    """
    freqs_cps = np.asarray(freqs_cps, dtype=np.float64)
    amps = np.asarray(amps, dtype=np.float64)
    n = freqs_cps.size
    top = float(np.max(np.abs(amps))) if n else 0.0
    n_win = _window(freqs_cps)
    if n <= 1 or top == 0.0:
        phi = np.zeros(n)
        phi.flags.writeable = False
        crest = crest_factor(freqs_cps, amps, phi, n_win)
        return _PhaseSet(phi, crest, crest)
    amps = np.abs(amps) / top  # relative amplitudes decide the phases; tiny ones (1e-300) must not underflow to 0/0
    schroeder = schroeder_phases(freqs_cps, amps)
    if n > REFINE_MAX_TONES:
        schroeder.flags.writeable = False
        return _PhaseSet(schroeder, crest_factor(freqs_cps, amps, np.zeros(n), n_win), crest_factor(freqs_cps, amps, schroeder, n_win))

    weights = amps / float(np.sum(amps))
    z = _phasor_rows(freqs_cps, n_win) * weights[:, None]
    rows = np.concatenate((z.imag, z.real))

    best, refined = _refine(rows, schroeder)  # never above Schroeder's peak: the start is an iterate
    best.flags.writeable = False
    rms = math.sqrt(float(np.sum(weights**2)) / 2.0)
    return _PhaseSet(best, float(np.max(np.abs(rows[:n].sum(axis=0)))) / rms, refined / rms)


_optimised = _ToneSetMemo(_optimise)


def _crest_factors(freqs_cps: np.ndarray, amps: np.ndarray) -> tuple[float, float]:
    """Crest factor with zero phases and with the optimised ones (for the report)."""
    found = _optimised(freqs_cps, amps)
    return found.crest_zero, found.crest


# ------------------------------------------------------------------------------ assignment


def assign_phases(
    segments: tuple[Segment, ...], origins: tuple[ToneOrigin, ...], sample_rate_hz: float, *, only: Collection[int] | None = None
) -> tuple[tuple[Segment, ...], tuple[Note, ...]]:
    """Segments with ``phase0_cycles`` set on every span, and notes on optimised phases. With
    ``only`` (segment indices), just those segments are made with their phases (the others are
    returned as they came, their phases only followed through): what needs the phases at a few
    segments, such as the ring edge, does not pay for the rest."""
    fs = sample_rate_hz
    phase: dict[int, float] = {}
    auto: dict[int, float] = {}
    notes: list[Note] = []

    def optimise(spans: tuple[ToneSpan, ...], why: str, segment: str, channel: str) -> dict[int, float]:
        if len(spans) > MAX_AUTO_TONES:
            raise ProgramError(
                f"channel {channel!r}: {len(spans)} tones to optimise together ({why}); phases='auto' takes at most {MAX_AUTO_TONES}",
                segment=segment,
                op="phases",
                value=len(spans),
            )
        f = np.array([s.f0_hz / fs for s in spans])
        a = np.array([float(s.a0) for s in spans])
        phi = _optimised(f, a).phases
        if len(spans) < 2:
            return {s.tone: float(p) for s, p in zip(spans, phi)}
        before, after = _crest_factors(f, a)
        notes.append(Note("phases_optimised", segment, f"{why}: crest factor {before:.2f} (zero phases) -> {after:.2f}", before, after, channel))
        return {s.tone: float(p) for s, p in zip(spans, phi)}

    def birth_phase(span: ToneSpan, piece_spans: tuple[ToneSpan, ...], segment: str, channel: str) -> float:
        origin = origins[span.tone]
        if origin.phase_rad is not None:
            return (origin.phase_rad / (2 * math.pi)) % 1.0
        if span.tone not in auto:
            group = tuple(s for s in piece_spans if origins[s.tone].auto_group == origin.auto_group)
            auto.update(optimise(group, f"tones of {origin.op} (phases='auto')", segment, channel))
        return auto[span.tone]

    out = []
    for index, seg in enumerate(segments):
        make = only is None or index in only
        tracks = []
        for track in seg.tracks:
            entry = track.entry
            if seg.phase_mode == "optimise" and entry:
                phase.update(optimise(entry, "phase_mode='optimise'", seg.name, track.channel))
            elif seg.phase_mode == "manual" and entry:
                given = (seg.manual_phases or {}).get(track.channel)
                for i, s in enumerate(entry):
                    phase[s.tone] = (given[i] / (2 * math.pi)) % 1.0 if given else birth_phase(s, entry, seg.name, track.channel)
            pieces = []
            for piece in track.pieces:
                spans = []
                n = piece.n
                for s in piece.tones:
                    tone = s.tone
                    if tone not in phase:
                        phase[tone] = birth_phase(s, piece.tones, seg.name, track.channel)
                    p0 = canonical_phase(phase[tone])
                    if make:
                        spans.append(s.with_phase(p0))
                    phase[tone] = (p0 + span_turn(s.f0_hz, s.f1_hz, s.freq_kind, n, fs)) % 1.0
                if make:
                    pieces.append(piece.with_tones(tuple(spans)))
            if make:
                tracks.append(ChannelTrack(track.channel, tuple(pieces)))
        out.append(seg.with_tracks(tuple(tracks)) if make else seg)
    return tuple(out), tuple(notes)


# ------------------------------------------------------------------------------ continuity


def _exit_state(track: ChannelTrack, fs: float) -> dict[int, tuple[float, float, float]]:
    last = track.pieces[-1]
    return {
        s.tone: (s.f1_hz, s.a1, (cast(float, s.phase0_cycles) + span_turn(s.f0_hz, s.f1_hz, s.freq_kind, last.n, fs)) % 1.0)
        for s in last.tones
    }


def _entry_state(track: ChannelTrack) -> dict[int, tuple[float, float, float]]:
    return {s.tone: (s.f0_hz, s.a0, cast(float, s.phase0_cycles)) for s in track.entry}


def check_boundary(kind: str, a: Segment, b: Segment, fs: float, snapped: Collection[int] = ()) -> Boundary:
    """Compare the end of segment ``a`` with the start of segment ``b``, tone by tone.
    ``snapped``: tone ids whose frequency steps here because wrap snapping put them on two grids."""
    tones: list[ToneJump] = []
    worst = 0.0
    for ta, tb in zip(a.tracks, b.tracks):
        out, into = _exit_state(ta, fs), _entry_state(tb)
        ch = ta.channel
        for tone in sorted(set(out) - set(into)):
            amp = out[tone][1]
            tones.append(ToneJump(ch, tone, "stops" if amp > AMP_TOLERANCE else "silent_end", amp, 0.0))
        for tone in sorted(set(into) - set(out)):
            amp = into[tone][1]
            tones.append(ToneJump(ch, tone, "starts" if amp > AMP_TOLERANCE else "silent_start", 0.0, amp))
        for tone in sorted(set(out) & set(into)):
            (f1, a1, p1), (f0, a0, p0) = out[tone], into[tone]
            if abs(f1 - f0) > FREQ_TOLERANCE_REL * fs:
                tones.append(ToneJump(ch, tone, "frequency", f1, f0, snapped=tone in snapped))
            if abs(a1 - a0) > AMP_TOLERANCE:
                tones.append(ToneJump(ch, tone, "amplitude", a1, a0))
            jump = 2 * math.pi * (((p0 - p1) + 0.5) % 1.0 - 0.5)
            if max(a1, a0) > AMP_TOLERANCE:  # the phase of a silent tone cannot be seen
                worst = max(worst, abs(jump))
                if abs(jump) > PHASE_TOLERANCE_RAD:
                    tones.append(ToneJump(ch, tone, "phase", 2 * math.pi * p1, 2 * math.pi * p1 + jump))
    return Boundary(kind, a.name, b.name, tuple(tones), worst)


#: Continuity of step-graph edges already checked (oldest dropped first beyond the size).
_EDGE_CACHE: dict[tuple, Boundary] = {}
_EDGE_CACHE_SIZE = 4096


def step_graph_boundaries(
    segments: tuple[Segment, ...], last_step: str, fs: float, snapped_steps: Collection[tuple[str, str, int]] = ()
) -> tuple[Boundary, ...]:
    """Every edge the sequencer can take: wraps of looped segments, program order, ring back.
    ``snapped_steps``: (from segment, to segment, tone id) of the frequency steps wrap snapping made."""
    steps = set(snapped_steps)

    def check(kind: str, a: Segment, b: Segment) -> Boundary:
        snapped = frozenset(t for f, g, t in steps if (f, g) == (a.name, b.name))
        if a.digest is None or b.digest is None:
            return check_boundary(kind, a, b, fs, snapped)
        # the digests fix every trajectory and start phase; tone ids and channel names complete
        # what the comparison reads, so an edge seen before (a scan point) is not checked again
        key = (
            kind, a.name, b.name, a.digest, b.digest, fs, snapped,
            tuple((t.channel, tuple(s.tone for s in t.pieces[-1].tones)) for t in a.tracks),
            tuple((t.channel, tuple(s.tone for s in t.entry)) for t in b.tracks),
        )  # fmt: skip
        found = _EDGE_CACHE.get(key)
        if found is None:
            if len(_EDGE_CACHE) >= _EDGE_CACHE_SIZE:
                _EDGE_CACHE.pop(next(iter(_EDGE_CACHE)))
            found = _EDGE_CACHE[key] = check_boundary(kind, a, b, fs, snapped)
        return found

    out = []
    for i, seg in enumerate(segments):
        if seg.looped:
            out.append(check("wrap", seg, seg))
        if i + 1 < len(segments):
            out.append(check("next", seg, segments[i + 1]))
    if last_step == "ring":
        out.append(check("ring", segments[-1], segments[0]))
    return tuple(out)
