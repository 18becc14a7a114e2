"""The demo tweezer program: load, drop empty traps, rearrange, hold, release.

An 8-tone grid on H (one tone per tweezer, 2 MHz apart) and one tone on V. The program waits for
the experiment's trigger, ramps the empty tweezers off, moves the four loaded ones into a compact
block with minimum-jerk trajectories, holds them in a counted loop, lowers them adiabatically and
waits for the next trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._progress import Progress
from .backends.sim import SimBackend
from .builder import AWGProgramBuilder

DEMO_SAMPLE_RATE_HZ = 625e6
DEMO_HARDWARE_MAP = {"H": 0, "V": 1}

GRID_H_HZ = [80e6 + 2e6 * i for i in range(8)]
TARGET_H_HZ = [85e6 + 2e6 * i for i in range(4)]
LOADED = [1, 3, 4, 6]

#: The experiment's triggers, in samples after the start command: the first starts replay
#: (the card waits in "load"), the second ends the "load" wait; "release" then waits for a next.
DEMO_TRIGGERS = (625, 50_000)
#: How much card time the demo plays, in samples (about 560 us at 625 MS/s).
DEMO_SAMPLES = 350_000


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
        .hold(time=32e-6)  # whole cycles of the 1 MHz grid every pass (20000 samples): no snapping
    )


@dataclass(frozen=True)
class DemoRun:
    """What the demo played: the compiled program, the samples, the step trace and the plot."""

    program: object
    samples: np.ndarray
    trace: list[tuple[int, int, str]]  # (sample, step, segment name)
    plot: Path | None


def play_demo(program, *, triggers=DEMO_TRIGGERS, n_samples: int = DEMO_SAMPLES, plot_path: Path | None = None, amplitude_mv: int = 1000) -> DemoRun:
    """Play a compiled program on a simulated card (output ``amplitude_mv`` at full scale) with
    the given triggers; optionally plot (axes in volts)."""
    with SimBackend(program.card) as backend:
        backend.configure(sample_rate_hz=program.sample_rate_hz, n_channels=program.n_channels, trigger="external", amplitude_mv=amplitude_mv)
        backend.load(program)
        backend.start()
        for t in triggers:
            backend.schedule_trigger(t)
        chunks = []
        block = 1 << 16
        with Progress(n_samples, "playing on the simulated card") as bar:
            for start in range(0, n_samples, block):
                chunks.append(backend.capture(min(block, n_samples - start)))
                bar.advance(chunks[-1].shape[0])
        samples = np.concatenate(chunks) if chunks else np.zeros((0, program.n_channels), np.int16)
        trace = [(e.sample, e.step, program.steps[e.step].name) for e in backend.events]
    path = None
    if plot_path is not None:
        from .plot import plot_playback

        names = sorted(program.hardware_channels, key=program.hardware_channels.get)
        plot_playback(
            samples,
            program.sample_rate_hz,
            [(s, name) for s, _, name in trace],
            plot_path,
            channel_names=names,
            title="awgrt demo on the simulated card",
            triggers=triggers,
            amplitude_mv=amplitude_mv,
        )
        path = Path(plot_path)
    return DemoRun(program, samples, trace, path)
