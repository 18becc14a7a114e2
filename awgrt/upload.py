"""Deciding an upload, apart from doing it.

:func:`plan_upload` is a pure function: from what the card holds (``old``), what it should hold
(``new``), the output set-up and the card's state it returns an :class:`UploadPlan` and touches
nothing. :func:`apply_upload` carries a plan out on a backend. The runtime does one after the
other; ``Runtime.plan`` shows the plan of a program without touching the card (a dry run).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, get_args

from .backends.base import Backend, OutputConfig, TriggerSource
from .card import INTERNAL_CLOCK, ClockConfig
from .program import CompiledSequenceProgram
from .spectrum import StopLevel, stop_level_of

#: How much of the card is rewritten.
UploadKind = Literal["full", "segments", "steps", "settings", "none"]
UPLOAD_KINDS: tuple[str, ...] = get_args(UploadKind)
#: What to do when a slot that is playing must change: stop, update and restart; or write it live.
LiveMode = Literal["restart", "allow"]
LIVE_MODES: tuple[str, ...] = get_args(LiveMode)


@dataclass(frozen=True)
class UploadPlan:
    """What an upload will do. ``kind``: full upload, changed slots (plus the step table if it
    changed), the step table only, the output settings only, or nothing. ``configure``: the output set-up changes first.
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
    return [(s.segment, s.next, s.loops, s.on_trigger, s.end) for s in p.steps] + [("start", p.start_step)]


def asked_outputs(
    new: CompiledSequenceProgram,
    *,
    amplitude_mv: int | tuple[int, ...],
    stop_level: str | tuple[str, ...],
    trigger: TriggerSource,
    trigger_level_mv: int = 1000,
    clock: ClockConfig = INTERNAL_CLOCK,
) -> OutputConfig:
    """The output set-up a runtime asks for ``new``, per channel."""
    n = new.n_channels
    amps = (amplitude_mv,) * n if isinstance(amplitude_mv, int) else tuple(amplitude_mv)
    levels = (stop_level,) * n if isinstance(stop_level, (str, StopLevel)) else tuple(stop_level)
    return OutputConfig(new.sample_rate_hz, n, tuple(int(a) for a in amps), tuple(stop_level_of(v) for v in levels), trigger, int(trigger_level_mv), clock)


def output_changes(have: OutputConfig, wanted: OutputConfig) -> list[str]:
    """Every output setting in which ``have`` (in force) differs from ``wanted``, in words."""
    changes = []
    for f in fields(OutputConfig):
        a, b = getattr(have, f.name), getattr(wanted, f.name)
        if f.name == "trigger_level_mv" and wanted.trigger != "external":
            continue  # the level of an input that is not used
        if f.name == "stop_level":
            a, b = tuple(StopLevel(x).name.lower() for x in a), tuple(StopLevel(x).name.lower() for x in b)
        if a != b:
            changes.append(f"{f.name} {a} -> {b}")
    return changes


def plan_upload(
    old: CompiledSequenceProgram | None,
    new: CompiledSequenceProgram,
    *,
    config: OutputConfig | None,
    running: bool,
    playing_slot: int | None,
    live: LiveMode = "restart",
    wanted: OutputConfig | None = None,
) -> UploadPlan:
    """The least upload that makes a card holding ``old`` (None: unknown) hold ``new``.

    ``config``: the output set-up in force (None: none yet); ``wanted``: the set-up asked for
    (None: whatever is in force, at ``new``'s rate and channel count). Every field of the set-up
    is compared: a different sample rate or channel count needs a new set-up and a full upload;
    any other difference (amplitude, stop level, trigger source or level) a new set-up, which
    stops the card (restarted after if it ran). A change of the start step alone rewrites the
    step table and the start step (the card is restarted if it ran: the start step counts only at
    a start). ``running`` / ``playing_slot``: the card's state (the slot playing now, if it runs).
    ``live``: what to do when that slot must change."""
    layout = config is None or config.sample_rate_hz != new.sample_rate_hz or config.n_channels != new.n_channels
    changes = [] if config is None or wanted is None else output_changes(config, wanted)
    configure = layout or bool(changes)
    everything = tuple(range(len(new.segments)))
    if layout or old is None or not old.same_layout(new):
        full_notes: tuple[str, ...] = ("the memory layout changed while the card ran: it was stopped, fully reloaded and restarted",) if running else ()
        if changes:
            full_notes += ("output settings changed: " + "; ".join(changes),)
        return UploadPlan("full", configure, everything, True, running, running, full_notes)
    changed = old.changed_slots(new)
    steps = _step_table(old) != _step_table(new)
    if not changed and not steps and not changes:
        return UploadPlan("none", False, (), False, False, False)
    stop_first, notes = False, list[str]()
    if changes:
        stop_first = running
        notes.append("output settings changed: " + "; ".join(changes) + (" (card stopped, set up and restarted)" if running else ""))
    if running and old.start_step != new.start_step:
        stop_first = True
        notes.append(f"start step {old.start_step} -> {new.start_step}: card stopped and restarted from it")
    if running and playing_slot is not None and playing_slot in changed:
        name = old.segments[playing_slot].name
        if live == "restart":
            stop_first = True
            notes.append(f"slot {playing_slot} ({name!r}) was playing: card stopped, updated and restarted")
        else:
            notes.append(f"slot {playing_slot} ({name!r}) written while playing: its output mixes old and new samples")
    kind: UploadKind = "segments" if changed else "steps" if steps else "settings"
    return UploadPlan(kind, configure, changed, steps, stop_first, stop_first, tuple(notes))


def apply_upload(backend: Backend, plan: UploadPlan, new: CompiledSequenceProgram, asked: OutputConfig) -> None:
    """Carry ``plan`` out on ``backend`` with the output set-up ``asked`` (:func:`asked_outputs`;
    the restart, if any, is left to the caller)."""
    if plan.stop_first:
        backend.stop()
    if plan.configure:
        backend.configure(
            sample_rate_hz=new.sample_rate_hz,
            n_channels=new.n_channels,
            amplitude_mv=asked.amplitude_mv,
            stop_level=asked.stop_level,
            trigger=asked.trigger,
            trigger_level_mv=asked.trigger_level_mv,
            clock=asked.clock,
        )
    if plan.kind == "full":
        backend.load(new)
        return
    if plan.slots:
        backend.update_segments(new, list(plan.slots))
    if plan.steps:
        backend.write_steps(new)
