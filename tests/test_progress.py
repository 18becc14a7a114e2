"""The progress bar: it advances inside long segments, and writes clean lines to a log."""

from __future__ import annotations

import io
import re

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt._progress import Progress
from awgrt.compiler import synth

FS = 625e6


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_plain_line_per_tenth_and_a_terminal_one_redrawn_bar():
    log = io.StringIO()
    with Progress(1000, "work", delay_s=0.0, stream=log) as bar:
        for _ in range(1000):
            bar.advance()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 9 <= len(lines) <= 12
    assert lines[-1].startswith("work: 100% after")
    tty = Tty()
    with Progress(1000, "work", delay_s=0.0, stream=tty) as bar:
        bar.advance(500)
    assert tty.getvalue().startswith("\rwork [") and tty.getvalue().endswith("\n")


def test_synthesis_reports_progress_block_by_block_inside_one_long_segment(monkeypatch):
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6 + 1e6 * i for i in range(16)], amps=[0.05] * 16)
        .segment("long")
        .tones("H")
        .use_def("d")
        .move(df=1e6, time=2e-3)  # one segment of 1.25 M samples
        .last_step("end")
    )
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    seen = []
    real = synth.synthesize

    def spy(*args, **kwargs):
        on_block = kwargs["on_block"]
        kwargs["on_block"] = lambda n: (seen.append(n), on_block(n))
        return real(*args, **kwargs)

    monkeypatch.setattr("awgrt.compiler.compile.synthesize", spy)
    compile_sequence_program(q, progress=False, workers=2)
    assert len(seen) == -(-q.segments[0].n_samples // synth.BLOCK) > 10 and sum(seen) == q.segments[0].n_samples


def test_the_library_logs_and_never_prints(caplog, capsys, monkeypatch):
    import logging

    from awgrt import Runtime
    from awgrt.backends import SimBackend

    for name in ("awgrt", "hil"):  # as a fresh application has them (an in-process CLI call adds its own)
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [h for h in logger.handlers if isinstance(h, logging.NullHandler)])
    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6], amps=[0.2]).segment("s").tones("H").use_def("d").hold(time=2e-6)
    with caplog.at_level(logging.INFO, logger="awgrt"), SimBackend() as card, Runtime(card) as rt:
        rt.run(b, sample_rate_hz=FS)
    assert any(r.name == "awgrt.runtime" and "upload: full" in r.getMessage() for r in caplog.records)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_the_cli_shows_the_log_when_asked(capsys):
    from awgrt.cli import main

    assert main(["-v", "demo", "--no-play"]) == 0
    err = capsys.readouterr().err
    assert "awgrt.compiler.compile: INFO: compiled" in err and "DEBUG" not in err  # debug lines need -vv
    assert main(["-vv", "demo", "--no-play"]) == 0
    assert "awgrt.compiler.compile: DEBUG: synthesised" in capsys.readouterr().err


def test_the_bar_says_how_long_is_left_and_what_is_in_hand():
    log = io.StringIO()
    with Progress(100, "synthesising", delay_s=0.0, stream=log) as bar:
        for i in range(100):
            bar.note = f"segment 's{i // 50}'"
            bar.advance()
    lines = log.getvalue().splitlines()
    middle = next(line for line in lines if line.startswith("synthesising:  50%"))
    assert ", about " in middle and " s left: segment 's" in middle
    assert lines[-1].startswith("synthesising: 100% after") and "left" not in lines[-1] and "segment" not in lines[-1]


def test_quantizing_shows_a_bar_naming_each_stage_when_asked_and_none_when_not(monkeypatch):
    import awgrt.compiler.quantize as quantize

    drawn = []

    class Shown(Progress):  # the same bar, drawn from the first unit on (no second of waiting) into a buffer
        def __init__(self, total, desc, *, enabled=True, **_):
            super().__init__(total, desc, enabled=enabled, delay_s=0.0, stream=io.StringIO())
            drawn.append(self)

    monkeypatch.setattr(quantize, "Progress", Shown)
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("d", logical_channel="H", freqs=[80e6 + 1e6 * i for i in range(8)], amps=[0.05] * 8, phases="auto")
        .segment("idle", mode="wait_trig")
        .tones("H")
        .use_def("d")
        .hold(time=10e-6)
    )
    quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS))
    text = drawn[0].stream.getvalue()
    assert drawn[0].desc == "quantizing" and drawn[0].done == drawn[0].total == 4  # the last stage is done when it closes
    for stage in (r"25% after \S+ s, about \S+ s left: the ring edge", r"50% after \S+ s, about \S+ s left: assigning phases", "checking every edge"):
        assert re.search(stage, text), text
    quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), progress=False)
    assert drawn[1].stream.getvalue() == ""
