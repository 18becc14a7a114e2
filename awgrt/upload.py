"""Deciding an upload, apart from doing it.

:func:`plan_upload` is a pure function: from what the card holds (``old``), what it should hold
(``new``), the output set-up and the card's state it returns an :class:`UploadPlan` and touches
nothing. :func:`apply_upload` carries a plan out on a backend. The runtime does one after the
other; ``Runtime.plan`` shows the plan of a program without touching the card (a dry run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .backends.base import Backend, OutputConfig, TriggerSource
from .program import CompiledSequenceProgram

#: How much of the card is rewritten.
UploadKind = Literal["full", "segments", "steps", "none"]
UPLOAD_KINDS: tuple[str, ...] = get_args(UploadKind)
#: What to do when a slot that is playing must change: stop, update and restart; or write it live.
LiveMode = Literal["restart", "allow"]
LIVE_MODES: tuple[str, ...] = get_args(LiveMode)


@dataclass(frozen=True)
class UploadPlan:
    """What an upload will do. ``kind``: full upload, changed slots (plus the step table if it
    changed), the step table only, or nothing. ``configure``: the output set-up changes first.
    ``slots``: memory slots written. ``steps``: the step table is rewritten. ``stop_first``: the
    card is stopped before writing. ``restart``: it is started again after (because it ran).
    ``notes``: why, in words."""

    kind: UploadKind
    configure: bool
    slots: tuple[int, ...]
    steps: bool
    stop_first: bool
    restart: bool
    notes: tuple[str, ...] = ()


def _step_table(p: CompiledSequenceProgram) -> list[tuple]:
    return [(s.segment, s.next, s.loops, s.on_trigger, s.end) for s in p.steps]


def plan_upload(
    old: CompiledSequenceProgram | None,
    new: CompiledSequenceProgram,
    *,
    config: OutputConfig | None,
    running: bool,
    playing_slot: int | None,
    live: LiveMode = "restart",
) -> UploadPlan:
    """The least upload that makes a card holding ``old`` (None: unknown) hold ``new``.

    ``config``: the output set-up in force (None: none yet); a different sample rate or channel
    count needs a new set-up and a full upload. ``running`` / ``playing_slot``: the card's state
    (the slot playing now, if it runs). ``live``: what to do when that slot must change."""
    configure = config is None or config.sample_rate_hz != new.sample_rate_hz or config.n_channels != new.n_channels
    everything = tuple(range(len(new.segments)))
    if configure or old is None or not old.same_layout(new):
        full_notes = ("the memory layout changed while the card ran: it was stopped, fully reloaded and restarted",) if running else ()
        return UploadPlan("full", configure, everything, True, running, running, full_notes)
    changed = old.changed_slots(new)
    steps = _step_table(old) != _step_table(new)
    if not changed and not steps:
        return UploadPlan("none", False, (), False, False, False)
    stop_first, notes = False, list[str]()
    if running and playing_slot is not None and playing_slot in changed:
        name = old.segments[playing_slot].name
        if live == "restart":
            stop_first = True
            notes.append(f"slot {playing_slot} ({name!r}) was playing: card stopped, updated and restarted")
        else:
            notes.append(f"slot {playing_slot} ({name!r}) written while playing: its output mixes old and new samples")
    return UploadPlan("segments" if changed else "steps", False, changed, steps, stop_first, stop_first, tuple(notes))


def apply_upload(
    backend: Backend,
    plan: UploadPlan,
    new: CompiledSequenceProgram,
    *,
    amplitude_mv: int | tuple[int, ...],
    stop_level: str,
    trigger: TriggerSource,
) -> None:
    """Carry ``plan`` out on ``backend`` (the restart, if any, is left to the caller)."""
    if plan.configure:
        backend.configure(sample_rate_hz=new.sample_rate_hz, n_channels=new.n_channels, amplitude_mv=amplitude_mv, stop_level=stop_level, trigger=trigger)
    if plan.kind == "full":
        backend.load(new)
        return
    if plan.stop_first:
        backend.stop()
    if plan.slots:
        backend.update_segments(new, list(plan.slots))
    if plan.steps:
        backend.write_steps(new)
