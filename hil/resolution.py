"""Measure the resolution of a rig the way the checks use it, against the Cramer-Rao bound.

``python -m hil.resolution [--rig sim|rig.toml] [--trials 20]`` plays, through the whole chain
(card, scope, driver, analysis):

- a boundary that is continuous by construction (100 MHz at 0.4 of full scale, filling 80 % of
  the scope's range) ``--trials`` times, and reads the phase step with the checks' own windows
  (the whole piece on each side, less 20 ns guards) and with 1 us windows. Each figure is the
  scatter of the readings, the mean sigma the fit reports, and the Cramer-Rao bound for the same
  windows at the record's noise: sigma_step = 4 n / (A sqrt(N)) with the time scale fitted
  (N samples per side, A the tone's amplitude, n the noise rms: var = 8 / (N SNR), SNR =
  A^2 / 2 n^2), and 2 n / (A sqrt(N)) with the time scale known, as with a shared reference
  clock (``[clock] shared_reference``: the fits then fix it). The same is measured with the rig
  locked to a shared reference;
- a snapped single-tone loop of 4096 samples played 32 times, and reports the wrap-spur noise
  floor and the worst spur (dBc) as the spur detector sees them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from awgrt import AWGProgramBuilder

from .analysis import wrap_spurs
from .analysis.phase import _boundary_sample, boundary_step
from .rig import RigConfig, open_rig
from .runner import run_program
from .suite import CHANNEL, SuiteProgram

#: The short window per side of the second phase-step figure (s).
WINDOW_S = 1e-6


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
class PhaseResolution:
    """Phase-step figures (deg) for one choice of windows: scatter, mean reported sigma, bound."""

    windows: str
    scatter_deg: float
    sigma_deg: float
    bound_deg: float
    mean_deg: float

    @property
    def ratio(self) -> float:
        """Scatter over the bound: 1 is the best any estimator can do."""
        return self.scatter_deg / self.bound_deg


@dataclass(frozen=True)
class Resolution:
    """The phase-step figures per window choice and clocking, the spur floor and worst spur (dBc)."""

    phase: tuple[PhaseResolution, ...]
    trials: int
    spur_floor_dbc: float
    worst_spur_dbc: float
    enob: float | None


def _phase_figures(rig_spec, trials: int, window_s: float | None, label: str) -> PhaseResolution:
    boundary = SuiteProgram("resolution_boundary", continuous_boundary, (), record_s=5.6e-6)
    steps, sigmas, bounds = [], [], []
    with open_rig(rig_spec) as rig:
        fixed = rig.config.shared_reference
        for _ in range(trials):
            _, obs = run_program(rig, boundary)
            b = boundary_step(obs, _boundary_sample(obs, "a", "b", 0), window_s=window_s)
            steps.append(b.steps_deg[0])
            sigmas.append(b.sigmas_deg[0])
            t_l, y_l = b.sides[0]
            paths, _, _ = obs.timeline.tones_at(obs.channel, b.sample)
            amp = paths[0].span.a0 * obs.full_scale_v * obs.path.magnitude(paths[0].span.f0_hz)
            n_side = min(t_l.size, b.sides[1][0].size)
            bounds.append(math.degrees((2 if fixed else 4) * b.residual_v / (amp * math.sqrt(n_side))))
    return PhaseResolution(label, float(np.std(steps, ddof=1)), float(np.mean(sigmas)), float(np.mean(bounds)), float(np.mean(steps)))


def measure(rig_spec: str | RigConfig = "sim", trials: int = 20) -> Resolution:
    """Measure the figures on ``rig_spec`` (see module doc)."""
    config = rig_spec if isinstance(rig_spec, RigConfig) else None
    if config is None:
        with open_rig(rig_spec) as rig:
            config = rig.config
    locked = dataclasses.replace(config, shared_reference=True, limits=None)
    phase = (
        _phase_figures(config, trials, None, "whole pieces, scale fitted"),
        _phase_figures(config, trials, WINDOW_S, "1 us windows, scale fitted"),
        _phase_figures(locked, trials, None, "whole pieces, shared reference"),
    )
    loop = SuiteProgram("resolution_loop", long_loop, (), record_s=215e-6)
    with open_rig(config) as rig:
        _, obs = run_program(rig, loop)
        spur = wrap_spurs(obs, "loop", rig.config.limits)
        enob = rig.config.scope_enob
    return Resolution(phase, trials, spur.detail["floor_dbc"], spur.measured, enob)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.resolution", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rig", default="sim", help="'sim' or a rig file (default %(default)s)")
    parser.add_argument("--trials", type=int, default=20, help="continuous boundaries to measure (default %(default)s)")
    args = parser.parse_args(argv)
    res = measure(args.rig, args.trials)
    enob = f", ENOB {res.enob:.2f}" if res.enob is not None else ""
    print(f"rig {args.rig}{enob}; phase step at a continuous boundary (100 MHz, 0.4 FS), {res.trials} trials")
    print(f"  {'windows':<32} {'scatter':>9} {'sigma':>9} {'bound':>9} {'scatter/bound':>14} {'mean':>9}")
    for p in res.phase:
        print(f"  {p.windows:<32} {p.scatter_deg:9.4f} {p.sigma_deg:9.4f} {p.bound_deg:9.4f} {p.ratio:14.2f} {p.mean_deg:+9.4f}  deg")
    print(f"wrap spurs, 4096-sample loop x 32: floor {res.spur_floor_dbc:.1f} dBc, worst line {res.worst_spur_dbc:.1f} dBc")
    return 0 if all(math.isfinite(p.scatter_deg) for p in res.phase) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
