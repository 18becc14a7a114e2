"""Figures of programs and playback: matplotlib Figures that leave the user's backend alone."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from awgrt import AWGProgramBuilder, CompiledSequenceProgram, compile_sequence_program, quantize_resolved_ir
from awgrt.demo import demo_builder, play_demo
from awgrt.errors import AWGRTError
from awgrt.plot import plot_playback, plot_program

FS = 625e6


@pytest.fixture(scope="module")
def compiled():
    q = quantize_resolved_ir(demo_builder().build_resolved_ir(sample_rate_hz=FS))
    return compile_sequence_program(q, progress=False)


def _untouched():
    import matplotlib.pyplot as plt

    return matplotlib.get_backend(), list(plt.get_fignums())


def test_a_program_is_drawn_before_it_plays_without_touching_the_backend(compiled, tmp_path):
    before = _untouched()
    fig = compiled.plot(path=tmp_path / "p.png")
    assert _untouched() == before  # no backend switch, no pyplot figure left behind
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.axes
    assert len(axes) == 2 * len(compiled.hardware_channels)  # frequency and amplitude per channel
    labels = [t.get_text() for t in axes[0].texts]
    for seg in compiled.quantized.segments:
        assert any(text.startswith(f" {seg.name}:") for text in labels)
    assert any("waits for trigger" in t for t in labels) and any("loop x4" in t for t in labels)
    # every tone of every piece is drawn: as many frequency lines on H as H has tone spans, each
    # fading with its amplitude (a tone ramping off to zero ends faint)
    spans = [sp for s in compiled.quantized.segments for p in s.track("H").pieces for sp in p.tones]
    lines = axes[0].collections
    assert len([c for c in lines if len(c.get_segments())]) >= len(spans)
    # the drawn frequencies are the program's: the first H tone's line starts at its frequency
    first = compiled.quantized.segments[0].track("H").pieces[0].tones[0]
    assert any(c.get_segments() and np.isclose(c.get_segments()[0][0][1], first.f0_hz / 1e6) for c in lines)
    fading = [sp for sp in spans if sp.a0 > 0 and sp.a1 == 0]
    assert fading  # the demo drops empty traps
    alphas = [c.get_colors()[:, 3] for c in lines if len(c.get_segments()) > 2]
    assert any(a[0] > 0.5 and a[-1] <= 0.13 for a in alphas)  # drawn fading out


def test_irs_plot_too_and_into_a_given_figure(compiled):
    from awgrt.plot import new_figure

    fig = new_figure()
    assert compiled.quantized.plot(fig=fig) is fig
    assert demo_builder().build_resolved_ir(sample_rate_hz=FS).plot().axes


def test_a_loaded_program_says_how_to_plot_it(compiled, tmp_path):
    loaded = CompiledSequenceProgram.load(compiled.save(tmp_path / "p.npz"))
    with pytest.raises(AWGRTError, match="compile that to plot it"):
        loaded.plot()


def test_playback_figure_in_volts_with_legend_colour_bars_and_fine_spectrograms(compiled, tmp_path):
    run = play_demo(compiled, n_samples=60_000, triggers=(1000, 40_000))
    before = _untouched()
    fig = plot_playback(
        run.samples, FS, [(s, n) for s, _, n in run.trace], tmp_path / "d.png", channel_names=["H", "V"], triggers=(1000, 40_000), amplitude_mv=400
    )
    assert _untouched() == before
    sample_axes = fig.axes[:2]
    assert sample_axes[0].get_ylabel() == "H (V)" and sample_axes[0].get_ylim()[1] == pytest.approx(0.4)
    legend = [t.get_text() for t in sample_axes[0].get_legend().get_texts()]
    assert legend == ["step entry", "trigger"]
    titles = [ax.get_title() for ax in fig.axes if "spectrogram" in ax.get_title()]
    assert len(titles) == 2 and all("resolution 76 kHz" in t for t in titles)  # 625 MS/s / 8192: tones 1 MHz apart separate
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2


def test_the_demo_plots_in_volts_at_the_card_amplitude(tmp_path):
    from awgrt.cli import main

    png = tmp_path / "demo.png"
    assert main(["demo", "--plot", str(png)]) == 0 and png.stat().st_size > 50_000


def test_a_program_on_a_calibrated_channel_plots_its_rf_amplitudes():
    from awgrt.calibration import AODCalibration

    cal = AODCalibration((70e6, 110e6), (1.0, 0.08, -0.15), (0.55, 0.05))
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=cal)
        .define("t", logical_channel="H", freqs=[72e6], amps=[0.8])
        .segment("s")
        .tones("H")
        .use_def("t")
        .move(df=30e6, time=20e-6)
    )
    fig = plot_program(b.build_resolved_ir(sample_rate_hz=FS))
    rf = fig.axes[1].lines[0].get_ydata()
    assert np.ptp(rf) > 0.01  # the RF amplitude changes along the move at constant optical power


def test_without_matplotlib_the_demo_and_the_hil_run_keep_their_results(tmp_path, monkeypatch, capsys):
    import awgrt.plot
    from awgrt.cli import main

    monkeypatch.setattr(awgrt.plot, "have_matplotlib", lambda: False)
    assert main(["demo", "--plot", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "no figure: matplotlib is not installed" in out and "Played on the simulated" in out
    assert not (tmp_path / "d.png").exists()
    assert main(["hil", "--out", str(tmp_path / "hil"), "--program", "add_remove"]) == 0
    assert (tmp_path / "hil" / "report.json").exists() and "No figures: matplotlib is not installed" in (tmp_path / "hil" / "summary.md").read_text()
    assert not (tmp_path / "hil" / "plots").exists()


def test_each_extra_installs_what_its_commands_need():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("matplotlib") for r in extras["hil"])  # awgrt hil draws its figures
    assert any(r.startswith("pyvisa") for r in extras["hil"]) and any(r.startswith("spcm") for r in extras["card"])
    assert any(r.startswith("matplotlib") for r in extras["plot"])


def test_a_simulated_run_is_drawn_with_its_steps_named(compiled, tmp_path):
    from awgrt.sim import simulate

    run = simulate(compiled, triggers=[625, 50_000], n_samples=150_000)
    fig = run.plot(compiled, path=tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    for e in run.events:
        assert f"{e.step}: {compiled.steps[e.step].name}" in " ".join(texts)  # named, not a slot index
