"""Real-time rearrangement: from ``Rearranger.shot(occupancy)`` being called to the card armed.

Measured on ``SimBackend`` on one CPU core (the process is pinned to one core and every BLAS
pool to one thread before numpy loads), over random occupancies at 50-60 % fill, each shot
played through on the simulated card (trigger, move, target hold, back to the next load hold)
so that every shot is armed the way it is in a lab, untimed in between. Printed side by side in
one run, in milliseconds and in units of a reference workload measured in the same run (REF:
``np.sin`` over 10^6 float64 values, minimum of 20):

1. 1D, 32 sites -> 16 targets, 100 us min_jerk moves after a 10 us ramp-off, one channel: median
   and p99 (targets: median <= 1 ms, p99 <= 2 ms), per stage, with each table kind;
2. 1D, 100 sites -> 50 targets, same moves: median and p99 (target: median <= 5 ms);
3. the same 32-site shots through the general compile path (an equivalent builder program run by
   ``Runtime.run``: drop the empty sites, ``remap_from_def`` to the block, hold), cold (a new
   runtime, every compiler memo emptied first), with a new runtime but the compiler's memos of
   earlier shots, and warm (one runtime, its segment cache in use), each followed by a burst of
   fast-path shots (the first of them the same shot, every cache cold after the compile; then
   more, back to back as in 1): medians, and the fast path's speed-up (target: >= 25x).

Also printed: the prepared tables' memory, the bytes one shot writes to the card, and what that
transfer costs at the M4i's > 2.8 GB/s (M4x: > 1.5 GB/s) sustained upload rate.

Run:  python benchmarks/rearrange_bench.py [--shots N] [--compile-shots M] [--burst B]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from synth_bench import forget_compiler_caches  # noqa: E402  (this folder: run as a script)

from awgrt import AWGProgramBuilder, Runtime  # noqa: E402
from awgrt.backends import SimBackend  # noqa: E402
from awgrt.errors import SnapWarning  # noqa: E402
from awgrt.rearrange import Move, Rearranger, ShotReport, TweezerArray  # noqa: E402

FS = 625e6
HOLD_S = 32e-6  # 20000 samples: a 1 MHz (or 0.4 MHz) grid wraps exactly, nothing is snapped
MOVE = Move(time_s=100e-6, kind="min_jerk", ramp_s=10e-6)
M4I_UPLOAD_BPS, M4X_UPLOAD_BPS = 2.8e9, 1.5e9


def reference_s() -> float:
    x = np.random.default_rng(0).random(10**6)
    best = np.inf
    for _ in range(20):
        t = time.perf_counter()
        np.sin(x)
        best = min(best, time.perf_counter() - t)
    return best


def geometry(n_sites: int, n_target: int, spacing_hz: float, amp: float) -> TweezerArray:
    sites = [70e6 + spacing_hz * i for i in range(n_sites)]
    first = (n_sites - n_target) // 2
    return TweezerArray(target=tuple(range(first, first + n_target)), sites_hz=sites, amp=amp, move=MOVE)


def occupancies(n: int, n_sites: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(n_sites) < rng.uniform(0.5, 0.6) for _ in range(n)]


class FastRig:
    """A prepared rearranger on a simulated card, looping in its load hold."""

    def __init__(self, array: TweezerArray, tables: str) -> None:
        be = SimBackend("M4i.6631-x8")
        self.rearranger = Rearranger(array, load_hold_s=HOLD_S, target_hold_s=HOLD_S, tables=tables)
        self.rearranger.prepare(Runtime(be, trigger="external"))
        self.card = be.sim
        self.card.external_trigger(self.card.now + 100)
        self.card.advance(30000)

    def shot(self, occ: np.ndarray) -> tuple[float, ShotReport]:
        """Seconds from ``shot(occ)`` called to armed; then the card plays it (untimed): move,
        target hold, back to the next load hold."""
        t = time.perf_counter()
        report = self.rearranger.shot(occ)
        elapsed = time.perf_counter() - t
        card = self.card
        card.external_trigger(card.now + 100)
        card.advance(2 * 20000 + self.rearranger.move_samples + 2000)
        card.external_trigger(card.now + 100)
        card.advance(25000)
        return elapsed, report


def run_shots(array: TweezerArray, occs: list[np.ndarray], tables: str) -> tuple[Rearranger, dict[str, np.ndarray], list[ShotReport]]:
    rig = FastRig(array, tables)
    totals, stages, reports = [], {"plan": [], "synth": [], "write": []}, []
    for occ in occs:
        elapsed, report = rig.shot(occ)
        totals.append(elapsed)
        for k in stages:
            stages[k].append(report.timings_s[k])
        reports.append(report)
    out = {"total": np.array(totals)} | {k: np.array(v) for k, v in stages.items()}
    return rig.rearranger, out, reports


def builder_for(array: TweezerArray, occ: np.ndarray, r: Rearranger) -> AWGProgramBuilder:
    """The same shot as an ordinary program: drop the empty sites and spare atoms, move the
    rest to their targets, hold the block (what a lab script does without the fast path)."""
    plan = r._plan(r._channels[0], occ)
    sites = list(array.site_freqs_hz)
    keep = [s for s, _ in plan.moves]
    drop = [s for s in range(len(sites)) if s not in keep]
    block = [sites[t] for _, t in plan.moves]
    b = (
        AWGProgramBuilder()
        .logical_channel("X")
        .define("sites", logical_channel="X", freqs=sites, amps=list(array.amp), phases="auto")
        .define("block", logical_channel="X", freqs=block, amps=[array.amp[0]] * len(block), phases="auto")
        .segment("load", mode="wait_trig")
        .tones("X")
        .use_def("sites")
        .hold(time=HOLD_S)
    )
    if drop:
        b = b.segment("drop").tones("X").ramp_amp_to(amps=0.0, idxs=drop, time=MOVE.ramp_s, kind="min_jerk").remove_tones(idxs=drop)
    return (
        b.segment("move")
        .tones("X")
        .remap_from_def(target_def="block", src=list(range(len(keep))), dst=list(range(len(keep))), time=MOVE.time_s, kind="min_jerk")
        .segment("target", mode="wait_trig")
        .hold(time=HOLD_S)
        .last_step("end")  # one cycle per program: the next loading pattern is a new program
    )


def compile_path(array: TweezerArray, occs: list[np.ndarray], rigs: dict[str, FastRig], burst: int) -> dict[str, np.ndarray]:
    """Seconds per shot, in rounds (so that a slower stretch of a shared machine weighs on both
    sides alike): each round runs one shot's program through ``Runtime.run`` cold (a new runtime,
    every compiler memo emptied first: what a script compiling each shot's program afresh sees in
    a new process), fresh (a new runtime, the compiler's memos of earlier shots kept) and warm
    (one runtime: the load hold comes from its cache, the rest is compiled; its first run is
    left out, being cold), then ``burst`` shots back to back on each fast-path rig, the first of
    them that same shot. The fast path's first shot after a compile (every cache cold) is kept
    apart from the shots that follow it (as in 1)."""
    times: dict[str, list[float]] = {"cold": [], "fresh": [], "warm": []}
    for kind in rigs:
        times[kind + " first"], times[kind] = [], []
    rt = Runtime(SimBackend("M4i.6631-x8"), trigger="external", clip_policy="count")
    plan_with = next(iter(rigs.values())).rearranger
    rng = np.random.default_rng(3)
    for occ in occs:
        b = builder_for(array, occ, plan_with)
        for memos_kept, out in ((False, "cold"), (True, "fresh")):
            if not memos_kept:
                forget_compiler_caches()
            new = Runtime(SimBackend("M4i.6631-x8"), trigger="external", clip_policy="count")
            t = time.perf_counter()
            new.run(b, sample_rate_hz=FS)
            times[out].append(time.perf_counter() - t)
        t = time.perf_counter()
        rt.run(b, sample_rate_hz=FS)
        times["warm"].append(time.perf_counter() - t)
        more = [rng.random(occ.size) < rng.uniform(0.5, 0.6) for _ in range(burst - 1)]
        for kind, rig in rigs.items():
            times[kind + " first"].append(rig.shot(occ)[0])
            times[kind] += [rig.shot(o)[0] for o in more]
    out = {k: np.array(v) for k, v in times.items()}
    out["warm"] = out["warm"][1:]
    return out


def line(name: str, t: np.ndarray, ref: float) -> str:
    med, p99 = np.median(t), np.percentile(t, 99)
    return f"  {name:<34} median {med * 1e3:7.3f} ms ({med / ref:5.3f} REF)   p99 {p99 * 1e3:7.3f} ms ({p99 / ref:5.3f} REF)"


def print_stages(label: str, t: dict[str, np.ndarray], ref: float) -> None:
    """The shot's latency and its stages, in ms and REF."""
    print(line(f"[{label}] shot -> armed", t["total"], ref))
    for k in ("plan", "synth", "write"):
        print(line(f"[{label}]   {k}", t[k], ref))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1200)
    parser.add_argument("--compile-shots", type=int, default=40)
    parser.add_argument("--burst", type=int, default=10, help="fast-path shots after each compile-path shot in 3")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    warnings.simplefilter("ignore", SnapWarning)
    print(f"BLAS and OpenMP pools: 1 thread; CPU affinity: {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'n/a'}")
    ref = reference_s()
    print(f"REF (np.sin over 1e6 float64, min of 20): {ref * 1e3:.2f} ms\n")

    small = geometry(32, 16, 1e6, 0.02)
    occs = occupancies(args.shots, 32, 1)
    print(f"1. 32 sites -> 16 targets, 1 MHz apart, {MOVE.time_s * 1e6:.0f} us {MOVE.kind} moves, {len(occs)} shots")
    fast = {}
    for tables in ("pairs", "factored"):
        r, t, reports = run_shots(small, occs, tables)
        fast[tables] = (r, t)
        rep = r.prepared
        prep_s = sum(rep.timings_s.values())
        print(f"  [{tables}] tables {rep.table_bytes / 2**20:.1f} MiB, phase matching <= {rep.correction_hz['X'] / 1e3:.2f} kHz, prepare {prep_s:.2f} s")
        print_stages(tables, t, ref)
        sizes = np.array([rp.bytes_written for rp in reports])
        incomplete = sum(not rp.complete for rp in reports)
        print(
            f"  [{tables}] bytes per shot: {int(np.median(sizes))} median, {int(sizes.max())} max "
            f"({incomplete} of {len(reports)} shots had too few atoms and rewrote their target hold too): "
            f"{np.median(sizes) / M4I_UPLOAD_BPS * 1e6:.0f} us at 2.8 GB/s (M4i), {np.median(sizes) / M4X_UPLOAD_BPS * 1e6:.0f} us at 1.5 GB/s (M4x)"
        )

    big = geometry(100, 50, 0.4e6, 0.008)
    occs_big = occupancies(args.shots, 100, 2)
    print(f"\n2. 100 sites -> 50 targets, 0.4 MHz apart, {len(occs_big)} shots")
    r_big, t_big, reports_big = run_shots(big, occs_big, "auto")
    rep = r_big.prepared
    kind = "factored" if r_big._channels[0].tables.factored else "pairs"
    pair_bytes = 100 * 50 * (r_big.move_samples - round(MOVE.ramp_s * FS)) * 4
    prep_s = sum(rep.timings_s.values())
    print(f"  auto chose {kind} tables: {rep.table_bytes / 2**20:.1f} MiB (pair tables would take {pair_bytes / 2**30:.2f} GiB), prepare {prep_s:.2f} s")
    print_stages(kind, t_big, ref)
    sizes = np.array([rp.bytes_written for rp in reports_big])
    print(f"  bytes per shot: {int(np.median(sizes))} median: {np.median(sizes) / M4I_UPLOAD_BPS * 1e6:.0f} us at 2.8 GB/s")

    n = min(args.compile_shots, len(occs))
    print(
        f"\n3. the same 32-site shots through the general compile path (Runtime.run of an equivalent program), {n} shots, "
        f"each followed by {args.burst} fast-path shots (the first of them the same shot)"
    )
    rigs = {"pairs": FastRig(small, "pairs")}  # what tables="auto" takes for this array
    t = compile_path(small, occs[:n], rigs, args.burst)
    print(line("compile path, cold (memos emptied)", t["cold"], ref))
    print(line("compile path, new runtime, memos", t["fresh"], ref))
    print(line("compile path, warm runtime", t["warm"], ref))
    for tables in rigs:
        print(line(f"[{tables}] first shot after a compile", t[tables + " first"], ref))
        print(line(f"[{tables}] the shots after it", t[tables], ref))
    for tables in rigs:
        m, first = np.median(t[tables]), np.median(t[tables + " first"])
        ratios = ", ".join(f"{np.median(t[k]) / m:.1f}x than {k}" for k in ("cold", "fresh", "warm"))
        print(f"  fast path [{tables}], medians: {ratios}; its first shot after a compile {np.median(t['cold']) / first:.1f}x faster than cold")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
