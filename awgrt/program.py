"""The compiled program: *what the card plays*.

:class:`CompiledSequenceProgram` holds the int16 data of each memory slot (:class:`CompiledSegment`)
and the step table (:class:`SequenceStep`), plus the report of everything the compiler decided.
:meth:`CompiledSequenceProgram.validate` checks all that the card would reject, before upload.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from ._atomic import atomic_write
from ._savefile import SaveFile, check_value, need
from ._version import __version__
from .card import CARDS, CardSpec, encode_step_entry
from .errors import AWGRTError, CardLimitError, SerializationError
from .ir.digest import digest_of
from .ir.intent import MARKER_LINES, IntentIR, distinct_marker_lines
from .ir.quantized import marker_bit, marker_shift
from .spectrum import digout_mode

if TYPE_CHECKING:  # a type only: the compiler sits above this module
    from .compiler.report import CompileReport
    from .ir.quantized import QuantizedIR

SAVE_SCHEMA = "awgrt.compiled"
SAVE_VERSION = 1


@dataclass(frozen=True)
class CompiledSegment:
    """One memory slot: ``data`` is read-only int16 of shape (n_samples, n_channels), columns in
    hardware channel order. ``names`` lists every program segment that plays this slot."""

    name: str
    data: np.ndarray = field(repr=False, compare=False)
    digest: str
    names: tuple[str, ...] = ()
    clipped: tuple[int, ...] = ()

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])


@dataclass(frozen=True)
class SequenceStep:
    """One step-table entry. ``segment`` indexes ``CompiledSequenceProgram.segments``; ``next``
    is the step after this one; ``loops`` passes (1..1,048,575); ``on_trigger`` keeps repeating
    after the loops until a trigger has been seen; ``end`` stops the card after this step."""

    segment: int
    next: int
    loops: int
    on_trigger: bool = False
    end: bool = False
    name: str = ""

    @functools.cached_property
    def entry(self) -> int:
        """The 64-bit step word (unsigned), range-checked (once: the step is immutable)."""
        return encode_step_entry(self.segment, self.next, self.loops, on_trigger=self.on_trigger, end=self.end)


@dataclass(frozen=True)
class StepEvent:
    """The sequencer entered ``step`` (playing memory slot ``segment``) at output sample
    ``sample``, counted from the start command (or from the card's clock origin where a
    simulator says so)."""

    sample: int
    step: int
    segment: int


@dataclass(frozen=True)
class CompiledSequenceProgram:
    """Int16 segments plus a step table, ready for a backend. See module doc."""

    sample_rate_hz: float
    n_channels: int
    segments: tuple[CompiledSegment, ...]
    steps: tuple[SequenceStep, ...]
    start_step: int = 0
    hardware_channels: Mapping[str, int] = field(default_factory=dict)
    card: CardSpec = field(default_factory=lambda: CARDS["M4i.6631-x8"], repr=False)
    report: CompileReport | None = field(default=None, repr=False, compare=False)
    #: The intent program it was compiled from, where known (kept by :meth:`save`).
    intent: IntentIR | None = field(default=None, repr=False, compare=False)
    #: The compile report's text as a loaded file kept it (a loaded program has no live report).
    saved_report: str | None = field(default=None, repr=False, compare=False)
    #: The quantized IR it was compiled from (every tone's trajectory: what :meth:`plot` draws).
    quantized: QuantizedIR | None = field(default=None, repr=False, compare=False)
    #: Slots kept for writes while the card runs (a rearranger's move slots): no step need play them.
    reserved_slots: tuple[int, ...] = ()
    #: Multi-purpose lines carrying markers (``"X0"`` ...), each from a top bit of hardware
    #: channel 0 (:func:`~awgrt.ir.quantized.marker_bit`): the backend sets those lines to
    #: synchronous digital output when it loads the program.
    marker_lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hardware_channels", MappingProxyType(dict(self.hardware_channels)))

    def summary(self) -> str:
        """One paragraph: what the card will hold (and the compile report, where there is one)."""
        names = ", ".join(f"{s.name} ({s.n_samples})" for s in self.segments)
        head = (
            f"CompiledSequenceProgram: {len(self.segments)} segments, {len(self.steps)} steps, {self.sample_rate_hz / 1e6:g} MS/s, "
            f"{self.n_channels} channel(s) on {self.card.name}, {sum(s.n_samples for s in self.segments)} samples per channel\n  slots: {names}"
        )
        report = self.report if self.report is not None else self.saved_report
        return head + (f"\n{report}" if report is not None else "")

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython and Jupyter show :meth:`summary`, not the fields and samples."""
        printer.text(self.summary())

    @property
    def max_segments(self) -> int:
        """Memory slots the data memory is split into (``SPC_SEQMODE_MAXSEGMENTS``)."""
        return self.card.slot_count(len(self.segments))

    def same_layout(self, other: CompiledSequenceProgram) -> bool:
        """Whether ``other`` splits card memory the same way: slot count and every slot's length
        (so it can replace this program slot by slot, without a full upload)."""
        return (
            len(other.segments) == len(self.segments)
            and other.marker_lines == self.marker_lines  # the lines' modes are set by a full upload
            and other.max_segments == self.max_segments
            and all(a.n_samples == b.n_samples for a, b in zip(self.segments, other.segments))
        )

    def changed_slots(self, other: CompiledSequenceProgram, *, skip: Collection[int] = ()) -> tuple[int, ...]:
        """The slots whose samples differ in ``other`` (same layout assumed), leaving out those in ``skip``."""
        return tuple(
            i for i, (a, b) in enumerate(zip(self.segments, other.segments)) if i not in skip and a.data is not b.data and not np.array_equal(a.data, b.data)
        )

    @property
    def digest(self) -> str:
        """Digest of what the card plays: sample rate, every slot's bytes and the step table."""
        return digest_of(
            "compiled",
            self.sample_rate_hz,
            self.n_channels,
            self.start_step,
            [list(s.data.shape) for s in self.segments],
            self.steps,
            *(np.ascontiguousarray(s.data, dtype="<i2").tobytes() for s in self.segments),
            *((["markers", *self.marker_lines],) if self.marker_lines else ()),
        )

    def x_modes(self) -> dict[int, int]:
        """The multi-purpose line modes this program needs: each marker line's synchronous digital
        output of its bit of hardware channel 0 (line index -> SPCM_X<i>_MODE value)."""
        return {int(m[1:]): digout_mode(0, marker_bit(m)) for m in self.marker_lines}

    def analog(self, segment: int) -> np.ndarray:
        """Int16 samples (samples x channels) of memory segment ``segment`` as the DACs play
        them: with marker lines, hardware channel 0's marker bits are taken out and the analog
        bits below them shifted up (the M4i/M4x manual's data format with digital outputs)."""
        data = self.segments[segment].data
        if not self.marker_lines:
            return data
        shift = marker_shift(self.marker_lines)
        out = data.copy()
        out[:, 0] = (data[:, 0].view(np.uint16) << shift).view(np.int16)
        return out

    def segment_for_step(self, step: int) -> CompiledSegment:
        return self.segments[self.steps[step].segment]

    # ------------------------------------------------------------------ validation

    def problems(self, card: CardSpec | None = None) -> list[str]:
        """Everything ``card`` (default: the program's own) would reject, as sentences."""
        card = card or self.card
        out: list[str] = []
        rate = card.sample_rate_problem(self.sample_rate_hz)
        if rate:
            out.append(rate)
        if self.n_channels not in card.channel_counts:
            out.append(f"{self.n_channels} enabled channels; {card.name} runs with {list(card.channel_counts)}")
            return out
        if not self.segments:
            out.append("no segments")
        if not self.steps:
            out.append("no steps")
        if len(self.steps) > card.max_steps:
            out.append(f"{len(self.steps)} steps > {card.max_steps}")
        slots = card.slot_count(len(self.segments))
        if slots > card.max_segments:
            out.append(f"{len(self.segments)} segments need {slots} slots > {card.max_segments}")
        min_len = card.min_segment_length(self.n_channels)
        max_len = card.max_segment_length(self.n_channels, slots)
        for i, s in enumerate(self.segments):
            if s.data.dtype != np.int16 or s.data.ndim != 2 or s.data.shape[1] != self.n_channels:
                out.append(f"segment {i} {s.name!r}: data must be int16 of shape (n, {self.n_channels}), got {s.data.dtype} {s.data.shape}")
                continue
            n = s.n_samples
            if n < min_len or n % card.segment_granularity or n > max_len:  # the sentences only where needed: this runs on every live write
                where = f"segment {i} {s.name!r}"
                if n < min_len:
                    out.append(f"{where}: {n} samples < minimum {min_len} for {self.n_channels} channels")
                if n % card.segment_granularity:
                    out.append(f"{where}: {n} samples is not a multiple of {card.segment_granularity}")
                if n > max_len:
                    out.append(f"{where}: {n} samples > slot size {max_len}")
        if not 0 <= self.start_step < max(1, len(self.steps)):
            out.append(f"start step {self.start_step} out of range 0..{len(self.steps) - 1}")
        used = set()
        for i, st in enumerate(self.steps):
            used.add(st.segment)
            try:
                st.entry
            except CardLimitError as exc:
                entry_problem = exc.detail
            else:
                if 0 <= st.segment < len(self.segments) and 0 <= st.next < len(self.steps) and 1 <= st.loops <= card.max_loops:
                    continue
                entry_problem = ""
            where = f"step {i} ({st.name!r})"
            if not 0 <= st.segment < len(self.segments):
                out.append(f"{where}: segment index {st.segment} out of range 0..{len(self.segments) - 1}")
            if not 0 <= st.next < len(self.steps):
                out.append(f"{where}: next step {st.next} out of range 0..{len(self.steps) - 1}")
            if not 1 <= st.loops <= card.max_loops:
                out.append(f"{where}: loops={st.loops} outside 1..{card.max_loops}")
            if entry_problem:
                out.append(f"{where}: {entry_problem}")
        if not distinct_marker_lines(self.marker_lines):
            out.append(f"marker lines {list(self.marker_lines)} are not distinct lines among {MARKER_LINES}")
        for r in self.reserved_slots:
            if not 0 <= r < len(self.segments):
                out.append(f"reserved slot {r} out of range 0..{len(self.segments) - 1}")
        unused = sorted(set(range(len(self.segments))) - used - set(self.reserved_slots))
        if unused:
            out.append(f"segments {unused} are never played by any step")
        return out

    def validate(self, card: CardSpec | None = None) -> CompiledSequenceProgram:
        """Raise :class:`~awgrt.errors.CardLimitError` listing every problem; return self if none."""
        problems = self.problems(card)
        if problems:
            name = (card or self.card).name
            raise CardLimitError(f"{len(problems)} problem(s) for {name}: " + "; ".join(problems), op="validate", value=len(problems))
        return self

    # ------------------------------------------------------------------ save / load

    def plot(self, *, fig=None, path: str | Path | None = None):
        """Each tone's frequency and amplitude along the step walk, per channel, before playing
        (:func:`awgrt.plot.plot_program`): a matplotlib Figure, saved as PNG to ``path`` if given."""
        from .plot import plot_program

        return plot_program(self, fig=fig, path=path)

    def plot_plane(self, x: str, y: str, *, fig=None, path: str | Path | None = None):
        """The tweezer plane of the 2D AOD pair on channels ``x`` and ``y`` along the step walk
        (:func:`awgrt.plot.plot_plane`): a matplotlib Figure, saved as PNG to ``path`` if given."""
        from .plot import plot_plane

        return plot_plane(self, x, y, fig=fig, path=path)

    def with_intent(self, intent: IntentIR) -> CompiledSequenceProgram:
        """This program, knowing the intent program it was compiled from (for :meth:`save`)."""
        return replace(self, intent=intent)

    @property
    def report_text(self) -> str | None:
        """The compile report as text (detailed): the live report's, or the one a loaded file kept."""
        return self.report.format(detail=True) if self.report is not None else self.saved_report

    def save(self, path: str | Path) -> Path:
        """Write data and step table to one ``.npz`` file, with the intent program it was
        compiled from (where known: :meth:`with_intent`; the runtime and ``awgrt compile`` set it)
        and the compile report's text, so the file says what it is and how it was made."""
        meta = {
            "schema": SAVE_SCHEMA,
            "schema_version": SAVE_VERSION,
            "awgrt_version": __version__,
            "sample_rate_hz": self.sample_rate_hz,
            "n_channels": self.n_channels,
            "start_step": self.start_step,
            "hardware_channels": dict(self.hardware_channels),
            "card": self.card.name,
            "segments": [{"name": s.name, "names": list(s.names), "digest": s.digest, "clipped": list(s.clipped)} for s in self.segments],
            "steps": [[st.segment, st.next, st.loops, st.on_trigger, st.end, st.name] for st in self.steps],
        }
        if self.reserved_slots:
            meta["reserved_slots"] = list(self.reserved_slots)
        if self.marker_lines:
            meta["marker_lines"] = list(self.marker_lines)
        if self.intent is not None:
            meta["intent"] = self.intent.to_dict()
        if self.report_text is not None:
            meta["report"] = self.report_text
        arrays = {f"seg{i}": s.data for i, s in enumerate(self.segments)}
        path = Path(path)
        if path.is_dir():
            raise SerializationError(f"{path} is a directory: give a file name to save the program to", op="save", value=str(path))
        meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        try:  # atomically: a failed save (a full disk, a quota) leaves the previous file whole
            return atomic_write(path, lambda f: np.savez(f, meta=meta_bytes, **arrays))  # type: ignore[arg-type]
        except OSError as exc:
            raise SerializationError(f"cannot save the program to {path}: {exc.strerror or exc}", op="save", value=str(path)) from exc

    @classmethod
    def load(cls, path: str | Path, card: CardSpec | None = None) -> CompiledSequenceProgram:
        """Read a program written by :meth:`save`, checking everything in it as untrusted input
        (see :mod:`awgrt._savefile`): a :class:`~awgrt.errors.SerializationError` names the file
        and the field of any problem. The result is not validated against a card: call
        :meth:`validate`."""
        with SaveFile(path) as f:
            meta = f.meta()
            if meta.get("schema") != SAVE_SCHEMA:
                raise f.fail("meta.schema", "not an awgrt compiled program", meta.get("schema"))
            if meta.get("schema_version") != SAVE_VERSION:
                writer = meta.get("awgrt_version", "an unknown version")
                raise f.fail(
                    "meta.schema_version",
                    f"written by awgrt {writer} in file format {meta.get('schema_version')!r}; awgrt {__version__} reads format {SAVE_VERSION}: "
                    "load it with the awgrt that wrote it, or compile its program again with this one (the file's 'intent', where saved, is the "
                    "program as JSON: awgrt compile)",
                    meta.get("schema_version"),
                )
            fs = need(f, meta, "sample_rate_hz", "real")
            n_channels = need(f, meta, "n_channels", "int")
            if not 1 <= n_channels <= 64:
                raise f.fail("meta.n_channels", f"{n_channels} is not a channel count", n_channels)
            start_step = need(f, meta, "start_step", "int")
            hw = need(f, meta, "hardware_channels", "dict")
            for k, v in hw.items():
                check_value(f, f"meta.hardware_channels[{k!r}]", v, "int")
            card_name = need(f, meta, "card", "str")
            seg_meta = need(f, meta, "segments", "list")
            segments = []
            for i, s in enumerate(seg_meta):
                where = f"meta.segments[{i}]"
                check_value(f, where, s, "dict")
                name = check_value(f, f"{where}.name", s.get("name"), "str")
                digest = check_value(f, f"{where}.digest", s.get("digest"), "str")
                names = tuple(check_value(f, f"{where}.names", n, "str") for n in check_value(f, f"{where}.names", s.get("names"), "list"))
                clipped = tuple(check_value(f, f"{where}.clipped", c, "int") for c in check_value(f, f"{where}.clipped", s.get("clipped"), "list"))
                segments.append(CompiledSegment(name, f.samples(f"seg{i}", n_channels), digest, names, clipped))
            steps = []
            for i, st in enumerate(need(f, meta, "steps", "list")):
                where = f"meta.steps[{i}]"
                if not isinstance(st, list) or len(st) != 6:
                    raise f.fail(where, f"must be [segment, next, loops, on_trigger, end, name], got {st!r}"[:200])
                kinds = ("int", "int", "int", "bool", "bool", "str")
                steps.append(SequenceStep(*(check_value(f, where, v, k) for v, k in zip(st, kinds))))
            intent = None
            if meta.get("intent") is not None:
                try:
                    intent = IntentIR.from_dict(meta["intent"])
                except AWGRTError as exc:
                    raise f.fail("meta.intent", f"the intent program it keeps is not valid: {exc}"[:300]) from None
            reserved = tuple(
                check_value(f, "meta.reserved_slots", r, "int") for r in check_value(f, "meta.reserved_slots", meta.get("reserved_slots", []), "list")
            )
            saved_report = meta.get("report")
            if saved_report is not None:
                check_value(f, "meta.report", saved_report, "str")
            markers = tuple(
                check_value(f, "meta.marker_lines", m, "str") for m in check_value(f, "meta.marker_lines", meta.get("marker_lines", []), "list")
            )
            if not distinct_marker_lines(markers):
                raise f.fail("meta.marker_lines", f"{list(markers)} are not distinct lines among {MARKER_LINES}", markers)
        if card is None:
            card = CARDS.get(card_name)
            if card is None:
                raise SerializationError(f"{path}: card {card_name!r} unknown here; pass card=", op="load meta.card", value=card_name)
        return cls(
            sample_rate_hz=float(fs),
            n_channels=n_channels,
            segments=tuple(segments),
            steps=tuple(steps),
            start_step=start_step,
            hardware_channels=hw,
            card=card,
            intent=intent,
            saved_report=saved_report,
            reserved_slots=reserved,
            marker_lines=markers,
        )
