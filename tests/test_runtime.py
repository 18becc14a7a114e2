"""The runtime and the backend protocol on the simulated card.

- ``Runtime.run`` scan point after scan point: what it compiles, what it uploads and how
  (``full`` / ``segments`` / ``steps`` / ``none``), checked against a fresh compile of each point
  (what the card must hold) and against ``simulate()`` of that compile (what the card must play);
- ``invariant=`` segments keep their samples; live updates of a playing card restart it or are
  written live and reported;
- step callbacks, synchronous and on the worker thread, against the step entries of ``simulate()``;
- ``SimBackend`` as a :class:`~awgrt.backends.Backend`: argument checks, uploads that fail, run
  control, and closing.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

import awgrt
from awgrt import AWGProgramBuilder, Runtime, StepInfo, compile_sequence_program, quantize_resolved_ir, resolve_intent_ir
from awgrt.backends import Backend, OutputConfig, SimBackend
from awgrt.card import CARDS, StepEntry
from awgrt.errors import AWGRTError, CardError, ProgramError
from awgrt.sim import StopLevel, simulate, trigger_latency_samples

FS = 625e6
LATENCY = trigger_latency_samples(FS)  # 249 samples at 625 MS/s
T_WAIT = 5000  # second trigger (ends the first wait), samples after the start command
N_RENDER = 16000  # covers one round of the program and the start of the next wait
NAMES = ("wait", "pulse", "loop", "move")
ERR_TIMEOUT = 0x0107  # spcerr.h


def program(
    *,
    pulse_amp: float = 0.4,
    pulse_time: float = 1e-6,
    loops: int = 3,
    loop_time: float = 1.2e-6,
    phases: tuple[float, float] = (0.0, 1.0),
    extra: bool = False,
    end: bool = False,
) -> AWGProgramBuilder:
    """Four distinct segments on one channel with two tones:

    wait (wait_trig hold), pulse (tone 0 ramps to ``pulse_amp`` and back to 0.2, so nothing after
    it changes with ``pulse_amp``), loop (loop_n hold), move (tone 1 chirps up and back)."""
    b = AWGProgramBuilder().logical_channel("H")
    b.define("init", logical_channel="H", freqs=[80e6, 90e6], amps=[0.2, 0.2], phases=list(phases))
    b.segment("wait", mode="wait_trig").tones("H").use_def("init").hold(time=1e-6)
    b.segment("pulse").tones("H").ramp_amp_to(amps=[pulse_amp], idxs=[0], time=pulse_time).ramp_amp_to(amps=[0.2], idxs=[0], time=pulse_time)
    b.segment("loop", mode="loop_n", loops=loops).tones("H").hold(time=loop_time)
    b.segment("move").tones("H").move(df=1e6, time=2e-6, idxs=[1]).move(df=-1e6, time=2e-6, idxs=[1])
    if extra:
        b.segment("extra").tones("H").hold(time=1e-6)
    if end:
        b.last_step("end")
    return b


def quantized(builder: AWGProgramBuilder, card=CARDS["M4i.6631-x8"]):
    return quantize_resolved_ir(builder.build_resolved_ir(sample_rate_hz=FS), None, card)


def fresh(builder: AWGProgramBuilder, gain: float = 1.0, card=CARDS["M4i.6631-x8"]):
    """The program compiled from scratch, without the runtime and its cache."""
    return compile_sequence_program(quantized(builder, card), gain=gain, progress=False)


def new_digest_names(before: AWGProgramBuilder, after: AWGProgramBuilder) -> tuple[str, ...]:
    """Segments of ``after`` whose samples are not among those of ``before`` (first of each
    distinct content), from the quantizer's digests: what a per-segment cache must synthesise."""
    old = {s.digest for s in quantized(before).segments}
    out, seen = [], set()
    for s in quantized(after).segments:
        if s.digest not in old and s.digest not in seen:
            out.append(s.name)
        seen.add(s.digest)
    return tuple(out)


def changed_slot_names(a, b) -> tuple[str, ...]:
    """Names of the slots of compiled program ``b`` whose samples differ from ``a``'s."""
    return tuple(n for sa, sb in zip(a.segments, b.segments) if not np.array_equal(sa.data, sb.data) for n in sb.names)


def assert_card_holds(be: SimBackend, expected) -> None:
    """The simulated card's memory is exactly ``expected``: slots, step table, start step."""
    slots = be.segment_slots()
    assert len(slots) == expected.max_segments
    for i, seg in enumerate(expected.segments):
        np.testing.assert_array_equal(slots[i], seg.data, err_msg=f"slot {i} ({seg.name})")
    for i in range(len(expected.segments), len(slots)):
        assert slots[i].shape[0] == 0, f"padding slot {i} holds data"
    for i, st in enumerate(expected.steps):
        assert be.sim.steps[i] == StepEntry(st.segment, st.next, st.loops, st.on_trigger, st.end), f"step {i}"
    assert be.sim.start_step == expected.start_step


def assert_plays_like_simulate(be: SimBackend, compiled, triggers=(0, T_WAIT), n: int = N_RENDER) -> np.ndarray:
    """The card, started just now, plays exactly what ``simulate()`` of ``compiled`` plays."""
    assert be.is_running() and be.start_sample == be.now, "the card should have been started by this run"
    for t in triggers:
        be.schedule_trigger(t)
    got = be.capture(n)
    want = simulate(compiled, triggers=list(triggers), n_samples=n).samples
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(got) > n // 2  # something was played
    return got


def expected_infos(compiled, triggers, n, names=None) -> list[StepInfo]:
    """Step infos from the step entries ``simulate()`` records for the same triggers."""
    pb = simulate(compiled, triggers=list(triggers), n_samples=n)
    infos = [StepInfo(e.step, compiled.steps[e.step].name, e.sample, e.sample / FS) for e in pb.events]
    return [i for i in infos if names is None or i.segment in names]


# =============================================================================== diff uploads


def test_first_run_is_a_full_upload_of_every_segment():
    be = SimBackend()
    rt = Runtime(be)
    b = program()
    compiled = rt.run(b, sample_rate_hz=FS)
    want = fresh(b)
    assert compiled.digest == want.digest
    rep = rt.last_report
    assert rep.upload_kind == "full"
    assert rep.compiled_segments == NAMES
    assert rep.uploaded_segments == NAMES
    assert rep.steps_rewritten is True
    assert rep.restarted is False
    assert be.program is compiled
    assert_card_holds(be, want)
    assert_plays_like_simulate(be, want)


# (before, after, upload kind, compiled, uploaded, step table rewritten); None: compute from digests / data
TRANSITIONS = {
    "amplitude of one segment": (dict(), dict(pulse_amp=0.55), "segments", ("pulse",), ("pulse",), False),
    "loop count": (dict(), dict(loops=5), "steps", (), (), True),
    "nothing": (dict(loops=5), dict(loops=5), "none", (), (), False),
    "segment length": (dict(), dict(pulse_time=1.5e-6), "full", None, NAMES, True),
    "added segment": (dict(), dict(extra=True), "full", ("extra",), NAMES + ("extra",), True),
    "amplitude and loop count": (dict(), dict(pulse_amp=0.3, loops=7), "segments", ("pulse",), ("pulse",), True),
}


@pytest.mark.parametrize("case", list(TRANSITIONS))
def test_second_scan_point_uploads_only_what_changed(case):
    before_kw, after_kw, kind, compiled_names, uploaded_names, steps_rewritten = TRANSITIONS[case]
    be = SimBackend()
    rt = Runtime(be)
    rt.run(program(**before_kw), sample_rate_hz=FS)
    be.stop()  # the scan point is over; the next run starts the card again
    before, after = program(**before_kw), program(**after_kw)
    compiled = rt.run(after, sample_rate_hz=FS)
    want, want_before = fresh(after), fresh(before)
    rep = rt.last_report

    assert compiled.digest == want.digest
    assert rep.upload_kind == kind
    assert rep.compiled_segments == (compiled_names if compiled_names is not None else new_digest_names(before, after))
    assert rep.compiled_segments == new_digest_names(before, after)  # the cache works per segment digest
    assert rep.uploaded_segments == uploaded_names
    if kind == "segments":
        assert rep.uploaded_segments == changed_slot_names(want_before, want)
    assert rep.steps_rewritten is steps_rewritten
    assert rep.restarted is False
    assert rep.notes == ()
    assert_card_holds(be, want)
    assert_plays_like_simulate(be, want)


def test_loop_count_changes_reuse_the_quantization_only_while_nothing_else_changes():
    # the runtime keeps its last quantization for loop-count-only changes: every point of this
    # scan must still equal a fresh compile with the same options, including points where the
    # loop segment stops or starts being looped (wrap snapping applies only to looped segments)
    # and where the quantize options or the channel mapping change between points
    be = SimBackend()
    rt = Runtime(be)
    points = [(3, {}), (7, {}), (1, {}), (2, {}), (2, {"snap": False}), (9, {"snap": False}), (9, {"max_snap_hz": 4e5}), (4, {"max_snap_hz": 4e5})]
    snapped_before = None
    for loops, options in points:
        rt.quantize_options = dict(options)
        b = program(loops=loops, loop_time=1.21e-6)
        compiled = rt.run(b, sample_rate_hz=FS)
        want = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), None, CARDS["M4i.6631-x8"], **options), progress=False)
        assert compiled.digest == want.digest, (loops, options)
        assert compiled.report.snaps == want.report.snaps and compiled.report.boundaries == want.report.boundaries, (loops, options)
        assert [s.loops for s in compiled.steps] == [s.loops for s in want.steps]
        assert_card_holds(be, want)
        snapped = any(s.segment == "loop" for s in compiled.report.snaps)
        assert snapped == (loops > 1 and options.get("snap", True)), (loops, options)
        if snapped_before is not None and snapped_before != snapped:
            assert rt.last_report.upload_kind != "steps"  # the loop segment's samples changed
        snapped_before = snapped
    rt.mapping = {"H": 1}
    compiled = rt.run(program(loops=4, loop_time=1.21e-6), sample_rate_hz=FS)
    assert compiled.hardware_channels == {"H": 1}


def test_segment_length_change_recompiles_what_follows_it():
    # a longer pulse shifts the phase of every tone entering loop and move: they are new samples
    assert set(new_digest_names(program(), program(pulse_time=1.5e-6))) >= {"pulse", "loop", "move"}
    assert "wait" not in new_digest_names(program(), program(pulse_time=1.5e-6))


def test_gain_change_resynthesises_every_segment():
    be = SimBackend()
    rt = Runtime(be)
    b = program()
    rt.run(b, sample_rate_hz=FS)
    be.stop()
    rt.gain = 0.5
    compiled = rt.run(b, sample_rate_hz=FS)
    want = fresh(b, gain=0.5)
    assert compiled.digest == want.digest
    assert compiled.digest != fresh(b).digest
    rep = rt.last_report
    assert rep.upload_kind == "segments"
    assert rep.compiled_segments == NAMES
    assert rep.uploaded_segments == NAMES
    assert rep.steps_rewritten is False
    assert_card_holds(be, want)
    assert_plays_like_simulate(be, want)


def test_scan_sequence_keeps_the_card_equal_to_a_fresh_compile():
    """A whole scan on one runtime: after every point the card holds and plays a fresh compile."""
    be = SimBackend()
    rt = Runtime(be)
    points = [
        (dict(), 1.0, "full"),
        (dict(pulse_amp=0.5), 1.0, "segments"),
        (dict(pulse_amp=0.5, loops=4), 1.0, "steps"),
        (dict(pulse_amp=0.5, loops=4), 1.0, "none"),
        (dict(pulse_amp=0.5, loops=4, pulse_time=1.5e-6), 1.0, "full"),
        (dict(pulse_amp=0.5, loops=4, pulse_time=1.5e-6), 0.8, "segments"),
        (dict(pulse_amp=0.5, loops=4, pulse_time=1.5e-6, extra=True), 0.8, "full"),
        (dict(pulse_amp=0.25, loops=4, pulse_time=1.5e-6, extra=True), 0.8, "segments"),
        (dict(), 1.0, "full"),
        (dict(), 1.0, "none"),
    ]
    for kw, gain, kind in points:
        rt.gain = gain
        b = program(**kw)
        compiled = rt.run(b, sample_rate_hz=FS)
        want = fresh(b, gain=gain)
        assert rt.last_report.upload_kind == kind, (kw, gain)
        assert compiled.digest == want.digest, (kw, gain)
        assert_card_holds(be, want)
        assert_plays_like_simulate(be, want)
        be.stop()


def test_run_with_start_false_uploads_without_starting():
    be = SimBackend()
    rt = Runtime(be)
    rt.run(program(), sample_rate_hz=FS, start=False)
    assert not be.is_running()
    assert_card_holds(be, fresh(program()))
    rt.run(program(pulse_amp=0.5), sample_rate_hz=FS)  # the next point starts it
    assert be.is_running()
    assert rt.last_report.upload_kind == "segments"
    assert_plays_like_simulate(be, fresh(program(pulse_amp=0.5)))


# =============================================================================== invariant segments


def phase_program(move_time: float) -> AWGProgramBuilder:
    """a: tone 0 chirps over ``move_time`` then holds (same padded length for 2.0 and 2.04 us,
    but a different phase at its end); b: a hold that inherits that phase."""
    b = AWGProgramBuilder().logical_channel("H")
    b.define("init", logical_channel="H", freqs=[80e6, 95e6], amps=[0.3, 0.2], phases=[0.0, 0.5])
    b.segment("a").tones("H").use_def("init").move(df=1e6, time=move_time, idxs=[0])
    b.segment("b").tones("H").hold(time=1e-6)
    return b


def test_phase_program_changes_only_the_phase_entering_b():
    qa, qb = quantized(phase_program(2.0e-6)), quantized(phase_program(2.04e-6))
    assert [s.n_samples for s in qa.segments] == [s.n_samples for s in qb.segments]
    assert qa.segments[1].digest != qb.segments[1].digest
    assert not np.array_equal(fresh(phase_program(2.0e-6)).segments[1].data, fresh(phase_program(2.04e-6)).segments[1].data)


def test_invariant_segment_keeps_its_previous_samples():
    be = SimBackend()
    rt = Runtime(be)
    first = rt.run(phase_program(2.0e-6), sample_rate_hz=FS, invariant=["b"])
    assert rt.last_report.notes == ()
    old_b = np.array(first.segments[1].data)
    be.stop()
    compiled = rt.run(phase_program(2.04e-6), sample_rate_hz=FS, invariant=["b"])
    rep = rt.last_report
    assert rep.compiled_segments == ("a",)
    assert rep.uploaded_segments == ("a",)
    assert rep.upload_kind == "segments"
    assert rep.restarted is False
    assert len(rep.notes) == 1 and "'b'" in rep.notes[0] and "invariant" in rep.notes[0], rep.notes
    assert any(n.kind == "invariant" for n in rep.compile_report.notes)
    np.testing.assert_array_equal(compiled.segments[1].data, old_b)
    np.testing.assert_array_equal(be.segment_slots()[1], old_b)
    np.testing.assert_array_equal(be.segment_slots()[0], fresh(phase_program(2.04e-6)).segments[0].data)
    # and the third point, unchanged, does nothing
    rt.run(phase_program(2.04e-6), sample_rate_hz=FS, invariant=["b"])
    assert rt.last_report.upload_kind == "none"
    np.testing.assert_array_equal(be.segment_slots()[1], old_b)


def test_without_invariant_the_segment_is_recompiled():
    be = SimBackend()
    rt = Runtime(be)
    first = rt.run(phase_program(2.0e-6), sample_rate_hz=FS)
    be.stop()
    compiled = rt.run(phase_program(2.04e-6), sample_rate_hz=FS)
    rep = rt.last_report
    want = fresh(phase_program(2.04e-6))
    assert rep.compiled_segments == ("a", "b")
    assert rep.uploaded_segments == ("a", "b")
    assert rep.notes == ()
    assert compiled.digest == want.digest
    assert not np.array_equal(compiled.segments[1].data, first.segments[1].data)
    assert_card_holds(be, want)


def test_invariant_segment_that_changes_length_is_compiled_afresh():
    be = SimBackend()
    rt = Runtime(be)
    rt.run(program(), sample_rate_hz=FS, invariant=["loop"])
    b = program(loop_time=2.4e-6)
    compiled = rt.run(b, sample_rate_hz=FS, invariant=["loop"])
    assert "loop" in rt.last_report.compiled_segments
    assert any("'loop'" in n for n in rt.last_report.notes), rt.last_report.notes
    assert compiled.digest == fresh(b).digest
    assert_card_holds(be, fresh(b))


# =============================================================================== live updates


def start_and_sit_in_wait(rt: Runtime, be: SimBackend, b: AWGProgramBuilder) -> np.ndarray:
    """Run ``b``, trigger replay and play into the wait step; return what was played so far."""
    rt.run(b, sample_rate_hz=FS)
    be.schedule_trigger(0)
    played = be.capture(LATENCY + 3000)
    assert be.is_running() and be.current_step() == 0
    return played


def test_change_of_playing_slot_restarts_the_card_by_default():
    be = SimBackend()
    rt = Runtime(be)
    seen: list[StepInfo] = []
    for name in NAMES:
        rt.on_step(name, seen.append)
    start_and_sit_in_wait(rt, be, program())
    assert [i.segment for i in seen] == ["wait"]
    seen.clear()
    after = program(phases=(0.0, 2.0))  # changes the wait segment (and what follows)
    compiled = rt.run(after, sample_rate_hz=FS)
    rep = rt.last_report
    assert rep.upload_kind == "segments"
    assert "wait" in rep.uploaded_segments
    assert rep.restarted is True
    assert any("playing" in n and "restart" in n for n in rep.notes), rep.notes
    assert be.sim.live_slot_writes == 0
    want = fresh(after)
    assert compiled.digest == want.digest
    assert_card_holds(be, want)
    assert_plays_like_simulate(be, want)  # restarted: armed afresh, plays the new program from its start
    assert seen == expected_infos(want, (0, T_WAIT), N_RENDER)  # callbacks count from the new start


def test_full_upload_while_playing_is_reported_as_a_restart():
    """A full upload stops a playing card and starts it again: the report must say so."""
    be = SimBackend()
    rt = Runtime(be)
    start_and_sit_in_wait(rt, be, program())
    after = program(pulse_time=1.5e-6)
    rt.run(after, sample_rate_hz=FS)
    rep = rt.last_report
    assert rep.upload_kind == "full"
    assert_plays_like_simulate(be, fresh(after))  # it was indeed stopped and started afresh
    assert rep.restarted is True
    assert rep.notes, "stopping a playing card is not silent"


def test_change_of_playing_slot_is_written_live_with_allow():
    be = SimBackend()
    rt = Runtime(be, live="allow")
    start_and_sit_in_wait(rt, be, program())
    entered = [e.sample for e in be.events if e.step == 0][-1]
    after = program(phases=(0.0, 2.0))
    compiled = rt.run(after, sample_rate_hz=FS)
    rep = rt.last_report
    assert rep.restarted is False
    assert be.is_running() and be.current_step() == 0
    assert be.sim.live_slot_writes >= 1
    assert any("playing" in n and "mix" in n for n in rep.notes), rep.notes
    want = fresh(after)
    assert_card_holds(be, want)
    # from now on the wait step plays the new samples, continuing where its pass had got to
    wait = want.segments[want.steps[0].segment].data
    pos = (be.samples_since_start() - entered) % wait.shape[0]
    got = be.capture(2000)
    np.testing.assert_array_equal(got, wait[(pos + np.arange(2000)) % wait.shape[0]])
    assert compiled.digest == want.digest


def test_change_of_a_slot_not_playing_is_written_live_without_restart():
    be = SimBackend()
    rt = Runtime(be)
    head = start_and_sit_in_wait(rt, be, program())
    writes = be.sim.live_slot_writes
    after = program(pulse_amp=0.6)
    rt.run(after, sample_rate_hz=FS)
    rep = rt.last_report
    assert rep.upload_kind == "segments"
    assert rep.uploaded_segments == ("pulse",)
    assert rep.restarted is False
    assert rep.notes == ()
    assert be.is_running()
    assert be.sim.live_slot_writes == writes
    # the whole output since the start is what the new program plays with the same triggers
    be.schedule_trigger(T_WAIT)
    tail = be.capture(N_RENDER - head.shape[0])
    want = simulate(fresh(after), triggers=[0, T_WAIT], n_samples=N_RENDER).samples
    np.testing.assert_array_equal(np.concatenate([head, tail]), want)
    assert not np.array_equal(want, simulate(fresh(program()), triggers=[0, T_WAIT], n_samples=N_RENDER).samples)


def test_runtime_rejects_unknown_live_policy():
    with pytest.raises(ProgramError):
        Runtime(SimBackend(), live="sometimes")


# =============================================================================== step callbacks

CB_TRIGGERS = (0, T_WAIT, 20000)
CB_SAMPLES = 34000  # two rounds and into the third wait


def test_step_callbacks_fire_in_order_with_exact_sample_times():
    be = SimBackend()
    rt = Runtime(be)
    seen: list[StepInfo] = []
    by_name: dict[str, list[StepInfo]] = {n: [] for n in NAMES}
    for name in NAMES:
        rt.on_step(name, seen.append)
        rt.on_step(name, by_name[name].append)
    compiled = rt.run(program(), sample_rate_hz=FS)
    for t in CB_TRIGGERS:
        be.schedule_trigger(t)
    want = expected_infos(compiled, CB_TRIGGERS, CB_SAMPLES)
    assert [i.segment for i in want][:9] == list(NAMES * 2) + ["wait"]
    done = 0
    while done < CB_SAMPLES:  # odd chunks: entries are reported once the clock has passed them
        step = min(997, CB_SAMPLES - done)
        be.advance(samples=step)
        done += step
        assert seen == [i for i in want if i.sample < done]
    assert seen == want
    for name in NAMES:
        assert by_name[name] == [i for i in want if i.segment == name]
    first = want[0]
    assert first.sample == LATENCY and first.time_s == LATENCY / FS and first.step == 0


def test_step_callback_for_one_segment_only():
    be = SimBackend()
    rt = Runtime(be)
    seen: list[StepInfo] = []
    rt.on_step("loop", seen.append)
    compiled = rt.run(program(loops=2), sample_rate_hz=FS)
    for t in CB_TRIGGERS:
        be.schedule_trigger(t)
    be.advance(samples=CB_SAMPLES)
    want = expected_infos(compiled, CB_TRIGGERS, CB_SAMPLES, names={"loop"})
    assert len(want) == 2
    assert seen == want


def test_asynchronous_callbacks_deliver_the_same_infos_on_the_worker_thread():
    be = SimBackend()
    rt = Runtime(be)
    seen: list[StepInfo] = []
    threads: set[str] = set()

    def record(info: StepInfo) -> None:
        threads.add(threading.current_thread().name)
        seen.append(info)

    for name in NAMES:
        rt.on_step(name, record, asynchronous=True)
    compiled = rt.run(program(), sample_rate_hz=FS)
    for t in CB_TRIGGERS:
        be.schedule_trigger(t)
    for _ in range(10):
        be.advance(samples=CB_SAMPLES // 10)
    rt.flush()
    assert seen == expected_infos(compiled, CB_TRIGGERS, CB_SAMPLES // 10 * 10)
    assert threads and threading.main_thread().name not in threads
    rt.close()


def test_async_callback_error_is_reraised_by_flush():
    be = SimBackend()
    rt = Runtime(be)

    def boom(info: StepInfo) -> None:
        raise ValueError(f"no good at {info.sample}")

    rt.on_step("pulse", boom, asynchronous=True)
    rt.run(program(), sample_rate_hz=FS)
    be.schedule_trigger(0)
    be.schedule_trigger(T_WAIT)
    be.advance(samples=N_RENDER)  # does not raise here: the callback runs on the worker
    with pytest.raises(AWGRTError) as info:
        rt.flush()
    assert isinstance(info.value.__cause__, ValueError)
    rt.flush()  # reported once
    rt.close()


def test_callbacks_stop_after_close():
    be = SimBackend()
    sync_seen: list[StepInfo] = []
    async_seen: list[StepInfo] = []
    with Runtime(be) as rt:
        rt.on_step("wait", sync_seen.append)
        rt.on_step("wait", async_seen.append, asynchronous=True)
        compiled = rt.run(program(), sample_rate_hz=FS)
        for t in CB_TRIGGERS:
            be.schedule_trigger(t)
        be.advance(samples=N_RENDER)
    assert sync_seen == async_seen == expected_infos(compiled, CB_TRIGGERS, N_RENDER, names={"wait"})
    n = len(sync_seen)
    assert n == 2
    be.advance(samples=CB_SAMPLES - N_RENDER)  # the third wait is entered, nobody listens
    assert len(sync_seen) == len(async_seen) == n
    assert not be.is_running()  # closing the runtime stops the card


def _blocking_callback(release: threading.Event, started: threading.Event):
    def stuck(info: StepInfo) -> None:
        started.set()
        release.wait(30)  # long enough to be "forever" for the test; ends so the thread does

    return stuck


def test_close_with_a_blocked_async_callback_stops_the_card_and_returns_in_bounded_time():
    import time

    release, started = threading.Event(), threading.Event()
    be = SimBackend()
    try:
        with pytest.raises(AWGRTError, match=r"still running after 0.2 s: .*stuck.* for step 0 \('wait'"):
            with be, Runtime(be, close_timeout_s=0.2) as rt:
                rt.on_step("wait", _blocking_callback(release, started), asynchronous=True)
                rt.run(program(), sample_rate_hz=FS)
                be.schedule_trigger(0)
                be.advance(samples=N_RENDER)
                assert started.wait(5)
                t0 = time.monotonic()
        assert time.monotonic() - t0 < 2.0
        assert not be.is_running()
    finally:
        release.set()


def test_a_blocked_callback_does_not_mask_an_error_leaving_the_block():
    release, started = threading.Event(), threading.Event()
    be = SimBackend()
    try:
        with pytest.raises(KeyError), pytest.warns(awgrt.errors.CallbackWarning, match="still running"):
            with Runtime(be, close_timeout_s=0.1) as rt:
                rt.on_step("wait", _blocking_callback(release, started), asynchronous=True)
                rt.run(program(), sample_rate_hz=FS)
                be.schedule_trigger(0)
                be.advance(samples=N_RENDER)
                assert started.wait(5)
                raise KeyError("the user's own error")
        assert not be.is_running()
    finally:
        release.set()


def _ring_1us():
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[100e6], amps=[0.3], phases=[0.0])
        .segment("a")
        .tones("H")
        .use_def("d")
        .hold(time=0.6144e-6)
        .segment("b")
        .hold(time=0.6144e-6)
    )


def test_async_callback_queue_is_bounded_and_counts_what_it_drops():
    release, started = threading.Event(), threading.Event()
    be = SimBackend()
    rt = Runtime(be, trigger="software", callback_queue_size=500, close_timeout_s=0.1)
    try:
        rt.on_step("a", _blocking_callback(release, started), asynchronous=True)
        rt.run(_ring_1us(), sample_rate_hz=FS, force_trigger=True)
        with pytest.warns(awgrt.errors.CallbackWarning, match="queue full"):
            be.advance(seconds=0.01)  # ~8000 entries of 'a' while the first callback blocks
        assert started.is_set()
        assert rt._queue.qsize() <= 500
        events = be.events
        entered = sum(1 for e in events if e.segment == events[0].segment)
        assert rt.dropped_callbacks == entered - 500 - 1  # one running, 500 queued, the rest dropped
    finally:
        release.set()
        rt.flush(timeout_s=10)
        rt.close()


def test_a_synchronous_callback_that_raises_is_not_delivered_again():
    be = SimBackend()
    rt = Runtime(be)
    calls: list[StepInfo] = []
    others: list[StepInfo] = []

    def fails_once(info: StepInfo) -> None:
        calls.append(info)
        if len(calls) == 1:
            raise RuntimeError("callback failed")

    rt.on_step("wait", fails_once)
    rt.on_step("wait", others.append)
    rt.run(program(), sample_rate_hz=FS)
    for t in CB_TRIGGERS:
        be.schedule_trigger(t)
    with pytest.raises(RuntimeError, match="callback failed"):
        be.advance(samples=N_RENDER)
    be.advance(samples=CB_SAMPLES - N_RENDER)
    assert len(calls) == len(set(calls)) == len(others) == 3  # every entry once, to every callback
    assert calls == others


# =============================================================================== backend protocol


def test_sim_backend_is_a_backend():
    assert isinstance(SimBackend(), Backend)
    assert isinstance(SimBackend("M4i.6622-x8"), Backend)
    assert SimBackend("M4i.6622-x8").card is CARDS["M4i.6622-x8"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_rate_hz=2e9, n_channels=1),
        dict(sample_rate_hz=10e6, n_channels=1),
        dict(sample_rate_hz=752e6, n_channels=1),  # clock gap
        dict(sample_rate_hz=FS + 3, n_channels=1),  # not a multiple of 8 Hz
        dict(sample_rate_hz=FS, n_channels=3),
        dict(sample_rate_hz=FS, n_channels=4),
        dict(sample_rate_hz=FS, n_channels=0),
        dict(sample_rate_hz=FS, n_channels=1, amplitude_mv=79),
        dict(sample_rate_hz=FS, n_channels=1, amplitude_mv=2001),
        dict(sample_rate_hz=FS, n_channels=1, amplitude_mv=2500),
        dict(sample_rate_hz=FS, n_channels=1, amplitude_mv=500.5),
        dict(sample_rate_hz=FS, n_channels=2, amplitude_mv=[1000]),
        dict(sample_rate_hz=FS, n_channels=2, amplitude_mv=[1000, 3000]),
        dict(sample_rate_hz=FS, n_channels=1, stop_level="purple"),
        dict(sample_rate_hz=FS, n_channels=2, stop_level=["zero"]),
        dict(sample_rate_hz=FS, n_channels=1, trigger="laser"),
    ],
)
def test_configure_rejects_bad_settings(kwargs):
    be = SimBackend("M4i.6631-x8")
    rate = be.sim.sample_rate_hz
    with pytest.raises(ProgramError):
        be.configure(**kwargs)
    assert be.config is None
    assert be.sim.sample_rate_hz == rate


def test_configure_applies_good_settings():
    be = SimBackend("M4i.6631-x8")
    config = be.configure(sample_rate_hz=1e9, n_channels=2, amplitude_mv=[80, 2000], stop_level=["high", StopLevel.LOW], trigger="software")
    assert config == OutputConfig(1e9, 2, (80, 2000), (StopLevel.HIGH, StopLevel.LOW), "software", 1000)
    assert be.config == config
    assert be.sim.sample_rate_hz == 1e9 and be.sim.n_channels == 2
    assert be.sim.amplitude_mv[:2] == [80, 2000]
    assert be.sim.stop_levels[:2] == [StopLevel.HIGH, StopLevel.LOW]


def loaded_and_playing(b: AWGProgramBuilder | None = None):
    be = SimBackend()
    good = fresh(b or program())
    be.configure(sample_rate_hz=FS, n_channels=1, trigger="external")
    be.load(good)
    be.start(force_trigger=True)
    be.advance(samples=LATENCY + 100)
    assert be.is_running()
    return be, good


def test_load_of_an_invalid_program_raises_before_anything_is_written():
    be, good = loaded_and_playing()
    bad = dataclasses.replace(good, steps=(dataclasses.replace(good.steps[0], segment=9),) + good.steps[1:])
    with pytest.raises(AWGRTError):
        bad.validate(be.card)  # the premise
    with pytest.raises(AWGRTError):
        be.load(bad)
    assert be.is_running()  # untouched: not even stopped
    assert be.program is good
    assert_card_holds(be, good)


def test_load_of_a_program_for_another_card_raises_before_anything_is_written():
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("h", logical_channel="H", freqs=[80e6], amps=[0.3], phases=[0.0])
    b.define("v", logical_channel="V", freqs=[90e6], amps=[0.3], phases=[0.0])
    b.segment("s").tones("H").use_def("h").tones("V").use_def("v").hold(time=1e-6)
    four = compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0, "V": 3}, CARDS["M4i.6622-x8"]), progress=False)
    assert four.n_channels == 4
    be = SimBackend("M4i.6631-x8")
    with pytest.raises(AWGRTError):
        be.load(four)
    assert be.program is None and be.config is None
    assert be.sim.max_segments == 0 and be.sim.steps == {}


def test_update_segments_checks_lengths_and_indices():
    be, good = loaded_and_playing()
    longer = fresh(program(pulse_time=1.5e-6))
    assert len(longer.segments) == len(good.segments)
    assert longer.segments[1].n_samples != good.segments[1].n_samples
    with pytest.raises(ProgramError):
        be.update_segments(longer, [1])
    for index in (len(good.segments), 99, -1):
        with pytest.raises(ProgramError):
            be.update_segments(good, [index])
    assert be.program is good
    assert_card_holds(be, good)


def test_update_segments_and_write_steps_reject_a_program_of_another_layout():
    """A program whose slot lengths differ from the loaded one's needs a full upload, whichever
    slots are named: otherwise the backend would record a program the card does not hold."""
    be, good = loaded_and_playing()
    longer = fresh(program(pulse_time=1.5e-6))
    with pytest.raises(ProgramError):
        be.update_segments(longer, [0])  # slot 0 keeps its length, slot 1 does not
    with pytest.raises(ProgramError):
        be.write_steps(longer)
    assert be.program is good


def test_write_steps_and_start_before_load_raise():
    be = SimBackend()
    good = fresh(program())
    with pytest.raises(ProgramError):
        be.write_steps(good)
    with pytest.raises(ProgramError):
        be.start()
    assert not be.is_running()
    with pytest.raises(ProgramError):
        be.update_segments(good, [0])


def failing_writes(monkeypatch, be: SimBackend, after: int, exc: Exception) -> list[int]:
    """Make the card's DMA fail on the write after ``after`` successful ones."""
    real = be.sim.write_segment_data
    calls: list[int] = []

    def write(data, offset=0):
        calls.append(be.sim.write_segment)
        if len(calls) > after:
            raise exc
        return real(data, offset)

    monkeypatch.setattr(be.sim, "write_segment_data", write)
    return calls


@pytest.mark.parametrize("exc", [CardError("DMA failed", code=0x0101), RuntimeError("driver gone")])
def test_failed_full_upload_leaves_the_card_stopped(monkeypatch, exc):
    be, good = loaded_and_playing()
    other = fresh(program(pulse_time=1.5e-6))
    calls = failing_writes(monkeypatch, be, 2, exc)
    with pytest.raises(AWGRTError):
        be.load(other)
    assert len(calls) == 3  # it failed part-way
    assert not be.is_running()
    assert be.program is None
    with pytest.raises(ProgramError):
        be.start()  # nothing is loaded: it cannot be started half-programmed


def test_failed_runtime_upload_leaves_the_card_stopped_and_recovers(monkeypatch):
    be = SimBackend()
    rt = Runtime(be)
    start_and_sit_in_wait(rt, be, program())
    calls = failing_writes(monkeypatch, be, 0, CardError("DMA failed", code=0x0101))
    with pytest.raises(AWGRTError):
        rt.run(program(pulse_amp=0.6), sample_rate_hz=FS)
    assert calls
    assert not be.is_running()
    assert be.program is None
    monkeypatch.undo()
    compiled = rt.run(program(pulse_amp=0.6), sample_rate_hz=FS)
    assert rt.last_report.upload_kind == "full"
    assert_card_holds(be, fresh(program(pulse_amp=0.6)))
    assert_plays_like_simulate(be, compiled)


def test_wait_ready_returns_when_an_ending_program_has_played():
    be = SimBackend()
    prog = fresh(program(end=True))
    be.configure(sample_rate_hz=FS, n_channels=1, trigger="external")
    be.load(prog)
    be.start(force_trigger=True)
    be.schedule_trigger(T_WAIT)
    be.wait_ready(timeout_s=1e-3)
    assert be.sim.state == "ready" and not be.is_running()
    assert be.sim.status() & 0x4  # M2STAT_CARD_READY
    ready = simulate(prog, triggers=[T_WAIT], n_samples=N_RENDER, force_trigger=True).ready_sample
    assert ready is not None and ready <= be.samples_since_start()
    assert [e.step for e in be.events] == [0, 1, 2, 3]


def test_wait_ready_times_out_on_a_ringing_program():
    be = SimBackend()
    prog = fresh(program())
    be.configure(sample_rate_hz=FS, n_channels=1, trigger="external")
    be.load(prog)
    be.start(force_trigger=True)
    be.schedule_trigger(T_WAIT)
    before = be.now
    with pytest.raises(CardError) as info:
        be.wait_ready(timeout_s=2e-4)
    assert info.value.code == ERR_TIMEOUT
    assert be.now - before == round(2e-4 * FS)  # card time, not wall time
    assert be.is_running()


@pytest.mark.parametrize("level, value", [("zero", 0), ("high", 32767), ("low", -32768)])
def test_closing_the_backend_stops_the_output(level, value):
    with SimBackend() as be:
        prog = fresh(program())
        be.configure(sample_rate_hz=FS, n_channels=1, stop_level=level, trigger="external")
        be.load(prog)
        be.start(force_trigger=True)
        playing = be.capture(LATENCY + 2000)[LATENCY:]
        assert be.is_running()
        assert np.count_nonzero(playing != value) > 1000
    assert not be.is_running()
    assert be.sim.state == "ready"
    np.testing.assert_array_equal(be.capture(5000), np.full((5000, 1), value, dtype=np.int16))


def test_close_stops_the_output_even_without_open():
    """Closing always stops the output, also for a backend used without ``with``."""
    be, good = loaded_and_playing()
    be.close()
    assert not be.is_running()
    np.testing.assert_array_equal(be.capture(1000), np.zeros((1000, 1), dtype=np.int16))


# =============================================================================== what run() accepts


def test_run_accepts_builder_intent_and_resolved():
    b = program()
    want = fresh(b).digest
    for prog, kw in [
        (b, dict(sample_rate_hz=FS)),
        (b.build_intent_ir(), dict(sample_rate_hz=FS)),
        (b.build_resolved_ir(sample_rate_hz=FS), {}),
        (resolve_intent_ir(b.build_intent_ir(), FS), {}),
    ]:
        be = SimBackend()
        compiled = Runtime(be).run(prog, **kw)
        assert compiled.digest == want, type(prog).__name__
        assert be.config.sample_rate_hz == FS


def test_run_of_resolved_ir_uses_its_own_sample_rate():
    be = SimBackend()
    resolved = program().build_resolved_ir(sample_rate_hz=500e6)
    compiled = Runtime(be).run(resolved)
    assert compiled.sample_rate_hz == 500e6 and be.config.sample_rate_hz == 500e6
    assert compiled.digest == compile_sequence_program(quantize_resolved_ir(resolved, None, be.card), progress=False).digest


@pytest.mark.parametrize("make", [lambda: program(), lambda: program().build_intent_ir()])
def test_run_without_sample_rate_raises(make):
    be = SimBackend()
    rt = Runtime(be)
    with pytest.raises(ProgramError):
        rt.run(make())
    assert be.config is None and be.program is None and rt.last_report is None


def test_run_rejects_other_types():
    quantized = quantize_resolved_ir(resolve_intent_ir(program().build_intent_ir(), FS))
    for other in (quantized, "program.json", {"schema": "awgrt.intent"}):
        with pytest.raises(ProgramError, match="cannot run"):
            Runtime(SimBackend()).run(other, sample_rate_hz=FS)


def test_run_report_timings():
    be = SimBackend()
    rt = Runtime(be)
    rt.run(program(), sample_rate_hz=FS)
    for _ in range(2):
        timings = rt.last_report.timings_s
        assert set(timings) == {"resolve", "quantize", "compile", "upload", "start"}
        assert all(isinstance(v, float) and v >= 0.0 for v in timings.values())
        rt.run(program(pulse_amp=0.5), sample_rate_hz=FS)
    assert "upload" in str(rt.last_report)
    assert isinstance(rt.last_report, awgrt.RunReport)


def wait_and_pulse(amp: float = 0.5) -> AWGProgramBuilder:
    """One tone waiting for a trigger, then a pulse to ``amp`` and back (also used by the saved-program tests)."""
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("h", logical_channel="H", freqs=[295 * FS / 2048], amps=[0.3])  # whole cycles per pass of the wait
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("h")
        .hold(time=2048 / FS)
        .segment("pulse")
        .tones("H")
        .ramp_amp_to(amps=amp, time=2048 / FS)
        .ramp_amp_to(amps=0.3, time=2048 / FS)  # whole cycles here too: the ring back to the wait is continuous
    )


def test_each_scan_point_can_trigger_relative_to_now():
    prog = wait_and_pulse
    with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt:
        entries = []
        rt.on_step("pulse", lambda info: entries.append(info.sample))
        rt.run(prog(0.5), sample_rate_hz=FS)
        card.schedule_trigger(1000)  # starts replay: into the wait
        card.schedule_trigger(5000)  # leaves the wait: the pulse
        card.capture(20_000)
        with pytest.raises(ProgramError, match="in the past.*after="):
            card.schedule_trigger(1000)  # the next scan point: 1000 samples after the start is long gone
        rt.run(prog(0.6), sample_rate_hz=FS)  # the next scan point: the card keeps running, back in the wait
        assert "uploaded ['pulse']" in str(rt.last_report)
        assert card.schedule_trigger(after=1000) == 20_000 + 1000  # one trigger leaves the wait
        card.capture(20_000)
        assert card.schedule_trigger(after_s=6.4e-6) == 40_000 + 4000
        with pytest.raises(ProgramError, match="exactly one"):
            card.schedule_trigger(5, after=5)
    assert len(entries) == 2 and entries[1] - entries[0] > 15_000, entries  # the second point pulsed after its own triggers


def test_a_runtime_locks_the_card_to_the_lab_reference_and_verify_compares_the_clock():
    from awgrt.backends import ClockConfig
    from awgrt.errors import VerificationError

    locked = ClockConfig("external_reference", 10e6, True)
    be = SimBackend()
    rt = Runtime(be, trigger="software", clock=locked)
    rt.run(program(), sample_rate_hz=FS)
    assert be.config.clock == locked and be.sim.clock == locked and rt.verify() == ()
    be.sim.clock = ClockConfig()  # the card back on its own quartz behind the runtime's back
    with pytest.raises(VerificationError, match="clock source.*external_reference.*internal") as err:
        rt.verify()
    assert {m.field for m in err.value.value} == {"clock source", "reference clock (Hz)", "clock output"}
    # a runtime asking for another clock re-configures the card (a new set-up, said so)
    rt2 = Runtime(be, trigger="software")
    rt2.run(program(), sample_rate_hz=FS)
    assert be.sim.clock == ClockConfig() and rt2.verify() == ()
    with pytest.raises(ProgramError, match="reference_hz"):
        Runtime(be, clock=ClockConfig("external_reference", 1e3))


def test_notebooks_show_reports_and_programs_as_text_not_field_dumps():
    class Printer:  # what IPython hands _repr_pretty_
        def __init__(self):
            self.out = []

        def text(self, s):
            self.out.append(s)

    be = SimBackend()
    rt = Runtime(be, trigger="software")
    compiled = rt.run(program(), sample_rate_hz=FS)
    for obj, starts in ((compiled, "CompiledSequenceProgram: "), (compiled.report, "awgrt compile report: "), (rt.last_report, "upload: ")):
        p = Printer()
        obj._repr_pretty_(p, False)
        assert "".join(p.out).startswith(starts), type(obj)
        assert "array(" not in "".join(p.out)
    p = Printer()
    compiled._repr_pretty_(p, False)
    assert f"{len(compiled.segments)} segments, {len(compiled.steps)} steps" in p.out[0] and str(compiled.report) in p.out[0]
