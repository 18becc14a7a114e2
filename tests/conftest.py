"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def emu():
    """The emulated Spectrum driver with two cards (/dev/spcm0: M4i.6631-x8, /dev/spcm1:
    M4i.6622-x8), for the unmodified spcm package. It stays active until the process ends:
    spcm can be imported only once per process."""
    from awgrt.sim import emulated_spcm

    cm = emulated_spcm(cards=["M4i.6631-x8", "M4i.6622-x8"])
    emulation = cm.__enter__()
    yield emulation
