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
  locked to a shared reference. For the whole pieces the amplitude step (bound 2 n / (A sqrt N)
  in relative amplitude, shown in dB) and the frequency step between holds (each side's own
  scale: bound sqrt(2) sqrt(12) n / (2 pi A N^1.5 dt f), in ppm) are given too;
- a snapped single-tone loop of 4096 samples played 32 times, and reports the wrap-spur noise
  floor and the worst spur (dBc) as the spur detector sees them;
- the suite's own checks, each program played ``--trials`` times (``hold_move_hold``: tone
  frequency and amplitude on a hold, chirp rate of the move, the scope's timebase on the
  reference tone where the rig has one; ``loop_n_hold``: the phase step per wrap), each reading's
  scatter against the Cramer-Rao bound of the same samples at the record's noise n (white):
  a time scale shared by tones (A_i, f_i) over N samples dt apart, 1 / sqrt(sum A_i^2 (2 pi f_i)^2
  S / (2 n^2)) with S = N (N^2 - 1) dt^2 / 12 (the frequency check, and the reference tone's over
  the whole record); an amplitude, sqrt(2 / N) n / A; a sweep scale q in phi = p0 + p1 t +
  (1 + q) psi(t), n / (A sqrt(sum psi_perp^2 / 2)) with psi_perp the programmed phase less its
  best line; the mean wrap step over K wraps fitted on N samples a side, 4 n / (A sqrt(N K)).
  Where the scope's timebase is taken out (a reference tone), its bound is added in quadrature.
  The glitch scan, phase residual and spur checks are not estimators of one parameter and have
  no such bound; their resolution is their nominal sigma in the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from awgrt import AWGProgramBuilder

from .analysis import CheckResult, Observation, wrap_spurs
from .analysis.phase import GUARD_S, boundary_sample, boundary_step
from .analysis.phase import WINDOW_S as WRAP_WINDOW_S
from .rig import RigConfig, open_rig
from .runner import run_program
from .suite import CHANNEL, SuiteProgram, program_named

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
    """One check's step figures for one choice of windows: scatter, mean reported sigma, bound
    and mean reading (in ``unit``; the phase step's in deg, hence the names)."""

    windows: str
    scatter_deg: float
    sigma_deg: float
    bound_deg: float
    mean_deg: float
    check: str = "phase"
    unit: str = "deg"

    @property
    def ratio(self) -> float:
        """Scatter over the bound: 1 is the best any estimator can do."""
        return self.scatter_deg / self.bound_deg


@dataclass(frozen=True)
class Resolution:
    """The phase-step figures per window choice and clocking, the spur floor and worst spur (dBc)."""

    phase: tuple[PhaseResolution, ...]
    steps: tuple[PhaseResolution, ...]
    trials: int
    spur_floor_dbc: float
    worst_spur_dbc: float
    enob: float | None
    checks: tuple[PhaseResolution, ...] = ()


#: The suite programs whose checks the per-check figures read.
CHECK_PROGRAMS = ("hold_move_hold", "loop_n_hold")


def scale_bound(noise_v: float, tones: list[tuple[float, float]], n: int, dt_s: float) -> float:
    """Cramer-Rao bound of a time scale shared by ``tones`` (amplitude V, frequency Hz) over ``n``
    samples ``dt_s`` apart in white noise of ``noise_v`` rms (relative: 1e-6 is 1 ppm)."""
    s_tt = n * (n * n - 1) / 12 * dt_s * dt_s
    info = sum(a * a * (2 * math.pi * f) ** 2 for a, f in tones) * s_tt / (2 * noise_v * noise_v)
    return 1.0 / math.sqrt(info)


def _check_bound(r: CheckResult, obs: Observation, config: RigConfig, scope_ppm: float) -> float | None:
    """The Cramer-Rao bound of check ``r`` on ``obs`` (its unit; see module doc), None: none."""
    noise, dt, fs = r.detail.get("residual_v"), obs.capture.x_increment_s, obs.awg_rate_hz
    if noise is None or r.check not in ("frequency", "amplitude", "chirp_rate", "wrap_step"):
        return None
    e = obs.timeline.entries_of(r.where.split()[0])[0]
    volts = obs.full_scale_v

    def amplitude(span, f):
        return max(span.a0, span.a1) * volts * obs.path.magnitude(f)

    if r.check == "chirp_rate":
        path = next(p for p in obs.timeline.tones_at(obs.channel, e.sample)[0] if max(p.span.a0, p.span.a1) > 0)
        tau = np.asarray(r.plot["t"])
        t = np.arange(tau[0], tau[-1], dt)
        psi = 2 * np.pi * path.phase_cycles(obs.trigger_sample + (t - obs.delay_s) * fs)
        line = np.column_stack([np.ones_like(t), t - t.mean()])
        perp = psi - line @ np.linalg.lstsq(line, psi, rcond=None)[0]
        q = noise / (amplitude(path.span, 0.5 * (path.span.f0_hz + path.span.f1_hz)) * math.sqrt(float(perp @ perp) / 2))
        return 100 * math.hypot(q, 2 * scope_ppm * 1e-6)
    if r.check == "wrap_step":
        path = next(p for p in obs.timeline.tones_at(obs.channel, e.sample)[0] if p.span.a0 > 0)
        w = min(e.n_samples / fs / 2 - 2 * GUARD_S, WRAP_WINDOW_S)
        n = round(w / dt)
        return math.degrees(4 * noise / (amplitude(path.span, path.span.f0_hz) * math.sqrt(n * r.detail["wraps_fitted"])))
    paths = [p for p in obs.timeline.tones_at(obs.channel, e.sample + e.n_samples // 2)[0] if p.span.constant and p.span.a0 > 0]
    n = round(r.detail["window_s"] / dt)
    if r.check == "frequency":
        return math.hypot(scale_bound(noise, [(amplitude(p.span, p.span.f0_hz), p.span.f0_hz) for p in paths], n, dt) * 1e6, scope_ppm)
    return 20 / math.log(10) * math.sqrt(2 / n) * noise / r.detail["expected_v"]


def _check_figures(rig_spec: str | RigConfig, trials: int) -> list[PhaseResolution]:
    """Scatter, mean sigma, bound and mean of the suite's checks on the first channel (module doc)."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    units: dict[str, str] = {}
    with open_rig(rig_spec) as rig:
        config = rig.config
        for name in CHECK_PROGRAMS:
            prog = program_named(name)
            for _ in range(trials):
                results, obs = run_program(rig, prog)
                scope_ppm = 0.0
                for r in results:
                    if r.check == "scope_timebase" and "residual_v" in r.detail and config.reference is not None:
                        n = round(r.detail["record_s"] / obs.capture.x_increment_s) + 1
                        tone = [(config.reference.amplitude_v, r.detail["reference_hz"])]
                        scope_ppm = scale_bound(r.detail["residual_v"], tone, n, obs.capture.x_increment_s) * 1e6
                        rows.setdefault(r.check, []).append((r.measured, r.sigma, scope_ppm))
                        units[r.check] = r.unit
                for r in results:
                    if not r.where.endswith(f" {obs.channel}"):
                        continue
                    bound = _check_bound(r, obs, config, scope_ppm)
                    if bound is not None:
                        rows.setdefault(r.check, []).append((r.measured, r.sigma, bound))
                        units[r.check] = r.unit
    return [_summary(f"suite {check}", check, units[check], values) for check, values in rows.items()]


def _summary(windows: str, check: str, unit: str, readings: list[tuple[float, float, float]]) -> PhaseResolution:
    """One row of the table from (reading, reported sigma, bound) per trial."""
    v, sg, bd = (np.array(x) for x in zip(*readings))
    return PhaseResolution(windows, float(np.std(v, ddof=1)), float(np.mean(sg)), float(np.mean(bd)), float(np.mean(v)), check, unit)


def _figures(rig_spec, trials: int, window_s: float | None, label: str, steps_too: bool = False) -> list[PhaseResolution]:
    """The phase-step figure (and, with ``steps_too``, the amplitude- and frequency-step ones) of
    ``trials`` continuous boundaries."""
    boundary = SuiteProgram("resolution_boundary", continuous_boundary, (), record_s=5.6e-6)
    rows: dict[str, list[tuple[float, float, float]]] = {"phase": [], "amplitude": [], "frequency": []}
    with open_rig(rig_spec) as rig:
        fixed = rig.config.shared_reference
        for _ in range(trials):
            _, obs = run_program(rig, boundary)
            b = boundary_step(obs, boundary_sample(obs, "a", "b", 0), window_s=window_s, each_side=steps_too)
            paths, _, _ = obs.timeline.tones_at(obs.channel, b.sample)
            amp = paths[0].span.a0 * obs.full_scale_v * obs.path.magnitude(paths[0].span.f0_hz)
            n_side = min(b.sides[0][0].size, b.sides[1][0].size)
            noise = b.residual_v
            rows["phase"].append((b.steps_deg[0], b.sigmas_deg[0], math.degrees((2 if fixed else 4) * noise / (amp * math.sqrt(n_side)))))
            if steps_too:
                rows["amplitude"].append((b.amp_steps_db[0], b.amp_sigmas_db[0], 20 / math.log(10) * 2 * noise / (amp * math.sqrt(n_side))))
                (sl, el), (sr, er) = b.scales
                dt = obs.capture.x_increment_s
                sigma_rel = math.sqrt(12) * noise / (2 * math.pi * amp * n_side**1.5 * dt * paths[0].span.f0_hz)
                rows["frequency"].append(((sr - sl) * 1e6, math.hypot(el, er) * 1e6, math.sqrt(2) * sigma_rel * 1e6))
    return [_summary(label, check, unit, rows[check]) for check, unit in (("phase", "deg"), ("amplitude", "dB"), ("frequency", "ppm")) if rows[check]]


def measure(rig_spec: str | RigConfig = "sim", trials: int = 20) -> Resolution:
    """Measure the figures on ``rig_spec`` (see module doc)."""
    config = rig_spec if isinstance(rig_spec, RigConfig) else None
    if config is None:
        with open_rig(rig_spec) as rig:
            config = rig.config
    locked = dataclasses.replace(config, shared_reference=True, reference=None, limits=None)
    whole = _figures(config, trials, None, "whole pieces, scale fitted", steps_too=True)
    phase = (whole[0], *_figures(config, trials, WINDOW_S, "1 us windows, scale fitted"), *_figures(locked, trials, None, "whole pieces, shared reference"))
    loop = SuiteProgram("resolution_loop", long_loop, (), record_s=215e-6)
    with open_rig(config) as rig:
        _, obs = run_program(rig, loop)
        assert rig.config.limits is not None
        spur = wrap_spurs(obs, "loop", rig.config.limits)
        enob = rig.config.scope_enob
    checks = tuple(_check_figures(config, trials))
    return Resolution(phase, tuple(whole[1:]), trials, spur.detail["floor_dbc"], spur.measured, enob, checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.resolution", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rig", default="sim", help="'sim' or a rig file (default %(default)s)")
    parser.add_argument("--trials", type=int, default=20, help="continuous boundaries to measure (default %(default)s)")
    args = parser.parse_args(argv)
    res = measure(args.rig, args.trials)
    enob = f", ENOB {res.enob:.2f}" if res.enob is not None else ""
    print(f"rig {args.rig}{enob}; steps read at a continuous boundary (100 MHz, 0.4 FS), {res.trials} trials")
    print(f"  {'step':<10} {'windows':<32} {'scatter':>9} {'sigma':>9} {'bound':>9} {'scatter/bound':>14} {'mean':>9}")
    for p in res.phase + res.steps:
        print(f"  {p.check:<10} {p.windows:<32} {p.scatter_deg:9.4f} {p.sigma_deg:9.4f} {p.bound_deg:9.4f} {p.ratio:14.2f} {p.mean_deg:+9.4f}  {p.unit}")
    print(f"wrap spurs, 4096-sample loop x 32: floor {res.spur_floor_dbc:.1f} dBc, worst line {res.worst_spur_dbc:.1f} dBc")
    print(f"the suite's checks ({', '.join(CHECK_PROGRAMS)}), first channel, {res.trials} trials each")
    print(f"  {'check':<16} {'scatter':>9} {'sigma':>9} {'bound':>9} {'scatter/bound':>14} {'mean':>9}")
    for p in res.checks:
        print(f"  {p.check:<16} {p.scatter_deg:9.4g} {p.sigma_deg:9.4g} {p.bound_deg:9.4g} {p.ratio:14.2f} {p.mean_deg:+9.4g}  {p.unit}")
    return 0 if all(math.isfinite(p.scatter_deg) for p in res.phase) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
