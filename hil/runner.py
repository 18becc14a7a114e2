"""The nightly runner: play every suite program on a rig, record it, run its checks, report.

``awgrt hil --rig sim --out DIR`` (or ``--rig rig.toml``) writes

- ``DIR/report.json``: a list with one entry per check (``name``, ``program``, ``measured``,
  ``sigma``, ``limit``, ``unit``, ``passed``, plus ``check``, ``where`` and ``detail``);
- ``DIR/plots/<program>__<check>__<n>.png``: one figure per check;
- ``DIR/summary.md``: the rig, injected faults, a table of every check, and the verdict;
- a line per check appended to ``DIR/hil-history.jsonl`` (or the ``--history`` file; runs
  without injected faults), for ``awgrt hil --trend`` (:mod:`hil.trends`);

and exits non-zero when any check fails. Progress is shown on stderr.

A run in progress can never read as a result: before the first program it moves the previous
``report.json`` aside (``report.previous.json``), clears the previous plots, replaces
``summary.md`` by an "IN PROGRESS" page and writes a ``RUNNING`` marker; only a finished run
writes the new report and removes the marker. Every file is written to a temporary file first
and moved into place with ``os.replace``, so a full disk or a kill never leaves a truncated file
under a report's name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from awgrt import compile_sequence_program, quantize_resolved_ir
from awgrt._atomic import atomic_write_text
from awgrt._blas import single_threaded_blas
from awgrt._progress import Progress
from awgrt.errors import AWGRTError, SerializationError
from awgrt.ir.intent import MARKER_WIDTH_S
from awgrt.ir.resolved import ResolvedIR
from awgrt.sim import trigger_latency_samples

from .analysis import (
    CheckResult,
    Observation,
    boundaries_in_record,
    boundary_checks,
    crosstalk,
    delay_check,
    glitch_scan,
    phase_jump,
    reference_check,
    skew,
    timed,
    tone_checks,
    trajectory_checks,
    wrap_spurs,
    wrap_step,
)
from .captures import SavedCapture, capture_path, grouped, saved_in
from .errors import AnalysisError, RigConfigError
from .rig import CARD_TRIGGER_OUT_V, MARKER_HIGH_V, Rig, RigConfig, open_rig, rig_config, scope_range_v
from .scopes import CHANNELS as SCOPE_CHANNELS
from .scopes import AcquisitionSettings, ChannelSettings, TriggerSettings
from .simrig.faults import Faults
from .suite import CHANNELS, CLIP, FULL_SCALE, GAIN, SUITE, Check, SuiteProgram, program_named
from .timeline import Timeline
from .trends import append_history, history_path

log = logging.getLogger(__name__)

#: Record before the trigger (s), and margin after the last needed instant.
PRE_TRIGGER_S = 0.2e-6
#: How long to wait for a triggered acquisition (s).
ACQUIRE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SuiteReport:
    """What a run found: every check result, the rig and the faults injected."""

    results: tuple[CheckResult, ...]
    rig: str
    faults: tuple[str, ...]
    out_dir: Path | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]


def _failed(check: str, program: str, where: str, unit: str, error: Exception) -> CheckResult:
    return CheckResult(check, program, where, math.nan, math.nan, math.nan, unit, detail={"error": str(error)})


def _run_checks(prog: SuiteProgram, observations: dict[str, Observation], config: RigConfig) -> tuple[list[CheckResult], float | None]:
    """Every check of ``prog``: the per-channel ones on each observed channel, then the pair's.
    Each record's own time scale and output delay are fitted first (:func:`~hil.analysis.timing.timed`);
    returns the results and the acquisition's fitted delay (None: no record showed it)."""
    limits = config.limits
    assert limits is not None  # RigConfig fills it in
    out: list[CheckResult] = []
    untimed = observations
    observations, timings = timed(observations)
    fitted = None
    for channel, timing in timings.items():
        if timing.delay_fitted:
            out.append(delay_check(untimed[channel], timing, config.card.output_delay_s, limits))
            fitted = observations[channel].delay_s  # one for the acquisition
    channels = list(observations)
    for chk in prog.checks:
        if chk.kind in PAIR_CHECKS:
            if len(channels) < 2:
                continue  # a rig wired with one AWG channel has no pair to check
            a, b = (observations[c] for c in channels[:2])
            where = _where(chk, f"{a.channel}/{b.channel}")
            try:
                if chk.kind == "skew":
                    assert chk.after is not None  # a skew check names the boundary
                    out.append(skew(a, b, chk.after, chk.segment, limits))
                else:
                    out += [crosstalk(a, b, chk.segment, limits), crosstalk(b, a, chk.segment, limits)]
            except AnalysisError as exc:
                out.append(_failed(chk.kind, prog.name, where, "", exc))
            continue
        for channel, obs in observations.items():
            where = _where(chk, channel)
            try:
                if chk.kind == "phase_jump":
                    assert chk.after is not None  # a phase_jump check names the boundary
                    out.append(phase_jump(obs, chk.after, chk.segment, limits))
                elif chk.kind == "wrap":
                    out += [wrap_spurs(obs, chk.segment, limits), wrap_step(obs, chk.segment, limits)]
                elif chk.kind == "tone":
                    out += tone_checks(obs, chk.segment, limits)
                elif chk.kind == "trajectory":
                    out += trajectory_checks(obs, chk.segment, limits)
                else:
                    raise AnalysisError(f"unknown check kind {chk.kind!r}")
            except AnalysisError as exc:
                out.append(_failed(chk.kind, prog.name, where, "", exc))
    for channel, obs in observations.items():  # every boundary, and everything between them
        try:
            found = boundaries_in_record(obs)
            asked = boundaries_in_record(obs, until_s=prog.record_s)
        except AnalysisError as exc:
            out.append(_failed("boundary", prog.name, f"record {channel}", "", exc))
            found = asked = []
        seen = {sample for sample, _, _ in found}
        for sample, _, label in asked:  # promised but past the record's end: failed, never skipped
            if sample not in seen:
                end_us = obs.capture.time_s[-1] * 1e6
                out.append(_failed("phase_jump", prog.name, f"{label} {channel}", "deg", AnalysisError(f"not covered: the record ends at {end_us:.3f} us")))
        for sample, right, label in found:
            try:
                out += boundary_checks(obs, sample, f"{label} {channel}", limits, right_sample=right)
            except AnalysisError as exc:
                out.append(_failed("phase_jump", prog.name, f"{label} {channel}", "deg", exc))
        try:
            out += glitch_scan(obs, limits)
        except AnalysisError as exc:
            out.append(_failed("glitch_scan", prog.name, f"record {channel}", "deg", exc))
    return out, fitted


def _where(chk: Check, channels: str) -> str:
    """Where a check looks, for its result: the boundary or segment and the channel(s)."""
    return f"{chk.after}->{chk.segment} {channels}" if chk.after else f"{chk.segment} {channels}"


#: Checks that read the clocks: with a reference tone, the scope records it for them.
CLOCK_CHECKS = ("tone", "trajectory")

#: Checks made on the pair of AWG channels rather than on each.
PAIR_CHECKS = ("skew", "crosstalk")


def _compiled(config: RigConfig, prog: SuiteProgram, faults: Faults | None = None):
    """``prog`` compiled for the rig's card: the AWG channels it uses (name -> hardware channel),
    its quantized form, the program to play (with the segment faults applied) and how many card
    samples to play."""
    fs = config.card.sample_rate_hz
    resolved = prog.build(fs).build_resolved_ir(sample_rate_hz=fs)
    if config.trigger.marker:
        resolved = marked(resolved, config.trigger.marker_line)
    used = {name: hw for name, hw in CHANNELS.items() if name in resolved.logical_channels}
    quantized = quantize_resolved_ir(resolved, used, config.card.model)
    program = compile_sequence_program(quantized, GAIN, CLIP, FULL_SCALE, progress=False)
    if faults is not None and faults.any:
        program = faults.apply(program, quantized, prog.fault_targets, gain=GAIN, clip=CLIP, full_scale=FULL_SCALE)
    n_play = prog.triggers[0] + math.ceil((prog.record_s + 2 * PRE_TRIGGER_S) * fs) + trigger_latency_samples(fs)
    return used, quantized, program, n_play


def marked(resolved: ResolvedIR, line: str) -> ResolvedIR:
    """``resolved`` with its first segment raising marker ``line`` at the start of every pass
    (for a microsecond, or half a pass if that is shorter, so each pass makes its own edge): what
    a marker-triggered scope triggers on and times."""
    first = resolved.segments[0]
    width = max(1, min(round(MARKER_WIDTH_S * resolved.sample_rate_hz), first.n_samples // 2))
    lines = first.markers if line in first.markers else (*first.markers, line)
    return dataclasses.replace(resolved, segments=(dataclasses.replace(first, markers=lines, marker_samples=width), *resolved.segments[1:]))


def scope_zero(config: RigConfig, timeline: Timeline) -> int:
    """The card sample at t = 0 of a record: the first trigger (the scope triggers on the card's
    trigger output), or the first sample replay plays (on the marker of the first segment)."""
    return timeline.entries[0].sample if config.trigger.marker and timeline.entries else timeline.triggers[0]


def _adc_bits(config: RigConfig) -> int:
    return config.scope.adc_bits if not config.simulated else config.sim_scope.adc_bits


def run_program(
    rig: Rig, prog: SuiteProgram, faults: Faults | None = None, *, save_dir: str | Path | None = None
) -> tuple[list[CheckResult], Observation]:
    """Compile ``prog`` for the rig, play and record it on every wired AWG channel, and run its
    checks; returns them and the first channel's observation. ``save_dir``: keep every record
    there (:mod:`hil.captures`)."""
    config = rig.config
    fs = config.card.sample_rate_hz
    used, quantized, program, n_play = _compiled(config, prog, faults)
    timeline = Timeline.of(quantized, program, prog.triggers, n_play)
    full_scale_v = config.card.amplitude_mv / 1000.0
    wired = {name: hw for name, hw in used.items() if hw in config.wiring}
    if not wired:
        raise RigConfigError(f"[wiring] connects none of the suite's AWG channels {dict(CHANNELS)} to the scope")
    ranges = {}
    for hw in wired.values():
        peak = max(float(np.max(np.abs(program.analog(i)[:, hw]))) for i in range(len(program.segments))) / 32767 * full_scale_v
        ranges[config.wiring[hw]] = ChannelSettings(scope_range_v(peak))
    generator = config.trigger.source == "generator"
    marker = config.trigger.marker
    recorded = config.trigger_input in SCOPE_CHANNELS  # the scope records the trigger pulses (or the marker): their times are measured
    pulse_v = MARKER_HIGH_V if marker else config.trigger.high_v if generator else CARD_TRIGGER_OUT_V
    if recorded:
        ranges[config.trigger_input] = ChannelSettings(scope_range_v(pulse_v), pulse_v / 2)
    ref = config.reference if any(chk.kind in CLOCK_CHECKS for chk in prog.checks) else None
    if ref is not None:  # recorded with the card's outputs: the scope's timebase in the same acquisition
        ranges[ref.input] = ChannelSettings(scope_range_v(ref.amplitude_v))
    rate = config.scope.sample_rate_hz
    settings = AcquisitionSettings(
        ranges,
        rate,
        math.ceil((prog.record_s + PRE_TRIGGER_S) * rate),
        PRE_TRIGGER_S,
        TriggerSettings(config.trigger_input, config.trigger_level_v),
    )
    applied = rig.scope.configure(settings)  # the scope snaps ranges, rates and lengths: the analysis uses what it reports
    ranges = {ch: applied.channels.get(ch, cs) for ch, cs in ranges.items()}
    rig.scope.arm()
    rig.play(program, prog.triggers, n_play)
    rig.scope.wait(ACQUIRE_TIMEOUT_S)
    extra: list[CheckResult] = []
    # what card and scope clocks may disagree by (the scope times pulses and edges on its own timebase)
    clocks_ppm = 1.0 if config.shared_reference else config.scope.timebase_ppm + config.card.clock_ppm
    if recorded and marker:
        capture = rig.scope.read(config.trigger_input)
        timeline, result = marker_timing(capture, timeline, prog.name, pulse_v / 2, clocks_ppm, n_play, measure_wait=not generator)
        extra.append(result)
    elif recorded:
        # generator pulses come where the burst puts them (to a card sample); forced triggers after
        # the first come when the host gets to them (within the stated software jitter)
        # (plus what the clocks may disagree over the longest stretch between pulses)
        span_s = (prog.triggers[-1] - prog.triggers[0]) / fs
        limit_s = (1.0 / fs if generator else config.trigger.software_jitter_s) + span_s * clocks_ppm * 1e-6
        threshold = pulse_v / 2 if generator else config.trigger_level_v
        measured, result = measured_triggers(rig.scope.read(config.trigger_input), prog, threshold, fs, limit_s, "generator" if generator else "software")
        extra.append(result)
        if measured != tuple(prog.triggers):
            timeline = Timeline.of(quantized, program, measured, n_play)
    saved: list[SavedCapture] = []
    clock = None
    if ref is not None:
        try:
            capture, range_v = rig.scope.read(ref.input), ranges[ref.input].range_v
            saved.append(SavedCapture(capture, prog.name, REFERENCE, range_v, ranges[ref.input].offset_v, timeline.triggers, config.name))
            clock, result = _reference(config, capture, range_v, prog.name)
        except AnalysisError as exc:
            result = _failed("scope_timebase", prog.name, f"reference {ref.input}", "ppm", exc)
        extra.append(result)
    delay = rig.fitted_delay_s if rig.fitted_delay_s is not None else nominal_delay_s(config)
    observations = {
        name: _observation(config, rig.scope.read(config.wiring[hw]), timeline, name, prog.name, ranges[config.wiring[hw]], delay, clock)
        for name, hw in wired.items()
    }
    if save_dir is not None:
        faults_used = tuple(faults.describe()) if faults is not None else ()
        saved += [
            SavedCapture(obs.capture, prog.name, name, obs.adc_range_v or 0.0, obs.adc_offset_v, timeline.triggers, config.name, delay_s=obs.delay_s)
            for name, obs in observations.items()
        ]
        for c in saved:
            dataclasses.replace(c, faults=faults_used).save(capture_path(save_dir, prog.name, c.awg_channel))
    extra += [record_span(obs.capture, prog, name) for name, obs in observations.items()]
    with single_threaded_blas():  # small fits: BLAS threads cost more than they give
        checked, fitted = _run_checks(prog, observations, config)
    if fitted is not None:
        rig.fitted_delay_s = fitted
    return extra + checked, next(iter(observations.values()))


def _observation(
    config: RigConfig, capture, timeline: Timeline, channel: str, program: str, scope_input: ChannelSettings, delay_s: float, clock
) -> Observation:
    """One AWG channel's record as the checks see it: the rig's card, signal path and scope
    resolution, the scope input's range as the scope reported it, the first trigger at t = 0."""
    return Observation(
        capture,
        timeline,
        channel,
        program,
        scope_zero(config, timeline),
        config.card.amplitude_mv / 1000.0,
        config.path(),
        delay_s,
        adc_range_v=scope_input.range_v,
        adc_offset_v=scope_input.offset_v,
        adc_bits=_adc_bits(config),
        enob=config.scope_enob,
        shared_reference=config.shared_reference,
        reference=clock,
    )


#: The ``awg_channel`` of a saved reference-tone record.
REFERENCE = "@reference"


def _reference(config: RigConfig, capture, range_v: float, program: str):
    """The scope's timebase read on the reference tone's record, and its check."""
    ref, limits = config.reference, config.limits
    assert ref is not None and limits is not None
    return reference_check(capture, ref.hz, ref.ppm, limits, program, adc_range_v=range_v, adc_bits=_adc_bits(config), enob=config.scope_enob)


def recheck_program(name: str, captures: Sequence[SavedCapture], rig: str | Path | RigConfig = "sim") -> list[CheckResult]:
    """The checks of suite program ``name`` on its saved ``captures`` (one acquisition), for the
    rig ``rig`` (see :func:`hil.captures.check_capture`)."""
    config = rig_config(rig)
    prog = program_named(name)
    triggers = {c.triggers for c in captures}
    if len(triggers) != 1:
        raise SerializationError(f"{name}: the captures were taken with different triggers {sorted(triggers)}: not one acquisition", value=name)
    (measured,) = triggers
    _, quantized, program, n_play = _compiled(config, prog)
    timeline = Timeline.of(quantized, program, measured, n_play)
    out: list[CheckResult] = []
    clock = None
    for c in captures:
        if c.awg_channel == REFERENCE and config.reference is not None:
            try:
                clock, result = _reference(config, c.capture, c.range_v, name)
            except AnalysisError as exc:
                result = _failed("scope_timebase", name, f"reference {c.capture.channel}", "ppm", exc)
            out.append(result)
    observations = {
        c.awg_channel: _observation(config, c.capture, timeline, c.awg_channel, name, ChannelSettings(c.range_v, c.offset_v), c.delay_s, clock)
        for c in captures
        if c.awg_channel != REFERENCE
    }
    if not observations:
        raise SerializationError(f"{name}: no AWG channel among the captures", value=name)
    out += [record_span(obs.capture, prog, ch) for ch, obs in observations.items()]
    with single_threaded_blas():
        out += _run_checks(prog, observations, config)[0]
    return out


def recheck(folder: str | Path, rig: str | Path | RigConfig = "sim", out_dir: str | Path | None = None, *, plots: bool = True) -> SuiteReport:
    """Run the checks again on every capture a run kept in ``folder`` (its ``captures/``), for
    ``rig``; write the report to ``out_dir`` if given. A capture file that cannot be read, or a
    program whose checks cannot run, fails as its own result."""
    results: list[CheckResult] = []
    loaded = []
    files = saved_in(folder)
    if not files:
        raise SerializationError(f"{folder}: no saved captures (*.npz) in it or in its captures/", value=str(folder))
    for path in files:
        try:
            loaded.append(SavedCapture.load(path))
        except AWGRTError as exc:
            results.append(_failed("capture", path.stem.split("__")[0], path.name, "", exc))
    faults: set[str] = set()
    for name, group in grouped(loaded).items():
        faults.update(f for c in group for f in c.faults)
        try:
            results += recheck_program(name, group, rig)
        except AWGRTError as exc:
            results.append(_failed("run", name, "program", "", exc))
    report = SuiteReport(tuple(results), rig_config(rig).name, tuple(sorted(faults)), Path(out_dir) if out_dir else None)
    if out_dir is not None:
        write_report(report, Path(out_dir), plots=plots)
    return report


def record_span(capture, prog: SuiteProgram, channel: str) -> CheckResult:
    """Whether the record covers all the program asked to be seen: from the first trigger (t = 0)
    to ``prog.record_s`` after it. A shorter record (scopes return fewer points than asked in
    some point modes or memory depths) fails here: the boundaries, wraps and tones past its end
    are not covered, and no verdict is given for what was not seen."""
    t = capture.time_s
    start, end = float(t[0]), float(t[-1])
    slack = 2 * capture.x_increment_s
    missing_s = max(0.0, start) + max(0.0, prog.record_s - end)  # not seen at the start and at the end
    detail: dict[str, object] = {"record_start_s": start, "record_end_s": end, "asked_end_s": prog.record_s, "points": int(t.size)}
    if missing_s > slack:
        detail["not_covered"] = f"{max(end, 0.0) * 1e6:.3f}..{prog.record_s * 1e6:.3f} us after the first trigger" if end < prog.record_s else "the start"
    plot = {"kind": "span", "t": t, "v": capture.volts, "asked_end_s": prog.record_s}
    sigma_us, limit_us = capture.x_increment_s * 1e6, slack * 1e6
    return CheckResult("record_span", prog.name, channel, missing_s * 1e6, sigma_us, limit_us, "us", two_sided=False, detail=detail, plot=plot)


def nominal_delay_s(config: RigConfig) -> float:
    """From a card sample to the scope input, relative to the edge the scope triggers on: the
    card's output delay, less the marker's when the scope triggers on a marker line."""
    return config.card.output_delay_s - (config.trigger.marker_delay_s if config.trigger.marker else 0.0)


def _rising_edges(capture, threshold_v: float) -> list[float]:
    """Times of the rising edges through ``threshold_v`` in a record (interpolated between
    points), from the one the scope triggered on (the edge nearest t = 0, within its trigger
    skew) on."""
    t, v = capture.time_s, capture.volts
    above = v >= threshold_v
    rising = np.flatnonzero(~above[:-1] & above[1:])
    edges = [float(t[i] + (threshold_v - v[i]) / (v[i + 1] - v[i]) * (t[i + 1] - t[i])) for i in rising]
    return edges[int(np.argmin(np.abs(edges))) :] if edges else edges


def marker_timing(
    capture, timeline: Timeline, program: str, threshold_v: float, clocks_ppm: float, until: int, *, measure_wait: bool
) -> tuple[Timeline, CheckResult]:
    """The marker line's record (its rising edges: the start of every pass of the program's first
    segment, t = 0 the first) against the walk: an edge where each pass of that segment starts and
    nowhere else, the worst offset (ns) judged against a card sample or two scope points,
    whichever is more, plus what the two clocks may disagree over the span.

    With ``measure_wait`` (software triggers, which come when the host gets to them), a first
    segment that waits for a trigger played the passes its edges show: the returned timeline
    (walked to card sample ``until``) puts the later trigger in its last pass, so every check
    after it is placed by what the card did rather than by when the host was asked to trigger.
    The record must show the segment left (a pass start without an edge after the last) for
    that; a record that ends while it still waits fails the check (more edges than the walk)."""
    fs = timeline.sample_rate_hz
    if not timeline.entries:
        return timeline, _failed("marker_timing", program, "marker", "ns", AnalysisError("the walk plays nothing"))
    first = timeline.entries[0]
    where = f"marker on {first.name!r}"
    edges = _rising_edges(capture, threshold_v)
    if not edges:
        return timeline, _failed("marker_timing", program, where, "ns", AnalysisError("no marker edge in the record"))
    seen = [e - edges[0] for e in edges]
    t_end = float(capture.time_s[-1]) - edges[0]
    pass_s = first.n_samples / fs
    if measure_wait and first.passes is not None and timeline.program.steps[first.step].on_trigger and len(timeline.triggers) > 1:
        run = 1  # edges a pass apart from the first: the passes of the waiting segment
        while run < len(seen) and abs(seen[run] - seen[run - 1] - pass_s) < pass_s / 4:
            run += 1
        if seen[run - 1] + 1.25 * pass_s <= t_end - 2 * capture.x_increment_s and run != first.passes:  # a pass start without an edge: left
            shift = first.sample + (run - 1) * first.n_samples - timeline.triggers[1]
            triggers = (timeline.triggers[0], *(t + shift for t in timeline.triggers[1:]))
            timeline = Timeline.of(timeline.quantized, timeline.program, triggers, until + max(0, shift))
    zero = timeline.entries[0].sample
    last_s = t_end - 2 * capture.x_increment_s  # an edge closer to the record's end may not show
    asked: list[float] = []
    for e in timeline.entries:
        if e.name != first.name:
            continue
        j = 0
        while (e.passes is None or j < e.passes) and (start := (e.sample + j * e.n_samples - zero) / fs) <= last_s:
            asked.append(start)
            j += 1
    seen = [x for x in seen if x <= last_s]
    limit_s = max(1.0 / fs, 2 * capture.x_increment_s) + (asked[-1] if asked else 0.0) * clocks_ppm * 1e-6
    offsets = [x - a for x, a in zip(seen, asked)]
    worst = max(offsets, key=abs, default=0.0)
    detail = {"segment": first.name, "edges": len(seen), "passes_in_record": len(asked), "first_passes": timeline.entries[0].passes}
    plot = {"kind": "pulses", "t": capture.time_s, "v": capture.volts, "edges": seen, "asked": asked}
    sigma_ns = capture.x_increment_s / math.sqrt(12) * 1e9
    result = CheckResult("marker_timing", program, where, worst * 1e9, sigma_ns, limit_s * 1e9, "ns", detail=detail, plot=plot)
    if len(seen) != len(asked):
        error = AnalysisError(f"{len(seen)} marker edges in the record where the walk has {len(asked)} passes of {first.name!r} in it")
        result = _failed("marker_timing", program, where, "ns", error)
    return timeline, result


def measured_triggers(capture, prog: SuiteProgram, threshold_v: float, fs: float, limit_s: float, source: str) -> tuple[tuple[int, ...], CheckResult]:
    """The card samples of the trigger pulses seen on the scope (rising edges through
    ``threshold_v``, t = 0 the first, which the scope triggered on), and a check that they came
    where the program asked: the worst offset of a later pulse (ns) against ``limit_s``."""
    t, v = capture.time_s, capture.volts
    edges = _rising_edges(capture, threshold_v)
    first = prog.triggers[0]
    if not edges:
        return tuple(prog.triggers), _failed("trigger_timing", prog.name, source, "ns", AnalysisError("no trigger pulse in the record"))
    measured = tuple(first + round((e - edges[0]) * fs) for e in edges[: len(prog.triggers)])
    offsets = [(e - edges[0]) - (want - first) / fs for e, want in zip(edges[1:], prog.triggers[1:])]
    worst = max(offsets, key=abs, default=0.0)
    result = CheckResult(
        "trigger_timing",
        prog.name,
        source,
        worst * 1e9,
        capture.x_increment_s / math.sqrt(12) * 1e9,
        limit_s * 1e9,
        "ns",
        detail={"pulses": len(edges), "asked": len(prog.triggers), "measured_samples": list(measured)},
        plot={"kind": "pulses", "t": t, "v": v, "edges": [e - edges[0] for e in edges], "asked": [(w - first) / fs for w in prog.triggers]},
    )
    if len(edges) < len(prog.triggers):
        missing = AnalysisError(f"{len(edges)} trigger pulses in the record for {len(prog.triggers)} triggers")
        result = _failed("trigger_timing", prog.name, source, "ns", missing)
    return measured, result


def run_suite(
    rig: str | Path | RigConfig = "sim",
    out_dir: str | Path | None = None,
    *,
    inject: Sequence[str] = (),
    programs: Sequence[str] | None = None,
    plots: bool = True,
    progress: bool = True,
    history: str | Path | None = None,
) -> SuiteReport:
    """Run the suite (or the named ``programs``) on ``rig`` with faults ``inject`` ed (see
    :mod:`hil.simrig.faults`); write the report files to ``out_dir`` if given, and a clean run's
    figures to its history (``history``, default ``out_dir/hil-history.jsonl``)."""
    faults = Faults.parse(inject)
    chosen = [program_named(n) for n in programs] if programs else list(SUITE)
    if out_dir is not None:
        begin_run(Path(out_dir), rig)
    results: list[CheckResult] = []
    observations = []
    with open_rig(rig, faults=faults) as r, Progress(len(chosen), "hil suite", enabled=progress, delay_s=0.0 if progress else 1.0) as bar:
        for prog in chosen:
            try:
                found, obs = run_program(r, prog, faults, save_dir=out_dir)
                observations.append(obs)
            except AWGRTError as exc:
                found = [_failed("run", prog.name, "program", "", exc)]
            except Exception as exc:  # noqa: BLE001 - one bad answer fails its own capture, never the night
                log.exception("%s: unexpected error", prog.name)
                found = [_failed("run", prog.name, "program", "", AWGRTError(f"unexpected {type(exc).__name__}: {exc}"))]
            results += found
            log.info("%s: %d checks, %d not passed", prog.name, len(found), sum(not r.passed for r in found))
            bar.advance()
        rig_name = r.config.name
    report = SuiteReport(tuple(results), rig_name, tuple(faults.describe()), Path(out_dir) if out_dir else None)
    if out_dir is not None:
        write_report(report, Path(out_dir), plots=plots)
        if not report.faults:  # a figure of the rig, not a test of the harness: keep it for trends
            append_history(report.results, rig_name, out_dir, history=history)
    return report


#: Present in the output folder while a run is in progress (or was killed).
RUNNING_MARKER = "RUNNING"




def begin_run(out_dir: Path, rig: object) -> None:
    """Mark ``out_dir`` as holding a run in progress (see module doc). The verdict page goes
    first, then the previous report, and the marker last: once the marker exists, nothing in the
    folder can read as a pass."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_text(
        out_dir / "summary.md",
        f"# HIL run on rig `{rig!s}`: IN PROGRESS (started {started})\n\nNo result yet. If this page stays, the run was interrupted: nothing here is a pass.\n",
    )
    if (out_dir / "report.json").exists():
        os.replace(out_dir / "report.json", out_dir / "report.previous.json")
    shutil.rmtree(out_dir / "plots", ignore_errors=True)
    shutil.rmtree(out_dir / "captures", ignore_errors=True)  # a previous run's records are not this one's
    atomic_write_text(out_dir / RUNNING_MARKER, f"process {os.getpid()} started a HIL run on rig {rig!s} at {started}\n")


def write_report(report: SuiteReport, out_dir: Path, *, plots: bool = True) -> None:
    """report.json, plots/ and summary.md (see module doc); the run marker goes last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [r.to_json() for r in report.results]
    figures: dict[int, Path] = {}
    from awgrt.plot import NO_MATPLOTLIB, have_matplotlib

    missing = plots and not have_matplotlib()  # the results are written all the same
    if missing:
        log.warning("no figures: %s; report.json and summary.md are written", NO_MATPLOTLIB)
    if plots and not missing:
        from .plots import plot_check

        for i, r in enumerate(report.results):
            if r.plot:
                figures[i] = plot_check(r, out_dir / "plots" / f"{r.program}__{r.check}__{i:02d}.png")
    atomic_write_text(out_dir / "report.json", json.dumps(entries, indent=2, default=_json_default) + "\n")
    summary = summary_markdown(report, figures, out_dir)
    if missing:
        summary += f"\nNo figures: {NO_MATPLOTLIB}.\n"
    atomic_write_text(out_dir / "summary.md", summary)
    with contextlib.suppress(FileNotFoundError):
        (out_dir / RUNNING_MARKER).unlink()


def _json_default(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot serialise {type(x).__name__}")


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def summary_markdown(report: SuiteReport, figures: dict[int, Path], out_dir: Path) -> str:
    """The run as a Markdown page: verdict, rig, faults and one table row per check."""
    n_fail = len(report.failures())
    n_inc = sum(bool(r.inconclusive) for r in report.results)
    inc = f", {n_inc} of them inconclusive" if n_inc else ""
    lines = [
        f"# HIL run on rig `{report.rig}`: {'PASS' if report.passed else f'FAIL ({n_fail} of {len(report.results)} checks{inc})'}",
        "",
        f"Faults injected: {', '.join(report.faults) if report.faults else 'none'}",
        "",
        "| program | check | where | measured | sigma | limit | unit | verdict | plot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines[-2:-2] = _clock_lines(report)
    for i, r in enumerate(report.results):
        limit = ("≤ " if not r.two_sided else "± ") + _fmt(r.limit)
        plot = f"[png]({figures[i].relative_to(out_dir)})" if i in figures else ""
        if r.inconclusive:
            verdict = f"**INCONCLUSIVE** ({r.inconclusive})"
        else:
            verdict = "pass" if r.passed else "**FAIL**" + (f" ({r.detail['error']})" if "error" in r.detail else "")
        lines.append(f"| {r.program} | {r.check} | {r.where} | {_fmt(r.measured)} | {_fmt(r.sigma)} | {limit} | {r.unit} | {verdict} | {plot} |")
    return "\n".join(lines) + "\n"


def _mean(results: Sequence[CheckResult], check: str) -> float | None:
    values = [r.measured for r in results if r.check == check and math.isfinite(r.measured)]
    return sum(values) / len(values) if values else None


def _clock_lines(report: SuiteReport) -> list[str]:
    """What the frequency checks say of the clocks, for the summary: the scope's timebase and the
    card's clock apart where a reference tone was recorded, else their sum."""
    simulated = "sim" in report.rig or "emulated" in report.rig
    freq, scope = _mean(report.results, "frequency"), _mean(report.results, "scope_timebase")
    if freq is None:
        return []
    if scope is not None:
        text = (
            f"Clocks: the card's clock reads {freq:+.2f} ppm on average (frequency checks, the scope's timebase taken out); "
            f"the scope's timebase runs {scope:+.2f} ppm, measured on the reference tone"
            + (" (the simulated scope's is set 20 ppm fast)." if simulated else ".")
        )
    else:
        clocks = next(r.detail.get("clocks", "") for r in report.results if r.check == "frequency")
        text = f"Frequency checks read {freq:+.1f} ppm on average: {clocks}" + (
            " (the simulated scope's timebase runs 20 ppm fast: it reads frequencies 20 ppm low)." if simulated else "."
        )
    return [text, ""]


def main(
    rig: str, out_dir: str | Path, inject: Sequence[str] = (), programs: Sequence[str] | None = None, plots: bool = True, history: str | Path | None = None
) -> int:
    """Run the suite and print the verdict; return the exit status (0: every check passed)."""
    return _printed(run_suite(rig, out_dir, inject=inject, programs=programs, plots=plots, history=history), out_dir, history)


def recheck_main(folder: str | Path, rig: str, out_dir: str | Path, plots: bool = True) -> int:
    """Run the checks again on a run's saved captures (:func:`recheck`) and print the verdict."""
    return _printed(recheck(folder, rig, out_dir, plots=plots), out_dir)


def _printed(report: SuiteReport, out_dir: str | Path, history: str | Path | None = None) -> int:
    """One line per program (its checks all passed), and every check that did not pass in full;
    every check is in the report folder."""
    programs = list(dict.fromkeys(r.program for r in report.results))
    for prog in programs:
        mine = [r for r in report.results if r.program == prog]
        bad = [r for r in mine if not r.passed]
        mark = "ok  " if not bad else "FAIL" if any(not r.inconclusive for r in bad) else "INC "
        print(f"{mark} {prog:16s} {len(mine) - len(bad)}/{len(mine)} checks passed")
        for r in bad:
            mark = "INC " if r.inconclusive else "FAIL"
            why = f"  ({r.inconclusive})" if r.inconclusive else ""
            print(f"  {mark} {r.name:40s} {_fmt(r.measured):>10s} +- {_fmt(r.sigma):<9s} limit {_fmt(r.limit):>8s} {r.unit}{why}")
    folder = Path(out_dir).resolve()
    print(f"\n{len(report.results) - len(report.failures())}/{len(report.results)} checks passed; report in {folder} (every check: summary.md)")
    kept = history_path(folder, history)
    if not report.faults and kept.exists():
        print(f"history (for awgrt hil --trend): {kept}")
    sys.stdout.flush()
    return 0 if report.passed else 1
