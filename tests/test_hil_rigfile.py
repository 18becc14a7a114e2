"""Rig files are typed strictly: every key has a type, numbers are finite (limits and timeouts
above zero), unknown keys are refused with their path, and every problem is one line naming it,
never a traceback from `awgrt hil --rig`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hil.errors import RigConfigError
from hil.rig import RigConfig

BAD = {
    "a string for a bool": ('[clock]\nshared_reference = "false"\n', "clock.shared_reference"),
    "an infinite limit": ("[limits]\nphase_jump_deg = inf\n", "limits.phase_jump_deg"),
    "a NaN limit": ("[limits]\nwrap_spur_dbc = nan\n", "limits.wrap_spur_dbc"),
    "a NaN timeout": ("[scope]\ntimeout_s = nan\n", "scope.timeout_s"),
    "a zero timeout": ("[scope]\ntimeout_s = 0\n", "scope.timeout_s"),
    "a string trigger level": ('[wiring]\ntrigger_level_v = "0.5"\n', "wiring.trigger_level_v"),
    "a number for the wiring table": ("wiring = 5\n", "[wiring]"),
    "a number for a scope input": ("[wiring]\nawg0 = 1\n", "wiring.awg0"),
    "an unknown wiring key": ('[wiring]\nchannel0 = "CH1"\n', "wiring.channel0"),
    "an unknown filter key": ("[card.reconstruction]\nkind = 'bessel'\ncutoff = 1e8\n", "reconstruction.cutoff"),
    "a bool for a number": ("[card]\nsample_rate_hz = true\n", "card.sample_rate_hz"),
    "a float for a whole number": ("[scope]\nadc_bits = 8.5\n", "scope.adc_bits"),
    "a negative rate": ("[card]\nsample_rate_hz = -625e6\n", "card.sample_rate_hz"),
    "a number for a name": ("name = 5\n", "name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_mistyped_rig_file_is_one_clear_error_naming_the_key(case, tmp_path) -> None:
    text, key = BAD[case]
    path = tmp_path / "rig.toml"
    path.write_text(text if text.startswith("[card]") else text + '\n[card]\nbackend = "sim"\n')
    with pytest.raises(RigConfigError) as err:
        RigConfig.load(path)
    message = str(err.value)
    assert key in message and "\n" not in message, message


@pytest.mark.parametrize(
    "raw",
    [b"[card]\namplitude_mv = " + b"9" * 5000 + b"\n", b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", b'name = "caf\xe9"\n'],
    ids=["5000 digits", "deep nesting", "not UTF-8"],
)
def test_a_hostile_rig_file_is_a_rig_error(raw, tmp_path) -> None:
    path = tmp_path / "rig.toml"
    path.write_bytes(raw)
    with pytest.raises(RigConfigError):
        RigConfig.load(path)


def test_awgrt_hil_prints_one_line_for_a_bad_rig_file(tmp_path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text("[limits]\nphase_jump_deg = inf\n")
    command = [sys.executable, "-m", "awgrt.cli", "hil", "--rig", str(path), "--out", str(tmp_path / "out")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "limits.phase_jump_deg" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_example_rig_file_still_loads() -> None:
    from pathlib import Path

    import hil

    config = RigConfig.load(Path(hil.__file__).parent / "rig.example.toml")
    assert config.name == "lab-rig-1" and config.scope.timeout_s > 0


def test_the_rig_file_names_the_cards_clock_and_the_rig_sets_it_up() -> None:
    from awgrt.backends import ClockConfig, SimBackend
    from hil.rig import SimRig
    from tests.backend_conformance import program

    config = RigConfig.from_dict({"card": {"backend": "sim", "clock_source": "external_reference", "reference_hz": 10e6, "clock_output": True}})
    assert config.card.clock == ClockConfig("external_reference", 10e6, True)
    assert RigConfig.from_dict({}).card.clock == ClockConfig()  # the card's own PLL unless the file says otherwise
    with pytest.raises(RigConfigError, match="clock_source.*must be one of"):
        RigConfig.from_dict({"card": {"clock_source": "rubidium"}})
    with pytest.raises(RigConfigError, match="reference_hz"):
        RigConfig.from_dict({"card": {"clock_source": "external_reference", "reference_hz": 2e3}})
    rig = SimRig(config)
    try:
        with SimBackend() as be:
            p = program(be.card)
            rig._configure(be, p, "external")
            assert be.sim.clock == ClockConfig("external_reference", 10e6, True) and be.config.clock == config.card.clock
    finally:
        rig.close()
