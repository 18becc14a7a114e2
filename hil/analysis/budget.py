"""Whether a check could have seen what it looks for: clipping, the rig's nominal noise, and the
resolution its limit needs.

A least-squares fit's sigmas scale with its residual: sigma = r * g, with r the residual rms and
g fixed by the model and the windows. The same fit on a record at the rig's nominal noise n
(:attr:`~hil.analysis.observation.Observation.nominal_noise_v`) would have the *nominal sigma*
sigma_nom = sigma * n / r. Limits come from :class:`~hil.limits.Limits` and never move with the
capture; instead a check is **inconclusive** (its run fails, see
:class:`~hil.analysis.result.CheckResult`) when

- the record clipped: a sample sits at the ADC's rails, so fits and amplitudes are biased;
- the residual exceeds ``limits.noise_budget`` times the nominal noise: something the model does
  not know is in the record (a line from crosstalk or interference, distortion, a scope worse
  than its rating), and the sigma is no longer honest;
- the limit is below ``limits.sigmas`` nominal sigmas: on this rig the check cannot tell a fault
  of the limit's size from noise (lengthen the windows or segments, or set the limit per rig).
"""

from __future__ import annotations

import dataclasses

from .observation import Observation
from .result import CheckResult


def conclude(result: CheckResult, obs: Observation, residual_rms_v: float | None, sigmas: float, noise_budget: float) -> CheckResult:
    """``result`` with its nominal sigma in the detail, made inconclusive where the module doc says."""
    return judge(result, obs.clipped_samples, obs.nominal_noise_v, residual_rms_v, sigmas, noise_budget)


def judge(result: CheckResult, clipped: int, nominal: float | None, residual_rms_v: float | None, sigmas: float, noise_budget: float) -> CheckResult:
    """:func:`conclude` for any record: ``clipped`` samples at its rails, its ``nominal`` noise (V rms)."""
    reasons = []
    detail = dict(result.detail)
    if clipped:
        reasons.append(f"the record clipped ({clipped} samples at the ADC rails): set the scope range wider")
    if nominal is not None and residual_rms_v is not None and residual_rms_v > 0:
        detail["residual_v"] = residual_rms_v
        detail["nominal_noise_v"] = nominal
        sigma_nom = result.sigma * nominal / residual_rms_v
        detail["nominal_sigma"] = sigma_nom
        if residual_rms_v > noise_budget * nominal:
            reasons.append(
                f"fit residual {residual_rms_v * 1e3:.3g} mV is {residual_rms_v / nominal:.2g}x the rig's nominal noise {nominal * 1e3:.3g} mV "
                f"(budget {noise_budget:g}x): the record holds something the model does not"
            )
        if sigmas * sigma_nom > result.limit:
            reasons.append(
                f"the rig resolves this to {sigma_nom:.3g} {result.unit} (nominal sigma); a limit of {result.limit:.3g} {result.unit} needs "
                f"{result.limit / sigmas:.3g} or better: lengthen the segment or windows, or set the limit for this rig"
            )
    out = dataclasses.replace(result, detail=detail)
    for r in reasons:
        out = out.made_inconclusive(r)
    return out
