"""simulate(): play a compiled program on a fresh simulated card and return what came out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..card import CardSpec
from ..program import CompiledSequenceProgram
from .card import SimPolicy


@dataclass(frozen=True)
class Playback:
    """What a simulated card played. ``samples``: int16 of shape (n_samples, n_channels), exactly
    what the DACs received, the stop level where nothing played; sample 0 is the start command.
    ``events``: every step entry (``.sample``, ``.step``, ``.segment``) on that clock.
    ``triggers``: the sample of the trigger that started replay (empty if none came).
    ``ready_sample``: when the card became READY after an END step (None if it did not)."""

    samples: np.ndarray
    events: tuple
    sample_rate_hz: float
    triggers: tuple[int, ...] = ()
    ready_sample: int | None = None

    def step_names(self, program: CompiledSequenceProgram) -> list[str]:
        """The program's segment names in the order the steps were entered."""
        return [program.steps[e.step].name for e in self.events]


def simulate(
    program: CompiledSequenceProgram,
    card: CardSpec | str | None = None,
    triggers: Sequence[int] = (),
    n_samples: int = 0,
    *,
    policy: SimPolicy | None = None,
    stop_level: str = "zero",
    force_trigger: bool = False,
) -> Playback:
    """Load ``program`` on a simulated ``card`` (default: the program's), start it at sample 0,
    apply external ``triggers`` (sample indices from the start command; the first starts replay)
    and record ``n_samples`` of output."""
    from ..backends.sim import SimBackend

    if not isinstance(n_samples, int) or n_samples < 0:
        raise ValueError(f"n_samples={n_samples!r} must be a whole number of samples >= 0")
    with SimBackend(card or program.card, policy=policy) as backend:
        backend.configure(sample_rate_hz=program.sample_rate_hz, channels=program.n_channels, stop_level=stop_level, trigger="external")
        backend.load(program)
        backend.start(force_trigger=force_trigger)
        for t in sorted(triggers):
            backend.schedule_trigger(t)
        samples = backend.capture(n_samples)
        samples.flags.writeable = False
        base = backend.start_sample
        ready = backend.sim.ready_at
        return Playback(
            samples=samples,
            events=tuple(backend.events),
            sample_rate_hz=program.sample_rate_hz,
            triggers=tuple(t - base for t in backend.sim.trigger_log),
            ready_sample=None if ready is None else ready - base,
        )
