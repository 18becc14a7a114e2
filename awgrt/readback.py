"""What the card holds, read back from it, and how it differs from what was asked.

After an upload the runtime can ask its backend for a
:class:`~awgrt.backends.base.CardReadback`: every output setting
(sample rate, enabled channels, amplitude and stop level per channel, trigger source and level),
the memory layout (slot count and each used slot's size), the start step, every step-table entry
as the raw 64-bit word the card stores, and, where the backend can read it, each used slot's
samples. :func:`compare` checks **every** field against the program and the output set-up
(an :class:`~awgrt.backends.base.OutputConfig`) that were asked for and returns one :class:`Mismatch` per field that differs (an empty tuple: the card holds
exactly what was asked). ``Runtime.verify()`` runs both on any backend, the real card included.

The step words are decoded here bit by bit (segment bits 0-15, next 16-31, loops 32-51, loop
until trigger bit 62, end bit 63), apart from the encoder that wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends.base import CardReadback, OutputConfig
from .program import CompiledSequenceProgram
from .spectrum import StopLevel


@dataclass(frozen=True)
class Mismatch:
    """One field of the card that differs from what was asked."""

    field: str
    asked: object
    card: object

    def __str__(self) -> str:
        return f"{self.field}: asked {self.asked!r}, the card holds {self.card!r}"


def decode_step_word(word: int) -> tuple[int, int, int, bool, bool]:
    """(segment, next, loops, loop until trigger, end) of a 64-bit step entry (signed or not)."""
    w = int(word) & (2**64 - 1)
    return w & 0xFFFF, (w >> 16) & 0xFFFF, (w >> 32) & 0xFFFFF, bool(w >> 62 & 1), bool(w >> 63 & 1)


def compare(card: CardReadback, program: CompiledSequenceProgram, asked: OutputConfig) -> tuple[Mismatch, ...]:
    """Every field of ``card`` that differs from ``program`` and ``asked`` (see module doc)."""
    out: list[Mismatch] = []

    def check(name: str, want: object, have: object) -> None:
        if want != have:
            out.append(Mismatch(name, want, have))

    check("sample rate (S/s)", float(asked.sample_rate_hz), float(card.sample_rate_hz))
    check("enabled channels", asked.n_channels, card.n_channels)
    for ch in range(asked.n_channels):
        check(f"channel {ch} amplitude (mV)", asked.amplitude_mv[ch], card.amplitude_mv[ch] if ch < len(card.amplitude_mv) else None)
        check(f"channel {ch} stop level", StopLevel(asked.stop_level[ch]).name, StopLevel(card.stop_level[ch]).name if ch < len(card.stop_level) else None)
    check("trigger source", asked.trigger, card.trigger)
    if asked.trigger == "external":
        check("trigger level (mV)", asked.trigger_level_mv, card.trigger_level_mv)
    if card.clock is not None:
        check("clock source", asked.clock.source, card.clock.source)
        if asked.clock.source == "external_reference":
            check("reference clock (Hz)", asked.clock.reference_hz, card.clock.reference_hz)
        check("clock output", asked.clock.output, card.clock.output)
    if card.x_modes is not None:
        for line, mode in program.x_modes().items():
            check(f"X{line} mode (marker line)", hex(mode), hex(card.x_modes[line]) if line < len(card.x_modes) else None)
    check("memory slots (MAXSEGMENTS)", program.max_segments, card.max_segments)
    for i, seg in enumerate(program.segments):
        size = card.segment_sizes[i] if i < len(card.segment_sizes) else None
        check(f"slot {i} ({seg.name!r}) size", seg.n_samples, size)
    check("start step", program.start_step, card.start_step)
    for i, step in enumerate(program.steps):
        want = (step.segment, step.next, step.loops, step.on_trigger, step.end)
        have = decode_step_word(card.step_words[i]) if i < len(card.step_words) else None
        check(f"step {i} ({step.name!r}) segment, next, loops, on_trigger, end", want, have)
    if card.segment_data is not None:
        for i, seg in enumerate(program.segments):
            data = card.segment_data[i] if i < len(card.segment_data) else None
            if data is None or data.shape != seg.data.shape:
                check(f"slot {i} ({seg.name!r}) samples shape", seg.data.shape, None if data is None else data.shape)
            elif not np.array_equal(data, seg.data):
                differ = np.flatnonzero(np.any(data != seg.data, axis=1))
                out.append(Mismatch(f"slot {i} ({seg.name!r}) samples", f"{len(differ)} samples differ", f"first at sample {int(differ[0])}"))
    return tuple(out)
