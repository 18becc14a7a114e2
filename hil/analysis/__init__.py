"""The checks: each takes an :class:`Observation` (a capture plus what was programmed) and
returns :class:`CheckResult` s (measured, sigma, limit, unit, verdict)."""

from .observation import ClockReference, Observation
from .pair import crosstalk, skew
from .phase import boundary_checks, boundary_step, phase_jump, wrap_step
from .record import boundaries_in_record, glitch_scan
from .result import CheckResult
from .sinefit import JointFit, Side, joint_fit
from .spectrum import wrap_spurs
from .timing import RecordTiming, delay_check, fit_record_timing, timed
from .tone import reference_check, tone_checks
from .trajectory import ddc_phase, trajectory_checks

__all__ = [
    "CheckResult",
    "ClockReference",
    "RecordTiming",
    "JointFit",
    "Observation",
    "Side",
    "boundaries_in_record",
    "boundary_checks",
    "boundary_step",
    "crosstalk",
    "ddc_phase",
    "delay_check",
    "fit_record_timing",
    "glitch_scan",
    "joint_fit",
    "phase_jump",
    "reference_check",
    "skew",
    "timed",
    "tone_checks",
    "trajectory_checks",
    "wrap_spurs",
    "wrap_step",
]
