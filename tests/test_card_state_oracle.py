"""A card-state oracle: after every ``Runtime.run`` the card itself (the simulator's state, and the
emulated card behind spcm) is read back and compared with what was asked, field by field: every
output setting, the slot count and sizes, the start step, every step entry and every slot's
samples. Random sequences of runs change every Runtime and program field between runs.

The reader here looks at the :class:`~awgrt.sim.SimulatedCard`'s registers and memory directly
(for spcm, the emulated card behind the driver), not through the backend or ``awgrt.readback``;
the expected values are the test's own: the Runtime arguments it drew and the compiled program's
step fields and samples.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awgrt import AWGProgramBuilder, Runtime
from awgrt.backends import SimBackend
from awgrt.spectrum import StopLevel

FS = 625e6
LEVELS = ["zero", "low", "high", "hold_last"]


def program(variant: int, amp: float, loops: int, fs: float) -> AWGProgramBuilder:
    """Programs that differ in samples, loop counts, segment count and channel count."""
    n = round(2048 / 625e6 * fs / 32) * 32
    b = AWGProgramBuilder().logical_channel("H")
    if variant == 2:
        b.logical_channel("V").define("v", logical_channel="V", freqs=[100e6], amps=[0.2])
    b.define("h", logical_channel="H", freqs=[295 * fs / 2048], amps=[0.3])
    b.segment("wait", mode="wait_trig").tones("H").use_def("h")
    if variant == 2:
        b.tones("V").use_def("v")
    b.hold(time=n / fs)
    b.segment("pulse").tones("H").ramp_amp_to(amps=amp, time=n / fs).ramp_amp_to(amps=0.3, time=n / fs)
    if variant >= 1:
        b.segment("again", mode="loop_n", loops=loops).tones("H").hold(time=n / fs)
    return b


@st.composite
def runs(draw):
    out = []
    for _ in range(draw(st.integers(2, 5))):
        variant = draw(st.integers(0, 2))
        n_ch = 2 if variant == 2 else 1
        out.append(
            {
                "fs": draw(st.sampled_from([FS, FS, 500e6])),
                "variant": variant,
                "amp": draw(st.sampled_from([0.1, 0.4, 0.5])),
                "loops": draw(st.integers(2, 4)),
                "amplitude_mv": draw(st.one_of(st.sampled_from([200, 500, 1000]), st.lists(st.sampled_from([300, 800]), min_size=n_ch, max_size=n_ch))),
                "stop_level": draw(st.sampled_from(LEVELS)),
                "trigger": draw(st.sampled_from(["software", "external"])),
                "trigger_level_mv": draw(st.sampled_from([500, 1000, 2000])),
                "gain": draw(st.sampled_from([1.0, 0.8])),
                "start_step": draw(st.sampled_from([0, 0, 1])),
                "new_runtime": draw(st.booleans()),
            }
        )
    return out


def card_state(card, n_steps: int) -> dict:
    """What the simulated card holds, read from its own state."""
    n = card.n_channels
    return {
        "sample_rate_hz": card.sample_rate_hz,
        "n_channels": n,
        "amplitude_mv": list(card.amplitude_mv[:n]),
        "stop_level": [StopLevel(x) for x in card.stop_levels[:n]],
        "or_mask": card.trigger_or_mask,
        "ext0_level_mv": card.ext0_level_mv,
        "max_segments": card.max_segments,
        "start_step": card.start_step,
        "steps": [(e.segment, e.next, e.loops, e.on_trigger, e.end) for e in (card.steps[i] for i in range(n_steps))],
    }


def asked_state(point: dict, compiled) -> dict:
    n = compiled.n_channels
    amps = point["amplitude_mv"] if isinstance(point["amplitude_mv"], list) else [point["amplitude_mv"]] * n
    slots = 1 << max(1, (len(compiled.segments) - 1).bit_length())
    return {
        "sample_rate_hz": point["fs"],
        "n_channels": n,
        "amplitude_mv": amps,
        "stop_level": [StopLevel[point["stop_level"].upper().replace("_", "")]] * n,
        "or_mask": 0x1 if point["trigger"] == "software" else 0x2,
        "ext0_level_mv": point["trigger_level_mv"],
        "max_segments": slots,
        "start_step": point["start_step"],
        "steps": [(s.segment, s.next, s.loops, s.on_trigger, s.end) for s in compiled.steps],
    }


def drive(backend, card, points: list[dict]) -> int:
    """Run every point on ``backend`` and compare the card after each; returns the fields compared."""
    rt = None
    compared = 0
    for point in points:
        if rt is None or point["new_runtime"]:
            kw = {k: point[k] for k in ("amplitude_mv", "stop_level", "trigger", "trigger_level_mv", "gain")}
            rt = Runtime(backend, **kw)
        else:
            for k in ("amplitude_mv", "stop_level", "trigger", "trigger_level_mv", "gain"):
                setattr(rt, k, point[k])  # the same runtime, asked for other settings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = rt.run(program(point["variant"], point["amp"], point["loops"], point["fs"]), sample_rate_hz=point["fs"])
            if point["start_step"]:
                compiled = rt.run(dataclasses.replace(compiled, start_step=point["start_step"]))
        want = asked_state(point, compiled)
        have = card_state(card, len(compiled.steps))
        if point["trigger"] == "software":  # the external input's level is not used: not part of what was asked
            del want["ext0_level_mv"], have["ext0_level_mv"]
        assert have == want, {k: (want[k], have[k]) for k in want if want[k] != have[k]}
        compared += len(want) + len(compiled.segments)
        for i, seg in enumerate(compiled.segments):
            assert card.slots[i].size == seg.n_samples, (i, card.slots[i].size, seg.n_samples)
            assert np.array_equal(card.segment_data(i), seg.data), f"slot {i} ({seg.name!r}) holds other samples"
        assert rt.verify() == ()
    return compared


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(runs())
def test_random_runs_on_the_simulator_leave_the_card_as_asked(points) -> None:
    with SimBackend() as be:
        assert drive(be, be.sim, points) > 0


@SETTINGS
@given(runs())
def test_random_runs_through_spcm_leave_the_emulated_card_as_asked(emu, points) -> None:
    from awgrt.backends import SpcmBackend

    with SpcmBackend("/dev/spcm0") as be:
        assert drive(be, emu.card(0), points) > 0


@pytest.mark.parametrize("field, first, second", [("amplitude_mv", 1000, 200), ("stop_level", "zero", "high"), ("trigger", "software", "external")])
def test_the_oracle_fails_when_a_setting_is_left_out_of_the_plan(field, first, second, monkeypatch) -> None:
    """Planted: the upload plan compares only the sample rate and channel count, as it once did."""
    import awgrt.runtime

    a = {"fs": FS, "variant": 0, "amp": 0.4, "loops": 2, "amplitude_mv": 500, "stop_level": "zero", "trigger": "software"}
    a |= {"trigger_level_mv": 1000, "gain": 1.0, "start_step": 0, "new_runtime": True, field: first}
    b = dict(a, new_runtime=True, amp=0.1, **{field: second})
    with SimBackend() as be:
        drive(be, be.sim, [a, b])
    real = awgrt.runtime.plan_upload
    monkeypatch.setattr(awgrt.runtime, "plan_upload", lambda *args, **kw: real(*args, **{**kw, "wanted": None}))
    with SimBackend() as be, pytest.raises(AssertionError, match=field if field != "trigger" else "or_mask"):
        drive(be, be.sim, [a, b])
