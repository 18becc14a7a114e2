"""The command line and the shipped example run end to end and say what they did."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from awgrt import CompiledSequenceProgram
from awgrt.cli import main
from awgrt.demo import demo_builder

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prints_a_complete_report(capsys):
    assert main(["demo", "--no-play"]) == 0
    out = capsys.readouterr().out
    for section in ("Timing:", "Channels and memory:", "Wrap snapping:", "Phases:", "Clipping:", "Continuity of every step-graph edge:"):
        assert section in out
    for name in ("load", "drop_empty", "rearrange", "hold", "lower", "release"):
        assert f" {name} " in out
    # the demo ends elsewhere than it starts: the card stops after its last step, and says why
    steps = out.split("Timing:")[0]
    assert [line.split()[-1] for line in steps.splitlines() if line.strip().startswith(("0 ", "1 ", "2 ", "3 ", "4 ", "5 "))][-1] == "END"
    after = out.split("After the last step:")[1].split("\n\n")[0]
    assert "does not come back to its start" in after and ".last_step('ring')" in after
    assert "ring  release -> load" not in out


def test_demo_plays_on_the_simulator_prints_the_trace_and_writes_a_png(tmp_path, capsys):
    png = tmp_path / "plots" / "demo.png"
    assert main(["demo", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    trace = out[out.index("Played on the simulated") :]
    names = [line.split()[-1] for line in trace.splitlines()[2:] if line.strip() and not line.startswith("plot")]
    # two triggers: the first starts replay in "load", the second ends the wait; "release" then waits
    assert names == ["load", "drop_empty", "rearrange", "hold", "lower", "release"]
    first = int(trace.splitlines()[2].split()[0])
    assert first == 625 + 249  # trigger at sample 625 + the card's latency at 625 MS/s
    assert f"plot: {png.resolve()}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_demo_saves_a_loadable_program(tmp_path, capsys):
    path = tmp_path / "demo.npz"
    assert main(["demo", "--no-play", "--save", str(path)]) == 0
    program = CompiledSequenceProgram.load(path)
    program.validate()
    assert [s.name for s in program.steps] == ["load", "drop_empty", "rearrange", "hold", "lower", "release"]
    assert program.steps[3].loops == 4 and program.steps[0].on_trigger and program.steps[-1].next == 0


def test_compile_command_reads_intent_json(tmp_path, capsys):
    src = tmp_path / "prog.json"
    src.write_text(demo_builder().build_intent_ir().to_json())
    assert main(["compile", str(src), "--map", "H=1,V=0", "--fs", "500e6"]) == 0
    out = capsys.readouterr().out
    assert "H->ch1, V->ch0" in out and "500 MS/s" in out


def test_compile_detail_lists_every_tone_at_every_edge(tmp_path, capsys):
    src = tmp_path / "prog.json"
    src.write_text(demo_builder().build_intent_ir().to_json())
    assert main(["compile", str(src)]) == 0
    short = capsys.readouterr().out
    assert main(["compile", str(src), "--detail"]) == 0
    detailed = capsys.readouterr().out
    faded = [line for line in short.splitlines() if "drop_empty -> rearrange" in line]
    assert len(faded) == 1 and "fade to or from zero amplitude" in faded[0]
    assert "tone #" not in short.split("Continuity of every step-graph edge:")[1]
    edges = detailed.split("Continuity of every step-graph edge:")[1]
    assert "H: tone #" in edges and "ends at zero amplitude (seamless)" in edges


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    src = tmp_path / "prog.json"
    src.write_text(demo_builder().build_intent_ir().to_json())
    assert main(["compile", str(src), "--fs", "753e6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("awgrt: error:") and "753 MS/s" in err


def test_cards_lists_known_models(capsys):
    assert main(["cards"]) == 0
    out = capsys.readouterr().out
    for model in ("M4i.6631-x8", "M4i.6621-x8", "M4i.6622-x8"):
        assert model in out


def test_console_script_is_installed():
    for module in ("awgrt.cli", "awgrt"):  # python -m awgrt as well
        result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and result.stdout.startswith("awgrt "), module


@pytest.mark.parametrize("argv", [["demo", "-v", "--no-plot", "--no-play"], ["-v", "demo", "--no-plot", "--no-play"]])
def test_verbose_before_or_after_the_command_logs_what_the_compile_did(argv, capsys):
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "INFO: quantized 6 segments for M4i.6631-x8" in err and "INFO: compiled 6 segments" in err
    assert main(["demo", "--no-plot", "--no-play"]) == 0
    assert "INFO" not in capsys.readouterr().err  # quiet without -v


@pytest.fixture(scope="module")
def rearrange_module():
    spec = importlib.util.spec_from_file_location("rearrange_example", ROOT / "examples" / "rearrange.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rearrange_example_runs(rearrange_module, tmp_path, capsys):
    assert rearrange_module.main(["--seed", "3", "--save", str(tmp_path / "r.npz")]) == 0
    out = capsys.readouterr().out
    assert "rearrange" in out
    program = CompiledSequenceProgram.load(tmp_path / "r.npz")
    program.validate()


def test_rearrange_example_moves_16_tones_to_the_target_block(rearrange_module):
    occupied = [0, 2, 3, 7, 8, 11, 14, 15]
    ir = rearrange_module.build(occupied).build_resolved_ir(sample_rate_hz=rearrange_module.FS)
    load = ir.segments[0]
    assert len(load.track("H").entry) == 16 and len(load.track("V").entry) == 1
    rearrange = next(s for s in ir.segments if s.name == "rearrange")
    spans = rearrange.track("H").pieces[0].tones
    starts = [s.f0_hz for s in spans]
    ends = [s.f1_hz for s in spans]
    assert starts == [rearrange_module.GRID_HZ[i] for i in occupied]
    centre = rearrange_module.TARGET_CENTRE_HZ
    assert ends == [centre + 1e6 * (j - 3.5) for j in range(8)]
    # tweezers keep their order: no two trajectories cross
    assert np.all(np.diff(ends) > 0) and np.all(np.diff(starts) > 0)


def test_readme_runtime_example_runs_as_written(capsys):
    text = (ROOT / "README.md").read_text()
    start = text.index("from awgrt import AWGProgramBuilder, Runtime")
    code = text[start : text.index("```", start)]
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    # the pulse step is entered once: the first trigger starts the wait, the second ends it
    assert out.count("pulse at") == 1
    assert "upload: segments; compiled ['pulse']; uploaded ['pulse']" in out


def test_calibrated_rearrange_example_runs_equalises_and_keeps_powers(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("calibrated_rearrange", ROOT / "examples" / "calibrated_rearrange.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--seed", "2", "--save", str(tmp_path / "c.npz")]) == 0
    out = capsys.readouterr().out
    spreads = [float(line.rsplit(" ", 1)[1].rstrip("%")) for line in out.splitlines() if line.startswith("equalisation")]
    assert spreads[0] > 10 and spreads[-1] < 2  # the camera's spread closes in a few damped steps
    assert "AOD-calibrated channels" in out and "played on the simulator" in out
    CompiledSequenceProgram.load(tmp_path / "c.npz").validate()


def test_realtime_rearrange_example_plays_shots_and_draws_both_figures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("realtime_rearrange", ROOT / "examples" / "realtime_rearrange.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sites", "12", "--targets", "6", "--shots", "6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 shots at 55% fill" in out and "shot() -> card armed: median" in out and "bytes (median)" in out
    for name in ("latency.png", "trajectories.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_readme_rearrangement_example_runs_as_written(capsys):
    text = (ROOT / "README.md").read_text()
    start = text.index("from awgrt.rearrange import Move, Rearranger, TweezerArray")
    start = text.rindex("```python", 0, start) + len("```python")
    code = text[start : text.index("```", start)]
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "prepared: move segment" in out and "cycle A: armed after step 0's trigger" in out and "moves" in out


def test_compile_command_plots_the_tones_or_plays_and_plots_the_playback(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.json"
    path.write_text(demo_builder().build_intent_ir().to_json())
    assert main(["compile", str(path), "--plot", str(tmp_path / "tones.png")]) == 0
    assert (tmp_path / "tones.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compile", str(path), "--play", "0.5e-3", "--trigger-every", "150e-6", "--plot", str(tmp_path / "play.png")]) == 0
    out = capsys.readouterr().out
    assert "triggers at samples [937, 94687, 188437, 282187]" in out and "312500 samples" in out
    assert " release" in out and (tmp_path / "play.png").stat().st_size > 10_000
    assert main(["compile", str(path), "--play", "-1"]) == 2  # a clear error, no traceback
