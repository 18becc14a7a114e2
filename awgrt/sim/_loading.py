"""Setting up a :class:`~awgrt.sim.card.SimulatedCard` and writing a compiled program into it,
the way a driver would: outputs, every memory slot, the step table and the start step.

Shared by :func:`awgrt.sim.simulate` and :class:`~awgrt.backends.SimBackend`, so the simulator
needs no backend and the backend repeats none of this.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..card import INTERNAL_CLOCK, ClockConfig
from ..program import CompiledSequenceProgram
from ..spectrum import StopLevel
from .card import SimulatedCard


def configure_outputs(
    card: SimulatedCard,
    *,
    sample_rate_hz: float,
    n_channels: int,
    amplitude_mv: Sequence[int],
    stop_level: Sequence[StopLevel],
    clock: ClockConfig = INTERNAL_CLOCK,
) -> None:
    """Stop the card, then set its clock (source, reference, output; then the rate), enabled
    channels, amplitudes (mV) and stop levels."""
    card.stop()
    card.clock = clock
    card.set_sample_rate(sample_rate_hz)
    card.set_channels(n_channels)
    for ch in range(n_channels):
        card.set_amplitude(ch, amplitude_mv[ch])
        card.set_stop_level(ch, stop_level[ch])


def write_slots(card: SimulatedCard, program: CompiledSequenceProgram, indices: Sequence[int]) -> None:
    """Rewrite the data of memory slots ``indices`` (lengths as already set)."""
    for i in indices:
        card.select_segment(i)
        card.write_segment_data(program.segments[i].data)


def write_steps(card: SimulatedCard, program: CompiledSequenceProgram, indices: Sequence[int] | None = None) -> None:
    """Write every step-table entry of ``program``, or the entries ``indices`` in that order."""
    for i in range(len(program.steps)) if indices is None else indices:
        card.write_step(i, program.steps[i].entry)


def load_program(card: SimulatedCard, program: CompiledSequenceProgram) -> None:
    """Full upload: slot count, every slot's size and data, the step table and the start step."""
    card.set_max_segments(program.max_segments)
    for i, seg in enumerate(program.segments):
        card.select_segment(i)
        card.set_segment_size(seg.n_samples)
        card.write_segment_data(seg.data)
    write_steps(card, program)
    card.set_start_step(program.start_step)
    for line, mode in program.x_modes().items():  # marker lines: synchronous digital outputs of channel 0
        card.set_x_mode(line, mode)
