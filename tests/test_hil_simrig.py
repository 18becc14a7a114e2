"""The simulated rig's models, its configuration, and fault injection."""

from __future__ import annotations

import math
import re
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from awgrt import compile_sequence_program, quantize_resolved_ir
from hil.errors import RigConfigError, ScopeConnectionError
from hil.limits import Limits
from hil.response import Filter, SignalPath
from hil.rig import RigConfig, open_rig
from hil.simrig import Bench, DacOutput, Faults, FunctionSignal, ScopeModel
from hil.suite import CLIP, FULL_SCALE, GAIN, hold_move_hold

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

EXAMPLE = Path(__file__).resolve().parents[1] / "hil" / "rig.example.toml"


def butterworth3(f: np.ndarray, fc: float) -> np.ndarray:
    s = 1j * f / fc
    return 1 / ((s + 1) * (s * s + s + 1))


def test_dac_output_matches_the_sum_of_its_spectral_lines() -> None:
    """A held, filtered cosine is the sum over its lines nu = +-f + k fs of Re(H(nu) e^{2 pi i nu t}),
    H = hold (sinc, half-sample delay) x 3rd-order Butterworth, written out here."""
    fs, f, amp, vpc, fc = 625e6, 93.7e6, 12000, 1e-4, 280e6
    codes = np.rint(amp * np.cos(2 * np.pi * f * np.arange(16000) / fs)).astype(np.int16)
    out = DacOutput(codes, fs, vpc, 0.0, Filter("butterworth", fc, 3), f_max_hz=6e9)
    t0, dt, n = 8e-6, 1 / 2.5e9 * (1 + 3e-5), 5000
    y, dy = out.render(t0, dt, n, Filter("none"), derivative=True)
    t = t0 + np.arange(n) * dt
    expected = np.zeros(n)
    for k in range(10):
        for nu in (f + k * fs, k * fs - f):
            if 0 < nu < 6e9:
                h = np.sinc(nu / fs) * np.exp(-1j * np.pi * nu / fs) * butterworth3(np.array(nu), fc)
                expected += amp * vpc * np.real(h * np.exp(2j * np.pi * nu * t))
    assert np.abs(y - expected).max() < 1e-4 * amp * vpc  # int16 rounding of the codes is all that differs
    y2, _ = out.render(t0 + 1e-13, dt, n, Filter("none"))
    assert np.abs(dy - (y2 - y) / 1e-13).max() < 1e-3 * np.abs(dy).max()


def test_scope_model_noise_enob_and_timebase() -> None:
    model = ScopeModel(noise_lsb_rms=1.0, jitter_s=0.0, hd2_dbc=-400, hd3_dbc=-400, timebase_error_ppm=50.0, trigger_skew_s=0.0)
    assert model.enob == pytest.approx(8 - math.log2(math.sqrt(1 + 1 / 12) * math.sqrt(12)))
    f = 50e6
    bench = Bench({"CH1": FunctionSignal(lambda t: 0.2 * np.sin(2 * np.pi * f * t)), "CH2": FunctionSignal(lambda t: 0 * t)})
    bench.publish({}, {"CH3": 1e-6})
    codes = model.acquire(
        bench, {"CH1": (1.0, 0.0), "CH2": (1.0, 0.0)}, trigger_time_s=1e-6, n_points=20000, sample_rate_hz=2.5e9, x_origin_s=0.0, rng=np.random.default_rng(1)
    )
    assert np.std(codes["CH2"]) == pytest.approx(math.sqrt(1 + 1 / 12), rel=0.05)
    # frequency read on the scope's timebase is low by the timebase error
    x = codes["CH1"].astype(float)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), 64 * x.size))
    f_read = np.argmax(spec) / (64 * x.size) * 2.5e9
    assert f_read == pytest.approx(f / (1 + 50e-6), abs=2e3)


def test_trigger_skew_stays_within_its_bound() -> None:
    model = ScopeModel(noise_lsb_rms=0.0, jitter_s=0.0, hd2_dbc=-400, hd3_dbc=-400, timebase_error_ppm=0.0, trigger_skew_s=2e-9)
    ramp = FunctionSignal(lambda t: (t - 1e-6) * 1e8)  # 100 mV per ns, zero at the trigger
    bench = Bench({"CH1": ramp})
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(50):
        c = model.acquire(bench, {"CH1": (2.0, 0.0)}, trigger_time_s=1e-6, n_points=1, sample_rate_hz=2.5e9, x_origin_s=0.0, rng=rng)
        offsets.append(c["CH1"][0] * 2.0 / 256 / 1e8)
    assert max(abs(o) for o in offsets) <= 2e-9 + 0.05e-9  # the bound, plus half a code of the ramp
    assert np.std(offsets) > 0.5e-9  # it does move: the skew is unknown to the analysis


def test_example_rig_file_loads_and_describes_a_real_rig() -> None:
    cfg = RigConfig.load(EXAMPLE)
    assert cfg.card.backend == "spcm" and cfg.scope.family == "keysight"
    assert cfg.wiring == {0: "CH1", 1: "CH3"} and cfg.trigger_input == "CH2"
    assert cfg.limits == Limits.for_scope(8, scope_ppm=25.0, awg_ppm=20.0, shared_reference=False)
    b, a = signal.bessel(4, 2 * np.pi * 1e9, analog=True, norm="mag")
    _, bessel = signal.freqs(b, a, worN=[2 * np.pi * 100e6])
    expected = abs(np.sinc(100e6 / 625e6)) / math.sqrt(1 + (100 / 280) ** 6) * abs(bessel[0])
    assert cfg.path().magnitude(100e6) == pytest.approx(expected, rel=1e-9)



def _example_tables() -> dict[str, str]:
    """The example rig file's text per table (``[name]`` or a commented-out ``# [name]``)."""
    tables: dict[str, list[str]] = {"": []}
    name = ""
    for line in EXAMPLE.read_text().splitlines():
        head = re.match(r"^#?\s*\[([\w.]+)\]", line)
        if head:
            name = head.group(1)
            tables.setdefault(name, [])
        tables[name].append(line)
    return {k: "\n".join(v) for k, v in tables.items()}


@pytest.mark.parametrize(
    ("table", "cls"),
    [("card", "CardConfig"), ("scope", "ScopeConfig"), ("trigger", "TriggerConfig"), ("limits", "Limits"), ("sim_scope", "ScopeModel")],
)
def test_example_rig_file_shows_every_key_of_every_table(table: str, cls: str) -> None:
    import dataclasses

    import hil.rig

    config = {"Limits": Limits, "ScopeModel": ScopeModel}.get(cls) or getattr(hil.rig, cls)
    tables = _example_tables()
    text = "\n".join(v for k, v in tables.items() if k == table or k.startswith(table + "."))
    missing = [f.name for f in dataclasses.fields(config) if not re.search(rf"^(#\s*)?{f.name}\s*=|^\[{table}\.{f.name}\]", text, re.M)]
    assert not missing, f"[{table}] of {EXAMPLE.name} does not show {missing}"
    assert {"wiring", "clock"} <= set(tables)
    clock_keys = ("shared_reference", "reference_input", "reference_hz", "reference_ppm", "reference_v")
    assert all(re.search(rf"^(#\s*)?{key}\s*=", tables["clock"], re.M) for key in clock_keys)


def test_a_reference_tone_in_the_rig_file_sets_the_clock_limits(tmp_path) -> None:
    p = tmp_path / "rig.toml"
    p.write_text('[card]\nbackend = "sim"\nclock_ppm = 5.0\n[scope]\ntimebase_ppm = 30.0\n[clock]\nreference_input = "CH4"\nreference_ppm = 0.5\n')
    cfg = RigConfig.load(p)
    assert cfg.reference is not None and (cfg.reference.input, cfg.reference.hz, cfg.reference.ppm) == ("CH4", 10e6, 0.5)
    assert cfg.limits.frequency_ppm == 5.5 and cfg.limits.scope_timebase_ppm == 30.5
    assert RigConfig.load(EXAMPLE).reference is None


@pytest.mark.parametrize(
    ("clock", "match"),
    [
        ('reference_input = "CH1"', "no AWG channel or trigger uses"),
        ('reference_input = "CH2"', "no AWG channel or trigger uses"),
        ('reference_input = "EXT"', "must be a scope channel"),
        ('reference_input = "CH4"\nshared_reference = true', "nothing to tell apart"),
        ("reference_hz = 10e6", "needs reference_input"),
        ('reference_input = "CH4"\nreference_hz = -1.0', "must be positive"),
        ('reference_input = "CH4"\nreference_freq = 10e6', "unknown keys"),
    ],
)
def test_a_bad_reference_tone_is_refused(tmp_path, clock: str, match: str) -> None:
    p = tmp_path / "rig.toml"
    p.write_text(f'[card]\nbackend = "sim"\n[clock]\n{clock}\n')
    with pytest.raises(RigConfigError, match=match):
        RigConfig.load(p)

def test_rig_file_limits_and_bits_pick_the_right_column(tmp_path) -> None:
    p = tmp_path / "rig.toml"
    p.write_text('[card]\nbackend = "sim"\n[scope]\nadc_bits = 12\n[clock]\nshared_reference = true\n[limits]\nphase_jump_deg = 0.3\n')
    cfg = RigConfig.load(p)
    assert cfg.limits.phase_jump_deg == 0.3 and cfg.limits.wrap_spur_dbc == -70.0 and cfg.limits.frequency_ppm == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[card]\nbogus = 1\n", "unknown keys"),
        ("[scope]\nfamily = 'picoscope'\n", "family"),
        ("[wiring]\nawg0 = 'CH2'\ntrigger = 'CH2'\n", "wiring"),
        ("[limits]\nphase_jump = 1\n", "unknown limits"),
        ("[card]\nmodel = 'M9.9999'\n", "model"),
        ("[card\n", "cannot read"),
        ("[trigger]\nscope = 'camera'\n", "scope must be one of card, marker"),
        ("[trigger]\nscope = 'marker'\nmarker_line = 'X7'\n", "marker_line must be one of .*X0, X1, X2"),
        ("[trigger]\nsource = 'generator'\n[wiring]\ntrigger = 'EXT'\n", "records the generator's pulses"),
    ],
)
def test_bad_rig_files_are_refused_clearly(tmp_path, text: str, message: str) -> None:
    p = tmp_path / "rig.toml"
    p.write_text(text)
    with pytest.raises(RigConfigError, match=message):
        RigConfig.load(p)


def test_a_rig_file_can_trigger_the_scope_on_a_marker_line(tmp_path) -> None:
    # the scope on the card's marker line: a generator's pulses need not reach the scope then
    p = tmp_path / "rig.toml"
    p.write_text("[trigger]\nsource = 'generator'\nscope = 'marker'\nmarker_line = 'X2'\nmarker_delay_s = 3e-9\n[wiring]\ntrigger = 'EXT'\n")
    t = RigConfig.load(p).trigger
    assert (t.marker, t.marker_line, t.marker_delay_s, t.source) == (True, "X2", 3e-9, "generator")


def test_faults_need_the_simulated_rig() -> None:
    with pytest.raises(RigConfigError, match="simulated or emulated rig"):
        open_rig(EXAMPLE, faults=Faults(phase_jump_deg=2.0))


def test_hardware_rig_fails_fast_and_clearly_without_its_scope(tmp_path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    p = tmp_path / "rig.toml"
    p.write_text(EXAMPLE.read_text().replace("TCPIP0::192.168.1.20::inst0::INSTR", f"TCPIP0::127.0.0.1::{port}::SOCKET"))
    with pytest.raises(ScopeConnectionError, match=f"127.0.0.1::{port}"):
        open_rig(p)


def test_phase_fault_rewrites_only_its_target_segment() -> None:
    q = quantize_resolved_ir(hold_move_hold(625e6).build_resolved_ir(sample_rate_hz=625e6), {"H": 0, "V": 1})
    prog = compile_sequence_program(q, GAIN, CLIP, FULL_SCALE, progress=False)
    faulty = Faults(phase_jump_deg=90.0).apply(prog, q, {"phase-jump": "hold_b"}, gain=GAIN, clip=CLIP, full_scale=FULL_SCALE)
    changed = [a.name for a, b in zip(prog.segments, faulty.segments) if not np.array_equal(a.data, b.data)]
    assert changed == ["hold_b"]
    b_old, b_new = (p.segments[1].data[:, 0].astype(float) for p in (prog, faulty))
    # a 90 degree shift of a sine: the new samples are the old ones' quadrature
    k = np.arange(b_old.size)
    f = q.segments[1].tracks[0].pieces[0].tones[0].f0_hz / 625e6
    ref = np.exp(2j * np.pi * f * k)
    shift = np.angle(np.sum(b_new * ref.conj()) / np.sum(b_old * ref.conj()))
    assert math.degrees(shift) == pytest.approx(90.0, abs=0.1)


def test_resolution_of_the_default_simulated_scope() -> None:
    from hil.resolution import measure

    res = measure("sim", trials=3)
    whole, short, locked = res.phase
    for p in res.phase:  # the sigma the fits report is the Cramer-Rao bound for their windows, within 20 %
        assert 0.8 < p.sigma_deg / p.bound_deg < 1.2, p
        assert abs(p.mean_deg) < 5 * p.bound_deg
    assert 0.04 < short.bound_deg < 0.07  # 4 n / (A sqrt N) with N = 2500 a side: about 0.055 deg
    assert whole.bound_deg < 0.8 * short.bound_deg  # the whole pieces see more
    assert 0.4 < locked.bound_deg / whole.bound_deg < 0.6  # a shared reference halves the bound
    assert res.spur_floor_dbc < -80 and res.worst_spur_dbc < -70
    assert res.enob == pytest.approx(6.15, abs=0.01)
    # the suite's own checks: each reports the Cramer-Rao bound of its samples, within 20 %
    assert {p.check for p in res.checks} == {"scope_timebase", "frequency", "amplitude", "chirp_rate", "wrap_step"}
    for p in res.checks:
        assert 0.8 < p.sigma_deg / p.bound_deg < 1.2, p
    timebase = next(p for p in res.checks if p.check == "scope_timebase")
    assert abs(timebase.mean_deg - 20.0) < 5 * timebase.bound_deg  # the simulated scope runs 20 ppm fast


def test_signal_path_combines_hold_and_filters() -> None:
    path = SignalPath(625e6, Filter("butterworth", 280e6, 3), Filter("none"), gain=0.5)
    f = 150e6
    assert path.magnitude(f) == pytest.approx(0.5 * abs(np.sinc(f / 625e6)) / math.sqrt(1 + (f / 280e6) ** 6), rel=1e-9)
    assert replace(path, gain=1.0).magnitude(0.0) == pytest.approx(1.0)
