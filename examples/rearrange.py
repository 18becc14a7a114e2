"""Rearrange 16 optical tweezers on H into a compact block while V holds one tone.

The H axis starts with a 16-tone grid (one tone per tweezer, 1 MHz apart). After the load
trigger, the empty tweezers are ramped off and removed, the loaded ones move with minimum-jerk
trajectories to the first sites of the target block, the block is held in a counted loop, and the
program waits for the next trigger. V carries one constant tone throughout.

Run:  python examples/rearrange.py [--seed N] [--save out.npz]
"""

from __future__ import annotations

import argparse

import numpy as np

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir

FS = 625e6
N_SITES = 16
GRID_HZ = [75e6 + 1e6 * i for i in range(N_SITES)]
TARGET_CENTRE_HZ = 82.5e6


def build(occupied: list[int]) -> AWGProgramBuilder:
    """The rearrangement program for the given occupied sites (indices into the grid)."""
    n = len(occupied)
    empty = [i for i in range(N_SITES) if i not in occupied]
    target = [TARGET_CENTRE_HZ + 1e6 * (j - (n - 1) / 2) for j in range(n)]
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("grid_H", logical_channel="H", freqs=GRID_HZ, amps=[0.04] * N_SITES, phases="auto")
        .define("block_H", logical_channel="H", freqs=target, amps=[0.05] * n, phases="auto")
        .define("beam_V", logical_channel="V", freqs=[95e6], amps=[0.4], phases="auto")
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("grid_H")
        .tones("V")
        .use_def("beam_V")
        .hold(time=32e-6)
    )
    if empty:
        b = b.segment("drop_empty").tones("H").ramp_amp_to(amps=0.0, idxs=empty, time=16e-6, kind="min_jerk").remove_tones(idxs=empty)
    # After removing the empty sites the loaded tones are 0..n-1, in grid order: tweezers never cross.
    return (
        b.segment("rearrange")
        .tones("H")
        .remap_from_def(target_def="block_H", src=list(range(n)), dst=list(range(n)), time=200e-6, kind="min_jerk")
        .segment("hold", mode="loop_n", loops=8)
        .hold(time=32e-6)
        .segment("done", mode="wait_trig")
        .hold(time=32e-6)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the random loading pattern")
    parser.add_argument("--save", help="write the compiled program to this .npz file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    occupied = sorted(int(i) for i in np.flatnonzero(rng.random(N_SITES) < 0.5))
    print(f"loaded sites: {occupied}")
    resolved = build(occupied).build_resolved_ir(sample_rate_hz=FS)
    quantized = quantize_resolved_ir(resolved, logical_channel_to_hardware_channel={"H": 0, "V": 1})
    program = compile_sequence_program(quantized, gain=1.0, clip=0.9, full_scale=32767).validate()
    print(program.report)
    if args.save:
        print(f"saved {program.save(args.save)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
