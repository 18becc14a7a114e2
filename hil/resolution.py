"""Measure the resolution of a rig's scope the way the checks use it.

``python -m hil.resolution [--rig sim|rig.toml] [--trials 20]`` plays, through the whole chain
(card, scope, driver, analysis):

- a boundary that is continuous by construction (100 MHz at 0.4 of full scale, filling 80 % of
  the scope's range) ``--trials`` times, and reports the phase-step sigma for 1 us windows per
  side with 20 ns guards: the scatter of the readings and the mean sigma from the Jacobian;
- a snapped single-tone loop of 4096 samples played 32 times, and reports the wrap-spur noise
  floor and the worst spur (dBc) as the spur detector sees them.

These are the figures measurement.md gives for its prototype scope model.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from awgrt import AWGProgramBuilder

from .analysis import phase_jump, wrap_spurs
from .rig import open_rig
from .runner import run_program
from .suite import CHANNEL, SuiteProgram

#: Window per side and guard of the phase-step resolution figure (s).
WINDOW_S, GUARD_S = 1e-6, 20e-9


def continuous_boundary(fs: float) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel(CHANNEL)
        .define("t", logical_channel=CHANNEL, freqs=[100e6], amps=[0.4], phases=[0.0])
        .segment("a")
        .tones(CHANNEL)
        .use_def("t")
        .hold(time=2.4e-6)
        .segment("b")
        .hold(time=2.4e-6)
        .last_step("end")
    )


def long_loop(fs: float) -> AWGProgramBuilder:
    k = 655  # cycles per 4096-sample pass: 99.95 MHz at 625 MS/s, no snapping needed
    return (
        AWGProgramBuilder()
        .logical_channel(CHANNEL)
        .define("t", logical_channel=CHANNEL, freqs=[k * fs / 4096], amps=[0.4], phases=[0.0])
        .segment("lead")
        .tones(CHANNEL)
        .use_def("t")
        .hold(time=1.6e-6)
        .segment("loop", mode="loop_n", loops=32)
        .hold(time=4096 / fs)
        .segment("tail")
        .hold(time=1.6e-6)
        .last_step("end")
    )


@dataclass(frozen=True)
class Resolution:
    """Phase-step sigma (deg, scatter and Jacobian), mean step (deg), spur floor and worst spur (dBc)."""

    phase_sigma_scatter_deg: float
    phase_sigma_jacobian_deg: float
    phase_mean_deg: float
    trials: int
    spur_floor_dbc: float
    worst_spur_dbc: float
    enob: float | None


def measure(rig_spec: str = "sim", trials: int = 20) -> Resolution:
    """Measure the figures on ``rig_spec`` (see module doc)."""
    boundary = SuiteProgram("resolution_boundary", continuous_boundary, (), record_s=5.6e-6)
    loop = SuiteProgram("resolution_loop", long_loop, (), record_s=215e-6)
    steps, sigmas = [], []
    with open_rig(rig_spec) as rig:
        for _ in range(trials):
            _, obs = run_program(rig, boundary)
            r = phase_jump(obs, "a", "b", rig.config.limits, window_s=WINDOW_S)
            steps.append(r.measured)
            sigmas.append(r.sigma)
        _, obs = run_program(rig, loop)
        spur = wrap_spurs(obs, "loop", rig.config.limits)
        enob = rig.config.sim_scope.enob if rig.config.simulated else None
    return Resolution(float(np.std(steps, ddof=1)), float(np.mean(sigmas)), float(np.mean(steps)), trials, spur.detail["floor_dbc"], spur.measured, enob)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.resolution", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rig", default="sim", help="'sim' or a rig file (default %(default)s)")
    parser.add_argument("--trials", type=int, default=20, help="continuous boundaries to measure (default %(default)s)")
    args = parser.parse_args(argv)
    res = measure(args.rig, args.trials)
    enob = f", ENOB {res.enob:.2f}" if res.enob is not None else ""
    print(f"rig {args.rig}{enob}")
    print(
        f"phase step at a continuous boundary, 1 us per side, 20 ns guard, {res.trials} trials: "
        f"mean {res.phase_mean_deg:+.3f} deg, sigma {res.phase_sigma_scatter_deg:.3f} deg (scatter), "
        f"{res.phase_sigma_jacobian_deg:.3f} deg (Jacobian)"
    )
    print(f"wrap spurs, 4096-sample loop x 32: floor {res.spur_floor_dbc:.1f} dBc, worst line {res.worst_spur_dbc:.1f} dBc")
    return 0 if math.isfinite(res.phase_sigma_scatter_deg) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
