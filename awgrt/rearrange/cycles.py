"""The card protocol of real-time rearrangement: moves written and armed while the card plays.

The card's step table (8 steps, two cycles A and B so that a slot is never written while the
sequencer can reach it)::

    step 0  load   (wait for trigger) -> 1        step 4  load   (wait for trigger) -> 5
    step 1  gate   (one load pass)    -> 2        step 5  gate   (one load pass)    -> 6
    step 2  move A: armed M_A -> 3,               step 6  move B: armed M_B -> 7,
                    disarmed one load pass -> 0                   disarmed one load pass -> 4
    step 3  target T_A (wait for trigger) -> 4    step 7  target T_B (wait for trigger) -> 0

Slots: 0 load, 1 T_A, 2 T_B, 3 M_A, 4 M_B (M_A and M_B reserved: no step plays them until a
shot arms one). The M4i/M4x manual's rules this relies on: step entries may be rewritten while
the card runs, and an entry the sequencer has already read plays as it was read; data memory is
not protected, so a slot is written only while no step can reach it. A shot arms the cycle whose
load step the card is in (or goes to next): first its move step is disarmed (if an earlier shot
armed it), then the move slot (and that cycle's target slot, when it must change) is written,
then the move step is armed and the other cycle's disarmed. Whether the card reads the next
step's entry when it enters a step (prefetch) is not documented; the gate step makes it
irrelevant: the move step's entry is read no earlier than the gate's start, which comes after
the trigger. So a trigger that comes before the shot is armed plays one more load pass and
returns to the load step (no move, no stale slot), and the moves play after the trigger that
follows arming: after the load pass in progress, then one gate pass.

Each cycle's target hold waits for a trigger, after which the card goes to the other cycle's load
hold: the tones jump from the target pattern back to the loading pattern (the atoms are imaged
or released by then). A shot while the card is in a gate or move step (between the trigger and
the target hold) is refused with a :class:`~awgrt.errors.CardError`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace

import numpy as np

from ..errors import CardError, ProgramError
from ..ir.digest import digest_of
from ..program import CompiledSegment, CompiledSequenceProgram, SequenceStep
from ..runtime import Runtime

#: Slots: the load hold, the two cycles' target holds and the two cycles' move slots.
LOAD, TARGET_A, TARGET_B, MOVE_A, MOVE_B = range(5)
#: Steps of cycle A (B adds 4): load (waits), gate, move, target (waits).
LOAD_STEP, GATE_STEP, MOVE_STEP, TARGET_STEP = range(4)
#: The cycle (0: A, 1: B) whose load hold the card is in or goes to next, by current step.
_NEXT_CYCLE = {0: 0, 7: 0, 3: 1, 4: 1}


@functools.cache
def cycle_table(armed: tuple[bool, bool]) -> tuple[SequenceStep, ...]:
    """The step table with each cycle's move step armed or not (see module doc); the same
    objects each time, so comparing two tables is cheap."""
    steps: list[SequenceStep] = []
    for cycle, (target_slot, move_slot) in enumerate(((TARGET_A, MOVE_A), (TARGET_B, MOVE_B))):
        base = 4 * cycle
        name = "AB"[cycle]
        move = SequenceStep(move_slot, base + 3, 1, name=f"move {name}") if armed[cycle] else SequenceStep(LOAD, base, 1, name=f"move {name}")
        steps += [
            SequenceStep(LOAD, base + 1, 1, on_trigger=True, name=f"load {name}"),
            SequenceStep(LOAD, base + 2, 1, name=f"gate {name}"),
            move,
            SequenceStep(target_slot, (base + 4) % 8, 1, on_trigger=True, name=f"target {name}"),
        ]
    return tuple(steps)


class CycledCard:
    """A rearranger's hold on the card: the upload of the cycled program and each shot's
    writes (see module doc). ``runtime`` is set by :meth:`_upload`; ``move_samples`` is the
    move slots' length."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self._n_samples = 0
        self._load_digest = ""

    @property
    def move_samples(self) -> int:
        """Samples of the move segment (per channel)."""
        return self._n_samples

    @staticmethod
    def cycle_steps(cycle: str) -> dict[str, int]:
        """The steps of cycle ``"A"`` or ``"B"``: load, gate, move, target."""
        base = 4 * "AB".index(cycle)
        return {"load": base + LOAD_STEP, "gate": base + GATE_STEP, "move": base + MOVE_STEP, "target": base + TARGET_STEP}

    def _upload(
        self, runtime: Runtime, load: CompiledSegment, target: CompiledSegment, *, n_move: int, like: CompiledSequenceProgram, start: bool
    ) -> float:
        """Upload the cycled program (both move steps disarmed, the move slots silent) through
        ``runtime``, with the sample rate, channels and card of ``like``; returns the seconds."""
        self._n_samples = n_move
        empty = np.zeros((n_move, like.n_channels), np.int16)
        empty.flags.writeable = False
        silent = digest_of("rearranger move", like.digest, n_move, "silent")
        segments = (
            replace(load, name="load", names=("load",)),
            replace(target, name="target A", names=("target A",)),
            replace(target, name="target B", names=("target B",)),
            CompiledSegment("move A", empty, silent, ("move A",)),
            CompiledSegment("move B", empty, silent, ("move B",)),
        )
        program = CompiledSequenceProgram(
            sample_rate_hz=like.sample_rate_hz,
            n_channels=like.n_channels,
            segments=segments,
            steps=cycle_table((False, False)),
            start_step=0,
            hardware_channels=like.hardware_channels,
            card=runtime.backend.card,
            reserved_slots=(MOVE_A, MOVE_B),
        )
        t0 = time.perf_counter()
        runtime.run(program, start=start)
        self.runtime = runtime
        self._load_digest = program.segments[LOAD].digest
        return time.perf_counter() - t0

    def _next_cycle(self) -> int:
        """The cycle to arm: the one whose load hold the card is in or goes to next (A when it
        is not running: a start begins at step 0). Raises CardError between a trigger and the
        target hold."""
        rt = self.runtime
        if rt is None or rt.program is None:
            raise ProgramError("prepare(runtime) first (or again: an upload failed and the card was stopped)", op="shot")
        if rt.program.segments[LOAD].digest != self._load_digest or rt.program.reserved_slots != (MOVE_A, MOVE_B):
            raise ProgramError("the card no longer holds this rearranger's program (another was run since): prepare() again", op="shot")
        be = rt.backend
        if not be.is_running():
            return 0
        step = be.current_step()
        if step not in _NEXT_CYCLE:
            raise CardError(
                f"the card is in step {step} ({rt.program.steps[step].name!r}), between a trigger and the target hold: "
                "arm the next shot once it holds the target or load pattern",
                code=None,
                op="shot",
                value=step,
            )
        return _NEXT_CYCLE[step]

    def _write(self, cycle: int, move: np.ndarray, digest: str, clipped: int, target: CompiledSegment | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Write ``move`` (int16, read-only) into ``cycle``'s move slot and, when given, ``target``
        into its target slot, then arm it (see module doc). Returns the slots and step entries
        written, in order."""
        rt = self.runtime
        assert rt is not None and rt.program is not None  # _next_cycle checked
        program = rt.program
        move_slot, target_slot = (MOVE_A, TARGET_A) if cycle == 0 else (MOVE_B, TARGET_B)
        segments = list(program.segments)
        old = segments[move_slot]
        segments[move_slot] = CompiledSegment(old.name, move, digest, old.names, (clipped,) if clipped else ())
        slots = [move_slot]
        if target is not None:
            segments[target_slot] = replace(target, name=segments[target_slot].name, names=segments[target_slot].names)
            slots.append(target_slot)
        move_step, other_step = 4 * cycle + MOVE_STEP, 4 * (1 - cycle) + MOVE_STEP
        armed_now = (program.steps[MOVE_STEP].segment != LOAD, program.steps[4 + MOVE_STEP].segment != LOAD)
        written: list[int] = []
        if armed_now[cycle]:  # an earlier shot armed this cycle: disarm it before its slot is rewritten
            disarm = (False, armed_now[1]) if cycle == 0 else (armed_now[0], False)
            rt.rewrite(replace(program, steps=cycle_table(disarm)), steps=[move_step])
            written.append(move_step)
        armed = (True, False) if cycle == 0 else (False, True)
        final = replace(rt.program, segments=tuple(segments), steps=cycle_table(armed))  # type: ignore[arg-type]
        order = ([other_step] if armed_now[1 - cycle] else []) + [move_step]
        rt.rewrite(final, slots=slots, steps=order)
        return tuple(slots), tuple(written + order)
