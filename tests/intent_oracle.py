"""An intent-level oracle: what the card must play, worked out from the IntentIR alone, and a
decoder that reads the int16 output and compares.

Written apart from the compiler: it reads the intent's op types and nothing else of awgrt (no
resolve, quantize, snapping, synthesis or calibration code). Shapes and amplitude ramps come from
``tests/reference.py`` (derived from the physics); the AOD model P(f, a) = g(f) sin^2(pi/2 a/v0(f))
is evaluated here from the calibration's coefficients.

**What must be played.** Each segment is walked op by op, each channel on its own timeline, as the
user's manual states it: ``use_def`` / ``add_tone`` / ``remove_tones`` change the tone set,
``hold`` holds (every channel when none is selected), ``move`` / ``ramp_amp_to`` /
``remap_from_def`` take their tones along their shapes, ``time=0`` jumps; at the end every channel
holds to the segment's end. Times become samples by the rule the manual documents: the nearest
sample of the exact product, ties to even. The card's segment may be longer (card-legal lengths):
the extra samples hold the end state.

**What may differ, and by how much** (derived from the intent, never taken from the report):

- a tone's frequency, by at most fs/(2N) where it is held constant through a looped segment of
  N samples (wrap snapping), over the whole run at that frequency (a move or a jump ends a run);
- in a looped segment whose channel moves, by at most fs/(2N) (closing the loop);
- nowhere else (a small measurement margin aside).

**The decoder.** Within each piece (a stretch where every tone follows one smooth trajectory),
windows of :data:`WINDOW` samples are fitted by linear least squares with, per tone, the asked
envelope times the asked phase trajectory, modulated by a polynomial of order :data:`ORDER` in
time (which takes up a frequency offset within the allowed one). Per tone it returns the amplitude at the window's
centre relative to the asked one and the frequency offset; with the residual, each is compared
with the bounds above. A tone played at another frequency, amplitude or shape fails one of them.

**Edges.** Across every edge of the step path (the end of a segment and the start of the next, when
the next keeps its tones' phases; a looped segment whose channels hold, end to start) a window
fits the asked tones with complex amplitudes continuous at the edge (each side its own polynomial,
so a frequency step within the snapping bound is followed): a tone that goes on through the edge
with a phase jump leaves a residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from awgrt.ir.intent import AddTone, Hold, IntentIR, Move, RampAmp, RemapFromDef, RemoveTones, Sync, UseDef
from tests import reference as ref

#: Samples per fitted window.
WINDOW = 1024
#: Each tone's complex amplitude may follow a polynomial of this order over a window: it takes up a
#: frequency offset or a slow ease within the allowed bound (a wrong frequency or shape it cannot).
ORDER = 5
#: Tones closer than this (Hz) in a window are not told apart there: the window is skipped.
MIN_SEPARATION_HZ = 2.5e6


def to_samples(t: Fraction, fs: float) -> int:
    """The manual's rounding rule: nearest sample of the exact product, ties to even."""
    return round(t * Fraction(fs))


@dataclass
class _Tone:
    key: int  # the oracle's own identity
    f: float
    a: float


@dataclass
class Span:
    """One tone over one piece, as asked. On a calibrated channel ``a0``/``a1`` are optical powers."""

    key: int
    f0: float
    f1: float
    fkind: str
    a0: float
    a1: float
    akind: str
    rate: float | None  # T/tau of an exp ramp with a time constant

    def freq(self, u: np.ndarray) -> np.ndarray:
        return self.f0 + (self.f1 - self.f0) * ref.progress(self.fkind, u) if self.f1 != self.f0 else np.full(np.shape(u), self.f0)

    def phase_cycles(self, k: np.ndarray, n: int, fs: float) -> np.ndarray:
        """Phase advance (cycles) from the piece start at sample offsets ``k`` of a piece of ``n``;
        past ``n`` the tone holds its end frequency (the card's extra samples)."""
        inside = np.minimum(k, n)
        u = inside / n
        return self.f0 / fs * inside + (self.f1 - self.f0) / fs * n * ref.progress_integral(self.fkind, u) + self.f1 / fs * (k - inside)

    def level(self, u: np.ndarray, optical: bool = False) -> np.ndarray:
        """The asked RF amplitude, or with ``optical`` the asked optical power, at ``u``. An
        adiabatic ramp keeps the trap frequency's rate constant: the trap frequency goes as the RF
        amplitude in the linear regime, as the square root of the optical power on a calibrated
        channel, and its inverse follows the smoothstep."""
        if self.a0 == self.a1:
            return np.full(np.shape(u), self.a0)
        kind = "geo_ramp" if self.akind == "exp" and self.rate is None else self.akind
        if optical and kind == "adiabatic_ramp":
            return ref.amplitude(math.sqrt(self.a0), math.sqrt(self.a1), kind, u, self.rate) ** 2
        return ref.amplitude(self.a0, self.a1, kind, u, self.rate)


@dataclass
class Piece:
    n0: int
    n1: int
    spans: list[Span]


@dataclass
class SegmentPlan:
    name: str
    looped: bool
    n_asked: int
    pieces: dict[str, list[Piece]] = field(default_factory=dict)


class AODModel:
    """P(f, a) = g(f) sin^2(pi/2 a / v0(f)), powers as fractions of the largest power every
    frequency of the band gives at ``safety`` v0 (the documented normalisation)."""

    def __init__(self, cal) -> None:
        self.lo, self.hi = cal.band_hz
        self.g, self.v0, self.safety = np.array(cal.g), np.array(cal.v0), cal.safety
        grid = np.linspace(self.lo, self.hi, 1025)
        self.p_ref = float(np.min(self._poly(self.g, grid))) * math.sin(math.pi / 2 * self.safety) ** 2

    def _poly(self, c: np.ndarray, f: np.ndarray) -> np.ndarray:
        x = (2 * np.asarray(f, dtype=float) - self.lo - self.hi) / (self.hi - self.lo)
        out = np.zeros_like(x)
        for coef in c[::-1]:
            out = out * x + coef
        return out

    def rf(self, f: np.ndarray, p: np.ndarray) -> np.ndarray:
        s = np.minimum(np.asarray(p) * self.p_ref / self._poly(self.g, f), math.sin(math.pi / 2 * self.safety) ** 2)
        return 2 / math.pi * self._poly(self.v0, f) * np.arcsin(np.sqrt(s))


def interpret(intent: IntentIR, fs: float) -> list[SegmentPlan]:
    """What every channel must play in every segment (see module doc)."""
    defs = {d.name: d for d in intent.definitions}
    tones: dict[str, list[_Tone]] = {ch: [] for ch in intent.logical_channels}
    keys = iter(range(1 << 30))
    return [_walk(seg, intent.logical_channels, defs, tones, keys, fs) for seg in intent.segments]


def _walk(seg, chans: tuple[str, ...], defs: dict, tones: dict[str, list[_Tone]], keys, fs: float) -> SegmentPlan:
    """One segment, op by op; ``tones`` carries each channel's tones from segment to segment."""
    cursor = {ch: Fraction(0) for ch in chans}
    raw: dict[str, list[tuple[Fraction, Fraction, list[Span]]]] = {ch: [] for ch in chans}

    def spans(ch: str, targets: dict, fkind: str, akind: str, rate: float | None) -> list[Span]:
        out = []
        for i, t in enumerate(tones[ch]):
            f1, a1 = targets.get(i, (t.f, t.a))
            out.append(Span(t.key, t.f, f1, fkind, t.a, a1, akind, rate))
            t.f, t.a = f1, a1
        return out

    def timed(ch: str, time_s: float | Fraction, made: list[Span]) -> None:
        t0 = cursor[ch]
        cursor[ch] = t0 + Fraction(time_s)
        raw[ch].append((t0, cursor[ch], made))

    def sync() -> None:
        end = max(cursor.values())
        for ch in chans:
            if cursor[ch] < end:
                timed(ch, end - cursor[ch], spans(ch, {}, "linear", "linear", None))

    for op in seg.ops:
        if isinstance(op, Sync):
            sync()
        elif isinstance(op, Hold):
            if op.channel is None:
                sync()
                for ch in chans:
                    timed(ch, op.time_s, spans(ch, {}, "linear", "linear", None))
            else:
                timed(op.channel, op.time_s, spans(op.channel, {}, "linear", "linear", None))
        elif isinstance(op, UseDef):
            d = defs[op.definition]
            tones[op.channel] = [_Tone(next(keys), f, a) for f, a in zip(d.freqs_hz, d.amps)]
        elif isinstance(op, AddTone):
            at = len(tones[op.channel]) if op.index is None else op.index
            tones[op.channel].insert(at, _Tone(next(keys), op.freq_hz, op.amp))
        elif isinstance(op, RemoveTones):
            tones[op.channel] = [t for i, t in enumerate(tones[op.channel]) if i not in set(op.idxs)]
        elif isinstance(op, (Move, RampAmp, RemapFromDef)):
            ch, ts = op.channel, tones[op.channel]
            rate = None
            if isinstance(op, Move):
                assert op.dx_um is None, "the oracle takes moves in hertz"
                idxs = list(op.idxs) if op.idxs is not None else list(range(len(ts)))
                dfs = list(op.df_hz) * (len(idxs) if len(op.df_hz) == 1 else 1)
                targets = {i: (ts[i].f + df, ts[i].a) for i, df in zip(idxs, dfs)}
                fkind, akind = op.kind, "linear"
            elif isinstance(op, RampAmp):
                idxs = list(op.idxs) if op.idxs is not None else list(range(len(ts)))
                amps = list(op.amps) * (len(idxs) if len(op.amps) == 1 else 1)
                targets = {i: (ts[i].f, a) for i, a in zip(idxs, amps)}
                fkind, akind = "linear", op.kind
                rate = op.time_s / op.tau_s if op.kind == "exp" and op.tau_s else None
            else:
                target = defs[op.target_def]
                dst = list(range(len(target.freqs_hz))) if op.dst == "all" else list(op.dst)
                targets = {i: (target.freqs_hz[j], target.amps[j]) for i, j in zip(op.src, dst)}
                if op.dst == "all":
                    targets.update({i: (ts[i].f, 0.0) for i in range(len(ts)) if i not in targets})
                fkind = akind = op.kind
            if op.time_s == 0:
                for i, (f1, a1) in targets.items():
                    ts[i].f, ts[i].a = f1, a1
            else:
                timed(ch, op.time_s, spans(ch, targets, fkind, akind, rate))
            if isinstance(op, RemapFromDef) and op.dst == "all":
                tones[ch] = [ts[i] for i in op.src]
        else:
            raise AssertionError(f"the oracle does not know {type(op).__name__}")
    sync()
    n_asked = to_samples(max(cursor.values()), fs)
    plan = SegmentPlan(seg.name, seg.mode == "wait_trig" or (seg.mode == "loop_n" and seg.loops > 1), n_asked)
    for ch in chans:
        plan.pieces[ch] = [Piece(to_samples(t0, fs), to_samples(t1, fs), s) for t0, t1, s in raw[ch] if to_samples(t1, fs) > to_samples(t0, fs)]
    return plan


def frequency_bounds(plans: list[SegmentPlan], lengths: dict[str, int], fs: float) -> dict[tuple[str, str, int, int], tuple[float, float]]:
    """(segment, channel, piece, tone key) -> the largest allowed frequency offset (Hz) at the
    piece's start and end (see module doc), from the segment lengths the card holds."""
    runs: dict[int, int] = {}  # tone key -> current run
    last_f: dict[int, float] = {}
    run_bound: dict[int, float] = {}
    span_runs = {}
    n_runs = 0
    for plan in plans:
        for ch, pieces in plan.pieces.items():
            constant = _constant(pieces)
            for pi, piece in enumerate(pieces):
                for s in piece.spans:
                    if s.key not in runs or s.f0 != last_f[s.key]:
                        runs[s.key], n_runs = n_runs, n_runs + 1
                    start = runs[s.key]
                    if s.f1 != s.f0:
                        runs[s.key], n_runs = n_runs, n_runs + 1
                    last_f[s.key] = s.f1
                    span_runs[plan.name, ch, pi, s.key] = (start, runs[s.key])
                    if plan.looped and constant:
                        run_bound[start] = max(run_bound.get(start, 0.0), fs / (2 * lengths[plan.name]))
    out = {}
    for (seg, ch, pi, key), (r0, r1) in span_runs.items():
        plan = next(p for p in plans if p.name == seg)
        closing = fs / (2 * lengths[seg]) if plan.looped else 0.0  # a looped move closed for whole cycles
        out[seg, ch, pi, key] = (max(run_bound.get(r0, 0.0), closing), max(run_bound.get(r1, 0.0), closing))
    return out


@dataclass
class Finding:
    segment: str
    channel: str
    sample: int
    what: str

    def __str__(self) -> str:
        return f"segment {self.segment!r}, channel {self.channel!r}, window at sample {self.sample}: {self.what}"


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    windows: int = 0
    tones_compared: int = 0
    pieces: int = 0
    skipped: int = 0
    edges: int = 0


def check_program(intent: IntentIR, program, *, gain: float = 1.0, full_scale: int = 32767) -> Verdict:
    """Compare ``program`` (a compiled program: int16 slots and steps) with ``intent``."""
    fs = program.sample_rate_hz
    plans = interpret(intent, fs)
    slot_of = {name: i for i, s in enumerate(program.segments) for name in s.names}
    lengths = {p.name: program.segments[slot_of[p.name]].n_samples for p in plans}
    bounds = frequency_bounds(plans, lengths, fs)
    models = {ch: AODModel(cal) for ch, cal in intent.calibrations}
    verdict = Verdict()
    for plan in plans:
        n_card = lengths[plan.name]
        if n_card < plan.n_asked:
            verdict.findings.append(Finding(plan.name, "-", 0, f"{n_card} samples on the card, {plan.n_asked} asked"))
            continue
        data = program.segments[slot_of[plan.name]].data
        for ch, pieces in plan.pieces.items():
            x = data[:, program.hardware_channels[ch]].astype(np.float64)
            for pi, piece in enumerate(pieces):
                verdict.pieces += 1
                n1 = n_card if pi == len(pieces) - 1 else piece.n1  # the card's extra samples hold the end state
                _check_piece(verdict, plan.name, ch, pi, piece, n1, x, fs, bounds, models.get(ch), gain * full_scale)
    edges = [(a, b) for a, b in zip(plans, plans[1:]) if _continues(intent, b.name)]
    edges += [(p, p) for p in plans if p.looped and all(_constant(pieces) for pieces in p.pieces.values())]  # seamless wraps
    for a, b in edges:
        for ch in a.pieces:
            hw = program.hardware_channels[ch]
            x = np.concatenate([program.segments[slot_of[a.name]].data[-EDGE:, hw], program.segments[slot_of[b.name]].data[:EDGE, hw]]).astype(np.float64)
            _check_edge(verdict, a, b, ch, lengths, x, fs, models.get(ch), gain * full_scale)
    return verdict


#: Samples taken on each side of an edge (the end of one segment, the start of the next).
EDGE = WINDOW // 2


def _continues(intent: IntentIR, name: str) -> bool:
    """Whether the segment keeps its tones' phases from the one before (no phase reset)."""
    return next(s for s in intent.segments if s.name == name).phase_mode == "continue"


def _constant(pieces: list[Piece]) -> bool:
    return all(s.f0 == s.f1 and s.a0 == s.a1 for p in pieces for s in p.spans) and len({tuple(s.key for s in p.spans) for p in pieces}) <= 1


def trajectories(plan: SegmentPlan, ch: str, n_card: int, fs: float, model, lsb_scale: float) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per tone key of ``ch`` in ``plan``: its phase (cycles, from 0 where it first plays here) at
    samples 0 .. n_card (one past the end) and its asked amplitude (LSB) at samples 0 .. n_card-1
    (zero where it does not play). The card's extra samples hold the end state."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pieces = plan.pieces[ch]
    for pi, piece in enumerate(pieces):
        n = piece.n1 - piece.n0
        end = n_card if pi == len(pieces) - 1 else piece.n1
        k = np.arange(end + 1 - piece.n0, dtype=np.float64)
        for s in piece.spans:
            phase, amp = out.setdefault(s.key, (np.full(n_card + 1, np.nan), np.zeros(n_card)))
            start = phase[piece.n0] if not np.isnan(phase[piece.n0]) else 0.0
            phase[piece.n0 : end + 1] = start + s.phase_cycles(k, n, fs)
            u = np.minimum(k[:-1] / n, 1.0)
            level = s.level(u, optical=model is not None)
            amp[piece.n0 : end] = (model.rf(s.freq(u), level) if model is not None else level) * lsb_scale
    return out


def _check_edge(verdict, a: SegmentPlan, b: SegmentPlan, ch: str, lengths, x, fs, model, lsb_scale: float) -> None:
    """A window across the edge from ``a`` to ``b`` (``a`` itself: its wrap) fits the asked tones,
    each with a complex amplitude that is continuous at the edge: a tone that goes on through the
    edge must be phase continuous there (a jump, or a tone's phase started afresh, leaves a
    residual)."""
    na, nb = lengths[a.name], lengths[b.name]
    ta = trajectories(a, ch, na, fs, model, lsb_scale)
    tb = trajectories(b, ch, nb, fs, model, lsb_scale)
    cols, freqs = [], []
    tau = (np.arange(2 * EDGE) - EDGE + 0.5) / EDGE
    # a complex amplitude continuous at the edge, its own polynomial on each side: a frequency step
    # (wrap snapping's, within its bound) is a kink it can follow, a phase jump is not
    shapes = [np.ones_like(tau)] + [side**j for j in range(1, ORDER + 1) for side in (np.minimum(tau, 0.0), np.maximum(tau, 0.0))]
    for key in sorted(set(ta) | set(tb)):
        phase = np.full(2 * EDGE, np.nan)
        amp = np.zeros(2 * EDGE)
        carry = 0.0
        if key in ta:
            pa, aa = ta[key]
            phase[:EDGE], amp[:EDGE] = pa[na - EDGE : na], aa[na - EDGE :]
            carry = pa[na] if np.isfinite(pa[na]) else 0.0  # where it stands at the edge
        if key in tb:
            pb, ab = tb[key]
            phase[EDGE:], amp[EDGE:] = carry + pb[:EDGE] - (pb[0] if np.isfinite(pb[0]) else 0.0), ab[:EDGE]
        playing = np.flatnonzero((amp > 0) & np.isfinite(phase))
        if playing.size < 2 or np.max(amp) < 0.5:
            continue
        freqs.append(float(np.median(np.diff(phase[playing])) * fs))
        carrier = 2 * np.pi * np.nan_to_num(phase - phase[playing[0]])
        for shape in shapes:
            cols += [amp * np.cos(carrier) * shape, amp * np.sin(carrier) * shape]
    fsorted = np.sort(freqs)
    if not cols or (len(fsorted) > 1 and np.min(np.diff(fsorted)) < MIN_SEPARATION_HZ):
        verdict.skipped += 1
        return
    verdict.edges += 1
    m = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(m, x, rcond=None)
    rms = float(np.sqrt(np.mean((x - m @ coef) ** 2)))
    total = float(sum(np.max(np.abs(c)) for c in cols[:: 2 * len(shapes)]))
    if rms > 1.0 + 3e-4 * total:
        what = "wrap" if a is b else f"edge to {b.name!r}"
        verdict.findings.append(Finding(a.name, ch, na - EDGE, f"{what}: residual {rms:.1f} LSB rms across it (a phase jump?)"))


def _check_piece(verdict, seg, ch, pi, piece: Piece, n1_card: int, x, fs, bounds, model, lsb_scale: float) -> None:
    n = piece.n1 - piece.n0
    starts = sorted({piece.n0 + 2, (piece.n0 + n1_card - WINDOW) // 2, n1_card - WINDOW - 2})
    for w0 in starts:
        if w0 < piece.n0 or w0 + WINDOW > n1_card:
            verdict.skipped += 1
            continue
        k = np.arange(w0, w0 + WINDOW) - piece.n0
        u = np.minimum(k / n, 1.0)  # past the asked end: the end state held
        cols, who = [], []
        freqs = []
        tau = np.linspace(-1.0, 1.0, WINDOW)
        for s in piece.spans:
            f = s.freq(u)
            phase = s.phase_cycles(k, n, fs)
            level = s.level(u, optical=model is not None)
            rf = model.rf(f, level) if model is not None else level
            amp = rf * lsb_scale
            if np.max(amp) < 0.5:  # below half an LSB: nothing to fit
                continue
            freqs.append(float(f[WINDOW // 2]))
            carrier = 2 * np.pi * (phase - phase[0])
            for j in range(ORDER + 1):
                cols += [amp * np.cos(carrier) * tau**j, amp * np.sin(carrier) * tau**j]
            who.append((s, float(amp[WINDOW // 2])))
        fsorted = np.sort(freqs)
        if len(fsorted) > 1 and np.min(np.diff(fsorted)) < MIN_SEPARATION_HZ:
            verdict.skipped += 1
            continue
        verdict.windows += 1
        seg_x = x[w0 : w0 + WINDOW]
        if not cols:
            if np.max(np.abs(seg_x)) > 1:
                verdict.findings.append(Finding(seg, ch, w0, f"silence asked, peak {np.max(np.abs(seg_x)):.0f} LSB played"))
            continue
        a = np.stack(cols, axis=1)
        coef, *_ = np.linalg.lstsq(a, seg_x, rcond=None)
        resid = seg_x - a @ coef
        rms = float(np.sqrt(np.mean(resid**2)))
        total = sum(level for _, level in who)
        if rms > 1.0 + 3e-4 * total:
            verdict.findings.append(Finding(seg, ch, w0, f"residual {rms:.1f} LSB rms against what was asked (tones {[round(f / 1e6, 4) for f in freqs]} MHz)"))
        for t, (s, level) in enumerate(who):
            verdict.tones_compared += 1
            c = coef[2 * (ORDER + 1) * t : 2 * (ORDER + 1) * (t + 1)]
            a0 = complex(c[0], -c[1])
            a1 = complex(c[2], -c[3])
            ratio = abs(a0)
            if abs(ratio - 1) > 0.01 + 2 / level:
                verdict.findings.append(Finding(seg, ch, w0, f"tone at {freqs[t] / 1e6:.4f} MHz plays {ratio:.4f} of the asked amplitude ({level:.0f} LSB)"))
            if abs(a0) > 0:
                offset = (a1 / a0).imag * fs / (np.pi * WINDOW)
                b0, b1 = bounds[seg, ch, pi, s.key]
                allowed = max(b0, b1) * 1.1 + 0.02 * fs / WINDOW
                if abs(offset) > allowed:
                    verdict.findings.append(
                        Finding(seg, ch, w0, f"tone at {freqs[t] / 1e6:.4f} MHz plays {offset:+.0f} Hz off, {allowed:.0f} Hz allowed")
                    )


def decode_entry(word: int) -> tuple[int, int, int, bool, bool]:
    """(segment, next, loops, loop until trigger, end) of a 64-bit step word, bit by bit."""
    w = int(word) % (1 << 64)
    return w & 0xFFFF, (w >> 16) & 0xFFFF, (w >> 32) & 0xFFFFF, bool((w >> 62) & 1), bool((w >> 63) & 1)


def check_steps(intent: IntentIR, program) -> list[str]:
    """The step table the card holds, decoded from its 64-bit words, against the intent: one step
    per segment in program order, its segment's slot, loops (``loop_n``: the count; otherwise 1),
    loop-until-trigger exactly on ``wait_trig``, each step leading to the next, the last one to
    the first (``ring``) or ending the sequence (``end``); the start step is 0."""
    slot_of = {name: i for i, s in enumerate(program.segments) for name in s.names}
    problems = []
    if len(program.steps) != len(intent.segments):
        return [f"{len(program.steps)} steps for {len(intent.segments)} segments"]
    if program.start_step != 0:
        problems.append(f"start step {program.start_step}")
    for i, (seg, step) in enumerate(zip(intent.segments, program.steps)):
        last = i == len(intent.segments) - 1
        end = last and intent.last_step == "end"
        want = (slot_of[seg.name], 0 if last else i + 1, seg.loops if seg.mode == "loop_n" else 1, seg.mode == "wait_trig", end)
        have = decode_entry(step.entry)
        if end:
            have = (*have[:1], 0, *have[2:])  # the next field of an END step is never followed
        if have != want:
            problems.append(f"step {i} ({seg.name!r}): (slot, next, loops, on_trigger, end) {have}, asked {want}")
    return problems
