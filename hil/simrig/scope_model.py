"""A model of a digital scope's acquisition: what comes out of its ADC for a given bench.

Per acquisition, for each recorded input: the trigger edge's true time plus an unknown skew
(uniform in +-``trigger_skew_s``) is t = 0; sample k is taken at true time
t_trig + skew + (x_origin + k / fs) / (1 + ppm * 1e-6) (a timebase running ``timebase_error_ppm``
fast reads frequencies that much low) plus Gaussian jitter; the signal passes the front end
(``bandwidth_hz``, ``front_end_kind`` of ``front_end_order``), a flat ``gain_error``, a static
nonlinearity giving ``hd2_dbc`` / ``hd3_dbc`` for a full-scale sine, Gaussian noise of
``noise_lsb_rms`` LSB, and an ideal ``adc_bits`` quantiser spanning the input's full-scale range.
Everything random comes from a ``numpy`` generator seeded by ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..response import Filter
from .bench import Bench


@dataclass(frozen=True)
class ScopeModel:
    """Scope parameters (units in the names; see module doc). The defaults are a good 8-bit
    2.5 GS/s, 1 GHz scope with a 20 ppm timebase error and +-2 ns trigger skew."""

    sample_rate_hz: float = 2.5e9
    max_points: int = 4_000_000
    bandwidth_hz: float = 1e9
    front_end_kind: str = "bessel"
    front_end_order: int = 4
    adc_bits: int = 8
    noise_lsb_rms: float = 1.0
    hd2_dbc: float = -50.0
    hd3_dbc: float = -48.0
    jitter_s: float = 1e-12
    timebase_error_ppm: float = 20.0
    trigger_skew_s: float = 2e-9
    gain_error: float = 0.0
    #: The fraction of the asked vertical range the scope applies (below 1: it snapped to a narrower
    #: V/div step, as scopes do); its scaling answers report the range applied.
    range_factor: float = 1.0
    seed: int = 1

    @property
    def front_end(self) -> Filter:
        return Filter(self.front_end_kind, self.bandwidth_hz, self.front_end_order)

    @property
    def enob(self) -> float:
        """Effective bits for a full-scale sine: quantisation plus input noise (distortion aside)."""
        total_lsb = math.sqrt(self.noise_lsb_rms**2 + 1.0 / 12.0)
        return self.adc_bits - math.log2(total_lsb * math.sqrt(12.0))

    def acquire(
        self,
        bench: Bench,
        channels: Mapping[str, tuple[float, float]],
        *,
        trigger_time_s: float,
        n_points: int,
        sample_rate_hz: float,
        x_origin_s: float,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        """ADC codes (int16, in -2**(bits-1) .. 2**(bits-1) - 1) per input for one acquisition.

        ``channels``: input -> (full-scale range V, centre voltage V); ``trigger_time_s``: true
        time of the trigger edge; ``x_origin_s``: time of the first sample on the scope's own
        timebase, relative to the trigger."""
        scale = 1.0 + self.timebase_error_ppm * 1e-6
        t0 = trigger_time_s + rng.uniform(-self.trigger_skew_s, self.trigger_skew_s) + x_origin_s / scale
        dt = 1.0 / (sample_rate_hz * scale)
        half = 2 ** (self.adc_bits - 1)
        a2 = 2.0 * 10.0 ** (self.hd2_dbc / 20.0)
        a3 = 4.0 * 10.0 ** (self.hd3_dbc / 20.0)
        out = {}
        for name, (range_v, centre_v) in channels.items():
            sig = bench.signal(name)
            if sig is None:
                y, dy = np.zeros(n_points), None
            else:
                y, dy = sig.render(t0, dt, n_points, self.front_end, derivative=self.jitter_s > 0)
            y = y * (1.0 + self.gain_error)
            if dy is not None:
                y += dy * (1.0 + self.gain_error) * rng.normal(0.0, self.jitter_s, n_points)
            lsb = range_v / 2**self.adc_bits
            u = (y - centre_v) / (range_v / 2)
            y = y + (range_v / 2) * (a2 * u * u + a3 * u * u * u)
            y += rng.normal(0.0, self.noise_lsb_rms * lsb, n_points)
            out[name] = np.clip(np.rint((y - centre_v) / lsb), -half, half - 1).astype(np.int16)
        return out
