"""plan_upload decides without a backend; Runtime.plan is a dry run that touches nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from awgrt import AWGProgramBuilder, Runtime
from awgrt.backends import OutputConfig, SimBackend
from awgrt.spectrum import StopLevel
from awgrt.upload import UploadPlan, plan_upload
from tests.backend_conformance import FS, program

CARD = "M4i.6631-x8"
CONFIG = OutputConfig(FS, 1, (1000,), (StopLevel.ZERO,), "external")


def _card():
    from awgrt import CARDS

    return CARDS[CARD]


def test_first_upload_and_new_setup_are_full():
    new = program(_card())
    plan = plan_upload(None, new, config=None, running=False, playing_slot=None)
    assert plan == UploadPlan("full", True, tuple(range(len(new.segments))), True, False, False)
    faster = replace(CONFIG, sample_rate_hz=2 * FS)
    assert plan_upload(new, new, config=faster, running=False, playing_slot=None).kind == "full"


def test_layout_change_while_running_stops_reloads_and_restarts():
    old, new = program(_card()), program(_card(), hold_us=3.2)
    plan = plan_upload(old, new, config=CONFIG, running=True, playing_slot=0)
    assert (plan.kind, plan.stop_first, plan.restart) == ("full", True, True) and plan.notes


def test_only_changed_slots_and_the_step_table():
    old = program(_card())
    louder = program(_card(), amp=0.4)
    changed = tuple(i for i, (a, b) in enumerate(zip(old.segments, louder.segments)) if not np.array_equal(a.data, b.data))
    assert plan_upload(old, louder, config=CONFIG, running=False, playing_slot=None) == UploadPlan("segments", False, changed, False, False, False)
    loops = program(_card(), loops=7)
    assert plan_upload(old, loops, config=CONFIG, running=False, playing_slot=None) == UploadPlan("steps", False, (), True, False, False)
    assert plan_upload(old, program(_card()), config=CONFIG, running=False, playing_slot=None).kind == "none"


def test_a_playing_slot_is_never_rewritten_silently():
    old, louder = program(_card()), program(_card(), amp=0.4)
    slot = next(i for i, (a, b) in enumerate(zip(old.segments, louder.segments)) if not np.array_equal(a.data, b.data))
    restart = plan_upload(old, louder, config=CONFIG, running=True, playing_slot=slot)
    assert restart.stop_first and restart.restart and "stopped" in restart.notes[0]
    live = plan_upload(old, louder, config=CONFIG, running=True, playing_slot=slot, live="allow")
    assert not live.stop_first and "mixes old and new" in live.notes[0]
    unchanged = next(i for i, (a, b) in enumerate(zip(old.segments, louder.segments)) if np.array_equal(a.data, b.data))
    elsewhere = plan_upload(old, louder, config=CONFIG, running=True, playing_slot=unchanged)
    assert not elsewhere.stop_first and not elsewhere.notes


def _builder(amp):
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("h", logical_channel="H", freqs=[90e6], amps=[0.2], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("h")
        .hold(time=1e-6)
        .segment("b")
        .tones("H")
        .ramp_amp_to(amps=amp, time=1e-6)
    )


def test_runtime_plan_is_a_dry_run():
    be = SimBackend(CARD)
    rt = Runtime(be)
    assert rt.plan(_builder(0.3), sample_rate_hz=FS).kind == "full"
    assert be.program is None and be.config is None  # nothing touched
    rt.run(_builder(0.3), sample_rate_hz=FS)
    before = [np.array(be.sim.segment_data(i)) for i in range(2)]
    plan = rt.plan(_builder(0.5), sample_rate_hz=FS)
    assert plan.kind == "segments" and plan.slots == (1,)
    assert all(np.array_equal(a, be.sim.segment_data(i)) for i, a in enumerate(before))
    rt.run(_builder(0.5), sample_rate_hz=FS)
    assert rt.last_report.upload_kind == plan.kind and rt.last_report.uploaded_segments == ("b",)
