"""The wheel ships the packages and nothing of the tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_no_test_code(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("awgrt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("awgrt/") for n in names) and any(n.startswith("hil/") for n in names)
    assert "awgrt/sim/libspcm_emu.c" in names  # package data the emulated driver needs
    assert {"awgrt/py.typed", "hil/py.typed", "hil/rig.example.toml"} <= set(names)  # typed, and the rig file to copy
    import awgrt

    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Version: {awgrt.__version__}" in meta and "Classifier: Typing :: Typed" in meta  # one source for the version
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    leaked = [n for n in names if "/test_" in n or n.endswith("conftest.py") or n.startswith("tests/")]
    assert not leaked, leaked
