"""AOD-calibrated channels: the card plays the RF amplitude that gives the asked optical power at
every sample, read back here from the int16 output through the model written out in this file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.calibration import AODCalibration, PositionCalibration
from awgrt.errors import AmplitudeError, CalibrationError, ProgramError
from awgrt.ir.intent import IntentIR
from tests import reference as ref

FS = 625e6
BAND = (70e6, 110e6)
G = (1.0, 0.08, -0.15, 0.02)
V0 = (0.55, 0.05, 0.03)
CAL = AODCalibration(BAND, G, V0, trace="test model")


def power_of(f: np.ndarray, rf: np.ndarray) -> np.ndarray:
    """Optical power (fraction of the band-flat maximum) of RF amplitude ``rf`` at ``f``, from the
    model's formula: g(x) sin^2(pi/2 a / v0(x)) / p_ref, p_ref = min g over the band * sin^2(0.95 pi/2)."""
    x = (2 * f - BAND[0] - BAND[1]) / (BAND[1] - BAND[0])
    g = sum(c * x**k for k, c in enumerate(G))
    v0 = sum(c * x**k for k, c in enumerate(V0))
    xb = np.linspace(-1, 1, 100001)
    p_ref = np.min(sum(c * xb**k for k, c in enumerate(G))) * math.sin(0.95 * math.pi / 2) ** 2
    return g * np.sin(0.5 * np.pi * rf / v0) ** 2 / p_ref


def compile_one(b: AWGProgramBuilder):
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0})
    return q, compile_sequence_program(q, progress=False)


def measured_rf(data: np.ndarray, q, window: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre samples, frequency there, RF amplitude fitted there) of the one tone, window by
    window, against its phase trajectory as the reference integrates it."""
    ((start, tone),) = ref.tones_from_pieces(q.segments[0].tracks[0].pieces).values()
    phase = 2 * np.pi * tone.phase_cycles(FS)
    freq = np.concatenate([s.f0_hz + (s.f_end - s.f0_hz) * ref.progress(s.freq_shape, np.arange(s.n) / s.n) for s in tone.spans])
    centres, fs_, amps = [], [], []
    for lo in range(start, start + tone.n - window, window):
        k = slice(lo - start, lo - start + window)
        design = np.column_stack([np.sin(phase[k]), np.cos(phase[k])])
        coef, *_ = np.linalg.lstsq(design, data[lo : lo + window].astype(float), rcond=None)
        centres.append(lo + window // 2)
        fs_.append(freq[lo - start + window // 2])
        amps.append(math.hypot(*coef) / 32767)
    return np.array(centres), np.array(fs_), np.array(amps)


def test_a_move_across_the_band_keeps_its_optical_power():
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("t", logical_channel="H", freqs=[71e6], amps=[0.8], phases=[0.0])
        .segment("s")
        .tones("H")
        .use_def("t")
        .hold(time=2e-6)
        .move(df=38e6, time=40e-6, kind="min_jerk")
        .hold(time=2e-6)
        .last_step("end")
    )
    q, program = compile_one(b)
    _, f, rf = measured_rf(program.segments[0].data[:, 0], q, window=128)
    # the window's frequency is its centre's: a 128-sample window of the move spans < 0.3 MHz
    power = power_of(f, rf)
    assert np.max(np.abs(power - 0.8)) < 1e-4, np.max(np.abs(power - 0.8))
    assert np.ptp(rf) / np.mean(rf) > 0.05  # the RF amplitude did change along the move
    assert "optical power 0.8..0.8" in program.report.format()


def test_an_amplitude_ramp_is_a_ramp_in_optical_power():
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("t", logical_channel="H", freqs=[95e6], amps=[0.1], phases=[0.0])
        .segment("s")
        .tones("H")
        .use_def("t")
        .ramp_amp_to(amps=0.9, time=51.2e-6)  # 32000 samples
        .last_step("end")
    )
    q, program = compile_one(b)
    centres, f, rf = measured_rf(program.segments[0].data[:, 0], q)
    asked = 0.1 + 0.8 * centres / 32000
    assert np.max(np.abs(power_of(f, rf) - asked)) < 1e-4
    lin = np.polyfit(centres, rf, 1)
    assert np.max(np.abs(np.polyval(lin, centres) - rf)) > 0.005  # ... not a ramp in RF amplitude


def test_power_beyond_what_a_frequency_gives_is_clipped_below_saturation_and_reported():
    assert CAL.max_power > 1.2
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("t", logical_channel="H", freqs=[95e6], amps=[1.2], phases=[0.0])
        .segment("s")
        .tones("H")
        .use_def("t")
        .hold(time=2e-6)
        .move(df=-24e6, time=12.8e-6, kind="linear")  # into the band's weak end
        .last_step("end")
    )
    q, program = compile_one(b)
    saturated = program.report.notes_of("saturation")
    assert saturated and "clipped at 0.95 v0(f)" in saturated[0].detail
    _, f, rf = measured_rf(program.segments[0].data[:, 0], q, window=128)
    x = (2 * f - BAND[0] - BAND[1]) / (BAND[1] - BAND[0])
    v0 = sum(c * x**k for k, c in enumerate(V0))
    assert np.max(rf / v0) < 0.95 + 1e-4  # never past safety * v0, never folded over the peak
    with pytest.raises(AmplitudeError, match="calibrated maximum"):
        AWGProgramBuilder().logical_channel("H", calibration=CAL).define("t", logical_channel="H", freqs=[95e6], amps=[CAL.max_power * 1.01]).segment(
            "s"
        ).tones("H").use_def("t").hold(time=1e-6).build_intent_ir()


def test_calibrated_channels_stay_phase_continuous_and_wrap_seamlessly():
    b = (
        AWGProgramBuilder()
        .logical_channel("H", calibration=CAL)
        .define("t", logical_channel="H", freqs=[80e6, 97e6], amps=[0.5, 0.6])
        .segment("move")
        .tones("H")
        .use_def("t")
        .move(df=[5e6, -3e6], time=20e-6, kind="min_jerk")
        .segment("loop", mode="loop_n", loops=8)
        .tones("H")
        .hold(time=10e-6)
        .segment("ramp")
        .tones("H")
        .ramp_amp_to(amps=[0.2, 0.3], time=10e-6, kind="adiabatic_ramp")
        .last_step("end")
    )
    q, program = compile_one(b)
    data = {s.name: program.segments[q.segment_slot[i]].data[:, 0].astype(np.int64) for i, s in enumerate(q.segments)}
    # the looped hold wraps seamlessly: a pass ends where it starts (whole cycles, exact RF amplitude)
    loop = q.segments[1]
    for s in loop.tracks[0].entry:
        assert abs(s.f0_hz * loop.n_samples / FS - round(s.f0_hz * loop.n_samples / FS)) < 1e-6
    # every boundary is phase continuous: each tone's phase, fitted on 512 samples each side
    # against one trajectory the reference integrates through the edge, agrees to 1e-3 rad
    carried: dict[int, float] = {}
    trajectories = []
    for seg in q.segments:
        tones = ref.tones_from_pieces(seg.tracks[0].pieces, phase0_cycles=carried or None)
        carried = {tid: t.end_phase_cycles(FS) for tid, (_, t) in tones.items()}
        trajectories.append({tid: t.phase_cycles(FS) for tid, (_, t) in tones.items()})
    w = 512
    names = [s.name for s in q.segments]
    for left, right in ((0, 1), (1, 1), (1, 2)):
        ids = sorted(trajectories[left])
        lfit = ref.fit_phases(data[names[left]][-w:], [trajectories[left][t][-w:] for t in ids])
        # a wrap: the pass starts again from its own first sample, whose reference phase continues the last
        if left == right:
            step = [trajectories[left][t][-1] - trajectories[left][t][0] + s.f0_hz / FS for t, s in zip(ids, q.segments[1].tracks[0].entry)]
            rtraj = [trajectories[right][t][:w] + d for t, d in zip(ids, step)]
        else:
            rtraj = [trajectories[right][t][:w] for t in ids]
        rfit = ref.fit_phases(data[names[right]][:w], rtraj)
        jumps = ref.wrap_rad(np.asarray(rfit.phases_rad) - np.asarray(lfit.phases_rad))
        assert np.max(np.abs(jumps)) < 1e-3, (names[left], names[right], jumps)


def test_a_calibration_is_part_of_the_program_and_its_digest():
    def prog(cal):
        return (
            AWGProgramBuilder()
            .logical_channel("H", calibration=cal)
            .define("t", logical_channel="H", freqs=[90e6], amps=[0.5])
            .segment("s")
            .tones("H")
            .use_def("t")
            .hold(time=2e-6)
            .build_intent_ir()
        )

    a = prog(CAL)
    assert IntentIR.from_json(a.to_json()) == a
    other = AODCalibration(BAND, G, (0.56, 0.05, 0.03))
    assert prog(other).digest != a.digest
    assert prog(None).digest != a.digest
    from awgrt.compiler.resolve import resolve_intent_ir

    # the synthesised segment's digest (what the runtime keys uploads on) follows the calibration
    digests = [quantize_resolved_ir(resolve_intent_ir(p, FS), {"H": 0}).segments[0].digest for p in (a, prog(other))]
    assert digests[0] != digests[1]


# ----------------------------------------------------------------------------- positions in um

POS = PositionCalibration((1.5, 0.62, 0.004, -2e-5), 90e6, BAND, trace="camera fit")  # um from MHz - 90


def test_positions_and_frequencies_invert_each_other():
    f = np.linspace(*BAND, 101)
    x = 1.5 + 0.62 * (f / 1e6 - 90) + 0.004 * (f / 1e6 - 90) ** 2 - 2e-5 * (f / 1e6 - 90) ** 3
    assert POS.position_um(f) == pytest.approx(x, abs=1e-12)
    assert np.max(np.abs(POS.position_um(POS.frequency_hz(x)) - x)) < 1e-9
    assert np.max(np.abs(POS.frequency_hz(x) - f)) < 1e-2  # Hz
    lin = PositionCalibration.linear(0.5, 90e6, BAND, x_ref_um=3.0)
    assert lin.frequency_hz(8.0) == pytest.approx(100e6)
    with pytest.raises(CalibrationError, match="outside the calibrated range"):
        POS.frequency_hz(1e3)
    with pytest.raises(CalibrationError, match="monotone"):
        PositionCalibration((0.0, 0.1, -0.05), 90e6, BAND)


def test_definitions_and_moves_in_micrometres():
    b = (
        AWGProgramBuilder()
        .logical_channel("H", position=POS, calibration=CAL)
        .define("row", logical_channel="H", positions_um=[-5.0, 0.0, 5.0], amps=[0.3, 0.3, 0.3])
        .segment("s")
        .tones("H")
        .use_def("row")
        .move(dx_um=[2.0, -1.0, 0.5], time=10e-6, kind="min_jerk")
        .hold(time=1e-6)
    )
    intent = b.build_intent_ir()
    assert POS.position_um(intent.definitions[0].freqs_hz) == pytest.approx([-5.0, 0.0, 5.0], abs=1e-9)
    move = b.build_resolved_ir(sample_rate_hz=FS).segments[0].tracks[0].pieces[0]
    assert POS.position_um([s.f1_hz for s in move.tones]) == pytest.approx([-3.0, -1.0, 5.5], abs=1e-9)
    back = IntentIR.from_json(intent.to_json())
    assert back == intent and back.position("H") == POS
    with pytest.raises(ProgramError, match="position calibration"):
        AWGProgramBuilder().logical_channel("V").define("d", logical_channel="V", positions_um=[1.0], amps=[0.1])
    with pytest.raises(ProgramError, match="one of them"):
        AWGProgramBuilder().logical_channel("H", position=POS).segment("s").tones("H").move(df=1e6, dx_um=1.0, time=1e-6)


@pytest.mark.parametrize("what", ["calibrations", "positions"])
def test_per_channel_calibrations_are_checked_alike(what):
    one = {"calibrations": CAL, "positions": POS}[what]
    base = AWGProgramBuilder().logical_channel("H").define("t", logical_channel="H", freqs=[90e6], amps=[0.5]).segment("s").tones("H").use_def("t")
    intent = base.hold(time=2e-6).build_intent_ir()
    from dataclasses import replace

    with pytest.raises(ProgramError, match=f"{what} must be"):
        replace(intent, **{what: (("H", "not a calibration"),)})
    with pytest.raises(ProgramError, match="unknown logical channel 'V'"):
        replace(intent, **{what: (("V", one),)})
    with pytest.raises(ProgramError, match="two of them"):
        replace(intent, **{what: (("H", one), ("H", one))})
