"""awgrt.spectrum's numbers are Spectrum's: each equals the value in spcm_core's register and
error files (read as plain constants, without loading the vendor driver library)."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import pytest

from awgrt import spectrum


def _spcm_core_constants() -> dict[str, object]:
    spec = importlib.util.find_spec("spcm_core")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("spcm_core is not installed")
    folder = Path(spec.submodule_search_locations[0])
    values: dict[str, object] = {}
    for name in ("regs.py", "spcerr.py"):
        values.update(runpy.run_path(str(folder / name)))
    return values


def test_every_register_command_status_and_error_number_matches_spcm_core():
    core = _spcm_core_constants()
    ours = {k: v for k, v in vars(spectrum).items() if k.isupper() and isinstance(v, int)}
    assert len(ours) >= 30
    missing = sorted(k for k in ours if k not in core)
    assert not missing, f"not in spcm_core: {missing}"
    wrong = {k: (v, core[k]) for k, v in ours.items() if core[k] != v}
    assert not wrong, wrong


def test_stop_levels_match_spcm_core():
    core = _spcm_core_constants()
    for level in spectrum.StopLevel:
        assert core[f"SPCM_STOPLVL_{level.name}"] == level.value
