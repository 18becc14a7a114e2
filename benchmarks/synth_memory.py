"""Synthesis memory, measured with tracemalloc, side by side in one run.

1. For one segment of growing length (2 channels, 16 tones each: 8 held, 8 moving), the peak of
   traced memory while ``synthesize`` runs, beside the size of its int16 output. Target: peak =
   output + a working set that does not grow with the segment and stays below the stated bound
   (``awgrt.compiler.synth.working_set_bytes``).
2. A 1 s, 2-channel, 16-tone program (a 0.5 s wait_trig hold, then a 0.5 s move of every tone) at
   625 MS/s compiled end to end: peak traced memory against its int16 output (2.5 GB).

Run:  python benchmarks/synth_memory.py [--quick]    (--quick: part 2 at 0.1 s instead of 1 s)
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.compiler.synth import BLOCK, synthesize, working_set_bytes

FS = 625e6
MiB = 2**20


def builder(hold_s: float, move_s: float) -> AWGProgramBuilder:
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[70e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.define("v", logical_channel="V", freqs=[80e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.segment("hold", mode="wait_trig").tones("H").use_def("h").tones("V").use_def("v").hold(time=hold_s)
    b.segment("move").tones("H").move(df=1e6, time=move_s).tones("V").move(df=-1e6, time=move_s)
    return b


def mixed_segment(n_samples: int):
    """One quantized segment of n samples: on each channel 8 tones held, 8 moving."""
    t = n_samples / FS
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[70e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.define("v", logical_channel="V", freqs=[80e6 + 2e6 * i for i in range(16)], amps=[0.05] * 16)
    b.segment("s").tones("H").use_def("h").move(df=1e6, time=t, idxs=list(range(8))).tones("V").use_def("v").move(df=-1e6, time=t, idxs=list(range(8)))
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    return q, q.segments[0]


def traced_peak(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="part 2 with a 0.1 s program")
    args = parser.parse_args()

    bound = working_set_bytes(2, 32)
    print(f"1. one segment, 2 channels x 16 tones; block {BLOCK} samples; stated working-set bound {bound / MiB:.1f} MiB")
    print(f"   {'samples':>11} {'output MiB':>11} {'peak MiB':>10} {'peak - output':>14} {'peak / output':>14} {'time s':>7}")
    for n in (2**20, 2**22, 2**24):
        q, seg = mixed_segment(n)
        result, peak, dt = traced_peak(lambda q=q, seg=seg: synthesize(seg, FS, dict(q.hardware_channels), 2, gain=1.0, clip=0.9, full_scale=32767))
        out = result.data.nbytes
        extra = peak - out
        print(f"   {seg.n_samples:>11} {out / MiB:>11.1f} {peak / MiB:>10.1f} {extra / MiB:>11.1f} MiB {peak / out:>14.3f} {dt:>7.2f}"
              f"   {'OK' if extra <= bound else 'ABOVE BOUND'}")
        del result

    total = 0.1 if args.quick else 1.0
    print(f"\n2. {total:g} s, 2 channels, 16 tones each, compiled end to end at {FS / 1e6:g} MS/s")
    resolved = builder(total / 2, total / 2).build_resolved_ir(sample_rate_hz=FS)
    q = quantize_resolved_ir(resolved)
    program, peak, dt = traced_peak(lambda: compile_sequence_program(q, progress=True))
    out = sum(s.data.nbytes for s in program.segments)
    print(f"   int16 output {out / MiB:.0f} MiB; peak traced {peak / MiB:.0f} MiB (peak / output {peak / out:.3f}); {dt:.1f} s")


if __name__ == "__main__":
    main()
