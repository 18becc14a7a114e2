"""The backend conformance kit (tests/backend_conformance.py) run on every backend awgrt ships."""

from __future__ import annotations

import numpy as np
import pytest

from awgrt.backends import SimBackend, SpcmBackend
from tests.backend_conformance import BackendConformance, Observed, program


class TestSimBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self):
        return lambda: SimBackend("M4i.6631-x8")

    def observe(self, backend):
        sim = backend.sim
        return Observed(tuple(np.asarray(sim.segment_data(i)) for i in range(sim.max_segments)), tuple(sim.steps[i] for i in sorted(sim.steps)))

    def run_until_events(self, backend):
        backend.load(program(backend.card))
        backend.start(force_trigger=True)
        backend.force_trigger()
        backend.advance(samples=20000)


class TestSpcmBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, emu):
        return lambda: SpcmBackend("/dev/spcm0")

    @pytest.fixture(autouse=True)
    def _card(self, emu):
        self.emulation = emu

    def observe(self, backend):
        card = self.emulation.card(0)
        return Observed(tuple(np.asarray(card.segment_data(i)) for i in range(card.max_segments)), tuple(card.steps[i] for i in sorted(card.steps)))

    def run_until_events(self, backend):
        import time

        backend.load(program(backend.card))
        backend.start(force_trigger=True)
        card = self.emulation.card(0)
        for _ in range(3):  # the card moves on as it renders (virtual clock); the watcher polls meanwhile
            backend.force_trigger()
            card.render(7000)
            time.sleep(0.05)
