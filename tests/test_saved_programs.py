"""A saved program keeps its intent program and report; a loaded one runs as it is; the README's
JSON program is what ``awgrt compile`` reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from awgrt import CompiledSequenceProgram, Runtime
from awgrt.backends import SimBackend
from awgrt.cli import main as awgrt_main
from awgrt.errors import ProgramError, SerializationError
from awgrt.ir.intent import IntentIR
from tests.test_runtime import wait_and_pulse

FS = 625e6
ROOT = Path(__file__).resolve().parents[1]


def test_a_saved_program_keeps_its_intent_and_report_and_runs_again_as_it_is(tmp_path):
    with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt:
        compiled = rt.run(wait_and_pulse(), sample_rate_hz=FS, start=False)
        assert compiled.intent == wait_and_pulse().build_intent_ir()
        path = compiled.save(tmp_path / "p.npz")
    loaded = CompiledSequenceProgram.load(path)
    assert loaded.intent == compiled.intent and loaded.intent.digest == compiled.intent.digest
    assert loaded.report is None and loaded.report_text == compiled.report.format(detail=True)
    assert "awgrt compile report" in loaded.report_text

    outputs = []
    for source in (wait_and_pulse(), loaded):  # compiled afresh, and the file as it is
        with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt:
            rt.run(source, sample_rate_hz=FS)
            card.schedule_trigger(1000)
            card.schedule_trigger(5000)
            outputs.append(card.capture(20_000))
    assert rt.last_report.upload_kind == "full" and "uploaded as it is" in str(rt.last_report)
    assert np.array_equal(outputs[0], outputs[1]) and np.abs(outputs[0]).max() > 5000


def test_a_loaded_program_for_another_rate_or_mapping_is_refused(tmp_path):
    with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt:
        path = rt.run(wait_and_pulse(), sample_rate_hz=FS, start=False).save(tmp_path / "p.npz")
    loaded = CompiledSequenceProgram.load(path)
    with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt, pytest.raises(ProgramError, match="compile its intent program again"):
        rt.run(loaded, sample_rate_hz=500e6)
    with SimBackend("M4i.6631-x8") as card, Runtime(card, logical_channel_to_hardware_channel={"H": 1}) as rt:
        with pytest.raises(ProgramError, match="maps channels"):
            rt.run(loaded)


def test_a_corrupt_kept_intent_is_a_serialization_error(tmp_path):
    import json
    import zipfile

    with SimBackend("M4i.6631-x8") as card, Runtime(card) as rt:
        path = rt.run(wait_and_pulse(), sample_rate_hz=FS, start=False).save(tmp_path / "p.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["intent"]["segments"][0]["loops"] = -3
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    with bad.open("wb") as fh:
        np.savez(fh, **arrays)
    assert zipfile.is_zipfile(bad)
    with pytest.raises(SerializationError, match="meta.intent"):
        CompiledSequenceProgram.load(bad)


def test_the_readme_json_program_compiles_with_awgrt_compile(tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```json\n(.*?)```", text, re.S).group(1)
    IntentIR.from_json(block)  # exactly the documented shape
    program = tmp_path / "program.json"
    program.write_text(block)
    assert awgrt_main(["compile", str(program), "--save", str(tmp_path / "p.npz")]) == 0
    assert CompiledSequenceProgram.load(tmp_path / "p.npz").intent == IntentIR.from_json(block)
    assert awgrt_main(["compile", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the program file" in capsys.readouterr().err
