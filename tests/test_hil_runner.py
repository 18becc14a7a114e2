"""The whole harness on the simulated rig: clean runs pass, each injected fault is caught by its
check with the measured value within 3 sigma (or 10 %, whichever is larger) of the injected
one, and the command writes report.json, PNG plots and summary.md with the right exit code."""

from __future__ import annotations

import json

import pytest

from awgrt.cli import main as awgrt_main
from hil.errors import RigConfigError
from hil.runner import run_suite
from hil.simrig.faults import Faults

pytest.importorskip("pyvisa_py")


def _close_to(measured: float, sigma: float, injected: float) -> bool:
    return abs(measured - injected) <= max(3 * sigma, 0.1 * abs(injected))


def test_clean_simulated_rig_passes_every_check() -> None:
    report = run_suite("sim", progress=False)
    kinds = {r.check for r in report.results}
    assert {"phase_jump", "wrap_spur", "wrap_step", "frequency", "amplitude", "chirp_rate", "phase_residual", "glitch", "skew", "crosstalk"} <= kinds
    # every per-channel check runs on both AWG channels
    per_channel = [r for r in report.results if r.check not in ("skew", "crosstalk")]
    assert {r.where.split()[-1] for r in per_channel} == {"H", "V"}
    assert sum(r.where.endswith(" H") for r in per_channel) == sum(r.where.endswith(" V") for r in per_channel)
    assert report.passed, [(r.name, r.measured, r.limit, dict(r.detail)) for r in report.failures()]
    assert len({r.program for r in report.results}) == 5


# (fault, programs to run, matching check, injected value in the check's unit)
FAULTS = [
    ("phase-jump=2deg", ["hold_move_hold"], "phase_jump", 2.0),
    ("wrap-delta=0.001", ["loop_n_hold", "wait_many_tones"], "wrap_step", -0.36),
    ("amp-error=1dB", ["add_remove"], "amplitude", 1.0),
    ("chirp-rate=0.5%", ["hold_move_hold"], "chirp_rate", 0.5),
    ("skew=1.6ns", ["add_remove"], "skew", 1.6),
]


@pytest.mark.parametrize(("fault", "programs", "check", "injected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_injected_fault_is_caught_by_its_check(fault: str, programs: list[str], check: str, injected: float) -> None:
    report = run_suite("sim", inject=[fault], programs=programs, progress=False)
    matching = [r for r in report.results if r.check == check]
    caught = [r for r in matching if not r.passed]
    assert caught, f"{fault} not caught: {[(r.name, r.measured, r.limit) for r in matching]}"
    if check == "phase_jump":
        caught = caught[:1]  # the boundary into the shifted segment (its exit reads the opposite step)
    for r in caught:
        assert _close_to(r.measured, r.sigma, injected), (r.name, r.measured, r.sigma, injected)
    assert report.faults == (fault,)


def test_cli_writes_report_plots_and_summary(tmp_path, capsys) -> None:
    out = tmp_path / "hil"
    rc = awgrt_main(["hil", "--rig", "sim", "--out", str(out), "--program", "loop_n_hold", "--inject", "wrap-delta=0.001"])
    assert rc == 1  # the injected fault fails a check, so the exit status says so
    entries = json.loads((out / "report.json").read_text())
    assert entries and all({"name", "program", "measured", "sigma", "limit", "unit", "passed"} <= set(e) for e in entries)
    assert any(e["check"] == "wrap_step" and not e["passed"] for e in entries)
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) == len(entries)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    summary = (out / "summary.md").read_text()
    assert "FAIL" in summary and "wrap-delta=0.001" in summary and "plots/" in summary
    assert "checks passed" in capsys.readouterr().out


def test_cli_exit_status_is_zero_on_a_clean_run(tmp_path) -> None:
    assert awgrt_main(["hil", "--out", str(tmp_path), "--program", "add_remove", "--no-plots"]) == 0
    assert not (tmp_path / "plots").exists()
    assert all(e["passed"] for e in json.loads((tmp_path / "report.json").read_text()))


@pytest.mark.parametrize("spec", ["phase-jump=2", "wrap-delta=0.001deg", "amp-error=x", "bogus=1"])
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(RigConfigError, match="--inject"):
        Faults.parse([spec])


def test_fault_specs_parse_in_their_units() -> None:
    f = Faults.parse(["phase-jump=2deg", "wrap-delta=0.001", "amp-error=1dB", "chirp-rate=0.5%"])
    assert (f.phase_jump_deg, f.wrap_delta_cycles, f.amp_error_db, f.chirp_rate_rel) == (2.0, 0.001, 1.0, 0.005)
    assert f.describe() == ["phase-jump=2deg", "wrap-delta=0.001", "amp-error=1dB", "chirp-rate=0.5%"]


# ----------------------------------------------------------------------------- the rig code path
# `--rig emulated`: the hardware rig's code (SpcmBackend -> the unmodified spcm package -> the
# emulated Spectrum driver; the scope driver -> pyvisa -> pyvisa-py -> the loopback SCPI server),
# in a fresh process each, as spcm binds its driver library once per process.


def _needs_spcm() -> None:
    import importlib.util

    if importlib.util.find_spec("spcm_core") is None:  # importing it here would bind the real driver
        pytest.skip("the spcm package is not installed")


def _emulated_run(tmp_path, *args: str) -> tuple[int, list[dict]]:
    import subprocess
    import sys

    out = tmp_path / "hil"
    code = "import sys; from awgrt.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "hil", "--rig", "emulated", "--out", str(out), "--no-plots", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads((out / "report.json").read_text())


def test_the_rig_code_path_runs_clean_on_the_emulated_card_and_loopback_scope(tmp_path) -> None:
    _needs_spcm()
    rc, entries = _emulated_run(tmp_path)
    assert rc == 0 and entries and all(e["passed"] for e in entries), [e for e in entries if not e["passed"]]
    assert len({e["program"] for e in entries}) == 5
    assert "emulated" in (tmp_path / "hil" / "summary.md").read_text()


@pytest.mark.parametrize(("fault", "programs", "check", "injected"), FAULTS, ids=[f[0] for f in FAULTS])
def test_the_rig_code_path_catches_each_injected_fault(tmp_path, fault: str, programs: list[str], check: str, injected: float) -> None:
    _needs_spcm()
    args = [a for p in programs for a in ("--program", p)]
    rc, entries = _emulated_run(tmp_path, "--inject", fault, *args)
    caught = [e for e in entries if e["check"] == check and not e["passed"]]
    assert rc == 1 and caught, f"{fault} not caught on the emulated rig"
    if check == "phase_jump":
        caught = caught[:1]
    for e in caught:
        assert _close_to(e["measured"], e["sigma"], injected), (e["name"], e["measured"], e["sigma"], injected)
