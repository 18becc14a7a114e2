"""The ``awgrt`` command.

``awgrt demo``     compile the demo tweezer program, print its compile report, play it on the
                   simulated card with two triggers, print the step trace and plot it (PNG)
``awgrt compile``  compile an intent program saved as JSON, print the report, optionally save
``awgrt cards``    list the cards awgrt knows and their sequence-mode limits
``awgrt hil``      run the hardware-in-the-loop validation suite on a rig (or the simulated one)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._files import read_text
from ._version import __version__
from .card import CARDS, DEFAULT_CARD
from .compiler.compile import CLIP_POLICIES, compile_sequence_program
from .compiler.quantize import quantize_resolved_ir
from .compiler.resolve import resolve_intent_ir
from .errors import AWGRTError, ProgramError, SerializationError
from .ir.intent import IntentIR
from .program import CompiledSequenceProgram


def _hardware_map(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, _, idx = item.partition("=")
        idx = idx.strip()
        if not (idx.isascii() and idx.isdigit() and len(idx) <= 3) or not name.strip():  # "²".isdigit() is true
            raise SystemExit(f"awgrt: --map expects NAME=INDEX[,NAME=INDEX...] with INDEX 0, 1, 2 ..., got {item!r}")
        if name.strip() in out:
            raise SystemExit(f"awgrt: --map names channel {name.strip()!r} twice")
        out[name.strip()] = int(idx)
    return out


def _compile(intent: IntentIR, args: argparse.Namespace) -> CompiledSequenceProgram:
    resolved = resolve_intent_ir(intent, args.fs)
    quantized = quantize_resolved_ir(resolved, _hardware_map(args.map), args.card, max_snap_hz=args.max_snap_hz)
    policy = "error" if args.clip_error else args.clip_policy
    program = compile_sequence_program(quantized, gain=args.gain, clip=args.clip, clip_policy=policy, fast_math=args.fast_math)
    return program.validate().with_intent(intent)


def _add_compile_options(p: argparse.ArgumentParser, fs: float) -> None:
    p.add_argument("--fs", type=float, default=fs, help="sample rate in S/s (default %(default)g)")
    p.add_argument("--card", default=DEFAULT_CARD, choices=sorted(CARDS), help="card model (default %(default)s)")
    p.add_argument("--map", help="logical to hardware channels, e.g. H=0,V=1 (default: declaration order)")
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--clip", type=float, default=0.9, help="clip level, fraction of full scale")
    p.add_argument("--clip-policy", choices=CLIP_POLICIES, default="warn", help="clipped samples: warn (default), error, or count in the report only")
    p.add_argument("--clip-error", action="store_true", help="same as --clip-policy error")
    p.add_argument("--fast-math", action="store_true", help="tones moving each on its own up to 1.4x faster, within 1 LSB of exact; the report says so")
    p.add_argument("--max-snap-hz", type=float, default=None, help="largest wrap-snapping shift allowed")
    p.add_argument("--detail", action="store_true", help="list every tone's snap, step and edge jump in the report")
    p.add_argument("--save", type=Path, help="write the compiled program (.npz)")


def _finish(program: CompiledSequenceProgram, args: argparse.Namespace) -> int:
    if program.report is not None:
        print(program.report.format(detail=args.detail))
    if args.save:
        print(f"\nsaved {program.save(args.save)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_SAMPLES, DEMO_TRIGGERS, demo_builder

    program = _compile(demo_builder().build_intent_ir(), args)
    _finish(program, args)
    if args.no_play:
        return 0
    return _play(program, DEMO_TRIGGERS, DEMO_SAMPLES, None if args.no_plot else args.plot)


def _play(program: CompiledSequenceProgram, triggers: tuple[int, ...], n_samples: int, plot: Path | None) -> int:
    """Play ``program`` on the simulated card with external triggers at ``triggers`` (samples),
    print the step trace and, with ``plot``, draw the playback there."""
    from .demo import play_demo
    from .plot import NO_MATPLOTLIB, have_matplotlib

    if plot is not None and not have_matplotlib():
        print(f"\nno figure: {NO_MATPLOTLIB}; playing without it", flush=True)
        plot = None
    if plot is not None:
        print(f"\nplaying on the simulated card and drawing {plot} ...", flush=True)
    run = play_demo(program, triggers=triggers, n_samples=n_samples, plot_path=plot)
    fs = program.sample_rate_hz
    print(f"\nPlayed on the simulated {program.card.name}: triggers at samples {list(triggers)}, {n_samples} samples")
    print(f"  {'sample':>9} {'time':>11}  step  segment")
    for sample, step, name in run.trace:
        print(f"  {sample:>9} {sample / fs * 1e6:>8.3f} us  {step:>4}  {name}")
    if run.plot is not None:
        print(f"\nplot: {run.plot.resolve()}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    try:
        intent = IntentIR.from_json(read_text(args.program, "program file"))
    except SerializationError as exc:
        if str(args.program) in exc.detail:
            raise
        raise SerializationError(f"{args.program}: {exc.detail}", value=exc.value) from None
    program = _compile(intent, args)
    _finish(program, args)
    if args.plot is not None and args.play_s is None:  # the program's tones, before it plays
        print(f"\ntones: {_plot_tones(program, args.plot)}")
    if args.play_s is not None:
        fs = program.sample_rate_hz
        n = round(args.play_s * fs)
        if not 0 < n <= 50_000_000:
            longest = f"{50_000_000 / fs:g} s at {fs / 1e6:g} MS/s"
            raise ProgramError(f"--play {args.play_s!r} s must be above 0 and at most {longest}", op="compile", value=args.play_s)
        every = round(args.trigger_every_s * fs)
        if every <= 0:
            raise ProgramError(f"--trigger-every {args.trigger_every_s!r} s must be above 0", op="compile", value=args.trigger_every_s)
        return _play(program, tuple(range(every // 100, n, every)), n, args.plot)
    return 0


def _plot_tones(program: CompiledSequenceProgram, path: Path) -> Path:
    program.plot(path=path)
    return path.resolve()


def cmd_cards(args: argparse.Namespace) -> int:
    for name, c in CARDS.items():
        mins = ", ".join(f"{n} ch: {m}" for n, m in sorted(c.min_segment_samples.items()) if n in c.channel_counts)
        print(
            f"{name}: {c.physical_channels} channels, {c.min_sample_rate_hz / 1e6:g}..{c.max_sample_rate_hz / 1e6:g} MS/s, "
            f"{c.memory_samples / 2**30:g} GiS memory, {c.max_steps} steps, {c.max_segments} segments, "
            f"loops 1..{c.max_loops}, segment length multiple of {c.segment_granularity} (min {mins})"
        )
    return 0


def cmd_hil(args: argparse.Namespace) -> int:
    from hil.runner import main as run_hil
    from hil.runner import recheck_main
    from hil.trends import main as run_trends

    if args.trend is not None:
        return run_trends(args.trend, nights=args.nights, plots=not args.no_plots)
    if args.recheck is not None:
        if args.recheck.resolve() == args.out.resolve():
            problem = f"--recheck {args.recheck} and --out are one folder: the new report would replace the one it checks again"
            raise SerializationError(problem, value=str(args.out))
        return recheck_main(args.recheck, args.rig, args.out, plots=not args.no_plots)
    return run_hil(args.rig, args.out, inject=args.inject, programs=args.program, plots=not args.no_plots, history=args.history)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import OUTLIER_SIGMAS, fit_calibration, load_data, plot_fit
    from .plot import NO_MATPLOTLIB, have_matplotlib

    card_mv = args.card_mv or args.full_scale_mv
    if not card_mv:
        print("awgrt: give the card's output amplitude during the sweep (--card-mv, or --full-scale-mv for RF in mV): the calibration records it",
              file=sys.stderr)
        return 2
    data = load_data(args.data, full_scale_mv=card_mv, card_gain=args.card_gain)
    band = tuple(x * 1e6 for x in args.band_mhz) if args.band_mhz else None
    fit = fit_calibration(data, band_hz=band, g_degree=args.g_degree, v0_degree=args.v0_degree, safety=args.safety, noise=args.noise)
    cal = fit.calibration
    cal.save(args.out)
    png = args.png or args.out.with_suffix(".png")
    if have_matplotlib():
        plot_fit(fit, png)
    else:  # the calibration is written; only the figure needs the plotting extra
        print(f"awgrt: no PNG report: {NO_MATPLOTLIB}; {args.out} is written", file=sys.stderr)
        png = None
    lo, hi = cal.band_hz
    print(f"AOD calibration over {lo / 1e6:g}..{hi / 1e6:g} MHz from {len(data.power)} points: {cal.trace}")
    print(f"  rms residual {fit.rms_relative:.2%} of the largest power; power 1.0 = {cal.p_ref:.4g} {cal.power_unit} (flat over the band)")
    if fit.outliers.any():
        points = fit.outlier_points()
        print(f"  {len(points)} outliers (red x in the plot), beyond {OUTLIER_SIGMAS:g} sigma; check these points:")
        print("\n".join(f"    {p}" for p in points[:20]) + (f"\n    ... and {len(points) - 20} more" if len(points) > 20 else ""))
    print(f"  wrote {args.out}" + (f" and {png}" if png else ""))
    return 0


def _log_to_stderr(level: int) -> logging.Handler:
    """The command's log: the library's "awgrt" and "hil" loggers on stderr, at ``level``; returns
    the handler, which :func:`main` removes when the command ends."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    for name in ("awgrt", "hil"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
    return handler


def build_parser() -> argparse.ArgumentParser:
    from .demo import DEMO_SAMPLE_RATE_HZ

    parser = argparse.ArgumentParser(prog="awgrt", description="Spectrum AWG sequence-mode runtime")
    parser.add_argument("--version", action="version", version=f"awgrt {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log what the library does (-v: info, -vv: debug) on stderr")
    # -v also after the command (awgrt demo -v), counted with any before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="log what the library does (-v: info, -vv: debug) on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", parents=[verbose], help="compile the demo tweezer program, print its report and play it on the simulator")
    _add_compile_options(p, DEMO_SAMPLE_RATE_HZ)
    p.add_argument("--plot", type=Path, default=Path("awgrt-out/demo.png"), help="where to write the PNG (default %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    p.add_argument("--no-play", action="store_true", help="compile and report only")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("compile", parents=[verbose], help="compile an intent program (JSON) and print its compile report")
    p.add_argument("program", help="intent program written by IntentIR.to_json()")
    _add_compile_options(p, DEMO_SAMPLE_RATE_HZ)
    p.add_argument("--plot", type=Path, default=None, help="draw the program's tones (or, with --play, the playback) as a PNG here")
    p.add_argument("--play", dest="play_s", type=float, default=None, metavar="SECONDS", help="play it on the simulated card this long; print the trace")
    p.add_argument("--trigger-every", dest="trigger_every_s", type=float, default=100e-6, metavar="SECONDS", help="with --play: a trigger this often (100 us)")
    p.set_defaults(func=cmd_compile)
    p = sub.add_parser("cards", parents=[verbose], help="list known cards and their limits")
    p.set_defaults(func=cmd_cards)
    p = sub.add_parser(
        "hil", parents=[verbose], help="run the HIL validation suite: play programs, capture them with a scope, check phase, wraps, tones, chirps"
    )
    p.add_argument(
        "--rig",
        default="sim",
        help="'sim' (simulated card and scope), 'emulated' (the lab-rig code path on the emulated card) or a rig file, e.g. rig.toml (default %(default)s)",
    )
    p.add_argument("--out", type=Path, default=Path("awgrt-out/hil"), help="report directory (default %(default)s)")
    p.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="FAULT",
        help="simulated or emulated rig only: phase-jump=2deg, wrap-delta=0.001, amp-error=1dB, chirp-rate=0.5%%, skew=1.6ns, clock=30ppm",
    )
    p.add_argument("--program", action="append", metavar="NAME", help="run only this suite program (repeatable)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--trend",
        metavar="DIR",
        default=None,
        help="instead of a run: plot every figure of DIR/hil-history.jsonl (DIR: a run's --out, or the history file) over nights and flag drifts "
        "(exit 1 if any)",
    )
    p.add_argument(
        "--history",
        metavar="FILE",
        type=Path,
        default=None,
        help="append a clean run's figures to FILE (default: OUT/hil-history.jsonl): one history for runs written to dated folders",
    )
    p.add_argument("--nights", type=int, default=10, metavar="N", help="--trend: compare the latest night with the N before it (default %(default)s)")
    p.add_argument(
        "--recheck",
        metavar="DIR",
        type=Path,
        default=None,
        help="instead of a run: check again the captures a run kept in DIR/captures (for --rig; report to --out)",
    )
    p.set_defaults(func=cmd_hil)
    p = sub.add_parser("calibrate", parents=[verbose], help="AOD optical-power calibration")
    cal = p.add_subparsers(dest="calibrate_command", required=True)
    p = cal.add_parser(
        "fit", parents=[verbose], help="fit P(f, a) = g(f) sin^2(pi/2 a / v0(f)) to measured data; write the calibration (JSON) and a PNG report"
    )
    p.add_argument("data", type=Path, help="CSV (header row) or JSON: freq_hz|freq_mhz, rf_amp|rf_mv, power|power_mw|efficiency[, weight]")
    p.add_argument("-o", "--out", type=Path, required=True, help="calibration file to write (JSON)")
    p.add_argument("--png", type=Path, default=None, help="report figure (default: the calibration file's name with .png)")
    p.add_argument("--full-scale-mv", type=float, default=None, help="the card's output amplitude (mV at full scale), for RF amplitudes given in mV")
    p.add_argument("--card-mv", type=int, default=None, help="the card's output amplitude (mV full scale) during the sweep; recorded in the calibration")
    p.add_argument("--card-gain", type=float, default=1.0, help="the compile gain the sweep was played at (default %(default)g)")
    p.add_argument("--band-mhz", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None, help="calibrated band (default: the data's span)")
    p.add_argument("--g-degree", type=int, default=4, help="degree of g(f) (default %(default)s)")
    p.add_argument("--v0-degree", type=int, default=2, help="degree of v0(f) (default %(default)s)")
    p.add_argument("--safety", type=float, default=0.95, help="largest RF amplitude as a fraction of v0 (default %(default)s)")
    p.add_argument(
        "--noise",
        choices=("proportional", "additive"),
        default="proportional",
        help="how the power readings scatter: in proportion to the power plus a floor (a power meter, a photodiode), or alike (default %(default)s)",
    )
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _log_to_stderr(logging.DEBUG if getattr(args, "verbose", 0) > 1 else logging.INFO if getattr(args, "verbose", 0) else logging.WARNING)
    try:
        return args.func(args)
    except AWGRTError as exc:
        print(f"awgrt: error: {exc}", file=sys.stderr)
        return 2
    finally:  # the command's log ends with the command (main may run inside a larger program)
        for name in ("awgrt", "hil"):
            logging.getLogger(name).removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
