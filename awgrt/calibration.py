"""AOD calibration: asking for optical power instead of RF amplitude.

An acousto-optic deflector's diffracted power depends on the RF frequency (the Bragg condition,
the transducer's response) and saturates with RF amplitude. Per logical channel it is modelled as

    P(f, a) = g(f) sin^2(pi/2 a / v0(f))

with ``a`` the tone's RF amplitude (fraction of the card's full scale), ``g(f)`` the power at
saturation and ``v0(f)`` the amplitude that saturates, both polynomials in the normalised frequency
x = (2 f - f_lo - f_hi) / (f_hi - f_lo) over the calibrated band [f_lo, f_hi] (x in [-1, 1]).

A calibrated channel takes amplitudes as **optical power**, in fractions of the calibrated maximum
``p_ref``: the largest power every frequency of the band reaches with its RF amplitude at most
``safety`` v0(f) (so power 1.0 is flat across the band and stays below saturation). The inverse,
a = (2 v0 / pi) arcsin(sqrt(p p_ref / g(f))), is clipped at ``safety`` v0(f); asked powers beyond
that are reported as clipped, never folded back over the saturation peak.

:func:`fit_calibration` fits g and v0 to measured (frequency, RF amplitude, power) data, robustly
(soft-L1 loss, weights, outliers flagged); :func:`equalise` closes the loop on measured tweezer
intensities. ``awgrt calibrate fit DATA -o cal.json`` does the fit from a CSV or JSON file and
draws a PNG report.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write_text
from ._files import read_text, strict_json
from .errors import CalibrationError

SCHEMA = "awgrt.aod_calibration"
#: Points over the band where positivity is checked and p_ref is found.
BAND_GRID = 1025


def _poly(coef: Any, x: Any) -> np.ndarray:
    return np.polynomial.polynomial.polyval(x, np.asarray(coef, dtype=np.float64))


@dataclass(frozen=True)
class AODCalibration:
    """P(f, a) = g(f) sin^2(pi/2 a / v0(f)) over ``band_hz`` (see module doc). ``g`` and ``v0``:
    power-series coefficients (lowest first) in the normalised frequency; ``safety``: the largest
    RF amplitude used, as a fraction of v0; ``power_unit``: the unit of g (the data's); ``trace``:
    where it came from (data file and digest, fit figures, date)."""

    band_hz: tuple[float, float]
    g: tuple[float, ...]
    v0: tuple[float, ...]
    safety: float = 0.95
    power_unit: str = "a.u."
    trace: str = ""
    #: The card's output amplitude (mV full scale into 50 ohm) and the compile gain at which the RF
    #: amplitudes were measured: the optical power is what was asked only at the same two.
    #: None: not recorded (a runtime refuses to drive the AOD with it; see :meth:`check_output`).
    card_mv: int | None = None
    card_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.card_mv is not None and (isinstance(self.card_mv, bool) or not float(self.card_mv).is_integer() or not 0 < self.card_mv <= 10_000):
            raise CalibrationError(f"card_mv={self.card_mv!r} must be the card's amplitude in whole mV (1..10000)", value=self.card_mv)
        if self.card_mv is not None:
            object.__setattr__(self, "card_mv", int(self.card_mv))
        g = self.card_gain
        if isinstance(g, bool) or not (isinstance(g, (int, float)) and math.isfinite(g) and g > 0):
            raise CalibrationError(f"card_gain={g!r} must be a finite number > 0", value=g)
        object.__setattr__(self, "card_gain", float(g))
        lo, hi = (float(x) for x in self.band_hz)
        object.__setattr__(self, "band_hz", (lo, hi))
        object.__setattr__(self, "g", tuple(float(c) for c in self.g))
        object.__setattr__(self, "v0", tuple(float(c) for c in self.v0))
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise CalibrationError(f"band {self.band_hz} Hz must be finite with 0 < low < high", value=self.band_hz)
        if not self.g or not self.v0 or not all(math.isfinite(c) for c in (*self.g, *self.v0)):
            raise CalibrationError(f"g {self.g} and v0 {self.v0} must be non-empty lists of finite coefficients", value=(self.g, self.v0))
        if not 0 < self.safety <= 1:
            raise CalibrationError(f"safety={self.safety} must be in (0, 1]: the largest RF amplitude as a fraction of v0", value=self.safety)
        f = self.band_grid()
        if np.min(self.gain(f)) <= 0 or np.min(self.saturation(f)) <= 0:
            raise CalibrationError("g(f) and v0(f) must stay above zero over the whole band", value=(self.g, self.v0))
        if np.max(self.safety * self.saturation(f)) > 1.0:
            raise CalibrationError(
                f"v0 reaches {np.max(self.saturation(f)):.3g} of full scale: the card cannot drive this AOD to {self.safety:g} v0 "
                "(raise the card's output amplitude, or lower safety)",
                value=self.v0,
            )

    # ------------------------------------------------------------------ the model

    def band_grid(self) -> np.ndarray:
        return np.linspace(self.band_hz[0], self.band_hz[1], BAND_GRID)

    def normalised(self, freq_hz: Any) -> np.ndarray:
        """x = (2 f - f_lo - f_hi) / (f_hi - f_lo); outside the band is a :class:`CalibrationError`."""
        f = np.asarray(freq_hz, dtype=np.float64)
        lo, hi = self.band_hz
        if f.size and (np.min(f) < lo * (1 - 1e-12) or np.max(f) > hi * (1 + 1e-12)):
            bad = float(f.flat[int(np.argmax((f < lo) | (f > hi)))])
            raise CalibrationError(
                f"{bad / 1e6:.6g} MHz is outside the calibrated band {lo / 1e6:.6g}..{hi / 1e6:.6g} MHz (a fitted polynomial is not extrapolated)",
                value=bad,
            )
        return (2.0 * f - lo - hi) / (hi - lo)

    def gain(self, freq_hz: Any) -> np.ndarray:
        """g(f): the power at saturation (``power_unit``)."""
        return _poly(self.g, self.normalised(freq_hz))

    def saturation(self, freq_hz: Any) -> np.ndarray:
        """v0(f): the RF amplitude (fraction of full scale) that saturates."""
        return _poly(self.v0, self.normalised(freq_hz))

    def power(self, freq_hz: Any, rf_amp: Any) -> np.ndarray:
        """P(f, a) in ``power_unit``."""
        a = np.asarray(rf_amp, dtype=np.float64)
        return self.gain(freq_hz) * np.sin(0.5 * np.pi * a / self.saturation(freq_hz)) ** 2

    @functools.cached_property
    def p_ref(self) -> float:
        """The calibrated maximum (``power_unit``): the largest power every frequency of the band
        reaches at RF amplitude ``safety`` v0(f)."""
        return float(np.min(self.gain(self.band_grid()))) * math.sin(0.5 * math.pi * self.safety) ** 2

    @functools.cached_property
    def max_power(self) -> float:
        """The most optical power (fraction of :attr:`p_ref`) any frequency of the band gives at
        ``safety`` v0: asked powers above 1 are clipped where the AOD is weaker."""
        return float(np.max(self.gain(self.band_grid()))) * math.sin(0.5 * math.pi * self.safety) ** 2 / self.p_ref

    def optical_power(self, freq_hz: Any, rf_amp: Any) -> np.ndarray:
        """Forward: optical power as a fraction of :attr:`p_ref` at RF amplitude ``rf_amp``."""
        return self.power(freq_hz, rf_amp) / self.p_ref

    def rf_amplitude(self, freq_hz: Any, power: Any) -> tuple[np.ndarray, np.ndarray]:
        """Inverse: the RF amplitude (fraction of full scale) giving ``power`` (fraction of
        :attr:`p_ref`) at ``freq_hz``, and where it was clipped at ``safety`` v0(f) (a power the
        AOD cannot give there below saturation)."""
        p = np.asarray(power, dtype=np.float64)
        if p.size and (not np.all(np.isfinite(p)) or np.min(p) < 0):
            raise CalibrationError(f"optical power {p} must be finite and >= 0 (fractions of the calibrated maximum)", value=p)
        v0 = self.saturation(freq_hz)
        s = p * self.p_ref / self.gain(freq_hz)
        top = math.sin(0.5 * math.pi * self.safety) ** 2
        clipped = s > top * (1 + 1e-12)
        return (2.0 / np.pi) * v0 * np.arcsin(np.sqrt(np.minimum(s, top))), clipped

    # ------------------------------------------------------------------ files and identity

    def check_output(self, amplitude_mv: int | None, gain: float, where: str) -> None:
        """Raise :class:`CalibrationError` unless the card output (``amplitude_mv``, mV full scale;
        None: not known yet, at compile time) and compile ``gain`` are those this calibration was
        measured at: any other scales the RF amplitude, and so the optical power, away from what
        was asked. ``where`` names the channel."""
        if gain != self.card_gain:
            raise CalibrationError(
                f"{where}: calibrated at gain {self.card_gain:g}, compiled at gain={gain:g}: every RF amplitude would be scaled by "
                f"{gain / self.card_gain:.4g} and the optical power would not be what was asked; compile at gain={self.card_gain:g} "
                "(set the channel's power with its amplitudes) or calibrate at this gain",
                value=gain,
            )
        if amplitude_mv is None:
            return
        if self.card_mv is None:
            raise CalibrationError(
                f"{where}: the calibration does not record the card amplitude it was measured at (card_mv), so the optical power "
                f"it delivers at {amplitude_mv} mV is unknown; record it (awgrt calibrate fit --card-mv, or AODCalibration(..., card_mv=))",
                value=amplitude_mv,
            )
        if amplitude_mv != self.card_mv:
            scale = amplitude_mv / self.card_mv
            raise CalibrationError(
                f"{where}: calibrated at {self.card_mv} mV, driven at {amplitude_mv} mV: every RF amplitude would be scaled by {scale:.4g} "
                f"(about {scale**2:.3g}x the asked optical power at low power); set the card to {self.card_mv} mV for this channel, "
                "or calibrate at the amplitude you use",
                value=amplitude_mv,
            )

    def _model(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "band_hz": list(self.band_hz),
            "g": list(self.g),
            "v0": list(self.v0),
            "safety": self.safety,
            "power_unit": self.power_unit,
            "card_mv": self.card_mv,
            "card_gain": self.card_gain,
        }

    def to_dict(self) -> dict[str, Any]:
        """The file's content: the model, the trace, and the model's digest (checked on load)."""
        return {**self._model(), "trace": self.trace, "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, verify: bool = True) -> AODCalibration:
        """The calibration ``data`` holds. With ``verify`` (the default) the digest it carries must
        match its model: a file edited by hand after it was written (a coefficient, a band edge,
        a sign) is refused, as is one that carries no digest. ``verify=False`` takes it as it is
        (then save it again to sign it)."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise CalibrationError(f"not an awgrt AOD calibration (schema {data.get('schema') if isinstance(data, Mapping) else None!r})")
        try:
            cal = cls(
                tuple(data["band_hz"]),
                tuple(data["g"]),
                tuple(data["v0"]),
                data["safety"],
                data["power_unit"],
                data["trace"],
                data.get("card_mv"),
                data.get("card_gain", 1.0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed AOD calibration: {exc!r}") from exc
        if verify:
            stored = data.get("digest")
            if stored is None:
                raise CalibrationError(
                    "the calibration carries no digest, so an edit after it was written cannot be ruled out: check it, then load it with "
                    "AODCalibration.from_dict(data, verify=False) and save it again"
                )
            if stored != cal.digest:
                raise CalibrationError(
                    f"the calibration's content does not match its digest ({str(stored)[:12]}... written, {cal.digest[:12]}... now): "
                    "it was changed after it was written (a coefficient, the band, the safety or the card output); fit it again",
                    value=stored,
                )
        return cal

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, verify: bool = True) -> AODCalibration:
        return cls.from_dict(strict_json(text, "the calibration"), verify=verify)

    def save(self, path: str | Path) -> None:
        """Write the calibration atomically: a failed save leaves the previous file whole."""
        try:
            atomic_write_text(path, self.to_json() + "\n")
        except OSError as exc:
            raise CalibrationError(f"cannot save the calibration to {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> AODCalibration:
        """Read a calibration file, checking its digest (see :meth:`from_dict`)."""
        text = read_text(path, "calibration")
        try:
            return cls.from_dict(strict_json(text, f"{path}"), verify=verify)
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc.detail}", value=exc.value) from None

    @functools.cached_property
    def digest(self) -> str:
        """Content digest of the model (the trace is not part of it: two fits that give the same
        model give the same samples)."""
        return hashlib.sha256(json.dumps(self._model(), sort_keys=True).encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AODCalibration) and self.digest == other.digest


# ---------------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class CalibrationData:
    """Measured points: RF frequency (Hz), RF amplitude (fraction of full scale), optical power
    (or diffraction efficiency, in ``power_unit``), and optional weights; ``card_mv`` and
    ``card_gain``: the card's output amplitude (mV full scale) and the compile gain the RF
    amplitudes were played at (the fitted calibration records them)."""

    freq_hz: np.ndarray
    rf_amp: np.ndarray
    power: np.ndarray
    weights: np.ndarray | None = None
    power_unit: str = "a.u."
    source: str = ""
    card_mv: int | None = None
    card_gain: float = 1.0


_FREQ_KEYS = {"freq_hz": 1.0, "frequency_hz": 1.0, "freq_mhz": 1e6, "frequency_mhz": 1e6}
_AMP_KEYS = ("rf_amp", "amp", "amplitude")
_MV_KEYS = ("rf_mv", "amp_mv", "amplitude_mv")
_POWER_KEYS = ("power", "optical_power", "power_mw", "efficiency", "diffraction_efficiency")


#: Where the CSV reader puts a row's fields beyond the header's (a file to refuse).
_EXTRA_FIELDS = "\x00extra fields"


def load_data(path: str | Path, *, full_scale_mv: float | None = None, card_gain: float = 1.0) -> CalibrationData:
    """Read calibration data from a CSV (a header row) or JSON file (a list of records, or an
    object of equal-length lists). Columns: the frequency (``freq_hz`` or ``freq_mhz``), the RF
    amplitude (``rf_amp``, a fraction of full scale, or ``rf_mv`` / ``amp_mv`` with
    ``full_scale_mv``: the card's amplitude setting), the power (``power``, ``power_mw``,
    ``efficiency`` ...) and optionally ``weight``. ``full_scale_mv``: the card's amplitude setting
    during the sweep (recorded in the calibration), ``card_gain`` the compile gain it played at."""
    path = Path(path)
    text = read_text(path, "calibration data")
    if path.suffix.lower() == ".json":
        raw = strict_json(text, str(path))
        try:
            columns = {k: list(v) for k, v in raw.items()} if isinstance(raw, dict) else {k: [r[k] for r in raw] for k in (raw[0] if raw else {})}
        except (TypeError, KeyError, AttributeError, IndexError) as exc:
            raise CalibrationError(f"{path}: needs an object of equal-length lists, or a list of records with the same keys ({exc!r})") from None
    else:
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        header = next(csv.reader(lines[:1]), [])
        twice = sorted({h.strip() for h in header if [x.strip() for x in header].count(h.strip()) > 1})
        if twice:
            raise CalibrationError(f"{path}: column {twice[0]!r} appears twice in the header (which one was meant is ambiguous)")
        rows = list(csv.DictReader(lines, restkey=_EXTRA_FIELDS))
        for number, row in enumerate(rows, start=2):
            if _EXTRA_FIELDS in row:
                raise CalibrationError(f"{path}: data row {number - 1} has more fields than the header's {len(header)}")
        columns = {k.strip(): [r[k] for r in rows] for k in (rows[0] if rows else {})}
    columns = {k.lower(): v for k, v in columns.items()}

    def column(keys: Sequence[str]) -> tuple[str, np.ndarray] | None:
        for k in keys:
            if k in columns:
                try:
                    return k, np.asarray([float(v) for v in columns[k]], dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise CalibrationError(f"{path}: column {k!r} holds a value that is not a number: {exc}") from exc
        return None

    freq = column(tuple(_FREQ_KEYS))
    power = column(_POWER_KEYS)
    amp = column(_AMP_KEYS)
    mv = column(_MV_KEYS)
    if freq is None or power is None or (amp is None and mv is None):
        raise CalibrationError(
            f"{path}: needs a frequency column ({', '.join(_FREQ_KEYS)}), an RF amplitude ({', '.join(_AMP_KEYS + _MV_KEYS)}) "
            f"and a power ({', '.join(_POWER_KEYS)}); found {sorted(columns)}"
        )
    if amp is not None:
        rf = amp[1]
    else:
        assert mv is not None  # one of the two was found above
        if not full_scale_mv or full_scale_mv <= 0:
            raise CalibrationError(f"{path}: RF amplitudes in mV ({mv[0]!r}) need the card's full scale in mV (--full-scale-mv)")
        rf = mv[1] / float(full_scale_mv)
    weights = column(("weight", "weights"))
    unit = "mW" if power[0] == "power_mw" else ("efficiency" if "efficiency" in power[0] else "a.u.")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    card_mv = None if not full_scale_mv else round(float(full_scale_mv))
    f = freq[1] * _FREQ_KEYS[freq[0]]
    return CalibrationData(f, rf, power[1], None if weights is None else weights[1], unit, f"{path.name} (sha256 {digest})", card_mv, card_gain)


@dataclass(frozen=True)
class CalibrationFit:
    """What :func:`fit_calibration` found: the calibration, the residual of every point (power
    units, fit minus measured), the noise model (``"proportional"`` or ``"additive"``) and each
    point's noise ``scale`` under it (power units: the point's power plus the floor, or 1), the
    robust scale ``sigma`` of the scaled residuals (a fraction of the point's power for the
    proportional model, power units for the additive one), which points were taken as outliers
    (scaled residual beyond ``OUTLIER_SIGMAS`` sigma) and the data fitted."""

    calibration: AODCalibration
    data: CalibrationData = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    sigma: float
    outliers: np.ndarray = field(repr=False)
    noise: str = "additive"
    scale: np.ndarray | None = field(default=None, repr=False)

    @property
    def scaled_residuals(self) -> np.ndarray:
        """The residuals in the units outliers are judged in (see the class doc)."""
        return self.residuals if self.scale is None else self.residuals / self.scale

    def outlier_points(self) -> list[str]:
        """Each outlier in words: frequency, RF amplitude, measured and fitted power."""
        d = self.data
        return [
            f"{d.freq_hz[i] / 1e6:.4f} MHz, RF {d.rf_amp[i]:.4f}: measured {d.power[i]:.4g}, fit {d.power[i] + self.residuals[i]:.4g} {d.power_unit}"
            for i in np.flatnonzero(self.outliers)
        ]

    @property
    def rms_relative(self) -> float:
        """Rms residual of the inliers relative to the largest measured power."""
        r = self.residuals[~self.outliers]
        return float(np.sqrt(np.mean(r * r)) / np.max(self.data.power))


#: A point whose residual exceeds this many robust sigmas is an outlier (reported, down-weighted).
OUTLIER_SIGMAS = 5.0
#: Noise models of the power readings: ``"proportional"`` (the default: a power meter's or a
#: photodiode's noise grows with the power, as a fraction of it plus a floor) or ``"additive"``
#: (the same noise on every reading).
NOISE_MODELS = ("proportional", "additive")
#: Bins (by power) in which the proportional model's two terms are estimated from the residuals.
NOISE_BINS = 6


def _noise_scale(p: np.ndarray, resid: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Each reading's noise scale sqrt(floor^2 + (rel P)^2) under the proportional model, with
    ``floor`` (power units) and ``rel`` estimated from the residuals' robust scatter (1.4826 MAD)
    in :data:`NOISE_BINS` bins of the readings sorted by power: the floor is the dimmest bin's
    scatter, ``rel`` the median over the brighter half of sqrt(scatter^2 - floor^2) / mean(P).
    Too few points: one additive scale."""
    order = np.argsort(p)
    bins = [b for b in np.array_split(order, NOISE_BINS) if b.size >= 8]
    if len(bins) < 3:
        s = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) or float(np.std(resid)) or 1e-12
        return np.full(p.size, s), s, 0.0
    level = np.array([float(np.mean(np.abs(p[b]))) for b in bins])
    spread = np.array([1.4826 * float(np.median(np.abs(resid[b] - np.median(resid[b])))) for b in bins])
    floor = float(spread[0]) or 1e-6 * float(np.max(np.abs(p)) or 1.0)
    bright = slice(len(bins) // 2, None)
    rel = float(np.median(np.sqrt(np.maximum(spread[bright] ** 2 - floor**2, 0.0)) / np.maximum(level[bright], 1e-300)))
    return np.sqrt(floor**2 + (rel * p) ** 2), floor, rel


def fit_calibration(
    data: CalibrationData,
    *,
    band_hz: tuple[float, float] | None = None,
    g_degree: int = 4,
    v0_degree: int = 2,
    safety: float = 0.95,
    noise: str = "proportional",
) -> CalibrationFit:
    """Fit P(f, a) = g(f) sin^2(pi/2 a / v0(f)) to ``data`` (see module doc): nonlinear least
    squares with a soft-L1 loss (an outlier pulls like its square root, not its square), each
    point's residual divided by its noise scale under the ``noise`` model (see
    :data:`NOISE_MODELS`: by default its power plus :data:`NOISE_FLOOR` of the largest, so a
    bright point's larger scatter is no outlier) and weighted by ``data.weights``; the loss scale
    is set from a first pass's robust scale of those residuals, and points beyond
    :data:`OUTLIER_SIGMAS` of it are flagged. ``band_hz`` defaults to the data's frequency span."""
    from scipy.optimize import least_squares

    if noise not in NOISE_MODELS:
        raise CalibrationError(f"noise={noise!r} must be one of {NOISE_MODELS}", value=noise)

    f, a, p = (np.asarray(x, dtype=np.float64) for x in (data.freq_hz, data.rf_amp, data.power))
    if not (f.size == a.size == p.size) or f.size < g_degree + v0_degree + 4:
        raise CalibrationError(f"{f.size} points cannot fit g (degree {g_degree}) and v0 (degree {v0_degree}): take more data")
    if not all(np.all(np.isfinite(x)) for x in (f, a, p)) or np.min(a) < 0:
        raise CalibrationError("calibration data must be finite, with RF amplitudes >= 0")
    band = band_hz or (float(np.min(f)), float(np.max(f)))
    lo, hi = band
    span = (float(np.min(f)), float(np.max(f)))
    if lo < span[0] * (1 - 1e-9) or hi > span[1] * (1 + 1e-9):
        raise CalibrationError(
            f"band {lo / 1e6:.6g}..{hi / 1e6:.6g} MHz reaches beyond the measured {span[0] / 1e6:.6g}..{span[1] / 1e6:.6g} MHz: a fitted "
            "polynomial is not extrapolated; measure over the whole band, or calibrate a narrower one",
            value=band_hz,
        )
    x = (2.0 * f - lo - hi) / (hi - lo)
    w = np.ones_like(p) if data.weights is None else np.sqrt(np.clip(np.asarray(data.weights, dtype=np.float64), 0.0, None))
    s = np.ones_like(p)  # the first pass: one scale for every reading
    ng = g_degree + 1

    def model(theta: np.ndarray) -> np.ndarray:
        return _poly(theta[:ng], x) * np.sin(0.5 * np.pi * a / _poly(theta[ng:], x)) ** 2

    # start: g flat at the largest power, v0 flat where the power of the loudest points peaks
    v0_start = float(a[np.argmax(p)]) if np.max(a) > 0 else 0.5
    theta0 = np.concatenate([[1.05 * np.max(p)], np.zeros(g_degree), [max(v0_start, 0.05)], np.zeros(v0_degree)])
    scale = 0.01 * float(np.max(p))
    floor = rel = 0.0
    for first in (True, False):
        res = least_squares(lambda t, s=s: w * (model(t) - p) / s, theta0, loss="soft_l1", f_scale=scale, x_scale="jac", max_nfev=2000)
        theta0 = res.x
        resid = model(res.x) - p
        if noise == "proportional" and first:  # the second pass weighs each reading by its own noise
            s, floor, rel = _noise_scale(p, resid)
        r = resid / s
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r)))) or float(np.std(r)) or 1e-12
        scale = 2.0 * sigma
    if not res.success:
        raise CalibrationError(f"the calibration fit did not converge: {res.message}")
    outliers = np.abs(resid / s) > OUTLIER_SIGMAS * sigma
    if noise == "proportional":
        scatter = f"{sigma:.3g} x ({rel:.3g} of the reading (+) {floor:.3g} {data.power_unit})"
    else:
        scatter = f"{sigma:.3g} {data.power_unit}"
    trace = (
        f"fitted to {data.source or 'data'}: {f.size} points ({int(outliers.sum())} outliers beyond {OUTLIER_SIGMAS:g} sigma), "
        f"g degree {g_degree}, v0 degree {v0_degree}, {noise} noise, robust residual sigma {scatter}"
    )
    try:
        cal = AODCalibration(band, tuple(res.x[:ng]), tuple(res.x[ng:]), safety, data.power_unit, trace, data.card_mv, data.card_gain)
    except CalibrationError as exc:
        raise CalibrationError(f"the fitted model is not usable: {exc.detail} (check the data, or lower the polynomial degrees)") from None
    return CalibrationFit(cal, data, resid, sigma, outliers, noise, None if noise == "additive" else s)


def plot_fit(fit: CalibrationFit, path: str | Path | None = None):
    """The fit as a matplotlib Figure (saved as PNG to ``path`` if given): measured power against
    RF amplitude per frequency with the model, the residuals per frequency, and g(f), v0(f) over
    the band. Does not touch pyplot or the user's backend."""
    import matplotlib

    from .plot import new_figure, save_figure

    cal, d = fit.calibration, fit.data
    fig = new_figure(figsize=(15, 4.8), layout="constrained")
    ax_fit, ax_res, ax_band = fig.subplots(1, 3)
    freqs = np.unique(np.round(d.freq_hz, 3))
    cmap = matplotlib.colormaps["viridis"]
    for i, fq in enumerate(freqs):
        c = cmap(i / max(1, len(freqs) - 1))
        sel = np.isclose(d.freq_hz, fq)
        ax_fit.plot(d.rf_amp[sel], d.power[sel], "o", ms=3, color=c, label=f"{fq / 1e6:.4g} MHz" if len(freqs) <= 12 else None)
        out = sel & fit.outliers
        ax_fit.plot(d.rf_amp[out], d.power[out], "x", ms=7, color="red")
        aa = np.linspace(0, max(float(np.max(d.rf_amp[sel])), 1e-3), 200)
        ax_fit.plot(aa, cal.power(np.full_like(aa, fq), aa), "-", lw=1, color=c)
        z = fit.scaled_residuals[sel] / fit.sigma
        ax_res.plot(np.full(int(sel.sum()), fq / 1e6), z, "o", ms=3, color=c)
    ax_fit.set(xlabel="RF amplitude (fraction of full scale)", ylabel=f"power ({cal.power_unit})", title="data (o, outliers x) and fit")
    if len(freqs) <= 12:  # the curves rise to the right: the upper left is free
        ax_fit.legend(fontsize=7, loc="upper left", framealpha=0.85, ncols=2 if len(freqs) > 6 else 1)
    # residuals in units of their own noise: what the outlier cut judges; the axis is set by the
    # inliers (an outlier far off is drawn at the edge, pointing the way it went)
    z = fit.scaled_residuals / fit.sigma
    inner = z[~fit.outliers]
    top = max(1.5 * OUTLIER_SIGMAS, 1.2 * float(np.max(np.abs(inner))) if inner.size else 0.0)
    off = np.abs(z) > top
    if off.any():
        up, down = off & (z > 0), off & (z < 0)
        ax_res.plot(d.freq_hz[up] / 1e6, np.full(int(up.sum()), 0.97 * top), "^", ms=6, color="red", ls="none")
        ax_res.plot(d.freq_hz[down] / 1e6, np.full(int(down.sum()), -0.97 * top), "v", ms=6, color="red", ls="none")
        ax_res.text(0.01, 0.01, f"{int(off.sum())} beyond the axis (red triangles)", transform=ax_res.transAxes, fontsize=7, color="red")
    ax_res.set_ylim(-top, top)
    ax_res.axhline(0, color="k", lw=0.5)
    for k in (-OUTLIER_SIGMAS, OUTLIER_SIGMAS):
        ax_res.axhline(k, color="red", lw=0.5, ls="--")
    if fit.noise == "proportional":
        noise = "noise grows with the power"
    else:
        noise = f"one noise {fit.sigma:.3g} {cal.power_unit}"
    title = f"residuals in noise sigmas ({noise}; {OUTLIER_SIGMAS:g} sigma dashed; {int(fit.outliers.sum())} outliers)"
    ax_res.set(xlabel="frequency (MHz)", ylabel="fit - measured (sigmas of that reading)")
    ax_res.set_title(title, fontsize=9)
    fb = cal.band_grid()
    ax_band.plot(fb / 1e6, cal.gain(fb), color="C0", label="g(f): power at saturation")
    ax_band.axhline(cal.p_ref, color="C0", ls=":", label=f"p_ref (power 1.0) = {cal.p_ref:.3g}")
    ax_band.set(xlabel="frequency (MHz)", ylabel=f"g ({cal.power_unit})", title="the model over the band")
    twin = ax_band.twinx()
    twin.plot(fb / 1e6, cal.saturation(fb), color="C3", label="v0(f): saturating amplitude")
    twin.set_ylabel("v0 (fraction of full scale)")
    handles = ax_band.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax_band.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, ncols=2, frameon=False)  # below: no curve covered
    save_figure(fig, path, dpi=100)
    return fig


# ---------------------------------------------------------------------------------- equalisation


def equalise(powers: Sequence[float], measured: Sequence[float], *, damping: float = 0.7, target: float | None = None) -> np.ndarray:
    """One step of intensity equalisation: the asked optical powers of a definition's tweezers
    (``powers``, fractions of the calibrated maximum) corrected so that the ``measured``
    intensities (a camera's, any unit) come out equal, at their mean (or ``target``, in the
    measurement's unit). Each power is multiplied by (target / measured)^damping; ``damping`` in
    (0, 1] trades speed for robustness to noise (1: the full correction at once). Repeat with new
    measurements until flat; the total asked power is kept when no ``target`` is given."""
    p = np.asarray(powers, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if p.shape != m.shape or p.ndim != 1 or not p.size:
        raise CalibrationError(f"{p.size} powers but {m.size} measured intensities: give one measurement per tweezer")
    if not (0 < damping <= 1):
        raise CalibrationError(f"damping={damping} must be in (0, 1]")
    if np.min(m) <= 0 or not np.all(np.isfinite(m)):
        raise CalibrationError(f"measured intensities {m} must be finite and > 0 (a dark tweezer cannot be equalised)")
    goal = float(np.mean(m)) if target is None else float(target)
    out = p * (goal / m) ** damping
    if target is None:
        out *= p.sum() / out.sum()
    return out


def with_trace(cal: AODCalibration, note: str) -> AODCalibration:
    """``cal`` with ``note`` appended to its trace."""
    return replace(cal, trace=f"{cal.trace}; {note}" if cal.trace else note)


# ---------------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class PositionCalibration:
    """Where a tone puts its tweezer: x(f) = sum_k c_k (f - f_ref)^k, x in um and f in MHz
    (``coefficients`` c_0, c_1 [um/MHz], c_2 ...; at least c_1), monotone over ``band_hz``. The
    linear case is :meth:`linear`. Frequencies come from positions by Newton's method on the
    polynomial, to 1e-9 um."""

    coefficients: tuple[float, ...]
    f_ref_hz: float
    band_hz: tuple[float, float]
    trace: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", tuple(float(c) for c in self.coefficients))
        object.__setattr__(self, "band_hz", tuple(float(x) for x in self.band_hz))
        if len(self.coefficients) < 2 or not all(math.isfinite(c) for c in self.coefficients) or not math.isfinite(self.f_ref_hz):
            raise CalibrationError(f"position coefficients {self.coefficients} need at least an offset and a slope (um, um/MHz), all finite")
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise CalibrationError(f"position band {self.band_hz} Hz must have 0 < low < high")
        slope = self._slope(np.linspace(lo, hi, BAND_GRID))
        if not (np.all(slope > 0) or np.all(slope < 0)):
            raise CalibrationError("the position calibration must be monotone over its band (one frequency per position)")

    @classmethod
    def linear(cls, um_per_mhz: float, f_ref_hz: float, band_hz: tuple[float, float], *, x_ref_um: float = 0.0, trace: str = "") -> PositionCalibration:
        """x = x_ref + um_per_mhz (f - f_ref) / 1 MHz."""
        return cls((x_ref_um, um_per_mhz), f_ref_hz, band_hz, trace)

    def _slope(self, freq_hz: np.ndarray) -> np.ndarray:
        d = np.polynomial.polynomial.polyder(np.asarray(self.coefficients))
        return _poly(d, (np.asarray(freq_hz, dtype=np.float64) - self.f_ref_hz) / 1e6)

    def position_um(self, freq_hz: Any) -> np.ndarray:
        """x(f) in um."""
        return _poly(self.coefficients, (np.asarray(freq_hz, dtype=np.float64) - self.f_ref_hz) / 1e6)

    def frequency_hz(self, position_um: Any) -> np.ndarray:
        """f(x) in Hz: the inverse over the band; a position outside it is an error."""
        x = np.asarray(position_um, dtype=np.float64)
        lo, hi = self.band_hz
        ends = self.position_um(np.array([lo, hi]))
        outside = (x < np.min(ends) - 1e-9) | (x > np.max(ends) + 1e-9)
        if np.any(outside):
            bad = float(x[outside].flat[0])
            raise CalibrationError(f"position {bad:g} um is outside the calibrated range {np.min(ends):.6g}..{np.max(ends):.6g} um", value=bad)
        f = lo + (x - ends[0]) / (ends[1] - ends[0]) * (hi - lo)  # start on the chord
        for _ in range(60):
            step = (self.position_um(f) - x) / self._slope(f) * 1e6
            f = np.clip(f - step, lo, hi)
            if np.max(np.abs(self.position_um(f) - x), initial=0.0) < 1e-9:
                break
        return f
