"""Pass limits of the checks, defaulting from the scope's resolution.

An 8-bit scope (``adc_bits`` <= 8) resolves a phase step at a boundary to a few hundredths of a
degree over microsecond windows (``python -m hil.resolution`` measures it): its defaults are a
0.5 deg phase-jump limit, 0.2 deg for the mean step per wrap and -60 dBc for wrap spurs. A
10/12-bit scope sees about 4x better and gets 0.2 deg, 0.1 deg and -70 dBc. The phase-step-per-wrap
limit applies to the *mean* step over all wraps in the record (each wrap measured by a joint fit),
whose resolution is about sqrt(wraps) better than one wrap's. Limits never follow the measurement:
a check that cannot resolve its limit is inconclusive (see :class:`Limits`). Every limit can be set
per rig (``[limits]`` in rig.toml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import RigConfigError


@dataclass(frozen=True)
class Limits:
    """Pass limits (units in the names). Limits never move with the capture: a check is
    *inconclusive* (and fails the run) when it cannot resolve its limit. ``sigmas``: a check is
    conclusive only when its limit is at least this many of its *nominal* sigmas (its sigma at
    the rig's nominal noise, see :mod:`hil.analysis.budget`); ``noise_budget``: the record's
    fit residual may be at most this many times the rig's nominal noise (more: an unexplained
    line, interference, a degraded scope); ``spur_margin_db``: a spur limit must sit this far
    above the record's noise floor (the strongest of the ~100 noise peaks the detector looks at
    sits ~10 dB above the median floor). ``frequency_ppm``: tolerance of a fitted frequency
    (the scope's plus the AWG's clock error, or ~1 ppm with a shared reference);
    ``frequency_step_ppm`` / ``amplitude_step_db``: tolerances of a tone's frequency and
    amplitude change at a boundary against the programmed change (clock and signal path cancel)."""

    phase_jump_deg: float = 0.5
    wrap_step_deg: float = 0.2
    wrap_spur_dbc: float = -60.0
    amplitude_db: float = 0.5
    frequency_ppm: float = 45.0
    scope_timebase_ppm: float = 25.0
    chirp_rate_extra_ppm: float = 100.0
    phase_residual_deg: float = 1.0
    glitch_deg: float = 1.0
    amplitude_step_db: float = 0.3
    frequency_step_ppm: float = 15.0
    sigmas: float = 5.0
    noise_budget: float = 1.5
    spur_margin_db: float = 15.0
    #: Skew between the AWG channels at a common boundary; 0: half a card sample or two scope
    #: samples, whichever is larger (what the rig can resolve).
    skew_ns: float = 0.0
    #: Largest level of one channel's tones on the other's output.
    crosstalk_dbc: float = -50.0
    #: How far the output delay fitted on a record may lie from the rig file's ``output_delay_s``
    #: (the checks use the fitted one; beyond this the rig file is out of date: re-enter it).
    output_delay_ns: float = 20.0

    @property
    def chirp_rate_ppm(self) -> float:
        """Chirp-rate tolerance: twice the clock budget plus ``chirp_rate_extra_ppm``."""
        return 2 * self.frequency_ppm + self.chirp_rate_extra_ppm

    @classmethod
    def for_scope(cls, adc_bits: int, *, scope_ppm: float, awg_ppm: float, shared_reference: bool, reference_ppm: float | None = None) -> Limits:
        """Defaults for a scope with ``adc_bits`` and the clock budget of the rig (``reference_ppm``:
        the accuracy of a reference tone the scope records, None: none)."""
        if shared_reference:
            ppm = 1.0
        elif reference_ppm is not None:
            ppm = awg_ppm + reference_ppm
        else:
            ppm = scope_ppm + awg_ppm
        clocks = {"frequency_ppm": ppm, "scope_timebase_ppm": scope_ppm + (reference_ppm or 0.0)}
        if adc_bits <= 8:
            return cls(**clocks)
        return cls(phase_jump_deg=0.2, wrap_step_deg=0.1, wrap_spur_dbc=-70.0, **clocks)

    def with_overrides(self, overrides: dict[str, Any]) -> Limits:
        """These limits with some replaced (names as the fields; unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise RigConfigError(f"unknown limits {unknown} (known: {sorted(known)})", value=unknown)
        for k, v in overrides.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise RigConfigError(f"limits.{k} = {v!r}: a limit must be a finite number above zero (an infinite one passes every fault)", value=v)
        return replace(self, **{k: float(v) for k, v in overrides.items()})
