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


def test_a_calibrated_channel_is_drawn_as_asked_optical_power_and_um_with_the_rf_played_dotted():
    from awgrt.calibration import AODCalibration, PositionCalibration

    cal = AODCalibration((70e6, 110e6), (1.0, 0.08, -0.15), (0.55, 0.05))
    pos = PositionCalibration.linear(2.0, 85e6, (70e6, 110e6))  # 2 um per MHz, 0 um at 85 MHz
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=cal, position=pos)
        .define("t", logical_channel="H", positions_um=[-26.0], amps=[0.8])
        .segment("s")
        .tones("H")
        .use_def("t")
        .move(dx_um=60.0, time=20e-6)
    )
    for ir in (b.build_resolved_ir(sample_rate_hz=FS), quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0})):
        fig = plot_program(ir)
        ax_where, ax_power, ax_rf = fig.axes[0], fig.axes[1], fig.axes[2]
        assert ax_where.get_ylabel() == "H: position (um)" and ax_power.get_ylabel() == "H: optical power (of max)"
        where = np.concatenate([s[:, 1] for c in ax_where.collections for s in c.get_segments()])
        assert abs(where.min() - -26.0) < 1e-6 and abs(where.max() - 34.0) < 1e-6  # um as asked, not MHz
        power = ax_power.lines[0].get_ydata()
        assert np.allclose(power, 0.8)  # the optical power asked, constant along the move
        rf = ax_rf.lines[0].get_ydata()
        assert ax_rf.lines[0].get_linestyle() == ":" and np.ptp(rf) > 0.01  # the RF the card plays changes to keep it so
        ends = cal.rf_amplitude(np.array([72e6, 102e6]), 0.8)[0]  # -26 um and 34 um at 2 um/MHz round 85 MHz
        assert np.allclose([rf[0], rf[-1]], ends, rtol=1e-9)


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


def test_the_tweezer_plane_of_a_2d_program_shows_every_tweezer_where_it_starts_moves_and_ends(tmp_path):
    from awgrt.calibration import PositionCalibration
    from awgrt.plot import plot_plane

    px = PositionCalibration.linear(2.0, 85e6, (70e6, 100e6))
    py = PositionCalibration.linear(-1.8, 85e6, (70e6, 100e6))
    b = (
        AWGProgramBuilder()
        .logical_channel("X", position=px)
        .logical_channel("Y", position=py)
        .define("gx", logical_channel="X", positions_um=[-9, -6, -3, 0, 3, 6, 9], amps=[0.05] * 7, phases="auto")
        .define("gy", logical_channel="Y", positions_um=[-6, -3, 0, 3, 6], amps=[0.07] * 5, phases="auto")
        .segment("load", mode="wait_trig")
        .tones("X")
        .use_def("gx")
        .tones("Y")
        .use_def("gy")
        .hold(time=20e-6)
        .segment("drop")
        .tones("X")
        .ramp_amp_to(amps=0.0, idxs=[0, 6], time=10e-6)
        .remove_tones(idxs=[0, 6])
        .segment("squeeze")
        .tones("X")
        .move(dx_um=[2, 1, 0, -1, -2], time=100e-6)
        .tones("Y")
        .move(dx_um=[3, 1.5, 0, -1.5, -3], time=100e-6)
        .segment("hold", mode="loop_n", loops=4)
        .hold(time=20e-6)
    )
    resolved = b.build_resolved_ir(sample_rate_hz=FS)  # as asked: no snapping yet
    fig = plot_plane(resolved, "X", "Y", path=tmp_path / "plane.png")
    assert (tmp_path / "plane.png").stat().st_size > 10_000
    ax = fig.axes[0]
    assert ax.get_xlabel() == "X: position (um)" and ax.get_ylabel() == "Y: position (um)"
    starts, ends, gone = (c.get_offsets() for c in ax.collections if c.__class__.__name__ == "PathCollection")
    want_start = {(x, y) for x in (-9, -6, -3, 0, 3, 6, 9) for y in (-6, -3, 0, 3, 6)}
    want_end = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-3, -1.5, 0, 1.5, 3)}
    want_gone = {(x, y) for x in (-9, 9) for y in (-6, -3, 0, 3, 6)}
    for got, want in ((starts, want_start), (ends, want_end), (gone, want_gone)):
        assert {(round(float(a), 6), round(float(c), 6)) for a, c in got} == want
    # the moves are drawn in the squeeze segment's colour, from each start to its end
    lines = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert len(lines) == 35  # one per tweezer
    squeeze = matplotlib.colormaps["tab10"](2)[:3]
    moved = 0
    for c in lines:
        segs, colours = np.array(c.get_segments()), c.get_colors()
        step = np.hypot(*(segs[:, 1] - segs[:, 0]).T)
        if step.max() > 1e-3:
            moved += 1
            assert np.allclose(colours[step > 1e-3][:, :3], squeeze)  # only the squeeze moves anything
    assert moved == 24  # every kept tweezer but the one at the centre
    # a compiled program draws too, through its method; channels are checked
    program = compile_sequence_program(quantize_resolved_ir(resolved, {"X": 0, "Y": 1}), progress=False)
    assert program.plot_plane("X", "Y").axes[0].get_title().startswith("tweezer plane X x Y: 7 x 5 tones over 4 segments")
    with pytest.raises(AWGRTError, match=r"plot_plane\(y='Z'\): the program's channels are \['X', 'Y'\]"):
        plot_plane(resolved, "X", "Z")


def test_each_channel_has_a_colour_legend_naming_its_tones_where_they_start():
    q = quantize_resolved_ir(demo_builder().build_resolved_ir(sample_rate_hz=FS), {"H": 0, "V": 1})
    fig = plot_program(q)
    ax_h, ax_v = fig.axes[0], fig.axes[2]
    h = [t.get_text() for t in ax_h.get_legend().get_texts()]
    starts = sorted((s.f0_hz for s in q.segments[0].track("H").entry), reverse=True)
    assert len(h) == len(starts) and all(f"{f / 1e6:.4g} MHz (load)" in label for label, f in zip(h, starts))
    colours = [line.get_color() for line in ax_h.get_legend().get_lines()]
    assert len(set(map(str, colours))) == len(h)  # one colour per tone
    assert [t.get_text() for t in ax_v.get_legend().get_texts()] == [f"#{q.segments[0].track('V').entry[0].tone} 100 MHz (load)"]
    # outside the axes: no curve is covered
    assert ax_h.get_legend().get_bbox_to_anchor().transformed(ax_h.transAxes.inverted()).x0 > 1.0
