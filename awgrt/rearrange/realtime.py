"""Real-time rearrangement: a camera's occupancy in, the card armed with the moves out.

A :class:`Rearranger` knows, per logical channel, a 1D :class:`TweezerArray` (its sites, the
target sites, amplitudes or optical powers) and a :class:`Move`. :meth:`Rearranger.prepare` does
once everything that does not depend on the occupancy: it compiles the **load hold** (every
site, crest-factor-optimised phases, frequencies snapped so that it wraps seamlessly) and the
**target hold** (the target sites, phases as ``phases="auto"`` gives them) with the ordinary
compiler, builds the move tables (:mod:`awgrt.rearrange.tables`) and uploads the card with two
reserved slots for moves. :meth:`Rearranger.shot` then plans the assignment
(:func:`~awgrt.rearrange.plan_1d`'s order-keeping rule), sums the move segment from the tables,
writes it into a reserved slot and arms the step that plays it, while the card keeps looping in
the load hold. It returns a :class:`ShotReport`; ``runtime.program`` then describes exactly what
the card holds and ``runtime.verify()`` reads it back.

How the card is driven while it plays (the step table, the two cycles, the gate step and the
manual's rules they rest on): :mod:`awgrt.rearrange.cycles`.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .._progress import Progress
from .._warn import warn
from ..builder import AWGProgramBuilder
from ..calibration import AODCalibration, PositionCalibration
from ..compiler.compile import compile_sequence_program
from ..compiler.quantize import quantize_resolved_ir
from ..errors import ClipError, ClipWarning, ProgramError
from ..ir.digest import digest_of
from ..ir.intent import finite_real
from ..ir.shapes import FREQ_SHAPES
from ..program import CompiledSegment, CompiledSequenceProgram
from ..runtime import Runtime
from .cycles import CycledCard
from .plan import Plan1D, assign
from .tables import PEAK_SLOPE, TABLE_KINDS, ChannelTables, Tone, build_tables, sum_rows


@dataclass(frozen=True)
class Move:
    """How atoms move: ``time_s`` along ``kind`` (a frequency shape: linear, min_jerk, cosine,
    smoothstep), after the tones of empty sites and spare atoms ramp off over ``ramp_s`` along
    ``ramp_kind``. ``max_chirp_hz_per_s``: the largest rate of frequency change a move may have
    (None: no limit); it bounds how far an atom can go (``reach_hz``)."""

    time_s: float = 100e-6
    kind: str = "min_jerk"
    ramp_s: float = 10e-6
    ramp_kind: str = "min_jerk"
    max_chirp_hz_per_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("time_s", "ramp_s"):
            v = getattr(self, name)
            if not finite_real(v) or v <= 0:
                raise ProgramError(f"Move {name}={v!r} must be a number of seconds > 0", op="Move", value=v)
        if self.kind not in PEAK_SLOPE:
            raise ProgramError(f"Move kind={self.kind!r} must be one of {sorted(PEAK_SLOPE)}", op="Move", value=self.kind)
        if self.ramp_kind not in FREQ_SHAPES:
            raise ProgramError(f"Move ramp_kind={self.ramp_kind!r} must be one of {sorted(FREQ_SHAPES)}", op="Move", value=self.ramp_kind)
        c = self.max_chirp_hz_per_s
        if c is not None and (not finite_real(c) or c <= 0):
            raise ProgramError(f"Move max_chirp_hz_per_s={c!r} must be a number > 0, or None", op="Move", value=c)

    @property
    def reach_hz(self) -> float | None:
        """The furthest a move may go within ``max_chirp_hz_per_s`` (None: no limit)."""
        if self.max_chirp_hz_per_s is None:
            return None
        return self.max_chirp_hz_per_s * self.time_s / PEAK_SLOPE[self.kind]


log = logging.getLogger(__name__)


def _floats(value: object, n: int, what: str) -> tuple[float, ...]:
    """One number for all, or ``n`` numbers; each finite."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        out = (float(value),) * n
    else:
        try:
            out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            raise ProgramError(f"{what}={value!r} must be a number or {n} numbers", op="TweezerArray", value=value) from None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise ProgramError(f"{what} must be one finite number or {n} of them, got {len(out)}", op="TweezerArray", value=value)
    return out


@dataclass(frozen=True)
class TweezerArray:
    """One channel's 1D array: its sites, in Hz (``sites_hz``) or in µm through a ``position``
    calibration (``sites_um``), increasing; the ``target`` sites (indices, increasing); ``amp``
    per site (one for all, or one each) and ``target_amp`` per target (default: the target
    site's ``amp``): fractions of full scale, or with an AOD ``calibration`` optical powers
    (fractions of its maximum); ``move``: how atoms move on this channel."""

    target: tuple[int, ...]
    sites_hz: tuple[float, ...] | None = None
    sites_um: tuple[float, ...] | None = None
    amp: float | tuple[float, ...] = 0.05
    target_amp: float | tuple[float, ...] | None = None
    calibration: AODCalibration | None = None
    position: PositionCalibration | None = None
    move: Move = field(default_factory=Move)

    def __post_init__(self) -> None:
        if (self.sites_hz is None) == (self.sites_um is None):
            raise ProgramError("give the sites in hertz (sites_hz=) or in micrometres (sites_um=, with position=)", op="TweezerArray")
        if self.sites_um is not None:
            if not isinstance(self.position, PositionCalibration):
                raise ProgramError("sites_um needs position= (a PositionCalibration)", op="TweezerArray", value=type(self.position).__name__)
            hz = np.asarray(self.position.frequency_hz(np.asarray(self.sites_um, dtype=np.float64)), dtype=np.float64)
        else:
            hz = np.asarray(self.sites_hz, dtype=np.float64)
        if hz.ndim != 1 or hz.size < 1 or not np.all(np.isfinite(hz)) or np.any(np.diff(hz) <= 0) or hz[0] <= 0:
            raise ProgramError(f"sites must be positive, finite and increasing, got {hz.tolist()[:8]}", op="TweezerArray", value=hz.size)
        given = self.sites_hz if self.sites_um is None else self.sites_um
        assert given is not None  # exactly one was given (checked above)
        object.__setattr__(self, "sites_hz" if self.sites_um is None else "sites_um", tuple(float(v) for v in given))
        object.__setattr__(self, "_hz", tuple(float(v) for v in hz))
        try:
            target = tuple(int(t) for t in self.target if not isinstance(t, bool) and float(t) == int(t))
        except (TypeError, ValueError):
            raise ProgramError(f"target={self.target!r} must be site indices", op="TweezerArray", value=self.target) from None
        if not target or len(target) != len(tuple(self.target)) or any(b <= a for a, b in zip(target, target[1:])) or target[0] < 0 or target[-1] >= hz.size:
            raise ProgramError(f"target must be increasing site indices in 0..{hz.size - 1}", op="TweezerArray", value=tuple(self.target)[:8])
        object.__setattr__(self, "target", target)
        amps = _floats(self.amp, hz.size, "amp")
        object.__setattr__(self, "amp", amps)
        t_amps = tuple(amps[t] for t in target) if self.target_amp is None else _floats(self.target_amp, len(target), "target_amp")
        object.__setattr__(self, "target_amp", t_amps)
        if any(a < 0 for a in amps + t_amps):
            raise ProgramError("amplitudes must be >= 0", op="TweezerArray", value=min(amps + t_amps))
        if self.calibration is not None and not isinstance(self.calibration, AODCalibration):
            raise ProgramError("calibration must be an AODCalibration", op="TweezerArray", value=type(self.calibration).__name__)
        if not isinstance(self.move, Move):
            raise ProgramError("move must be a Move", op="TweezerArray", value=type(self.move).__name__)

    @property
    def site_freqs_hz(self) -> tuple[float, ...]:
        """The sites as asked, in Hz (before the load hold snaps them)."""
        return self._hz  # type: ignore[attr-defined]

    @property
    def n_sites(self) -> int:
        return len(self.site_freqs_hz)


@dataclass(frozen=True)
class PrepareReport:
    """What :meth:`Rearranger.prepare` made: the played site and target frequencies per channel,
    the move segment's length, the tables' memory, the largest phase-matching deviation, and the
    seconds it took per stage."""

    site_hz: Mapping[str, tuple[float, ...]]
    target_hz: Mapping[str, tuple[float, ...]]
    move_samples: int
    table_bytes: int
    pairs: Mapping[str, int]
    correction_hz: Mapping[str, float]
    timings_s: Mapping[str, float]

    def __str__(self) -> str:
        per = ", ".join(f"{ch}: {n} pairs, correction <= {self.correction_hz[ch] / 1e3:.2f} kHz" for ch, n in self.pairs.items())
        t = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.timings_s.items())
        return f"prepared: move segment {self.move_samples} samples; tables {self.table_bytes / 2**20:.1f} MiB ({per}); {t}"


@dataclass(frozen=True)
class ShotReport:
    """What one :meth:`Rearranger.shot` did: per channel the :class:`~awgrt.rearrange.Plan1D`
    (moves source -> target site, dropped atoms, unfilled targets); the cycle armed (``"A"`` or
    ``"B"``) and the step the next trigger leaves; the slots and step entries written, with
    the samples and bytes; the samples clipped; and the seconds per stage (plan, synth, write,
    total: from the call to the card armed)."""

    plans: Mapping[str, Plan1D]
    cycle: str
    load_step: int
    slots_written: tuple[int, ...]
    steps_written: tuple[int, ...]
    samples_written: int
    bytes_written: int
    clipped: int
    timings_s: Mapping[str, float]

    @property
    def complete(self) -> bool:
        return all(p.complete for p in self.plans.values())

    def __str__(self) -> str:
        lines = [
            f"cycle {self.cycle}: armed after step {self.load_step}'s trigger; wrote slots {list(self.slots_written)} "
            f"({self.bytes_written} bytes), steps {list(self.steps_written)}"
        ]
        for ch, p in self.plans.items():
            lines.append(f"  {ch}: {len(p.moves)} moves, {len(p.dropped)} spare atoms off, unfilled targets {list(p.unfilled)}")
        lines.append("  " + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in self.timings_s.items()))
        return "\n".join(lines)


def _plan_bytes(plans: Mapping[str, Plan1D]) -> bytes:
    """The plans' moves and unfilled targets as bytes (what a move slot's digest covers)."""
    parts = []
    for name, p in plans.items():
        parts += [name.encode(), np.asarray(p.moves, np.int32).tobytes(), b"|", np.asarray(p.unfilled, np.int32).tobytes(), b";"]
    return b"".join(parts)


@dataclass
class _Channel:
    """A channel's prepared state."""

    name: str
    column: int
    array: TweezerArray
    tables: ChannelTables
    work: np.ndarray  # float32 buffer of the move segment's length
    scratch: tuple[np.ndarray, ...]  # buffers of the move part: two complex64 (factored tables) or one float32 (pair tables)

    @functools.cached_property
    def target_index(self) -> dict[int, int]:
        """Target site -> its row in the target tables."""
        return {t: j for j, t in enumerate(self.array.target)}


class Rearranger(CycledCard):
    """Real-time rearrangement on one card (see module doc). ``arrays``: a :class:`TweezerArray`
    per logical channel (or one array, on channel ``"X"``); ``load_hold_s`` / ``target_hold_s``:
    the length of one pass of each hold (a trigger ends a hold at the end of a pass; the
    frequency snapping for a seamless wrap moves a tone at most fs / (2 x pass samples));
    ``sample_rate_hz``: the card's clock; ``tables``: ``"pairs"`` (a row per site-target pair:
    the fastest shots), ``"factored"`` (a phasor row per site and per target: far less memory,
    for arrays of one uniform RF amplitude without calibration) or ``"auto"`` (pairs up to
    512 MiB per channel, factored beyond where they apply); see :mod:`awgrt.rearrange.tables`."""

    def __init__(
        self,
        arrays: Mapping[str, TweezerArray] | TweezerArray,
        *,
        load_hold_s: float = 20e-6,
        target_hold_s: float = 20e-6,
        sample_rate_hz: float = 625e6,
        tables: str = "auto",
    ) -> None:
        if tables not in TABLE_KINDS:
            raise ProgramError(f"tables={tables!r} must be one of {TABLE_KINDS}", op="Rearranger", value=tables)
        self.tables = tables
        if isinstance(arrays, TweezerArray):
            arrays = {"X": arrays}
        if not isinstance(arrays, Mapping) or not arrays or not all(isinstance(a, TweezerArray) for a in arrays.values()):
            raise ProgramError("arrays must be a TweezerArray or a mapping of channel name -> TweezerArray", op="Rearranger", value=type(arrays).__name__)
        for name, v in (("load_hold_s", load_hold_s), ("target_hold_s", target_hold_s), ("sample_rate_hz", sample_rate_hz)):
            if not finite_real(v) or v <= 0:
                raise ProgramError(f"{name}={v!r} must be a number > 0", op="Rearranger", value=v)
        self.arrays = dict(arrays)
        self.load_hold_s, self.target_hold_s, self.sample_rate_hz = float(load_hold_s), float(target_hold_s), float(sample_rate_hz)
        super().__init__()
        self.prepared: PrepareReport | None = None
        self._channels: list[_Channel] = []
        self._digest = ""
        self._target_keys: list[tuple] = [(), ()]  # each cycle's target slot: the targets it leaves empty, per channel
        self._full_target: CompiledSegment | None = None

    # ------------------------------------------------------------------ prepare

    def _hold_program(self, runtime: Runtime, which: str) -> CompiledSequenceProgram:
        """The load (all sites) or target (target sites) hold, alone, compiled for the card."""
        b = AWGProgramBuilder()
        for ch, arr in self.arrays.items():
            b = b.logical_channel(ch, calibration=arr.calibration)
        for ch, arr in self.arrays.items():
            freqs = arr.site_freqs_hz if which == "load" else [arr.site_freqs_hz[t] for t in arr.target]
            amps = arr.amp if which == "load" else arr.target_amp
            b = b.define(f"{ch}_{which}", logical_channel=ch, freqs=list(freqs), amps=list(amps), phases="auto")  # type: ignore[arg-type]
        b = b.segment(which, mode="wait_trig")
        for ch in self.arrays:
            b = b.tones(ch).use_def(f"{ch}_{which}")
        b = b.hold(time=self.load_hold_s if which == "load" else self.target_hold_s)
        resolved = b.build_resolved_ir(sample_rate_hz=self.sample_rate_hz)
        q = quantize_resolved_ir(resolved, runtime.mapping, runtime.backend.card, **runtime.quantize_options)
        runtime._check_calibrated_outputs(q)
        return compile_sequence_program(q, runtime.gain, runtime.clip, runtime.full_scale, clip_policy=runtime.clip_policy)

    @staticmethod
    def _tones(program: CompiledSequenceProgram, channel: str) -> list[Tone]:
        """A one-segment hold's tones on ``channel``, in definition order, as the card plays them."""
        q = program.quantized
        assert q is not None  # compiled here, from a quantized IR
        track = next(t for t in q.segments[0].tracks if t.channel == channel)
        (piece,) = track.pieces
        spans = sorted(piece.tones, key=lambda s: s.tone)
        return [Tone(s.f0_hz, float(s.phase0_cycles or 0.0), s.a0, s.optical.p0 if s.optical is not None else None) for s in spans]

    def prepare(self, runtime: Runtime, *, start: bool = True) -> PrepareReport:
        """Compile the holds, build the tables and upload the card (see module doc); start it
        (armed, waiting in the load hold for its first trigger) unless ``start`` is False."""
        if not isinstance(runtime, Runtime):
            raise ProgramError("prepare() needs a Runtime", op="prepare", value=type(runtime).__name__)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        load = self._hold_program(runtime, "load")
        target = self._hold_program(runtime, "target")
        timings["holds"] = time.perf_counter() - t0
        card = runtime.backend.card
        fs = load.sample_rate_hz
        n_ch = load.n_channels
        spans = {ch: (round(a.move.ramp_s * fs), round(a.move.time_s * fs)) for ch, a in self.arrays.items()}
        need = max(r + t for r, t in spans.values())
        g = card.segment_granularity
        n = max(card.min_segment_length(n_ch), -(-need // g) * g)
        lsb = runtime.gain * runtime.full_scale
        t0 = time.perf_counter()
        channels = []
        with Progress(sum(a.n_sites for a in self.arrays.values()), "rearrange tables") as bar:
            for ch, arr in self.arrays.items():
                r, m = spans[ch]
                if r < 1 or m < 2:
                    raise ProgramError(f"channel {ch!r}: the ramp ({r}) and move ({m}) must last at least 1 and 2 samples", op="prepare", value=(r, m))
                sites, targets = self._tones(load, ch), self._tones(target, ch)
                tables = build_tables(
                    sites,
                    targets,
                    sample_rate_hz=fs,
                    n_samples=n,
                    ramp_samples=r,
                    move_samples=m,
                    kind=arr.move.kind,
                    ramp_kind=arr.move.ramp_kind,
                    reach_hz=arr.move.reach_hz,
                    target_samples=target.segments[0].n_samples,
                    lsb=lsb,
                    calibration=arr.calibration,
                    kind_of_tables=self.tables,
                    progress=bar.advance,
                )
                column = load.hardware_channels[ch]
                scratch = (np.empty(n - r, np.complex64), np.empty(n - r, np.complex64)) if tables.factored else (np.empty(n - r, np.float32),)
                channels.append(_Channel(ch, column, arr, tables, np.empty(n, np.float32), scratch))
        timings["tables"] = time.perf_counter() - t0
        self._channels = channels
        self._full_target = target.segments[0]
        self._digest = digest_of("rearranger", load.digest, target.digest, n, [(c.name, c.tables.pairs.shape, c.array.move) for c in channels])
        timings["upload"] = self._upload(runtime, load.segments[0], target.segments[0], n_move=n, like=load, start=start)
        self._target_keys = [((),) * len(channels)] * 2  # both target slots hold the full hold
        self.prepared = PrepareReport(
            site_hz={c.name: tuple(t.freq_hz for t in self._tones(load, c.name)) for c in channels},
            target_hz={c.name: tuple(t.freq_hz for t in self._tones(target, c.name)) for c in channels},
            move_samples=n,
            table_bytes=sum(c.tables.nbytes for c in channels),
            pairs={c.name: int(c.tables.pairs.shape[0]) for c in channels},
            correction_hz={c.name: c.tables.correction_hz for c in channels},
            timings_s=timings,
        )
        log.info("%s", self.prepared)
        return self.prepared

    # ------------------------------------------------------------------ shot

    def _occupancies(self, occupancy) -> dict[str, np.ndarray]:
        if not isinstance(occupancy, Mapping):
            if len(self._channels) != 1:
                raise ProgramError(f"give one occupancy per channel {[c.name for c in self._channels]} (a mapping)", op="shot")
            occupancy = {self._channels[0].name: occupancy}
        if set(occupancy) != {c.name for c in self._channels}:
            raise ProgramError(f"occupancies for {sorted(occupancy)}, the arrays are {[c.name for c in self._channels]}", op="shot", value=sorted(occupancy))
        out = {}
        for c in self._channels:
            occ = np.asarray(occupancy[c.name])
            if occ.dtype != np.bool_ or occ.shape != (c.array.n_sites,):
                raise ProgramError(
                    f"channel {c.name!r}: occupancy must be {c.array.n_sites} booleans, got {occ.dtype} of shape {occ.shape}", op="shot", value=occ.shape
                )
            out[c.name] = occ
        return out

    @staticmethod
    def _plan(c: _Channel, occ: np.ndarray) -> Plan1D:
        return assign(occ, c.array.target, c.tables.distance_hz)

    def _synth(self, c: _Channel, plan: Plan1D, out: np.ndarray) -> int:
        """Sum the channel's move segment into ``out[:, column]``; returns the samples clipped."""
        tb = c.tables
        w = c.work
        r = tb.ramp_samples
        head, tail = w[:r], w[r:]
        head[:] = tb.held
        moving = {s for s, _ in plan.moves}
        for s in range(c.array.n_sites):
            if s not in moving:
                head -= tb.fade[s]
        index = c.target_index
        if not plan.moves:
            tail[:] = 0.0
        elif tb.site_phasors is not None and tb.target_phasors is not None:  # factored: Im(site x target) per atom
            acc, tmp = c.scratch
            (s0, t0), *rest = plan.moves
            np.multiply(tb.site_phasors[s0], tb.target_phasors[index[t0]], out=acc)
            for s, t in rest:
                np.multiply(tb.site_phasors[s], tb.target_phasors[index[t]], out=tmp)
                acc += tmp
            np.copyto(tail, acc.imag)
        else:
            sum_rows(tb.move_rows([(s, index[t]) for s, t in plan.moves]), tail, c.scratch[0])
        return self._store(w, out[:, c.column], tb.peak_lsb)

    def _store(self, w: np.ndarray, column: np.ndarray, bound: float = np.inf) -> int:
        """Round ``w`` (LSB) into an int16 column, clipped at the runtime's clip level as its
        ``clip_policy`` says (looked at only when ``bound``, a bound on |w|, exceeds that
        level); returns the samples clipped."""
        rt = self.runtime
        assert rt is not None
        top = rt.clip * rt.full_scale
        clipped = 0
        if bound > top and max(float(w.max()), -float(w.min())) > top:
            clipped = int(np.count_nonzero(np.abs(w) > top))
            if rt.clip_policy == "error":
                raise ClipError(f"the moves' sum exceeds the clip level {top:.0f} LSB at {clipped} samples", op="shot", value=clipped)
            np.clip(w, -top, top, out=w)
        np.rint(w, out=column, casting="unsafe")  # within the clip level: every value fits int16
        return clipped

    def _target_slot(self, c: _Channel, plan: Plan1D, out: np.ndarray) -> None:
        w = np.zeros(c.tables.target_rows.shape[1], np.float32)
        for _, t in plan.moves:
            w += c.tables.target_rows[c.target_index[t]]
        self._store(w, out[:, c.column])

    def shot(self, occupancy: np.ndarray | Mapping[str, np.ndarray]) -> ShotReport:
        """Plan the moves for ``occupancy`` (one boolean per site: a channel's array, or a mapping
        channel -> array), write them into the card and arm them, while the card keeps holding
        the load pattern (see module doc). Returns a :class:`ShotReport`."""
        t_call = time.perf_counter()
        cycle = self._next_cycle()
        rt = self.runtime
        assert rt is not None and rt.program is not None  # _next_cycle checked
        occ = self._occupancies(occupancy)
        t0 = time.perf_counter()
        plans = {c.name: self._plan(c, occ[c.name]) for c in self._channels}
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        program = rt.program
        n_ch = program.n_channels
        move = np.empty((self._n_samples, n_ch), np.int16)
        clipped = sum(self._synth(c, plans[c.name], move) for c in self._channels)
        move.flags.writeable = False
        key = tuple(plans[c.name].unfilled for c in self._channels)  # what the target slot must hold
        target = None
        if key != self._target_keys[cycle]:
            full = self._full_target
            assert full is not None  # prepared
            if not any(key):
                target = full
            else:
                data = np.array(full.data)
                for c in self._channels:
                    if not plans[c.name].complete:
                        self._target_slot(c, plans[c.name], data)
                data.flags.writeable = False
                target = replace(full, data=data, digest=digest_of("rearranger target", self._digest, key))
        t_synth = time.perf_counter() - t0
        if clipped and rt.clip_policy == "warn":
            warn(f"shot: {clipped} samples of the moves clipped at {rt.clip * rt.full_scale:.0f} LSB", ClipWarning)
        t0 = time.perf_counter()
        digest = digest_of("rearranger move", self._digest, _plan_bytes(plans))
        slots, written = self._write(cycle, move, digest, clipped, target)
        if target is not None:
            self._target_keys[cycle] = key
        t_write = time.perf_counter() - t0
        segments = rt.program.segments  # type: ignore[union-attr]
        samples = sum(segments[s].data.size for s in slots)
        report = ShotReport(
            plans=plans,
            cycle="AB"[cycle],
            load_step=4 * cycle,
            slots_written=tuple(slots),
            steps_written=tuple(written),
            samples_written=samples,
            bytes_written=2 * samples,
            clipped=clipped,
            timings_s={"plan": t_plan, "synth": t_synth, "write": t_write, "total": time.perf_counter() - t_call},
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("shot: %s", str(report).replace("\n", ";"))
        return report


__all__ = ["Move", "PrepareReport", "Rearranger", "ShotReport", "TweezerArray"]
