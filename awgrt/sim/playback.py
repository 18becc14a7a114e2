"""simulate(): play a compiled program on a fresh simulated card and return what came out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..card import CARDS, XIO_LINES, CardSpec
from ..errors import ProgramError
from ..program import CompiledSequenceProgram
from ..spectrum import stop_level_of
from ._loading import configure_outputs, load_program
from .card import SimPolicy, SimulatedCard, StepEvent


@dataclass(frozen=True)
class Playback:
    """What a simulated card played. ``samples``: int16 of shape (n_samples, n_channels), exactly
    what the DACs received, the stop level where nothing played; sample 0 is the start command.
    ``events``: every step entry (``.sample``, ``.step``, ``.segment``) on that clock.
    ``triggers``: the sample of the trigger that started replay (empty if none came).
    ``ready_sample``: when the card became READY after an END step (None if it did not).
    ``markers``: for a program with marker lines, their levels (uint8 0/1 of shape (n_samples,
    3) for X0..X2; lines the program does not mark stay 0), else None; ``samples`` are then what
    the DACs play (channel 0 at the resolution its marker bits leave)."""

    samples: np.ndarray
    events: tuple
    sample_rate_hz: float
    triggers: tuple[int, ...] = ()
    ready_sample: int | None = None
    markers: np.ndarray | None = None

    def step_names(self, program: CompiledSequenceProgram) -> list[str]:
        """The program's segment names in the order the steps were entered."""
        return [program.steps[e.step].name for e in self.events]

    def plot(self, program: CompiledSequenceProgram, *, path=None, fig=None, amplitude_mv: float | None = None):
        """What was played (:func:`awgrt.plot.plot_playback`), every step entry named after its
        step (its segment's name) and the channels after ``program``'s logical channels: a
        matplotlib Figure, saved as PNG to ``path`` if given."""
        from ..plot import plot_playback

        names = sorted(program.hardware_channels, key=lambda ch: program.hardware_channels[ch])
        return plot_playback(
            self.samples,
            self.sample_rate_hz,
            [(e.sample, f"{e.step}: {program.steps[e.step].name}") for e in self.events],
            path,
            channel_names=names if len(names) == self.samples.shape[1] else None,
            triggers=self.triggers,
            amplitude_mv=amplitude_mv,
            fig=fig,
        )


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
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
        raise ProgramError(f"n_samples={n_samples!r} must be a whole number of samples >= 0", op="simulate", value=n_samples)
    spec = CARDS[card] if isinstance(card, str) else (card or program.card)
    program.validate(spec)
    sim = SimulatedCard(spec, policy or SimPolicy())
    n = program.n_channels
    configure_outputs(sim, sample_rate_hz=program.sample_rate_hz, n_channels=n, amplitude_mv=(1000,) * n, stop_level=(stop_level_of(stop_level),) * n)
    load_program(sim, program)
    base = sim.now
    sim.start()
    sim.enable_trigger()
    if force_trigger:
        sim.force_trigger()
    for t in sorted(triggers):
        sim.external_trigger(base + int(t))
    lines = np.zeros((n_samples, XIO_LINES), np.uint8) if program.marker_lines else None
    samples = sim.render(n_samples, lines=lines)[:, :n]
    samples.flags.writeable = False
    if lines is not None:
        lines.flags.writeable = False
    ready = sim.ready_at
    return Playback(
        samples=samples,
        events=tuple(StepEvent(e.sample - base, e.step, e.segment) for e in sim.events_between(base, sim.now)),
        sample_rate_hz=program.sample_rate_hz,
        triggers=tuple(t - base for t in sim.trigger_log),
        ready_sample=None if ready is None else ready - base,
        markers=lines,
    )
