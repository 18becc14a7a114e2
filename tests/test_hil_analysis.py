"""The checks on synthetic captures whose answers are known by construction.

Each capture is written here from a formula of the card sample n(t) = trigger + t * fs (the
first sample of replay comes 249 samples after the trigger at 625 MS/s, as the README states),
with a tone whose phase is computed here, not by the harness, plus a known fault: a phase step,
a fractional cycle per wrap, an amplitude error, a chirp-rate error, a glitch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.sim import simulate
from hil.analysis import Observation, Side, joint_fit, phase_jump, tone_checks, trajectory_checks, wrap_spurs, wrap_step
from hil.errors import AnalysisError
from hil.limits import Limits
from hil.response import Filter, SignalPath
from hil.scopes import Capture
from hil.timeline import Timeline, step_entries

FS = 625e6
SCOPE_FS = 2.5e9
LATENCY = 249  # samples from trigger to the first replayed sample at 625 MS/s (README)
TRIGGER = 1000
FIRST = TRIGGER + LATENCY
F = 100e6
A = 0.4
LSB = 1.0 / 256
LIMITS = Limits()


def compiled(builder: AWGProgramBuilder):
    q = quantize_resolved_ir(builder.build_resolved_ir(sample_rate_hz=FS), {"H": 0})
    return q, compile_sequence_program(q, progress=False)


def observe(builder, signal, *, duration_s: float, triggers=(TRIGGER,), ppm: float = 0.0, noise_lsb: float = 1.0, seed: int = 0, path=None) -> Observation:
    """A capture of ``signal(n)`` (volts at real-valued card sample n) by an 8-bit scope whose
    timebase runs ``ppm`` fast, with Gaussian noise, and the observation of it."""
    q, prog = compiled(builder)
    rng = np.random.default_rng(seed)
    tau = -0.1e-6 + np.arange(int((duration_s + 0.1e-6) * SCOPE_FS)) / SCOPE_FS
    n = TRIGGER + tau / (1 + ppm * 1e-6) * FS
    y = signal(n) + rng.normal(0, noise_lsb * LSB, n.size)
    cap = Capture("CH1", np.clip(np.rint(y / LSB), -128, 127).astype(np.int16), 1 / SCOPE_FS, tau[0], LSB, 0.0)
    timeline = Timeline.of(q, prog, triggers, TRIGGER + int(duration_s * FS) + 2 * LATENCY)
    return Observation(cap, timeline, "H", "synthetic", TRIGGER, 1.0, path or SignalPath(FS), 0.0)


def hold_hold(freq: float = F):
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("t", logical_channel="H", freqs=[freq], amps=[A], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("t")
        .hold(time=3.2e-6)
        .segment("b")
        .hold(time=3.2e-6)
        .last_step("end")
    )


def sigma_theory_deg(window_s: float, amplitude: float, noise_v: float) -> float:
    """The Cramer-Rao bound of a phase step between two windows of N samples with the frequency
    fitted: var(step) = 8 / (N SNR), SNR = A^2 / (2 n^2)."""
    n = window_s * SCOPE_FS
    snr = amplitude**2 / (2 * noise_v**2)
    return math.degrees(math.sqrt(8 / (n * snr)))


@pytest.mark.parametrize("step_deg", [0.0, 1.5, -3.0])
def test_phase_jump_reads_a_known_step(step_deg: float) -> None:
    n_b = FIRST + round(3.2e-6 * FS)

    def signal(n):
        return A * np.sin(2 * np.pi * F * (n - FIRST) / FS + np.where(n >= n_b, math.radians(step_deg), 0.0))

    obs = observe(hold_hold(), signal, duration_s=7e-6)
    r = phase_jump(obs, "a", "b", LIMITS)
    assert abs(r.measured - step_deg) <= 4 * r.sigma
    noise = math.sqrt(1 + 1 / 12) * LSB  # Gaussian noise plus quantisation
    assert 2.5e-6 < r.detail["window_s"] <= 3.2e-6  # the whole piece on each side, less the guards
    assert 0.7 < r.sigma / sigma_theory_deg(r.detail["window_s"], A, noise) < 1.5
    assert r.unit == "deg" and r.limit == 0.5  # fixed: it does not grow with the measurement's sigma
    assert r.passed == (abs(step_deg) <= 0.5) and not r.inconclusive


def test_joint_fit_sigma_matches_the_scatter() -> None:
    rng = np.random.default_rng(3)
    f, step = 80e6, math.radians(2.0)
    t_left = -1.02e-6 + np.arange(1000) / SCOPE_FS
    t_right = 0.02e-6 + np.arange(1000) / SCOPE_FS
    reads, sigmas = [], []
    for _ in range(40):
        yl = 0.3 * np.cos(2 * np.pi * f * t_left * 1.00001 + 1.0) + rng.normal(0, 0.01, t_left.size)
        yr = 0.3 * np.cos(2 * np.pi * f * t_right * 1.00001 + 1.0 + step) + rng.normal(0, 0.01, t_right.size)
        phi = [lambda t: 2 * np.pi * f * t]
        fit = joint_fit([Side(t_left, yl, phi), Side(t_right, yr, phi)], max_freq_hz=f)
        d, s = fit.phase_step()
        reads.append(d)
        sigmas.append(s)
        assert fit.scale == pytest.approx(1.00001, abs=5 * fit.scale_sigma)
    assert abs(np.mean(reads) - step) < 4 * np.std(reads) / math.sqrt(len(reads))
    assert 0.7 < np.mean(sigmas) / np.std(reads) < 1.4


def looped(loops: int = 16):
    k = 164  # cycles per pass: 164 * 625 MHz / 1024 = 100.1 MHz, no snapping needed
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("t", logical_channel="H", freqs=[k * FS / 1024], amps=[A], phases=[0.0])
        .segment("lead")
        .tones("H")
        .use_def("t")
        .hold(time=1.6e-6)
        .segment("loop", mode="loop_n", loops=loops)
        .hold(time=1024 / FS)
        .segment("tail")
        .hold(time=1.6e-6)
        .last_step("end")
    ), k


@pytest.mark.parametrize("delta", [0.0, 0.003])
def test_wrap_spurs_and_step_of_a_known_fractional_cycle(delta: float) -> None:
    builder, k = looped()
    start = FIRST + 1024  # the lead segment is 1000 samples, padded to 1024

    def signal(n):
        inside = (n >= start) & (n < start + 16 * 1024)
        phase_loop = (k + delta) * ((n - start) % 1024) / 1024 + k * (start - FIRST) / 1024
        phase_hold = k * (n - FIRST) / 1024
        return A * np.sin(2 * np.pi * np.where(inside, phase_loop, phase_hold))

    obs = observe(builder, signal, duration_s=31e-6, noise_lsb=0.3)
    spur = wrap_spurs(obs, "loop", LIMITS)
    step = wrap_step(obs, "loop", LIMITS)
    assert step.measured == pytest.approx(-360 * delta, abs=max(4 * step.sigma, 0.02))
    if delta:
        theory = max(20 * math.log10(abs(np.sinc(delta - m) / np.sinc(delta))) for m in (-2, -1, 1, 2))
        assert spur.measured == pytest.approx(theory, abs=1.0)
        assert not spur.passed or spur.limit > theory
    else:
        assert spur.measured < -65 and spur.passed and step.passed
    assert spur.unit == "dBc" and spur.detail["loops"] >= 8


def test_wrap_spurs_need_enough_loops() -> None:
    builder, k = looped(loops=4)
    obs = observe(builder, lambda n: A * np.sin(2 * np.pi * k * (n - FIRST) / 1024), duration_s=10e-6)
    with pytest.raises(AnalysisError, match="fewer than 8 passes"):
        wrap_spurs(obs, "loop", LIMITS)


def test_tone_frequency_and_amplitude_errors_are_read_back() -> None:
    ppm, gain_db = 15.0, 0.3
    path = SignalPath(FS, Filter("butterworth", 280e6, 3))
    expected_v = A * abs(np.sinc(F / FS)) / math.sqrt(1 + (F / 280e6) ** 6)  # hold sinc x 3rd-order Butterworth
    amplitude = expected_v * 10 ** (gain_db / 20)
    obs = observe(hold_hold(), lambda n: amplitude * np.sin(2 * np.pi * F * (n - FIRST) / FS), duration_s=7e-6, ppm=ppm, path=path)
    freq, amp = tone_checks(obs, "a", LIMITS, window_s=2.5e-6)
    assert freq.measured == pytest.approx((1 / (1 + ppm * 1e-6) - 1) * 1e6, abs=max(4 * freq.sigma, 0.5))
    assert amp.measured == pytest.approx(gain_db, abs=max(4 * amp.sigma, 0.01))
    assert freq.passed and amp.passed and freq.unit == "ppm" and amp.unit == "dB"


def chirp_program(df: float = 2e6, time_s: float = 6.4e-6):
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("t", logical_channel="H", freqs=[F], amps=[A], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("t")
        .hold(time=1.6e-6)
        .segment("move")
        .tones("H")
        .move(df=df, time=time_s, kind="linear")
        .segment("c")
        .hold(time=1.6e-6)
        .last_step("end")
    )


def chirp_signal(rate_scale: float, glitch_deg: float = 0.0, glitch_at: float = 0.5, df: float = 2e6, time_s: float = 6.4e-6):
    n0 = FIRST + round(1.6e-6 * FS)
    n_move = round(time_s * FS)
    k = df * rate_scale / (n_move / FS)  # Hz per second

    def signal(n):
        t = (n - n0) / FS
        before = F * (n - FIRST) / FS
        during = F * (n0 - FIRST) / FS + F * t + 0.5 * k * t * t
        phase = np.where(n < n0, before, during) + np.where(n >= n0 + glitch_at * n_move, glitch_deg / 360, 0.0)
        return A * np.sin(2 * np.pi * phase)

    return signal


def test_chirp_rate_error_is_read_back() -> None:
    obs = observe(chirp_program(), chirp_signal(1.002), duration_s=10e-6)
    rate, residual, glitch = trajectory_checks(obs, "move", LIMITS)
    assert rate.check == "chirp_rate" and rate.unit == "%"
    assert rate.measured == pytest.approx(0.2, abs=max(3 * rate.sigma, 0.02))
    assert not rate.passed
    assert residual.measured < 0.5 and residual.passed
    assert abs(glitch.measured) < 0.5 and glitch.passed


def test_glitch_scan_finds_a_mid_chirp_phase_step() -> None:
    obs = observe(chirp_program(), chirp_signal(1.0, glitch_deg=3.0), duration_s=10e-6)
    rate, residual, glitch = trajectory_checks(obs, "move", LIMITS)
    t_glitch = (FIRST + round(1.6e-6 * FS) + 0.5 * round(6.4e-6 * FS) - TRIGGER) / FS
    assert glitch.measured == pytest.approx(3.0, abs=0.5)
    assert glitch.detail["at_s"] == pytest.approx(t_glitch, abs=60e-9)
    assert not glitch.passed and rate.passed


def test_timeline_matches_the_simulated_card() -> None:
    builder = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("t", logical_channel="H", freqs=[F], amps=[A], phases=[0.0])
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("t")
        .hold(time=2e-6)
        .segment("once")
        .hold(time=3e-6)
        .segment("loop", mode="loop_n", loops=3)
        .hold(time=1.6e-6)
    )
    _, prog = compiled(builder)
    triggers = [100, 5000, 40000]
    played = simulate(prog, triggers=triggers, n_samples=60_000)
    ours = step_entries(prog, triggers, 60_000)
    assert [(e.sample, e.step) for e in played.events] == [(e.sample, e.step) for e in ours]
