"""A capture together with what was programmed: the input every check works on."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError
from ..response import SignalPath
from ..scopes.base import Capture
from ..timeline import Timeline, TonePath


def nominal_noise(adc_range_v: float | None, adc_bits: int, enob: float | None) -> float | None:
    """A scope input's nominal noise (V rms): full scale over 2^ENOB sqrt(12) (the noise of an
    ideal ENOB-bit converter; ENOB defaults to the ADC bits less 1.85); None: range unknown."""
    if adc_range_v is None:
        return None
    bits = enob if enob is not None else adc_bits - 1.85
    return adc_range_v / (2**bits * 12**0.5)


def clipped(capture: Capture, adc_range_v: float | None, adc_offset_v: float, adc_bits: int) -> int:
    """Samples of ``capture`` at or beyond the ADC's rails (within 1.5 LSB of them); with the
    range unknown, those at the extreme codes of the record's type. The rails are those of the
    narrower of the range asked and the range the record's own scaling reports (its volts per code
    times the codes its type holds): a scope that snapped to a narrower range than asked clips
    at its own rails."""
    if adc_range_v is not None:
        reported = capture.y_increment_v * 2 ** (8 * capture.codes.dtype.itemsize)
        adc_range_v = min(adc_range_v, reported)
        lsb = adc_range_v / 2**adc_bits
        half = adc_range_v / 2 - 1.5 * lsb
        return int(np.count_nonzero(np.abs(capture.volts - adc_offset_v) >= half))
    codes = capture.codes
    info = np.iinfo(codes.dtype)
    return int(np.count_nonzero((codes <= info.min) | (codes >= info.max)))


@dataclass(frozen=True)
class ClockReference:
    """The scope's timebase measured on a reference tone (:func:`hil.analysis.tone.reference_check`):
    ``scale`` = reference time per scope time (1 / (1 + the scope's timebase error), to the
    reference's accuracy ``ppm``), its ``sigma``, the scope ``input`` and the tone's ``hz``."""

    scale: float
    sigma: float
    input: str
    hz: float
    ppm: float

    @property
    def scope_error_ppm(self) -> float:
        """How fast the scope's timebase runs (ppm): it reads frequencies this much low."""
        return (1.0 / self.scale - 1.0) * 1e6

    def card_error_ppm(self, scale: float, sigma: float) -> tuple[float, float]:
        """A fitted AWG-time-per-scope-time ``scale`` (+- ``sigma``) as the card's own clock error
        (ppm, +- sigma): the scope's timebase taken out."""
        ratio = scale / self.scale
        return (ratio - 1.0) * 1e6, ratio * float(np.hypot(sigma / scale, self.sigma / self.scale)) * 1e6


@dataclass(frozen=True)
class Observation:
    """One AWG channel seen by the scope.

    ``capture``: the scope record (t = 0 at the trigger edge); ``timeline``: the program as
    played; ``channel``: the logical AWG channel; ``trigger_sample``: the card sample of the
    trigger edge the scope triggered on; ``delay_s``: output delay from a card sample to the
    scope input (calibrated or nominal; the checks tolerate a few ns); ``full_scale_v``: output
    volts at code 32767 (the card's amplitude); ``path``: the analog response, for expected
    amplitudes; ``adc_range_v`` / ``adc_offset_v``: the scope input's full-scale range (peak to
    peak) and centre, ``adc_bits`` and ``enob`` its resolution (None: unknown; then the record
    cannot be judged against the rig's nominal noise and only clipping at the extreme codes of
    the record is looked for); ``shared_reference``: card and scope share a 10 MHz reference, so
    AWG time and scope time run at one rate and the fits take the time scale as 1 instead of
    fitting it; ``reference``: the scope's timebase as measured on a reference tone in the same
    acquisition (no shared reference), which tells the card's clock error from the scope's;
    ``record_scale``: see below (:func:`~hil.analysis.timing.timed` sets it and the fitted delay).
    """

    capture: Capture = field(repr=False)
    timeline: Timeline = field(repr=False)
    channel: str
    program: str
    trigger_sample: int
    full_scale_v: float
    path: SignalPath
    delay_s: float = 0.0
    adc_range_v: float | None = None
    adc_offset_v: float = 0.0
    adc_bits: int = 8
    enob: float | None = None
    shared_reference: bool = False
    reference: ClockReference | None = None
    #: The record's time scale (AWG time per scope time) and its sigma, fitted once over the
    #: whole record (:func:`~hil.analysis.timing.fit_record_timing`); None: each fit finds its own.
    record_scale: tuple[float, float] | None = None

    @property
    def fixed_scale(self) -> float | None:
        """The time scale the fits use when it is known (a shared reference: 1; the record's own,
        fitted once), else None."""
        if self.shared_reference:
            return 1.0
        return self.record_scale[0] if self.record_scale is not None else None

    @property
    def fixed_scale_sigma(self) -> float:
        """The sigma of :attr:`fixed_scale` (0 with a shared reference or none fixed)."""
        return self.record_scale[1] if self.record_scale is not None and not self.shared_reference else 0.0

    @property
    def nominal_noise_v(self) -> float | None:
        """The rig's nominal noise (V rms) on this input (:func:`nominal_noise`)."""
        return nominal_noise(self.adc_range_v, self.adc_bits, self.enob)

    @functools.cached_property
    def clipped_samples(self) -> int:
        """Samples of the record at or beyond the ADC's rails (:func:`clipped`)."""
        return clipped(self.capture, self.adc_range_v, self.adc_offset_v, self.adc_bits)

    @property
    def awg_rate_hz(self) -> float:
        return self.timeline.sample_rate_hz

    def scope_time(self, sample: float) -> float:
        """Scope time (s) at which card ``sample`` appears (nominal clocks)."""
        return (sample - self.trigger_sample) / self.awg_rate_hz + self.delay_s

    def window(self, t0_s: float, t1_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Scope times and volts of the samples in [t0_s, t1_s)."""
        c = self.capture
        i0, i1 = c.index_at(t0_s), c.index_at(t1_s)
        if i1 <= i0:
            raise AnalysisError(f"{self.program}: window {t0_s * 1e6:.3f}..{t1_s * 1e6:.3f} us lies outside the record")
        return c.x_origin_s + np.arange(i0, i1) * c.x_increment_s, c.volts[i0:i1]

    def covers(self, t0_s: float, t1_s: float) -> bool:
        c = self.capture
        return c.time_s[0] <= t0_s and t1_s <= c.time_s[-1]

    def phase_fn(self, path: TonePath, ref_sample: float):
        """Programmed phase (rad) of ``path`` as a function of AWG time (s) after card sample ``ref_sample``."""
        fs = self.awg_rate_hz
        return lambda t: 2 * np.pi * path.phase_cycles(ref_sample + t * fs)

    def envelope_fn(self, path: TonePath, ref_sample: float):
        """Programmed amplitude of ``path`` relative to its largest, as a function of AWG time (s)
        after card sample ``ref_sample``; None when the amplitude is constant."""
        if path.span.a0 == path.span.a1:
            return None
        fs = self.awg_rate_hz
        top = max(path.span.a0, path.span.a1)
        return lambda t: path.amplitude(ref_sample + t * fs) / top

    def side(self, t: np.ndarray, y: np.ndarray, paths: list[TonePath], ref_sample: float, t_ref: float):
        """A joint-fit side: samples at scope times ``t`` (made relative to ``t_ref``, the scope
        time of card sample ``ref_sample``) modelled with the programmed ``paths``."""
        from .sinefit import Side

        return Side(t - t_ref, y, [self.phase_fn(p, ref_sample) for p in paths], [self.envelope_fn(p, ref_sample) for p in paths])
