"""pint quantities (as spcm users write them: ``625 * units.MHz``) wherever awgrt takes hertz,
seconds, radians, micrometres or millivolts, converted once at the edge."""

from __future__ import annotations

import pytest

from awgrt import AWGProgramBuilder, Runtime
from awgrt.backends import SimBackend
from awgrt.calibration import PositionCalibration
from awgrt.errors import ProgramError

pint = pytest.importorskip("pint")
u = pint.UnitRegistry()


def program(q: bool) -> AWGProgramBuilder:
    """The same program written in plain SI numbers and in quantities."""
    MHz, us, rad = (u.MHz, u.us, u.rad) if q else (1e6, 1e-6, 1.0)
    pos = PositionCalibration.linear(2.0, 85e6, (70e6, 100e6))
    return (
        AWGProgramBuilder()
        .logical_channel("H", position=pos)
        .define("d", logical_channel="H", freqs=[80 * MHz, 90.5 * MHz], amps=[0.2, 0.25 * u.dimensionless if q else 0.25], phases=[0.3 * rad, 1.0 * rad])
        .define("p", logical_channel="H", positions_um=[-2 * u.um if q else -2.0, 4000 * u.nm if q else 4.0], amps=[0.1, 0.1])
        .segment("s")
        .tones("H")
        .use_def("d")
        .hold(time=3.2 * us)
        .move(df=[1 * MHz, -500 * (u.kHz if q else 1e3)], time=6.4 * us, kind="min_jerk")
        .ramp_amp_to(amps=0.1, time=1.6 * us, kind="exp", tau=0.4 * us)
        .add_tone(freq=95 * MHz, amp=0.05, phase=0.2 * rad)
        .move(dx_um=[1.5 * u.um if q else 1.5, 0.0, 0.0], time=3.2 * us)
        .last_step("end")
    )


def test_quantities_and_plain_numbers_make_the_same_program():
    plain, quantities = program(False).build_intent_ir(), program(True).build_intent_ir()
    assert quantities == plain and quantities.digest == plain.digest
    r = program(True).build_resolved_ir(sample_rate_hz=625 * u.MHz)
    assert r.sample_rate_hz == 625e6 and r.segments == program(False).build_resolved_ir(sample_rate_hz=625e6).segments


def test_backends_and_the_runtime_take_quantities():
    with SimBackend() as card, Runtime(card, amplitude_mv=0.5 * u.V) as rt:
        rt.run(program(True), sample_rate_hz=0.625 * u.GHz, force_trigger=True)
        assert card.config.sample_rate_hz == 625e6 and card.config.amplitude_mv == (500,)
        assert card.schedule_trigger(after_s=2 * u.us) == card.sim.now - card.start_sample + 1250
    with SimBackend() as card:
        cfg = card.configure(sample_rate_hz=625 * u.MHz, n_channels=1, amplitude_mv=[250 * u.mV])
        assert cfg.amplitude_mv == (250,)


def test_a_quantity_of_the_wrong_dimension_is_refused_naming_it():
    with pytest.raises(ProgramError, match="freqs=.*cannot be taken in Hz"):
        AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[80 * u.us], amps=[0.1])
    with pytest.raises(ProgramError, match="time=.*cannot be taken in s"):
        AWGProgramBuilder().logical_channel("H").segment("s").hold(time=3 * u.MHz)
    with SimBackend() as card, pytest.raises(ProgramError, match="amplitude_mv"):
        card.configure(sample_rate_hz=625e6, n_channels=1, amplitude_mv=3 * u.s)
