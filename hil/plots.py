"""One PNG per check result, drawn from the arrays the check left in ``CheckResult.plot``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from awgrt.plot import new_figure, save_figure

from .analysis.result import CheckResult


def _quantity(value: float, unit: str, digits: int) -> str:
    """``value`` with its unit, a time in ns shown in us, ms or s when that reads better (a limit
    of 2e+06 ns is 2 ms)."""
    if unit == "ns" and np.isfinite(value):
        for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.{digits}g} {name}"
    return f"{value:.{digits}g} {unit}"


def _limits(ax, limit: float) -> None:
    for s in (1, -1):
        ax.axhline(s * limit, color="tab:red", ls="--", lw=0.8)


def _sides(ax, plot, span_s: float = 60e-9) -> None:
    """The samples (dots) within ``span_s`` of the boundary on each side, and each side's fitted
    model (line), so a step shows as the two fits disagreeing where they meet."""
    models = plot.get("models") or ()
    for i, ((t, y), color) in enumerate(zip(plot["sides"], ("tab:blue", "tab:orange"))):
        near = np.abs(t) <= np.abs(t).min() + span_s
        ax.plot(t[near] * 1e9, y[near], ".", color=color, ms=3, label="samples, left" if i == 0 else "samples, right")
        if i < len(models) and len(models[i]) == t.size:
            ax.plot(t[near] * 1e9, models[i][near], "-", color=color, lw=1.0, label="fit, left" if i == 0 else "fit, right")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("time from boundary (ns)")
    ax.set_ylabel("V")
    ax.legend(fontsize=6, loc="lower left")


def _boundary(ax_pair, plot, r: CheckResult) -> None:
    ax, bx = ax_pair
    _sides(ax, plot)
    tones = list(plot["steps_deg"])
    x = np.arange(len(tones))
    bx.errorbar(x, [plot["steps_deg"][t] for t in tones], yerr=[plot["sigmas_deg"][t] for t in tones], fmt="o", color="tab:purple")
    bx.set_xticks(x, [str(t) for t in tones])
    bx.set_xlim(-0.5, len(tones) - 0.5)
    _limits(bx, r.limit)
    bx.set_xlabel("tone id")
    bx.set_ylabel("phase step (deg)")


def _wraps(ax_pair, plot, r: CheckResult) -> None:
    ax, bx = ax_pair
    x = np.arange(len(plot["per_wrap_deg"]))
    ax.errorbar(x, plot["per_wrap_deg"], yerr=plot["sigmas_deg"], fmt="o")
    _limits(ax, r.limit)
    ax.set_xlabel("wrap fitted")
    ax.set_ylabel("phase step (deg)")
    _sides(bx, plot)
    bx.set_xlabel("time from the first fitted wrap (ns)")


def _spectrum(ax, plot, r: CheckResult) -> None:
    freqs, spec = plot["freqs"], plot["spec"]
    ref = max(m for _, m in plot["carriers"])
    band = np.zeros(freqs.size, dtype=bool)
    for f_c, _ in plot["carriers"]:
        band |= np.abs(freqs - f_c) <= 7.5 / plot["period"]
    ax.plot(freqs[band] / 1e6, 20 * np.log10(np.maximum(spec[band], 1e-300) / ref), lw=0.6)
    for f, dbc in plot["lines"]:
        ax.plot(f / 1e6, dbc, "x", color="tab:red", ms=4)
    ax.axhline(r.limit, color="tab:red", ls="--", lw=0.8)
    ax.set_ylim(-120, 5)
    ax.set_xlabel(f"frequency (MHz); resolution bandwidth {plot['rbw_hz'] / 1e3:.2f} kHz" if "rbw_hz" in plot else "frequency (MHz)")
    ax.set_ylabel("dBc")


def plot_check(r: CheckResult, path: str | Path) -> Path:
    """Write the figure of ``r`` to ``path`` (PNG) and return the path."""
    kind = r.plot["kind"]
    pair = kind in ("boundary", "wraps", "chirp")
    fig = new_figure(figsize=(11 if pair else 8, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if pair else 1)
    if kind == "boundary":
        _boundary(axes, r.plot, r)
    elif kind == "wraps":
        _wraps(axes, r.plot, r)
    elif kind == "spectrum":
        _spectrum(axes, r.plot, r)
    elif kind == "fit":
        t, y, model = r.plot["t"], r.plot["y"], r.plot.get("model")
        tones_hz = [float(f) for f in r.plot.get("tones_hz", [])]
        mid = int(np.argmin(np.abs(t)))
        dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
        half = 100  # 200 samples at the window centre, or three periods of the slowest tone: the sine is readable
        if tones_hz and min(tones_hz) > 0:
            half = max(half, int(1.5 / min(tones_hz) / dt))
        lo = min(max(0, mid - half), max(0, t.size - 2 * half))
        sel = slice(lo, lo + 2 * half)
        axes.plot(t[sel] * 1e9, y[sel], ".", ms=3, label="samples")
        if model is not None and len(model) == t.size:
            axes.plot(t[sel] * 1e9, model[sel], "-", lw=1.0, label="sine fit")
        tones = ", ".join(f"{f / 1e6:.4g}" for f in tones_hz) or "-"
        n_fit, span = r.plot.get("fitted", (t.size, float(np.ptp(t))))
        axes.text(
            0.01,
            0.97,
            f"tones {tones} MHz; fitted over {n_fit} samples ({span * 1e6:.2f} us)\n"
            f"{r.name}: {r.measured:+.3f} +- {r.sigma:.3f} {r.unit} (limit +-{r.limit:.3g})\n{r.detail.get('clocks', '')}",
            transform=axes.transAxes,
            va="top",
            fontsize=7,
        )
        axes.set_xlabel(r.plot.get("xlabel", "time from window centre (ns)"))
        axes.set_ylabel("V")
        axes.legend(fontsize=7, loc="lower right")
    elif kind == "chirp":
        ax, bx = axes
        t, fm, fp = r.plot["t"], r.plot["f_measured_hz"], r.plot["f_programmed_hz"]
        ax.plot(t * 1e6, fm / 1e6, ".", ms=2, label="measured (DDC phase slope)")
        ax.plot(t * 1e6, fp / 1e6, "-", lw=1.0, label=f"programmed, {r.plot['rate_hz_per_s'] / 1e12:.4g} MHz/us")
        ax.set_xlabel("time from trigger (us)")
        ax.set_ylabel("frequency (MHz)")
        ax.legend(fontsize=7)
        bx.plot(t * 1e6, (fm - fp) / 1e3, ".", ms=2)
        bx.axhline(0, color="k", lw=0.5)
        bx.set_xlabel("time from trigger (us)")
        bx.set_ylabel("measured - programmed (kHz)")
        bx.set_title(f"rate error {r.measured:+.4f} +- {r.sigma:.4f} % (limit +-{r.limit:.3g} %)", fontsize=8)
    elif kind == "amplitude":
        axes.bar([f"{f / 1e6:.1f}" for f in r.plot["tones_hz"]], r.plot["errors_db"])
        _limits(axes, r.limit)
        axes.set_xlabel("tone (MHz)")
        axes.set_ylabel("amplitude error (dB)")
    elif kind == "trajectory":
        axes.plot(r.plot["t"] * 1e6, r.plot["residual_deg"], lw=0.6, label="residual")
        for sign in (1, -1):  # what is judged: the rms, against its limit
            axes.axhline(sign * r.measured, color="tab:green", ls=":", lw=1.0, label="+- rms (measured)" if sign > 0 else None)
            axes.axhline(sign * r.limit, color="tab:red", ls="--", lw=0.8, label="+- limit on the rms" if sign > 0 else None)
        axes.set_xlabel("time from trigger (us)")
        axes.set_ylabel("phase residual (deg)")
        axes.legend(fontsize=7, loc="lower right")
    elif kind == "crosstalk":
        p = r.plot
        axes.plot(p["freqs"] / 1e6, p["dbc"], lw=0.6, color="0.35", label="this channel's spectrum")
        for i, f in enumerate(p["own_hz"]):
            axes.axvline(f / 1e6, color="tab:blue", ls=":", lw=0.8, label="its own tones" if i == 0 else None)
        for i, (f, level) in enumerate(p["levels"].items()):
            axes.plot(f / 1e6, level, "x", color="tab:orange", ms=8, mew=2, label="the other channel's tones, measured" if i == 0 else None)
            axes.annotate(f"{level:.1f} dBc", (f / 1e6, level), xytext=(6, 6), textcoords="offset points", fontsize=7)
        axes.axhline(r.limit, color="tab:red", ls="--", lw=0.8, label=f"limit {r.limit:g} dBc")
        axes.axhline(p["floor_dbc"], color="0.5", ls="-.", lw=0.8, label=f"noise floor {p['floor_dbc']:.1f} dBc")
        axes.set_ylim(max(-140.0, min(p["floor_dbc"], min(p["levels"].values())) - 20), 5)
        axes.set_xlabel("frequency (MHz)")
        axes.set_ylabel("dBc (of its strongest tone)")
        axes.legend(fontsize=7, loc="upper right")
    elif kind == "glitch":
        axes.plot(r.plot["t"] * 1e6, r.plot["steps_deg"], lw=0.6)
        _limits(axes, r.limit)
        axes.set_xlabel("time from trigger (us)")
        axes.set_ylabel("step in mean residual (deg)")
    elif kind == "pulses":
        axes.plot(r.plot["t"] * 1e6, r.plot["v"], lw=0.6)
        for e in r.plot["edges"]:
            axes.axvline(e * 1e6, color="tab:green", lw=0.8)
        for e in r.plot["asked"]:
            axes.axvline(e * 1e6, color="tab:red", ls="--", lw=0.8)
        axes.set_xlabel("time from trigger (us): measured edges (green), asked (red, dashed)")
        axes.set_ylabel("V")
    elif kind == "span":
        axes.plot(r.plot["t"] * 1e6, r.plot["v"], lw=0.6)
        axes.axvspan(0.0, r.plot["asked_end_s"] * 1e6, color="tab:green", alpha=0.12, label="asked to be seen")
        axes.axvline(r.plot["t"][-1] * 1e6, color="tab:red", ls="--", lw=0.8, label="record ends")
        axes.set_xlabel("time from the first trigger (us)")
        axes.set_ylabel("V")
        axes.legend(loc="upper right")
    elif kind == "tracks":
        ylabel = str(r.plot.get("ylabel", r.unit))
        for name, t, values in r.plot["tracks"]:
            y = np.asarray(values, dtype=float)
            if "phase" in ylabel and "deg" in ylabel and y.size:  # a wrap through +-180 deg is no 350 deg jump
                y = np.degrees(np.unwrap(np.radians(y)))
            axes.plot(np.asarray(t) * 1e6, y, ".-", ms=2, lw=0.6, label=name)
        axes.set_xlabel("time from trigger (us)")
        axes.set_ylabel(r.plot.get("ylabel", r.unit))
        if len(r.plot["tracks"]) <= 8:
            axes.legend(fontsize=7)
    elif kind == "levels":
        labels, values = list(r.plot["labels"]), [float(v) for v in r.plot["values"]]
        x = np.arange(len(labels))
        axes.bar(x, values, color="tab:blue", alpha=0.35, width=0.6)
        # a marker and the number too: a value far below its limit is no invisible sliver
        axes.errorbar(x, values, yerr=r.plot.get("sigmas"), fmt="o", color="tab:blue", ms=5, capsize=4)
        for xi, v in zip(x, values):
            axes.annotate(f"{v:.3g}", (xi, v), xytext=(8, 0), textcoords="offset points", fontsize=7, va="center")
        judged = r.plot.get("judged", range(len(labels)))  # the bars the limit applies to
        for xi in judged:
            for sign in (1, -1) if r.two_sided else (1,):
                axes.hlines(sign * r.limit, xi - 0.4, xi + 0.4, color="tab:red", ls="--", lw=1.0)
        axes.set_xticks(x, labels)
        axes.set_xlim(-0.7, len(labels) - 0.3)
        axes.set_ylabel(f"{r.unit} (limit: red, dashed)")
    verdict = r.verdict.upper() if not r.passed else "pass"
    value = f"{_quantity(r.measured, r.unit, 4)} +- {_quantity(r.sigma, r.unit, 2)} (limit {_quantity(r.limit, r.unit, 4)})"
    fig.suptitle(f"{r.program}: {r.name} = {value} {verdict}", fontsize=9)
    save_figure(fig, path, dpi=90)
    return Path(path)
