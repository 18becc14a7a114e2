"""The demo tweezer program: load, drop empty traps, rearrange, hold, release.

An 8-tone grid on H (one tone per tweezer, 2 MHz apart) and one tone on V. The program waits for
the experiment's trigger, ramps the empty tweezers off, moves the four loaded ones into a compact
block with minimum-jerk trajectories, holds them in a counted loop, lowers them adiabatically and
waits for the next trigger.
"""

from __future__ import annotations

from .builder import AWGProgramBuilder

DEMO_SAMPLE_RATE_HZ = 625e6
DEMO_HARDWARE_MAP = {"H": 0, "V": 1}

GRID_H_HZ = [80e6 + 2e6 * i for i in range(8)]
TARGET_H_HZ = [85e6 + 2e6 * i for i in range(4)]
LOADED = [1, 3, 4, 6]


def demo_builder() -> AWGProgramBuilder:
    """The demo program as a builder (nothing is compiled yet)."""
    empty = [i for i in range(len(GRID_H_HZ)) if i not in LOADED]
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("grid_H", logical_channel="H", freqs=GRID_H_HZ, amps=[0.08] * 8, phases="auto")
        .define("target_H", logical_channel="H", freqs=TARGET_H_HZ, amps=[0.1] * 4, phases="auto")
        .define("beam_V", logical_channel="V", freqs=[100e6], amps=[0.3], phases="auto")
        .segment("load", mode="wait_trig")
        .tones("H")
        .use_def("grid_H")
        .tones("V")
        .use_def("beam_V")
        .hold(time=32e-6)
        .segment("drop_empty")
        .tones("H")
        .ramp_amp_to(amps=0.0, idxs=empty, time=20e-6, kind="min_jerk")
        .remove_tones(idxs=empty)
        .segment("rearrange")
        .tones("H")
        .remap_from_def(target_def="target_H", src=[0, 1, 2, 3], dst=[0, 1, 2, 3], time=100e-6, kind="min_jerk")
        .segment("hold", mode="loop_n", loops=4)
        .hold(time=32e-6)
        .segment("lower")
        .tones("H")
        .ramp_amp_to(amps=0.01, time=30e-6, kind="exp")
        .tones("V")
        .ramp_amp_to(amps=0.05, time=30e-6, kind="exp")
        .segment("release", mode="wait_trig")
        .hold(time=10e-6)
    )
