"""Simulator speed, measured side by side in one run.

1. Card time simulated per wall second for a 20-step looping program (target >= 100 s/s):
   a) the ring as it is (no triggers: the sequencer skips whole cycles),
   b) the same ring with its first step waiting for a trigger that comes every 1 ms
      (the sequencer walks every step).
2. Render throughput: samples produced by SimulatedCard.render (through SimBackend.capture)
   against the best plain numpy copy of the same bytes (target >= 0.5x), for both programs.

Run:  python benchmarks/sim_bench.py
"""

from __future__ import annotations

import time

import numpy as np

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend

FS = 625e6


def twenty_step_program(wait_first: bool):
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[80e6 + 2e6 * i for i in range(8)], amps=[0.08] * 8)
    b.define("v", logical_channel="V", freqs=[100e6], amps=[0.3])
    for i in range(20):
        if i == 0:
            b.segment("s0", mode="wait_trig" if wait_first else "once").tones("H").use_def("h").tones("V").use_def("v").hold(time=3.2e-6)
        elif i % 3 == 0:
            b.segment(f"s{i}", mode="loop_n", loops=10 + i).hold(time=1.6e-6)
        elif i % 3 == 1:
            b.segment(f"s{i}").tones("H").move(df=0.5e6 * (-1) ** i, time=3.2e-6, kind="min_jerk")
        else:
            b.segment(f"s{i}").tones("V").ramp_amp_to(amps=0.2 + 0.01 * (i % 5), time=3.2e-6)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    return compile_sequence_program(q, progress=False)


def card_seconds_per_wall_second(program, card_seconds: float, trigger_every_s: float | None) -> tuple[float, int]:
    with SimBackend(program.card) as be:
        be.configure(sample_rate_hz=FS, n_channels=program.n_channels, trigger="external")
        be.load(program)
        be.start(force_trigger=True)
        total = round(card_seconds * FS)
        if trigger_every_s:
            step = round(trigger_every_s * FS)
            for t in range(step, total, step):
                be.schedule_trigger(t)
        t0 = time.perf_counter()
        chunk = round(1e-3 * FS)
        for _ in range(0, total, chunk):  # host checks in every simulated millisecond
            be.advance(samples=chunk)
        wall = time.perf_counter() - t0
        n_steps = len(be.sim.events_between(0, be.now)) if card_seconds <= 2 else -1
    return card_seconds / wall, n_steps


def render_rate(program, n_samples: int, trigger_every_s: float | None, repeats: int = 5) -> float:
    """Samples per second produced by SimBackend.capture (best of ``repeats`` windows)."""
    with SimBackend(program.card) as be:
        be.configure(sample_rate_hz=FS, n_channels=program.n_channels, trigger="external")
        be.load(program)
        be.start(force_trigger=True)
        if trigger_every_s:
            step = round(trigger_every_s * FS)
            for t in range(step, (repeats + 1) * n_samples + 2000, step):
                be.schedule_trigger(t)
        be.advance(samples=1000)
        buf = np.zeros((n_samples, be.card.physical_channels), dtype=np.int16)  # like the copy's target: allocated once
        return n_samples / min(_timed(lambda: be.capture(n_samples, buf)) for _ in range(repeats))


def copy_rate(n_samples: int, n_channels: int, repeats: int = 5) -> float:
    """Samples per second of the best plain numpy copy of the same bytes (2-D copy or flat bytes)."""
    src = np.random.default_rng(0).integers(-30000, 30000, size=(n_samples, n_channels), dtype=np.int16)
    dst = np.zeros_like(src)
    flat_src, flat_dst = src.reshape(-1).view(np.uint8), dst.reshape(-1).view(np.uint8)
    best = min(
        min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats)),
        min(_timed(lambda: np.copyto(flat_dst, flat_src)) for _ in range(repeats)),
    )
    return n_samples / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ring = twenty_step_program(wait_first=False)
    waiting = twenty_step_program(wait_first=True)
    period = sum(ring.segments[s.segment].n_samples * s.loops for s in ring.steps) / FS
    print(f"20-step program: one pass through the ring lasts {period * 1e6:.1f} us of card time")
    rate_a, _ = card_seconds_per_wall_second(ring, 60.0, None)
    print(f"a) ring, no triggers, 60 s of card time:       {rate_a:10.0f} s of card time per wall second (target >= 100)")
    rate_b, steps_b = card_seconds_per_wall_second(waiting, 2.0, 1e-3)
    print(f"b) wait step + trigger every 1 ms, 2 s:        {rate_b:10.1f} s of card time per wall second ({steps_b} step entries walked)")
    n = 1 << 22
    c = copy_rate(n, ring.n_channels)
    ra = render_rate(ring, n, None)
    rb = render_rate(waiting, n, 1e-3)
    print(f"plain numpy copy of {n} samples x {ring.n_channels} channels:  {c / 1e6:8.1f} MS/s")
    print(f"render a) ring (repeats itself):               {ra / 1e6:8.1f} MS/s, ratio {ra / c:.2f} (target >= 0.5)")
    print(f"render b) wait step + trigger every 1 ms:       {rb / 1e6:8.1f} MS/s, ratio {rb / c:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
