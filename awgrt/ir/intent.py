"""Intent IR: *what you want*, in seconds and hertz, before any sample rate is known.

An :class:`IntentIR` is an immutable record of a program as the builder wrote it: logical
channels, tone definitions and segments, each segment a list of ops. Constructing one checks
everything that can be checked without a sample rate or the tone state (names, modes, loop
counts, finite positive times, frequencies and amplitudes), so a program read from JSON is held to
the same rules as one built in code. State-dependent checks (tone indices, Nyquist) happen in
resolve.

Timing model inside a segment: every logical channel has its own timeline that starts at the
segment start. Timed ops on a channel (``hold``, ``move``, ``ramp_amp_to``, ``remap_from_def``)
run one after the other on that channel; ops on different channels run in parallel. ``Sync``
(and a ``Hold`` given no channel) first brings all channels to the latest one. The segment lasts
as long as its longest channel; the others hold their last state to the end. Instant ops
(``use_def``, ``add_tone``, ``remove_tones``) change a channel's tones at its current time.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, get_args

from .._files import strict_json
from ..calibration import SCHEMA as CALIBRATION_SCHEMA
from ..calibration import AODCalibration, PositionCalibration
from ..card import MAX_LOOPS, MIN_LOOPS
from ..errors import (
    AmplitudeError,
    AWGRTError,
    FrequencyError,
    ProgramError,
    SerializationError,
    TimingError,
)
from .digest import canonical_json, digest_of, to_plain
from .shapes import AMP_SHAPES, FREQ_SHAPES, AmpShape, FreqShape

SCHEMA = "awgrt.intent"
SCHEMA_VERSION = 1

#: How a segment plays: once, ``loops`` times, or repeated until a trigger.
SegmentMode = Literal["once", "loop_n", "wait_trig"]
#: What happens to the tones' phases at a segment's start.
PhaseMode = Literal["continue", "optimise", "manual"]
#: What follows the last step: back to the first, or the end of the sequence.
LastStep = Literal["auto", "ring", "end"]
SEGMENT_MODES: tuple[str, ...] = get_args(SegmentMode)
PHASE_MODES: tuple[str, ...] = get_args(PhaseMode)
LAST_STEP_MODES: tuple[str, ...] = get_args(LastStep)


def finite_real(x: Any) -> bool:
    """A real number (numpy scalars included, bool not) that is finite as a float."""
    if type(x) is float:  # the common case, without the abstract-class checks
        return math.isfinite(x)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def check_time(time_s: Any, *, segment: str | None, op: str | None, instant: bool = False) -> None:
    """Raise :class:`TimingError` unless ``time_s`` is a finite number > 0 (>= 0 for an op that
    may be ``instant``: a jump at that point)."""
    if not finite_real(time_s) or time_s < 0 or (time_s == 0 and not instant):
        least = ">= 0 (0: an instant jump)" if instant else "> 0"
        raise TimingError(f"time={time_s!r} s must be a finite number of seconds {least}", segment=segment, op=op, value=time_s)


def check_freq(freq_hz: Any, *, segment: str | None, op: str | None, what: str = "frequency") -> None:
    """Raise :class:`FrequencyError` unless ``freq_hz`` is finite and > 0."""
    if finite_real(freq_hz) and freq_hz == 0:
        raise FrequencyError(
            f"{what} {freq_hz!r} Hz is a DC offset, not a tone: an AOD's RF chain is AC-coupled, so a DC term would only take up the card's output "
            "range (and a tone's phase means nothing at 0 Hz); awgrt's tones are above 0 Hz. For a DC level, set the card's output offset.",
            segment=segment,
            op=op,
            value=freq_hz,
        )
    if not finite_real(freq_hz) or freq_hz <= 0:
        raise FrequencyError(f"{what} {freq_hz!r} Hz must be finite and > 0", segment=segment, op=op, value=freq_hz)


def check_amp(amp: Any, *, segment: str | None, op: str | None, limit: float = 1.0) -> None:
    """Raise :class:`AmplitudeError` unless 0 <= ``amp`` <= 1 (fraction of full scale), or on an
    AOD-calibrated channel 0 <= ``amp`` <= ``limit`` (optical power, fraction of the calibrated
    maximum; ``limit``: the most the AOD gives anywhere in its band)."""
    if limit == 1.0 and (not finite_real(amp) or not 0.0 <= amp <= 1.0):
        raise AmplitudeError(f"amplitude {amp!r} must be a finite fraction of full scale in [0, 1]", segment=segment, op=op, value=amp)
    if not finite_real(amp) or not 0.0 <= amp <= limit:
        raise AmplitudeError(
            f"optical power {amp!r} must be finite, in [0, {limit:.4g}] of the calibrated maximum (1: what every frequency of the band gives; "
            f"{limit:.4g}: the most any gives)",
            segment=segment,
            op=op,
            value=amp,
        )


def _check_indices(name: str, idxs: Any, *, segment: str, op: str) -> None:
    if idxs is None:
        return
    not_an_index = (lambda i: i < 0 if type(i) is int else isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0)  # noqa: E731
    if isinstance(idxs, (str, bytes)) or not isinstance(idxs, (tuple, list)) or not idxs or any(not_an_index(i) for i in idxs):
        raise ProgramError(f"{name}={idxs!r} must be a non-empty list of tone indices >= 0", segment=segment, op=op, value=idxs)
    if len(set(idxs)) != len(idxs):
        raise ProgramError(f"{name}={idxs!r} repeats an index", segment=segment, op=op, value=idxs)


def _check_kind(kind: str, allowed: Any, *, segment: str, op: str) -> None:
    if kind not in allowed:
        raise ProgramError(f"kind={kind!r} is not one of {', '.join(allowed)}", segment=segment, op=op, value=kind)


def _per_index(name: str, values: tuple, idxs: tuple | None, *, segment: str, op: str) -> None:
    if not values:
        raise ProgramError(f"{name} is empty", segment=segment, op=op, value=values)
    if len(values) != 1 and idxs is not None and len(values) != len(idxs):
        raise ProgramError(f"{name} has {len(values)} values for {len(idxs)} indices {list(idxs)}", segment=segment, op=op, value=values)


@dataclass(frozen=True)
class Definition:
    """A named tone set on one logical channel: frequencies (Hz), amplitudes (fraction of full
    scale) and start phases (radians, or ``"auto"`` for crest-factor-optimised phases)."""

    name: str
    logical_channel: str
    freqs_hz: tuple[float, ...]
    amps: tuple[float, ...]
    phases: str | tuple[float, ...] = "auto"

    def check(self, channels: tuple[str, ...], amp_limit: float = 1.0) -> None:
        op = f"define {self.name!r}"
        if self.logical_channel not in channels:
            raise ProgramError(f"unknown logical channel {self.logical_channel!r} (declared: {list(channels)})", op=op, value=self.logical_channel)
        if not self.freqs_hz:
            raise ProgramError("a definition needs at least one tone", op=op, value=self.freqs_hz)
        if len(self.amps) != len(self.freqs_hz):
            raise ProgramError(f"{len(self.freqs_hz)} frequencies but {len(self.amps)} amplitudes", op=op, value=self.amps)
        for f in self.freqs_hz:
            check_freq(f, segment=None, op=op)
        for a in self.amps:
            check_amp(a, segment=None, op=op, limit=amp_limit)
        if isinstance(self.phases, str):
            if self.phases != "auto":
                raise ProgramError(f"phases={self.phases!r}: give 'auto' or a list of radians", op=op, value=self.phases)
        else:
            if len(self.phases) != len(self.freqs_hz):
                raise ProgramError(f"{len(self.freqs_hz)} frequencies but {len(self.phases)} phases", op=op, value=self.phases)
            if not all(finite_real(p) for p in self.phases):
                raise ProgramError(f"phases {list(self.phases)} must be finite radians", op=op, value=self.phases)


# ---------------------------------------------------------------------------------------- ops


@dataclass(frozen=True)
class Op:
    """Base of all ops. ``channel`` is the logical channel the op acts on."""

    OP: ClassVar[str] = ""
    TIMED: ClassVar[bool] = False
    #: A timed op that may take no time: an instant jump of its targets at that point.
    INSTANT: ClassVar[bool] = False

    def label(self, index: int) -> str:
        ch = getattr(self, "channel", None)
        return f"#{index} {self.OP}" + (f" (channel {ch!r})" if ch is not None else "")

    def check(self, segment: str, op: str, ir: IntentIR) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def _check_channel(channel: str, ir: IntentIR, *, segment: str, op: str) -> None:
    if channel not in ir.logical_channels:
        raise ProgramError(f"unknown logical channel {channel!r} (declared: {list(ir.logical_channels)})", segment=segment, op=op, value=channel)


def _check_def_on_channel(name: str, channel: str, ir: IntentIR, *, segment: str, op: str) -> Definition:
    d = ir.definition(name, segment=segment, op=op)
    if d.logical_channel != channel:
        raise ProgramError(f"definition {name!r} belongs to channel {d.logical_channel!r}, not {channel!r}", segment=segment, op=op, value=name)
    return d


@dataclass(frozen=True)
class UseDef(Op):
    """Replace the channel's tones by those of a definition (new tones, phases from the definition)."""

    OP: ClassVar[str] = "use_def"
    channel: str
    definition: str

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        _check_def_on_channel(self.definition, self.channel, ir, segment=segment, op=op)


@dataclass(frozen=True)
class AddTone(Op):
    """Add one tone to the channel: at ``index`` (the tones from there on move up one), or
    appended (None: its index is the channel's tone count before the op)."""

    OP: ClassVar[str] = "add_tone"
    channel: str
    freq_hz: float
    amp: float = 0.0
    phase_rad: float = 0.0
    index: int | None = None

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        if self.index is not None:
            _check_indices("at", (self.index,), segment=segment, op=op)
        check_freq(self.freq_hz, segment=segment, op=op)
        check_amp(self.amp, segment=segment, op=op, limit=ir.amp_limit(self.channel))
        if not finite_real(self.phase_rad):
            raise ProgramError(f"phase={self.phase_rad!r} rad must be finite", segment=segment, op=op, value=self.phase_rad)


@dataclass(frozen=True)
class RemoveTones(Op):
    """Remove the tones at ``idxs``; the remaining tones keep their order and close up."""

    OP: ClassVar[str] = "remove_tones"
    channel: str
    idxs: tuple[int, ...]

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        _check_indices("idxs", self.idxs, segment=segment, op=op)


@dataclass(frozen=True)
class Hold(Op):
    """Keep every tone constant for ``time_s``; ``channel=None`` syncs and holds all channels."""

    OP: ClassVar[str] = "hold"
    TIMED: ClassVar[bool] = True
    channel: str | None
    time_s: float

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        if self.channel is not None:
            _check_channel(self.channel, ir, segment=segment, op=op)
        check_time(self.time_s, segment=segment, op=op)


@dataclass(frozen=True)
class Move(Op):
    """Shift the frequencies of tones ``idxs`` (all if None) by ``df_hz`` over ``time_s``.

    ``df_hz`` holds one shift for all indices or one per index. On a channel with a position
    calibration ``dx_um`` may give the shifts as displacements in um instead (``df_hz`` empty):
    each tone goes to the frequency of its position plus dx."""

    OP: ClassVar[str] = "move"
    TIMED: ClassVar[bool] = True
    INSTANT: ClassVar[bool] = True
    channel: str
    df_hz: tuple[float, ...]
    time_s: float
    idxs: tuple[int, ...] | None = None
    kind: FreqShape = "linear"
    dx_um: tuple[float, ...] | None = None

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        check_time(self.time_s, segment=segment, op=op, instant=True)
        _check_indices("idxs", self.idxs, segment=segment, op=op)
        _check_kind(self.kind, tuple(FREQ_SHAPES), segment=segment, op=op)
        if self.dx_um is not None:
            if self.df_hz:
                raise ProgramError("give df (Hz) or dx_um (um), not both", segment=segment, op=op, value=(self.df_hz, self.dx_um))
            if ir.position(self.channel) is None:
                raise ProgramError(
                    f"dx_um needs a position calibration on channel {self.channel!r} (logical_channel(..., position=...))", segment=segment, op=op
                )
            _per_index("dx_um", self.dx_um, self.idxs, segment=segment, op=op)
            if not all(finite_real(x) for x in self.dx_um):
                raise ProgramError(f"dx_um={list(self.dx_um)} must be finite micrometres", segment=segment, op=op, value=self.dx_um)
            return
        _per_index("df", self.df_hz, self.idxs, segment=segment, op=op)
        for df in self.df_hz:
            if not finite_real(df):
                raise FrequencyError(f"df={df!r} Hz must be finite", segment=segment, op=op, value=df)


@dataclass(frozen=True)
class RampAmp(Op):
    """Ramp the amplitudes of tones ``idxs`` (all if None) to ``amps`` over ``time_s`` with the
    shape ``kind`` (:data:`~awgrt.ir.shapes.AmpShape`); ``tau_s``: the time constant of an
    ``"exp"`` ramp (None: geometric)."""

    OP: ClassVar[str] = "ramp_amp_to"
    TIMED: ClassVar[bool] = True
    INSTANT: ClassVar[bool] = True
    channel: str
    amps: tuple[float, ...]
    time_s: float
    idxs: tuple[int, ...] | None = None
    kind: AmpShape = "linear"
    tau_s: float | None = None

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        check_time(self.time_s, segment=segment, op=op, instant=True)
        _check_indices("idxs", self.idxs, segment=segment, op=op)
        _check_kind(self.kind, AMP_SHAPES, segment=segment, op=op)
        if self.tau_s is not None:
            if self.kind != "exp":
                raise ProgramError(
                    f"tau={self.tau_s!r} s is the time constant of an 'exp' ramp, not of {self.kind!r}", segment=segment, op=op, value=self.tau_s
                )
            if not finite_real(self.tau_s) or self.tau_s <= 0:
                raise TimingError(f"tau={self.tau_s!r} s must be a finite time constant > 0", segment=segment, op=op, value=self.tau_s)
        _per_index("amps", self.amps, self.idxs, segment=segment, op=op)
        for a in self.amps:
            check_amp(a, segment=segment, op=op, limit=ir.amp_limit(self.channel))


@dataclass(frozen=True)
class RemapFromDef(Op):
    """Move tone ``src[k]`` of the current state to tone ``dst[k]`` of ``target_def`` (frequency
    and amplitude) over ``time_s``, all at once. With ``dst`` a list, tones keep their indices and
    tones not in ``src`` hold. With ``dst="all"``, ``src`` lists one source tone per tone of the
    target (rearrangement from a loaded subset): ``src[k]`` goes to target tone k, every other tone
    fades to zero amplitude over the same time (same shape) and is dropped at the end, and the
    channel's tones are then the target's, in its order."""

    OP: ClassVar[str] = "remap_from_def"
    TIMED: ClassVar[bool] = True
    INSTANT: ClassVar[bool] = True
    channel: str
    target_def: str
    src: tuple[int, ...]
    dst: tuple[int, ...] | str
    time_s: float
    kind: FreqShape = "min_jerk"

    def targets(self, ir: IntentIR) -> tuple[int, ...]:
        """The target tone of each source: ``dst``, or 0..n-1 for ``"all"``."""
        if isinstance(self.dst, str):  # "all"
            return tuple(range(len(ir.definition(self.target_def).freqs_hz)))
        return tuple(self.dst)

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        _check_channel(self.channel, ir, segment=segment, op=op)
        d = _check_def_on_channel(self.target_def, self.channel, ir, segment=segment, op=op)
        check_time(self.time_s, segment=segment, op=op, instant=True)
        _check_kind(self.kind, tuple(FREQ_SHAPES), segment=segment, op=op)
        _check_indices("src", self.src, segment=segment, op=op)
        if isinstance(self.dst, str):
            if self.dst != "all":
                raise ProgramError(f"dst={self.dst!r}: give a list of target tone indices or 'all'", segment=segment, op=op, value=self.dst)
            if len(self.src) != len(d.freqs_hz):
                raise ProgramError(
                    f"dst='all' takes one source tone per tone of {self.target_def!r} ({len(d.freqs_hz)}), but src lists {len(self.src)}",
                    segment=segment,
                    op=op,
                    value=self.src,
                )
            return
        _check_indices("dst", self.dst, segment=segment, op=op)
        if len(self.src) != len(self.dst):
            raise ProgramError(f"src has {len(self.src)} indices but dst has {len(self.dst)}", segment=segment, op=op, value=(self.src, self.dst))
        bad = [j for j in self.dst if j >= len(d.freqs_hz)]
        if bad:
            raise ProgramError(f"dst indices {bad} out of range for {self.target_def!r} ({len(d.freqs_hz)} tones)", segment=segment, op=op, value=bad)


@dataclass(frozen=True)
class Sync(Op):
    """Bring every channel's timeline to the latest one (the others hold)."""

    OP: ClassVar[str] = "sync"

    def check(self, segment: str, op: str, ir: IntentIR) -> None:
        return None


OPS: dict[str, type[Op]] = {c.OP: c for c in (UseDef, AddTone, RemoveTones, Hold, Move, RampAmp, RemapFromDef, Sync)}


def _instant(op: Op) -> bool:
    """A timed op given no time: a jump at that point."""
    time_s = getattr(op, "time_s", None)
    return op.INSTANT and finite_real(time_s) and time_s == 0


#: The card's multi-purpose lines a segment can mark (see :class:`IntentSegment`).
MARKER_LINES = ("X0", "X1", "X2")
#: How long a marker stays high from the start of each pass of its segment, unless ``marker_s``
#: says otherwise (a pulse a scope, a camera or a counter sees at every TTL input).
MARKER_WIDTH_S = 1e-6


def distinct_marker_lines(lines: object) -> bool:
    """``lines`` is a tuple of distinct names among :data:`MARKER_LINES`."""
    return isinstance(lines, tuple) and all(m in MARKER_LINES for m in lines) and len(set(lines)) == len(lines)


def check_markers(markers: object, marker_s: object, *, segment: str | None) -> None:
    """``markers``: distinct names among :data:`MARKER_LINES`; ``marker_s``: None or seconds > 0."""
    if not distinct_marker_lines(markers):
        raise ProgramError(f"marker={markers!r}: name distinct multi-purpose lines among {MARKER_LINES}", segment=segment, op="segment", value=markers)
    if marker_s is not None and not (finite_real(marker_s) and float(marker_s) > 0):  # type: ignore[arg-type]  # a finite real
        raise ProgramError(f"marker_s={marker_s!r} must be a number of seconds > 0", segment=segment, op="segment", value=marker_s)
    if marker_s is not None and not markers:
        raise ProgramError("marker_s= needs a marker= line", segment=segment, op="segment", value=marker_s)


@dataclass(frozen=True)
class IntentSegment:
    """One segment as written: mode, loop count, phase mode and its ops in order.

    ``phases`` (for ``phase_mode="manual"``) maps a channel to the start phases in radians of
    the tones it has at the segment start.
    """

    name: str
    mode: SegmentMode = "once"
    loops: int = 1
    phase_mode: PhaseMode = "continue"
    ops: tuple[Op, ...] = ()
    phases: Mapping[str, tuple[float, ...]] | None = field(default=None, hash=False)
    markers: tuple[str, ...] = ()
    marker_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.markers, str):
            object.__setattr__(self, "markers", (self.markers,))
        if isinstance(self.markers, list):
            object.__setattr__(self, "markers", tuple(self.markers))
        if self.phases is not None:
            ok = isinstance(self.phases, Mapping) and all(isinstance(v, (list, tuple)) for v in self.phases.values())
            if not ok:
                raise ProgramError(
                    f"phases={self.phases!r} must map each channel to its tones' start phases in radians, e.g. {{'H': [0.0, 1.57]}}",
                    segment=self.name,
                    op="segment phases",
                    value=self.phases,
                )
            object.__setattr__(self, "phases", MappingProxyType({k: tuple(v) for k, v in self.phases.items()}))

    def check(self, ir: IntentIR) -> None:
        seg = self.name
        if self.mode not in SEGMENT_MODES:
            raise ProgramError(f"mode={self.mode!r} is not one of {', '.join(SEGMENT_MODES)}", segment=seg, value=self.mode)
        if self.phase_mode not in PHASE_MODES:
            raise ProgramError(f"phase_mode={self.phase_mode!r} is not one of {', '.join(PHASE_MODES)}", segment=seg, value=self.phase_mode)
        if isinstance(self.loops, bool) or not isinstance(self.loops, int) or not MIN_LOOPS <= self.loops <= MAX_LOOPS:
            raise ProgramError(f"loops={self.loops!r} must be an integer in {MIN_LOOPS}..{MAX_LOOPS}", segment=seg, value=self.loops)
        if self.mode != "loop_n" and self.loops != 1:
            raise ProgramError(f"loops={self.loops} is only meaningful with mode='loop_n'", segment=seg, value=self.loops)
        if not any(op.TIMED and not _instant(op) for op in self.ops):
            raise TimingError("segment has no timed op of non-zero time (hold, move, ramp_amp_to, remap_from_def): it would last 0 s", segment=seg)
        for i, op in enumerate(self.ops):
            op.check(seg, op.label(i), ir)
        check_markers(self.markers, self.marker_s, segment=seg)
        if self.phases is not None:
            if self.phase_mode != "manual":
                raise ProgramError("phases= is only used with phase_mode='manual'", segment=seg, value=self.phases)
            for ch, ph in self.phases.items():
                _check_channel(ch, ir, segment=seg, op="segment phases")
                if not all(finite_real(p) for p in ph):
                    raise ProgramError(f"phases for {ch!r} must be finite radians", segment=seg, value=ph)


@dataclass(frozen=True)
class IntentIR:
    """What you want: channels, definitions and segments in seconds and hertz (see module doc).

    ``last_step`` is ``"ring"`` (the last segment is followed by the first), ``"end"`` (the
    sequence stops after the last segment) or ``"auto"`` (the default: ``"ring"`` for a program
    that comes back to its start, ``"end"`` for one that does not; resolving decides and says so
    in a ``last_step`` note). ``calibrations``: (channel, AOD
    calibration) pairs; a calibrated channel's amplitudes are optical powers (fractions of the
    calibration's maximum, see :mod:`awgrt.calibration`); the digest covers the calibrations.
    """

    logical_channels: tuple[str, ...]
    definitions: tuple[Definition, ...]
    segments: tuple[IntentSegment, ...]
    last_step: str = "auto"
    schema_version: int = SCHEMA_VERSION
    calibrations: tuple[tuple[str, AODCalibration], ...] = ()
    positions: tuple[tuple[str, PositionCalibration], ...] = ()

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise SerializationError(
                f"intent schema version {self.schema_version} is not supported (this awgrt reads {SCHEMA_VERSION})",
                value=self.schema_version,
            )
        if not self.logical_channels:
            raise ProgramError("the program declares no logical channel")
        if len(set(self.logical_channels)) != len(self.logical_channels):
            raise ProgramError(f"logical channels repeat: {list(self.logical_channels)}", value=self.logical_channels)
        self._check_per_channel("calibrations", self.calibrations, AODCalibration)
        self._check_per_channel("positions", self.positions, PositionCalibration)
        names = [d.name for d in self.definitions]
        if len(set(names)) != len(names):
            raise ProgramError(f"definition names repeat: {names}", value=names)
        for d in self.definitions:
            d.check(self.logical_channels, self.amp_limit(d.logical_channel))
        if not self.segments:
            raise ProgramError("the program is empty: it has no segment")
        seg_names = [s.name for s in self.segments]
        if len(set(seg_names)) != len(seg_names):
            dup = sorted({n for n in seg_names if seg_names.count(n) > 1})
            raise ProgramError(f"segment names repeat: {dup}", value=dup)
        if self.last_step not in LAST_STEP_MODES:
            raise ProgramError(f"last_step={self.last_step!r} is not one of {LAST_STEP_MODES}", value=self.last_step)
        for s in self.segments:
            s.check(self)

    def _check_per_channel(self, what: str, pairs: tuple, kind: type) -> None:
        """``pairs`` (``calibrations`` or ``positions``) are (declared channel, ``kind``) pairs, at
        most one per channel."""
        for entry in pairs:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], kind)):
                raise ProgramError(f"{what} must be (channel, {kind.__name__}) pairs, got {entry!r}", value=entry)
            if entry[0] not in self.logical_channels:
                raise ProgramError(f"{what}: unknown logical channel {entry[0]!r} (declared: {list(self.logical_channels)})", value=entry[0])
        channels = [ch for ch, _ in pairs]
        if len(set(channels)) != len(channels):
            raise ProgramError(f"{what}: a logical channel has two of them ({channels})", value=channels)

    def amp_limit(self, channel: str) -> float:
        """The largest amplitude ``channel`` takes: 1 (full scale), or on a calibrated channel
        the most optical power the AOD gives anywhere in its band (fractions of the maximum)."""
        cal = self.calibration(channel)
        return 1.0 if cal is None else cal.max_power

    def position(self, channel: str) -> PositionCalibration | None:
        """The frequency <-> position calibration of ``channel`` (None: frequencies only)."""
        return next((c for ch, c in self.positions if ch == channel), None)

    def calibration(self, channel: str) -> AODCalibration | None:
        """The AOD calibration of ``channel`` (None: its amplitudes are RF as given)."""
        return next((c for ch, c in self.calibrations if ch == channel), None)

    def definition(self, name: str, *, segment: str | None = None, op: str | None = None) -> Definition:
        for d in self.definitions:
            if d.name == name:
                return d
        raise ProgramError(f"unknown definition {name!r} (defined: {[d.name for d in self.definitions]})", segment=segment, op=op, value=name)

    # ----------------------------------------------------------------- digests and JSON

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **to_plain(self)}

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text with the schema name and version; :meth:`from_json` reads it back exactly."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> IntentIR:
        return cls.from_dict(strict_json(text, "the intent program"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentIR:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise SerializationError(f"not an awgrt intent program (schema {data.get('schema') if isinstance(data, dict) else None!r})")
        try:
            return cls(
                logical_channels=tuple(data["logical_channels"]),
                definitions=tuple(
                    Definition(
                        name=d["name"],
                        logical_channel=d["logical_channel"],
                        freqs_hz=tuple(d["freqs_hz"]),
                        amps=tuple(d["amps"]),
                        phases=d["phases"] if isinstance(d["phases"], str) else tuple(d["phases"]),
                    )
                    for d in data["definitions"]
                ),
                segments=tuple(_segment_from_dict(s) for s in data["segments"]),
                last_step=data["last_step"],
                schema_version=data["schema_version"],
                calibrations=tuple(
                    (str(ch), AODCalibration.from_dict({"schema": CALIBRATION_SCHEMA, **c}, verify="digest" in c)) for ch, c in data.get("calibrations", ())
                ),
                positions=tuple(
                    (str(ch), PositionCalibration(tuple(c["coefficients"]), c["f_ref_hz"], tuple(c["band_hz"]), c["trace"]))
                    for ch, c in data.get("positions", ())
                ),
            )
        except AWGRTError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise SerializationError(f"malformed intent program: {exc!r}") from exc

    @functools.cached_property
    def digest(self) -> str:
        """Content digest of the whole program (computed once: the program is immutable)."""
        return digest_of(SCHEMA, self)

    def loop_blind_key(self) -> tuple:
        """Everything that decides quantization, i.e. all but loop counts, which only reach the
        step table (whether a segment is looped, which decides wrap snapping, stays in)."""
        return (
            self.logical_channels,
            self.definitions,
            self.calibrations,
            self.positions,
            self.last_step,
            tuple((s.name, s.mode, s.mode == "loop_n" and s.loops > 1, s.phase_mode, s.ops, s.phases, s.markers, s.marker_s) for s in self.segments),
        )

    def segment_fingerprints(self) -> dict[str, str]:
        """Per-segment fingerprint covering the segment and the state it inherits.

        A segment's samples depend on its own ops and, through the tone state and phases it
        starts from, on the channels, definitions and every segment before it. Fingerprint i is
        therefore a hash chain: H(fingerprint i-1, segment i), seeded with the channels and
        definitions. (The quantized IR carries exact per-segment digests of the resolved entry
        state, which the runtime uses to skip unchanged segments.)
        """
        out: dict[str, str] = {}
        prev = digest_of(SCHEMA, self.schema_version, self.logical_channels, self.definitions, self.calibrations, self.positions)
        for s in self.segments:
            prev = digest_of(prev, s)
            out[s.name] = prev
        return out

    def __str__(self) -> str:  # pragma: no cover - convenience
        return canonical_json(self)


def _segment_from_dict(s: dict[str, Any]) -> IntentSegment:
    if not isinstance(s, dict):
        raise SerializationError(f"a segment must be a JSON object, got {type(s).__name__}", value=s)
    ops = []
    for i, o in enumerate(s["ops"]):
        if not isinstance(o, dict) or "op" not in o:
            raise SerializationError(f"op #{i} must be a JSON object with an 'op' field, got {o!r}", segment=s.get("name"), op=f"#{i}", value=o)
        o = dict(o)
        kind = o.pop("op")
        if kind not in OPS:
            raise SerializationError(f"unknown op {kind!r}", segment=s.get("name"), value=kind)
        ops.append(OPS[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in o.items()}))
    phases = s.get("phases")
    return IntentSegment(
        name=s["name"],
        mode=s["mode"],
        loops=s["loops"],
        phase_mode=s["phase_mode"],
        ops=tuple(ops),
        phases=phases if not isinstance(phases, dict) else {k: tuple(v) if isinstance(v, list) else v for k, v in phases.items()},
        markers=tuple(s.get("markers", ())),  # absent in programs written before markers
        marker_s=s.get("marker_s"),
    )
