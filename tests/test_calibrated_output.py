"""A calibrated channel delivers the optical power asked, or awgrt refuses: calibration files are
checked against their digest, the card output a calibration was measured at is recorded and
compared, fits never extrapolate, snapping never leaves the band silently, and an adiabatic ramp
means the same physics on both kinds of channel."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend
from awgrt.calibration import AODCalibration, CalibrationData, fit_calibration
from awgrt.errors import CalibrationError
from tests import reference as ref
from tests.test_calibration import BAND, measured

CAL = AODCalibration(BAND, (1.0, 0.08, -0.15, 0.02), (0.55, 0.05, 0.03), trace="test model", card_mv=1000)


def _edit(data: dict, how: str) -> dict:
    d = json.loads(json.dumps(data))
    if how == "a coefficient digit":
        d["g"][1] = 0.09
    elif how == "a band edge":
        d["band_hz"][0] = 65e6
    elif how == "a swapped sign":
        d["v0"][1] = -d["v0"][1]
    elif how == "the safety":
        d["safety"] = 0.99
    elif how == "the card amplitude":
        d["card_mv"] = 500
    return d


@pytest.mark.parametrize("how", ["a coefficient digit", "a band edge", "a swapped sign", "the safety", "the card amplitude"])
def test_a_calibration_file_edited_after_it_was_written_is_refused(tmp_path, how) -> None:
    path = tmp_path / "cal.json"
    CAL.save(path)
    assert AODCalibration.load(path) == CAL
    path.write_text(json.dumps(_edit(json.loads(path.read_text()), how)))
    with pytest.raises(CalibrationError, match="does not match its digest"):
        AODCalibration.load(path)


def test_a_calibration_without_a_digest_is_refused_unless_asked(tmp_path) -> None:
    data = CAL.to_dict()
    del data["digest"]
    with pytest.raises(CalibrationError, match="no digest"):
        AODCalibration.from_dict(data)
    assert AODCalibration.from_dict(data, verify=False) == CAL


def test_a_fit_never_extrapolates_beyond_the_measured_band() -> None:
    f, a, p, _ = measured()
    data = CalibrationData(f, a, p, card_mv=1000)
    with pytest.raises(CalibrationError, match=r"band 65\.\.125 MHz reaches beyond the measured 70\.\.110 MHz"):
        fit_calibration(data, band_hz=(65e6, 125e6), g_degree=3)
    assert fit_calibration(data, band_hz=(75e6, 105e6), g_degree=3).calibration.band_hz == (75e6, 105e6)


def test_outliers_are_named_point_by_point() -> None:
    f, a, p, bad = measured()
    fit = fit_calibration(CalibrationData(f, a, p, card_mv=1000), g_degree=3)
    named = fit.outlier_points()
    assert len(named) == int(fit.outliers.sum()) >= int(bad.sum()) > 0
    for i in np.flatnonzero(bad):  # every planted outlier is named by its frequency, RF amplitude and power
        assert any(line.startswith(f"{f[i] / 1e6:.4f} MHz, RF {a[i]:.4f}: measured {p[i]:.4g}") for line in named), (i, named)


def _calibrated(cal: AODCalibration = CAL, f: float = 90e6) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H", calibration=cal)
        .define("d", logical_channel="H", freqs=[f], amps=[0.5])
        .segment("s")
        .tones("H")
        .use_def("d")
        .hold(time=4e-6)
    )


def test_a_gain_other_than_the_calibrations_is_refused_naming_both() -> None:
    q = quantize_resolved_ir(_calibrated().build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0})
    with pytest.raises(CalibrationError, match=r"calibrated at gain 1, compiled at gain=0\.5"):
        compile_sequence_program(q, gain=0.5, progress=False)


def test_a_card_amplitude_other_than_the_calibrations_is_refused_before_the_card_is_touched() -> None:
    with SimBackend() as be:
        rt = Runtime(be, amplitude_mv=500, trigger="software")
        with pytest.raises(CalibrationError, match=r"calibrated at 1000 mV, driven at 500 mV"):
            rt.run(_calibrated(), sample_rate_hz=625e6)
        assert be.program is None and not be.is_running()
        Runtime(be, amplitude_mv=1000, trigger="software").run(_calibrated(), sample_rate_hz=625e6)
        unknown = AODCalibration(BAND, CAL.g, CAL.v0)
        with pytest.raises(CalibrationError, match="does not record the card amplitude"):
            Runtime(be, amplitude_mv=1000, trigger="software").run(_calibrated(unknown), sample_rate_hz=625e6)


def test_snapping_out_of_the_band_names_the_segment_the_tone_and_snapping() -> None:
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("d", logical_channel="H", freqs=[90e6, 109.9999e6], amps=[0.3, 0.3])
        .segment("w", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=1.001e-6)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CalibrationError, match=r"segment 'w'.*tone #1, asked at 109\.999900 MHz, would play at 110\.\d+ MHz after wrap snapping") as err:
            quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0})
    assert err.value.segment == "w"


def _played_amplitude(x: np.ndarray, f: float, fs: float) -> float:
    k = np.arange(len(x))
    a = np.stack([np.cos(2 * np.pi * f / fs * k), np.sin(2 * np.pi * f / fs * k)], axis=1)
    c, *_ = np.linalg.lstsq(a, x, rcond=None)
    return float(np.hypot(*c))


def test_an_adiabatic_ramp_of_optical_power_keeps_the_trap_frequency_rate_constant() -> None:
    """Trap frequency ~ sqrt(P): 1/sqrt(P) follows the smoothstep (on an RF channel, 1/a)."""
    fs, f, n = 625e6, 625e6 * 1000 / 8192, 8192 * 4
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("d", logical_channel="H", freqs=[f], amps=[0.1])
        .segment("s")
        .tones("H")
        .use_def("d")
        .ramp_amp_to(amps=0.8, time=n / fs, kind="adiabatic_ramp")
    )
    p = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=fs), logical_channel_to_hardware_channel={"H": 0}), progress=False)
    x = p.segments[0].data[:, 0].astype(float)
    for u in (0.25, 0.5, 0.75):
        mid = round(u * n)
        rf = _played_amplitude(x[mid - 128 : mid + 128], f, fs) / 32767
        power = float(CAL.optical_power(f, rf))
        want = float(ref.amplitude(math.sqrt(0.1), math.sqrt(0.8), "adiabatic_ramp", u)) ** 2
        wrong = float(ref.amplitude(0.1, 0.8, "adiabatic_ramp", u))  # 1/P along the smoothstep
        assert power == pytest.approx(want, rel=0.01) and abs(want - wrong) > 0.05 * want, (u, power, want, wrong)
