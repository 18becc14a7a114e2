"""Plots of what a card played: samples per channel with step boundaries, and a spectrogram.

Needs matplotlib (``pip install awgrt[plot]``); drawn with the Agg backend, no screen needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import spectrogram

from .errors import AWGRTError


def pyplot():
    """matplotlib.pyplot on the Agg backend, or an AWGRTError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise AWGRTError("plotting needs matplotlib: pip install 'awgrt[plot]'") from exc
    return plt


def plot_playback(
    samples: np.ndarray,
    sample_rate_hz: float,
    boundaries: Sequence[tuple[int, str]],
    path: str | Path,
    *,
    channel_names: Sequence[str] | None = None,
    title: str = "",
    triggers: Sequence[int] = (),
) -> Path:
    """Write a PNG: one panel of int16 samples per channel (as a fraction of full scale) against
    time with every step entry marked and named, and a spectrogram of the first channel.

    ``boundaries``: (sample, label) of each step entry; ``triggers``: trigger samples, marked too.
    """
    plt = pyplot()
    n, n_ch = samples.shape
    names = list(channel_names or [f"ch{i}" for i in range(n_ch)])
    t_us = np.arange(n) / sample_rate_hz * 1e6
    fig, axes = plt.subplots(n_ch + 1, 1, figsize=(12, 2.6 * (n_ch + 1)), sharex=True, constrained_layout=True)
    for ch, ax in enumerate(axes[:n_ch]):
        # min/max envelope per pixel column keeps long captures readable
        step = max(1, n // 4000)
        m = (n // step) * step
        if step > 1:
            blocks = samples[:m, ch].reshape(-1, step) / 32767
            tb = t_us[:m:step]
            ax.fill_between(tb, blocks.min(axis=1), blocks.max(axis=1), color="tab:blue", lw=0)
        else:
            ax.plot(t_us, samples[:, ch] / 32767, lw=0.5)
        ax.set_ylabel(f"{names[ch]} (FS)")
        ax.set_ylim(-1, 1)
        for s, label in boundaries:
            ax.axvline(s / sample_rate_hz * 1e6, color="tab:red", lw=0.8, alpha=0.7)
            if ch == 0:
                ax.text(s / sample_rate_hz * 1e6, 0.92, f" {label}", rotation=90, va="top", fontsize=7, color="tab:red")
        for s in triggers:
            ax.axvline(s / sample_rate_hz * 1e6, color="tab:green", lw=1.0, ls="--")
    ax = axes[-1]
    nper = 2048 if n >= 8192 else max(64, n // 4)
    f, tt, sxx = spectrogram(samples[:, 0].astype(np.float64), fs=sample_rate_hz, nperseg=nper, noverlap=nper // 2)
    db = 10 * np.log10(sxx + 1e-12)
    top = float(db.max())
    ax.pcolormesh(tt * 1e6, f / 1e6, db, shading="auto", cmap="magma", vmin=top - 60, vmax=top)
    strong = np.flatnonzero(db.max(axis=1) > top - 30)  # zoom on the band the tones occupy
    if strong.size:
        lo, hi = f[strong[0]] / 1e6, f[strong[-1]] / 1e6
        pad = max(2.0, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(f[-1] / 1e6, hi + pad))
    ax.set_ylabel(f"{names[0]} frequency (MHz)")
    ax.set_xlabel("time since start command (us)")
    for s, _ in boundaries:
        ax.axvline(s / sample_rate_hz * 1e6, color="white", lw=0.6, alpha=0.6)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
