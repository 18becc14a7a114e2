"""The runtime: compile, upload and start, scan point after scan point, doing only what changed.

``Runtime(backend).run(program, sample_rate_hz=...)`` resolves, quantizes and compiles the
program, then brings the card up to date with the least work:

- **compile**: a segment is synthesised only when its content digest (everything that
  determines its samples, including the tone state and phases it inherits) is new; the others
  come from a cache of the previous scan point. Segments named in ``invariant=`` keep the samples
  they had at the previous point even if their digest changed (the report says so);
- **upload**: ``"full"`` when the memory layout (slot count or any slot length), sample rate or
  channel count changed; ``"segments"`` (only the slots whose samples changed, plus the step
  table if it changed too) when the layout is the same; ``"steps"`` when only loop counts or
  transitions changed; ``"none"`` when nothing did.

Every output setting given to the runtime (amplitude, stop level, trigger source and level) is
compared with the card's set-up and written where it differs, on every run, even when the program
did not change (upload kind ``"settings"``); a change of start step alone rewrites it. Clipped
samples raise a :class:`~awgrt.errors.ClipWarning` by default (``clip_policy``: ``"warn"``,
``"error"`` or ``"count"``, as in :func:`~awgrt.compiler.compile.compile_sequence_program`). An
AOD-calibrated channel is driven only at the card amplitude its calibration was measured at.
``rt.verify()`` reads the card back and compares every field with what was asked.

A slot that the card is playing is never rewritten silently: by default (``live="restart"``) the
runtime stops the card, updates it and starts it again; with ``live="allow"`` it writes the slot
live (the output mixes old and new samples) and records that in the report.

``rt.last_report`` tells what each run did and how long each stage took. ``rt.on_step(name,
fn)`` calls ``fn(StepInfo)`` whenever the sequencer enters a step playing segment ``name``; with
``asynchronous=True`` the call is queued to a worker thread so playback is never blocked. On the
simulator the sample times are exact. Each step entry is delivered once, even when a callback
raises.

The asynchronous queue holds at most ``callback_queue_size`` entries (default
:data:`CALLBACK_QUEUE_SIZE`). **Overflow policy:** when it is full the newest entry is dropped,
never the card's progress: drops are counted in ``rt.dropped_callbacks`` and the first drop of a
burst raises a :class:`~awgrt.errors.CallbackWarning`.

``rt.close()`` (or leaving ``with Runtime(...)``) stops the card first, then waits at most
``close_timeout_s`` for queued asynchronous callbacks, detaches from the backend, and raises an
:class:`~awgrt.errors.AWGRTError` naming the callbacks still running after that wait (or the first
error an asynchronous callback raised); when an exception is already on its way out of the
``with`` block it warns instead of masking it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._units import in_unit, whole_mv
from .backends.base import Backend, OutputConfig
from .builder import AWGProgramBuilder
from .card import INTERNAL_CLOCK, ClockConfig
from .compiler.compile import CLIP_POLICIES, calibrations_of, compile_sequence_program
from .compiler.quantize import QuantizeOptions, quantize_resolved_ir, replace_segments
from .compiler.report import CompileReport
from .compiler.resolve import resolve_intent_ir
from .compiler.synth import SynthResult
from .errors import AWGRTError, CallbackWarning, ProgramError, UnsupportedError, VerificationError
from .ir.intent import IntentIR, finite_real
from .ir.quantized import QuantizedIR
from .ir.resolved import Note, ResolvedIR
from .program import CompiledSequenceProgram, StepEvent
from .readback import Mismatch, compare
from .upload import LIVE_MODES, LiveMode, UploadKind, UploadPlan, apply_upload, asked_outputs, plan_upload

log = logging.getLogger(__name__)

#: Default capacity of the asynchronous step-callback queue (entries).
CALLBACK_QUEUE_SIZE = 10_000
_WAITS_FOR_ITSELF = "would wait for that callback to finish: call it from another thread"
#: Default seconds ``close()`` waits for queued asynchronous callbacks.
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RunReport:
    """What one :meth:`Runtime.run` did. ``compiled_segments``: segments synthesised afresh;
    ``uploaded_segments``: segments whose memory slots were written; ``timings_s``: seconds per
    stage (resolve, quantize, compile, upload, start)."""

    upload_kind: UploadKind
    compiled_segments: tuple[str, ...]
    uploaded_segments: tuple[str, ...]
    steps_rewritten: bool
    restarted: bool
    timings_s: Mapping[str, float]
    notes: tuple[str, ...]
    compile_report: CompileReport | None

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython and Jupyter show the formatted report, not the fields."""
        printer.text(str(self))

    def __str__(self) -> str:
        t = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.timings_s.items())
        lines = [
            f"upload: {self.upload_kind}; compiled {list(self.compiled_segments)}; uploaded {list(self.uploaded_segments)}"
            + ("; step table rewritten" if self.steps_rewritten else "")
            + ("; card restarted" if self.restarted else ""),
            f"timings: {t}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


@dataclass(frozen=True)
class StepInfo:
    """Passed to step callbacks: the step index, its segment name, and when it was entered
    (output sample since the start command, and the same in seconds)."""

    step: int
    segment: str
    sample: int
    time_s: float


class Runtime:
    """Compile, upload and run programs on one backend (see module doc)."""

    def __init__(
        self,
        backend: Backend,
        *,
        logical_channel_to_hardware_channel: Mapping[str, int] | None = None,
        gain: float = 1.0,
        clip: float = 0.9,
        clip_policy: str = "warn",
        full_scale: int = 32767,
        amplitude_mv: int | Sequence[int] = 1000,
        stop_level: str = "zero",
        trigger: str = "external",
        trigger_level_mv: int = 1000,
        clock: ClockConfig = INTERNAL_CLOCK,
        live: LiveMode = "restart",
        quantize_options: QuantizeOptions | None = None,
        callback_queue_size: int = CALLBACK_QUEUE_SIZE,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        fast_math: bool = False,
    ) -> None:
        """A runtime driving ``backend`` (a :class:`~awgrt.backends.Backend`, entered by the caller).

        Compiling: ``logical_channel_to_hardware_channel`` (None: the program's channels in order);
        ``gain`` (tone amplitudes times this, fractions of full scale), ``clip`` (fraction of full
        scale where samples are clipped) and ``clip_policy`` (``"warn"``, ``"error"`` or
        ``"count"``: what clipping does beyond the report); ``full_scale`` (the int16 value of
        amplitude 1); ``quantize_options`` (keywords of :func:`~awgrt.quantize_resolved_ir`:
        snapping bounds, stretch, joint, ...); ``fast_math`` (opt-in float32 phases for many
        moving tones, see :func:`~awgrt.compile_sequence_program`).

        The card's set-up, written when it differs from what the card holds:
        ``amplitude_mv`` (one value or one per channel, mV into 50 ohm at full scale),
        ``stop_level`` (what the outputs show when not replaying), ``trigger`` (``"external"`` or
        ``"software"``) and ``trigger_level_mv`` (the external trigger's level), ``clock`` (a
        :class:`~awgrt.backends.ClockConfig`: internal PLL or locked to a reference, clock output).

        Running: ``live`` (``"restart"``: a slot that is playing is written with the card stopped
        and restarted; ``"allow"``: written live, and said so), ``callback_queue_size`` and
        ``close_timeout_s`` (step callbacks run asynchronously from a queue of that size; close()
        waits that long for them). Bad values raise :class:`~awgrt.errors.ProgramError`.
        """
        if live not in LIVE_MODES:
            raise ProgramError(f"live={live!r} must be one of {LIVE_MODES}", op="Runtime", value=live)
        if isinstance(callback_queue_size, bool) or not isinstance(callback_queue_size, int) or callback_queue_size < 1:
            raise ProgramError(f"callback_queue_size={callback_queue_size!r} must be an integer >= 1", op="Runtime", value=callback_queue_size)
        if not finite_real(close_timeout_s) or close_timeout_s < 0:
            raise ProgramError(f"close_timeout_s={close_timeout_s!r} must be a finite number of seconds >= 0", op="Runtime", value=close_timeout_s)
        if not isinstance(fast_math, bool):
            raise ProgramError(f"fast_math={fast_math!r} must be True or False", op="Runtime", value=fast_math)
        if clip_policy not in CLIP_POLICIES:
            raise ProgramError(f"clip_policy={clip_policy!r} must be one of {CLIP_POLICIES}", op="Runtime", value=clip_policy)
        self.clip_policy = clip_policy
        self.backend = backend
        self.mapping = dict(logical_channel_to_hardware_channel) if logical_channel_to_hardware_channel else None
        self.gain, self.clip, self.full_scale = gain, clip, full_scale
        self.fast_math = fast_math
        self.amplitude_mv, self.stop_level = whole_mv(amplitude_mv, "amplitude_mv", "Runtime"), stop_level
        self.trigger: Any = trigger
        self.trigger_level_mv = whole_mv(trigger_level_mv, "trigger_level_mv", "Runtime")
        if not isinstance(clock, ClockConfig) or clock.problem(backend.card):
            why = clock.problem(backend.card) if isinstance(clock, ClockConfig) else f"clock={clock!r} must be a ClockConfig"
            raise ProgramError(str(why), op="Runtime", value=clock)
        self.clock = clock
        self.live = live
        self.quantize_options: dict[str, Any] = dict(quantize_options or {})
        self.program: CompiledSequenceProgram | None = None
        self.last_report: RunReport | None = None
        self._quantized: QuantizedIR | None = None
        self._memo: tuple[tuple, QuantizedIR] | None = None  # the last quantization, for loop-count-only changes
        self._cache: dict[str, SynthResult] = {}
        self._callbacks: dict[str, list[tuple[Callable[[StepInfo], object], bool]]] = {}
        self._listening = False
        self._queue: Any = None  # queue.Queue of asynchronous callbacks, once one is registered
        self._worker: threading.Thread | None = None
        self._async_errors: list[BaseException] = []
        self.callback_queue_size = callback_queue_size
        self.close_timeout_s = float(close_timeout_s)
        #: Asynchronous step entries dropped because the queue was full (see module doc).
        self.dropped_callbacks = 0
        self._overflowing = False
        self._running_callback: tuple[Callable[[StepInfo], object], StepInfo] | None = None
        self._discard = threading.Event()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except AWGRTError as err:  # do not mask the exception already leaving the block
            warnings.warn(f"while closing the runtime: {err}", CallbackWarning, stacklevel=2)

    # ------------------------------------------------------------------ run

    def _compile(
        self,
        program: AWGProgramBuilder | IntentIR | ResolvedIR | CompiledSequenceProgram,
        sample_rate_hz: float | None,
        invariant: Sequence[str],
        *,
        prune: bool = True,
    ) -> tuple[CompiledSequenceProgram, QuantizedIR | None, dict[str, float], list[str]]:
        """Resolve, quantize and compile against the backend's card, reusing cached segments
        (a program compiled before: no quantized IR)."""
        timings: dict[str, float] = {}
        notes: list[str] = []
        t = time.perf_counter()
        if isinstance(program, AWGProgramBuilder):
            program = program.build_intent_ir()
        memo_key = None
        if isinstance(program, IntentIR):
            if sample_rate_hz is None:
                raise ProgramError("run() needs sample_rate_hz= for an intent program", op="run")
            memo_key = self._memo_key(program, sample_rate_hz)
            if memo_key is not None and self._memo is not None and self._memo[0] == memo_key:
                q = self._with_loops(self._memo[1], program)  # only loop counts changed
                timings["resolve"] = time.perf_counter() - t
                timings["quantize"] = 0.0
                resolved = None
            else:
                resolved = resolve_intent_ir(program, sample_rate_hz)
        elif isinstance(program, ResolvedIR):
            resolved = program
        elif isinstance(program, CompiledSequenceProgram):  # compiled before (loaded from a file): upload as it is
            return self._compiled(program, sample_rate_hz)
        else:
            raise ProgramError(f"cannot run a {type(program).__name__}", op="run")
        if resolved is not None:
            timings["resolve"] = time.perf_counter() - t
            t = time.perf_counter()
            q = quantize_resolved_ir(resolved, self.mapping, self.backend.card, **self.quantize_options)
            self._memo = (memo_key, q) if memo_key is not None else None
            timings["quantize"] = time.perf_counter() - t

        t = time.perf_counter()
        if invariant and self._quantized is not None:
            q, kept = self._keep_invariant(q, invariant)
            notes += kept
        timings["quantize"] += time.perf_counter() - t

        t = time.perf_counter()
        compiled = compile_sequence_program(
            q, self.gain, self.clip, self.full_scale, clip_policy=self.clip_policy, cache=self._cache, fast_math=self.fast_math
        )
        if prune:  # keep only what the current point uses (a dry run keeps everything)
            digests = {s.digest for s in q.segments}
            for k in [k for k in self._cache if k.split(":", 1)[0] not in digests]:
                del self._cache[k]
        timings["compile"] = time.perf_counter() - t
        if isinstance(program, IntentIR):
            compiled = compiled.with_intent(program)  # so that rt.program.save() keeps it
        return compiled, q, timings, notes

    def _compiled(self, program: CompiledSequenceProgram, sample_rate_hz: float | None) -> tuple[CompiledSequenceProgram, None, dict[str, float], list[str]]:
        """A program compiled before (say, loaded from a file), checked for this card and rate."""
        if sample_rate_hz is not None and sample_rate_hz != program.sample_rate_hz:
            raise ProgramError(
                f"the compiled program is for {program.sample_rate_hz:g} S/s, not sample_rate_hz={sample_rate_hz:g}: compile its intent program again",
                op="run",
                value=sample_rate_hz,
            )
        if self.mapping and dict(program.hardware_channels) != dict(self.mapping):
            raise ProgramError(
                f"the compiled program maps channels {dict(program.hardware_channels)}, this runtime {dict(self.mapping)}", op="run", value=dict(self.mapping)
            )
        program.validate(self.backend.card)
        self._memo = None
        return program, None, {"resolve": 0.0, "quantize": 0.0, "compile": 0.0}, ["a program compiled before: uploaded as it is"]

    def _memo_key(self, intent: IntentIR, sample_rate_hz: float) -> tuple | None:
        """What decides the quantized IR of ``intent`` apart from loop counts: the program without
        them, the sample rate, the card, the channel mapping and the quantize options."""
        try:
            options = tuple(sorted((k, repr(v)) for k, v in self.quantize_options.items()))
            mapping = tuple(sorted(self.mapping.items())) if self.mapping else None
            return (intent.loop_blind_key(), repr(sample_rate_hz), self.backend.card, mapping, options)
        except TypeError:  # an unorderable option: no memo, quantize as usual
            return None

    @staticmethod
    def _with_loops(q: QuantizedIR, intent: IntentIR) -> QuantizedIR:
        """``q`` with the loop counts (and program digest) of ``intent``, whose only difference
        from the program ``q`` was made from is its loop counts (see :meth:`_memo_key`)."""
        loops = {s.name: s.loops for s in intent.segments}
        segments = tuple(s if s.loops == loops[s.name] else replace(s, loops=loops[s.name]) for s in q.segments)
        return replace(q, segments=segments, intent=intent)

    def _keep_invariant(self, q, invariant: Sequence[str]):
        assert self._quantized is not None  # the caller checked
        prev = {s.name: s for s in self._quantized.segments}
        notes = []
        segments = list(q.segments)
        for i, seg in enumerate(segments):
            if seg.name not in invariant:
                continue
            old = prev.get(seg.name)
            if old is None or old.n_samples != seg.n_samples:
                notes.append(f"invariant segment {seg.name!r} changed length or is new: compiled afresh")
            elif old.digest != seg.digest:
                segments[i] = replace(old, mode=seg.mode, loops=seg.loops, phase_mode=seg.phase_mode)
                notes.append(f"invariant segment {seg.name!r} keeps its previous samples although its content changed")
        if not notes:
            return q, notes
        note = Note("invariant", None, "; ".join(notes))
        return replace_segments(q, tuple(segments), note), notes

    def run(
        self,
        program: AWGProgramBuilder | IntentIR | ResolvedIR | CompiledSequenceProgram,
        *,
        sample_rate_hz: float | None = None,
        invariant: Sequence[str] = (),
        start: bool = True,
        force_trigger: bool = False,
    ) -> CompiledSequenceProgram:
        """Compile ``program`` and bring the card up to date (see module doc); start it if it
        is not running and ``start`` is true. Returns the compiled program. A
        :class:`CompiledSequenceProgram` (e.g. ``CompiledSequenceProgram.load("p.npz")``) is
        checked against the card (and ``sample_rate_hz`` if given) and uploaded as it is."""
        sample_rate_hz = in_unit(sample_rate_hz, "Hz", "sample_rate_hz", op="run")
        compiled, quantized, timings, notes = self._compile(program, sample_rate_hz, invariant)
        self._check_calibrated_outputs(quantized)
        t = time.perf_counter()
        try:
            plan = self._plan(compiled)
            apply_upload(self.backend, plan, compiled, self._asked(compiled))
        except BaseException:
            # failed or interrupted part-way (Ctrl-C included): the card is stopped and the
            # backend forgets what it held, so the next run uploads everything it needs
            self.backend.abandon()
            raise
        notes += plan.notes
        timings["upload"] = time.perf_counter() - t
        self.program = compiled
        self._quantized = quantized
        t = time.perf_counter()
        if (start and not self.backend.is_running()) or plan.restart:
            self.backend.start(force_trigger=force_trigger)
        timings["start"] = time.perf_counter() - t
        report = compiled.report
        self.last_report = RunReport(
            upload_kind=plan.kind,
            compiled_segments=tuple(report.synthesised) if report is not None else (),
            uploaded_segments=tuple(n for i in plan.slots for n in compiled.segments[i].names),
            steps_rewritten=plan.steps,
            restarted=plan.restart,
            timings_s=timings,
            notes=tuple(notes),
            compile_report=report,
        )
        log.info("run: %s", str(self.last_report).replace("\n", "; "))
        return compiled

    def _check_calibrated_outputs(self, quantized: QuantizedIR | None) -> None:
        """Refuse, before anything touches the card, to drive an AOD-calibrated channel at another
        card amplitude than its calibration was measured at (see
        :meth:`~awgrt.calibration.AODCalibration.check_output`)."""
        if quantized is None:
            return
        amps = self.amplitude_mv
        for channel, cal in calibrations_of(quantized).items():
            hw = quantized.hardware_channels[channel]
            mv = amps if isinstance(amps, int) else amps[hw]
            cal.check_output(mv, self.gain, f"channel {channel!r} (hardware channel {hw})")

    def _plan(self, new: CompiledSequenceProgram) -> UploadPlan:
        be = self.backend
        running = be.is_running()
        playing = self._playing_slot(running)
        return plan_upload(be.program, new, config=be.config, running=running, playing_slot=playing, live=self.live, wanted=self._asked(new))

    def _playing_slot(self, running: bool) -> int | None:
        """The memory slot the card plays now (None: it is not ``running``, or unknown)."""
        be = self.backend
        if not running or be.program is None:
            return None
        step = be.current_step()
        return be.program.steps[step].segment if 0 <= step < len(be.program.steps) else None

    def _asked(self, program: CompiledSequenceProgram) -> OutputConfig:
        return asked_outputs(
            program,
            amplitude_mv=self.amplitude_mv,
            stop_level=self.stop_level,
            trigger=self.trigger,
            trigger_level_mv=self.trigger_level_mv,
            clock=self.clock,
        )

    def verify(self) -> tuple[Mismatch, ...]:
        """Read the card back (every output setting, the slot count and sizes, the start step, every
        step entry, and the samples where the backend can read them) and compare each field with
        what this runtime last asked for (:mod:`awgrt.readback`). Returns an empty tuple when the
        card holds exactly that; raises :class:`~awgrt.errors.VerificationError`
        listing every field that differs. Works on the real card as on the simulator."""
        if self.program is None:
            raise ProgramError("nothing was run yet: verify() checks the card after run()", op="verify")
        program = self.program
        card = self.backend.read_back(len(program.steps), len(program.segments))
        mismatches = compare(card, program, self._asked(program))
        if mismatches:
            raise VerificationError(
                f"the card differs from what was asked in {len(mismatches)} field(s): " + "; ".join(str(m) for m in mismatches),
                op="verify",
                value=mismatches,
            )
        return mismatches

    def rewrite(self, program: CompiledSequenceProgram, *, slots: Sequence[int] = (), steps: Sequence[int] = ()) -> None:
        """Bring the running card to ``program`` by writing only the memory slots ``slots`` and
        then the step entries ``steps``, in that order, without stopping it (what a real-time
        client such as :class:`~awgrt.rearrange.Rearranger` does between two triggers). Everything
        else in ``program`` must equal what the card holds (the backend checks it), and no slot
        written may be the one playing now: the caller keeps the slots it writes out of the
        sequencer's reach until their step entries are written. ``self.program`` is ``program``
        afterwards; on any failure the card is stopped and the next run uploads everything."""
        if self.program is None or self.backend.program is None:
            raise ProgramError("nothing is loaded yet: rewrite() changes a program that run() uploaded", op="rewrite")
        playing = self._playing_slot(self.backend.is_running()) if slots else None
        if playing is not None and playing in slots:
            raise ProgramError(
                f"slot {playing} ({program.segments[playing].name!r}) is playing now: it cannot be rewritten live", op="rewrite", value=playing
            )
        try:
            self.backend.write_live(program, list(slots), list(steps))
        except BaseException:
            self.backend.abandon()
            self.program = None
            raise
        self.program = program

    def plan(
        self, program: AWGProgramBuilder | IntentIR | ResolvedIR, *, sample_rate_hz: float | None = None, invariant: Sequence[str] = ()
    ) -> UploadPlan:
        """A dry run: compile ``program`` as :meth:`run` would and return the
        :class:`~awgrt.upload.UploadPlan` it would carry out, touching nothing on the card."""
        compiled, *_ = self._compile(program, sample_rate_hz, invariant, prune=False)
        return self._plan(compiled)

    # ------------------------------------------------------------------ callbacks

    def on_step(self, segment: str, fn: Callable[[StepInfo], object], *, asynchronous: bool = False) -> None:
        """Call ``fn(StepInfo)`` each time the sequencer enters a step playing ``segment``."""
        if not self.backend.supports_step_events:
            raise UnsupportedError(
                f"{type(self.backend).__name__} cannot report step entries (the card exposes only the current step): "
                "step callbacks need a backend with supports_step_events, such as SimBackend",
                op="on_step",
                value=segment,
            )
        self._callbacks.setdefault(segment, []).append((fn, asynchronous))
        if not self._listening:
            self.backend.add_step_listener(self._on_notice)
            self._listening = True
        if asynchronous and self._worker is None:
            self._queue = queue.Queue(maxsize=self.callback_queue_size)
            self._discard.clear()
            self._worker = threading.Thread(target=self._work, name="awgrt-step-callbacks", daemon=True)
            self._worker.start()

    def _on_notice(self, notice: StepEvent) -> None:
        if self.program is None or notice.step >= len(self.program.steps):
            return
        name = self.program.steps[notice.step].name
        info = StepInfo(notice.step, name, notice.sample, notice.sample / self.program.sample_rate_hz)
        first: BaseException | None = None
        for fn, asynchronous in self._callbacks.get(name, ()):
            if asynchronous:
                self._enqueue(fn, info)
                continue
            try:
                fn(info)
            except Exception as exc:  # noqa: BLE001 - the other callbacks still get this entry
                first = first or exc
        if first is not None:
            raise first

    def _enqueue(self, fn: Callable[[StepInfo], object], info: StepInfo) -> None:
        try:
            self._queue.put_nowait((fn, info))
            self._overflowing = False
        except queue.Full:
            self.dropped_callbacks += 1
            if not self._overflowing:
                self._overflowing = True
                warnings.warn(
                    f"asynchronous step-callback queue full ({self.callback_queue_size} entries): dropping new entries "
                    f"(first dropped: {getattr(fn, '__name__', fn)!s} for step {info.step} {info.segment!r} at sample {info.sample})",
                    CallbackWarning,
                    stacklevel=2,
                )

    def _work(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            try:
                if item is None:
                    return
                if self._discard.is_set():
                    continue
                self._running_callback = item
                fn, info = item
                fn(info)
            except BaseException as exc:  # noqa: BLE001 - reported by flush()
                self._async_errors.append(exc)
            finally:
                self._running_callback = None
                q.task_done()

    def _wait_queue(self, timeout_s: float | None) -> bool:
        """Wait until the queue is empty and idle; False if ``timeout_s`` ran out first."""
        q = self._queue
        if q is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with q.all_tasks_done:
            while q.unfinished_tasks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                q.all_tasks_done.wait(left)
        return True

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued asynchronous callback has run (at most ``timeout_s``, None:
        no limit); re-raise the first error one raised. Called from an asynchronous callback (the
        worker thread itself) it raises at once: it would wait for itself forever."""
        if self._worker is not None and threading.current_thread() is self._worker:
            raise AWGRTError(f"flush() called from an asynchronous step callback {_WAITS_FOR_ITSELF}", op="flush")
        if timeout_s is not None and not (finite_real(timeout_s) and timeout_s >= 0):
            raise ProgramError(f"timeout_s={timeout_s!r} must be a finite number of seconds >= 0, or None", op="flush", value=timeout_s)
        if not self._wait_queue(timeout_s):
            raise AWGRTError(f"asynchronous step callbacks still running after {timeout_s:g} s: {self._describe_stuck()}", op="on_step")
        if self._async_errors:
            exc = self._async_errors.pop(0)
            raise AWGRTError(f"an asynchronous step callback failed: {exc!r}", op="on_step") from exc

    def _describe_stuck(self) -> str:
        running = self._running_callback
        what = "none running"
        if running is not None:
            fn, info = running
            what = f"{getattr(fn, '__qualname__', fn)!s} for step {info.step} ({info.segment!r}, sample {info.sample})"
        waiting = self._queue.qsize() if self._queue is not None else 0
        return f"{what}; {waiting} more queued"

    def close(self) -> None:
        """Stop the card, wait at most ``close_timeout_s`` for queued asynchronous callbacks,
        stop the worker and detach from the backend (see module doc). Not from an asynchronous
        callback (it would wait for itself): that raises at once."""
        if self._worker is not None and threading.current_thread() is self._worker:
            raise AWGRTError(f"close() called from an asynchronous step callback {_WAITS_FOR_ITSELF}", op="close")
        stuck = None
        try:
            self.backend.stop()
        finally:
            if self._worker is not None:
                if not self._wait_queue(self.close_timeout_s):
                    stuck = self._describe_stuck()
                    self._discard.set()  # the worker drops what is left once the stuck call returns
                try:
                    self._queue.put_nowait(None)
                except queue.Full:
                    pass
                self._worker.join(timeout=0 if stuck else self.close_timeout_s)
                self._worker = None
            if self._listening:
                self.backend.remove_step_listener(self._on_notice)
                self._listening = False
        if stuck:
            raise AWGRTError(f"closed with asynchronous step callbacks still running after {self.close_timeout_s:g} s: {stuck}", op="close")
        if self._async_errors:
            exc = self._async_errors.pop(0)
            raise AWGRTError(f"an asynchronous step callback failed: {exc!r}", op="on_step") from exc
