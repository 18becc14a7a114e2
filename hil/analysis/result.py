"""What every check returns: the measured value, its sigma, the limit, the unit and a verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One check of one program.

    ``check``: the kind (``phase_jump``, ``wrap_step``, ...); ``where``: what was looked at
    (boundary, segment, channel); ``passed`` is |measured| <= limit (``two_sided``) or
    measured <= limit (one-sided, e.g. a spur level in dBc), and never when the check is
    ``inconclusive`` (the reason: the record clipped, its noise is worse than the rig's nominal
    resolution, or the check cannot resolve its limit on this rig), which fails a run like a
    fault: a capture too poor to see a fault must not read as the absence of one.
    ``detail``: further numbers for the report; ``plot``: arrays for the check's figure (not
    serialised).
    """

    check: str
    program: str
    where: str
    measured: float
    sigma: float
    limit: float
    unit: str
    two_sided: bool = True
    detail: Mapping[str, Any] = field(default_factory=dict)
    plot: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    inconclusive: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))
        object.__setattr__(self, "plot", MappingProxyType(dict(self.plot)))

    @property
    def name(self) -> str:
        return f"{self.check} {self.where}"

    @property
    def verdict(self) -> str:
        """``pass``, ``fail`` or ``inconclusive``."""
        if self.inconclusive:
            return "inconclusive"
        return "pass" if self.passed else "fail"

    def made_inconclusive(self, reason: str) -> CheckResult:
        """This result marked inconclusive (reasons add up)."""
        reason = f"{self.inconclusive}; {reason}" if self.inconclusive else reason
        return dataclasses.replace(self, inconclusive=reason)

    @property
    def passed(self) -> bool:
        if self.inconclusive or not math.isfinite(self.measured):
            return False
        return abs(self.measured) <= self.limit if self.two_sided else self.measured <= self.limit

    def to_json(self) -> dict[str, Any]:
        """The report entry: name, program, measured, sigma, limit, unit, passed (+ check, where, detail)."""
        return {
            "name": self.name,
            "program": self.program,
            "measured": self.measured,
            "sigma": self.sigma,
            "limit": self.limit,
            "unit": self.unit,
            "passed": self.passed,
            "verdict": self.verdict,
            "inconclusive": self.inconclusive,
            "check": self.check,
            "where": self.where,
            "two_sided": self.two_sided,
            "detail": dict(self.detail),
        }
