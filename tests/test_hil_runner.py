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

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

pytest.importorskip("pyvisa_py")


def _close_to(measured: float, sigma: float, injected: float) -> bool:
    return abs(measured - injected) <= max(3 * sigma, 0.1 * abs(injected))


def test_clean_simulated_rig_passes_every_check() -> None:
    report = run_suite("sim", progress=False)
    kinds = {r.check for r in report.results}
    assert {"phase_jump", "wrap_spur", "wrap_step", "frequency", "amplitude", "chirp_rate", "phase_residual", "glitch", "skew", "crosstalk"} <= kinds
    # every per-channel check runs on both AWG channels
    per_channel = [r for r in report.results if r.check not in ("skew", "crosstalk", "trigger_timing", "scope_timebase")]
    assert {r.where.split()[-1] for r in per_channel} == {"H", "V"}
    assert sum(r.where.endswith(" H") for r in per_channel) == sum(r.where.endswith(" V") for r in per_channel)
    assert report.passed, [(r.name, r.measured, r.limit, dict(r.detail)) for r in report.failures()]
    assert len({r.program for r in report.results}) == 5
    # the reference tone is recorded with every program that reads the clocks
    assert {r.program for r in report.results if r.check == "scope_timebase"} == {r.program for r in report.results if r.check in ("frequency", "chirp_rate")}


# (fault, programs to run, matching check, injected value in the check's unit)
FAULTS = [
    ("phase-jump=2deg", ["hold_move_hold"], "phase_jump", 2.0),
    ("wrap-delta=0.001", ["loop_n_hold", "wait_many_tones"], "wrap_step", -0.36),
    ("amp-error=1dB", ["add_remove"], "amplitude", 1.0),
    ("chirp-rate=0.5%", ["hold_move_hold"], "chirp_rate", 0.5),
    ("skew=1.6ns", ["add_remove"], "skew", 1.6),
    ("clock=30ppm", ["add_remove"], "frequency", 30.0),  # the named rigs record a reference tone
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
    f = Faults.parse(["phase-jump=2deg", "wrap-delta=0.001", "amp-error=1dB", "chirp-rate=0.5%", "clock=-3ppm"])
    assert (f.phase_jump_deg, f.wrap_delta_cycles, f.amp_error_db, f.chirp_rate_rel, f.clock_ppm) == (2.0, 0.001, 1.0, 0.005, -3.0)
    assert f.describe() == ["phase-jump=2deg", "wrap-delta=0.001", "amp-error=1dB", "chirp-rate=0.5%", "clock=-3ppm"]


# ----------------------------------------------------------------------------- the two clocks
# The simulated scope's timebase runs 20 ppm fast (it reads every frequency 20 ppm low).


def test_a_reference_tone_tells_the_card_clock_from_the_scope_timebase(tmp_path) -> None:
    report = run_suite("sim", tmp_path, inject=["clock=30ppm"], programs=["add_remove", "hold_move_hold"], plots=False, progress=False)
    by = {c: [r for r in report.results if r.check == c] for c in ("frequency", "scope_timebase", "chirp_rate")}
    assert by["frequency"] and all(not r.passed and abs(r.measured - 30.0) < max(4 * r.sigma, 1.5) for r in by["frequency"])
    assert by["scope_timebase"] and all(r.passed and abs(r.measured - 20.0) < max(4 * r.sigma, 0.5) for r in by["scope_timebase"])
    assert all(abs(r.measured - 2 * 30e-4) < 5 * r.sigma for r in by["chirp_rate"])  # a rate: twice the clock error, in %
    summary = (tmp_path / "summary.md").read_text()
    assert "the card's clock reads +30" in summary and "scope's timebase runs +20" in summary


def test_without_a_reference_the_two_clock_errors_read_as_one() -> None:
    from hil.rig import CardConfig, RigConfig

    bare = RigConfig(card=CardConfig(backend="sim"))  # no reference tone, no shared reference
    report = run_suite(bare, inject=["clock=30ppm"], programs=["add_remove"], progress=False)
    freq = [r for r in report.results if r.check == "frequency"]
    # 30 ppm fast card, 20 ppm fast scope: +10 ppm, inside the 45 ppm both may be off together
    assert freq and all(r.passed and abs(r.measured - 10.0) < max(4 * r.sigma, 1.5) for r in freq)
    assert "cannot be told apart" in freq[0].detail["clocks"]
    assert not [r for r in report.results if r.check == "scope_timebase"]


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
    rig = [] if "--rig" in args else ["--rig", "emulated"]
    proc = subprocess.run([sys.executable, "-c", code, "hil", *rig, "--out", str(out), "--no-plots", *args], capture_output=True, text=True, timeout=300)
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


# ----------------------------------------------------------------------------- triggers from a generator


@pytest.mark.parametrize("family", ["keysight33500", "rigoldg"])
def test_generator_drivers_arm_and_fire_a_burst(family: str) -> None:
    from hil.errors import GeneratorError
    from hil.generators import open_generator
    from hil.simrig import LoopbackScpiServer
    from hil.simrig.generator import SIMULATED_GENERATORS

    fired = []
    model = SIMULATED_GENERATORS[family](lambda times, high, width: fired.append((times, high, width)))
    with LoopbackScpiServer(model) as srv, open_generator(family, srv.resource, channel=1, timeout_s=2.0) as gen:
        assert gen.identity == model.identity
        gen.burst(count=3, period_s=20e-6, high_v=2.5, pulse_s=1e-7)
        assert (model.count, model.high_v, model.width_s, model.burst, model.output) == (3, 2.5, 1e-7, True, True)
        assert model.frequency_hz == pytest.approx(50e3)
        gen.fire()
        assert fired and fired[0][0] == pytest.approx([0.0, 20e-6, 40e-6]) and fired[0][1:] == (2.5, 1e-7)
        with pytest.raises(GeneratorError, match="cannot be made"):
            gen.burst(count=2, period_s=1e-7, high_v=2.5, pulse_s=1e-6)  # pulses wider than their period


def _generator_rig(tmp_path, family: str):
    rig = tmp_path / "rig.toml"
    rig.write_text(f'name = "emulated-{family}"\n[card]\nbackend = "emulated"\n[trigger]\nsource = "generator"\ngenerator = "{family}"\n')
    return rig


@pytest.mark.parametrize("family", ["keysight33500", "rigoldg"])
def test_the_rig_code_path_with_generator_triggers_runs_clean(tmp_path, family: str) -> None:
    # the card armed for EXT0, the generator's burst (through its driver and the loopback server)
    # drives the emulated card's trigger input and the scope records the pulses: the later trigger
    # of wait_many_tones is measured, not assumed
    _needs_spcm()
    rc, entries = _emulated_run(tmp_path, "--rig", str(_generator_rig(tmp_path, family)))
    assert rc == 0 and all(e["passed"] for e in entries), [e for e in entries if not e["passed"]]
    timing = {e["program"]: e for e in entries if e["check"] == "trigger_timing"}
    first, later = timing["wait_many_tones"]["detail"]["measured_samples"]
    # 100 us apart, read on the scope's own timebase (20 ppm off in the simulated scope): 2 ns, so within a card sample or two
    assert len(timing) == 5 and first == 1000 and abs(later - 63_500) <= 2


def test_the_rig_code_path_with_the_scope_on_a_marker_runs_clean(tmp_path) -> None:
    # SpcmBackend sets X1 to the digital output of channel 0's marker bit through the real spcm
    # package; the emulated card plays it, and the scope triggers on it and times every pass
    _needs_spcm()
    rig = tmp_path / "rig.toml"
    rig.write_text('name = "emulated-marker"\n[card]\nbackend = "emulated"\n[trigger]\nscope = "marker"\nmarker_line = "X1"\n')
    rc, entries = _emulated_run(tmp_path, "--rig", str(rig))
    assert rc == 0 and all(e["passed"] for e in entries), [e for e in entries if not e["passed"]]
    timing = {e["program"]: e for e in entries if e["check"] == "marker_timing"}
    assert len(timing) == 5 and timing["wait_many_tones"]["detail"]["edges"] == _wait_passes()


def test_a_rig_file_must_let_the_scope_see_the_generator() -> None:
    from hil.rig import RigConfig

    with pytest.raises(RigConfigError, match="source"):
        RigConfig.from_dict({"trigger": {"source": "radio"}})
    with pytest.raises(RigConfigError, match="records the generator"):
        RigConfig.from_dict({"trigger": {"source": "generator"}, "wiring": {"trigger": "EXT"}})


def test_one_unexpected_error_fails_its_own_capture_and_the_night_goes_on(tmp_path, monkeypatch) -> None:
    """A driver that raises something no one expected (a bare ValueError from a parse) fails only
    the program it happened in: the others run, and the report is written."""
    import hil.runner as runner

    real = runner.run_program

    def flaky(rig, prog, faults=None, **kw):
        if prog.name == "hold_move_hold":
            raise ValueError("invalid literal for int() with base 10: 'BUSY?'")
        return real(rig, prog, faults, **kw)

    monkeypatch.setattr(runner, "run_program", flaky)
    report = runner.run_suite("sim", tmp_path / "hil", programs=["hold_move_hold", "amp_ramp"], plots=False, progress=False)
    failed = [r for r in report.results if r.program == "hold_move_hold"]
    assert len(failed) == 1 and not failed[0].passed and "ValueError" in failed[0].detail["error"]
    assert any(r.program == "amp_ramp" and r.passed for r in report.results)
    assert (tmp_path / "hil" / "report.json").exists() and not (tmp_path / "hil" / "RUNNING").exists()


def test_a_generator_that_stops_answering_is_a_generator_error() -> None:
    from hil.errors import GeneratorError
    from hil.generators import open_generator
    from hil.simrig import LoopbackScpiServer
    from hil.simrig.generator import SIMULATED_GENERATORS

    model = SIMULATED_GENERATORS["keysight33500"](lambda *a: None)
    with LoopbackScpiServer(model) as srv, open_generator("keysight33500", srv.resource, channel=1, timeout_s=0.3) as gen:
        srv.close()  # the generator goes away mid-session
        with pytest.raises(GeneratorError, match="keysight|TCPIP|failed"):
            gen.fire()


def test_a_record_shorter_than_asked_is_not_a_pass(monkeypatch) -> None:
    """A scope that returns fewer points than asked, with a consistent preamble (18.9 of 22.9 us):
    what it did not record gets no verdict, and the run fails naming the span not covered."""
    import dataclasses

    from hil.scopes.keysight import KeysightInfiniiVision

    real = KeysightInfiniiVision.read

    def short(self, channel):
        capture = real(self, channel)
        keep = int((18.9e-6 - capture.x_origin_s) / capture.x_increment_s)
        return dataclasses.replace(capture, codes=capture.codes[:keep])

    clean = run_suite("sim", programs=["hold_move_hold"], plots=False, progress=False)
    spans = [r for r in clean.results if r.check == "record_span"]
    assert spans and all(r.passed for r in spans)
    monkeypatch.setattr(KeysightInfiniiVision, "read", short)
    report = run_suite("sim", programs=["hold_move_hold"], plots=False, progress=False)
    spans = [r for r in report.results if r.check == "record_span"]
    assert spans and not any(r.passed for r in spans)
    assert "18.9" in spans[0].detail["not_covered"] and not report.passed
    uncovered = [r for r in report.results if "not covered" in r.detail.get("error", "")]
    assert uncovered and all(not r.passed for r in uncovered)  # each boundary past the end, named
    assert not [r for r in clean.results if "not covered" in r.detail.get("error", "")]


@pytest.mark.parametrize(
    "degrade, reason",
    [({"gain_error": 0.5}, "clipped"), ({"noise_lsb_rms": 4.0}, "noise")],
    ids=["1.5x overdriven", "4x noisier"],
)
def test_pair_checks_of_a_degraded_capture_are_never_a_pass(degrade, reason) -> None:
    from hil.rig import RigConfig

    config = RigConfig.from_dict({"name": "degraded", "card": {"backend": "sim"}, "sim_scope": degrade})
    report = run_suite(config, programs=["hold_move_hold", "add_remove"], plots=False, progress=False)
    pair = [r for r in report.results if r.check in ("crosstalk", "skew")]
    assert {r.check for r in pair} == {"crosstalk", "skew"} if reason == "clipped" else {"crosstalk"} <= {r.check for r in pair}
    judged = [r for r in pair if r.check == "crosstalk" or reason == "clipped"]
    assert judged and all(not r.passed and r.inconclusive for r in judged), [(r.name, r.verdict, r.inconclusive) for r in judged]
    assert all(reason in r.inconclusive for r in judged)
    assert all(r.limit == -50.0 for r in pair if r.check == "crosstalk")  # the limit never follows the noise floor


def test_a_scope_that_applies_a_narrower_range_than_asked_is_never_a_pass() -> None:
    """The scope snaps to a range 0.6x the one asked (its scaling says so): the records clip at
    its own rails, and every check on them is inconclusive, not a reading."""
    from hil.rig import RigConfig

    config = RigConfig.from_dict({"name": "narrow", "card": {"backend": "sim"}, "sim_scope": {"range_factor": 0.6}})
    report = run_suite(config, programs=["hold_move_hold"], plots=False, progress=False)
    on_records = [r for r in report.results if r.check not in ("record_span", "trigger_timing", "scope_timebase")]
    assert on_records and not report.passed
    assert not [r.name for r in on_records if r.passed]
    assert any("clipped" in r.inconclusive for r in on_records)


def test_a_scope_that_applies_a_wider_range_is_judged_at_the_range_it_reports() -> None:
    """The scope snaps to a range 1.6x the one asked: its noise in volts is 1.6x larger. The
    noise budget follows the range the scope reports (read back at set-up), so the clean program
    still passes instead of every fit being called inconclusive."""
    from hil.rig import RigConfig

    config = RigConfig.from_dict({"name": "wide", "card": {"backend": "sim"}, "sim_scope": {"range_factor": 1.6}})
    report = run_suite(config, programs=["hold_move_hold"], plots=False, progress=False)
    assert report.passed, [(r.name, r.inconclusive) for r in report.results if not r.passed]


def _no_skew_rig(name: str):
    from hil.rig import RigConfig

    return RigConfig.from_dict({"name": name, "card": {"backend": "sim"}, "sim_scope": {"trigger_skew_s": 0.0}})


def test_an_uncalibrated_cable_is_fitted_on_the_record_and_reported() -> None:
    """10 ns of cable the rig file does not know (the clean hold->move boundary of the chirp read
    +0.55 deg and failed with the delay taken as configured): the delay is fitted on the move, the
    boundaries pass, and the output_delay check reads the 10 ns against a run without the cable."""
    clean = run_suite(_no_skew_rig("clean"), programs=["hold_move_hold"], plots=False, progress=False)
    cabled = run_suite(_no_skew_rig("cabled"), programs=["hold_move_hold"], inject=["cable=10ns"], plots=False, progress=False)
    assert clean.passed and cabled.passed, [(r.name, r.measured, r.inconclusive) for r in cabled.results if not r.passed]
    for channel in ("H", "V"):
        a = next(r for r in clean.results if r.check == "output_delay" and r.where == channel)
        b = next(r for r in cabled.results if r.check == "output_delay" and r.where == channel)
        assert b.measured - a.measured == pytest.approx(10.0, abs=0.3) and b.sigma < 0.1
    phase = [r for r in cabled.results if r.check == "phase_jump"]
    assert phase and all(abs(r.measured) < 4 * r.sigma for r in phase), [(r.name, r.measured, r.sigma) for r in phase]


def test_a_delay_beyond_the_limit_fails_only_its_check_and_says_what_to_enter() -> None:
    """30 ns off: the output_delay check fails naming the value to enter; the program without a
    move that follows uses the delay fitted on the one before (the cable does not change)."""
    report = run_suite(_no_skew_rig("cabled"), programs=["hold_move_hold", "amp_ramp"], inject=["cable=30ns"], plots=False, progress=False)
    failed = report.failures()
    assert failed and {r.check for r in failed} == {"output_delay"}, [(r.name, r.measured, r.inconclusive) for r in failed]
    for r in failed:
        assert not r.inconclusive and 29.0 < r.measured < 34.0
        assert "output_delay_s = 3." in r.detail["advice"]
    assert [r for r in report.results if r.program == "amp_ramp" and r.check == "phase_jump"]


# ----------------------------------------------------------------------------- the scope triggered by a marker


def _marker_rig(**trigger):
    from hil.rig import SIM_REFERENCE_INPUT, ReferenceTone, RigConfig, TriggerConfig

    return RigConfig(name="sim-marker", trigger=TriggerConfig(scope="marker", **trigger), reference=ReferenceTone(SIM_REFERENCE_INPUT))


def _wait_passes(extra_samples: int = 0) -> int:
    # wait_many_tones: replay starts the trigger latency after the first trigger, and the looped
    # wait segment (LOOP_SAMPLES per pass) ends with the pass in which the later trigger comes
    from awgrt.sim import trigger_latency_samples
    from hil.suite import LOOP_SAMPLES, program_named

    later = program_named("wait_many_tones").later_triggers[0] + extra_samples
    return (later - trigger_latency_samples(625e6)) // LOOP_SAMPLES + 1


def test_a_scope_triggered_by_the_marker_passes_every_check_and_times_every_pass() -> None:
    # the card raises X0 at each pass start of the first segment: t = 0 is the first sample played
    # (not the trigger), every check is placed from there, and the marker's edges are each pass
    report = run_suite(_marker_rig(), programs=["wait_many_tones", "hold_move_hold", "add_remove"], progress=False)
    assert report.passed, [(r.name, r.measured, r.limit, r.inconclusive) for r in report.failures()]
    timing = {r.program: r for r in report.results if r.check == "marker_timing"}
    assert set(timing) == {"wait_many_tones", "hold_move_hold", "add_remove"}
    assert not any(r.check == "trigger_timing" for r in report.results)  # the trigger pulses are not what the scope sees
    wait = timing["wait_many_tones"].detail
    assert wait["segment"] == "wait" and wait["edges"] == wait["passes_in_record"] == wait["first_passes"] == _wait_passes() == 61
    assert timing["hold_move_hold"].detail["edges"] == 1  # a segment played once: one edge
    # 61 passes read on the simulated scope's timebase (20 ppm fast): about 2 ns over the 100 us
    assert 1.0 < timing["wait_many_tones"].measured < 3.0


LATE = 1536  # samples


class _LateSecondTrigger:
    """A simulated rig whose later trigger comes 1.5 passes after it was asked for (a host
    that got to its forced trigger late)."""

    def __new__(cls, config):
        from hil.rig import SimRig

        class Late(SimRig):
            def _delivered(self, triggers, program):
                return [triggers[0], *(t + LATE for t in triggers[1:])]

        return Late(config)


def test_a_late_software_trigger_is_measured_from_the_marker_not_assumed() -> None:
    # the wait segment played more passes than asked: its marker edges say how many, and the
    # boundary out of it is checked where the card put it
    from awgrt.sim import trigger_latency_samples
    from hil.runner import run_program
    from hil.suite import FIRST_TRIGGER, LOOP_SAMPLES, program_named

    prog = program_named("wait_many_tones")
    with _LateSecondTrigger(_marker_rig()) as rig:
        results, _ = run_program(rig, prog)
    assert all(r.passed for r in results), [(r.name, r.measured, r.limit, r.inconclusive, r.detail) for r in results if not r.passed]
    (timing,) = [r for r in results if r.check == "marker_timing"]
    passes = _wait_passes(LATE)
    assert timing.detail["first_passes"] == passes == _wait_passes() + 2
    exits = {r.detail["boundary_sample"] for r in results if r.check == "phase_jump" and "wait->after" in r.where}
    assert exits == {FIRST_TRIGGER + trigger_latency_samples(625e6) + passes * LOOP_SAMPLES}


def test_a_marker_record_that_misses_a_pass_fails_its_check() -> None:
    # the analysis compares the edges with the walk: a record with an edge too few (a marker that
    # stays high over two passes) or one out of place is not a pass
    from types import SimpleNamespace

    import numpy as np

    from hil.runner import _compiled, marker_timing
    from hil.suite import program_named
    from hil.timeline import Timeline

    prog = program_named("wait_many_tones")
    _, quantized, program, n_play = _compiled(_marker_rig(), prog)
    timeline = Timeline.of(quantized, program, prog.triggers, n_play)
    first = timeline.entries[0]
    dt = 0.4e-9
    t = np.arange(-200, 260_000) * dt
    starts = np.arange(first.passes) * first.n_samples / 625e6

    def record(shift_s: float = 0.0, high: tuple[int, int] | None = None):
        v = np.zeros_like(t)
        for i, s in enumerate(starts):
            s += shift_s if i == 30 else 0.0
            v[(t >= s) & (t < s + 0.4e-6)] = 3.3
        if high is not None:
            v[(t >= starts[high[0]]) & (t < starts[high[1]])] = 3.3
        return SimpleNamespace(time_s=t, volts=v, x_increment_s=dt)

    _, ok = marker_timing(record(), timeline, prog.name, 1.65, 45.0, n_play, measure_wait=False)
    assert ok.passed and ok.detail["edges"] == ok.detail["passes_in_record"] == first.passes, ok
    _, missed = marker_timing(record(high=(5, 8)), timeline, prog.name, 1.65, 45.0, n_play, measure_wait=False)
    assert not missed.passed and "marker edges" in missed.detail["error"]
    _, late = marker_timing(record(shift_s=8e-9), timeline, prog.name, 1.65, 45.0, n_play, measure_wait=False)
    assert not late.passed and late.measured == pytest.approx(8.0, abs=0.5)
