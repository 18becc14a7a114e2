"""Figures over nights: every clean run appends its figures to the history in its folder,
and ``awgrt hil --trend`` flags a figure that drifts beyond its own scatter before it fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from awgrt.cli import main as awgrt_main
from hil.analysis.result import CheckResult
from hil.runner import run_suite
from hil.trends import HISTORY_NAME, append_history, load_history, trend, trend_report

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

pytest.importorskip("pyvisa_py")


def _night(tmp_path, day: int, phase: float, amp: float, freq: float, *, sigma: float = 0.05) -> None:
    # numpy scalars, as the checks make them
    phase, amp, freq = np.float64(phase), np.float64(amp), np.float64(freq)
    results = [
        CheckResult("phase_jump", "hold_move_hold", "a->b H", phase, sigma, 0.5, "deg"),
        CheckResult("amplitude", "hold_move_hold", "a H", amp, 0.004, 0.5, "dB"),
        CheckResult("wrap_spur", "loop_n_hold", "loop H", freq, 0.5, -60.0, "dBc", two_sided=False),
    ]
    append_history(results, "rig-1", tmp_path, started=f"2026-11-{day:02d}T02:00:00+00:00")


def test_a_figure_drifting_inside_its_limit_is_flagged_and_steady_ones_are_not(tmp_path) -> None:
    rng = np.random.default_rng(4)
    for day in range(1, 13):
        last = day == 12
        # phase jump: 0.05 deg scatter, then 0.38 deg on the last night: far out of its scatter, inside 0.5 deg
        _night(tmp_path, day, 0.38 if last else rng.normal(0.0, 0.05), rng.normal(0.05, 0.004), rng.normal(-75.0, 0.5))
    figures = {f.name: f for f in load_history(tmp_path)}
    assert len(figures) == 3 and all(len(f.runs) == 12 for f in figures.values())
    verdicts = {name: trend(f) for name, f in figures.items()}
    drift = verdicts["phase_jump a->b H"]
    assert drift.drifting and drift.figure.passed[-1]  # flagged while still passing
    assert drift.deviation > 4
    assert verdicts["amplitude a H"].drifting is False and verdicts["wrap_spur loop H"].drifting is False
    trends = trend_report(tmp_path)
    assert sum(bool(t.drifting) for t in trends) == 1
    pngs = sorted((tmp_path / "trends").glob("*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "**DRIFT**" in (tmp_path / "trends" / "summary.md").read_text()


def test_too_few_nights_give_no_verdict_and_a_torn_line_is_skipped(tmp_path) -> None:
    for day in range(1, 4):
        _night(tmp_path, day, 0.0, 0.05, -75.0)
    with open(tmp_path / HISTORY_NAME, "a") as fh:
        fh.write('{"run": "2026-11-04T02:00:00+00:00", "rig": "rig-1", "prog')  # a crash mid-write
    figures = load_history(tmp_path / HISTORY_NAME)
    assert len(figures) == 3 and all(trend(f).drifting is None for f in figures)


def test_the_cli_exits_non_zero_on_a_drift(tmp_path, capsys) -> None:
    for day in range(1, 9):
        _night(tmp_path, day, 0.0 + 0.01 * (day % 2), 0.05, -75.0)
    assert awgrt_main(["hil", "--trend", str(tmp_path), "--no-plots"]) == 0
    _night(tmp_path, 9, 0.45, 0.05, -75.0)
    assert awgrt_main(["hil", "--trend", str(tmp_path), "--no-plots"]) == 1
    assert "DRIFT rig-1 hold_move_hold phase_jump a->b H" in capsys.readouterr().out


def test_clean_runs_append_to_the_history_and_fault_runs_do_not(tmp_path) -> None:
    out = tmp_path / "hil"
    run_suite("sim", out, programs=["add_remove"], plots=False, progress=False)
    run_suite("sim", out, programs=["add_remove"], plots=False, progress=False, inject=["amp-error=1dB"])
    lines = [json.loads(line) for line in (out / HISTORY_NAME).read_text().splitlines()]  # in the run's own folder
    assert lines and len({line["run"] for line in lines}) == 1  # the faulty run left no figures
    assert {"run", "rig", "program", "name", "measured", "sigma", "limit", "unit", "passed"} <= set(lines[0])
    assert not (tmp_path / HISTORY_NAME).exists()  # nothing written beside it


def test_the_history_stays_in_the_runs_folder_or_goes_where_history_says(tmp_path, capsys) -> None:
    from awgrt.cli import main as awgrt_main

    out = tmp_path / "night-1"
    assert awgrt_main(["hil", "--out", str(out), "--program", "add_remove", "--no-plots"]) == 0
    assert awgrt_main(["hil", "--out", str(out), "--program", "add_remove", "--no-plots"]) == 0  # a second night clears the folder, not the history
    assert f"history (for awgrt hil --trend): {out.resolve() / HISTORY_NAME}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["night-1"]
    shared = tmp_path / "rig" / "history.jsonl"
    for night in ("2026-12-01", "2026-12-02"):
        assert awgrt_main(["hil", "--out", str(tmp_path / night), "--program", "add_remove", "--no-plots", "--history", str(shared)]) == 0
    assert not (tmp_path / "2026-12-01" / HISTORY_NAME).exists()
    assert f"history (for awgrt hil --trend): {shared.resolve()}" in capsys.readouterr().out
    shared_lines = [json.loads(line) for line in shared.read_text().splitlines()]
    assert {line["program"] for line in shared_lines} == {"add_remove"} and len({line["run"] for line in shared_lines}) >= 1
    assert len(shared_lines) == len((out / HISTORY_NAME).read_text().splitlines())  # two nights in each


@pytest.mark.parametrize(
    "damaged",
    [
        b'{"run": "2026-11-04", "rig": "rig-1", "program": "hold_move_hold", "name": "x", "measured": 1.0, "limit": 1.0}\xff\n',
        b'{"run": 20261104, "rig": "rig-1", "program": "p", "name": "phase_jump a->b H", "measured": 0.1, "limit": 0.5}\n',
        b'{"run": "2026-11-04", "rig": "rig-1", "program": "hold_move_hold", "name": "phase_jump a->b H", "measured": "0.1", "limit": 0.5}\n',
        b'{"run": "2026-11-04", "rig": "rig-1", "program": "hold_move_hold", "name": "phase_jump a->b H", "measured": 0.1, "limit": null}\n',
        b"[1, 2, 3]\n",
    ],
    ids=["not UTF-8", "a numeric run", "a string measured", "a null limit", "not an object"],
)
def test_a_damaged_history_line_is_skipped(tmp_path, damaged) -> None:
    for day in range(1, 4):
        _night(tmp_path, day, 0.0, 0.05, -75.0)
    with open(tmp_path / HISTORY_NAME, "ab") as fh:
        fh.write(damaged)
    figures = load_history(tmp_path / HISTORY_NAME)
    assert len(figures) == 3 and all(len(f.runs) == 3 for f in figures)
    trend_report(tmp_path)


def test_a_torn_last_line_does_not_swallow_the_next_runs_first_entry(tmp_path) -> None:
    for day in range(1, 4):
        _night(tmp_path, day, 0.0, 0.05, -75.0)
    with open(tmp_path / HISTORY_NAME, "a") as fh:
        fh.write('{"run": "2026-11-04T02:00:00+00:00", "rig": "rig-1", "prog')  # a crash mid-write
    _night(tmp_path, 5, 0.0, 0.05, -75.0)
    figures = load_history(tmp_path / HISTORY_NAME)
    assert all(len(f.runs) == 4 for f in figures), [(f.name, len(f.runs)) for f in figures]


def test_one_night_is_no_trend_no_figures_no_nan(tmp_path, capsys) -> None:
    _night(tmp_path, 1, 0.01, 0.05, -75.0)
    assert awgrt_main(["hil", "--trend", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the history holds 1 night(s): trends need 6" in out
    trends = tmp_path / "trends"
    assert not list(trends.glob("*.png"))  # a point is not a trend: no figure for it
    table = (trends / "summary.md").read_text()
    assert "nan" not in table and "| 1 | 0.01 deg | - | - | - |" in table
