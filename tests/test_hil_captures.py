"""Saved captures: a run keeps every record, and its checks can be run again on them later."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from awgrt.errors import SerializationError
from hil.captures import SavedCapture, capture_path, check_capture, saved_in
from hil.runner import recheck, run_suite

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

pytest.importorskip("pyvisa_py")


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("run")
    report = run_suite("sim", out, inject=["phase-jump=2deg"], programs=["hold_move_hold", "add_remove"], plots=False, progress=False)
    return out, report


def _readings(results) -> dict[str, tuple[float, bool]]:
    return {f"{r.program} {r.name}": (r.measured, r.passed) for r in results if r.check != "trigger_timing"}


def test_a_run_keeps_every_record_and_a_recheck_reads_the_same(faulty_run, tmp_path: Path) -> None:
    out, report = faulty_run
    names = {p.name for p in saved_in(out)}
    assert names == {f"{p}__{c}.npz" for p in ("hold_move_hold", "add_remove") for c in ("H", "V", "@reference")}
    again = recheck(out, "sim", tmp_path / "again", plots=False)
    assert (tmp_path / "again" / "report.json").exists()
    first, second = _readings(report.results), _readings(again.results)
    assert set(first) == set(second) and len(first) > 40
    for name, (value, passed) in first.items():  # the same records, the same analysis: the same readings
        assert second[name][1] == passed, name
        assert second[name][0] == pytest.approx(value, rel=1e-9, abs=1e-12) or (np.isnan(value) and np.isnan(second[name][0])), name
    assert not again.passed and any(r.check == "phase_jump" and not r.passed and not r.inconclusive for r in again.results)


def test_check_capture_takes_files_or_loaded_captures(faulty_run) -> None:
    out, report = faulty_run
    files = [capture_path(out, "add_remove", c) for c in ("H", "V", "@reference")]
    by_file = _readings(check_capture(files))
    by_object = _readings(check_capture([SavedCapture.load(f) for f in files]))
    assert by_file == by_object
    assert by_file == {k: v for k, v in _readings(report.results).items() if k.startswith("add_remove ")}
    single = check_capture(files[0])  # one channel alone: its own checks, no pair checks
    assert {r.where.split()[-1] for r in single if r.check == "phase_jump"} == {"H"}
    with pytest.raises(SerializationError, match="one program"):
        check_capture([files[0], capture_path(out, "hold_move_hold", "H")])


def _rewrite_meta(src: Path, dst: Path, change) -> None:
    with np.load(src) as saved:
        meta = json.loads(saved["meta"].tobytes())
        codes = saved["codes"]
    change(meta)
    np.savez(dst, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), codes=codes)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m.update(schema="something else"), "schema"),
        (lambda m: m.update(x_increment_s=-1.0), "x_increment_s"),
        (lambda m: m.update(range_v="wide"), "range_v"),
        (lambda m: m.update(triggers=[]), "triggers"),
        (lambda m: m.update(triggers=[True]), "triggers"),
        (lambda m: m.update(y_increment_v=0.0), "meta"),
    ],
)
def test_a_damaged_capture_file_is_one_error_naming_the_file_and_field(faulty_run, tmp_path: Path, change, field: str) -> None:
    out, _ = faulty_run
    bad = tmp_path / "bad.npz"
    _rewrite_meta(capture_path(out, "add_remove", "H"), bad, change)
    with pytest.raises(SerializationError, match=field) as exc:
        SavedCapture.load(bad)
    assert "bad.npz" in str(exc.value)


def test_a_truncated_capture_fails_only_its_own_result(faulty_run, tmp_path: Path) -> None:
    out, _ = faulty_run
    folder = tmp_path / "run" / "captures"
    shutil.copytree(out / "captures", folder)
    victim = folder / "add_remove__V.npz"
    victim.write_bytes(victim.read_bytes()[:300])
    report = recheck(folder.parent, "sim", plots=False)
    broken = [r for r in report.results if r.check == "capture"]
    assert len(broken) == 1 and "add_remove__V.npz" in broken[0].where and not broken[0].passed
    assert any(r.program == "hold_move_hold" and r.check == "phase_jump" for r in report.results)  # the rest is checked
    assert any(r.program == "add_remove" and r.where.endswith(" H") for r in report.results)
    with pytest.raises(SerializationError, match="no saved captures"):
        recheck(tmp_path / "empty", "sim")


def test_awgrt_hil_recheck_checks_a_runs_captures_again(faulty_run, tmp_path: Path, capsys) -> None:
    from awgrt.cli import main as awgrt_main

    out, _ = faulty_run
    assert awgrt_main(["hil", "--recheck", str(out), "--out", str(tmp_path / "again"), "--no-plots"]) == 1  # the planted jump fails again
    assert "phase_jump hold_a->hold_b H" in capsys.readouterr().out
    assert json.loads((tmp_path / "again" / "report.json").read_text())
    assert awgrt_main(["hil", "--recheck", str(out), "--out", str(out), "--no-plots"]) != 0
    assert "one folder" in capsys.readouterr().err
