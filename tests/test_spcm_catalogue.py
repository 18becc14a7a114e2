"""A catalogue of spcm scripts, one per replay mode and per clock, trigger and I/O feature, written
the way a lab writes them (spcm's public classes: ``Card``, ``Clock``, ``Trigger``, ``Channels``,
``DataTransfer``, ``Multi``, ``Sequence``, ``MultiPurposeIOs``; no awgrt inside the card code),
run on the emulated driver for several models of the M4i/M4x.66xx family. Where a mode plays, the
card's output is checked sample by sample against what the script wrote, walked here from the
mode's rules (trigger latency from the hardware contract); set-up registers must read back as
written, and what the card lacks must be refused with the driver's code.

spcm binds its driver library once per process: each script runs in a fresh ``python``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from awgrt.spectrum import ERR_VALUE, ERROR_TEXTS

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("spcm_core") is None, reason="the spcm package is not installed (pip install 'awgrt[card]')"),
    pytest.mark.slow,  # a python subprocess per test: left out of the quick subset (-m 'not slow')
]

MODELS = ["M4i.6631-x8", "M4i.6622-x8", "M4x.6621-x4"]
FS = 50e6
N_MEM = 2048

PRELUDE = """
import json, sys
import numpy as np
from awgrt.sim import emulated_spcm
OUT = sys.argv[1]
results = {}
with emulated_spcm(card=MODEL) as emu:
    import spcm
    from spcm import units
    sim = emu.card(0)
    with spcm.Card("/dev/spcm0") as card:
"""

SETUP_CHANNEL0 = """
        channels = spcm.Channels(card, card_enable=spcm.CHANNEL0)
        channels.enable(True)
        channels.amp(500 * units.mV)
        channels.stop_level(spcm.SPCM_STOPLVL_ZERO)
        spcm.Clock(card).sample_rate(50 * units.MHz)
        data = np.random.default_rng(11).integers(-30000, 30000, size=(1, 2048), dtype=np.int16)
"""

TRANSFER = """
        transfer = spcm.DataTransfer(card)
        transfer.memory_size(2048)
        transfer.allocate_buffer(2048)
        transfer.loops(LOOPS)
        transfer.buffer[:] = data
        transfer.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
"""

EPILOGUE = """
np.savez(OUT, data=data, **{k: v for k, v in results.items() if isinstance(v, np.ndarray)})
print("RESULTS", json.dumps({k: v for k, v in results.items() if not isinstance(v, np.ndarray)}))
"""

# three gates on Ext0 (the second long enough to reach the memory's end), rendered
GATED = """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        t0 = sim.now
        GATES = [(100, 900), (1500, 3100), (3600, 4400)]
        for a, b in GATES:
            sim.external_gate(t0 + a, t0 + b)
        results["out"] = sim.render(5200)
        results["gates"] = GATES
        results["ready"] = bool(card.status() & spcm.M2STAT_CARD_READY)
"""

SCRIPTS = {
    # standard single: the memory twice after one software trigger, then the stop level
    "single": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_SINGLE)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_SOFTWARE)
        LOOPS = 2
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        results["out"] = sim.render(6000)
""",
    # continuous: the memory over and over until stopped
    "continuous": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_CONTINUOUS)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_SOFTWARE)
        LOOPS = 0
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        results["out"] = sim.render(9000)
        card.stop()
""",
    # single restart: the memory once per trigger, re-arming in between; LOOPS 2 triggers
    "singlerestart": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_SINGLERESTART)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
        LOOPS = 2
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        windows = []
        for _ in range(2):
            card.cmd(spcm.M2CMD_CARD_FORCETRIGGER)
            windows.append(sim.render(3000))
        windows.append(sim.render(3000))  # after LOOPS plays the card is ready at its stop level
        results["out"] = np.concatenate(windows)
        results["ready"] = bool(card.status() & spcm.M2STAT_CARD_READY)
""",
    # multi: one segment of 512 per trigger
    "multi": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_MULTI)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
        multi = spcm.Multi(card)
        multi.memory_size(2048)
        multi.allocate_buffer(512, num_segments=4)
        multi.loops(1)
        multi.buffer.reshape(-1)[:] = data.reshape(-1)
        multi.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        windows = []
        for _ in range(4):
            card.cmd(spcm.M2CMD_CARD_FORCETRIGGER)
            windows.append(sim.render(1500))
        results["out"] = np.concatenate(windows)
""",
    # sequence: segment 1 (the second half) three times, then segment 0 (the first half) once, ending
    "sequence": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_SEQUENCE)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_SOFTWARE)
        sequence = spcm.Sequence(card)
        sequence.max_segments(2)
        first, second = sequence.add_segment(1024), sequence.add_segment(1024)
        first[:, :] = data[:, :1024]
        second[:, :] = data[:, 1024:]
        a = sequence.add_step(second, loops=3)
        b = sequence.add_step(first, loops=1)
        sequence.entry_step(a)
        a.set_transition(b)
        b.final_step()
        sequence.write_setup()
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        results["out"] = sim.render(6000)
""",
    # clock: PLL locked to a 10 MHz reference, the clock output on and off, oversampling readback;
    # a clock source the card lacks is refused with ERR_VALUE; the replay plays as programmed
    "clock": SETUP_CHANNEL0
    + """
        clock = spcm.Clock(card)
        clock.mode(spcm.SPC_CM_EXTREFCLOCK)
        clock.reference_clock(10 * units.MHz)
        clock.sample_rate(50 * units.MHz)
        clock.clock_output(True)
        results["clock"] = [clock.mode(), clock.reference_clock(), clock.clock_output(), clock.oversampling_factor(), card.get_i(spcm.SPC_AVAILCLOCKMODES)]
        clock.clock_output(False)
        results["clock_out_off"] = clock.clock_output()
        results["clock_out_hz"] = card.get_i(spcm.SPC_CLOCKOUTFREQUENCY)
        try:
            clock.mode(spcm.SPC_CM_EXTERNAL)
            results["external"] = "accepted"
        except spcm.SpcmException as e:
            results["external"] = [e.error.register, e.error.text]
        card.card_mode(spcm.SPC_REP_STD_SINGLE)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_SOFTWARE)
        LOOPS = 1
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        results["out"] = sim.render(3000)
""",
    # trigger: Ext0 rising edge at 1 V, DC, 50 Ohm, no delay; Ext1 set up but not in the masks;
    # the card plays on the external edge the test bench (the simulated card) gives
    "trigger": SETUP_CHANNEL0
    + """
        trigger = spcm.Trigger(card)
        trigger.or_mask(spcm.SPC_TMASK_EXT0)
        trigger.and_mask(spcm.SPC_TMASK_NONE)
        trigger.ext0_mode(spcm.SPC_TM_POS)
        trigger.ext0_level0(1 * units.V)
        trigger.ext0_coupling(spcm.COUPLING_DC)
        trigger.termination(1)
        trigger.delay(0)
        trigger.ext1_mode(spcm.SPC_TM_NEG)
        trigger.ext1_level0(-500 * units.mV)
        results["trigger"] = [trigger.or_mask(), trigger.ext0_mode(), card.get_i(spcm.SPC_TRIG_EXT0_LEVEL0), trigger.termination(),
                              trigger.ext1_mode(), card.get_i(spcm.SPC_TRIG_EXT1_LEVEL0), trigger.avail_delay_step()]
        try:
            trigger.ext1_mode(spcm.SPC_TM_WINENTER)
            results["ext1_window"] = "accepted"
        except spcm.SpcmException as e:
            results["ext1_window"] = [e.error.register, e.error.text]
        card.card_mode(spcm.SPC_REP_STD_SINGLE)
        LOOPS = 1
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        sim.external_trigger(sim.now + 500)
        results["out"] = sim.render(3500)
""",
    # multi-purpose lines: each set to a mode it offers and read back; one it lacks refused
    "xio": SETUP_CHANNEL0
    + """
        ios = spcm.MultiPurposeIOs(card)
        modes = [spcm.SPCM_XMODE_TRIGOUT, spcm.SPCM_XMODE_RUNSTATE, spcm.SPCM_XMODE_ASYNCOUT]
        for line, mode in zip(ios, modes):
            line.x_mode(mode)
        results["xio"] = [len(ios)] + [line.x_mode() for line in ios]
        try:
            ios[0].x_mode(spcm.SPCM_XMODE_DIGOUT)  # no channel and bit named
            results["digout"] = "accepted"
        except spcm.SpcmException as e:
            results["digout"] = [e.error.register, e.error.text]
        try:
            ios[1].x_mode(spcm.SPCM_XMODE_PULSEGEN)  # a firmware option this card lacks
            results["pulsegen"] = "accepted"
        except spcm.SpcmException as e:
            results["pulsegen"] = [e.error.register, e.error.text]
""",
    # standard gated replay, LOOPS 0: the memory plays while the gate on Ext0 is open, pauses at the
    # stop level in between, goes on where it paused and wraps round the memory's end with no gap
    "gate": SETUP_CHANNEL0
    + """
        card.card_mode(spcm.SPC_REP_STD_GATE)
        trigger = spcm.Trigger(card)
        trigger.or_mask(spcm.SPC_TMASK_EXT0)
        trigger.ext0_mode(spcm.SPC_TM_POS)
        trigger.ext0_level0(1.5 * units.V)
        LOOPS = 0
"""
    + TRANSFER
    + GATED
    + """
        card.stop()
""",
    # gated replay, LOOPS 1: the memory once; the gate that reaches its end is cut off there and
    # the card is ready; the last sample is held in the pauses (HOLDLAST)
    "gate_once": SETUP_CHANNEL0
    + """
        channels.stop_level(spcm.SPCM_STOPLVL_HOLDLAST)
        card.card_mode(spcm.SPC_REP_STD_GATE)
        trigger = spcm.Trigger(card)
        trigger.or_mask(spcm.SPC_TMASK_EXT0)
        trigger.ext0_mode(spcm.SPC_TM_HIGH)
        LOOPS = 1
"""
    + TRANSFER
    + """
        try:
            card.loops(2)
            results["loops2"] = "accepted"
        except spcm.SpcmException as e:
            results["loops2"] = [e.error.register, e.error.text]
        card.loops(1)
"""
    + GATED,
    # synchronous digital output: X0 plays bit 15 of channel 0 (a marker), the channel the 15 bits below
    "markers": SETUP_CHANNEL0
    + """
        ios = spcm.MultiPurposeIOs(card)
        ios[0].x_mode(spcm.SPCM_XMODE_DIGOUT | spcm.SPCM_XMODE_DIGOUTSRC_CH0 | spcm.SPCM_XMODE_DIGOUTSRC_BIT15)
        results["x0"] = ios[0].x_mode()
        card.card_mode(spcm.SPC_REP_STD_SINGLE)
        spcm.Trigger(card).or_mask(spcm.SPC_TMASK_SOFTWARE)
        LOOPS = 1
        marker = np.zeros(2048, bool)
        marker[100:600] = True
        analog15 = (data[0] // 2).astype(np.int16)
        data = ((analog15.view(np.uint16) & 0x7FFF) | (marker.astype(np.uint16) << 15)).view(np.int16)[None, :]
"""
    + TRANSFER
    + """
        card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
        lines = np.zeros((3000, 3), np.uint8)
        results["out"] = sim.render(3000, lines=lines)
        results["lines"] = lines
        results["marker"] = marker
        results["analog15"] = analog15
""",
}


def run_script(name: str, model: str, tmp_path: Path) -> tuple[dict, dict]:
    body = SCRIPTS[name]
    assert "awgrt" not in body  # the card code is spcm's alone
    code = f"MODEL = {model!r}\n" + textwrap.dedent(PRELUDE) + textwrap.indent(textwrap.dedent(body), " " * 8) + textwrap.dedent(EPILOGUE)
    out = tmp_path / "out.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWGRT_") and k != "PYTHONPATH"}
    env["AWGRT_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULTS "))
    arrays = np.load(out)
    return json.loads(line[len("RESULTS ") :]), {k: arrays[k] for k in arrays.files}


def refused(result: list, register: int) -> bool:
    """A refusal of ``register`` with the driver's invalid-value error."""
    return result[0] == register and result[1].startswith(ERROR_TEXTS[ERR_VALUE])


def latency() -> int:
    return math.ceil(238.5 + 16e-9 * FS)  # 238.5 clocks + 16 ns, first sample at or after it


def plays(n: int, starts: list[int], pieces: list[np.ndarray]) -> np.ndarray:
    """Channel 0 of an output that is zero (the stop level) except ``pieces`` from ``starts``."""
    want = np.zeros(n, np.int16)
    for a, p in zip(starts, pieces):
        m = min(len(p), n - a)
        want[a : a + m] = p[:m]
    return want


def gated(n: int, gates: list, mem: np.ndarray, *, once: bool, hold: bool) -> np.ndarray:
    """Channel 0 of standard gated replay, walked sample by sample from the manual's rules: each
    gate's samples come ``latency`` after it opens until ``latency`` after it closes, the memory
    going on where the last gate left it (round its end with LOOPS 0; LOOPS 1: played once, the
    rest cut off); in between the stop level, zero or the last sample played (``hold``)."""
    want = np.zeros(n, np.int16)
    lat, played, last = latency(), 0, 0
    open_at = set()
    for a, b in gates:
        open_at.update(range(a + lat, b + lat))
    for t in range(n):
        if t in open_at and not (once and played >= len(mem)):
            last = want[t] = mem[played % len(mem)]
            played += 1
        else:
            want[t] = last if hold else 0
    return want


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["single", "continuous", "singlerestart", "multi", "gate", "gate_once", "sequence", "clock", "trigger", "xio", "markers"])
def test_the_catalogue_runs_on_every_model(name: str, model: str, tmp_path: Path) -> None:
    results, arrays = run_script(name, model, tmp_path)
    mem = arrays["data"][0]
    lat = latency()
    if name == "single":
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(6000, [lat, lat + N_MEM], [mem, mem]))
    elif name == "continuous":
        starts = list(range(lat, 9000, N_MEM))
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(9000, starts, [mem] * len(starts)))
    elif name == "singlerestart":
        window = plays(3000, [lat], [mem])
        np.testing.assert_array_equal(arrays["out"][:, 0], np.concatenate([window, window, np.zeros(3000, np.int16)]))
        assert results["ready"] is True
    elif name == "multi":
        windows = [plays(1500, [lat], [mem[512 * i : 512 * (i + 1)]]) for i in range(4)]
        np.testing.assert_array_equal(arrays["out"][:, 0], np.concatenate(windows))
    elif name in ("gate", "gate_once"):
        np.testing.assert_array_equal(arrays["out"][:, 0], gated(5200, results["gates"], mem, once=name == "gate_once", hold=name == "gate_once"))
        assert results["ready"] is (name == "gate_once")
        if name == "gate_once":
            assert refused(results["loops2"], 10020)  # SPC_LOOPS: gated replay takes 0 or 1
    elif name == "sequence":
        second, first = mem[1024:], mem[:1024]
        starts = [lat, lat + 1024, lat + 2048, lat + 3072]
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(6000, starts, [second, second, second, first]))
    elif name == "clock":
        assert results["clock"] == [0x20, 10_000_000, 1, 1, 0x21]
        assert results["clock_out_off"] == 0 and results["clock_out_hz"] > 0
        assert refused(results["external"], 20200)  # SPC_CLOCKMODE: no external sample clock on a 66xx
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(3000, [lat], [mem]))
    elif name == "trigger":
        assert results["trigger"] == [0x2, 0x1, 1000, 1, 0x2, -500, 16]  # delay step 16 on a 16-bit card (manual, table 85)
        assert refused(results["ext1_window"], 40511)  # Ext1 has one level: no window modes
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(3500, [500 + lat], [mem]))
    elif name == "markers":
        assert results["x0"] == 0x8 | 0x01000000 | 0x00100000
        lat = latency()
        np.testing.assert_array_equal(arrays["out"][:, 0], plays(3000, [lat], [arrays["analog15"] * 2]))  # the 15 bits, full range
        want = np.zeros(3000, np.uint8)
        want[lat : lat + 2048] = arrays["marker"]
        np.testing.assert_array_equal(arrays["lines"][:, 0], want)
        assert not arrays["lines"][:, 1:].any()
    elif name == "xio":
        assert results["xio"] == [3, 0x20, 0x100, 0x2]
        assert refused(results["digout"], 600200) and refused(results["pulsegen"], 600201)


# ---------------------------------------------------------------------- the register table, directly


def test_set_up_registers_read_back_as_written_and_refuse_what_the_card_does_not_take() -> None:
    from awgrt.sim import driver as d

    drv = d.EmulatedDriver({"/dev/spcm0": "M4i.6631-x8", "/dev/spcm1": "M4i.6630-x8"})
    h, h1 = drv.open("/dev/spcm0"), drv.open("/dev/spcm1")
    taken = {
        d.SPC_CLOCKMODE: d.SPC_CM_EXTREFCLOCK,
        d.SPC_REFERENCECLOCK: 10_000_000,
        d.SPC_CLOCKOUT: 1,
        d.SPC_CLOCK50OHM: 1,
        d.SPC_TRIG_EXT0_MODE: d.SPC_TM["winenter"] | d.SPC_TM_REARM,
        d.SPC_TRIG_EXT1_MODE: d.SPC_TM["low"],
        d.SPC_TRIG_EXT0_LEVEL0: -2500,
        d.SPC_TRIG_EXT0_LEVEL1: 2500,
        d.SPC_TRIG_EXT1_LEVEL0: 800,
        d.SPC_TRIG_DELAY: 48,  # 16..8 Gi - 16 in steps of 16 (the manual's table 85)
        d.SPC_TRIG_TERM: 1,
        d.SPC_TRIG_EXT1_ACDC: 1,
        d.SPC_DIFF0: 1,
        d.SPC_DOUBLEOUT0: 1,
        d.SPC_OFFS0 + 100: -200,
        d.SPC_FILTER0: 1,
    }
    for reg, value in taken.items():
        assert drv.set_i64(h, reg, value) == 0, reg
        assert drv.get_i64(h, reg) == (0, value), reg
    refused = {
        d.SPC_CLOCKMODE: 0x8,  # external sample clock: not on a 66xx
        d.SPC_REFERENCECLOCK: 5_000_000,
        d.SPC_CLOCKOUT: 2,
        d.SPC_TRIG_EXT1_MODE: d.SPC_TM["inwin"],  # one level on Ext1: no window
        d.SPC_TRIG_EXT0_LEVEL0: 12_000,
        d.SPC_TRIG_DELAY: 40,  # not a multiple of 16
    }
    for reg, value in refused.items():
        assert drv.set_i64(h, reg, value) == ERR_VALUE, reg
        assert drv.get_error_info(h)[:2] == (ERR_VALUE, reg)
        assert drv.get_i64(h, reg) == (0, taken[reg]), reg  # a refused write changes nothing
    assert drv.set_i64(h1, d.SPC_DIFF0, 1) == ERR_VALUE  # a one-channel card has no pair to combine
    assert "no partner channel" in drv.get_error_info(h1)[3]
    for reg in (d.SPC_CLOCKOUTFREQUENCY, d.SPC_OVERSAMPLINGFACTOR):
        assert drv.set_i64(h, reg, 1) != 0  # read-only
    assert drv.get_i64(h, d.SPC_AVAILCLOCKMODES) == (0, d.SPC_CM_INTPLL | d.SPC_CM_EXTREFCLOCK)
    assert drv.get_i64(h1, d.SPC_TRIG_EXT0_ACDC) == (0, 1)  # AC coupling after opening (the manual, table 90)
    assert drv.set_i64(h1, d.SPC_TRIG_DELAY, (8 << 30) - 16) == 0 and drv.set_i64(h1, d.SPC_TRIG_DELAY, 8 << 30) == ERR_VALUE


@pytest.mark.parametrize("name", ["M4i.6620-x8", "M4i.6622-x8", "M4i.6630-x8", "M4x.6621-x4", "M4x.6631-x4"])
def test_each_model_reports_its_own_type_and_limits(name: str) -> None:
    from awgrt import CARDS
    from awgrt.sim import driver as d

    spec = CARDS[name]
    drv = d.EmulatedDriver({"/dev/spcm0": name})
    h = drv.open("/dev/spcm0")
    series = {"M4i": 0x70000, "M4x": 0x80000}[name[:3]]
    assert drv.get_i64(h, d.SPC_PCITYP) == (0, series | int(name[4:8], 16))  # as Spectrum's register file lists it
    assert drv.get_ptr(h, d.SPC_PCITYP, 64) == (0, name.encode())
    assert drv.get_i64(h, d.SPC_MIINST_CHPERMODULE) == (0, spec.physical_channels)
    assert drv.get_i64(h, d.SPC_MIINST_MAXADCLOCK) == (0, int(spec.max_sample_rate_hz))
    assert drv.get_i64(h, d.SPC_PCIMEMSIZE) == (0, 4 * 2**30)
    too_many = (1 << spec.physical_channels + 1) - 1 if spec.physical_channels < 4 else 0xFF
    assert drv.set_i64(h, d.SPC_CHENABLE, too_many) != 0  # a channel the model lacks


def test_an_unknown_model_names_the_closest_one() -> None:
    from awgrt import CARDS
    from awgrt.errors import CardError

    with pytest.raises(CardError, match=r"unknown card model 'M4i\.6631'; closest: M4i\.6631-x8") as err:
        CARDS["M4i.6631"]
    assert isinstance(err.value, KeyError) and "M4x.6622-x4" in str(err.value)
    assert CARDS.get("M2p.6546-x4") is None and "M4x.6630-x4" in CARDS
