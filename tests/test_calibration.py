"""AOD calibration: the model, its inverse, the robust fit, data files, equalisation, the CLI.

Synthetic measurements are made here from the physics, P = g(f) sin^2(pi a / (2 v0(f))), with
g and v0 written out in this file, not through awgrt's model.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from awgrt.calibration import AODCalibration, CalibrationData, equalise, fit_calibration, load_data
from awgrt.cli import main as awgrt_main
from awgrt.errors import CalibrationError

BAND = (70e6, 110e6)


def true_g(f):
    x = (2 * np.asarray(f) - BAND[0] - BAND[1]) / (BAND[1] - BAND[0])
    return 1.0 + 0.08 * x - 0.15 * x**2 + 0.02 * x**3


def true_v0(f):
    x = (2 * np.asarray(f) - BAND[0] - BAND[1]) / (BAND[1] - BAND[0])
    return 0.55 + 0.05 * x + 0.03 * x**2


def measured(seed: int = 1, *, outliers: bool = True, relative_noise: float = 0.01):
    """9 frequencies x 25 RF amplitudes through saturation, 1 % noise plus a floor; every 37th
    point, where the beam is bright enough to tell, reads half (a blocked beam, a mis-click)."""
    rng = np.random.default_rng(seed)
    f = np.repeat(np.linspace(*BAND, 9), 25)
    a = np.tile(np.linspace(0.02, 0.62, 25), 9)
    p = true_g(f) * np.sin(0.5 * np.pi * a / true_v0(f)) ** 2
    p = p * (1 + relative_noise * rng.normal(size=f.size)) + 0.002 * rng.normal(size=f.size)
    bad = np.zeros(f.size, bool)
    if outliers:
        bad[::37] = True
        bad &= p > 0.2
        p[bad] *= 0.5
    return f, a, p, bad


@pytest.fixture
def cal() -> AODCalibration:
    return AODCalibration(BAND, (1.0, 0.08, -0.15, 0.02), (0.55, 0.05, 0.03), trace="test model")


def test_the_model_is_the_formula(cal):
    f = np.linspace(*BAND, 7)
    a = np.linspace(0.05, 0.5, 7)
    assert cal.power(f, a) == pytest.approx(true_g(f) * np.sin(0.5 * np.pi * a / true_v0(f)) ** 2, rel=1e-12)
    # power 1.0 is what the weakest frequency gives at safety * v0: flat over the band
    assert cal.p_ref == pytest.approx(float(np.min(true_g(cal.band_grid()))) * math.sin(0.5 * math.pi * 0.95) ** 2, rel=1e-12)


def test_forward_and_inverse_agree_to_1e_9(cal):
    f = np.repeat(np.linspace(*BAND, 41), 41)
    p = np.tile(np.linspace(0.0, 1.0, 41), 41)
    rf, clipped = cal.rf_amplitude(f, p)
    assert not clipped.any()
    assert np.max(np.abs(cal.optical_power(f, rf) - p)) < 1e-9
    assert np.all(rf <= 0.95 * true_v0(f) * (1 + 1e-12))


def test_a_power_beyond_saturation_is_clipped_below_it_and_said(cal):
    f = np.array([70e6, 95e6])
    rf, clipped = cal.rf_amplitude(f, [1.5, 1.0])
    assert clipped.tolist() == [True, False]
    assert rf[0] == pytest.approx(0.95 * true_v0(70e6), rel=1e-12)  # never folded over the peak
    with pytest.raises(CalibrationError, match="outside the calibrated band"):
        cal.rf_amplitude([120e6], [0.5])


def test_the_fit_recovers_g_and_v0_from_noisy_data_with_outliers():
    f, a, p, bad = measured()
    fit = fit_calibration(CalibrationData(f, a, p, source="synthetic"), g_degree=3, v0_degree=2)
    grid = np.linspace(*BAND, 201)
    g_err = np.max(np.abs(fit.calibration.gain(grid) / true_g(grid) - 1))
    v0_err = np.max(np.abs(fit.calibration.saturation(grid) / true_v0(grid) - 1))
    assert g_err < 0.01 and v0_err < 0.01, (g_err, v0_err)
    assert fit.outliers[bad].all()  # every planted outlier is named
    assert "synthetic" in fit.calibration.trace and "outliers" in fit.calibration.trace
    # without the robust loss the outliers would drag g down: check they did not
    plain = np.polyfit(grid, fit.calibration.gain(grid) - true_g(grid), 0)[0]
    assert abs(plain) < 0.005


def test_weights_steer_the_fit():
    f, a, p, _ = measured(outliers=False)
    p = p.copy()
    p[f > 100e6] *= 1.2  # one side of the band mismeasured...
    w = np.where(f > 100e6, 1e-4, 1.0)  # ...and given almost no weight
    fit = fit_calibration(CalibrationData(f, a, p, weights=w), g_degree=3, v0_degree=2)
    assert abs(fit.calibration.gain(85e6) / true_g(85e6) - 1) < 0.01


def test_calibration_files_round_trip_and_their_digest_covers_the_model_not_the_trace(cal, tmp_path):
    path = tmp_path / "cal.json"
    cal.save(path)
    back = AODCalibration.load(path)
    assert back == cal and back.digest == cal.digest and back.trace == "test model"
    from dataclasses import replace

    assert replace(cal, trace="other").digest == cal.digest
    assert replace(cal, safety=0.9).digest != cal.digest
    with pytest.raises(CalibrationError, match="not an awgrt AOD calibration"):
        AODCalibration.from_json(json.dumps({"schema": "x"}))
    with pytest.raises(CalibrationError, match="above zero"):
        AODCalibration(BAND, (1.0, 2.0), (0.5,))


def test_data_files_in_csv_and_json_with_mv_amplitudes(tmp_path):
    f, a, p, _ = measured(outliers=False)
    csv_path = tmp_path / "aod.csv"
    csv_path.write_text("# AOD H, 2026-11-29\nfreq_mhz,rf_mv,power_mw\n" + "".join(f"{fi / 1e6},{ai * 800},{pi}\n" for fi, ai, pi in zip(f, a, p)))
    d = load_data(csv_path, full_scale_mv=800)
    assert d.freq_hz == pytest.approx(f) and d.rf_amp == pytest.approx(a) and d.power_unit == "mW" and "aod.csv" in d.source
    json_path = tmp_path / "aod.json"
    json_path.write_text(json.dumps({"freq_hz": f.tolist(), "rf_amp": a.tolist(), "efficiency": p.tolist()}))
    assert load_data(json_path).power == pytest.approx(p)
    with pytest.raises(CalibrationError, match="full scale in mV"):
        load_data(csv_path)
    (tmp_path / "bad.csv").write_text("freq_hz,power\n1,2\n")
    with pytest.raises(CalibrationError, match="RF amplitude"):
        load_data(tmp_path / "bad.csv")
    (tmp_path / "long_row.csv").write_text("freq_hz,rf_amp,power\n80e6,0.2,0.5\n81e6,0.2,0.5,9\n")
    with pytest.raises(CalibrationError, match="data row 2 has more fields than the header's 3"):
        load_data(tmp_path / "long_row.csv")


def test_equalisation_flattens_a_camera_in_a_few_iterations():
    rng = np.random.default_rng(3)
    site_gain = rng.uniform(0.7, 1.3, 16)  # what the optics do to each tweezer, unknown to the lab

    def camera(powers):
        return site_gain * powers * (1 + 0.003 * rng.normal(size=powers.size))

    powers = np.full(16, 0.6)
    spreads = []
    for _ in range(6):
        seen = camera(powers)
        spreads.append(float(np.ptp(seen) / np.mean(seen)))
        powers = equalise(powers, seen, damping=0.7)
    assert spreads[0] > 0.4 and spreads[-1] < 0.02, spreads
    assert powers.sum() == pytest.approx(0.6 * 16)  # the total asked power is kept
    with pytest.raises(CalibrationError, match="one measurement per tweezer"):
        equalise([0.5, 0.5], [1.0])


def test_cli_fits_and_writes_the_calibration_and_its_report(tmp_path, capsys):
    f, a, p, _ = measured()
    data = tmp_path / "aod.csv"
    data.write_text("freq_hz,rf_amp,power\n" + "".join(f"{fi},{ai},{pi}\n" for fi, ai, pi in zip(f, a, p)))
    out = tmp_path / "cal.json"
    assert awgrt_main(["calibrate", "fit", str(data), "-o", str(out), "--g-degree", "3", "--card-mv", "800"]) == 0
    cal = AODCalibration.load(out)
    assert cal.card_mv == 800 and cal.card_gain == 1.0
    assert abs(cal.gain(90e6) / true_g(90e6) - 1) < 0.01
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    printed = capsys.readouterr().out
    assert "outliers" in printed and "power 1.0" in printed
    assert awgrt_main(["calibrate", "fit", str(tmp_path / "missing.csv"), "-o", str(out), "--card-mv", "800"]) == 2
    assert awgrt_main(["calibrate", "fit", str(data), "-o", str(out)]) == 2  # the card's amplitude is not optional
    assert "--card-mv" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(1, 9))
def test_outliers_are_judged_against_noise_that_grows_with_the_power(seed):
    # 2 % of the reading plus a floor: a bright reading scatters more without being an outlier
    f, a, p, bad = measured(seed, relative_noise=0.02)
    fit = fit_calibration(CalibrationData(f, a, p, source="synthetic"), g_degree=3, v0_degree=2)
    assert fit.noise == "proportional" and fit.outliers.tolist() == bad.tolist()  # exactly the planted ones
    assert "proportional noise" in fit.calibration.trace
    rel = float(re.search(r"x \(([0-9.e-]+) of the reading", fit.calibration.trace).group(1))
    assert 0.01 < rel < 0.03  # the scatter it found is the 2 % it was given
    # one additive sigma for every reading: bright points are flagged that were never planted
    additive = fit_calibration(CalibrationData(f, a, p), g_degree=3, v0_degree=2, noise="additive")
    assert additive.outliers[bad].all() and additive.scale is None
    with pytest.raises(CalibrationError, match="noise='poisson' must be one of"):
        fit_calibration(CalibrationData(f, a, p), noise="poisson")


def test_the_fit_figure_scales_its_residuals_to_the_inliers_and_keeps_legends_off_the_curves(tmp_path):
    from awgrt.calibration import plot_fit

    f, a, p, bad = measured(1)
    fit = fit_calibration(CalibrationData(f, a, p), g_degree=3, v0_degree=2)
    z = fit.scaled_residuals / fit.sigma
    assert np.abs(z[bad]).min() > 20  # the planted readings are far off...
    fig = plot_fit(fit, tmp_path / "cal.png")
    ax_fit, ax_res, ax_band = fig.axes[:3]
    lo, hi = ax_res.get_ylim()
    assert hi == -lo and 7.5 <= hi < 10  # ...yet the axis is set by the inliers
    edge = [line for line in ax_res.lines if line.get_marker() in ("^", "v")]
    assert sum(len(line.get_xdata()) for line in edge) == int(bad.sum())  # each drawn at the edge, the way it went
    assert "6 beyond the axis" in " ".join(t.get_text() for t in ax_res.texts)
    legend = ax_band.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().transformed(ax_band.transAxes.inverted()).y1 < 0.01  # below the axes
    assert ax_fit.get_legend()._loc == 2  # upper left: the curves rise to the right
