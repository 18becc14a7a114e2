"""Figures of programs and of what a card played, as matplotlib Figures.

- :func:`plot_program` draws a program **before it plays**: per channel, each tone's frequency and
  amplitude along the step walk (every step once), segment boundaries named, looped segments and
  trigger waits marked, snapped tones and eased segments highlighted;
  ``CompiledSequenceProgram.plot()``, ``QuantizedIR.plot()`` and ``ResolvedIR.plot()`` call it;
- :func:`plot_playback` draws what a card played: samples per channel (volts when the card's
  amplitude is given) with every step entry and trigger marked, and a spectrogram per channel.

Every function takes an optional ``fig`` to draw into, returns the Figure, and saves a PNG when
given a ``path``. None of them touches pyplot's state or the user's backend (figures are made with
:func:`new_figure`, so they work in notebooks, scripts and headless runs alike). Needs matplotlib
(``pip install 'awgrt[plot]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AWGRTError


def have_matplotlib() -> bool:
    """Whether figures can be drawn here (matplotlib installed: ``pip install 'awgrt[plot]'``)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


#: What to tell a user whose installation cannot draw.
NO_MATPLOTLIB = "matplotlib is not installed (pip install 'awgrt[plot]')"


def new_figure(**kwargs: Any):
    """A matplotlib Figure with an Agg canvas of its own: drawn and saved without pyplot, so the
    user's backend and pyplot's current figure are left alone (show it in a notebook by making it
    the cell's value, or save it)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise AWGRTError(f"plotting needs matplotlib: {NO_MATPLOTLIB}") from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path | None, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` (its folder made if needed); nothing when ``path`` is None."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)


# ---------------------------------------------------------------------------------- programs


def _program_ir(program: Any, what: str) -> Any:
    ir = getattr(program, "quantized", None) or program
    if not hasattr(ir, "segments") or not ir.segments or not hasattr(ir.segments[0], "tracks"):
        raise AWGRTError(
            f"{what} draws a compiled program, a quantized IR or a resolved IR; a program loaded from a file keeps its intent program "
            "(program.intent): compile that to plot it",
            op="plot",
        )
    return ir


def _positions(ir: Any, positions: Any) -> dict:
    """{channel: PositionCalibration}: the program's own (``logical_channel(..., position=)``),
    then those given."""
    found = dict(getattr(ir, "positions", ()) or ())
    found.update(dict(positions or {}))
    return found


def _calibrated(ir: Any) -> set[str]:
    """Channels whose amplitudes were asked as optical power (an AOD calibration)."""
    return {t.channel for s in ir.segments for t in s.tracks if any(sp.optical is not None for p in t.pieces for sp in p.tones)}


def _where_and_how_much(span: Any, u: np.ndarray, position: Any, optical: bool) -> tuple[np.ndarray, np.ndarray]:
    """A tone's place (um through ``position``, else MHz) and strength (the optical power asked on
    a calibrated channel, else the RF amplitude) at normalised times ``u`` of its span."""
    f = span.frequency_at(u)
    where = np.asarray(position.position_um(f), dtype=np.float64) if position is not None else f / 1e6
    much = span.power_at(u) if optical and span.optical is not None else span.amplitude_at(u)
    return where, much


#: Tones listed per channel in :func:`plot_program`'s colour legend (the rest are counted).
LEGEND_TONES = 24


def plot_program(program: Any, *, fig=None, path: str | Path | None = None, points_per_piece: int = 200, positions: Any = None):
    """Each tone's frequency and amplitude along the step walk, per channel (see module doc).

    ``program``: a ``CompiledSequenceProgram`` (its quantized IR), a ``QuantizedIR`` or a
    ``ResolvedIR``. Time runs along the steps in program order, each segment once; a looped
    segment is shaded and labelled with its loop count, a trigger wait with "waits for trigger".
    Tones keep one colour across segments (by tone id); in the frequency panels a tone's line
    fades with its amplitude (a tone ramping off fades out instead of seeming to share a site with
    the tone that stays). A channel is drawn as it was asked: in um where it has a position
    calibration (the program's own, or ``positions={channel: PositionCalibration}``), else in MHz;
    its strength as the optical power asked (fraction of the calibration's maximum) on an
    AOD-calibrated channel, else as RF amplitude (fraction of full scale)."""
    ir = _program_ir(program, "plot_program")
    where_of = _positions(ir, positions)
    optical = _calibrated(ir)
    fs = ir.sample_rate_hz
    channels = list(getattr(ir, "hardware_channels", None) or getattr(ir, "logical_channels", None) or ())
    snaps = {(s.segment, s.channel, s.tone): s.shift_hz for s in getattr(ir, "snaps", ()) if s.shift_hz}
    report = getattr(program, "report", None)
    notes = tuple(getattr(ir, "notes", ())) + (tuple(report.notes) if report is not None else ())
    eased = {n.segment for n in notes if n.kind == "frequency_eased"}
    fig = fig or new_figure(figsize=(13, 2.4 * 2 * max(1, len(channels))), layout="constrained")
    axes = fig.subplots(2 * len(channels), 1, sharex=True, squeeze=False)[:, 0]
    cmap = _tone_colours()
    from matplotlib.collections import LineCollection

    peak: dict[str, float] = {}
    for g in ir.segments:
        for t in g.tracks:
            ends = np.array([0.0, 1.0])
            top = max((float(_where_and_how_much(s, ends, None, t.channel in optical)[1].max()) for p in t.pieces for s in p.tones), default=0.0)
            peak[t.channel] = max(peak.get(t.channel, 0.0), top)
    rf_axes = {ch: axes[2 * ci + 1].twinx() for ci, ch in enumerate(channels) if ch in optical}
    first_seen: dict[str, dict[int, tuple[float, str]]] = {ch: {} for ch in channels}  # tone -> (place, segment) where it first plays
    t0 = 0
    starts = []
    for seg in ir.segments:
        starts.append((t0, seg))
        for ci, ch in enumerate(channels):
            ax_f, ax_a = axes[2 * ci], axes[2 * ci + 1]
            track = seg.track(ch) if hasattr(seg, "track") else next(t for t in seg.tracks if t.channel == ch)
            for piece in track.pieces:
                u = np.linspace(0.0, 1.0, points_per_piece if not piece.constant else 2)
                t_us = (t0 + piece.start + u * piece.n) / fs * 1e6
                for span in piece.tones:
                    colour = cmap(span.tone)
                    snapped = (seg.name, ch, span.tone) in snaps
                    f_mhz, amp = _where_and_how_much(span, u, where_of.get(ch), ch in optical)
                    first_seen[ch].setdefault(span.tone, (float(f_mhz[0]), seg.name))
                    # the frequency line fades with the tone's amplitude (never quite away: 0.12)
                    weight = np.clip((amp[:-1] + amp[1:]) / (2 * peak[ch]), 0.12, 1.0) if peak[ch] > 0 else np.ones(u.size - 1)
                    points = np.column_stack([t_us, f_mhz]).reshape(-1, 1, 2)
                    rgba = np.tile(colour, (u.size - 1, 1))
                    rgba[:, 3] = weight
                    segments = list(np.concatenate([points[:-1], points[1:]], axis=1))
                    ax_f.add_collection(LineCollection(segments, colors=rgba, lw=2.4 if snapped else 1.1))
                    ax_a.plot(t_us, amp, color=colour, lw=1.1)
                    if ch in rf_axes:  # what the card plays for it: the RF amplitude of that power at that frequency
                        rf_axes[ch].plot(t_us, span.amplitude_at(u), color=colour, lw=0.8, ls=":", alpha=0.8)
        t0 += seg.n_samples
    total_us = t0 / fs * 1e6
    from matplotlib.lines import Line2D

    for ci, ch in enumerate(channels):
        ax_f, ax_a = axes[2 * ci], axes[2 * ci + 1]
        ax_f.autoscale_view()  # line collections do not move the limits by themselves
        # which colour is which tone: its id, where it starts and the segment it first plays in
        # (highest first, as the panel reads); outside the axes, so no curve is covered
        tones = sorted(first_seen[ch].items(), key=lambda kv: -kv[1][0])
        unit = "um" if ch in where_of else "MHz"
        shown = tones[:LEGEND_TONES]
        handles = [Line2D([], [], color=cmap(t), lw=2) for t, _ in shown]
        labels = [f"#{t} {place:.4g} {unit} ({seg})" for t, (place, seg) in shown]
        if len(tones) > len(shown):
            handles.append(Line2D([], [], color="none"))
            labels.append(f"... {len(tones) - len(shown)} more")
        if handles:
            ax_f.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=6, frameon=False, title=f"{ch} tones", title_fontsize=7)
        ax_f.set_ylabel(f"{ch}: position (um)" if ch in where_of else f"{ch}: frequency (MHz)")
        ax_f.ticklabel_format(axis="y", useOffset=False)
        ax_a.set_ylabel(f"{ch}: optical power (of max)" if ch in optical else f"{ch}: amplitude (FS)")
        ax_a.set_ylim(bottom=0)
        if ch in rf_axes:
            rf_axes[ch].set_ylabel("RF amplitude played (FS), dotted", fontsize=8)
            rf_axes[ch].set_ylim(bottom=0)
        for start, seg in starts:
            x0, x1 = start / fs * 1e6, (start + seg.n_samples) / fs * 1e6
            for ax in (ax_f, ax_a):
                ax.axvline(x0, color="0.3", lw=0.7)
                if seg.mode == "wait_trig":
                    ax.axvspan(x0, x1, color="tab:orange", alpha=0.10, lw=0)
                elif seg.mode == "loop_n" and seg.loops > 1:
                    ax.axvspan(x0, x1, color="tab:blue", alpha=0.08, lw=0)
            if ci == 0:
                mode = {"wait_trig": "waits for trigger", "loop_n": f"loop x{seg.loops}" if seg.loops > 1 else "once"}.get(seg.mode, "once")
                extra = " (eased)" if seg.name in eased else ""
                ax_f.text(x0, 1.01, f" {seg.name}: {mode}{extra}", transform=ax_f.get_xaxis_transform(), rotation=30, fontsize=7, va="bottom")
        for start, seg in starts:  # one label per segment (tone by tone they overlap)
            shifts = [shift for (seg_name, ch_name, _), shift in snaps.items() if ch_name == ch and seg_name == seg.name]
            if shifts:
                x = (start + seg.n_samples / 2) / fs * 1e6
                big = max(shifts, key=abs)
                label = f"{len(shifts)} snapped, up to {big / 1e3:+.1f} kHz"
                ax_f.text(x, 0.98, label, transform=ax_f.get_xaxis_transform(), fontsize=6, ha="center", va="top", color="0.25")
    axes[-1].set_xlabel("time along the step walk, each step once (us)")
    axes[-1].set_xlim(0, total_us)
    last = getattr(ir, "last_step", "ring")
    fig.suptitle(
        f"{len(ir.segments)} segments at {fs / 1e6:g} MS/s; shaded: looped (blue), waits for a trigger (orange); colour: one per tone; "
        f"faint: low amplitude; thick: snapped tones; after the last step: {'back to the first' if last == 'ring' else 'end'}",
        fontsize=9,
    )
    save_figure(fig, path)
    return fig


def _channel_samples(ir: Any, channel: str, ks: list[np.ndarray], where: Any, optical: bool) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per tone of ``channel``: its place and strength (see :func:`_where_and_how_much`) at the
    samples ``ks[i]`` of every segment i, concatenated (NaN place and zero strength where the tone
    is not playing)."""
    total = sum(k.size for k in ks)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    at = 0
    for seg, k in zip(ir.segments, ks):
        pieces: tuple = next((t.pieces for t in seg.tracks if t.channel == channel), ())
        for i, piece in enumerate(pieces):
            inside = (k >= piece.start) & (k < piece.stop) if i < len(pieces) - 1 else k >= piece.start
            if not inside.any():
                continue
            u = (k[inside] - piece.start) / max(1, piece.n - 1)
            idx = at + np.flatnonzero(inside)
            for span in piece.tones:
                place, much = out.setdefault(span.tone, (np.full(total, np.nan), np.zeros(total)))
                place[idx], much[idx] = _where_and_how_much(span, np.clip(u, 0.0, 1.0), where, optical)
        at += k.size
    return out


def plot_plane(program: Any, x: str, y: str, *, fig=None, path: str | Path | None = None, points_per_segment: int = 120, positions: Any = None):
    """The tweezer plane of a 2D AOD pair: every tweezer (one tone of channel ``x`` with one of
    channel ``y``) drawn where it is along the step walk, one colour per segment, fading with its
    strength (the product of the two tones'), from a hollow circle where the program starts to a
    dot where it ends (a cross where one is turned off on the way). Axes in um where the channel has a position calibration (the program's own,
    or ``positions={channel: PositionCalibration}``), else in MHz. ``program`` as for
    :func:`plot_program`."""
    ir = _program_ir(program, "plot_plane")
    channels = list(getattr(ir, "hardware_channels", None) or getattr(ir, "logical_channels", None) or ())
    for name, ch in (("x", x), ("y", y)):
        if ch not in channels:
            raise AWGRTError(f"plot_plane({name}={ch!r}): the program's channels are {channels}", op="plot", value=ch)
    if x == y:
        raise AWGRTError(f"plot_plane needs two different channels (x={x!r}, y={y!r})", op="plot", value=(x, y))
    where_of, optical = _positions(ir, positions), _calibrated(ir)
    ks = [np.unique(np.linspace(0, s.n_samples - 1, max(2, points_per_segment)).round().astype(np.int64)) for s in ir.segments]
    seg_of = np.concatenate([np.full(k.size, i) for i, k in enumerate(ks)])
    xs = _channel_samples(ir, x, ks, where_of.get(x), x in optical)
    ys = _channel_samples(ir, y, ks, where_of.get(y), y in optical)
    fig = fig or new_figure(figsize=(8.5, 7), layout="constrained")
    ax = fig.subplots()
    import matplotlib
    from matplotlib.collections import LineCollection

    colours = matplotlib.colormaps["tab10"]
    tracks = [(xp, yp, xa * ya) for xp, xa in xs.values() for yp, ya in ys.values()]
    peak = max((float(s.max()) for _, _, s in tracks), default=0.0) or 1.0
    starts, ends, gone = [], [], []
    for xp, yp, strength in tracks:
        on = np.isfinite(xp) & np.isfinite(yp) & (strength > 0)
        if not on.any():
            continue
        if not on[-1]:  # ramped off or removed on the way: marked where it was last
            gone.append(np.array([xp, yp])[:, np.flatnonzero(on)[-1]])
        pts = np.column_stack([xp, yp])
        pair = on[:-1] & on[1:]
        lines = np.stack([pts[:-1], pts[1:]], axis=1)[pair]
        rgba = np.array([colours(int(seg_of[i]) % 10) for i in np.flatnonzero(pair)])
        if rgba.size:
            rgba[:, 3] = np.clip((strength[:-1][pair] + strength[1:][pair]) / (2 * peak), 0.15, 1.0)
            ax.add_collection(LineCollection(lines, colors=rgba, lw=1.4))
        if on[0]:
            starts.append(pts[0])
        if on[-1]:
            ends.append(pts[-1])
    if starts:
        s = np.array(starts)
        ax.scatter(s[:, 0], s[:, 1], s=40, facecolors="none", edgecolors="0.2", lw=1.0, label=f"where it starts ({len(starts)})", zorder=3)
    if ends:
        e = np.array(ends)
        ax.scatter(e[:, 0], e[:, 1], s=14, color="black", label=f"where it ends ({len(ends)})", zorder=4)
    if gone:
        g = np.array(gone)
        ax.scatter(g[:, 0], g[:, 1], s=36, marker="x", color="tab:red", lw=1.2, label=f"turned off on the way ({len(gone)})", zorder=4)
    for i, seg in enumerate(ir.segments):
        ax.plot([], [], color=colours(i % 10), lw=2, label=f"{seg.name}")
    ax.autoscale_view()
    ax.margins(0.06)
    unit = {ch: "um" if ch in where_of else "MHz" for ch in (x, y)}
    ax.set_xlabel(f"{x}: {'position' if unit[x] == 'um' else 'frequency'} ({unit[x]})")
    ax.set_ylabel(f"{y}: {'position' if unit[y] == 'um' else 'frequency'} ({unit[y]})")
    if unit[x] == unit[y]:
        ax.set_aspect("equal", adjustable="datalim")
    ax.ticklabel_format(useOffset=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="segment", title_fontsize=8, frameon=False)
    ax.set_title(
        f"tweezer plane {x} x {y}: {len(xs)} x {len(ys)} tones over {len(ir.segments)} segments; colour: segment; faint: weak",
        fontsize=9,
    )
    save_figure(fig, path)
    return fig


def _tone_colours():
    import matplotlib

    base = matplotlib.colormaps["tab20"]
    return lambda tone: base(tone % 20)


# ---------------------------------------------------------------------------------- playback


def plot_playback(
    samples: np.ndarray,
    sample_rate_hz: float,
    boundaries: Sequence[tuple[int, str]],
    path: str | Path | None = None,
    *,
    channel_names: Sequence[str] | None = None,
    title: str = "",
    triggers: Sequence[int] = (),
    amplitude_mv: float | Sequence[float] | None = None,
    fig=None,
    resolution_hz: float = 100e3,
):
    """What a card played: one panel of samples per channel against time (volts when the card's
    ``amplitude_mv`` at full scale is given, else fractions of full scale), every step entry
    marked and named, triggers marked (legend), and a spectrogram per channel (resolution
    bandwidth about ``resolution_hz``, zoomed on the band the tones occupy, with a colour bar).
    ``boundaries``: (sample, label) of each step entry. Returns the Figure; saves a PNG to
    ``path`` if given."""
    from scipy.signal import spectrogram

    n, n_ch = samples.shape
    names = list(channel_names or [f"ch{i}" for i in range(n_ch)])
    if amplitude_mv is None:
        scale, unit = [1 / 32767] * n_ch, "FS"
    else:
        mv = [float(m) for m in amplitude_mv] if isinstance(amplitude_mv, Sequence) else [float(amplitude_mv)] * n_ch
        scale, unit = [m / 1000 / 32767 for m in mv], "V"
    t_us = np.arange(n) / sample_rate_hz * 1e6
    fig = fig or new_figure(figsize=(13, 2.5 * 2 * n_ch), layout="constrained")
    axes = fig.subplots(2 * n_ch, 1, sharex=True, squeeze=False)[:, 0]
    for ch in range(n_ch):
        ax = axes[ch]
        step = max(1, n // 4000)  # min/max envelope per pixel column keeps long captures readable
        m = (n // step) * step
        y = samples[:m, ch] * scale[ch]
        if step > 1:
            blocks = y.reshape(-1, step)
            ax.fill_between(t_us[:m:step], blocks.min(axis=1), blocks.max(axis=1), color="tab:blue", lw=0)
        else:
            ax.plot(t_us[:m], y, lw=0.5)
        top = 32767 * scale[ch]
        ax.set_ylim(-top, top)
        ax.set_ylabel(f"{names[ch]} ({unit})")
        for i, (s, label) in enumerate(boundaries):
            ax.axvline(s / sample_rate_hz * 1e6, color="tab:red", lw=0.8, alpha=0.7, label="step entry" if i == 0 else None)
            if ch == 0:
                ax.text(s / sample_rate_hz * 1e6, 0.92 * top, f" {label}", rotation=90, va="top", fontsize=7, color="tab:red")
        for i, s in enumerate(triggers):
            ax.axvline(s / sample_rate_hz * 1e6, color="tab:green", lw=1.0, ls="--", label="trigger" if i == 0 else None)
        if ch == 0 and (boundaries or triggers):
            ax.legend(loc="lower right", fontsize=7)
    nper = int(min(max(64, 2 ** round(np.log2(sample_rate_hz / resolution_hz))), max(64, n // 4)))
    for ch in range(n_ch):
        ax = axes[n_ch + ch]
        f, tt, sxx = spectrogram(samples[:, ch].astype(np.float64) * scale[ch], fs=sample_rate_hz, nperseg=nper, noverlap=nper // 2)
        db = 10 * np.log10(sxx + 1e-30)
        peak = float(db.max())
        mesh = ax.pcolormesh(tt * 1e6, f / 1e6, db, shading="auto", cmap="magma", vmin=peak - 60, vmax=peak)
        strong = np.flatnonzero(db.max(axis=1) > peak - 30)
        if strong.size:
            lo, hi = f[strong[0]] / 1e6, f[strong[-1]] / 1e6
            pad = max(2.0, 0.15 * (hi - lo))
            ax.set_ylim(max(0.0, lo - pad), min(f[-1] / 1e6, hi + pad))
        ax.set_ylabel(f"{names[ch]}: f (MHz)")
        ax.set_title(f"{names[ch]} spectrogram, resolution {sample_rate_hz / nper / 1e3:.0f} kHz", fontsize=8)
        fig.colorbar(mesh, ax=ax, label=f"dB ({unit}$^2$/Hz)", pad=0.01)
        for s, _ in boundaries:
            ax.axvline(s / sample_rate_hz * 1e6, color="white", lw=0.6, alpha=0.6)
    axes[-1].set_xlabel("time since start command (us)")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig
