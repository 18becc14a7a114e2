"""Real-time rearrangement, shot after shot, with a synthetic camera.

A row of tweezers (default 32 sites, 1 MHz apart) is loaded at random (default 55 % fill). For
each shot the camera's occupancy goes to ``Rearranger.shot``, which plans the moves into the
central target block (default 16 sites), writes them into the card's move slot and arms it while
the card keeps holding the loading pattern; the shot is then triggered and played through on the
simulated card. Printed: the latency from ``shot()`` being called to the card armed (median, p99,
per stage), how many shots filled the block, the memory of the prepared tables and the bytes each
shot writes. Drawn (PNG): the latency histogram, and one shot's tone trajectories as the card
played them (a spectrogram of its output, the planned trajectories drawn over it).

Run:  python examples/realtime_rearrange.py [--shots N] [--fill F] [--seed S] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.signal import spectrogram

from awgrt import Runtime
from awgrt.backends import SimBackend
from awgrt.ir.shapes import FREQ_SHAPES
from awgrt.plot import new_figure, save_figure
from awgrt.rearrange import Move, Rearranger, TweezerArray

FS = 625e6
HOLD_S = 32e-6  # 20000 samples: the 1 MHz grid wraps seamlessly without snapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=32, help="tweezer sites in the row")
    parser.add_argument("--targets", type=int, default=16, help="sites in the central target block")
    parser.add_argument("--fill", type=float, default=0.55, help="loading probability per site")
    parser.add_argument("--shots", type=int, default=300, help="shots to play")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic camera")
    parser.add_argument("--out", default="realtime_rearrange", help="folder for the PNG figures")
    args = parser.parse_args(argv)
    if not (2 <= args.targets <= args.sites) or not 0 < args.fill <= 1 or args.shots < 1:
        parser.error("need 2 <= targets <= sites, 0 < fill <= 1 and at least one shot")

    sites = [70e6 + 1e6 * i for i in range(args.sites)]
    first = (args.sites - args.targets) // 2
    array = TweezerArray(target=tuple(range(first, first + args.targets)), sites_hz=sites, amp=0.6 / args.sites, move=Move(time_s=100e-6, ramp_s=10e-6))
    be = SimBackend("M4i.6631-x8")
    rt = Runtime(be, trigger="external")
    rearranger = Rearranger(array, load_hold_s=HOLD_S, target_hold_s=HOLD_S)
    prepared = rearranger.prepare(rt)
    print(prepared)
    card = be.sim
    card.external_trigger(card.now + 100)  # the experiment's first trigger: the loading pattern plays
    card.advance(30000)

    camera = np.random.default_rng(args.seed)
    latency, complete, sizes = [], 0, []
    shown = None
    for k in range(args.shots):
        occupancy = camera.random(args.sites) < args.fill
        t = time.perf_counter()
        report = rearranger.shot(occupancy)
        latency.append(time.perf_counter() - t)
        complete += report.complete
        sizes.append(report.bytes_written)
        steps = rearranger.cycle_steps(report.cycle)
        t0 = card.now
        card.external_trigger(t0 + 500)  # the timing system: play the moves
        played = card.render(2 * 20000 + rearranger.move_samples + 2000)
        if shown is None or k == args.shots // 2:
            events = card.events_between(t0, card.now)
            m0 = next(e.sample for e in events if e.step == steps["move"]) - t0
            shown = (report, occupancy, played[m0 : m0 + rearranger.move_samples, 0].copy())
        card.external_trigger(card.now + 500)  # end of the experiment: back to the loading pattern
        card.advance(25000)
    assert rt.verify() == ()  # the card holds what the last shot wrote
    lat = np.array(latency) * 1e3
    print(f"{args.shots} shots at {args.fill:.0%} fill: {complete} filled all {args.targets} targets")
    print(f"shot() -> card armed: median {np.median(lat):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms, max {lat.max():.3f} ms")
    print(f"each shot wrote {int(np.median(sizes))} bytes (median): {np.median(sizes) / 2.8e9 * 1e6:.0f} us at the M4i's 2.8 GB/s upload rate")
    print(shown[0])

    out = Path(args.out)
    fig = new_figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.hist(lat, bins=40, color="tab:blue")
    ax.axvline(np.median(lat), color="k", ls="--", label=f"median {np.median(lat):.3f} ms")
    ax.axvline(np.percentile(lat, 99), color="tab:red", ls=":", label=f"p99 {np.percentile(lat, 99):.3f} ms")
    ax.set_xlabel("shot() to card armed (ms)")
    ax.set_ylabel("shots")
    ax.set_title(f"{args.sites} sites -> {args.targets} targets, {args.shots} shots")
    ax.legend()
    save_figure(fig, out / "latency.png")
    fig = trajectories_figure(shown, array, prepared, rearranger.move_samples)
    save_figure(fig, out / "trajectories.png")
    print(f"plots: {(out / 'latency.png').resolve()}, {(out / 'trajectories.png').resolve()}")
    return 0


def trajectories_figure(shown, array: TweezerArray, prepared, n: int):
    """One shot's move segment as the card played it (spectrogram) with the planned tracks."""
    report, occupancy, x = shown
    move = array.move
    r, m = round(move.ramp_s * FS), round(move.time_s * FS)
    f, t, power = spectrogram(x.astype(np.float64), fs=FS, nperseg=2048, noverlap=1536)
    fig = new_figure(figsize=(8, 5))
    ax = fig.add_subplot()
    site_hz = np.array(prepared.site_hz["X"])
    target_hz = dict(zip(array.target, prepared.target_hz["X"]))
    lo, hi = site_hz.min() - 2e6, site_hz.max() + 2e6
    band = (f >= lo) & (f <= hi)
    ax.pcolormesh(t * 1e6, f[band] / 1e6, 10 * np.log10(power[band] + 1e-3), shading="auto", cmap="Greys")
    k = np.arange(n)
    u = np.clip((k - r) / m, 0.0, 1.0)
    s_of_u = FREQ_SHAPES[move.kind].progress(u)
    for s, tgt in report.plans["X"].moves:
        ax.plot(k / FS * 1e6, (site_hz[s] + (target_hz[tgt] - site_hz[s]) * s_of_u) / 1e6, lw=1, color="tab:orange")
    for s in range(site_hz.size):
        if s not in {a for a, _ in report.plans["X"].moves}:
            ax.plot([0, r / FS * 1e6], [site_hz[s] / 1e6] * 2, lw=1, color="tab:red" if occupancy[s] else "tab:blue", ls="--")
    ax.set_xlabel("time in the move segment (us)")
    ax.set_ylabel("frequency (MHz)")
    ax.set_title("played (spectrogram) and planned: moves (orange), empty sites (blue) and spare atoms (red) ramped off")
    ax.title.set_fontsize(9)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
