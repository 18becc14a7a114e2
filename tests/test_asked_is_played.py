"""The card plays what was asked: cases where an earlier stage's decision was lost on the way to
the output, each judged on the int16 samples (or the card's registers), never on the report."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, Runtime, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import SimBackend
from awgrt.errors import ClipError, ClipWarning, ProgramError, SnapWarning, VerificationError, WrapWarning
from awgrt.readback import decode_step_word
from awgrt.spectrum import StopLevel
from tests.intent_oracle import check_program
from tests.test_runtime import FS, wait_and_pulse


def played_hz(x: np.ndarray, fs: float) -> float:
    """The frequency of the one tone in ``x``: the peak of a zero-padded, Hann-windowed spectrum,
    refined by a parabola through the peak bin and its neighbours."""
    x = np.asarray(x, dtype=np.float64)
    n = 16 * len(x)
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * fs / n


def compile_h(builder: AWGProgramBuilder, fs: float = 625e6):
    q = quantize_resolved_ir(builder.build_resolved_ir(sample_rate_hz=fs), logical_channel_to_hardware_channel={"H": 0})
    return compile_sequence_program(q, progress=False)


def segment_samples(program, name: str) -> np.ndarray:
    slot = next(i for i, s in enumerate(program.segments) if name in s.names)
    return program.segments[slot].data[:, 0]


def _held(mode: str, loops: int = 1) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90e6], amps=[0.3])
        .segment("w", mode=mode, loops=loops)
        .tones("H")
        .use_def("d")
        .hold(time=20e-6)
    )


JUMPS = {
    "at the start": lambda b: b.segment("j").tones("H").move(df=1e6, time=0).hold(time=20e-6),
    "after a hold": lambda b: b.segment("j").tones("H").hold(time=10e-6).move(df=1e6, time=0).hold(time=20e-6),
    "with an amplitude jump before": lambda b: b.segment("j").tones("H").ramp_amp_to(amps=0.2, time=0).move(df=1e6, time=0).hold(time=20e-6),
    "with an amplitude jump after": lambda b: b.segment("j").tones("H").move(df=1e6, time=0).ramp_amp_to(amps=0.2, time=0).hold(time=20e-6),
}


@pytest.mark.parametrize("mode, loops", [("wait_trig", 1), ("loop_n", 3)])
@pytest.mark.parametrize("case", sorted(JUMPS))
@pytest.mark.parametrize("last_step", ["ring", "end"])
def test_a_time0_jump_after_a_looped_hold_is_played(mode: str, loops: int, case: str, last_step: str) -> None:
    b = JUMPS[case](_held(mode, loops))
    b.last_step(last_step)
    p = compile_h(b)
    x = segment_samples(p, "j")
    tail = x[-10_000:]  # the last 16 us: after the jump in every case
    assert played_hz(tail, 625e6) == pytest.approx(91e6, abs=20e3)


def test_a_time0_jump_between_two_looped_holds_is_a_jump_not_a_sweep() -> None:
    b = JUMPS["at the start"](_held("wait_trig"))
    b.segment("w2", mode="wait_trig").tones("H").hold(time=20e-6)
    p = compile_h(b)
    x = segment_samples(p, "j")
    # the first and the last microseconds of the segment both play 91 MHz (within wrap snapping)
    assert played_hz(x[:2000], 625e6) == pytest.approx(91e6, abs=0.5e6)
    assert played_hz(x[-6000:], 625e6) == pytest.approx(91e6, abs=20e3)
    assert played_hz(segment_samples(p, "w2"), 625e6) == pytest.approx(91e6, abs=20e3)
    eased = [n for n in p.report.notes_of("frequency_eased") if n.segment == "j"]
    assert not eased, eased


# ---------------------------------------------------------------------------------- runtime


@pytest.fixture(params=["sim", "spcm"])
def backend(request, emu):
    if request.param == "sim":
        with SimBackend() as be:
            yield be
    else:
        from awgrt.backends import SpcmBackend

        with SpcmBackend("/dev/spcm0") as be:
            yield be


def _registers(backend) -> dict:
    """Output settings as the card holds them, read the backend's own way (the simulated card, or
    spcm's register reads)."""
    if isinstance(backend, SimBackend):
        c = backend.sim
        return {"amp": c.amplitude_mv[0], "stop": StopLevel(c.stop_levels[0]), "or_mask": c.trigger_or_mask}
    import spcm

    card = backend._card
    return {"amp": card.get_i(spcm.SPC_AMP0), "stop": StopLevel(card.get_i(206020)), "or_mask": card.get_i(spcm.SPC_TRIG_ORMASK)}


def test_a_new_runtimes_output_settings_reach_an_open_card(backend) -> None:
    Runtime(backend, amplitude_mv=1000, trigger="software").run(wait_and_pulse(), sample_rate_hz=FS)
    assert _registers(backend) == {"amp": 1000, "stop": StopLevel.ZERO, "or_mask": 0x1}
    rt = Runtime(backend, amplitude_mv=200, trigger="external", stop_level="high")
    rt.run(wait_and_pulse(0.4), sample_rate_hz=FS)
    assert _registers(backend) == {"amp": 200, "stop": StopLevel.HIGH, "or_mask": 0x2}
    assert any("output settings changed" in n for n in rt.last_report.notes)
    assert rt.verify() == ()
    # same program, only the settings change: still applied
    rt2 = Runtime(backend, amplitude_mv=300, trigger="external", stop_level="high")
    rt2.run(wait_and_pulse(0.4), sample_rate_hz=FS)
    assert rt2.last_report.upload_kind == "settings"
    assert _registers(backend)["amp"] == 300


def test_a_change_of_start_step_alone_is_uploaded(backend) -> None:
    rt = Runtime(backend, trigger="software")
    p = rt.run(wait_and_pulse(), sample_rate_hz=FS)
    assert rt.backend.read_back(len(p.steps), len(p.segments)).start_step == 0
    rt.run(dataclasses.replace(p, start_step=1))
    assert rt.last_report.upload_kind == "steps"
    assert rt.backend.read_back(len(p.steps), len(p.segments)).start_step == 1
    assert rt.verify() == ()


def test_verify_names_every_field_the_card_holds_differently(backend) -> None:
    rt = Runtime(backend, amplitude_mv=500, trigger="external")
    p = rt.run(wait_and_pulse(), sample_rate_hz=FS)
    assert rt.verify() == ()
    # change the card behind the runtime's back, register by register
    backend.configure(sample_rate_hz=FS, n_channels=1, amplitude_mv=700, stop_level="low", trigger="software")
    backend.load(dataclasses.replace(p, steps=(dataclasses.replace(p.steps[0], loops=2), *p.steps[1:])))
    with pytest.raises(VerificationError) as err:
        rt.verify()
    fields = {m.field for m in err.value.value}
    assert fields == {"channel 0 amplitude (mV)", "channel 0 stop level", "trigger source", "step 0 ('wait') segment, next, loops, on_trigger, end"}


def test_step_words_decode_bit_by_bit() -> None:
    word = (1 << 63) | (1 << 62) | (0xABCDE << 32) | (7 << 16) | 5
    assert decode_step_word(word) == (5, 7, 0xABCDE, True, True)
    assert decode_step_word(word - 2**64) == (5, 7, 0xABCDE, True, True)  # as the card reads back: negative int64


# ---------------------------------------------------------------------------------- clipping


def _loud(n: int = 20, amp: float = 0.2) -> AWGProgramBuilder:
    return (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=list(np.linspace(80e6, 100e6, n)), amps=[amp] * n, phases=[0.0] * n)
        .segment("loud")
        .tones("H")
        .use_def("d")
        .hold(time=20e-6)
    )


def test_clipping_warns_through_the_runtime_and_says_where() -> None:
    with SimBackend() as be, pytest.warns(ClipWarning, match=r"segment 'loud': \d+ samples clipped .*channel 0: \d+ samples, first at sample \d+"):
        p = Runtime(be, trigger="software").run(_loud(), sample_rate_hz=625e6)
    x = p.segments[0].data[:, 0].astype(int)
    at_limit = int(np.sum(np.abs(x) >= round(0.9 * 32767)))
    seg = p.report.segments[0]
    assert seg.clipped >= at_limit // 2 > 0
    assert seg.clipped_where[0][0] == 0 and "loud" in str(p.report).split("Clipping:")[1]


def test_clipping_can_be_an_error_everywhere(tmp_path) -> None:
    with SimBackend() as be, pytest.raises(ClipError, match="loud"):
        Runtime(be, trigger="software", clip_policy="error").run(_loud(), sample_rate_hz=625e6)
    with pytest.raises(ProgramError, match="clip_policy"):
        Runtime(SimBackend(), clip_policy="loud")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile_sequence_program(
            quantize_resolved_ir(_loud().build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0}),
            clip_policy="count",
            progress=False,
        )


def test_cli_clip_policy_error(tmp_path, capsys) -> None:
    from awgrt.cli import main

    path = tmp_path / "loud.json"
    path.write_text(_loud().build_intent_ir().to_json())
    assert main(["compile", str(path), "--clip-policy", "error"]) != 0
    assert "segment 'loud'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- ring edge


def test_ring_closing_never_bends_a_tone_in_a_sliver_of_padding() -> None:
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90.1234e6], amps=[0.3])
        .segment("w1", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=20.01e-6)
        .segment("r")
        .tones("H")
        .ramp_amp_to(amps=0.2, time=1500 / 625e6)
        .ramp_amp_to(amps=0.3, time=1517 / 625e6)  # ends 23 samples short of a legal length: only padding holds
    )
    with pytest.warns(WrapWarning, match="no hold outside looped segments"):
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0}, close_ring_hz=None)
    assert not [n for n in q.notes if n.kind == "ring_closed"]
    p = compile_sequence_program(q, progress=False)
    x = segment_samples(p, "r").astype(float)
    assert played_hz(x[-64:], 625e6) == pytest.approx(90.1234e6, abs=2e6)  # no excursion megahertz away at the end


def test_a_hold_taken_by_an_ease_still_closes_the_ring_in_its_second_half() -> None:
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[90.1234e6, 97.3e6], amps=[0.3, 0.3])
        .segment("w1", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=20.01e-6)
        .segment("h")
        .tones("H")
        .hold(time=113e-6)
        .segment("w2", mode="wait_trig")
        .tones("H")
        .hold(time=7.003e-6)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapWarning)
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0}, close_ring_hz=None)
    closed = [n for n in q.notes if n.kind == "ring_closed"]
    assert len(closed) == 2 and all(abs(n.realised) < 20e3 for n in closed), [n.detail for n in closed]
    p = compile_sequence_program(q, progress=False)
    verdict = check_program(b.build_intent_ir(), p)
    assert verdict.windows and not verdict.findings, verdict.findings[:5]
    ring = next(e for e in p.report.boundaries if e.kind == "ring")
    assert not [j for j in ring.tones if j.kind == "phase"]


# ---------------------------------------------------------------------------------- bad indices


@pytest.mark.parametrize(
    "op",
    [
        lambda b: b.move(df=1e6, time=1e-6, idxs=1.5),
        lambda b: b.move(df=1e6, time=0, idxs=1.5),
        lambda b: b.move(df=[1e6, 2e6], time=1e-6, idxs=[0, 1.5]),
        lambda b: b.ramp_amp_to(amps=0.1, time=1e-6, idxs=np.float64(1.5)),
        lambda b: b.remove_tones(idxs=1.5),
        lambda b: b.remap_from_def(target_def="d", src=[1.5], dst=[0], time=1e-6),
        lambda b: b.add_tone(freq=92e6, amp=0.1, at=1.5),
        lambda b: b.move(df=1e6, time=1e-6, idxs=float("nan")),
    ],
)
def test_a_fractional_tone_index_is_an_awgrt_error_naming_the_op(op) -> None:
    from awgrt.errors import AWGRTError

    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6, 91e6], amps=[0.3, 0.3]).segment("s").tones("H").use_def("d")
    with pytest.raises(AWGRTError) as err:
        op(b).hold(time=1e-6).build_resolved_ir(sample_rate_hz=625e6)
    assert err.value.segment == "s" and err.value.op is not None
