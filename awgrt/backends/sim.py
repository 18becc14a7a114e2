"""SimBackend: the backend protocol on a :class:`~awgrt.sim.SimulatedCard` with a virtual clock.

Nothing here waits for real time. The clock moves only when asked: :meth:`SimBackend.advance`
(by samples or seconds), :meth:`SimBackend.capture` (moves on and returns what was played), or
:meth:`SimBackend.wait_ready`. External triggers are scheduled at samples of that clock. Step
listeners are called, in order and with exact sample times, as the clock passes each step entry.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from .._units import in_unit
from ..card import CARDS, DEFAULT_CARD, CardSpec, encode_step_entry
from ..errors import CardError, ProgramError
from ..program import CompiledSequenceProgram, StepEvent
from ..sim._loading import configure_outputs, load_program, write_slots, write_steps
from ..sim.card import TMASK_EXT0, TMASK_SOFTWARE, CardState, SimPolicy, SimulatedCard
from ..spectrum import ERR_TIMEOUT, trigger_source_of
from .base import BackendBase, CardReadback, OutputConfig, check_seconds


def _check_count(value: object, what: str, op: str) -> None:
    """None, or a whole number of samples (an int, or a float that is one)."""
    if value is None:
        return
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok or (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)) and float(value).is_integer())
    if not ok:
        raise ProgramError(f"{what}={value!r} must be a whole number of samples", op=op, value=value)


class SimBackend(BackendBase):
    """A simulated card behind the backend protocol (see module doc)."""

    def __init__(self, card: CardSpec | str = DEFAULT_CARD, *, policy: SimPolicy | None = None) -> None:
        spec = CARDS[card] if isinstance(card, str) else card
        super().__init__(spec)
        self.sim = SimulatedCard(spec, policy or SimPolicy())
        self.start_sample: int | None = None
        self._notified = 0

    # ------------------------------------------------------------------ virtual clock

    @property
    def now(self) -> int:
        """Current sample of the card clock (samples since the backend was made)."""
        return self.sim.now

    def samples_since_start(self) -> int:
        return self.sim.now - (self.start_sample or 0)

    def advance(self, *, samples: int | None = None, seconds: float | None = None) -> None:
        """Move the clock on (give exactly one of ``samples`` or ``seconds``)."""
        self.sim.advance(self._samples(samples, seconds))
        self._emit()

    def capture(self, n_samples: int, out: np.ndarray | None = None, lines: np.ndarray | None = None) -> np.ndarray:
        """Move the clock on by ``n_samples`` and return what the enabled channels played:
        int16 of shape (n_samples, enabled channels). ``out``: an optional buffer of shape
        (n_samples, card channels) to render into (saves allocating one per call); ``lines``:
        an optional uint8 buffer (n_samples, X lines) that receives the multi-purpose lines'
        levels (markers: 0 or 1)."""
        out = self.sim.render(n_samples, out, lines)[:, : self.sim.n_channels]
        self._emit()
        return out

    def schedule_trigger(self, sample: int | None = None, *, after: int | None = None, after_s: float | None = None) -> int:
        """An external trigger, given one way: ``sample`` counted from the start command,
        ``after`` samples from now, or ``after_s`` seconds from now (each scan point of a loop
        can trigger "50 us from now" without knowing how long the card has run). Returns the
        trigger's sample counted from the start command. A trigger before now is an error."""
        after_s = in_unit(after_s, "s", "after_s", op="schedule_trigger")
        given = [x is not None for x in (sample, after, after_s)]
        if sum(given) != 1:
            raise ProgramError(
                f"give exactly one of sample= (from the start command), after= (samples from now) or after_s= (seconds from now); "
                f"got sample={sample!r}, after={after!r}, after_s={after_s!r}",
                op="schedule_trigger",
            )
        _check_count(sample, "sample", "schedule_trigger")
        _check_count(after, "after", "schedule_trigger")
        check_seconds(after_s, "after_s", "schedule_trigger")
        base = self.start_sample if self.start_sample is not None else 0
        if sample is not None:
            at = base + int(sample)
            if at < self.sim.now:
                raise ProgramError(
                    f"trigger at sample {int(sample)} after the start command is in the past (the card has run {self.sim.now - base} samples since): "
                    "use after= or after_s= for a trigger counted from now",
                    op="schedule_trigger",
                    value=sample,
                )
        else:
            offset = int(after) if after is not None else round(float(after_s) * self.sim.sample_rate_hz)
            if offset < 0:
                raise ProgramError(f"a trigger {offset} samples from now is in the past", op="schedule_trigger", value=after if after is not None else after_s)
            at = self.sim.now + offset
        self.sim.external_trigger(at)
        return at - base

    def _samples(self, samples: int | None, seconds: float | None) -> int:
        if (samples is None) == (seconds is None):
            raise ProgramError(f"give exactly one of samples= or seconds= (got samples={samples!r}, seconds={seconds!r})", op="advance")
        _check_count(samples, "samples", "advance")
        check_seconds(seconds, "seconds", "advance")
        if samples is None:
            assert seconds is not None
            samples = round(seconds * self.sim.sample_rate_hz)
        return int(samples)

    @property
    def events(self) -> list[StepEvent]:
        """Every step entry since the start command, with samples counted from it."""
        base = self.start_sample or 0
        return [StepEvent(e.sample - base, e.step, e.segment) for e in self.sim.events_between(base, self.sim.now)]

    def _emit(self) -> None:
        since, self._notified = self._notified, self.sim.now  # delivered once, even if a listener raises
        if self._listeners and self.start_sample is not None:
            base = self.start_sample
            new = self.sim.events_between(max(since, base), self.sim.now)
            self._notify([StepEvent(e.sample - base, e.step, e.segment) for e in new])

    # ------------------------------------------------------------------ card operations

    def _configure(self, config: OutputConfig) -> None:
        configure_outputs(
            self.sim,
            sample_rate_hz=config.sample_rate_hz,
            n_channels=config.n_channels,
            amplitude_mv=config.amplitude_mv,
            stop_level=config.stop_level,
            clock=config.clock,
        )
        self.sim.set_trigger_masks(TMASK_EXT0 if config.trigger == "external" else TMASK_SOFTWARE, 0)
        self.sim.ext0_level_mv = config.trigger_level_mv

    def _load(self, program: CompiledSequenceProgram) -> None:
        load_program(self.sim, program)
        for line, mode in self._line_modes(program, self.sim.x_modes).items():
            self.sim.set_x_mode(line, mode)

    def _update_segments(self, program: CompiledSequenceProgram, indices: list[int]) -> None:
        write_slots(self.sim, program, indices)

    def _write_steps(self, program: CompiledSequenceProgram) -> None:
        write_steps(self.sim, program)
        if self.sim.start_step != program.start_step:  # the card's register, not a memory of it
            self.sim.set_start_step(program.start_step)

    def _write_step_entries(self, program: CompiledSequenceProgram, indices: list[int]) -> None:
        write_steps(self.sim, program, indices)

    def _start(self, force_trigger: bool) -> None:
        self.sim.start()
        self.start_sample = self.sim.now
        self._notified = self.sim.now
        self.sim.enable_trigger()  # a software trigger in the OR mask fires at once
        if force_trigger:
            self.sim.force_trigger()

    def _stop(self) -> None:
        self.sim.stop()

    def force_trigger(self) -> None:
        self.sim.force_trigger()

    def current_step(self) -> int:
        return self.sim.current_step()

    def is_running(self) -> bool:
        return self.sim.state in (CardState.ARMED, CardState.RUNNING)

    def wait_ready(self, timeout_s: float) -> None:
        """Advance the virtual clock until the card is READY; raise after ``timeout_s`` of card time."""
        check_seconds(timeout_s, "timeout_s", "wait_ready")
        limit = self.sim.now + round(timeout_s * self.sim.sample_rate_hz)
        chunk = max(1, round(1e-3 * self.sim.sample_rate_hz))
        while self.sim.state != "ready":
            if self.sim.now >= limit:
                raise CardError(f"card not READY after {timeout_s:g} s", code=ERR_TIMEOUT, op="wait_ready")
            self.sim.advance(min(chunk, limit - self.sim.now))
            self._emit()

    def read_back(self, n_steps: int, n_slots: int) -> CardReadback:
        """The simulated card's registers and memory (see the protocol)."""
        c = self.sim
        n = c.n_channels
        slots = range(min(n_slots, c.max_segments))
        return CardReadback(
            sample_rate_hz=float(c.sample_rate_hz),
            n_channels=n,
            amplitude_mv=tuple(c.amplitude_mv[:n]),
            stop_level=tuple(c.stop_levels[:n]),
            trigger=trigger_source_of(c.trigger_or_mask),
            trigger_level_mv=c.ext0_level_mv,
            max_segments=c.max_segments,
            segment_sizes=tuple(c.slots[i].size for i in slots),
            start_step=c.start_step,
            step_words=tuple(self._step_word(c.steps.get(i)) for i in range(n_steps)),
            segment_data=tuple(np.array(c.segment_data(i)) for i in slots),
            clock=c.clock,
            x_modes=tuple(c.x_modes),
        )

    @staticmethod
    def _step_word(entry) -> int:
        """The 64-bit word of a step-memory entry (0 where none was written, as the card reads)."""
        return 0 if entry is None else encode_step_entry(entry.segment, entry.next, entry.loops, on_trigger=entry.on_trigger, end=entry.end)

    def segment_slots(self) -> Sequence[np.ndarray]:
        """What each memory slot holds now (read-only views)."""
        return [self.sim.segment_data(i) for i in range(self.sim.max_segments)]
