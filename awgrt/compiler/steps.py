"""Steps: one :class:`~awgrt.program.SequenceStep` per segment, in program order.

``once`` -> loops 1; ``loop_n`` -> loops N; ``wait_trig`` -> loops 1 with ENDLOOPONTRIG, so the
step repeats its single pass until a trigger has been seen (with loops = 1 it does not matter
whether the card checks the trigger per pass or after all loops). Step i goes to step i + 1; the
last step rings back to step 0 (``last_step="ring"``) or carries the END flag (``"end"``).
Steps point at memory slots, so segments with equal samples share one slot.
"""

from __future__ import annotations

from ..ir.quantized import QuantizedIR
from ..program import SequenceStep


def build_steps(q: QuantizedIR) -> tuple[SequenceStep, ...]:
    n = len(q.segments)
    steps = []
    for i, (seg, slot) in enumerate(zip(q.segments, q.segment_slot)):
        last = i == n - 1
        end = last and q.last_step == "end"
        steps.append(
            SequenceStep(
                segment=slot,
                next=0 if last else i + 1,
                loops=seg.loops if seg.mode == "loop_n" else 1,
                on_trigger=seg.mode == "wait_trig",
                end=end,
                name=seg.name,
            )
        )
    for st in steps:
        st.entry  # range-check every field now, not at upload
    return tuple(steps)
