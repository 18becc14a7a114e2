"""The fluent program builder: records intent, computes nothing.

Example::

    ir = (AWGProgramBuilder().logical_channel("H").logical_channel("V")
          .define("init_H", logical_channel="H", freqs=[90e6], amps=[0.3])
          .segment("wait", mode="wait_trig").tones("H").use_def("init_H").hold(time=200e-6)
          .segment("chirp", mode="once").tones("H").move(df=+2e6, time=50e-6)
          .build_resolved_ir(sample_rate_hz=625e6))

Inside a segment each logical channel has its own timeline starting at the segment start:
ops after ``.tones("H")`` run one after the other on H, and ops on different channels run in
parallel (that is how several channels move at once; ``.parallel(block, ...)`` spells it out
and checks that the blocks use different channels). ``.sync()`` lines all channels up to the
latest one; ``.hold(time)`` with no channel selected syncs and then holds every channel. The
segment lasts as long as its longest channel; shorter ones hold their last state.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._units import in_unit
from ._warn import warn
from .calibration import AODCalibration, PositionCalibration
from .errors import ProgramError, UnitWarning
from .ir.intent import (
    LAST_STEP_MODES,
    PHASE_MODES,
    SEGMENT_MODES,
    AddTone,
    Definition,
    Hold,
    IntentIR,
    IntentSegment,
    LastStep,
    Move,
    Op,
    PhaseMode,
    RampAmp,
    RemapFromDef,
    RemoveTones,
    SegmentMode,
    Sync,
    UseDef,
    check_markers,
)
from .ir.resolved import ResolvedIR
from .ir.shapes import AmpShape, FreqShape


def _segment_name(builder: AWGProgramBuilder) -> str | None:
    return builder._segments[-1]["name"] if builder._segments else None


#: The unit each number the builder takes is in (a pint quantity is converted to it, once).
UNITS = {"freqs": "Hz", "freq": "Hz", "df": "Hz", "amps": "dimensionless", "amp": "dimensionless", "phases": "rad", "phase": "rad",
         "time": "s", "tau": "s", "dx_um": "um", "positions_um": "um", "marker_s": "s"}  # fmt: skip


def _floats(values: Any, what: str, op: str, segment: str | None = None) -> tuple[float, ...]:
    """Numbers (numpy scalars included, or pint quantities in :data:`UNITS`) as a tuple of
    floats; anything else, or a number too large for a float, is a :class:`ProgramError` naming
    the op."""
    if type(values) in (list, tuple) and all(type(v) is float for v in values):  # the common case, without abstract-class checks
        return tuple(values)
    values = in_unit(values, UNITS[what], what, op=op, segment=segment)
    seq: Any = [values] if isinstance(values, numbers.Real) or isinstance(values, str) or values is None else values
    try:
        seq = list(seq)
        if any(isinstance(v, (bool, str)) or not isinstance(v, numbers.Real) for v in seq):
            raise TypeError
        return tuple(float(v) for v in seq)
    except TypeError:
        raise ProgramError(f"{what}={values!r} must be a number or a list of numbers", segment=segment, op=op, value=values) from None
    except OverflowError:
        raise ProgramError(f"{what}={_short(values)} is too large for a float", segment=segment, op=op, value=values) from None


def _short(value: object) -> str:
    """``repr(value)``, with a huge integer shown by its number of digits."""
    if isinstance(value, numbers.Integral) and abs(int(value)) > 10**20:
        return f"<an integer of {len(str(abs(int(value))))} digits>"
    return repr(value)


def _float(value: Any, what: str, op: str, segment: str | None = None) -> float:
    """One number (or a pint quantity in :data:`UNITS`) as a float, or a :class:`ProgramError` naming the op."""
    if type(value) is float:
        return value
    value = in_unit(value, UNITS[what], what, op=op, segment=segment)
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real):
        raise ProgramError(f"{what}={value!r} must be a number", segment=segment, op=op, value=value)
    try:
        return float(value)
    except OverflowError:
        raise ProgramError(f"{what}={_short(value)} is too large for a float", segment=segment, op=op, value=value) from None


#: Below this, a tone or a move in hertz is probably a number in MHz; above the other, a time in
#: seconds is probably one in microseconds (:class:`~awgrt.errors.UnitWarning`).
LOW_HZ = 1e3
LONG_S = 1.0


def _unit_hints(values: tuple[float, ...], what: str, op: str, segment: str | None) -> None:
    """Warn, at the caller's line, about a likely unit mistake among ``values`` (see :data:`LOW_HZ`)."""
    where = f"segment {segment!r}, {op}" if segment else op
    for v in values:
        if not math.isfinite(v):
            continue  # not a unit mistake: the op's own check refuses it
        if what == "s" and v > LONG_S:
            hint = f"did you mean {v:g}e-6 s ({v:g} us)? (awgrt takes seconds)"
            warn(f"{where}: time={v:g} s is longer than a second: {hint}", UnitWarning)
            return
        if what == "Hz" and 0 < abs(v) < LOW_HZ:
            warn(f"{where}: {v:g} Hz is below 1 kHz: did you mean {v:g}e6 Hz ({v:g} MHz)? (awgrt takes hertz)", UnitWarning)
            return


def _segment_phases(phases: object, segment: str) -> dict[str, tuple[float, ...]] | None:
    """``phases=`` of a segment: {channel: [rad, ...]}, or a :class:`ProgramError`."""
    if phases is None:
        return None
    if not isinstance(phases, Mapping):
        raise ProgramError(
            f"phases={phases!r} must map each channel to its tones' start phases in radians, e.g. {{'H': [0.0, 1.57]}}",
            segment=segment,
            op="segment phases",
            value=phases,
        )
    return {k: _floats(v, "phases", "segment phases", segment) for k, v in phases.items()}


def _index(v: Any) -> Any:
    """An index as an int when it is an integral number (numpy scalars and 2.0 included);
    anything else passes through to be rejected, with the op named, by the intent checks."""
    if type(v) is int:
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    try:
        return int(float(v)) if float(v).is_integer() else v
    except (OverflowError, ValueError):
        return v


def _ints(values: Any) -> Any:
    """Indices as a tuple (see :func:`_index`); a single number stands for a list of one."""
    if values is None:
        return None
    if isinstance(values, (numbers.Real, str, bytes)):
        return (_index(values),)
    try:
        return tuple(_index(v) for v in values)
    except TypeError:
        return (values,)


class _SoFar:
    """The channels, calibrations and definitions a builder has declared so far, answering the
    questions an op's check asks of an :class:`IntentIR`."""

    def __init__(self, builder: AWGProgramBuilder) -> None:
        self.logical_channels = tuple(builder._channels)
        self.definitions = tuple(builder._definitions)
        self.calibrations = tuple(builder._calibrations)
        self.positions = tuple(builder._positions)

    amp_limit = IntentIR.amp_limit
    position = IntentIR.position
    calibration = IntentIR.calibration

    def definition(self, name: str, *, segment: str | None = None, op: str | None = None) -> Definition:
        for d in self.definitions:
            if d.name == name:
                return d
        known = [d.name for d in self.definitions]
        raise ProgramError(f"unknown definition {name!r} (defined so far: {known}; define it before using it)", segment=segment, op=op, value=name)


class AWGProgramBuilder:
    """Fluent builder of an :class:`IntentIR` (see module docstring for the timing model)."""

    def __init__(self) -> None:
        self._channels: list[str] = []
        self._definitions: list[Definition] = []
        self._segments: list[dict] = []
        self._channel: str | None = None
        self._last_step = "auto"
        self._calibrations: list[tuple[str, AODCalibration]] = []
        self._positions: list[tuple[str, PositionCalibration]] = []

    # ------------------------------------------------------------------ declarations

    def logical_channel(self, name: str, *, calibration: AODCalibration | None = None, position: PositionCalibration | None = None) -> AWGProgramBuilder:
        """Declare a logical channel (mapped to a hardware channel at quantize time). With an AOD
        ``calibration`` (:class:`~awgrt.calibration.AODCalibration`) the channel's amplitudes
        are optical powers, fractions of the calibrated maximum: synthesis plays, at every
        sample, the RF amplitude that gives that power at the tone's frequency of that instant,
        so a tweezer moved across the band keeps its power and an amplitude ramp is a ramp in
        optical power. With a ``position`` calibration
        (:class:`~awgrt.calibration.PositionCalibration`, um <-> MHz) definitions may give
        ``positions_um`` and moves ``dx_um`` instead of hertz."""
        self._channels.append(str(name))
        if position is not None:
            if not isinstance(position, PositionCalibration):
                raise ProgramError(f"position for {name!r} must be a PositionCalibration, got {type(position).__name__}", value=position)
            self._positions.append((str(name), position))
        if calibration is not None:
            if not isinstance(calibration, AODCalibration):
                raise ProgramError(f"calibration for {name!r} must be an AODCalibration, got {type(calibration).__name__}", value=calibration)
            self._calibrations.append((str(name), calibration))
        return self

    def define(
        self,
        name: str,
        *,
        logical_channel: str,
        freqs: Sequence[float] | None = None,
        amps: Sequence[float],
        phases: str | Sequence[float] = "auto",
        positions_um: Sequence[float] | None = None,
    ) -> AWGProgramBuilder:
        """Define a named tone set on a channel: ``freqs`` in Hz, or ``positions_um`` on a channel
        with a position calibration (turned into hertz here, once). ``phases="auto"`` gives
        crest-factor-optimised start phases; a list gives them in radians."""
        op = f"define {name!r}"
        if (freqs is None) == (positions_um is None):
            raise ProgramError("give freqs (Hz) or positions_um (um), one of them", op=op, value=(freqs, positions_um))
        if positions_um is not None:
            pos = dict(self._positions).get(str(logical_channel))
            if pos is None:
                raise ProgramError(f"positions_um needs a position calibration on channel {logical_channel!r} (logical_channel(..., position=...))", op=op)
            freqs = tuple(float(f) for f in pos.frequency_hz(_floats(positions_um, "positions_um", op)))
        else:
            _unit_hints(_floats(freqs, "freqs", op), "Hz", op, None)
        self._definitions.append(
            Definition(
                name=str(name),
                logical_channel=str(logical_channel),
                freqs_hz=_floats(freqs, "freqs", f"define {name!r}"),
                amps=_floats(amps, "amps", f"define {name!r}"),
                phases=phases if isinstance(phases, str) else _floats(phases, "phases", f"define {name!r}"),
            )
        )
        return self

    def last_step(self, mode: LastStep) -> AWGProgramBuilder:
        """What the card does after the last segment. ``"ring"``: it plays the first again (a
        program that ends as it starts replays seamlessly: its phases are closed round the ring).
        ``"end"``: the sequence stops there and the outputs go to their stop level. ``"auto"``
        (the default): ``"ring"`` when the program comes back to its start (every channel ends
        with the tones, frequencies and amplitudes it starts with), else ``"end"``; the compile
        report says which, and why."""
        if mode not in LAST_STEP_MODES:
            raise ProgramError(f"last_step({mode!r}): the mode must be one of {LAST_STEP_MODES}", op="last_step", value=mode)
        self._last_step = mode
        return self

    def segment(
        self,
        name: str,
        mode: SegmentMode = "once",
        loops: int = 1,
        phase_mode: PhaseMode = "continue",
        phases: dict[str, Sequence[float]] | None = None,
        marker: str | Sequence[str] = (),
        marker_s: float | None = None,
    ) -> AWGProgramBuilder:
        """Start a segment. ``mode``: ``"once"``, ``"loop_n"`` (play ``loops`` times) or
        ``"wait_trig"`` (repeat until a trigger). ``phase_mode``: ``"continue"`` (tones keep
        their phase across the boundary), ``"optimise"`` (reset to crest-factor-optimised
        phases) or ``"manual"`` (start at ``phases``, or the phases the tones were defined with).
        ``marker``: a multi-purpose line (``"X0"``, ``"X1"``, ``"X2"``, or several) that goes high
        at the start of every pass of this segment for ``marker_s`` seconds (default
        :data:`~awgrt.ir.intent.MARKER_WIDTH_S`, 1 us; at most the segment), a TTL edge to
        trigger a scope or a camera from. The lines ride on the top bits of hardware channel 0's
        samples (X0 bit 15, X1 bit 14, X2 bit 13), so that channel then plays 15, 14 or 13 bits
        in every segment of the program; the compile report says so.
        """
        markers = (marker,) if isinstance(marker, str) else tuple(marker)
        check_markers(markers, marker_s, segment=str(name))
        if mode not in SEGMENT_MODES:
            raise ProgramError(f"mode={mode!r} is not one of {', '.join(SEGMENT_MODES)}", segment=str(name), op="segment", value=mode)
        if phase_mode not in PHASE_MODES:
            raise ProgramError(f"phase_mode={phase_mode!r} is not one of {', '.join(PHASE_MODES)}", segment=str(name), op="segment", value=phase_mode)
        self._segments.append(
            dict(
                name=str(name),
                mode=mode,
                loops=int(loops) if isinstance(loops, numbers.Integral) and not isinstance(loops, bool) else loops,
                phase_mode=phase_mode,
                phases=_segment_phases(phases, str(name)),
                ops=[],
                markers=markers,
                marker_s=None if marker_s is None else _float(marker_s, "marker_s", "segment", str(name)),
            )
        )
        self._channel = None
        return self

    def tones(self, channel: str) -> AWGProgramBuilder:
        """Select the logical channel that the following tone ops act on."""
        self._channel = str(channel)
        return self

    # ------------------------------------------------------------------ ops

    def _add(self, op: Op) -> AWGProgramBuilder:
        """Record ``op``, checked now (names, kinds, signs, against the channels and definitions
        declared so far), so that a mistake is raised at the call that made it."""
        if not self._segments:
            raise ProgramError(f"{op.OP} before any .segment(...)", op=op.OP)
        ops = self._segments[-1]["ops"]
        op.check(self._segments[-1]["name"], op.label(len(ops)), _SoFar(self))  # type: ignore[arg-type]  # the IntentIR questions a check asks
        ops.append(op)
        return self

    def _selected(self, what: str) -> str:
        if self._channel is None:
            seg = self._segments[-1]["name"] if self._segments else None
            raise ProgramError(f"{what} needs a channel: call .tones(channel) first", segment=seg, op=what)
        return self._channel

    def use_def(self, name: str) -> AWGProgramBuilder:
        """Replace the selected channel's tones by those of definition ``name``."""
        return self._add(UseDef(self._selected("use_def"), str(name)))

    def add_tone(self, *, freq: float, amp: float = 0.0, phase: float = 0.0, at: int | None = None) -> AWGProgramBuilder:
        """Add a tone (``freq`` Hz, ``amp`` of full scale, default 0: ramp it up after; ``phase``
        in radians) to the selected channel: at index ``at`` (the tones from there on move up
        one), or appended (None). Frequencies are above 0 Hz (a DC offset is not a tone)."""
        seg = _segment_name(self)
        _unit_hints((_float(freq, "freq", "add_tone", seg),), "Hz", "add_tone", seg)
        return self._add(
            AddTone(
                self._selected("add_tone"),
                _float(freq, "freq", "add_tone", seg),
                _float(amp, "amp", "add_tone", seg),
                _float(phase, "phase", "add_tone", seg),
                None if at is None else _index(at),
            )
        )

    def remove_tones(self, *, idxs: int | Sequence[int]) -> AWGProgramBuilder:
        """Remove tones by index from the selected channel."""
        return self._add(RemoveTones(self._selected("remove_tones"), _ints(idxs)))

    def move(
        self,
        *,
        df: float | Sequence[float] | None = None,
        time: float,
        idxs: Sequence[int] | None = None,
        kind: FreqShape = "linear",
        dx_um: float | Sequence[float] | None = None,
    ) -> AWGProgramBuilder:
        """Chirp tones ``idxs`` (all if None) by ``df`` Hz (one value or one per index) over
        ``time`` s; ``kind``: ``"linear"``, ``"min_jerk"``, ``"cosine"`` or ``"smoothstep"``.
        On a channel with a position calibration, ``dx_um`` moves each tweezer by that many um
        instead (each tone to the frequency of its position plus dx). ``time=0``: the
        frequencies jump at this point (phase continuous), a deliberate discontinuity the compile
        report lists."""
        seg = _segment_name(self)
        if (df is None) == (dx_um is None):
            raise ProgramError("give df (Hz) or dx_um (um), one of them", segment=seg, op="move", value=(df, dx_um))
        dfs = () if df is None else _floats(df, "df", "move", seg)
        dxs = None if dx_um is None else _floats(dx_um, "dx_um", "move", seg)
        t = _float(time, "time", "move", seg)
        _unit_hints(dfs, "Hz", "move", seg)
        _unit_hints((t,), "s", "move", seg)
        return self._add(Move(self._selected("move"), dfs, t, _ints(idxs), kind, dxs))

    def ramp_amp_to(
        self, *, amps: float | Sequence[float], time: float, idxs: Sequence[int] | None = None, kind: AmpShape = "linear", tau: float | None = None
    ) -> AWGProgramBuilder:
        """Ramp amplitudes of tones ``idxs`` (all if None) to ``amps`` over ``time`` s. ``kind``:
        ``"linear"``, ``"min_jerk"``, ``"cosine"``, ``"smoothstep"``; ``"geo_ramp"`` (geometric,
        both ends above zero); ``"exp"`` with time constant ``tau`` s (follows start -> end with
        that time constant and ends exactly at the target; without ``tau``: geometric);
        ``"adiabatic_ramp"`` (1/a along a smoothstep; an end at zero is floored at 1e-3 of the
        other and still reached exactly). See :data:`awgrt.ir.shapes.AMP_SHAPES`. ``time=0``:
        the amplitudes jump at this point, a deliberate discontinuity the compile report lists."""
        seg = _segment_name(self)
        _unit_hints((_float(time, "time", "ramp_amp_to", seg),), "s", "ramp_amp_to", seg)
        return self._add(
            RampAmp(
                self._selected("ramp_amp_to"),
                _floats(amps, "amps", "ramp_amp_to", seg),
                _float(time, "time", "ramp_amp_to", seg),
                _ints(idxs),
                kind,
                None if tau is None else _float(tau, "tau", "ramp_amp_to", seg),
            )
        )

    def remap_from_def(
        self, *, target_def: str, src: Sequence[int], dst: Sequence[int] | str, time: float, kind: FreqShape = "min_jerk"
    ) -> AWGProgramBuilder:
        """Move tone ``src[k]`` to the frequency and amplitude of tone ``dst[k]`` of ``target_def``
        over ``time`` s (tweezer rearrangement); indices do not change and tones not in ``src``
        hold. ``dst="all"``: ``src`` lists one source tone per target tone (a loaded subset) and
        ``src[k]`` goes to target tone k; every other tone fades out over the move and is dropped,
        so the channel then holds the target's tones in its order."""
        _unit_hints((_float(time, "time", "remap_from_def", _segment_name(self)),), "s", "remap_from_def", _segment_name(self))
        return self._add(
            RemapFromDef(
                self._selected("remap_from_def"),
                str(target_def),
                _ints(src),
                dst if isinstance(dst, str) else _ints(dst),
                _float(time, "time", "remap_from_def", _segment_name(self)),
                kind,
            )
        )

    def hold(self, *, time: float, every_channel: bool = False) -> AWGProgramBuilder:
        """Hold for ``time`` s. With a channel selected (``.tones(ch)`` earlier in this segment)
        it holds **only that channel**: its timeline advances and the others' do not (an op on
        another channel after it starts at that channel's own time). With no channel selected
        (right after ``.segment(...)``), or with ``every_channel=True``, it first lines every
        channel up to the latest (``.sync()``) and then holds them all for ``time``."""
        t = _float(time, "time", "hold", _segment_name(self))
        _unit_hints((t,), "s", "hold", _segment_name(self))
        return self._add(Hold(None if every_channel else self._channel, t))

    def sync(self) -> AWGProgramBuilder:
        """Line every channel's timeline up to the latest one (the others hold)."""
        return self._add(Sync())

    def parallel(self, *blocks: Callable[[AWGProgramBuilder], object]) -> AWGProgramBuilder:
        """Run blocks of ops side by side from one start time.

        Each block is a function that records ops on this builder, e.g.
        ``lambda b: b.tones("H").move(df=1e6, time=10e-6)``, and must keep to channels no other
        block uses. All channels are synced before the blocks and after them, so what follows
        starts once the longest block has finished. (Ops on different channels always run in
        parallel within a segment; this spells it out and checks it.)
        """
        self.sync()
        seg = _segment_name(self)
        owner: dict[str, int] = {}
        for i, block in enumerate(blocks):
            ops = self._segments[-1]["ops"]
            start = len(ops)
            self._channel = None
            block(self)
            for op in ops[start:]:
                ch = getattr(op, "channel", None)
                if ch is None:
                    raise ProgramError(f"block {i} of parallel() holds or syncs every channel; select one with .tones()", segment=seg, op="parallel")
                if owner.setdefault(ch, i) != i:
                    raise ProgramError(f"blocks {owner[ch]} and {i} of parallel() both use channel {ch!r}", segment=seg, op="parallel", value=ch)
        self._channel = None
        return self.sync()

    # ------------------------------------------------------------------ build

    def build_intent_ir(self) -> IntentIR:
        """The checked, immutable :class:`IntentIR` of what was recorded."""
        segments = tuple(
            IntentSegment(
                name=s["name"],
                mode=s["mode"],
                loops=s["loops"],
                phase_mode=s["phase_mode"],
                ops=tuple(s["ops"]),
                phases=s["phases"],
                markers=s["markers"],
                marker_s=s["marker_s"],
            )
            for s in self._segments
        )
        return IntentIR(
            tuple(self._channels),
            tuple(self._definitions),
            segments,
            last_step=self._last_step,
            calibrations=tuple(self._calibrations),
            positions=tuple(self._positions),
        )

    def build_resolved_ir(self, *, sample_rate_hz: float) -> ResolvedIR:
        """Build the intent IR and resolve it to whole samples at ``sample_rate_hz``."""
        from .compiler.resolve import resolve_intent_ir

        return resolve_intent_ir(self.build_intent_ir(), in_unit(sample_rate_hz, "Hz", "sample_rate_hz", op="build_resolved_ir"))
