"""The HIL report files can never read as a pass unless a run finished and wrote them whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hil import runner
from hil.runner import RUNNING_MARKER, run_suite

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

PROGRAMS = ["loop_n_hold"]


def _finished(out: Path) -> None:
    report = run_suite("sim", out, programs=PROGRAMS, plots=False, progress=False)
    assert report.passed
    assert json.loads((out / "report.json").read_text())
    assert "PASS" in (out / "summary.md").read_text()
    assert not (out / RUNNING_MARKER).exists()


def _never_a_pass(out: Path) -> None:
    summary = (out / "summary.md").read_text()
    assert "PASS" not in summary.splitlines()[0] and "IN PROGRESS" in summary
    assert (out / RUNNING_MARKER).exists()
    if (out / "report.json").exists():
        json.loads((out / "report.json").read_text())  # whole, if there at all
    assert not list(out.glob(".*.tmp"))


def test_an_interrupted_run_leaves_no_pass(tmp_path, monkeypatch):
    _finished(tmp_path)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_program", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite("sim", tmp_path, programs=PROGRAMS, plots=False, progress=False)
    _never_a_pass(tmp_path)
    assert not (tmp_path / "report.json").exists() and (tmp_path / "report.previous.json").exists()
    monkeypatch.undo()
    _finished(tmp_path)  # the next complete run clears the marker


def test_a_full_disk_while_writing_the_report_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    _finished(tmp_path)
    real_fsync = os.fsync

    def full_disk(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".report.json.") and name.endswith(".tmp"):  # the report's temporary file
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(runner.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        run_suite("sim", tmp_path, programs=PROGRAMS, plots=False, progress=False)
    _never_a_pass(tmp_path)


@pytest.mark.skipif(sys.platform != "linux", reason="uses SIGKILL")
def test_a_killed_run_leaves_no_pass(tmp_path):
    out = tmp_path / "hil"
    _finished(out)
    command = [sys.executable, "-m", "awgrt.cli", "hil", "--rig", "sim", "--out", str(out), "--no-plots"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / RUNNING_MARKER).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert (out / RUNNING_MARKER).exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    _never_a_pass(out)


def test_one_malformed_block_fails_only_its_own_program(monkeypatch):
    # the scope answers the first program's waveform with a block followed by stray bytes; the
    # session is resynchronised and every later program of the run is measured as usual
    real = runner.run_program
    calls = []

    def first_one_garbled(rig, prog, faults=None, **kw):
        calls.append(prog.name)
        instrument = rig.server.instrument
        instrument.faults = frozenset({"long-block", "wrong-length"}) if len(calls) == 1 else frozenset()
        return real(rig, prog, faults, **kw)

    monkeypatch.setattr(runner, "run_program", first_one_garbled)
    report = run_suite("sim", None, programs=["loop_n_hold", "hold_move_hold", "amp_ramp"], plots=False, progress=False)
    by_program: dict[str, list] = {}
    for r in report.results:
        by_program.setdefault(r.program, []).append(r)
    assert [r.check for r in by_program["loop_n_hold"]] == ["run"] and not by_program["loop_n_hold"][0].passed
    for name in ("hold_move_hold", "amp_ramp"):
        assert by_program[name] and all(r.passed for r in by_program[name]), [(r.name, r.detail) for r in by_program[name]]


def test_each_check_figure_shows_what_its_check_measured(tmp_path):
    pytest.importorskip("pyvisa_py")
    report = run_suite("sim", tmp_path, programs=["hold_move_hold", "loop_n_hold"], progress=False)
    by = {}
    for r in report.results:
        by.setdefault(r.check, r)
    chirp, residual = by["chirp_rate"], by["phase_residual"]
    assert chirp.plot["kind"] == "chirp" and residual.plot["kind"] == "trajectory"  # no longer the same figure
    f_meas, f_prog = chirp.plot["f_measured_hz"], chirp.plot["f_programmed_hz"]
    assert abs(float((f_meas - f_prog).mean())) < 20e3 and np.ptp(f_prog) > 2e6  # the measured ramp follows the programmed one
    freq = by["frequency"]
    assert freq.plot["model"].size == freq.plot["y"].size and np.std(freq.plot["y"] - freq.plot["model"]) < 0.02
    jump = by["phase_jump"]
    assert [m.size for m in jump.plot["models"]] == [s[1].size for s in jump.plot["sides"]]
    assert by["wrap_step"].plot["models"] and by["wrap_spur"].plot["rbw_hz"] > 0
    pngs = {p.name.split("__")[1] for p in (tmp_path / "plots").glob("*.png")}
    assert {"chirp_rate", "frequency", "phase_jump", "wrap_step", "wrap_spur", "scope_timebase"} <= pngs
    summary = (tmp_path / "summary.md").read_text()
    assert "scope's timebase runs +20" in summary and "simulated scope's is set 20 ppm fast" in summary
    _figures_show_their_fits_limits_and_spectra(by, tmp_path)


def _figures_show_their_fits_limits_and_spectra(by, tmp_path):
    """The scope_timebase figure has its tone and its fit, phase_residual its limit, crosstalk the
    spectrum round the other channel's tones with the level it measured."""
    from hil import plots

    drawn = {}
    real = plots.save_figure
    plots.save_figure = lambda fig, path, dpi=90: drawn.setdefault(path.name, fig) and real(fig, path, dpi=dpi)
    try:
        for check in ("scope_timebase", "phase_residual", "crosstalk"):
            plots.plot_check(by[check], tmp_path / f"{check}.png")
    finally:
        plots.save_figure = real
    tb = by["scope_timebase"]
    ax = drawn["scope_timebase.png"].axes[0]
    text = ax.texts[0].get_text()
    assert text.startswith(f"tones 10 MHz; fitted over {tb.plot['fitted'][0]} samples") and tb.plot["fitted"][0] > tb.plot["t"].size
    samples, fit = ax.lines[0], ax.lines[1]
    assert fit.get_label() == "sine fit" and np.std(samples.get_ydata() - fit.get_ydata()) < 0.05  # the fit lies on the samples
    assert np.ptp(samples.get_xdata()) >= 250  # at least two and a half periods of 10 MHz (ns)
    res = by["phase_residual"]
    ax = drawn["phase_residual.png"].axes[0]
    levels = sorted(round(line.get_ydata()[0], 9) for line in ax.lines[1:])
    assert levels == sorted(round(v, 9) for v in (res.limit, -res.limit, res.measured, -res.measured))
    xt = by["crosstalk"]
    ax = drawn["crosstalk.png"].axes[0]
    marks = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(marks) == len(xt.plot["levels"]) and max(m.get_ydata()[0] for m in marks) == xt.measured
    assert any(line.get_ydata()[0] == xt.limit and line.get_linestyle() == "--" for line in ax.lines)
    spectrum = ax.lines[0]
    f_mhz, dbc = spectrum.get_xdata(), spectrum.get_ydata()
    assert abs(dbc.max()) < 1.0 and f_mhz.min() < min(xt.plot["levels"]) / 1e6 < f_mhz.max()  # its own carrier at 0 dBc, the other's tone inside


def test_the_printed_verdict_is_a_line_per_program_and_every_check_that_did_not_pass(tmp_path, capsys):
    from hil.analysis.result import CheckResult
    from hil.runner import SuiteReport, _printed

    ok = [CheckResult("phase_jump", "a", f"edge {i}", 0.01, 0.01, 0.5, "deg") for i in range(30)]
    bad = CheckResult("wrap_step", "b", "wrap", 2.0, 0.01, 0.5, "deg")
    unsure = CheckResult("tone_freq", "b", "H 0", 1.0, 9.0, 2.0, "Hz", inconclusive="record clipped")
    rc = _printed(SuiteReport((*ok, bad, unsure, *ok[:2]), "sim", ()), tmp_path / "run")
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].startswith("ok   a") and out[0].endswith("32/32 checks passed")  # grouped by program
    assert out[1].startswith("FAIL b") and out[1].endswith("0/2 checks passed")
    assert out[2].lstrip().startswith("FAIL wrap_step") and "INC " in out[3] and "(record clipped)" in out[3]
    assert sum("phase_jump" in line for line in out) == 0  # passing checks are in the report, not one line each
    assert any("32/34 checks passed" in line for line in out)


def test_figure_titles_give_times_in_a_readable_unit_and_levels_are_never_invisible(tmp_path):
    from hil.analysis.result import CheckResult
    from hil.plots import _quantity, plot_check

    assert _quantity(2e6, "ns", 4) == "2 ms" and _quantity(1500.0, "ns", 4) == "1.5 us" and _quantity(0.12, "ns", 2) == "0.12 ns"
    assert _quantity(3.0, "deg", 4) == "3 deg"
    r = CheckResult(
        "frequency_step", "p", "a->b", 0.67, 1.1, 15.0, "ppm",
        plot={"kind": "levels", "labels": ["left", "right", "right - left"], "values": [-20.5, -19.8, 0.67], "sigmas": [0.4, 0.4, 1.1], "judged": [2]},
    )  # fmt: skip
    fig_path = plot_check(r, tmp_path / "f.png")
    assert fig_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    from hil import plots

    drawn = {}
    real = plots.save_figure
    plots.save_figure = lambda fig, path, dpi=90: drawn.setdefault("fig", fig) and real(fig, path, dpi=dpi)
    try:
        plot_check(r, tmp_path / "g.png")
    finally:
        plots.save_figure = real
    ax = drawn["fig"].axes[0]
    limit_lines = [c for c in ax.collections if c.get_linestyle() and c.get_segments() and abs(c.get_segments()[0][0][1]) == 15.0]
    spans = sorted((seg[0][0], seg[1][0]) for c in limit_lines for seg in c.get_segments())
    assert spans and all(1.5 < a < b < 2.5 for a, b in spans)  # the limit over the judged difference only
    assert {t.get_text() for t in ax.texts} >= {"-20.5", "-19.8", "0.67"}  # every level's number is written
    plt.close("all")
