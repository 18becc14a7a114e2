"""SpcmBackend driven through the unmodified spcm package against the emulated Spectrum driver.

The emulation (the ``emu`` fixture of ``tests/conftest.py``) stays active for the whole test
process (spcm can only be imported once per process); the emulation's own route tests run in
subprocesses.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from awgrt import CARDS, AWGProgramBuilder, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt import spectrum as sp
from awgrt.backends import SimBackend, SpcmBackend
from awgrt.errors import CardError, CardLimitError, ProgramError
from awgrt.sim.card import TMASK_EXT0, TMASK_SOFTWARE

FS = 625e6


def _builder(amp: float = 0.5, loops: int = 3, end: bool = False) -> AWGProgramBuilder:
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("h", logical_channel="H", freqs=[90e6, 95e6], amps=[0.2, 0.2])
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.3])
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("h")
        .tones("V")
        .use_def("v")
        .hold(time=3.2e-6)
        .segment("pulse")
        .tones("H")
        .ramp_amp_to(amps=amp, time=2e-6, idxs=[0])
        .ramp_amp_to(amps=0.2, time=2e-6, idxs=[0])
        .segment("loop", mode="loop_n", loops=loops)
        .hold(time=1.6e-6)
        .segment("chirp")
        .tones("H")
        .move(df=1e6, time=3e-6)
    )
    return b.last_step("end" if end else "ring")


def _program(amp: float = 0.5, loops: int = 3, end: bool = False, hw=None):
    card = CARDS["M4i.6622-x8"] if hw else CARDS["M4i.6631-x8"]
    b = _builder(amp, loops, end)
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), hw or {"H": 0, "V": 1}, card)
    return compile_sequence_program(q, progress=False, clip_policy="count")  # louder variants clip a little: these tests are about uploads


def _play(card, triggers, n):
    """Triggers (samples from now) on a simulated card, then n samples and the step events."""
    t0 = card.now
    for t in triggers:
        card.external_trigger(t0 + t)
    out = card.render(n)
    return out, [(e.sample - t0, e.step, e.segment) for e in card.events_between(t0, t0 + n)]


def _sim_reference(program, triggers, n, steps_program=None, update=None):
    with SimBackend(program.card) as be:
        be.configure(sample_rate_hz=FS, n_channels=program.n_channels, trigger="external")
        be.load(program)
        if update is not None:
            be.update_segments(*update)
        if steps_program is not None:
            be.write_steps(steps_program)
        be.start()
        return _play(be.sim, triggers, n)


def test_reported_limits_come_from_the_card(emu):
    with SpcmBackend("/dev/spcm0") as be:
        spec = be.card
        assert spec.name == "M4i.6631-x8"
        assert (spec.physical_channels, spec.max_segments, spec.max_steps, spec.max_loops) == (2, 65536, 4096, 1048575)
        assert spec.memory_samples == 2 * 2**30
        assert spec.max_sample_rate_hz == 1.25e9


@pytest.mark.parametrize("variant", ["load", "segments", "steps"])
def test_same_samples_and_events_as_the_simulator(emu, variant):
    base = _program()
    triggers, n = [500, 9000, 40000], 60000
    if variant == "load":
        expected = _sim_reference(base, triggers, n)
    elif variant == "segments":
        changed = _program(amp=0.8)
        slots = [i for i, (a, b) in enumerate(zip(base.segments, changed.segments)) if not np.array_equal(a.data, b.data)]
        assert slots
        expected = _sim_reference(base, triggers, n, update=(changed, slots))
    else:
        changed = _program(loops=7)
        expected = _sim_reference(base, triggers, n, steps_program=changed)
    card = emu.card(0)
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=FS, n_channels=2, trigger="external")
        be.load(base)
        if variant == "segments":
            be.update_segments(changed, slots)
        elif variant == "steps":
            be.write_steps(changed)
        be.start()
        got = _play(card, triggers, n)
    assert got[1] == expected[1]
    assert np.array_equal(got[0][:, :2], expected[0][:, :2])


def test_four_channel_card_with_a_channel_on_hardware_3(emu):
    program = _program(hw={"H": 0, "V": 3})
    expected = _sim_reference(program, [100, 7000], 30000)
    with SpcmBackend("/dev/spcm1", card="M4i.6622-x8") as be:
        be.configure(sample_rate_hz=FS, n_channels=4, trigger="external")
        be.load(program)
        be.start()
        got = _play(emu.card(1), [100, 7000], 30000)
    assert got[1] == expected[1] and np.array_equal(got[0], expected[0])


def test_runtime_on_spcm_diffs_like_on_the_simulator(emu):
    with SpcmBackend("/dev/spcm0") as be:
        rt = Runtime(be)
        rt.run(_builder(), sample_rate_hz=FS, start=False)
        assert rt.last_report.upload_kind == "full"
        rt.run(_builder(amp=0.7), sample_rate_hz=FS, start=False)
        assert rt.last_report.upload_kind == "segments" and rt.last_report.uploaded_segments == ("pulse",)
        rt.run(_builder(amp=0.7, loops=5), sample_rate_hz=FS, start=False)
        assert rt.last_report.upload_kind == "steps"
        slots = [emu.card(0).segment_data(i) for i in range(len(rt.program.segments))]
        assert all(np.array_equal(a, s.data) for a, s in zip(slots, rt.program.segments))
        assert emu.card(0).steps[2].loops == 5


def test_live_step_rewrite_switches_as_the_prefetch_policy_says(emu):
    """The default policy reads step n+1's entry when step n starts: a rewrite of the next
    step's loop count during a step only shows the pass after."""
    card = emu.card(0)
    program = _program(loops=3)
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=FS, n_channels=2, trigger="external")
        be.load(program)
        be.start()
        t0 = card.now
        card.external_trigger(t0 + 100)
        card.external_trigger(t0 + 3000)
        _, events = _play(card, [], 0)
        wait = program.segments[0].n_samples
        latency = 249
        pulse_start = 100 + latency + 2 * wait  # the trigger at 3000 ends the wait after its 2nd pass
        card.advance(t0 + pulse_start + 10 - card.now)  # now inside "pulse": the "loop" entry is already fetched
        be.write_steps(_program(loops=6))
        _, events = _play(card, [], 100000)
        _, later = _play(card, [20000], 100000)  # one more trigger: a second time round
    loop_len = program.segments[program.steps[2].segment].n_samples
    # loop step entered right after pulse; its entry was fetched before the rewrite: 3 loops
    assert [st for _, st, _ in events] == [2, 3, 0]
    assert events[1][0] - events[0][0] == 3 * loop_len
    # the next time round the rewritten entry is fetched: 6 loops
    steps = [st for _, st, _ in later]
    assert steps == [1, 2, 3, 0]
    assert later[2][0] - later[1][0] == 6 * loop_len


def test_program_checked_against_the_card_before_anything_is_written(emu):
    program = _program(hw={"H": 0, "V": 3})  # 4 channels: not on the 2-channel card
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=FS, n_channels=2)
        before = len(emu.driver.calls)
        with pytest.raises(CardLimitError, match="4 enabled channels"):
            be.load(program)
        written = [c for c in emu.driver.calls[before:] if c[0] == "SetParam_i64" and c[1] != sp.SPC_M2CMD]
        assert written == []


def test_driver_error_during_upload_names_register_and_leaves_the_card_stopped(emu, monkeypatch):
    card = emu.card(0)
    program = _program()
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=FS, n_channels=2)
        be.load(program)
        be.start(force_trigger=True)
        card.advance(5000)
        assert be.is_running()
        real = card.set_segment_size

        def refuse(n):
            if card.write_segment == 2:
                card._fail(sp.ERR_VALUE, f"size {n} refused", sp.SPC_SEQMODE_SEGMENTSIZE)
            return real(n)

        monkeypatch.setattr(card, "set_segment_size", refuse)
        with pytest.raises(CardError) as info:
            be.load(_program(amp=0.9))
        msg = str(info.value)
        assert str(sp.SPC_SEQMODE_SEGMENTSIZE) in msg and "writing segment 2" in msg and "size" in msg
        assert not be.is_running()
        assert card.status() & sp.M2STAT_CARD_READY
        assert be.program is None


def test_sample_rate_the_card_refuses_is_a_clear_error(emu):
    with SpcmBackend("/dev/spcm0") as be:
        with pytest.raises(ProgramError, match="753"):
            be.configure(sample_rate_hz=753e6, n_channels=2)


def test_second_backend_on_the_same_card_fails_fast(emu):
    with SpcmBackend("/dev/spcm0"):
        with pytest.raises(CardError, match="already open"):
            SpcmBackend("/dev/spcm0").open()


def test_wait_ready_and_close_stops_the_output(emu):
    card = emu.card(0)
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=FS, n_channels=2)
        be.load(_program(end=True))
        be.start(force_trigger=True)
        card.advance(1000)
        be.force_trigger()  # ends the wait step; the program then plays to its END
        be.wait_ready(0.01)
        assert card.status() & sp.M2STAT_CARD_READY
        be.load(_program())
        be.start(force_trigger=True)
        with pytest.raises(CardError, match="timed out"):
            be.wait_ready(0.001)
        assert be.is_running()
    assert card.state == "ready"
    assert not np.any(card.render(1000))


def test_step_callbacks_on_the_real_card_backend_come_from_its_step_watcher(emu):
    with SpcmBackend("/dev/spcm0", step_poll_hz=2000) as be, Runtime(be) as rt:
        assert be.supports_step_events
        seen = []
        rt.on_step("pulse", lambda info: seen.append(info.segment))
        assert be._watcher is not None and be._watcher.is_alive()
    assert not be._watching.is_set()  # closing stops the watcher
    with pytest.raises(ProgramError, match="step_poll_hz"):
        SpcmBackend("/dev/spcm0", step_poll_hz=0)


def test_without_the_driver_the_backend_says_what_to_install():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["spcm"] = None  # as if the package or its driver were missing
        from awgrt.backends import SpcmBackend
        from awgrt.errors import CardError
        be = SpcmBackend("/dev/spcm0")  # making it works
        try:
            be.open()
        except CardError as exc:
            print("ERR", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR") and "pip install 'awgrt[card]'" in out and "emulated_spcm" in out


def test_open_by_serial_number_or_first_awg(emu):
    with SpcmBackend(serial_number=10001) as be:
        assert be.card.name == "M4i.6622-x8" and be.card.physical_channels == 4
    with SpcmBackend() as be:
        assert be.card.name == "M4i.6631-x8"


def test_configure_writes_channels_amplitude_stop_level_and_trigger(emu):
    card = emu.card(0)
    with SpcmBackend("/dev/spcm0") as be:
        be.configure(sample_rate_hz=500e6, n_channels=2, amplitude_mv=[400, 1200], stop_level=["holdlast", "high"], trigger="external", trigger_level_mv=800)
        assert card.sample_rate_hz == 500e6 and card.n_channels == 2
        assert card.amplitude_mv[:2] == [400, 1200]
        assert card.stop_levels[:2] == [sp.StopLevel.HOLDLAST, sp.StopLevel.HIGH]
        be.load(_program_at(500e6))
        be.start()
        assert card.trigger_enabled and card.trigger_or_mask == TMASK_EXT0  # external trigger selected: EXT0 edges count
        assert not card.triggered
        be.configure(sample_rate_hz=500e6, n_channels=2, trigger="software")
        be.start()
        card.advance(1)
        assert card.trigger_or_mask == TMASK_SOFTWARE and card.triggered  # software only: it fired on enable
        before = list(card.trigger_log)
        card.external_trigger(card.now + 10)
        card.advance(100)
        assert card.trigger_log == before  # external edges are ignored


def _program_at(fs):
    q = quantize_resolved_ir(_builder().build_resolved_ir(sample_rate_hz=fs), {"H": 0, "V": 1}, CARDS["M4i.6631-x8"])
    return compile_sequence_program(q, progress=False)


def test_a_card_held_by_another_process_fails_fast(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from awgrt.backends.spcm import _CardLock; import sys, time; lock = _CardLock('lock-test-card'); "
            "lock.acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        from awgrt.backends.spcm import _CardLock

        with pytest.raises(CardError, match=f"in use by process {holder.pid}"):
            _CardLock("lock-test-card").acquire()
    finally:
        holder.communicate("", timeout=10)
    lock = _CardLock("lock-test-card")
    lock.acquire()  # free again once the other process ended
    lock.release()


# ------------------------------------------------------------------------------ the card lock


def test_the_lock_is_keyed_by_serial_number_however_the_card_is_named(emu):
    import os

    keys = []
    for kwargs in ({"device": "/dev/spcm0"}, {}, {"serial_number": 10000}):
        with SpcmBackend(**kwargs) as be:
            keys.append((be._lock.key, be._lock.path))
            # while it is open, naming the same card any other way cannot open it again ...
            for other in ({"device": "/dev/spcm0"}, {"serial_number": 10000}):
                with pytest.raises(CardError, match="already open in this process"):
                    SpcmBackend(**other).open()
            # ... and "the first AWG" is then the other card of the emulation
            with SpcmBackend() as second:
                assert second._lock.key.startswith("serial 10001 ")
            assert be._card is not None
    assert len(set(keys)) == 1
    assert keys[0][0] == f"serial 10000 (emulated in process {os.getpid()})"


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    from awgrt.backends.spcm import _CardLock

    lock = _CardLock("symlink-test-card")
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    for planted in (lock.path, lock.owner_path):
        for p in (lock.path, lock.owner_path):
            if p.is_symlink() or p.exists():
                p.unlink()
        planted.symlink_to(target)
        try:
            try:
                lock.acquire()
            except CardError as exc:
                assert str(lock.path) in str(exc)
            else:
                lock.release()
            assert target.read_text() == "keep me"
        finally:
            planted.unlink()
    assert lock.path.is_symlink() is False


def test_every_os_error_becomes_a_card_error_naming_the_lock_file():
    from awgrt.backends.spcm import _CardLock

    lock = _CardLock("directory-test-card")
    if lock.path.exists():
        lock.path.unlink()
    lock.path.mkdir()
    try:
        with pytest.raises(CardError) as exc:
            lock.acquire()
        assert str(lock.path) in str(exc.value)
    finally:
        lock.path.rmdir()


def test_a_lock_left_by_a_killed_process_does_not_block():
    import signal

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from awgrt.backends.spcm import _CardLock; import sys; _CardLock('kill-test-card').acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    from awgrt.backends.spcm import _CardLock

    lock = _CardLock("kill-test-card")
    lock.acquire()
    lock.release()


def test_no_module_needs_fcntl():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "awgrt"
    for path in root.rglob("*.py"):
        assert not re.search(r"^\s*(import fcntl|from fcntl import)", path.read_text(), re.M), path


def test_step_entries_on_the_wall_clock_arrive_in_order_within_one_poll_cycle(tmp_path):
    """On the emulated driver with its wall clock (a fresh process: spcm binds its driver once),
    four steps of 20/20/2x10/20 ms are reported in order, each within the watcher's longest poll
    cycle of when the card entered it."""
    import json
    import subprocess
    import sys

    script = tmp_path / "wall.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, time
            from awgrt.sim import emulated_spcm

            with emulated_spcm("M4i.6631-x8", clock="wall"):
                from awgrt import AWGProgramBuilder, Runtime
                from awgrt.backends import SpcmBackend

                b = (AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[10e6], amps=[0.2])
                     .segment("a").tones("H").use_def("d").hold(time=20e-3).segment("b").hold(time=20e-3)
                     .segment("c", mode="loop_n", loops=2).hold(time=10e-3).segment("d").hold(time=20e-3).last_step("end"))
                got = []
                with SpcmBackend("/dev/spcm0", step_poll_hz=1000) as be, Runtime(be) as rt:
                    for name in "abcd":
                        rt.on_step(name, lambda info, n=name: got.append((n, info.sample, time.monotonic())))
                    rt.run(b, sample_rate_hz=50e6, force_trigger=True)
                    t0 = be._started_at
                    time.sleep(0.15)
                    bound = be.step_latency_s
            print(json.dumps({"entries": [(n, s, t - t0) for n, s, t in got], "bound": bound}))
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    entries, bound = out["entries"], out["bound"]
    assert [n for n, _, _ in entries] == ["a", "b", "c", "d"]
    fs = 50e6
    for (name, sample, delivered), entered in zip(entries, (0.0, 20e-3, 40e-3, 60e-3)):
        late = delivered - entered
        assert -1e-3 < late <= bound + 2e-3, (name, late, bound)  # the card's own trigger latency is 5 us
        assert abs(sample / fs - entered) <= bound + 2e-3, (name, sample / fs, entered)
    assert 1e-3 <= bound < 0.05
