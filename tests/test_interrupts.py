"""A real Ctrl-C (SIGINT) in the middle of an upload, on both backends, in a subprocess.

The card must end up stopped, the backend must forget what it thought was loaded, the
KeyboardInterrupt must reach the caller, and the next ``run`` must upload what is needed so that
card memory equals ``rt.program``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # a rig, a subprocess or many records: left out of the quick subset (-m 'not slow')

SCRIPT = textwrap.dedent(
    r'''
    import os, signal, sys, threading
    import numpy as np
    from awgrt import AWGProgramBuilder, Runtime
    from awgrt.backends import SimBackend, SpcmBackend

    backend_kind, scenario = sys.argv[1], sys.argv[2]
    FS = 625e6

    def program(amp, n_segments=12, hold_us=2.0):
        b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6], amps=[0.05])
        for i in range(n_segments):
            b.segment(f"s{i}")
            if i == 0:
                b.tones("H").use_def("d")
            b.tones("H").ramp_amp_to(amps=amp * (i + 1) / n_segments, time=hold_us * 1e-6)
        return b

    if backend_kind == "spcm":
        from awgrt.sim import emulated_spcm
        emulation_cm = emulated_spcm(cards=["M4i.6631-x8"])
        emulation = emulation_cm.__enter__()
        be = SpcmBackend("/dev/spcm0")
        card = lambda: emulation.card(0)
        be.__enter__()
        target = be._write_slot
        def hook(*a, **k):
            hook.calls += 1
            target(*a, **k)
            if hook.armed and hook.calls == 5:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread: handled before the next slot, however busy the machine
        be._write_slot = hook
    else:
        be = SimBackend("M4i.6631-x8")
        be.__enter__()
        card = lambda: be.sim
        target = be.sim.write_segment_data
        def hook(*a, **k):
            hook.calls += 1
            target(*a, **k)
            if hook.armed and hook.calls == 5:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread: handled before the next slot, however busy the machine
        be.sim.write_segment_data = hook
    hook.calls, hook.armed = 0, False

    rt = Runtime(be, trigger="software")
    rt.run(program(0.5), sample_rate_hz=FS, force_trigger=True)
    assert be.is_running()

    second = program(0.8) if scenario == "update" else program(0.8, n_segments=13, hold_us=2.5)
    hook.calls, hook.armed = 0, True
    try:
        rt.run(second, sample_rate_hz=FS, force_trigger=True)
    except KeyboardInterrupt:
        print("interrupted after", hook.calls, "slots")
    else:
        raise SystemExit("the interrupt did not reach the caller")
    hook.armed = False
    assert not be.is_running(), "card still running after an interrupted upload"
    assert be.program is None, "backend still believes a program is loaded"

    rt.run(second, sample_rate_hz=FS, force_trigger=True)
    print("after retry:", rt.last_report.upload_kind)
    assert rt.last_report.upload_kind == "full", rt.last_report.upload_kind
    assert be.is_running()
    sim = card()
    for i, seg in enumerate(rt.program.segments):
        got = np.asarray(sim.segment_data(i))[:, : rt.program.n_channels]
        assert np.array_equal(got, seg.data), f"slot {i} differs from rt.program"
    print("OK")
    '''
)


@pytest.mark.parametrize("scenario", ["update", "full"])
@pytest.mark.parametrize("backend", ["sim", "spcm"])
def test_sigint_during_upload_leaves_the_card_stopped_and_the_next_run_uploads(tmp_path, backend, scenario):
    script = tmp_path / "interrupt.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), backend, scenario], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr
    assert "interrupted after 5 slots" in proc.stdout
