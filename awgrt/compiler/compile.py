"""compile_sequence_program: quantized IR -> int16 segments and a step table."""

from __future__ import annotations

import logging
import numbers
import time
from typing import Any

from .._blas import single_threaded_blas
from .._progress import Progress
from .._warn import warn
from ..calibration import AODCalibration
from ..errors import ClipError, ClipWarning, ProgramError, SilenceWarning
from ..ir.intent import finite_real
from ..ir.quantized import QuantizedIR, marker_bit, marker_shift
from ..ir.resolved import Note, Segment
from ..program import CompiledSegment, CompiledSequenceProgram
from .report import CompileReport, SegmentReport
from .steps import build_steps
from .synth import DigitalBits, SynthResult, default_workers, synthesize

log = logging.getLogger(__name__)


def marker_bits(seg: Segment, lines: tuple[str, ...]) -> DigitalBits | None:
    """How the program's marker ``lines`` ride on hardware channel 0 in ``seg`` (None: no markers)."""
    if not lines:
        return None
    return DigitalBits(0, marker_shift(lines), tuple((marker_bit(m), seg.marker_samples if m in seg.markers else 0) for m in lines))


def synthesize_segment(seg: Segment, q: QuantizedIR, *, gain: float, clip: float, full_scale: int, **options: Any) -> SynthResult:
    """:func:`~awgrt.compiler.synth.synthesize` of ``seg`` as a segment of ``q`` plays: at its sample
    rate, on its hardware channels, with the program's marker lines on channel 0 (``options``:
    ``workers``, ``fast_math``, ``on_block``)."""
    return synthesize(
        seg,
        q.sample_rate_hz,
        dict(q.hardware_channels),
        q.n_channels,
        gain=gain,
        clip=clip,
        full_scale=full_scale,
        digital=marker_bits(seg, q.marker_lines),
        **options,
    )


def _segment_samples(
    seg: Segment,
    q: QuantizedIR,
    cache: dict[str, SynthResult],
    gain: float,
    clip: float,
    full_scale: int,
    synthesised: list[str],
    workers: int,
    fast_math: bool,
    progress: Progress,
) -> SynthResult:
    """The segment's samples from ``cache`` (keyed by digest, scaling and arithmetic) or freshly
    synthesised; ``progress`` advances block by block (at once for a cached segment)."""
    key = f"{seg.digest}:{gain!r}:{clip!r}:{full_scale}:{'fast' if fast_math else 'exact'}"
    if key not in cache:
        cache[key] = synthesize_segment(
            seg, q, gain=gain, clip=clip, full_scale=full_scale, workers=workers, fast_math=fast_math, on_block=progress.advance
        )
        synthesised.append(seg.name)
    else:
        progress.advance(seg.n_samples)
    return cache[key]


#: Largest gain accepted: far beyond any use (amplitudes are fractions of full scale), small
#: enough that samples stay finite in float64.
MAX_GAIN = 1e6
#: What clipped samples do besides being recorded in the report: warn, raise, or nothing more.
CLIP_POLICIES = ("warn", "error", "count")
#: A segment with more clipped samples than this raises the clip policy's warning or error: any clipped
#: sample does (an AOD driven into clipping makes intermodulation tones, i.e. extra tweezers).
CLIP_WARN_SAMPLES = 0


def _silent_channels(q: QuantizedIR, results: list[SynthResult]) -> tuple[Note, ...]:
    """A note (and a :class:`~awgrt.errors.SilenceWarning`) for every segment and channel whose
    asked amplitudes are not all zero but whose samples are: the card would play silence."""
    notes = []
    for seg, result in zip(q.segments, results):
        for track in seg.tracks:
            asked = max((max(s.a0, s.a1) for p in track.pieces for s in p.tones), default=0.0)
            col = q.hardware_channels[track.channel]
            sounding = result.sounding[col] if result.sounding else bool(result.data[:, col].any())
            if asked > 0 and not sounding:
                detail = (
                    f"channel {track.channel!r} plays silence although its tones ask for amplitudes up to {asked:.3g} of full scale "
                    "(below one LSB after gain)"
                )
                notes.append(Note("silent", seg.name, detail, asked, 0.0, track.channel))
                warn(f"segment {seg.name!r}: {detail}", SilenceWarning)
    return tuple(notes)


def calibrations_of(quantized: QuantizedIR) -> dict[str, AODCalibration]:
    """The AOD calibration of each calibrated logical channel of ``quantized``."""
    found: dict[str, AODCalibration] = {}
    for seg in quantized.segments:
        for track in seg.tracks:
            if track.channel not in found:
                cal = next((s.optical.calibration for p in track.pieces for s in p.tones if s.optical is not None), None)
                if cal is not None:
                    found[track.channel] = cal
    return found


def compile_sequence_program(
    quantized: QuantizedIR,
    gain: float = 1.0,
    clip: float = 0.9,
    full_scale: int = 32767,
    *,
    clip_policy: str = "warn",
    cache: dict[str, SynthResult] | None = None,
    progress: bool = True,
    workers: int | None = None,
    fast_math: bool = False,
) -> CompiledSequenceProgram:
    """Synthesise every distinct segment and build the step table.

    ``gain`` scales the summed tones (fractions of full scale); samples beyond
    ``clip * full_scale`` are clipped and recorded per segment and channel in the report (how
    many, first and last sample); past :data:`CLIP_WARN_SAMPLES` clipped samples in a segment
    that also raises a :class:`~awgrt.errors.ClipWarning` (``clip_policy="warn"``, the default),
    a :class:`~awgrt.errors.ClipError` (``"error"``), or nothing beyond the report (``"count"``). ``cache`` maps segment digests
    to earlier results: segments found there are not synthesised again (the runtime uses this).
    With ``progress`` a bar is drawn on stderr once synthesis has taken more than a second.
    ``workers``: threads per segment's synthesis (default: the cores available, at most 8; the
    samples do not depend on it). ``fast_math=True`` (never the default) makes pieces where at
    least eight tones move each on its own up to about 1.4x faster, at a phase error of at most
    :data:`~awgrt.compiler.synth.FAST_PHASE_ERROR_RAD` (3.1e-5 rad, 1 LSB at full scale) instead of
    :data:`~awgrt.compiler.synth.SINE_ERROR_RAD` (2.9e-7 rad); everything else, and phase
    continuity at every boundary, is unchanged (phases are anchored exactly); the report says
    which was used.
    """
    if not (finite_real(gain) and 0 < gain <= MAX_GAIN):
        raise ProgramError(f"gain={gain!r} must be a number in (0, {MAX_GAIN:g}]", op="compile", value=gain)
    if not (finite_real(clip) and 0 < clip <= 1):
        raise ProgramError(f"clip={clip!r} must be in (0, 1] (fraction of full scale)", op="compile", value=clip)
    if not (isinstance(full_scale, numbers.Integral) and not isinstance(full_scale, bool) and 0 < full_scale <= 32767):
        raise ProgramError(f"full_scale={full_scale!r} must be an integer in 1..32767", op="compile", value=full_scale)
    if clip_policy not in CLIP_POLICIES:
        raise ProgramError(f"clip_policy={clip_policy!r} must be one of {CLIP_POLICIES}", op="compile", value=clip_policy)

    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or not 1 <= workers <= 64:
        raise ProgramError(f"workers={workers!r} must be an integer in 1..64", op="compile", value=workers)
    if not isinstance(fast_math, bool):
        raise ProgramError(f"fast_math={fast_math!r} must be True or False", op="compile", value=fast_math)
    gain, clip, full_scale = float(gain), float(clip), int(full_scale)
    for channel, cal in calibrations_of(quantized).items():
        cal.check_output(None, gain, f"channel {channel!r}")
    cache = {} if cache is None else cache
    hw = dict(quantized.hardware_channels)
    by_slot: dict[int, CompiledSegment] = {}
    seg_reports = []
    synthesised = []
    results = []
    began = time.perf_counter()
    with Progress(quantized.n_samples, "synthesising", enabled=progress) as bar, single_threaded_blas():  # entered once: it costs ~1 ms
        for seg, slot in zip(quantized.segments, quantized.segment_slot):
            bar.note = f"segment {seg.name!r}"
            result = _segment_samples(seg, quantized, cache, gain, clip, full_scale, synthesised, int(workers), fast_math, bar)
            results.append(result)
            seg_report = SegmentReport.of(seg, slot, result, quantized)
            if clip_policy != "count" and seg_report.clipped > CLIP_WARN_SAMPLES:
                where = seg_report.clip_summary(quantized.sample_rate_hz)
                message = f"segment {seg.name!r}: {where} beyond clip={clip} of full scale; lower the amplitudes or gain"
                if clip_policy == "error":
                    raise ClipError(message, segment=seg.name, op="synthesize", value=max(result.peak))
                warn(message + " (clipping an AOD drive makes intermodulation tones)", ClipWarning)
            if slot in by_slot:
                prev = by_slot[slot]
                by_slot[slot] = CompiledSegment(prev.name, prev.data, prev.digest, (*prev.names, seg.name), prev.clipped)
            else:
                by_slot[slot] = CompiledSegment(seg.name, result.data, seg.digest, (seg.name,), result.clipped)
            seg_reports.append(seg_report)
    log.debug("synthesised %s", synthesised)
    log.info(
        "compiled %d segments (%d samples per channel, %d channel(s)): %d synthesised in %.1f ms, %d from the cache",
        len(results),
        quantized.n_samples,
        quantized.n_channels,
        len(synthesised),
        1e3 * (time.perf_counter() - began),
        len(results) - len(synthesised),
    )
    steps = build_steps(quantized)
    silent = _silent_channels(quantized, results)
    report = CompileReport(
        sample_rate_hz=quantized.sample_rate_hz,
        card=quantized.card.name,
        hardware_channels=hw,
        n_channels=quantized.n_channels,
        slots=quantized.slots,
        segments=tuple(seg_reports),
        steps=steps,
        notes=quantized.notes + silent,
        boundaries=quantized.boundaries,
        synthesised=tuple(synthesised),
        gain=gain,
        clip=clip,
        snaps=quantized.snaps,
        frequency_steps=quantized.frequency_steps,
        fast_math=fast_math,
    )
    return CompiledSequenceProgram(
        sample_rate_hz=quantized.sample_rate_hz,
        n_channels=quantized.n_channels,
        segments=tuple(by_slot[i] for i in range(len(by_slot))),
        steps=steps,
        start_step=0,
        hardware_channels=quantized.hardware_channels,
        card=quantized.card,
        report=report,
        quantized=quantized,
        marker_lines=quantized.marker_lines,
    )
