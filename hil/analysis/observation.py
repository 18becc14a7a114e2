"""A capture together with what was programmed: the input every check works on."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError
from ..response import SignalPath
from ..scopes.base import Capture
from ..timeline import Timeline, TonePath


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
    fitting it.
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

    @property
    def fixed_scale(self) -> float | None:
        """The time scale the fits use when it is known (a shared reference), else None."""
        return 1.0 if self.shared_reference else None

    @property
    def nominal_noise_v(self) -> float | None:
        """The rig's nominal noise (V rms) on this input: full scale over 2^ENOB sqrt(12) (the
        noise of an ideal ENOB-bit converter; ENOB defaults to the ADC bits less 1.85)."""
        if self.adc_range_v is None:
            return None
        enob = self.enob if self.enob is not None else self.adc_bits - 1.85
        return self.adc_range_v / (2**enob * 12**0.5)

    @functools.cached_property
    def clipped_samples(self) -> int:
        """Samples of the record at or beyond the ADC's rails (within 1.5 LSB of them)."""
        v = self.capture.volts
        if self.adc_range_v is not None:
            lsb = self.adc_range_v / 2**self.adc_bits
            half = self.adc_range_v / 2 - 1.5 * lsb
            return int(np.count_nonzero(np.abs(v - self.adc_offset_v) >= half))
        codes = self.capture.codes
        info = np.iinfo(codes.dtype)
        return int(np.count_nonzero((codes <= info.min) | (codes >= info.max)))

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
