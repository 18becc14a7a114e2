"""Modes and kinds are Literal aliases; the runtime checks are built from the same aliases."""

from __future__ import annotations

from typing import get_args

import pytest

from awgrt import Runtime
from awgrt.backends import SimBackend
from awgrt.backends.base import TRIGGER_SOURCES, TriggerSource
from awgrt.compiler.snap import JOINTS, Joint
from awgrt.errors import ProgramError
from awgrt.ir.intent import LAST_STEP_MODES, PHASE_MODES, SEGMENT_MODES, LastStep, PhaseMode, SegmentMode
from awgrt.ir.shapes import AMP_SHAPES, FREQ_SHAPES, AmpShape, FreqShape
from awgrt.sim.card import ENDLOOP_CHECKS, CardState, EndloopCheck
from awgrt.upload import LIVE_MODES, UPLOAD_KINDS, LiveMode, UploadKind


@pytest.mark.parametrize(
    ("alias", "values"),
    [
        (SegmentMode, SEGMENT_MODES),
        (PhaseMode, PHASE_MODES),
        (LastStep, LAST_STEP_MODES),
        (AmpShape, AMP_SHAPES),
        (FreqShape, tuple(FREQ_SHAPES)),
        (Joint, JOINTS),
        (TriggerSource, TRIGGER_SOURCES),
        (LiveMode, LIVE_MODES),
        (UploadKind, UPLOAD_KINDS),
        (EndloopCheck, ENDLOOP_CHECKS),
    ],
)
def test_each_check_uses_its_alias(alias, values):
    assert tuple(get_args(alias)) == tuple(values)


def test_a_misspelt_mode_is_refused_with_the_choices():
    with pytest.raises(ProgramError, match="restart"):
        Runtime(SimBackend(), live="restrat")


def test_simulator_states_are_an_enum_that_reads_as_text():
    card = SimBackend().sim
    assert card.state is CardState.IDLE and card.state == "idle"
