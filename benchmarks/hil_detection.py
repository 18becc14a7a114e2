"""Planted-fault detection and false alarms of the HIL suite on the simulated rig.

``python benchmarks/hil_detection.py [--seeds 20] [--workers 2]`` runs the whole suite on the
simulated rig (with its reference tone) once per scope seed clean, and once per seed with each
``--inject`` fault, and prints:

- per check, the results of the clean runs that did not pass (failed or inconclusive) out of all
  (false alarms);
- per fault, the runs in which the check made for it failed conclusively (detection), and the
  runs with anything else not passed;
- for ``cable=10ns`` (an uncalibrated cable, not a fault of the card), the runs that passed whole.

Each seed changes the simulated scope's noise, jitter and trigger skew.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor

#: Each planted fault and the check made to catch it.
FAULTS = {
    "phase-jump=2deg": "phase_jump",
    "wrap-delta=0.001": "wrap_step",
    "amp-error=1dB": "amplitude",
    "chirp-rate=0.5%": "chirp_rate",
    "skew=1.6ns": "skew",
    "clock=30ppm": "frequency",
}
TOLERATED = ("cable=10ns",)


def _run(job: tuple[int, str | None]) -> tuple[int, str | None, list[tuple[str, bool, bool]]]:
    from hil.rig import open_rig
    from hil.runner import run_suite

    seed, fault = job
    with open_rig("sim") as rig:
        config = rig.config
    config = dataclasses.replace(config, sim_scope=dataclasses.replace(config.sim_scope, seed=seed))
    report = run_suite(config, inject=[fault] if fault else [], plots=False, progress=False)
    return seed, fault, [(r.check, r.passed, bool(r.inconclusive)) for r in report.results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    jobs = [(seed, fault) for seed in range(1, args.seeds + 1) for fault in (None, *FAULTS, *TOLERATED)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(_run, jobs))
    clean_bad: collections.Counter[str] = collections.Counter()
    clean_all: collections.Counter[str] = collections.Counter()
    caught: collections.Counter[str] = collections.Counter()
    other_bad: collections.Counter[str] = collections.Counter()
    whole: collections.Counter[str] = collections.Counter()
    for _seed, fault, results in done:
        if fault is None:
            for check, passed, _ in results:
                clean_all[check] += 1
                clean_bad[check] += not passed
        elif fault in FAULTS:
            target = FAULTS[fault]
            caught[fault] += any(c == target and not p and not inc for c, p, inc in results)
            other_bad[fault] += any(c != target and not p for c, p, _ in results)
        else:
            whole[fault] += all(p for _, p, _ in results)
    print(f"{args.seeds} scope seeds, simulated rig with its reference tone ({time.perf_counter() - started:.0f} s)")
    print("clean runs, results not passed (failed or inconclusive) / all:")
    print("  " + ", ".join(f"{c} {clean_bad[c]}/{clean_all[c]}" for c in sorted(clean_all)))
    print("planted faults, runs where the check made for it failed conclusively:")
    for fault, check in FAULTS.items():
        print(f"  {fault:18s} {check:12s} {caught[fault]}/{args.seeds}   (runs with another check not passed: {other_bad[fault]})")
    for fault in TOLERATED:
        print(f"  {fault:18s} runs passed whole: {whole[fault]}/{args.seeds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
