"""Tests of the simulated Spectrum card (awgrt.sim) against the hardware contract.

The contract is the card's sequence replay mode as Spectrum's M4i manual documents it (step entries,
loops, end-on-trigger, trigger latency). Every expectation here is computed
independently of the code under test: step words are built with bit arithmetic, trigger latency
with exact fractions, and the output of a program by a small reference sequencer written below
(:func:`ref_walk`) that walks the step table pass by pass.

Sections:

1. driver-like validation on a bare card (error codes, messages, state left unchanged);
2. end to end: compiled and random programs played by ``simulate`` vs the reference sequencer;
3. trigger latency and the stop level before the first trigger;
4. ENDLOOPONTRIG waits forever without a trigger and never leaves mid-segment; END and stop levels;
5. the undocumented-behaviour policies (SimPolicy);
6. event-driven speed: skipped cycles give exactly what a brute-force walk gives;
7. live writes of slot data;
8. stop().
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awgrt import CARDS, AWGProgramBuilder, compile_sequence_program, encode_step_entry, quantize_resolved_ir
from awgrt import spectrum as sp
from awgrt.backends.sim import SimBackend
from awgrt.errors import CardError, ProgramError
from awgrt.program import CompiledSegment, CompiledSequenceProgram, SequenceStep
from awgrt.sim import SimPolicy, SimulatedCard, StopLevel, simulate, trigger_latency_samples

C2 = "M4i.6631-x8"  # 2 channels, 1.25 GS/s
C4 = "M4i.6622-x8"  # 4 channels, 625 MS/s
FS = 625e6
LAT_625 = 249  # ceil(238.5 + 16e-9 * 625e6) = ceil(248.5)
MIN_LEN = {1: 384, 2: 192, 4: 96}
STOP_VALUE = {"zero": 0, "low": -32768, "high": 32767}


# =============================================================================== helpers


def word(segment: int, next_step: int, loops: int, trig: bool = False, end: bool = False) -> int:
    """A raw 64-bit step word by bit arithmetic (no range checks: used for invalid words too)."""
    return segment | (next_step << 16) | (loops << 32) | (int(trig) << 62) | (int(end) << 63)


def latency(fs: float) -> int:
    """Trigger to first output sample, exact: ceil(238.5 + 16 ns * fs) up to 625 MS/s, ceil(476.5 + 16 ns * fs) above."""
    clocks = Fraction(477, 2) if fs <= 625e6 else Fraction(953, 2)
    return math.ceil(clocks + Fraction(16, 10**9) * Fraction(fs))


def seg_data(k: int, n: int, n_ch: int) -> np.ndarray:
    """Recognisable int16 data of slot ``k``: every sample of every slot and channel differs, none is 0 or +-full scale."""
    i = np.arange(n)
    return np.stack([1 + k * 5000 + c * 1200 + i for c in range(n_ch)], axis=1).astype(np.int16)


def make_card(sizes, steps, *, card=C2, n_channels=1, policy=None, max_segments=None, fs=None, start_step=0):
    """A card with slots of ``sizes`` (filled with seg_data) and ``steps`` [(segment, next, loops, trig, end)]."""
    c = SimulatedCard(CARDS[card], policy or SimPolicy())
    if fs is not None:
        c.set_sample_rate(fs)
    c.set_channels(n_channels)
    c.set_max_segments(max_segments or max(2, 1 << (len(sizes) - 1).bit_length()))
    data = []
    for k, n in enumerate(sizes):
        c.select_segment(k)
        c.set_segment_size(n)
        d = seg_data(k, n, n_channels)
        c.write_segment_data(d)
        data.append(d)
    for i, s in enumerate(steps):
        c.write_step(i, word(*s))
    c.set_start_step(start_step)
    return c, data


def snapshot(c: SimulatedCard) -> dict:
    return {
        "sample_rate": c.sample_rate_hz,
        "n_channels": c.n_channels,
        "max_segments": c.max_segments,
        "write_segment": c.write_segment,
        "slots": [(s.size, None if s.data is None else s.data.copy()) for s in c.slots],
        "steps": dict(c.steps),
        "start_step": c.start_step,
        "state": c.state,
        "now": c.now,
        "stop_levels": list(c.stop_levels),
        "custom": list(c.custom_stop),
        "amplitude": list(c.amplitude_mv),
        "status": c.status(),
        "current_step": c.current_step(),
        "live": c.live_slot_writes,
        "trigger_log": list(c.trigger_log),
        "trigger_enabled": c.trigger_enabled,
    }


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "slots":
            assert len(a[key]) == len(b[key]), "slot count changed"
            for i, ((sa, da), (sb, db)) in enumerate(zip(a[key], b[key])):
                assert sa == sb, f"slot {i} size changed {sa} -> {sb}"
                assert (da is None) == (db is None) and (da is None or np.array_equal(da, db)), f"slot {i} data changed"
        else:
            assert a[key] == b[key], f"{key} changed: {a[key]!r} -> {b[key]!r}"


def expect_error(c: SimulatedCard, code: int, fn, *words: str, register=None) -> CardError:
    """``fn()`` must raise CardError with ``code``, a message naming ``words``, and leave ``c`` as it was."""
    before = snapshot(c)
    with pytest.raises(CardError) as info:
        fn()
    exc = info.value
    assert exc.code == code, f"code {exc.code:#06x} != {code:#06x}: {exc}"
    msg = str(exc)
    assert f"{code:#06x}" in msg and c.spec.name in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    if register is not None:
        assert exc.register == register
    assert_same(before, snapshot(c))
    return exc


def ref_walk(steps, lengths, start_step, triggers, lat, horizon, *, endloop_check="after_all_loops", latch=False, setup=0):
    """Independent reference sequencer, pass by pass.

    ``steps``: [(segment, next, loops, on_trigger, end)]; ``lengths``: samples per segment.
    Returns (events [(sample, step, segment)] with sample < horizon, passes [(start, segment)], ready sample or None).
    """
    trig = sorted(set(triggers))
    if not trig:
        return [], [], None
    pending = [x for x in trig if x > trig[0]]  # the first trigger starts replay
    t = trig[0] + lat
    i = start_step
    events, passes = [], []
    while t < horizon:
        seg, nxt, loops, on_trig, end = steps[i]
        n = lengths[seg]
        origin = t
        events.append((t, i, seg))
        done = 0
        finished = False
        while t < horizon:
            passes.append((t, seg))
            t += n
            done += 1
            if not on_trig:
                if done == loops:
                    finished = True
                    break
                continue
            if done < (loops if endloop_check == "after_all_loops" else 1):
                continue
            last_ok = t - 1 - setup  # a trigger at or before this sample ends this pass
            if any(x <= last_ok and (latch or x >= origin) for x in pending):
                pending = [x for x in pending if x > last_ok]
                finished = True
                break
        if not finished:
            break
        if end:
            return events, passes, (t if t <= horizon else None)  # READY only once the END step has played whole
        i = nxt
    return events, passes, None


def ref_output(passes, data, ready, horizon, n_ch, pre, post, start=0) -> np.ndarray:
    """Samples [start, horizon) implied by ``passes``: ``pre`` before the first pass, ``post`` from ``ready`` on
    (None: the last sample per channel)."""
    out = np.empty((horizon - start, n_ch), dtype=np.int16)
    out[:] = pre
    last = np.zeros(n_ch, dtype=np.int16)
    for t, seg in passes:
        d = data[seg]
        last = d[-1]
        a, b = max(t, start), min(t + len(d), horizon)
        if a < b:
            out[a - start : b - start] = d[a - t : b - t]
    if ready is not None and ready < horizon:
        out[max(ready, start) - start :] = last if post is None else post
    return out


def program_of(n_ch, datas, steps, start_step=0, fs=FS, card=C2) -> CompiledSequenceProgram:
    segs = tuple(CompiledSegment(f"seg{k}", d, f"digest{k}") for k, d in enumerate(datas))
    return CompiledSequenceProgram(
        sample_rate_hz=fs,
        n_channels=n_ch,
        segments=segs,
        steps=tuple(SequenceStep(*s, name=f"st{i}") for i, s in enumerate(steps)),
        start_step=start_step,
        card=CARDS[card],
    )


def ev_tuples(events) -> list[tuple[int, int, int]]:
    return [(e.sample, e.step, e.segment) for e in events]


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (TimeoutError) instead of hanging when the simulator loops forever."""

    def on_alarm(*_):
        raise TimeoutError(f"the simulator did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# =============================================================================== 1. validation


@pytest.mark.parametrize("card", [C2, C4])
@pytest.mark.parametrize("n", [0, 1, 3, 6, 12, 100, 65535, 131072, -4])
def test_maxsegments_rejected(card, n):
    c = SimulatedCard(CARDS[card])
    c.set_max_segments(4)
    c.select_segment(2)
    c.set_segment_size(384)
    c.write_segment_data(seg_data(2, 384, 1))
    expect_error(c, sp.ERR_VALUE, lambda: c.set_max_segments(n), "MAXSEGMENTS", "power of two", register=sp.SPC_SEQMODE_MAXSEGMENTS)


@pytest.mark.parametrize("n", [2, 4, 65536])
def test_maxsegments_accepted(n):
    c = SimulatedCard(CARDS[C2])
    c.set_max_segments(n)
    assert c.max_segments == n and len(c.slots) == n
    assert c.slot_capacity == (2**31 // n) // 32 * 32


@pytest.mark.parametrize("card", [C2, C4])
def test_select_segment(card):
    c = SimulatedCard(CARDS[card])
    expect_error(c, sp.ERR_SEQUENCE, lambda: c.select_segment(0), "MAXSEGMENTS", register=sp.SPC_SEQMODE_WRITESEGMENT)
    expect_error(c, sp.ERR_SEQUENCE, lambda: c.set_segment_size(384), "MAXSEGMENTS")
    c.set_max_segments(8)
    c.select_segment(5)
    for bad in (8, 9, -1, 65536):
        expect_error(c, sp.ERR_VALUE, lambda bad=bad: c.select_segment(bad), f"segment {bad}", "0..7", register=sp.SPC_SEQMODE_WRITESEGMENT)
    assert c.write_segment == 5
    c.select_segment(7)
    assert c.write_segment == 7


@pytest.mark.parametrize(("card", "n_channels"), [(C2, 1), (C2, 2), (C4, 1), (C4, 2), (C4, 4)])
def test_segment_size_limits(card, n_channels):
    c = SimulatedCard(CARDS[card])
    c.set_channels(n_channels)
    c.set_max_segments(65536)
    least = MIN_LEN[n_channels]
    cap = 2**31 // n_channels // 65536  # 32768 / n_channels: a multiple of 32
    c.select_segment(3)
    c.set_segment_size(least + 32)
    c.write_segment_data(seg_data(3, least + 32, n_channels))
    for bad in (least - 32, least - 1, 32, 0, least + 16, least + 33, cap + 32, cap + 1):
        expect_error(c, sp.ERR_VALUE, lambda bad=bad: c.set_segment_size(bad), f"size {bad}", "multiple of 32", register=sp.SPC_SEQMODE_SEGMENTSIZE)
    assert np.array_equal(c.segment_data(3), seg_data(3, least + 32, n_channels))
    c.select_segment(4)
    c.set_segment_size(least)
    c.set_segment_size(cap)
    assert c.segment_data(4).shape == (cap, n_channels)


def test_segment_size_before_maxsegments_and_channel_counts():
    c = SimulatedCard(CARDS[C2])
    expect_error(c, sp.ERR_CHANNEL, lambda: c.set_channels(4), "4 enabled channels")
    expect_error(c, sp.ERR_CHANNEL, lambda: c.set_channels(3), "3 enabled channels")
    c4 = SimulatedCard(CARDS[C4])
    expect_error(c4, sp.ERR_CHANNEL, lambda: c4.set_channels(3), "3 enabled channels")
    expect_error(c4, sp.ERR_VALUE, lambda: c4.set_sample_rate(1.25e9), "sample rate")
    expect_error(c, sp.ERR_VALUE, lambda: c.set_sample_rate(752e6), "clock gap")
    expect_error(c, sp.ERR_VALUE, lambda: c.set_sample_rate(40e6), "outside")


@pytest.mark.parametrize(("card", "n_channels"), [(C2, 1), (C2, 2), (C4, 4)])
def test_segment_data_rejected(card, n_channels):
    c = SimulatedCard(CARDS[card])
    c.set_channels(n_channels)
    c.set_max_segments(4)
    n = MIN_LEN[n_channels]
    c.select_segment(1)
    expect_error(c, sp.ERR_SEQUENCE, lambda: c.write_segment_data(seg_data(1, n, n_channels)), "no size")
    c.set_segment_size(n)
    good = seg_data(1, n, n_channels)
    c.write_segment_data(good)
    cases = [
        (seg_data(1, n + 32, n_channels), "longer than its size"),
        (seg_data(1, n + 1, n_channels), "longer than its size"),
        (good.astype(np.float64), "int16"),
        (good.astype(np.int32), "int16"),
        (good.astype(np.uint16), "int16"),
        (np.zeros((n, n_channels + 1), np.int16), "channels"),
    ]
    if n_channels > 1:
        cases += [
            (np.zeros((n, 1), np.int16), "channels"),
            (np.zeros(n * n_channels + 1, np.int16), "whole samples"),
            (np.zeros((n, n_channels, 1), np.int16), "channels"),
        ]
    for bad, words in cases:
        expect_error(c, sp.ERR_VALUE, lambda bad=bad: c.write_segment_data(bad), words)
    expect_error(c, sp.ERR_VALUE, lambda: c.write_segment_data(good[:64], offset=n - 32), "offset")
    expect_error(c, sp.ERR_VALUE, lambda: c.write_segment_data(good[:64], offset=-1), "offset")
    assert np.array_equal(c.segment_data(1), good)
    # interleaved 1-D data is accepted: ch0 s0, ch1 s0, ch0 s1, ...
    inter = np.arange(n * n_channels, dtype=np.int16)
    c.write_segment_data(inter)
    assert np.array_equal(c.segment_data(1), inter.reshape(n, n_channels))
    c.write_segment_data(good[:32], offset=n - 32)
    assert np.array_equal(c.segment_data(1)[-32:], good[:32])
    assert np.array_equal(c.segment_data(1)[:-32], inter.reshape(n, n_channels)[:-32])


@pytest.mark.parametrize("card", [C2, C4])
def test_step_words_rejected(card):
    c = SimulatedCard(CARDS[card])
    c.set_max_segments(4)
    c.write_step(3, word(1, 2, 5))
    reg = sp.SPC_SEQMODE_STEPMEM0 + 3
    cases = [
        (4096, word(0, 0, 1), "step 4096", None),
        (-1, word(0, 0, 1), "step -1", None),
        (3, word(4, 0, 1), "segment 4", reg),
        (3, word(65535, 0, 1), "segment 65535", reg),
        (3, word(0, 4096, 1), "next step 4096", reg),
        (3, word(0, 65535, 1), "next step 65535", reg),
        (3, word(0, 0, 0), "loops=0", reg),
        (3, word(0, 0, 0, end=True), "loops=0", reg),
        (3, word(0, 0, 2**20), "reserved", reg),  # 2**20 does not fit the 20-bit field: it lands in bit 52
        (3, word(0, 0, 1) | (1 << 52), "reserved", reg),
        (3, word(0, 0, 1) | (1 << 57), "reserved", reg),
        (3, word(0, 0, 1) | (1 << 61), "reserved", reg),
        (3, 1 << 64, "step 3", reg),
        (3, -(1 << 63) - 1, "step 3", reg),
    ]
    for index, w, text, register in cases:
        expect_error(c, sp.ERR_VALUE, lambda index=index, w=w: c.write_step(index, w), text, register=register)
    assert c.steps[3].segment == 1 and c.steps[3].next == 2 and c.steps[3].loops == 5
    # the limits themselves are accepted; END reads back as negative int64 and is accepted that way too
    c.write_step(4095, word(3, 4095, 2**20 - 1, trig=True))
    e = c.steps[4095]
    assert (e.segment, e.next, e.loops, e.on_trigger, e.end) == (3, 4095, 2**20 - 1, True, False)
    signed = word(2, 7, 9, end=True) - (1 << 64)
    assert signed < 0
    c.write_step(0, signed)
    e = c.steps[0]
    assert (e.segment, e.next, e.loops, e.on_trigger, e.end) == (2, 7, 9, False, True)


def test_start_refused():
    c = SimulatedCard(CARDS[C2])
    expect_error(c, sp.ERR_SEQUENCE, c.start, "MAXSEGMENTS")
    c, _ = make_card([384], [(0, 1, 1), (2, 0, 1)], max_segments=4)  # step 1 plays empty slot 2
    expect_error(c, sp.ERR_SEQUENCE, c.start, "empty segment 2", register=sp.SPC_M2CMD)
    assert c.status() == 0 and c.state == "idle"
    c.write_step(1, word(0, 5, 1))  # step 5 is reachable but unwritten
    expect_error(c, sp.ERR_SEQUENCE, c.start, "step 5", "never written")
    c.set_start_step(7)  # the start step itself is unwritten
    expect_error(c, sp.ERR_SEQUENCE, c.start, "step 7", "never written")
    # an unwritten step behind an END is not reachable: fine
    c.set_start_step(0)
    c.write_step(1, word(0, 5, 1, end=True))
    c.start()
    assert c.state == "armed" and c.status() == sp.M2STAT_CARD_PRETRIGGER


def test_start_step_range():
    c = SimulatedCard(CARDS[C2])
    expect_error(c, sp.ERR_VALUE, lambda: c.set_start_step(4096), "start step 4096", register=sp.SPC_SEQMODE_STARTSTEP)
    expect_error(c, sp.ERR_VALUE, lambda: c.set_start_step(-1), "start step -1")


@pytest.mark.parametrize("phase", ["armed", "running"])
@pytest.mark.parametrize("card", [C2, C4])
def test_changes_while_running_refused(card, phase):
    c, _ = make_card([384, 416], [(0, 1, 1), (1, 0, 2)], card=card, max_segments=4)
    c.start()
    if phase == "running":
        c.force_trigger()
        c.advance(LAT_625 + 500)
        assert c.state == "running" and c.current_step() == 1
    expect_error(c, sp.ERR_RUNNING, lambda: c.set_max_segments(8), "MAXSEGMENTS", "while the card runs", register=sp.SPC_SEQMODE_MAXSEGMENTS)
    expect_error(c, sp.ERR_RUNNING, lambda: c.set_sample_rate(500e6), "sample rate", "while the card runs")
    expect_error(c, sp.ERR_RUNNING, lambda: c.set_channels(2), "channels", "while the card runs")
    expect_error(c, sp.ERR_RUNNING, lambda: c.set_start_step(1), "start step", "while the card runs", register=sp.SPC_SEQMODE_STARTSTEP)
    expect_error(c, sp.ERR_RUNNING, c.start, "CARD_START", "while the card runs")
    c.select_segment(1)
    expect_error(c, sp.ERR_RUNNING, lambda: c.set_segment_size(384), "segment 1", "in use")
    # the card still plays the program as set up: slot 0 first (or the current pass of step 1)
    out = c.render(2000)
    if phase == "armed":
        assert not out.any()
    else:
        n1 = 416
        k = (c.now - 2000 - LAT_625 - 384) % n1
        assert out[0, 0] == seg_data(1, n1, 1)[k, 0]


@pytest.mark.parametrize("card", [C2, C4])
def test_stop_level_rejected(card):
    c = SimulatedCard(CARDS[card])
    nch = CARDS[card].physical_channels
    c.set_stop_level(0, StopLevel.CUSTOM, 1234)
    c.set_stop_level(1, StopLevel.HOLDLAST)
    reg = sp.SPC_CH0_STOPLEVEL + 1
    for bad in (0, 3, 0x40, 0x11, -1):
        expect_error(c, sp.ERR_VALUE, lambda bad=bad: c.set_stop_level(1, bad), "stop level", register=reg)
    for bad in (32768, -32769, 10**6):
        expect_error(c, sp.ERR_VALUE, lambda bad=bad: c.set_stop_level(1, StopLevel.CUSTOM, bad), "custom", register=reg)
    for ch in (nch, nch + 1, -1):
        expect_error(c, sp.ERR_CHANNEL, lambda ch=ch: c.set_stop_level(ch, StopLevel.LOW), f"channel {ch}")
    assert c.stop_levels[:2] == [StopLevel.CUSTOM, StopLevel.HOLDLAST] and c.custom_stop[0] == 1234
    c.set_stop_level(nch - 1, StopLevel.LOW)
    assert c.stop_levels[nch - 1] == StopLevel.LOW


def test_force_trigger_needs_started_card():
    c, data = make_card([384], [(0, 0, 1)])
    expect_error(c, sp.ERR_SEQUENCE, c.force_trigger, "FORCETRIGGER", register=sp.SPC_M2CMD)
    c.start()
    out = c.render(5000)  # the refused trigger left nothing behind: still waiting
    assert not out.any() and c.trigger_log == [] and c.state == "armed"
    c.force_trigger()
    out = c.render(LAT_625 + 384)
    assert not out[:LAT_625].any()
    assert np.array_equal(out[LAT_625:, :1], data[0])
    c.stop()
    expect_error(c, sp.ERR_SEQUENCE, c.force_trigger, "FORCETRIGGER")


def test_external_trigger_needs_enable():
    c, data = make_card([384], [(0, 0, 1)])
    c.start()
    c.external_trigger(10)  # not enabled: ignored
    assert not c.render(2000).any()
    c.enable_trigger()
    c.external_trigger(c.now + 7)
    out = c.render(LAT_625 + 400)
    first = 7 + LAT_625
    assert not out[:first].any()
    assert np.array_equal(out[first : first + 384, :1], data[0])
    with pytest.raises(ValueError):
        c.external_trigger(c.now - 1)


def test_policy_values_checked():
    for kw in ({"endloop_check": "sometimes"}, {"prefetch": 2}, {"endloop_setup_samples": -1}):
        with pytest.raises(ValueError):
            SimPolicy(**kw)


@pytest.mark.parametrize("play", ["advance", "render"])
def test_live_step_write_to_empty_slot_fails_cleanly(play):
    """A live step rewrite that sends the sequencer to an empty slot must end in a CardError (refused at the
    write, or when the sequencer gets there), never in a crash or a hang of the simulator itself."""
    c, _ = make_card([384], [(0, 0, 1)], max_segments=4)
    c.start()
    c.force_trigger()
    c.advance(LAT_625 + 100)
    try:
        c.write_step(0, word(2, 0, 1))  # slot 2 holds nothing
        with time_limit(1.0):
            if play == "advance":
                c.advance(20000)
            else:
                c.render(20000)
    except CardError as exc:
        assert exc.code in (sp.ERR_SEQUENCE, sp.ERR_VALUE)


def test_resizing_the_playing_slot():
    """The size of the slot that plays now must not change while the card runs (or, if the card allows it,
    the output must stay well formed)."""
    c, _ = make_card([512, 512], [(0, 0, 1)], max_segments=4)
    c.start()
    c.force_trigger()
    c.advance(LAT_625 + 300)
    c.write_step(0, word(1, 0, 1))  # slot 0 keeps playing its current pass; no step points at it now
    c.select_segment(0)
    try:
        c.set_segment_size(384)
    except CardError as exc:
        assert exc.code == sp.ERR_RUNNING
        return
    with time_limit(1.0):
        out = c.render(1000)
    assert out.shape == (1000, 2)


# =============================================================================== 2. end to end


def _compiled(kind: str) -> CompiledSequenceProgram:
    b = AWGProgramBuilder().logical_channel("H")
    if kind == "1ch":
        b.define("dH", logical_channel="H", freqs=[90e6], amps=[0.3], phases="auto")
        b.segment("a", mode="once").tones("H").use_def("dH").hold(time=1e-6)
        b.segment("b", mode="loop_n", loops=3).tones("H").hold(time=0.4e-6)
        b.segment("c", mode="wait_trig").tones("H").hold(time=0.7e-6)
        b.segment("d", mode="once").tones("H").move(df=1e6, time=0.5e-6)
        b.last_step("ring")  # ends 1 MHz away from its start: rings only when asked
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0}, CARDS[C2])
    else:
        b.logical_channel("V")
        b.define("dH", logical_channel="H", freqs=[90e6, 70e6], amps=[0.2, 0.2], phases="auto")
        b.define("dV", logical_channel="V", freqs=[100e6], amps=[0.3], phases="auto")
        b.segment("wait", mode="wait_trig").tones("H").use_def("dH").tones("V").use_def("dV").hold(time=0.6e-6)
        b.segment("chirp", mode="once").tones("H").move(df=2e6, time=0.8e-6, idxs=[0])
        b.segment("loop", mode="loop_n", loops=2).tones("V").hold(time=0.5e-6)
        b.segment("wait2", mode="wait_trig").tones("V").ramp_amp_to(amps=[0.1], time=0.3e-6)
        b.last_step("end" if kind == "2ch_end" else "ring")
        mapping, card = ({"H": 0, "V": 1}, C2) if kind == "2ch_end" else ({"H": 0, "V": 3}, C4)
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), mapping, CARDS[card])
    return compile_sequence_program(q, progress=False)


compiled_program = functools.lru_cache(maxsize=None)(_compiled)


def check_playback(program, triggers, n_samples, *, policy=None, stop_level="zero", force=False):
    pb = simulate(program, triggers=triggers, n_samples=n_samples, policy=policy, stop_level=stop_level, force_trigger=force)
    steps = [(s.segment, s.next, s.loops, s.on_trigger, s.end) for s in program.steps]
    lengths = [s.n_samples for s in program.segments]
    pol = policy or SimPolicy()
    trig = ([0] if force else []) + list(triggers)
    events, passes, ready = ref_walk(
        steps,
        lengths,
        program.start_step,
        trig,
        latency(program.sample_rate_hz),
        n_samples,
        endloop_check=pol.endloop_check,
        latch=pol.latch_earlier_triggers,
        setup=pol.endloop_setup_samples,
    )
    nch = program.n_channels
    pre = 0 if stop_level == "holdlast" else STOP_VALUE[stop_level]
    post = None if stop_level == "holdlast" else STOP_VALUE[stop_level]
    want = ref_output(passes, [s.data for s in program.segments], ready, n_samples, nch, pre, post)
    assert pb.samples.shape == (n_samples, nch) and pb.samples.dtype == np.int16
    assert ev_tuples(pb.events) == events
    assert pb.ready_sample == ready
    if stop_level == "holdlast" and passes:  # before the first output HOLDLAST has held nothing yet: not compared
        first = passes[0][0]
        np.testing.assert_array_equal(pb.samples[first:], want[first:])
    else:
        np.testing.assert_array_equal(pb.samples, want)
    return pb, events


def test_compiled_programs_are_what_we_think():
    p1, p2, p4 = (compiled_program(k) for k in ("1ch", "2ch_end", "4ch"))
    assert [(s.loops, s.on_trigger, s.end) for s in p1.steps] == [(1, False, False), (3, False, False), (1, True, False), (1, False, False)]
    assert p1.steps[-1].next == 0 and p1.n_channels == 1
    assert p2.n_channels == 2 and p2.steps[-1].end
    assert p4.n_channels == 4 and p4.card.name == C4
    assert not p4.segments[0].data[:, 1:3].any() and p4.segments[0].data[:, 3].any()  # V plays on hardware channel 3


@pytest.mark.parametrize("kind", ["1ch", "2ch_end", "4ch"])
def test_compiled_program_fixed_triggers(kind):
    p = compiled_program(kind)
    pb, events = check_playback(p, [100, 3000, 3001, 9000], 20000)
    assert events and events[0] == (100 + LAT_625, 0, p.steps[0].segment)
    assert len(events) >= 3  # the walk went past the first wait step (the trigger at 3000 ended it)
    assert pb.step_names(p) == [p.steps[e[1]].name for e in events]


@pytest.mark.parametrize("kind", ["1ch", "2ch_end", "4ch"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_program_random_triggers(kind, data):
    p = compiled_program(kind)
    n = data.draw(st.integers(1000, 30000), label="n_samples")
    triggers = data.draw(st.lists(st.integers(0, n), max_size=6, unique=True), label="triggers")
    force = data.draw(st.booleans(), label="force")
    level = data.draw(st.sampled_from(["zero", "low", "high", "holdlast"]), label="stop_level")
    if force:
        triggers = [t for t in triggers if t > 0]
    check_playback(p, triggers, n, stop_level=level, force=force)


@st.composite
def random_programs(draw):
    n_ch = draw(st.sampled_from([1, 2]))
    least = MIN_LEN[n_ch]
    n_seg = draw(st.integers(1, 3))
    lengths = [least + 32 * draw(st.integers(0, 6)) for _ in range(n_seg)]
    n_steps = draw(st.integers(n_seg, 5))
    steps = []
    for i in range(n_steps):
        seg = i if i < n_seg else draw(st.integers(0, n_seg - 1))
        steps.append((seg, draw(st.integers(0, n_steps - 1)), draw(st.integers(1, 4)), draw(st.booleans()), draw(st.integers(0, 4)) == 0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    datas = [rng.integers(-30000, 30000, size=(n, n_ch)).astype(np.int16) for n in lengths]
    fs = draw(st.sampled_from([FS, 500e6, 1.25e9]))
    return program_of(n_ch, datas, steps, start_step=draw(st.integers(0, n_steps - 1)), fs=fs)


POLICIES = st.builds(
    SimPolicy,
    endloop_check=st.sampled_from(["after_all_loops", "every_pass"]),
    latch_earlier_triggers=st.booleans(),
    prefetch=st.sampled_from([0, 1]),
    endloop_setup_samples=st.sampled_from([0, 0, 1, 31, 500]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=random_programs(),
    n=st.integers(2000, 50000),
    trig_frac=st.lists(st.floats(0, 1), max_size=8),
    policy=POLICIES,
    level=st.sampled_from(["zero", "low", "high", "holdlast"]),
)
def test_random_programs_match_reference_walk(program, n, trig_frac, policy, level):
    assert not program.problems()
    triggers = sorted({int(f * n) for f in trig_frac})
    check_playback(program, triggers, n, policy=policy, stop_level=level)


# =============================================================================== 3. latency


@pytest.mark.parametrize(
    ("fs", "expected"),
    [(625e6, 249), (500e6, 247), (1.25e9, 497), (1e9, 493), (50e6, 240), (93.75e6, 240), (625_000_008, 487), (1.2e9, 496)],
)
def test_trigger_latency_samples(fs, expected):
    assert latency(fs) == expected
    assert trigger_latency_samples(fs) == expected


@pytest.mark.parametrize("fs", [500e6, 625e6, 1.25e9])
@pytest.mark.parametrize("trig", [0, 1, 777])
def test_first_output_at_trigger_plus_latency(fs, trig):
    d = [seg_data(0, 384, 2), seg_data(1, 192, 2)]
    p = program_of(2, d, [(0, 1, 1), (1, 0, 1)], fs=fs)
    lat = latency(fs)
    pb = simulate(p, triggers=[trig], n_samples=trig + lat + 600, stop_level="high")
    first = trig + lat
    assert (pb.samples[:first] == 32767).all()
    np.testing.assert_array_equal(pb.samples[first : first + 384], d[0])
    np.testing.assert_array_equal(pb.samples[first + 384 : first + 576], d[1])
    assert ev_tuples(pb.events)[:2] == [(first, 0, 0), (first + 384, 1, 1)]


@pytest.mark.parametrize("level", ["zero", "low", "high"])
def test_stop_level_before_first_trigger(level):
    p = program_of(1, [seg_data(0, 384, 1)], [(0, 0, 1)])
    pb = simulate(p, triggers=[], n_samples=5000, stop_level=level)
    assert (pb.samples == STOP_VALUE[level]).all()
    assert pb.events == () and pb.ready_sample is None
    pb = simulate(p, triggers=[3000], n_samples=5000, stop_level=level)
    assert (pb.samples[: 3000 + LAT_625] == STOP_VALUE[level]).all()
    assert pb.samples[3000 + LAT_625, 0] == seg_data(0, 384, 1)[0, 0]


def test_forced_trigger_and_later_triggers():
    d = [seg_data(0, 384, 1)]
    p = program_of(1, d, [(0, 0, 1)])
    pb = simulate(p, n_samples=3000, force_trigger=True, stop_level="low")
    assert (pb.samples[:LAT_625] == -32768).all()
    np.testing.assert_array_equal(pb.samples[LAT_625 : LAT_625 + 384], d[0])
    # a second trigger, before or after the first output, neither restarts nor shifts replay
    pb2 = simulate(p, triggers=[50, 1000], n_samples=3000, force_trigger=True, stop_level="low")
    np.testing.assert_array_equal(pb2.samples, pb.samples)
    assert ev_tuples(pb2.events) == [(LAT_625 + 384 * k, 0, 0) for k in range(math.ceil((3000 - LAT_625) / 384))]


def test_latency_on_bare_card_at_other_rates():
    for fs, lat in ((500e6, 247), (1.25e9, 497), (50e6, 240)):
        c, data = make_card([384], [(0, 0, 1)], fs=fs)
        c.start()
        c.enable_trigger()
        c.external_trigger(1000)
        out = c.render(1000 + lat + 384)
        assert not out[: 1000 + lat].any()
        assert np.array_equal(out[1000 + lat :, :1], data[0])
        assert c.trigger_log == [1000]
        assert c.events[0].sample == 1000 + lat


# =============================================================================== 4. ENDLOOPONTRIG and END


def test_endloopontrig_waits_indefinitely_and_leaves_at_pass_end():
    sizes = [384, 416, 448]
    c, data = make_card(sizes, [(0, 1, 1), (1, 2, 1, True), (2, 0, 1)])
    c.start()
    c.force_trigger()
    ten_s = int(10 * FS)
    t_start = time.perf_counter()
    c.advance(ten_s)
    assert time.perf_counter() - t_start < 5.0  # waiting costs nothing (a brute-force walk would take minutes)
    o1 = LAT_625 + 384
    assert c.current_step() == 1 and c.state == "running"
    assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1)]
    n1 = 416
    phase = (c.now - o1) % n1
    out = c.render(3 * n1)
    want = np.roll(np.tile(data[1], (4, 1)), -phase, axis=0)[: 3 * n1]
    assert np.array_equal(out[:, :1], want)
    # a trigger in the middle of a pass: that pass plays to its end, then step 2
    c.advance(17)
    t = c.now
    c.force_trigger()
    phase = (t - o1) % n1
    leave = t + (n1 - phase)
    out = c.render(n1 + 448)
    k = leave - t
    assert np.array_equal(out[:k, :1], data[1][phase:])
    assert np.array_equal(out[k : k + 448, :1], data[2])
    assert ev_tuples(c.events)[2] == (leave, 2, 2)
    assert c.trigger_log == [0]  # only the start trigger is logged as a replay start


@pytest.mark.parametrize("offset", [0, 1, 200, 415])
@pytest.mark.parametrize("passes_before", [0, 3])
def test_endloopontrig_never_leaves_mid_segment(offset, passes_before):
    n1 = 416
    c, _ = make_card([384, n1, 448], [(0, 1, 1), (1, 2, 1, True), (2, 0, 1, False, True)])
    c.start()
    c.enable_trigger()
    c.force_trigger()
    o1 = LAT_625 + 384
    tr = o1 + passes_before * n1 + offset
    c.external_trigger(tr)
    c.advance(tr + 3 * n1)
    leave = o1 + (passes_before + 1) * n1
    assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1), (leave, 2, 2)]
    assert c.state == "ready" and c.current_step() == 2


@pytest.mark.parametrize("level", ["zero", "low", "high", "holdlast"])
@pytest.mark.parametrize("n_ch", [1, 2])
def test_end_plays_whole_then_stop_level(level, n_ch):
    d = [seg_data(0, 384, n_ch), seg_data(1, 416, n_ch)]
    p = program_of(n_ch, d, [(0, 1, 1), (1, 0, 2, False, True)])
    trig = 33
    n = 4000
    pb = simulate(p, triggers=[trig], n_samples=n, stop_level=level)
    first = trig + LAT_625
    ready = first + 384 + 2 * 416
    assert pb.ready_sample == ready
    assert ev_tuples(pb.events) == [(first, 0, 0), (first + 384, 1, 1)]
    np.testing.assert_array_equal(pb.samples[first : first + 384], d[0])
    np.testing.assert_array_equal(pb.samples[first + 384 : ready], np.tile(d[1], (2, 1)))
    after = d[1][-1] if level == "holdlast" else np.full(n_ch, STOP_VALUE[level], np.int16)
    assert (pb.samples[ready:] == after).all()


def test_end_status_and_custom_levels_on_card():
    c, data = make_card([192, 224], [(0, 1, 1), (1, 0, 1, False, True)], n_channels=2)
    c.set_stop_level(0, StopLevel.CUSTOM, -1234)
    c.set_stop_level(1, StopLevel.CUSTOM, 4321)
    assert c.status() == 0
    c.start()
    assert c.status() == sp.M2STAT_CARD_PRETRIGGER
    pre = c.render(100)
    assert (pre == [-1234, 4321]).all()
    c.force_trigger()
    ready = 100 + LAT_625 + 192 + 224
    out = c.render(ready - 100 - 1)
    assert c.status() == sp.M2STAT_CARD_PRETRIGGER | sp.M2STAT_CARD_TRIGGER
    assert c.state == "running" and c.current_step() == 1
    out = np.concatenate([out, c.render(1000)])
    assert c.status() & sp.M2STAT_CARD_READY and c.status() & sp.M2STAT_CARD_TRIGGER
    assert c.current_step() == 1  # the END step was the last played
    r = ready - 100
    assert np.array_equal(out[r - 224 : r], data[1])
    assert (out[r:] == [-1234, 4321]).all()
    assert (out[:LAT_625] == [-1234, 4321]).all()


def test_end_reached_by_advance_holdlast():
    """READY and HOLDLAST work the same when the END step is crossed by advance() instead of render()."""
    c, data = make_card([384, 416], [(0, 1, 3), (1, 0, 1, False, True)])
    c.set_stop_level(0, StopLevel.HOLDLAST)
    c.start()
    c.force_trigger()
    c.advance(10**7)
    assert c.state == "ready" and c.status() & sp.M2STAT_CARD_READY
    assert (c.render(10)[:, 0] == data[1][-1, 0]).all()


@pytest.mark.parametrize(("levels", "card", "n_ch"), [(["low", "holdlast"], C2, 2), (["high", "zero", "holdlast", "low"], C4, 4)])
def test_per_channel_stop_levels_via_backend(levels, card, n_ch):
    d = [seg_data(0, MIN_LEN[n_ch], n_ch), seg_data(1, MIN_LEN[n_ch] + 32, n_ch)]
    p = program_of(n_ch, d, [(0, 1, 1), (1, 0, 1, False, True)], card=card)
    with SimBackend(card) as be:
        be.configure(sample_rate_hz=FS, n_channels=n_ch, stop_level=levels, trigger="external")
        be.load(p)
        be.start()
        be.schedule_trigger(10)
        out = be.capture(3000)
        assert not be.is_running()
    ready = 10 + LAT_625 + len(d[0]) + len(d[1])
    for ch, lv in enumerate(levels):
        want = d[1][-1, ch] if lv == "holdlast" else STOP_VALUE[lv]
        assert (out[ready:, ch] == want).all(), (ch, lv)
        if lv != "holdlast":
            assert (out[: 10 + LAT_625, ch] == want).all()
    np.testing.assert_array_equal(out[ready - len(d[1]) : ready], d[1])


def test_disabled_channels_sit_at_stop_level():
    """On the 4-channel card with 2 channels enabled, channels 2 and 3 output their stop level all the time."""
    c, data = make_card([192], [(0, 0, 1)], card=C4, n_channels=2)
    c.set_stop_level(2, StopLevel.HIGH)
    c.set_stop_level(3, StopLevel.CUSTOM, 77)
    c.start()
    c.force_trigger()
    out = c.render(LAT_625 + 192)
    assert out.shape == (LAT_625 + 192, 4)
    assert (out[:, 2] == 32767).all() and (out[:, 3] == 77).all()
    assert np.array_equal(out[LAT_625:, :2], data[0])


# =============================================================================== 5. policies


@pytest.mark.parametrize(
    ("check", "pass_of_trigger", "leave_after"),
    [
        ("after_all_loops", 0, 3),
        ("every_pass", 0, 1),
        ("after_all_loops", 1, 3),
        ("every_pass", 1, 2),
        ("after_all_loops", 4, 5),
        ("every_pass", 4, 5),
        ("after_all_loops", 2, 3),
        ("every_pass", 2, 3),
    ],
)
def test_endloop_check_policy(check, pass_of_trigger, leave_after):
    n1 = 416
    c, data = make_card([384, n1, 448], [(0, 1, 1), (1, 2, 3, True), (2, 0, 1, False, True)], policy=SimPolicy(endloop_check=check))
    c.start()
    c.enable_trigger()
    c.force_trigger()
    o1 = LAT_625 + 384
    c.external_trigger(o1 + pass_of_trigger * n1 + 100)
    out = c.render(o1 + 8 * n1)
    leave = o1 + leave_after * n1
    assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1), (leave, 2, 2)]
    assert np.array_equal(out[o1:leave, :1], np.tile(data[1], (leave_after, 1)))
    assert np.array_equal(out[leave : leave + 448, :1], data[2])


@pytest.mark.parametrize("check", ["after_all_loops", "every_pass"])
def test_endloop_loops3_without_trigger_waits(check):
    c, _ = make_card([384, 416], [(0, 1, 1), (1, 0, 3, True)], policy=SimPolicy(endloop_check=check))
    c.start()
    c.force_trigger()
    c.advance(10**8)
    assert c.current_step() == 1 and len(c.events) == 2


@pytest.mark.parametrize("latch", [False, True])
@pytest.mark.parametrize("early", ["during_previous_step", "in_latency_window"])
def test_latch_earlier_triggers(latch, early):
    n0, n1 = 384, 416
    c, _ = make_card([n0, n1, 448], [(0, 1, 1), (1, 2, 1, True), (2, 0, 1, False, True)], policy=SimPolicy(latch_earlier_triggers=latch))
    c.start()
    c.enable_trigger()
    c.external_trigger(0)
    early_t = LAT_625 + 100 if early == "during_previous_step" else 100
    c.external_trigger(early_t)
    c.advance(20000)
    o1 = LAT_625 + n0
    if latch:
        assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1), (o1 + n1, 2, 2)]
        assert c.state == "ready"
    else:
        assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1)]
        assert c.current_step() == 1 and c.state == "running"
        # a trigger during the wait step still ends it, at the end of its pass
        c.external_trigger(c.now + 5)
        phase = (c.now + 5 - o1) % n1
        c.advance(2000)
        assert ev_tuples(c.events)[-1] == (c.now - 2000 + 5 + n1 - phase, 2, 2)


def test_latched_trigger_is_used_up_once():
    """With latching, one early trigger ends one wait step, not two."""
    n = 384
    c, _ = make_card([n, n + 32], [(0, 1, 1), (1, 2, 1, True), (0, 3, 1, True), (1, 0, 1, False, True)], policy=SimPolicy(latch_earlier_triggers=True))
    c.start()
    c.enable_trigger()
    c.external_trigger(0)
    c.external_trigger(LAT_625 + 10)
    c.advance(50000)
    o1 = LAT_625 + n
    assert ev_tuples(c.events) == [(LAT_625, 0, 0), (o1, 1, 1), (o1 + n + 32, 2, 0)]


@pytest.mark.parametrize("latch", [False, True])
@pytest.mark.parametrize("second", ["same_pass", "in_setup_window"])
def test_trigger_too_late_for_a_pass_is_kept_for_the_next_wait_step(latch, second):
    """Setup window 50: a trigger within the last 50 samples of the pass that a first trigger ends does not
    belong to that pass; with latching it ends the next wait step, without it is dropped. Two triggers in
    time for the same pass are used up together."""
    n0, n1, n2 = 384, 416, 448
    steps = [(0, 1, 1), (1, 2, 1, True), (2, 3, 1, True), (0, 0, 1, False, True)]
    c, _ = make_card([n0, n1, n2], steps, policy=SimPolicy(latch_earlier_triggers=latch, endloop_setup_samples=50))
    c.start()
    c.enable_trigger()
    c.force_trigger()
    o1 = LAT_625 + n0
    e1 = o1 + n1
    c.external_trigger(o1 + 10)
    c.external_trigger(o1 + 20 if second == "same_pass" else e1 - 20)
    c.advance(e1 + 10 * n2)
    head = [(LAT_625, 0, 0), (o1, 1, 1), (e1, 2, 2)]
    if latch and second == "in_setup_window":
        assert ev_tuples(c.events) == head + [(e1 + n2, 3, 0)]
        assert c.state == "ready"
    else:
        assert ev_tuples(c.events) == head
        assert c.current_step() == 2 and c.state == "running"


@pytest.mark.parametrize("prefetch", [1, 0])
@pytest.mark.parametrize("cycles_before", [0, 1, 500_000])
def test_prefetch_policy(prefetch, cycles_before):
    n0, n1, n2 = 384, 416, 448
    period = 2 * n0 + n1
    c, data = make_card([n0, n1, n2], [(0, 1, 2), (1, 0, 1)], policy=SimPolicy(prefetch=prefetch))
    c.start()
    c.force_trigger()
    base = LAT_625 + cycles_before * period  # step 0 begins here
    c.advance(base + 100)  # step 0 plays (its first pass)
    assert c.current_step() == 0
    before = [(base - period, 0, 0), (base - n1, 1, 1), (base, 0, 0)]
    assert ev_tuples(c.events_between(base - period, base + 1)) == [e for e in before if e[0] >= LAT_625]
    c.write_step(1, word(2, 0, 1))  # step 1 now plays slot 2
    c.write_step(0, word(0, 1, 1))  # the current step: takes effect only on its next visit
    out = c.render(10000)
    t1 = base + 2 * n0
    if prefetch:  # step 1 was read when step 0 began: first visit plays the old entry
        want = [(base, 0, 0), (t1, 1, 1), (t1 + n1, 0, 0), (t1 + n1 + n0, 1, 2), (t1 + n1 + n0 + n2, 0, 0)]
        seq = [data[0], data[0], data[1], data[0], data[2], data[0]]
    else:
        want = [(base, 0, 0), (t1, 1, 2), (t1 + n2, 0, 0), (t1 + n2 + n0, 1, 2)]
        seq = [data[0], data[0], data[2], data[0], data[2]]
    assert ev_tuples(c.events_between(base, c.now))[: len(want)] == want
    ref = np.concatenate(seq)  # from the first sample of step 0; the render began at its sample 100
    assert np.array_equal(out[: len(ref) - 100, :1], ref[100:])


@pytest.mark.parametrize("prefetch", [1, 0])
@pytest.mark.parametrize("when", ["last_sample_of_step0", "first_sample_of_step1"])
def test_prefetch_boundaries(prefetch, when):
    n0, n1, n2 = 384, 416, 448
    c, _ = make_card([n0, n1, n2], [(0, 1, 1), (1, 0, 1)], policy=SimPolicy(prefetch=prefetch))
    c.start()
    c.force_trigger()
    t1 = LAT_625 + n0
    c.advance(t1 - 1 if when == "last_sample_of_step0" else t1)
    c.write_step(1, word(2, 0, 1))
    c.advance(5000)
    first_visit = ev_tuples(c.events)[1]
    new_takes_now = prefetch == 0 and when == "last_sample_of_step0"
    assert first_visit == (t1, 1, 2 if new_takes_now else 1)
    second = [e for e in ev_tuples(c.events) if e[1] == 1][1]
    assert second[2] == 2


@pytest.mark.parametrize("setup", [0, 1, 10, 500])
def test_endloop_setup_samples(setup):
    n1 = 416
    o1 = LAT_625 + 384
    for k_trig in (0, 1, 2):
        # trigger at (end of pass k_trig) - 1 - setup: just in time; one sample later: too late for that pass
        for late in (False, True):
            c, _ = make_card([384, n1, 448], [(0, 1, 1), (1, 2, 1, True), (2, 0, 1, False, True)], policy=SimPolicy(endloop_setup_samples=setup))
            c.start()
            c.enable_trigger()
            c.force_trigger()
            e_k = o1 + (k_trig + 1) * n1
            tr = e_k - 1 - setup + (1 if late else 0)
            if tr < o1:
                continue
            c.external_trigger(tr)
            c.advance(o1 + 6 * n1)
            # the pass ending at e is the last when the trigger is at or before e - 1 - setup
            j = 1
            while o1 + j * n1 - 1 - setup < tr:
                j += 1
            assert ev_tuples(c.events)[2] == (o1 + j * n1, 2, 2), (setup, k_trig, late)
            assert j == (k_trig + 2 if late else k_trig + 1)


# =============================================================================== 6. event-driven speed


def _ring_card(policy=None):
    sizes = [384, 416, 448]
    steps = [(0, 1, 3), (1, 2, 1), (2, 0, 2)]
    return make_card(sizes, steps, policy=policy)


def _ring_cycle(data):
    return np.concatenate([data[0]] * 3 + [data[1]] + [data[2]] * 2)


def _ring_events(a, b):
    """Step entries of the ring (3 x 384, 416, 2 x 448) started at LAT_625, with a <= sample < b."""
    period = 3 * 384 + 416 + 2 * 448
    offsets = [(0, 0, 0), (3 * 384, 1, 1), (3 * 384 + 416, 2, 2)]
    out = []
    k = max(0, (a - LAT_625) // period - 1)
    while LAT_625 + k * period < b:
        for off, step, seg in offsets:
            s = LAT_625 + k * period + off
            if a <= s < b:
                out.append((s, step, seg))
        k += 1
    return out


@pytest.mark.parametrize("seconds", [0.001, 0.37, 2.0])
def test_advance_seconds_then_render_matches_arithmetic(seconds):
    c, data = _ring_card()
    c.start()
    c.force_trigger()
    t0 = time.perf_counter()
    c.advance(int(seconds * FS) + 13)
    assert time.perf_counter() - t0 < 5.0
    now = c.now
    out = c.render(5000)
    cyc = _ring_cycle(data)
    idx = (np.arange(now, now + 5000) - LAT_625) % len(cyc)
    assert np.array_equal(out[:, :1], cyc[idx])
    # events in a range deep inside the skipped part expand exactly
    a = now // 2 + 7
    assert ev_tuples(c.events_between(a, a + 20000)) == _ring_events(a, a + 20000)
    assert ev_tuples(c.events_between(now - 3000, now + 5000)) == _ring_events(now - 3000, now + 5000)
    assert ev_tuples(c.events_between(0, 9000)) == _ring_events(0, 9000)
    # bounds exactly on step entries: a included, b excluded
    deep = _ring_events(a, a + 20000)
    lo, hi = deep[1][0], deep[-2][0]
    assert ev_tuples(c.events_between(lo, hi)) == deep[1:-2]
    assert ev_tuples(c.events_between(lo, lo + 1)) == [deep[1]]
    assert c.events_between(lo + 1, deep[2][0]) == []
    assert c.current_step() == _ring_events(0, c.now + 1)[-1][1]


def test_advance_matches_brute_force_render():
    """advance() (which skips whole cycles) and render() in small windows (which walks every step) agree."""
    total = 3_000_017
    a, _ = _ring_card()
    b, _ = _ring_card()
    for card in (a, b):
        card.start()
        card.force_trigger()
    a.advance(total)
    while b.now < total:
        b.render(min(65536, total - b.now))
    assert a.current_step() == b.current_step()
    assert np.array_equal(a.render(4000), b.render(4000))
    assert ev_tuples(a.events) == ev_tuples(b.events)
    assert ev_tuples(a.events) == _ring_events(0, a.now + 1)
    # skipping in several irregular chunks gives the same too
    c, data = _ring_card()
    c.start()
    c.force_trigger()
    for chunk in (1, 2047, 100_000, 3, 999_999, 1_897_967):
        c.advance(chunk)
    assert c.now == total
    cyc = _ring_cycle(data)
    want = np.zeros((4000, 2), np.int16)
    want[:, 0] = cyc[(np.arange(total, total + 4000) - LAT_625) % len(cyc), 0]
    assert np.array_equal(c.render(4000), want)
    assert ev_tuples(c.events) == ev_tuples(a.events)


def test_long_loop_then_wait_with_late_trigger():
    """A loop_n step of a million passes, then a wait step ended by a trigger seconds later."""
    n0, n1 = 384, 416
    c, data = make_card([n0, n1, 448], [(0, 1, 1_000_000), (1, 2, 1, True), (2, 0, 1)])
    c.start()
    c.enable_trigger()
    c.force_trigger()
    tr = int(2.5 * FS) + 3
    c.external_trigger(tr)
    c.advance(int(3 * FS))
    o1 = LAT_625 + 1_000_000 * n0
    leave = o1 + ((tr - o1) // n1 + 1) * n1
    ev = ev_tuples(c.events)
    assert ev[:3] == [(LAT_625, 0, 0), (o1, 1, 1), (leave, 2, 2)]
    assert ev[3] == (leave + 448, 0, 0)
    assert c.current_step() == 0


@pytest.mark.parametrize("prefetch", [1, 0])
def test_cycle_skipping_after_a_prefetched_rewrite(prefetch):
    """A step rewritten while the step before it plays (prefetch 1: the old entry plays once more) must not
    confuse the cycle skipping: advance() and a brute-force render() agree afterwards."""

    def run(brute):
        c, _ = make_card([384, 416], [(0, 1, 1), (1, 0, 1)], policy=SimPolicy(prefetch=prefetch))
        c.start()
        c.force_trigger()
        c.advance(LAT_625 + 100)
        c.write_step(1, word(1, 0, 3))  # step 1 now loops 3 times
        n = 200_000
        if brute:
            while n:
                n -= len(c.render(min(n, 5000)))
        else:
            c.advance(n)
        return c.render(3000), ev_tuples(c.events)

    out_skip, ev_skip = run(False)
    out_brute, ev_brute = run(True)
    # independent: after the first (possibly stale) visit of step 1 the cycle is 384 + 3 * 416
    t1 = LAT_625 + 384
    first_len = 416 if prefetch else 3 * 416
    want = [(LAT_625, 0, 0), (t1, 1, 1)]
    t = t1 + first_len
    while t < 200_000 + LAT_625 + 100 + 3000:
        want += [(t, 0, 0), (t + 384, 1, 1)]
        t += 384 + 3 * 416
    want = [e for e in want if e[0] <= 200_000 + LAT_625 + 100 + 3000]
    assert ev_brute == want
    assert ev_skip == want
    assert np.array_equal(out_skip, out_brute)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=random_programs(),
    n=st.integers(5000, 400_000),
    trig_frac=st.lists(st.floats(0, 1), max_size=8),
    policy=POLICIES,
    ops=st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=10),
)
def test_random_programs_advance_and_capture_in_chunks(program, n, trig_frac, policy, ops):
    """advance() over long stretches (skipping repeated cycles) interleaved with short captures: every captured
    window, the step playing, READY and the step entries equal the reference walk."""
    triggers = sorted({int(f * n) for f in trig_frac})
    steps = [(s.segment, s.next, s.loops, s.on_trigger, s.end) for s in program.steps]
    lengths = [s.n_samples for s in program.segments]
    events, passes, ready = ref_walk(
        steps,
        lengths,
        program.start_step,
        triggers,
        latency(program.sample_rate_hz),
        n + 1,
        endloop_check=policy.endloop_check,
        latch=policy.latch_earlier_triggers,
        setup=policy.endloop_setup_samples,
    )
    data = [s.data for s in program.segments]
    nch = program.n_channels

    def check_state(be):
        now = be.now
        entered = [e for e in events if e[0] <= now]
        assert be.current_step() == (entered[-1][1] if entered else program.start_step), now
        assert bool(be.sim.status() & sp.M2STAT_CARD_READY) == (ready is not None and ready <= now), now

    with SimBackend(program.card, policy=policy) as be:
        be.configure(sample_rate_hz=program.sample_rate_hz, n_channels=nch, stop_level="low", trigger="external")
        be.load(program)
        be.start()
        for t in triggers:
            be.schedule_trigger(t)
        for capture, frac in ops + [(False, 1.0)]:
            k = int(frac * (n - 3000 - be.now)) if be.now < n - 3000 else 0
            if capture:
                k = min(k, 4000)
                got = be.capture(k)
                np.testing.assert_array_equal(got, ref_output(passes, data, ready, be.now, nch, -32768, -32768, start=be.now - k))
            else:
                be.advance(samples=k)
            check_state(be)
        t = be.now
        got = be.capture(n - t)
        np.testing.assert_array_equal(got, ref_output(passes, data, ready, n, nch, -32768, -32768, start=t))
        check_state(be)
        assert ev_tuples(be.events) == [e for e in events if e[0] < n]


def test_backend_events_and_listeners_over_skipped_time():
    p = program_of(1, [seg_data(k, n, 1) for k, n in enumerate([384, 416, 448])], [(0, 1, 3), (1, 2, 1), (2, 0, 2)])
    seen = []
    with SimBackend(C2) as be:
        be.configure(sample_rate_hz=FS, n_channels=1)
        be.load(p)
        be.add_step_listener(seen.append)
        be.start(force_trigger=True)
        be.advance(seconds=0.01)
        n = be.now
        assert ev_tuples(be.events) == _ring_events(0, n)
        assert ev_tuples(seen) == _ring_events(0, n)


# =============================================================================== 7. live writes


def test_live_write_of_playing_slot_mixes_old_and_new():
    n0 = 384
    c, data = make_card([n0, 416], [(0, 1, 4), (1, 0, 1)])
    c.start()
    c.force_trigger()
    c.advance(LAT_625 + n0 + 100)  # pass 2 of step 0, its sample 100
    assert c.live_slot_writes == 0
    new = (-seg_data(0, n0, 1)).astype(np.int16)
    c.select_segment(0)
    c.write_segment_data(new)
    assert c.live_slot_writes == 1
    out = c.render(3 * n0 - 100 + 416 + n0)
    assert np.array_equal(out[: n0 - 100, :1], new[100:])  # the rest of this pass: new samples from now on
    assert np.array_equal(out[n0 - 100 : 3 * n0 - 100, :1], np.tile(new, (2, 1)))
    assert np.array_equal(out[3 * n0 - 100 : 3 * n0 - 100 + 416, :1], data[1])
    assert np.array_equal(out[3 * n0 - 100 + 416 :, :1], new)
    # a partial write (offset) into the playing slot: the pass in progress mixes old and new
    c2, data2 = make_card([n0, 416], [(0, 1, 4), (1, 0, 1)])
    c2.start()
    c2.force_trigger()
    c2.render(LAT_625 + 10)
    c2.select_segment(0)
    patch = np.full((50, 1), -7, np.int16)
    c2.write_segment_data(patch, offset=200)
    assert c2.live_slot_writes == 1
    out = c2.render(n0 - 10)
    want = data2[0][10:].copy()
    want[190:240] = -7
    assert np.array_equal(out[:, :1], want)


@pytest.mark.parametrize("cycles_before", [3, 1_000_000])
def test_live_write_after_long_advance(cycles_before):
    """The same after the card has skipped through a million repetitions of its cycle."""
    n0, n1 = 384, 416
    period = 2 * n0 + n1
    c, data = make_card([n0, n1], [(0, 1, 2), (1, 0, 1)])
    c.start()
    c.force_trigger()
    base = LAT_625 + cycles_before * period
    c.advance(base + 2 * n0 + 10)  # sample 10 of step 1 (slot 1)
    assert c.current_step() == 1
    new0 = (-seg_data(0, n0, 1)).astype(np.int16)
    c.select_segment(0)
    c.write_segment_data(new0)  # slot 0 is not playing now
    assert c.live_slot_writes == 0
    new1 = (-seg_data(1, n1, 1)).astype(np.int16)
    c.select_segment(1)
    c.write_segment_data(new1[200:], offset=200)  # slot 1 is playing: its second half changes
    assert c.live_slot_writes == 1
    out = c.render(n1 - 10 + 2 * n0 + n1)
    assert np.array_equal(out[:190, :1], data[1][10:200])
    assert np.array_equal(out[190 : n1 - 10, :1], new1[200:])
    assert np.array_equal(out[n1 - 10 : n1 - 10 + 2 * n0, :1], np.tile(new0, (2, 1)))
    mixed = np.concatenate([data[1][:200], new1[200:]])
    assert np.array_equal(out[n1 - 10 + 2 * n0 :, :1], mixed)


def test_write_of_slot_not_playing_is_not_live():
    c, data = make_card([384, 416], [(0, 1, 1), (1, 0, 1)])
    c.start()
    c.select_segment(0)
    c.write_segment_data(data[0])  # armed, nothing plays yet
    c.force_trigger()
    c.render(100)  # triggered, but the first sample is still 149 samples away
    c.write_segment_data(data[0])
    assert c.live_slot_writes == 0
    c.render(LAT_625)  # step 0 (slot 0) plays
    new1 = (-seg_data(1, 416, 1)).astype(np.int16)
    c.select_segment(1)
    c.write_segment_data(new1)
    assert c.live_slot_writes == 0
    out = c.render(384 + 416)
    k = 384 - (c.now - 384 - 416 - LAT_625)
    assert np.array_equal(out[k : k + 416, :1], new1)
    assert c.live_slot_writes == 0
    c.select_segment(0)
    c.write_segment_data(data[0])  # now slot 0 plays again (step 0 re-entered 100 samples before the end of that render)
    assert c.live_slot_writes == 1


# =============================================================================== 8. stop()


@pytest.mark.parametrize("level", [StopLevel.ZERO, StopLevel.LOW, StopLevel.HIGH, StopLevel.HOLDLAST, StopLevel.CUSTOM])
@pytest.mark.parametrize("use_render", [True, False])
def test_stop_goes_to_stop_level_from_that_sample(level, use_render):
    c, data = make_card([384, 416], [(0, 1, 2), (1, 0, 1)], n_channels=2, max_segments=2)
    for ch in range(2):
        c.set_stop_level(ch, level, -555 + ch)
    c.start()
    c.force_trigger()
    t = LAT_625 + 384 + 57
    if use_render:
        c.render(t)
    else:
        c.advance(t)
    assert c.current_step() == 0
    c.stop()
    assert c.status() & sp.M2STAT_CARD_READY and c.state == "ready"
    assert c.current_step() == 0
    out = c.render(2000)
    last = data[0][56]
    want = {
        StopLevel.ZERO: [0, 0],
        StopLevel.LOW: [-32768, -32768],
        StopLevel.HIGH: [32767, 32767],
        StopLevel.HOLDLAST: list(last),
        StopLevel.CUSTOM: [-555, -554],
    }[level]
    assert (out == want).all()
    assert ev_tuples(c.events) == [(LAT_625, 0, 0)]


@pytest.mark.parametrize("use_render", [True, False])
def test_stop_at_step_boundary_holds_last_sample(use_render):
    c, data = make_card([384, 416], [(0, 1, 1), (1, 0, 1)])
    c.set_stop_level(0, StopLevel.HOLDLAST)
    c.start()
    c.force_trigger()
    t = LAT_625 + 384  # step 1 begins at this very sample: nothing of it has played yet
    if use_render:
        c.render(t)
    else:
        c.advance(t)
    c.stop()
    assert (c.render(10)[:, 0] == data[0][-1, 0]).all()


def test_stop_before_first_trigger():
    c, _ = make_card([384, 416], [(0, 1, 1), (1, 0, 1)], start_step=1)
    c.set_stop_level(0, StopLevel.HIGH)
    c.start()
    assert c.current_step() == 1
    c.advance(1000)
    c.stop()
    assert c.state == "ready" and c.status() == sp.M2STAT_CARD_PRETRIGGER | sp.M2STAT_CARD_READY
    assert c.current_step() == 1  # replay never began: still the start step
    assert (c.render(500)[:, 0] == 32767).all()
    assert c.events == []


def test_stop_cancels_pending_triggers_and_restart():
    c, data = make_card([384, 416], [(0, 1, 1), (1, 0, 1, False, True)])
    c.start()
    c.enable_trigger()
    c.external_trigger(5000)
    c.advance(100)
    c.stop()
    assert not c.render(10000).any()  # the trigger at 5000 came after the stop: nothing plays
    assert c.events == [] and not c.status() & sp.M2STAT_CARD_TRIGGER
    # the card can be started again and plays the program from the start step; CARD_STOP disabled the
    # external trigger, so an edge before CARD_ENABLETRIGGER is ignored
    c.start()
    assert c.state == "armed" and not c.status() & sp.M2STAT_CARD_READY
    c.external_trigger(c.now + 3)
    assert not c.render(1000).any() and c.state == "armed"
    t = c.now
    c.force_trigger()
    out = c.render(LAT_625 + 384 + 416 + 100)
    assert np.array_equal(out[LAT_625 : LAT_625 + 384, :1], data[0])
    assert np.array_equal(out[LAT_625 + 384 : LAT_625 + 800, :1], data[1])
    assert not out[LAT_625 + 800 :].any()
    assert ev_tuples(c.events) == [(t + LAT_625, 0, 0), (t + LAT_625 + 384, 1, 1)]
    assert c.state == "ready"


def test_backend_stop_and_current_step():
    p = program_of(1, [seg_data(0, 384, 1), seg_data(1, 416, 1)], [(0, 1, 1), (1, 0, 1)])
    with SimBackend(C2) as be:
        be.configure(sample_rate_hz=FS, n_channels=1, stop_level="low")
        be.load(p)
        be.start(force_trigger=True)
        be.advance(samples=LAT_625 + 384 + 5)
        assert be.current_step() == 1 and be.is_running()
        be.stop()
        assert not be.is_running() and be.current_step() == 1
        assert (be.capture(100) == -32768).all()


def test_render_into_a_given_buffer_matches_a_fresh_render():
    card_a, card_b = (SimulatedCard(CARDS["M4i.6631-x8"]) for _ in range(2))
    for c in (card_a, card_b):
        c.set_channels(2)
        c.set_max_segments(2)
        for k, n in enumerate((192, 224)):
            c.select_segment(k)
            c.set_segment_size(n)
            c.write_segment_data((np.arange(2 * n, dtype=np.int16) + 1000 * k).reshape(n, 2))
        c.write_step(0, encode_step_entry(0, 1, 3))
        c.write_step(1, encode_step_entry(1, 0, 2))
        c.start()
        c.force_trigger()
    buf = np.full((5000, 2), 7, dtype=np.int16)
    got = card_a.render(5000, buf)
    assert got is buf
    assert np.array_equal(buf, card_b.render(5000))
    with pytest.raises(ValueError, match="out must be"):
        card_a.render(10, np.zeros((10, 1), dtype=np.int16))


# =============================================================================== standard replay modes


def _standard(mode: str, memsize: int, *, segsize: int = 0, loops: int = 1, n_channels: int = 1, seed: int = 0):
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_channels(n_channels)
    c.set_replay_mode(mode)
    c.set_memsize(memsize)
    if segsize:
        c.set_standard_segment_size(segsize)
    c.set_loops(loops)
    data = np.random.default_rng(seed).integers(-20000, 20000, size=(memsize, n_channels), dtype=np.int16)
    cut = min(100, memsize // 2)
    c.write_memory(data[:cut], offset=0)  # in two transfers, as DMA may bring it
    c.write_memory(data[cut:].reshape(-1), offset=cut)
    return c, data


def test_single_replay_plays_the_memory_loops_times_then_stops():
    c, data = _standard("single", 768, loops=2)
    c.start()
    c.force_trigger()
    lat = latency(c.sample_rate_hz)
    out = c.render(lat + 2 * 768 + 100)[:, 0]
    assert not out[:lat].any()
    np.testing.assert_array_equal(out[lat : lat + 1536], np.concatenate([data[:, 0]] * 2))
    assert not out[lat + 1536 :].any() and c.state == "ready" and c.ready_at == lat + 1536


def test_single_replay_with_loops_zero_plays_until_stopped():
    c, data = _standard("single", 384, loops=0)
    c.start()
    c.force_trigger()
    c.advance(10**9)  # a long while later (the walk repeats: this costs nothing)
    out = c.render(384)[:, 0]
    k = (c.now - 384 - latency(c.sample_rate_hz)) % 384
    np.testing.assert_array_equal(out, np.roll(data[:, 0], -k))
    assert c.state == "running"
    c.stop()
    assert c.state == "ready"


def test_multi_replay_plays_one_segment_per_trigger_and_ignores_triggers_while_playing():
    c, data = _standard("multi", 3 * 384, segsize=384, loops=1)
    c.set_trigger_masks(0x2, 0)  # EXT0
    c.start()
    c.enable_trigger()
    lat = latency(c.sample_rate_hz)
    triggers = [100, 150, 2000, 4000, 6000, 8000]  # 150 lands while segment 0 plays
    for t in triggers:
        c.external_trigger(t)
    out = c.render(14000)[:, 0]
    taken = [100, 2000, 4000]  # 3 segments once (LOOPS 1), then READY
    assert c.trigger_log == taken and c.state == "ready"
    want = np.zeros(14000, np.int16)  # ZERO stop level between segments
    for k, t in enumerate(taken):
        want[t + lat : t + lat + 384] = data[(k % 3) * 384 : (k % 3 + 1) * 384, 0]
    np.testing.assert_array_equal(out, want)


def test_gated_replay_plays_while_the_gate_is_open_and_goes_on_where_it_paused():
    c, data = _standard("gate", 768, loops=0)
    c.set_trigger_masks(0x4, 0)  # EXT1 only
    c.start()
    c.external_gate(50, 90, line=1)  # triggers not enabled yet: not seen
    c.enable_trigger()
    c.force_trigger()  # a software trigger opens no gate
    c.external_gate(100, 140, line=0)  # EXT0 is not in the mask: not seen
    c.external_gate(200, 700, line=1)
    c.external_gate(900, 1400, line=1)  # 500 + 500 > 768: wraps round the memory's end
    c.external_gate(1500, 2500, line=1)
    with pytest.raises(ProgramError, match="begins before the last one closes"):
        c.external_gate(2400, 2600, line=1)
    lat = latency(c.sample_rate_hz)
    out = c.render(1900)[:, 0]
    assert c.state == "running" and c.trigger_log == [200, 900, 1500]
    c.stop()  # mid-gate: nothing more plays
    out = np.concatenate([out, c.render(1000)[:, 0]])
    want = np.zeros(2900, np.int16)
    want[200 + lat : 700 + lat] = data[:500, 0]
    want[900 + lat : 1400 + lat] = np.concatenate([data[500:, 0], data[:232, 0]])
    want[1500 + lat : 1900] = data[232 : 232 + 1900 - (1500 + lat), 0]  # from where it paused, up to the stop
    np.testing.assert_array_equal(out, want)
    assert c.state == "ready"


def test_gated_replay_once_cuts_the_last_gate_at_the_memory_end_and_holds_between_gates():
    c, data = _standard("gate", 768, loops=1)
    with pytest.raises(CardError, match="gated replay takes 0"):
        c.set_loops(3)
    c.set_stop_level(0, StopLevel.HOLDLAST)
    c.set_trigger_masks(0x2, 0)
    c.start()
    c.enable_trigger()
    for a, b in ((100, 600), (1000, 1600), (2000, 2500)):
        c.external_gate(a, b)
    lat = latency(c.sample_rate_hz)
    out = c.render(3000)[:, 0]
    want = np.zeros(3000, np.int16)
    want[100 + lat : 600 + lat] = data[:500, 0]
    want[600 + lat : 1000 + lat] = data[499, 0]  # the last sample held in the pause
    want[1000 + lat : 1268 + lat] = data[500:, 0]  # the rest of the memory, then the gate is cut off
    want[1268 + lat :] = data[767, 0]
    np.testing.assert_array_equal(out, want)
    assert c.state == "ready" and c.ready_at == 1268 + lat and c.trigger_log == [100, 1000]


def test_standard_modes_take_the_manuals_limits_not_the_sequence_modes():
    # MEMSIZE from 32 in steps of 32; SEGMENTSIZE from 16 in steps of 16; multi and gate LOOPS 0..1
    c, data = _standard("single", 64, loops=2)
    c.start()
    c.force_trigger()
    lat = latency(c.sample_rate_hz)
    out = c.render(lat + 200)[:, 0]
    np.testing.assert_array_equal(out[lat : lat + 128], np.concatenate([data[:, 0]] * 2))
    assert not out[lat + 128 :].any()
    c, data = _standard("multi", 96, segsize=48, loops=0)
    c.set_trigger_masks(0x2, 0)
    c.start()
    c.enable_trigger()
    for t in (100, 1000, 2000):
        c.external_trigger(t)
    out = c.render(3000)[:, 0]
    for k, t in enumerate((100, 1000, 2000)):  # LOOPS 0: round the two segments until stopped
        np.testing.assert_array_equal(out[t + lat : t + lat + 48], data[(k % 2) * 48 : (k % 2 + 1) * 48, 0])
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_replay_mode("multi")
    for bad_mem in (16, 48, 100):
        with pytest.raises(CardError, match=r"MEMSIZE=.* must be a multiple of 32 in 32\.\."):
            c.set_memsize(bad_mem)
    for bad_seg in (8, 24):
        with pytest.raises(CardError, match="SEGMENTSIZE=.* must be a multiple of 16"):
            c.set_standard_segment_size(bad_seg)
    with pytest.raises(CardError, match="standard multi replay takes 0 .* or 1"):
        c.set_loops(2)


def test_standard_modes_are_checked_like_the_driver():
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    with pytest.raises(CardError, match="sequence mode"):
        c.set_memsize(384)  # still in sequence mode
    c.set_replay_mode("multi")
    for bad in (100, 383, 10**12):  # not a multiple of 32, or beyond the memory
        with pytest.raises(CardError, match="MEMSIZE"):
            c.set_memsize(bad)
    with pytest.raises(CardError, match="LOOPS"):
        c.set_loops(-1)
    with pytest.raises(CardError, match="MEMSIZE is not set"):
        c.start()
    c.set_memsize(3 * 416)
    c.set_standard_segment_size(384)
    with pytest.raises(CardError, match="not a whole number of segments"):
        c.start()
    with pytest.raises(CardError, match="do not fit"):
        c.write_memory(np.zeros(3 * 416 + 1, np.int16))
    with pytest.raises(CardError, match="not emulated"):
        c.set_replay_mode("fifo_gate")


def test_sequence_memory_comes_back_after_a_standard_mode():
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_max_segments(2)
    c.set_segment_size(384)
    c.write_segment_data(np.full(384, 7, np.int16))
    c.write_step(0, word(0, 0, 1))
    c.set_replay_mode("single")
    c.set_memsize(384)
    c.start()
    c.stop()
    c.set_replay_mode("sequence")
    assert c.max_segments == 2 and c.steps[0].segment == 0 and (c.segment_data(0) == 7).all()


def test_trigger_masks_select_ext0_ext1_software_and_their_and():
    def first_trigger(or_mask: int, and_mask: int, edges: list[tuple[int, int]]) -> list[int]:
        c, _ = _standard("single", 384)
        c.set_trigger_masks(or_mask, and_mask)
        c.start()
        c.enable_trigger()
        for t, line in edges:
            c.external_trigger(t, line)
        c.advance(5000)
        return c.trigger_log

    assert first_trigger(0x4, 0, [(50, 0), (70, 1)]) == [70]  # EXT1 only
    assert first_trigger(0x2 | 0x4, 0, [(50, 1), (70, 0)]) == [50]  # either
    assert first_trigger(0, 0x2 | 0x4, [(50, 0), (70, 1), (90, 0), (90, 1)]) == [90]  # both at once
    assert first_trigger(0x1, 0, [(50, 0)]) == [0]  # software: fires when triggers are enabled
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    with pytest.raises(CardError, match="AND mask"):
        c.set_trigger_masks(0, 0x1)  # the software trigger is not an AND source


def test_fifo_replay_plays_the_stream_as_supplied_and_stops_when_it_runs_dry():
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_replay_mode("fifo")
    c.set_loops(0)
    first, second = np.arange(1, 1001, dtype=np.int16), np.arange(1001, 1601, dtype=np.int16)
    c.supply(first)
    c.start()
    c.force_trigger()
    lat = latency(c.sample_rate_hz)
    out = [c.render(700)]
    c.supply(second)  # in time: the card has played 700 - lat samples of 1000
    out.append(c.render(2000))
    got = np.concatenate(out)[:, 0]
    want = np.zeros(2700, np.int16)
    want[lat : lat + 1600] = np.concatenate([first, second])
    np.testing.assert_array_equal(got, want)
    assert c.state == "ready" and c.underrun and c.status() & 0x400  # ran dry: M2STAT_DATA_OVERRUN
    c.supply(first)  # too late: the card takes no more
    assert not c.render(100)[:, 0].any()


def test_fifo_replay_with_loops_ends_after_that_many_segments_without_an_underrun():
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_replay_mode("fifo")
    c.set_standard_segment_size(384)
    c.set_loops(2)
    c.supply(np.ones(1000, np.int16))
    c.start()
    c.force_trigger()
    got = c.render(2000)[:, 0]
    lat = latency(c.sample_rate_hz)
    assert got[lat : lat + 768].tolist() == [1] * 768 and not got[lat + 768 :].any()
    assert c.state == "ready" and not c.underrun and c.fifo_fill() == 1000 - 768
    c2 = SimulatedCard(CARDS["M4i.6631-x8"])
    c2.set_replay_mode("fifo")
    c2.set_loops(3)
    with pytest.raises(CardError, match="SEGMENTSIZE"):
        c2.start()


def test_fifo_multi_plays_the_next_segment_per_trigger_and_underruns_on_a_short_one():
    c = SimulatedCard(CARDS["M4i.6631-x8"])
    c.set_replay_mode("fifo_multi")
    c.set_standard_segment_size(384)
    c.set_loops(0)
    c.set_trigger_masks(0x2, 0)
    stream = np.arange(1, 1 + 2 * 384 + 100, dtype=np.int16)  # two whole segments and a bit
    c.supply(stream)
    c.start()
    c.enable_trigger()
    for t in (0, 2000, 4000):
        c.external_trigger(t)
    got = c.render(6000)[:, 0]
    lat = latency(c.sample_rate_hz)
    want = np.zeros(6000, np.int16)
    want[lat : lat + 384] = stream[:384]
    want[2000 + lat : 2000 + lat + 384] = stream[384:768]
    want[4000 + lat : 4000 + lat + 100] = stream[768:]  # the third segment runs dry after 100 samples
    np.testing.assert_array_equal(got, want)
    assert c.trigger_log == [0, 2000, 4000] and c.underrun and c.state == "ready"
