"""Compile speed side by side with the AWG Segment Factory, on its own programs, cold and warm.

Programs (both libraries compile the same builder calls, H on channel 0 and V on channel 1, 625 MS/s):

- ``molecule``: the Segment Factory's ``recreate_mol_exp`` preset (its molecule-experiment
  program: 14 segments, 8.35 M samples per channel pair);
- ``tweens``: its ``simple_tweens`` preset (two tweezers moved and ramped one after the other);
- ``rearrangement``: awgrt's ``examples/rearrange.py`` (16 tones, the loading pattern of seed 7).

The Segment Factory's presets are called with a recorder in place of its builder; the recorded
calls are replayed on each library's builder (keywords renamed where the two spell them
differently: ``loop``/``loops``, ``f``/``freq``; its ``snap_len_to_quantum`` has no counterpart:
awgrt always makes a segment as long as asked, rounded to the card's granularity). Timed per
repetition, interleaved in one process: the Segment Factory's compile (intent, resolve, quantize,
samples: its own pipeline, without its wire-format round trip), awgrt cold (every compiler memo
emptied first: a first compile in a new process, or each shot of a new rearrangement) and awgrt
warm (its memos kept: a scan point or a repeated compile). Printed: minimum and median of each,
and the ratios of the minima (awgrt's stages for the cold compile in the awgrt columns).

Needs the Segment Factory's source: ``--segment-factory DIR`` (the folder holding the
``awgsegmentfactory`` package, e.g. a clone's ``src``) or an installed ``awgsegmentfactory``.
BLAS pools are kept at one thread. Run:

    python benchmarks/segment_factory_bench.py --segment-factory ../AWGSegmentFactory/src [--repeat N]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from synth_bench import forget_compiler_caches  # noqa: E402  (this folder: run as a script)

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir  # noqa: E402

FS = 625e6
MAPPING = {"H": 0, "V": 1}
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class Recorder:
    """Stands in for a builder: records every chained call (``parallel`` blocks recorded apart)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Callable[..., Recorder]:
        def record(*args: Any, **kwargs: Any) -> Recorder:
            if name == "parallel":
                blocks = []
                for block in args:
                    sub = Recorder()
                    block(sub)
                    blocks.append(sub.calls)
                self.calls.append((name, tuple(blocks), {}))
            else:
                self.calls.append((name, args, kwargs))
            return self

        return record


#: Keywords spelled differently: method -> {Segment Factory keyword: awgrt keyword (None: none)}.
SF_TO_AWGRT = {"segment": {"loop": "loops", "snap_len_to_quantum": None}, "add_tone": {"f": "freq"}}
AWGRT_TO_SF = {"segment": {"loops": "loop"}, "add_tone": {"freq": "f"}}


def replay(calls: list[Call], builder: Any, rename: dict[str, dict[str, str | None]]) -> Any:
    for name, args, kwargs in calls:
        if name == "parallel":
            blocks = [lambda b, sub=sub: replay(sub, b, rename) for sub in args]
            builder = builder.parallel(*blocks)
            continue
        names = rename.get(name, {})
        kw = {names.get(k, k): v for k, v in kwargs.items() if names.get(k, k) is not None}
        builder = getattr(builder, name)(*args, **kw)
    return builder


def record(make: Callable[[], Any], module: Any) -> list[Call]:
    """The calls ``make()`` makes on ``module.AWGProgramBuilder()``."""
    real = module.AWGProgramBuilder
    module.AWGProgramBuilder = Recorder
    try:
        return make().calls
    finally:
        module.AWGProgramBuilder = real


def programs(sf_presets: Any) -> dict[str, tuple[list[Call], str]]:
    """name -> (recorded calls, the library whose spelling they use)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    rearrange = importlib.import_module("rearrange")
    occupied = sorted(np.random.default_rng(7).choice(rearrange.N_SITES, size=10, replace=False).tolist())
    return {
        "molecule": (record(sf_presets.recreate_mol_exp, sf_presets), "sf"),
        "tweens": (record(sf_presets.simple_tweens, sf_presets), "sf"),
        "rearrangement": (record(lambda: rearrange.build(occupied), rearrange), "awgrt"),
    }


def awgrt_compile(calls: list[Call], spelling: str, workers: int | None = None) -> tuple[float, dict[str, float], int]:
    """Seconds from the builder calls to int16 samples, the stages, and the samples made."""
    t0 = time.perf_counter()
    b = replay(calls, AWGProgramBuilder(), SF_TO_AWGRT if spelling == "sf" else {})
    resolved = b.build_resolved_ir(sample_rate_hz=FS)
    t1 = time.perf_counter()
    q = quantize_resolved_ir(resolved, MAPPING)
    t2 = time.perf_counter()
    p = compile_sequence_program(q, progress=False, workers=workers)
    t3 = time.perf_counter()
    return t3 - t0, {"resolve": t1 - t0, "quantize+phases": t2 - t1, "synthesis": t3 - t2}, sum(s.n_samples for s in p.segments)


def sf_compile(sf: Any, calls: list[Call], spelling: str) -> float:
    t0 = time.perf_counter()
    b = replay(calls, sf.AWGProgramBuilder(), AWGRT_TO_SF if spelling == "awgrt" else {})
    intent = b.build_intent_ir()
    quantized = sf.quantize_resolved_ir(sf.resolve_intent_ir(intent, sample_rate_hz=FS))
    setup = sf.AWGPhysicalSetupInfo(logical_to_hardware_map=MAPPING)
    sf.QIRtoSamplesSegmentCompiler(quantised=quantized, physical_setup=setup, full_scale_mv=1.0, full_scale=32767, clip=0.9).compile_to_card_int16()
    return time.perf_counter() - t0


def load_segment_factory(path: str | None) -> Any:
    if path:
        sys.path.insert(0, str(Path(path).resolve()))
    try:
        return importlib.import_module("awgsegmentfactory"), importlib.import_module("awgsegmentfactory.presets")
    except ImportError as exc:
        raise SystemExit(f"the AWG Segment Factory is not importable ({exc}): give --segment-factory DIR (the folder holding 'awgsegmentfactory')") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segment-factory", default=None, help="folder holding the awgsegmentfactory package")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="awgrt's synthesis threads (default: its own choice)")
    args = parser.parse_args(argv)
    sf, sf_presets = load_segment_factory(args.segment_factory)
    warnings.simplefilter("ignore")  # both libraries warn about the presets' clipping and snapping
    print("BLAS and OpenMP pools: 1 thread")
    progs = programs(sf_presets)
    awgrt_compile(progs["rearrangement"][0], "awgrt")  # first-use imports happen here, untimed
    sf_compile(sf, progs["rearrangement"][0], "awgrt")
    for name, (calls, spelling) in progs.items():
        times: dict[str, list[float]] = {"sf": [], "cold": [], "warm": []}
        stages: list[dict[str, float]] = []
        n_samples = 0
        for _ in range(args.repeat):
            times["sf"].append(sf_compile(sf, calls, spelling))
            forget_compiler_caches()
            cold, st, n_samples = awgrt_compile(calls, spelling, args.workers)
            times["cold"].append(cold)
            stages.append(st)
            times["warm"].append(awgrt_compile(calls, spelling, args.workers)[0])
        best = {k: min(v) for k, v in times.items()}
        med = {k: float(np.median(v)) for k, v in times.items()}
        fastest = min(range(len(stages)), key=lambda i: times["cold"][i])
        print(f"\n{name} ({n_samples / 1e6:.2f} M samples per channel, {args.repeat} repetitions)")
        for k, label in (("sf", "Segment Factory"), ("cold", "awgrt cold"), ("warm", "awgrt warm")):
            print(f"  {label:<16} min {best[k] * 1e3:8.1f} ms   median {med[k] * 1e3:8.1f} ms")
        print("  awgrt cold stages: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in stages[fastest].items()))
        print(f"  awgrt faster: cold {best['sf'] / best['cold']:.1f}x, warm {best['sf'] / best['warm']:.1f}x (minima)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
