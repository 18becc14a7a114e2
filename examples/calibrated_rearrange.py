"""A calibrated rearrangement: optical power and positions in um, equalised on a camera.

The H axis's AOD is calibrated (``awgrt calibrate fit``; here the fit runs on synthetic
measurements so the example is self-contained): its amplitudes are optical powers, flat across the
band, and its tweezers are placed in micrometres. A row of 16 tweezers 3 um apart is loaded at
random; the loaded ones are taken to a compact block (``remap_from_def(dst="all")``: the empty ones
fade out with the move and are dropped), each tweezer keeping its optical power while its frequency
changes. The block's powers are then equalised against a (simulated) camera in a few damped
iterations, and the program plays on the simulator.

Run:  python examples/calibrated_rearrange.py [--seed N] [--calibration cal.json] [--save out.npz]
"""

from __future__ import annotations

import argparse

import numpy as np

from awgrt import AWGProgramBuilder, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend
from awgrt.calibration import AODCalibration, CalibrationData, PositionCalibration, equalise, fit_calibration

FS = 625e6
BAND_HZ = (70e6, 100e6)
N_SITES = 16
PITCH_UM = 3.0
#: The AOD's deflection: 2 um of focal-plane position per MHz, 0 um at 85 MHz.
POSITION = PositionCalibration.linear(2.0, 85e6, BAND_HZ, trace="lens and AOD geometry, 2 um/MHz")


def measured_aod(seed: int = 0) -> CalibrationData:
    """What a power meter would read behind the AOD: 7 frequencies x 20 RF amplitudes."""
    rng = np.random.default_rng(seed)
    f = np.repeat(np.linspace(*BAND_HZ, 7), 20)
    a = np.tile(np.linspace(0.03, 0.6, 20), 7)
    x = (2 * f - sum(BAND_HZ)) / (BAND_HZ[1] - BAND_HZ[0])
    g, v0 = 1.0 - 0.18 * x**2 + 0.05 * x, 0.5 + 0.04 * x
    p = g * np.sin(np.pi / 2 * a / v0) ** 2 * (1 + 0.005 * rng.normal(size=f.size))
    return CalibrationData(f, a, p, power_unit="efficiency", source="synthetic power-meter sweep", card_mv=1000)


def build(occupied: list[int], cal: AODCalibration, powers: list[float] | None = None) -> AWGProgramBuilder:
    """The program for the given loaded sites; ``powers``: the block's optical powers (equalised)."""
    n = len(occupied)
    row_um = [PITCH_UM * (i - (N_SITES - 1) / 2) for i in range(N_SITES)]
    block_um = [PITCH_UM * (j - (n - 1) / 2) for j in range(n)]
    powers = powers or [0.06] * n
    return (
        AWGProgramBuilder()
        .logical_channel("H", calibration=cal, position=POSITION)
        .define("row", logical_channel="H", positions_um=row_um, amps=[0.05] * N_SITES)
        .define("block", logical_channel="H", positions_um=block_um, amps=powers)
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("row")
        .hold(time=32e-6)
        .segment("rearrange")
        .tones("H")
        .remap_from_def(target_def="block", src=occupied, dst="all", time=200e-6, kind="min_jerk")
        .segment("hold", mode="loop_n", loops=8)
        .hold(time=32e-6)
        .segment("done", mode="wait_trig")
        .hold(time=32e-6)
        .last_step("end")  # one experimental cycle: the next loading pattern is a new program
    )


def camera(powers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's tweezer intensities: each site's optics pass a different fraction (unknown)."""
    site = 1.0 + 0.15 * np.sin(np.arange(powers.size) * 1.7)
    return site * powers * (1 + 0.002 * rng.normal(size=powers.size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the random loading pattern")
    parser.add_argument("--calibration", help="an AOD calibration file (default: fit the synthetic sweep)")
    parser.add_argument("--save", help="write the compiled program to this .npz file")
    args = parser.parse_args(argv)

    cal = AODCalibration.load(args.calibration) if args.calibration else fit_calibration(measured_aod(), g_degree=3, v0_degree=1).calibration
    print(f"calibration: {cal.trace}")
    rng = np.random.default_rng(args.seed)
    occupied = sorted(int(i) for i in np.flatnonzero(rng.random(N_SITES) < 0.5)) or [0]
    print(f"loaded sites: {occupied}")
    powers = np.full(len(occupied), 0.06)
    for it in range(4):  # close the loop on the camera
        seen = camera(powers, rng)
        print(f"equalisation {it}: camera spread {np.ptp(seen) / np.mean(seen):.2%}")
        powers = equalise(powers, seen, damping=0.8)
    builder = build(occupied, cal, list(powers))
    quantized = quantize_resolved_ir(builder.build_resolved_ir(sample_rate_hz=FS), {"H": 0})
    program = compile_sequence_program(quantized, progress=False).validate()
    print(program.report)
    with SimBackend() as card, Runtime(card, logical_channel_to_hardware_channel={"H": 0}) as rt:
        rt.run(builder, sample_rate_hz=FS)  # armed, waiting in "load" for the trigger
        card.schedule_trigger(1000)
        samples = card.capture(300_000)
        print(f"played on the simulator: {samples.shape[0]} samples, peak {np.abs(samples).max() / 32767:.3f} of full scale")
    if args.save:
        print(f"saved {program.save(args.save)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
