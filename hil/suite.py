"""The validation suite: programs built to exercise what can go wrong, and what to check in each.

Every program plays on both AWG channels as a tweezer lab drives them: logical ``H`` (hardware
channel 0) and ``V`` (hardware channel 1), each with its own tones doing the same kind of thing at
the same boundaries; every per-channel check runs on each, and the pair is checked for skew at a
boundary where both add a tone (they must step together) and for crosstalk of each channel's
tones into the other. The first trigger, at
:data:`FIRST_TRIGGER` card samples after the start command, starts replay and is t = 0 of the
scope record; boundary times come from the compiled step table and that trigger
(:mod:`hil.timeline`). Programs are short (tens of microseconds) so a whole run takes seconds.

==================  =====================================================================
program             exercises
==================  =====================================================================
hold_move_hold      segment boundaries between holds and a linear frequency move
loop_n_hold         a counted loop (wraps) between two once segments
wait_many_tones     an 8-tone hold looping until a trigger, then leaving it
amp_ramp            an amplitude ramp and the hold after it
add_remove          a tone added and removed at segment boundaries
==================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from awgrt import AWGProgramBuilder

from .errors import RigConfigError

#: Card sample of the first (replay-starting) trigger, counted from the start command.
FIRST_TRIGGER = 1000
#: Synthesis scaling used by the suite (awgrt's defaults).
GAIN, CLIP, FULL_SCALE = 1.0, 0.9, 32767
#: Samples per pass of the looped segments.
LOOP_SAMPLES = 1024
#: The AWG channels the suite plays on, and their hardware channels.
CHANNELS = {"H": 0, "V": 1}
CHANNEL, HARDWARE = "H", 0  # the first one


@dataclass(frozen=True)
class Check:
    """One check beyond those every program gets (phase, amplitude and frequency continuity at
    every boundary in the record, and a glitch scan of all of it: see :mod:`hil.runner`): ``kind``
    is ``phase_jump`` (at the boundary ``after`` -> ``segment``), ``wrap`` (spurs and phase step per wrap of looped ``segment``), ``tone`` (frequency and
    amplitude on ``segment``) or ``trajectory`` (chirp rate, phase residual and glitch scan
    over ``segment``), each on every channel; or, on the pair of channels, ``skew`` (the time
    between the channels' tone additions at ``after`` -> ``segment``) or ``crosstalk`` (each
    channel's tones on the other's output in ``segment``)."""

    kind: str
    segment: str
    after: str | None = None


@dataclass(frozen=True)
class SuiteProgram:
    """A program of the suite: how to build it at a sample rate (``build(fs)``), its extra triggers (card samples after the
    first), how long to record after the first trigger (s), its checks, and which segment each
    injectable fault targets."""

    name: str
    build: Callable[[float], AWGProgramBuilder] = field(repr=False)
    checks: tuple[Check, ...]
    record_s: float
    later_triggers: tuple[int, ...] = ()
    fault_targets: Mapping[str, str] = field(default_factory=dict)

    @property
    def triggers(self) -> tuple[int, ...]:
        return (FIRST_TRIGGER, *(FIRST_TRIGGER + t for t in self.later_triggers))


def _tone(freqs: list[float], amps: list[float], v_freqs: list[float] | None = None) -> AWGProgramBuilder:
    """Both channels with their start tones: ``freqs`` on H; on V ``v_freqs`` (default: each H
    tone 21 MHz lower, so their tones never share a frequency and crosstalk is measurable)."""
    v_freqs = v_freqs or [f - 21e6 for f in freqs]
    b = AWGProgramBuilder().logical_channel("H").logical_channel("V")
    b.define("start", logical_channel="H", freqs=freqs, amps=amps, phases=[0.0] * len(freqs))
    b.define("vstart", logical_channel="V", freqs=v_freqs, amps=amps, phases=[0.0] * len(v_freqs))
    return b


def hold_move_hold(fs: float) -> AWGProgramBuilder:
    return (
        _tone([100e6], [0.4])
        .segment("hold_a")
        .tones("H")
        .use_def("start")
        .tones("V")
        .use_def("vstart")
        .hold(time=3.2e-6)
        .segment("hold_b")
        .hold(time=2.4e-6)
        .segment("move")
        .tones("H")
        .move(df=3e6, time=12.8e-6, kind="linear")
        .tones("V")
        .move(df=-2.5e6, time=12.8e-6, kind="linear")
        .segment("hold_c")
        .hold(time=3.2e-6)
        .last_step("end")
    )


def loop_n_hold(fs: float) -> AWGProgramBuilder:
    """Both tones on the loop's grid fs / LOOP_SAMPLES (100.1 and 80.0 MHz at 625 MS/s): the loop
    wraps seamlessly as asked, with no snapping."""
    return (
        _tone([164 * fs / LOOP_SAMPLES], [0.4], [131 * fs / LOOP_SAMPLES])
        .segment("lead")
        .tones("H")
        .use_def("start")
        .tones("V")
        .use_def("vstart")
        .hold(time=1.6e-6)
        .segment("loop", mode="loop_n", loops=16)
        .hold(time=LOOP_SAMPLES / fs)
        .segment("tail")
        .hold(time=2.4e-6)
        .last_step("end")
    )


def wait_many_tones(fs: float) -> AWGProgramBuilder:
    """Eight tones on the grid fs / LOOP_SAMPLES, 14 grid steps apart (73 .. 133 MHz at 625 MS/s),
    so the loop needs no snapping and intermodulation stays clear of the wrap-spur lines."""
    freqs = [(120 + 14 * i) * fs / LOOP_SAMPLES for i in range(8)]
    v_freqs = [(127 + 14 * i) * fs / LOOP_SAMPLES for i in range(4)]  # V: four tones between H's
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("grid", logical_channel="H", freqs=freqs, amps=[0.08] * 8, phases="auto")
        .define("vgrid", logical_channel="V", freqs=v_freqs, amps=[0.12] * 4, phases="auto")
        .segment("wait", mode="wait_trig")
        .tones("H")
        .use_def("grid")
        .tones("V")
        .use_def("vgrid")
        .hold(time=LOOP_SAMPLES / fs)
        .segment("after")
        .hold(time=4.8e-6)
        .last_step("end")
    )


def amp_ramp(fs: float) -> AWGProgramBuilder:
    return (
        _tone([100e6], [0.2])
        .segment("low")
        .tones("H")
        .use_def("start")
        .tones("V")
        .use_def("vstart")
        .hold(time=1.6e-6)
        .segment("ramp")
        .tones("H")
        .ramp_amp_to(amps=0.5, time=3.2e-6, kind="min_jerk")
        .tones("V")
        .ramp_amp_to(amps=0.45, time=3.2e-6, kind="min_jerk")
        .segment("high")
        .hold(time=4.8e-6)
        .last_step("end")
    )


def add_remove(fs: float) -> AWGProgramBuilder:
    return (
        _tone([100e6], [0.35])
        .segment("one")
        .tones("H")
        .use_def("start")
        .tones("V")
        .use_def("vstart")
        .hold(time=2.4e-6)
        .segment("two")
        .tones("H")
        .add_tone(freq=93e6, amp=0.35, phase=0.0)
        .tones("V")
        .add_tone(freq=93e6, amp=0.35, phase=0.0)  # the same tone as H: the skew check compares them
        .hold(time=2.4e-6)
        .segment("back")
        .tones("H")
        .remove_tones(idxs=[1])
        .tones("V")
        .remove_tones(idxs=[1])
        .hold(time=2.4e-6)
        .last_step("end")
    )


SUITE: tuple[SuiteProgram, ...] = (
    SuiteProgram(
        "hold_move_hold",
        hold_move_hold,
        (
            Check("tone", "hold_a"),
            Check("trajectory", "move"),
            Check("crosstalk", "hold_a"),
        ),
        record_s=22.9e-6,
        fault_targets={"phase-jump": "hold_b", "chirp-rate": "move"},
    ),
    SuiteProgram(
        "loop_n_hold",
        loop_n_hold,
        (Check("wrap", "loop"),),
        record_s=31e-6,
        fault_targets={"wrap-delta": "loop"},
    ),
    SuiteProgram(
        "wait_many_tones",
        wait_many_tones,
        (Check("wrap", "wait"), Check("tone", "after")),
        record_s=107e-6,
        later_triggers=(62_500,),  # 60 passes: the wrap-spur floor of eight weak tones sits 15 dB below -60 dBc
        fault_targets={"wrap-delta": "wait"},
    ),
    SuiteProgram(
        "amp_ramp",
        amp_ramp,
        (Check("tone", "high"), Check("trajectory", "ramp")),
        record_s=10.5e-6,
    ),
    SuiteProgram(
        "add_remove",
        add_remove,
        (Check("tone", "two"), Check("skew", "two", after="one")),
        record_s=8e-6,
    ),
)


def program_named(name: str) -> SuiteProgram:
    for p in SUITE:
        if p.name == name:
            return p
    raise RigConfigError(f"no suite program {name!r} (known: {', '.join(p.name for p in SUITE)})")
