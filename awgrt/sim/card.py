"""A cycle-accurate model of a Spectrum card's sequence memory: pure state and time, no I/O.

:class:`SimulatedCard` holds what the card holds (data memory split into ``MAXSEGMENTS`` equal
slots, the step memory, the start step, channel and stop-level settings) and offers the
operations the driver offers. Time is a virtual sample clock owned by the caller: sample 0 is the
start command, :meth:`SimulatedCard.advance` moves the clock on, :meth:`SimulatedCard.render`
moves it on and returns what the DACs received meanwhile. Every host operation happens at the
current sample ("now").

The sequencer is event-driven: it moves a whole step at a time (a step's ``loops`` passes are
one arithmetic step), an ENDLOOPONTRIG step waiting for a trigger costs nothing however long it
waits, and a trigger-free cycle of steps repeating itself is skipped a whole number of cycles at a
time, so simulating seconds of a looping program costs microseconds per step. Samples are only
produced for the windows asked for.

Behaviour the vendor does not document is a named :class:`SimPolicy` with a documented default.

Timing rules:

- After ``start()`` the card is armed and outputs each channel's stop level. The first trigger
  (external, if enabled, or forced) starts replay: the first sample of the start step is output
  ``latency`` samples after the trigger, where latency = 238.5 clocks + 16 ns at up to 625 MS/s
  and 476.5 clocks + 16 ns above, rounded *up* to a whole sample (the first sample at or after
  the measured delay). At 625 MS/s that is ceil(248.5) = 249 samples.
- Each step plays its segment ``loops`` times back to back, with no gap and no repeated sample.
- ENDLOOPONTRIG: after its passes the step repeats its segment until a trigger has been seen and
  leaves at the end of the first pass that ends after it; never mid-segment.
- END: the step plays its passes whole, then the card is READY and outputs the stop levels.
- A host write to a slot takes effect from the sample it is made at: a pass in progress plays old
  samples before that point and new ones after (the card gives a mix; awgrt's runtime never
  writes a slot that is playing without saying so). The card counts such writes in
  ``live_slot_writes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..card import CardSpec, StepEntry, decode_step_entry
from ..errors import CardError
from . import spectrum as sp
from .spectrum import StopLevel

INF = math.inf


@dataclass(frozen=True)
class SimPolicy:
    """Choices where the card's behaviour is not documented.

    ``endloop_check``: ``"after_all_loops"`` (default) plays all ``loops`` passes of an
    ENDLOOPONTRIG step before a trigger can end it; ``"every_pass"`` lets it leave at the end of
    any pass once a trigger was seen. (awgrt emits loops = 1 on every wait step, so the two agree
    for its programs.)

    ``latch_earlier_triggers``: False (default): only a trigger that arrives while an
    ENDLOOPONTRIG step is playing ends it; True: a trigger that arrived earlier and has not
    ended a step yet counts too.

    ``prefetch``: 1 (default): the sequencer reads the entry of the next step when it starts the
    current one, so rewriting that entry during the current step takes effect only the next time
    it is fetched; 0: it reads each entry at the moment it enters the step.

    ``endloop_setup_samples``: a trigger must arrive at least this many samples before a pass
    ends for that pass to be the last (default 0).
    """

    endloop_check: str = "after_all_loops"
    latch_earlier_triggers: bool = False
    prefetch: int = 1
    endloop_setup_samples: int = 0

    def __post_init__(self) -> None:
        if self.endloop_check not in ("after_all_loops", "every_pass"):
            raise ValueError(f"endloop_check={self.endloop_check!r}")
        if self.prefetch not in (0, 1):
            raise ValueError(f"prefetch={self.prefetch!r} must be 0 or 1")
        if self.endloop_setup_samples < 0:
            raise ValueError("endloop_setup_samples must be >= 0")


@dataclass(frozen=True)
class StepEvent:
    """The sequencer entered ``step`` (playing memory slot ``segment``) at output sample ``sample``."""

    sample: int
    step: int
    segment: int


@dataclass(frozen=True)
class _Cycles:
    """``count`` repetitions, every ``period`` samples from ``start``, of the events ``pattern``
    (offsets relative to each repetition's start)."""

    start: int
    period: int
    count: int
    pattern: tuple[StepEvent, ...]

    @property
    def end(self) -> int:
        return self.start + self.period * self.count


@dataclass
class _Run:
    """The current step: slot ``slot`` of ``n`` samples played in passes from ``origin``."""

    step: int
    entry: StepEntry
    slot: int
    n: int
    origin: int


@dataclass
class _Slot:
    size: int = 0
    data: np.ndarray | None = None


def trigger_latency_samples(sample_rate_hz: float) -> int:
    """Samples from trigger to first output sample (see module doc for the rounding rule)."""
    clocks = 238.5 if sample_rate_hz <= 625e6 else 476.5
    return math.ceil(clocks + 16e-9 * sample_rate_hz - 1e-9)


IDLE, ARMED, RUNNING, READY = "idle", "armed", "running", "ready"


@dataclass
class SimulatedCard:
    """The sequence memory and sequencer of one card (see module doc).

    Every operation that the driver would reject raises :class:`~awgrt.errors.CardError` with
    Spectrum's error code and leaves the card unchanged.
    """

    spec: CardSpec
    policy: SimPolicy = field(default_factory=SimPolicy)

    def __post_init__(self) -> None:
        self.sample_rate_hz = min(625e6, self.spec.max_sample_rate_hz)
        self.n_active = 1
        self.amplitude_mv = [1000] * self.spec.n_channels
        self.stop_levels = [StopLevel.ZERO] * self.spec.n_channels
        self.custom_stop = [0] * self.spec.n_channels
        self.max_segments = 0
        self.slots: list[_Slot] = []
        self.write_segment = 0
        self.steps: dict[int, StepEntry] = {}
        self.start_step = 0
        self.trigger_enabled = False
        self.now = 0
        self.state = IDLE
        self.triggered = False
        self.live_slot_writes = 0
        self._triggers: list[int] = []  # pending trigger times (sorted), sequencer-visible
        self._trigger_floor = 0  # triggers before this sample no longer count (latch policy)
        self._run: _Run | None = None
        self._prefetched: tuple[int, StepEntry] | None = None
        self._ready_at = INF
        self._hold = np.zeros(self.spec.n_channels, dtype=np.int16)  # last output sample per channel
        self._log: list[StepEvent | _Cycles] = []
        self._marks: dict[int, tuple[int, int]] = {}
        self._last_step = 0
        self.trigger_log: list[int] = []

    # ================================================================== errors

    def _fail(self, code: int, message: str, register: int | str | None = None) -> None:
        raise CardError(f"{self.spec.name} (simulated): {message}", code=code, register=register)

    def _require_not_running(self, what: str, register: int | str | None = None) -> None:
        if self.state in (ARMED, RUNNING):
            self._fail(sp.ERR_RUNNING, f"{what} is not allowed while the card runs", register)

    # ================================================================== configuration

    def set_sample_rate(self, sample_rate_hz: float) -> None:
        problem = self.spec.sample_rate_problem(sample_rate_hz)
        if problem:
            self._fail(sp.ERR_VALUE, problem, "SPC_SAMPLERATE")
        self._require_not_running("changing the sample rate", "SPC_SAMPLERATE")
        self.sample_rate_hz = float(sample_rate_hz)

    def set_channels(self, n_active: int) -> None:
        """Enable hardware channels 0 .. n_active-1."""
        if n_active not in self.spec.channel_counts:
            self._fail(sp.ERR_CHANNEL, f"{n_active} enabled channels; the card runs with {list(self.spec.channel_counts)}", "SPC_CHENABLE")
        self._require_not_running("changing the enabled channels", "SPC_CHENABLE")
        if n_active != self.n_active:
            self.slots = [_Slot() for _ in self.slots]  # memory is laid out per channel count
        self.n_active = n_active

    def set_amplitude(self, channel: int, amplitude_mv: int) -> None:
        self._check_channel(channel, "SPC_AMP0")
        if not self.spec.min_amplitude_mv <= amplitude_mv <= self.spec.max_amplitude_mv or int(amplitude_mv) != amplitude_mv:
            self._fail(sp.ERR_VALUE, f"amplitude {amplitude_mv!r} mV outside {self.spec.min_amplitude_mv}..{self.spec.max_amplitude_mv} mV", "SPC_AMP0")
        self.amplitude_mv[channel] = int(amplitude_mv)

    def set_stop_level(self, channel: int, level: StopLevel | int, custom: int = 0) -> None:
        self._check_channel(channel, sp.SPC_CH0_STOPLEVEL + channel)
        try:
            level = StopLevel(level)
        except ValueError:
            self._fail(sp.ERR_VALUE, f"stop level {level!r} unknown", sp.SPC_CH0_STOPLEVEL + channel)
        if not -32768 <= custom <= 32767:
            self._fail(sp.ERR_VALUE, f"custom stop level {custom} outside int16", sp.SPC_CH0_STOPLEVEL + channel)
        self.stop_levels[channel] = level
        self.custom_stop[channel] = int(custom)

    def _check_channel(self, channel: int, register: int | str) -> None:
        if not 0 <= channel < self.spec.n_channels:
            self._fail(sp.ERR_CHANNEL, f"channel {channel} does not exist ({self.spec.n_channels} channels)", register)

    # ================================================================== sequence memory

    def set_max_segments(self, n: int) -> None:
        """Split the data memory into ``n`` equal slots (``SPC_SEQMODE_MAXSEGMENTS``)."""
        reg = sp.SPC_SEQMODE_MAXSEGMENTS
        if not isinstance(n, int) or n < self.spec.min_segments or n > self.spec.max_segments or n & (n - 1):
            self._fail(sp.ERR_VALUE, f"MAXSEGMENTS={n!r} must be a power of two in {self.spec.min_segments}..{self.spec.max_segments}", reg)
        self._require_not_running("changing MAXSEGMENTS", reg)
        self.max_segments = n
        self.slots = [_Slot() for _ in range(n)]
        self.write_segment = 0

    @property
    def slot_capacity(self) -> int:
        """Samples per channel one slot can hold."""
        if not self.max_segments:
            return 0
        return self.spec.max_segment_length(self.n_active, self.max_segments)

    def select_segment(self, index: int) -> None:
        reg = sp.SPC_SEQMODE_WRITESEGMENT
        if not self.max_segments:
            self._fail(sp.ERR_SEQUENCE, "set MAXSEGMENTS before selecting a segment", reg)
        if not isinstance(index, int) or not 0 <= index < self.max_segments:
            self._fail(sp.ERR_VALUE, f"segment {index!r} outside 0..{self.max_segments - 1}", reg)
        self.write_segment = index

    def set_segment_size(self, n_samples: int) -> None:
        """Valid samples per channel of the selected slot (``SPC_SEQMODE_SEGMENTSIZE``)."""
        reg = sp.SPC_SEQMODE_SEGMENTSIZE
        if not self.max_segments:
            self._fail(sp.ERR_SEQUENCE, "set MAXSEGMENTS before a segment size", reg)
        g = self.spec.segment_granularity
        least = self.spec.min_segment_length(self.n_active)
        if not isinstance(n_samples, int) or n_samples < least or n_samples % g or n_samples > self.slot_capacity:
            self._fail(
                sp.ERR_VALUE,
                f"segment {self.write_segment}: size {n_samples!r} must be a multiple of {g} in {least}..{self.slot_capacity} "
                f"for {self.n_active} channels and {self.max_segments} slots",
                reg,
            )
        slot = self.slots[self.write_segment]
        if self.state in (ARMED, RUNNING) and n_samples != slot.size and self._slot_in_use(self.write_segment):
            self._fail(sp.ERR_RUNNING, f"segment {self.write_segment} is in use: its size cannot change while the card runs", reg)
        if n_samples != slot.size:
            slot.data = np.zeros((n_samples, self.n_active), dtype=np.int16)
        slot.size = n_samples

    def write_segment_data(self, data: np.ndarray, offset: int = 0) -> None:
        """Write int16 samples (interleaved 1-D, or (n, channels)) into the selected slot from
        sample ``offset`` on, as a DMA transfer does."""
        slot = self.slots[self.write_segment] if self.max_segments else None
        if slot is None or not slot.size:
            self._fail(sp.ERR_SEQUENCE, f"segment {self.write_segment} has no size: set SEGMENTSIZE before writing data", "DMA")
        arr = np.asarray(data)
        if arr.dtype != np.int16:
            self._fail(sp.ERR_VALUE, f"data must be int16, got {arr.dtype}", "DMA")
        if arr.ndim == 1:
            if arr.size % self.n_active:
                self._fail(sp.ERR_VALUE, f"{arr.size} interleaved values do not fill whole samples of {self.n_active} channels", "DMA")
            arr = arr.reshape(-1, self.n_active)
        if arr.ndim != 2 or arr.shape[1] != self.n_active:
            self._fail(sp.ERR_VALUE, f"data shape {np.asarray(data).shape} does not match {self.n_active} enabled channels", "DMA")
        if offset < 0 or offset + arr.shape[0] > slot.size:
            self._fail(
                sp.ERR_VALUE,
                f"segment {self.write_segment}: {arr.shape[0]} samples at offset {offset} are longer than its size {slot.size}",
                "DMA",
            )
        if self.state == RUNNING and self._run is not None and self._run.slot == self.write_segment and self.now >= self._run.origin:
            self.live_slot_writes += 1
        slot.data[offset : offset + arr.shape[0]] = arr
        self._marks.clear()

    def segment_data(self, index: int) -> np.ndarray:
        """A read-only view of slot ``index`` (its valid samples)."""
        slot = self.slots[index]
        view = (slot.data if slot.data is not None else np.zeros((0, self.n_active), np.int16))[: slot.size]
        view = view.view()
        view.flags.writeable = False
        return view

    def write_step(self, index: int, word: int) -> None:
        """Write the 64-bit entry of step ``index`` (unsigned or the signed int64 view)."""
        reg = sp.SPC_SEQMODE_STEPMEM0 + index if isinstance(index, int) else "STEPMEM"
        if not isinstance(index, int) or not 0 <= index < self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"step {index!r} outside 0..{self.spec.max_steps - 1}", reg)
        try:
            entry = decode_step_entry(word)
        except Exception as exc:  # noqa: BLE001 - any decoding problem is a register value error
            self._fail(sp.ERR_VALUE, f"step {index}: {exc}", reg)
        if not 1 <= entry.loops <= self.spec.max_loops:
            self._fail(sp.ERR_VALUE, f"step {index}: loops={entry.loops} outside 1..{self.spec.max_loops}", reg)
        if self.max_segments and entry.segment >= self.max_segments:
            self._fail(sp.ERR_VALUE, f"step {index}: segment {entry.segment} outside 0..{self.max_segments - 1}", reg)
        if entry.next_step >= self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"step {index}: next step {entry.next_step} outside 0..{self.spec.max_steps - 1}", reg)
        self.steps[index] = entry
        self._marks.clear()

    def set_start_step(self, index: int) -> None:
        reg = sp.SPC_SEQMODE_STARTSTEP
        if not isinstance(index, int) or not 0 <= index < self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"start step {index!r} outside 0..{self.spec.max_steps - 1}", reg)
        self._require_not_running("changing the start step", reg)
        self.start_step = index

    def _slot_in_use(self, slot: int) -> bool:
        return any(e.segment == slot for e in self.steps.values())

    # ================================================================== commands

    def sequence_problems(self) -> list[str]:
        """What :meth:`start` would refuse: the walk from the start step must only meet written
        steps that point at slots holding data."""
        if not self.max_segments:
            return ["MAXSEGMENTS is not set"]
        out, seen, i = [], set(), self.start_step
        while i not in seen:
            seen.add(i)
            entry = self.steps.get(i)
            if entry is None:
                out.append(f"step {i} is reached but was never written")
                break
            if entry.segment >= self.max_segments:
                out.append(f"step {i} points at segment {entry.segment} beyond MAXSEGMENTS={self.max_segments}")
            elif not self.slots[entry.segment].size:
                out.append(f"step {i} points at empty segment {entry.segment}")
            if entry.end:
                break
            i = entry.next_step
        return out

    def start(self) -> None:
        """CARD_START: check the sequence, arm, and wait for the first trigger."""
        self._require_not_running("CARD_START", sp.SPC_M2CMD)
        problems = self.sequence_problems()
        if problems:
            self._fail(sp.ERR_SEQUENCE, "cannot start: " + "; ".join(problems), sp.SPC_M2CMD)
        self.state = ARMED
        self.triggered = False
        self._triggers = [t for t in self._triggers if t >= self.now]
        self._run = None
        self._prefetched = None
        self._ready_at = INF
        self._marks.clear()

    def enable_trigger(self) -> None:
        """CARD_ENABLETRIGGER: let external triggers in."""
        self.trigger_enabled = True

    def force_trigger(self) -> None:
        """CARD_FORCETRIGGER: a software trigger now (works whether or not triggers are enabled)."""
        if self.state not in (ARMED, RUNNING):
            self._fail(sp.ERR_SEQUENCE, "FORCETRIGGER needs a started card", sp.SPC_M2CMD)
        self._add_trigger(self.now)

    def external_trigger(self, sample: int) -> None:
        """An external trigger edge at ``sample`` (now or later); ignored unless enabled."""
        if sample < self.now:
            raise ValueError(f"trigger at sample {sample} is in the past (now {self.now})")
        if self.trigger_enabled:
            self._add_trigger(int(sample))

    def _add_trigger(self, sample: int) -> None:
        self._triggers.append(sample)
        self._triggers.sort()
        self._marks.clear()

    def stop(self) -> None:
        """CARD_STOP: end replay now; outputs go to their stop levels, the card reports READY."""
        if self.state in (ARMED, RUNNING):
            self._advance_to(self.now, None)
            if self.state == RUNNING and self._run is not None and self.now > self._run.origin:
                self._hold = self._sample_at(self._run, self.now - 1)
        self.state = READY if self.state != IDLE else IDLE
        self._ready_at = min(self._ready_at, self.now)
        self._run = None
        self.trigger_enabled = False
        self._triggers = []

    # ================================================================== status

    def status(self) -> int:
        """M2STATUS bits at the current sample."""
        bits = 0
        if self.state in (ARMED, RUNNING, READY):
            bits |= sp.M2STAT_CARD_PRETRIGGER
        if self.triggered:
            bits |= sp.M2STAT_CARD_TRIGGER
        if self.state == READY:
            bits |= sp.M2STAT_CARD_READY
        return bits

    def current_step(self) -> int:
        """SPC_SEQMODE_STATUS: the step playing now (the start step until replay begins)."""
        if self._run is not None:
            return self._run.step
        return self._last_step if self.state == READY else self.start_step

    # ================================================================== time

    def advance(self, n_samples: int) -> None:
        """Move the clock on by ``n_samples`` without producing samples."""
        if n_samples < 0:
            raise ValueError("time only moves forward")
        self._advance_to(self.now + n_samples, None)
        self.now += n_samples

    def render(self, n_samples: int) -> np.ndarray:
        """Move the clock on by ``n_samples`` and return what the DACs received meanwhile:
        int16 of shape (n_samples, n_channels of the card), disabled channels at their stop level."""
        if n_samples < 0:
            raise ValueError("time only moves forward")
        w0, w1 = self.now, self.now + n_samples
        runs: list[tuple[int, float, _Run]] = []
        out = np.empty((n_samples, self.spec.n_channels), dtype=np.int16)
        out[:] = self._stop_values(self._hold)  # idle before the first output and after READY
        self._advance_to(w1, runs)
        for a, b, run in runs:
            a, b = max(a, w0), int(min(b, w1))
            if a >= b:
                continue
            self._copy_run(out[a - w0 : b - w0, : self.n_active], run, a, b)
            self._hold = self._sample_at(run, b - 1)
        if w0 <= self._ready_at < w1:
            out[int(self._ready_at) - w0 :] = self._stop_values(self._hold)
        self.now = w1
        return out

    def events_between(self, a: int, b: int) -> list[StepEvent]:
        """Step entries with a <= sample < b, in order."""
        out: list[StepEvent] = []
        for item in self._log:
            if isinstance(item, StepEvent):
                if a <= item.sample < b:
                    out.append(item)
                continue
            if item.end <= a or item.start >= b:
                continue
            first = max(0, (a - item.start) // item.period - 1)
            last = min(item.count, (b - item.start) // item.period + 1)
            for k in range(first, last):
                base = item.start + k * item.period
                for ev in item.pattern:
                    s = base + ev.sample
                    if a <= s < b:
                        out.append(StepEvent(s, ev.step, ev.segment))
        return out

    @property
    def events(self) -> list[StepEvent]:
        """Every step entry so far (cycles skipped in bulk are expanded)."""
        return self.events_between(0, self.now + 1)

    # ================================================================== sequencer

    def _stop_values(self, hold: np.ndarray) -> np.ndarray:
        values = np.zeros(self.spec.n_channels, dtype=np.int16)
        for ch, level in enumerate(self.stop_levels):
            if level == StopLevel.HOLDLAST:
                values[ch] = hold[ch]
            elif level == StopLevel.HIGH:
                values[ch] = 32767
            elif level == StopLevel.LOW:
                values[ch] = -32768
            elif level == StopLevel.CUSTOM:
                values[ch] = self.custom_stop[ch]
        return values

    def _sample_at(self, run: _Run, t: int) -> np.ndarray:
        values = self._hold.copy()
        data = self.slots[run.slot].data
        values[: self.n_active] = data[(t - run.origin) % run.n]
        return values

    def _copy_run(self, dest: np.ndarray, run: _Run, a: int, b: int) -> None:
        """Fill ``dest`` with samples a..b-1 of ``run``: slice copies, whole passes by doubling."""
        data = self.slots[run.slot].data[: run.n]
        n = run.n
        pos = 0
        k = (a - run.origin) % n
        first = min(n - k, b - a)
        dest[:first] = data[k : k + first]
        pos = first
        total = b - a
        if pos < total:
            start = pos
            m = min(n, total - pos)
            dest[pos : pos + m] = data[:m]
            pos += m
            while pos < total:  # copy what is already there: doubles each time
                m = min(pos - start, total - pos)
                dest[pos : pos + m] = dest[start : start + m]
                pos += m

    def _fetch(self, index: int) -> StepEntry:
        entry = self.steps.get(index)
        if entry is None:  # start() checked the walk; a rewrite cannot unwrite a step
            raise CardError(f"{self.spec.name} (simulated): step {index} fetched but never written", code=sp.ERR_SEQUENCE)
        return entry

    def _enter(self, index: int, t: int) -> None:
        if self._prefetched is not None and self._prefetched[0] == index:
            entry = self._prefetched[1]
        else:
            entry = self._fetch(index)
        slot = self.slots[entry.segment]
        self._run = _Run(index, entry, entry.segment, slot.size, t)
        if not self.policy.latch_earlier_triggers:  # triggers before this step can never count
            self._triggers = [x for x in self._triggers if x >= t]
        self._last_step = index
        self._prefetched = None if (entry.end or not self.policy.prefetch) else (entry.next_step, self._fetch(entry.next_step))
        self._log.append(StepEvent(t, index, entry.segment))

    def _step_end(self, run: _Run) -> float:
        """Sample at which the current step ends (inf while it waits for a trigger)."""
        e = run.entry
        if not e.end_loop_on_trigger:
            return run.origin + e.loops * run.n
        k_min = e.loops if self.policy.endloop_check == "after_all_loops" else 1
        floor = self._trigger_floor if self.policy.latch_earlier_triggers else run.origin
        eligible = [t for t in self._triggers if t >= floor]
        if not eligible:
            return INF
        t = eligible[0]
        k = max(k_min, (t + self.policy.endloop_setup_samples - run.origin) // run.n + 1)
        return run.origin + k * run.n

    def _consume_trigger(self, end: int) -> None:
        """The ENDLOOPONTRIG step ending at ``end`` used up its trigger and all earlier ones."""
        used = [t for t in self._triggers if t < end - self.policy.endloop_setup_samples]
        if used:
            self._trigger_floor = used[-1] + 1
            self._triggers = [t for t in self._triggers if t > used[-1]]

    def _advance_to(self, target: int, runs: list | None) -> None:
        """Play the sequence up to sample ``target`` (exclusive): arm -> first trigger ->
        steps. With ``runs``, collect (start, end, run) for every step overlapping the window."""
        if self.state == ARMED:
            pending = [t for t in self._triggers if t < target]
            if not pending:
                return
            t0 = pending[0]
            self._triggers = [t for t in self._triggers if t > t0]
            self._trigger_floor = t0 + 1
            self.trigger_log.append(t0)
            self.triggered = True
            self.state = RUNNING
            self._enter(self.start_step, t0 + trigger_latency_samples(self.sample_rate_hz))
        while self.state == RUNNING and self._run is not None:
            run = self._run
            end = self._step_end(run)
            if runs is not None:
                runs.append((run.origin, min(end, target), run))
            if end > target:
                return
            if run.entry.end_loop_on_trigger:
                self._consume_trigger(int(end))
            if run.entry.end:
                self._hold = self._sample_at(run, int(end) - 1)
                self.state = READY
                self._ready_at = int(end)
                self._run = None
                return
            if runs is None and self._skip_cycles(run.entry.next_step, int(end), target):
                continue
            self._enter(run.entry.next_step, int(end))

    def _skip_cycles(self, index: int, t: int, target: int) -> bool:
        """Before entering step ``index`` at ``t``: if the walk since the last visit of ``index``
        was trigger-free and has come round, jump whole cycles towards ``target``."""
        entry = self.steps.get(index)
        if entry is None or entry.end or entry.end_loop_on_trigger:
            self._marks.clear()
            return False
        mark = self._marks.get(index)
        if mark is None:
            self._marks[index] = (t, len(self._log))
            return False
        t_prev, i_prev = mark
        period = t - t_prev
        count = (target - t) // period
        if count < 1:
            return False
        pattern = tuple(StepEvent(ev.sample - t_prev, ev.step, ev.segment) for ev in self._log[i_prev:] if isinstance(ev, StepEvent))
        if len(pattern) != len(self._log) - i_prev:  # a bulk block inside: keep it simple, walk on
            self._marks.clear()
            return False
        self._log.append(_Cycles(t, period, count, pattern))
        self._marks.clear()
        # the state at t + count * period is the state at t: enter the step there
        self._prefetched = None
        self._enter(index, t + count * period)
        self._marks[index] = (t + count * period, len(self._log) - 1)
        return True
