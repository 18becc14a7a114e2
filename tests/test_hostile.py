"""Hostile files, shared lab PCs and odd arguments: each gets a clear awgrt error, nothing is lost
and nothing is run from a directory another user could write."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awgrt import Runtime
from awgrt.backends import SimBackend
from awgrt.errors import AWGRTError
from tests.test_runtime import FS, N_RENDER, T_WAIT, program


def test_flush_or_close_from_an_asynchronous_callback_raises_instead_of_deadlocking() -> None:
    be = SimBackend()
    rt = Runtime(be)
    seen: list[BaseException] = []
    done = threading.Event()

    def callback(info) -> None:
        for call in (rt.flush, rt.close):
            try:
                call()
            except AWGRTError as exc:
                seen.append(exc)
        done.set()

    rt.on_step("pulse", callback, asynchronous=True)
    rt.run(program(), sample_rate_hz=FS)
    be.schedule_trigger(0)
    be.schedule_trigger(T_WAIT)
    be.advance(samples=N_RENDER)
    assert done.wait(30)
    assert [("wait for that callback" in str(e)) for e in seen] == [True, True]
    rt.flush(timeout_s=30)  # the worker is free: nothing stuck, nothing blamed
    rt.close()


# ---------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "call",
    [
        lambda be: be.wait_ready(float("nan")),
        lambda be: be.wait_ready(float("inf")),
        lambda be: be.advance(seconds=float("nan")),
        lambda be: be.advance(samples=float("inf")),
        lambda be: be.schedule_trigger(sample=float("nan")),
        lambda be: be.schedule_trigger(after_s=float("inf")),
        lambda be: be.schedule_trigger(after=1.5),
    ],
)
def test_simbackend_refuses_times_that_never_come(call) -> None:
    from awgrt.errors import ProgramError

    with SimBackend() as be:
        Runtime(be, trigger="external").run(program(), sample_rate_hz=FS)
        with pytest.raises(ProgramError):
            call(be)


@pytest.mark.parametrize("kw", [{"serial_number": 0}, {"serial_number": True}, {"timeout_s": "x"}, {"timeout_s": float("nan")}, {"device": 0}])
def test_spcmbackend_refuses_bad_arguments_before_opening_anything(kw) -> None:
    from awgrt.backends import SpcmBackend
    from awgrt.errors import ProgramError

    with pytest.raises(ProgramError):
        SpcmBackend(**kw)


def test_spcmbackend_wait_ready_refuses_nan(emu) -> None:
    from awgrt.backends import SpcmBackend
    from awgrt.errors import ProgramError

    with SpcmBackend("/dev/spcm0") as be, pytest.raises(ProgramError, match="timeout_s"):
        be.wait_ready(float("nan"))


def test_open_stops_a_card_left_running_by_a_process_that_died(emu) -> None:
    """A process killed mid-upload leaves the card running: the next open stops it first."""
    from awgrt.backends import SpcmBackend

    dead = SpcmBackend("/dev/spcm0")
    dead.open()
    Runtime(dead, trigger="software").run(program(), sample_rate_hz=FS)
    card = emu.card(0)
    assert card.state in ("armed", "running")
    # the process dies: the kernel drops its handle and lock, nobody stops the card
    (handle,) = [h for h in emu.driver.open_handles() if emu.driver.path_of(h) == "/dev/spcm0"]
    emu.driver._handles.pop(handle)
    emu.driver._path_of.pop(handle, None)
    dead._card._closed = True
    dead._card = None
    dead._lock.release()
    dead._lock = None
    assert card.state in ("armed", "running")
    with SpcmBackend("/dev/spcm0") as be:
        assert card.state not in ("armed", "running") and not be.is_running()


# ---------------------------------------------------------------------------------- shared PCs


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    """The user's cache cannot be written and the system temp dir is ``tmp_path / "tmp"``."""
    import tempfile

    from awgrt.sim._emu_common import ENV_CACHE

    blocked = tmp_path / "home-cache"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.delenv(ENV_CACHE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


@pytest.mark.parametrize("plant", ["world-writable directory", "another user's directory", "symlinked library"])
def test_the_emulated_driver_is_never_loaded_from_a_directory_another_user_could_plant_it_in(no_cache, plant) -> None:
    import os

    from awgrt.sim._emu_build import _library_path, build_library, find_compiler

    if find_compiler() is None:
        pytest.skip("no C compiler")
    planted = _library_path(no_cache / f"awgrt-cache-{os.getuid()}")
    planted.parent.mkdir(parents=True)
    evil = no_cache / "evil.so"
    evil.write_bytes(b"not the library")
    if plant == "symlinked library":
        planted.symlink_to(evil)
    else:
        planted.write_bytes(b"not the library")
        if plant == "world-writable directory":
            os.chmod(planted.parent, 0o777)
        elif os.getuid() == 0:
            os.chown(planted.parent, 65534, 65534)
        else:
            pytest.skip("changing a directory's owner needs root")
    built = build_library()
    assert not built.is_symlink() and built.resolve() != evil.resolve()
    assert built != planted or plant == "symlinked library"  # a link in a private directory is replaced by the build
    assert built.read_bytes()[:4] == b"\x7fELF"
    st = os.stat(built.parent)
    assert st.st_uid == os.getuid() and not st.st_mode & 0o022  # this user's, writable by nobody else


# ---------------------------------------------------------------------------------- files


def _disk_full(*_args):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_program_save_leaves_the_previous_file_whole(tmp_path, monkeypatch) -> None:
    import os

    from awgrt import CompiledSequenceProgram
    from awgrt.errors import SerializationError

    with SimBackend() as be:
        p = Runtime(be, trigger="software").run(program(), sample_rate_hz=FS)
    path = tmp_path / "p.npz"
    p.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(SerializationError, match="No space left"):
        p.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["p.npz"]
    assert CompiledSequenceProgram.load(path).segments[0].digest == p.segments[0].digest
    with pytest.raises(SerializationError, match="is a directory"):
        p.save(tmp_path)


def test_a_failed_calibration_save_leaves_the_previous_file_whole(tmp_path, monkeypatch) -> None:
    import os

    from awgrt.calibration import AODCalibration
    from awgrt.errors import CalibrationError

    cal = AODCalibration((70e6, 110e6), (1.0, 0.1), (0.5,), card_mv=1000)
    path = tmp_path / "cal.json"
    cal.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(CalibrationError, match="No space left"):
        AODCalibration((70e6, 110e6), (1.0, 0.2), (0.5,), card_mv=1000).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and AODCalibration.load(path) == cal
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cal.json"]


def test_cli_save_to_a_directory_is_a_clear_error(tmp_path, capsys) -> None:
    from awgrt.cli import main
    from tests.test_runtime import wait_and_pulse

    src = tmp_path / "p.json"
    src.write_text(wait_and_pulse().build_intent_ir().to_json())
    assert main(["compile", str(src), "--save", str(tmp_path)]) != 0
    assert "is a directory" in capsys.readouterr().err


def _saved_program(tmp_path):
    with SimBackend() as be:
        p = Runtime(be, trigger="software").run(program(), sample_rate_hz=FS)
    return p, p.save(tmp_path / "p.npz")


def _rewrite_npz(src, dst, change_meta=None, extra=(), replace=None):
    """A copy of the saved program ``src`` with its metadata text changed, members replaced
    (``replace``: name -> bytes) and extra members."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "meta.npy" and change_meta is not None:
                from io import BytesIO

                meta = np.load(BytesIO(data))
                buf = BytesIO()
                np.save(buf, np.frombuffer(change_meta(meta.tobytes().decode()).encode(), dtype=np.uint8))
                data = buf.getvalue()
            zout.writestr(info.filename, (replace or {}).get(info.filename, data))
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def test_duplicate_json_keys_are_refused_naming_the_key(tmp_path) -> None:
    from awgrt import CompiledSequenceProgram, IntentIR
    from awgrt.calibration import AODCalibration
    from awgrt.errors import SerializationError
    from tests.test_runtime import wait_and_pulse

    text = wait_and_pulse().build_intent_ir().to_json(indent=None)
    doubled = text.replace('"time_s": ', '"time_s": 1.0, "time_s": ', 1)
    with pytest.raises(SerializationError, match="the key 'time_s' appears twice"):
        IntentIR.from_json(doubled)
    cal = AODCalibration((70e6, 110e6), (1.0, 0.1), (0.5,), card_mv=1000).to_json()
    with pytest.raises(SerializationError, match="the key 'safety' appears twice"):
        AODCalibration.from_json(cal.replace('"safety": ', '"safety": 0.5, "safety": ', 1))
    _, path = _saved_program(tmp_path)
    bad = _rewrite_npz(path, tmp_path / "dup-meta.npz", lambda m: m.replace('"start_step": ', '"start_step": 1, "start_step": ', 1))
    with pytest.raises(SerializationError, match="'meta'.*the key 'start_step' appears twice"):
        CompiledSequenceProgram.load(bad)


def test_a_saved_program_with_a_member_twice_is_refused(tmp_path) -> None:
    import warnings
    import zipfile

    from awgrt import CompiledSequenceProgram
    from awgrt.errors import SerializationError

    _, path = _saved_program(tmp_path)
    with zipfile.ZipFile(path) as z:
        seg0 = z.read("seg0.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it is asked to write
        bad = _rewrite_npz(path, tmp_path / "dup.npz", extra=[("seg0.npy", seg0)])
    with pytest.raises(SerializationError, match="'seg0.npy' appears twice"):
        CompiledSequenceProgram.load(bad)


@pytest.mark.parametrize(
    "what, change",
    [
        ("an integer of 5000 digits", lambda t: t.replace('"loops": 1', '"loops": ' + "9" * 5000, 1)),
        ("a 400-digit number", lambda t: t.replace('"loops": 1', '"loops": 1' + "0" * 400 + ".0", 1)),
        ("NaN", lambda t: t.replace('"loops": 1', '"loops": NaN', 1)),
        ("deep nesting", lambda t: t.replace('"phases": null', '"phases": ' + "[" * 5000 + "]" * 5000, 1)),
    ],
)
def test_numbers_and_nesting_beyond_reason_are_serialization_errors(what, change) -> None:
    from awgrt import IntentIR
    from awgrt.errors import SerializationError
    from tests.test_runtime import wait_and_pulse

    text = wait_and_pulse().build_intent_ir().to_json(indent=None)
    with pytest.raises(SerializationError):
        IntentIR.from_json(change(text))


def test_a_huge_sample_rate_in_a_saved_program_is_a_serialization_error(tmp_path) -> None:
    import re

    from awgrt import CompiledSequenceProgram
    from awgrt.errors import SerializationError

    _, path = _saved_program(tmp_path)
    for i, digits in enumerate(("1" * 400, "1" * 5000)):
        bad = _rewrite_npz(path, tmp_path / f"fs{i}.npz", lambda m, d=digits: re.sub(r'"sample_rate_hz": [0-9.e+]+', f'"sample_rate_hz": {d}', m))
        with pytest.raises(SerializationError, match="digits"):
            CompiledSequenceProgram.load(bad)


def test_non_utf8_files_are_serialization_errors(tmp_path, capsys) -> None:
    from awgrt.calibration import AODCalibration
    from awgrt.cli import main
    from awgrt.errors import SerializationError

    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"schema": "caf\xe9"}')
    with pytest.raises(SerializationError, match="not UTF-8"):
        AODCalibration.load(path)
    assert main(["compile", str(path)]) != 0
    assert "not UTF-8" in capsys.readouterr().err


def test_negative_npy_shapes_are_refused(tmp_path) -> None:
    import io

    import numpy as np

    from awgrt import CompiledSequenceProgram
    from awgrt.errors import SerializationError

    _, path = _saved_program(tmp_path)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i2", "fortran_order": False, "shape": (-20000, -1)})
    bad = _rewrite_npz(path, tmp_path / "neg.npz", replace={"seg0.npy": buf.getvalue() + b"\0" * 64})
    with pytest.raises(SerializationError, match="negative dimension"):
        CompiledSequenceProgram.load(bad)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_place_of_a_file_is_refused_at_once(tmp_path) -> None:
    import os

    from awgrt import CompiledSequenceProgram
    from awgrt.calibration import AODCalibration, load_data
    from awgrt.cli import main
    from awgrt.errors import AWGRTError

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    outcomes: list[object] = []

    def attempt() -> None:
        for load in (CompiledSequenceProgram.load, AODCalibration.load, load_data):
            try:
                load(fifo)
                outcomes.append("loaded")
            except AWGRTError as exc:
                outcomes.append(str(exc))
        outcomes.append(main(["compile", str(fifo)]))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "a loader blocked on a FIFO"
    assert all("FIFO" in o for o in outcomes[:3]) and outcomes[3] != 0, outcomes


# ---------------------------------------------------------------------------------- arguments, again


@pytest.mark.parametrize("amps", [[0.0, 1e-300], [1e-300, 1e-300], [5e-324, 0.3]])
def test_tiny_legal_amplitudes_compile_with_auto_phases(amps) -> None:
    import warnings

    import numpy as np

    from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir

    b = AWGProgramBuilder().logical_channel("H").define("d", logical_channel="H", freqs=[90e6, 95e6], amps=amps)
    b.segment("s").tones("H").use_def("d").hold(time=2e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no 0/0 on the way
        warnings.simplefilter("ignore", UserWarning)  # a silent channel is said, rightly
        q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=625e6), logical_channel_to_hardware_channel={"H": 0})
        p = compile_sequence_program(q, progress=False)
    phases = [s.phase0_cycles for s in q.segments[0].tracks[0].pieces[0].tones]
    assert all(np.isfinite(phases))
    assert np.max(np.abs(p.segments[0].data)) <= (round(0.3 * 32767) + 1 if max(amps) > 1e-3 else 0)


@pytest.mark.parametrize("mapping", ["H=²", "H=٣", "H=1,H=0", "=0", "H=99999"])
def test_cli_map_refuses_what_is_not_a_channel_index(mapping, tmp_path, capsys) -> None:
    from awgrt.cli import main
    from tests.test_runtime import wait_and_pulse

    src = tmp_path / "p.json"
    src.write_text(wait_and_pulse().build_intent_ir().to_json())
    with pytest.raises(SystemExit) as err:
        main(["compile", str(src), "--map", mapping])
    assert "--map" in str(err.value)


# ---------------------------------------------------------------------------------- the loaders' fuzz

#: Files drawn per CI run by the loaders' fuzz.
FILE_FUZZ_EXAMPLES = 200
NASTY = [
    b'"time_s": 1.0, "time_s": 2.0, ',
    b"9" * 5000,
    b"NaN",
    b"-1e400",
    b"[" * 3000 + b"]" * 3000,
    b"\xff\xfe\x00",
    b'"loops": -1, ',
    b"{}",
    b"\x00" * 64,
    b'"freqs_hz": [1e308, -0.0], ',
]


def _valid_files(root):
    """A valid file of each kind the loaders read: intent JSON, calibration JSON and CSV data, a saved program."""
    import numpy as np

    from awgrt.calibration import AODCalibration
    from tests.test_runtime import wait_and_pulse

    files = {"intent": root / "p.json", "calibration": root / "cal.json", "data": root / "aod.csv", "program": root / "p.npz"}
    files["intent"].write_text(wait_and_pulse().build_intent_ir().to_json())
    AODCalibration((70e6, 110e6), (1.0, 0.1), (0.5,), card_mv=1000).save(files["calibration"])
    f, a = np.meshgrid(np.linspace(70e6, 110e6, 5), np.linspace(0.05, 0.6, 8))
    files["data"].write_text("freq_hz,rf_amp,power\n" + "".join(f"{x},{y},{np.sin(y) ** 2}\n" for x, y in zip(f.ravel(), a.ravel())))
    with SimBackend() as be:
        Runtime(be, trigger="software").run(wait_and_pulse(), sample_rate_hz=FS).save(files["program"])
    return files


def _load(kind: str, path) -> None:
    from awgrt import CompiledSequenceProgram
    from awgrt._files import read_text
    from awgrt.calibration import AODCalibration, load_data
    from awgrt.ir.intent import IntentIR

    if kind == "intent":
        IntentIR.from_json(read_text(path, "intent program"))
    elif kind == "calibration":
        AODCalibration.load(path)
    elif kind == "data":
        load_data(path, full_scale_mv=1000)
    else:
        CompiledSequenceProgram.load(path)


@settings(max_examples=FILE_FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_every_loader_gives_an_awgrt_error_or_a_value(data) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        files = _valid_files(Path(d))
        kind = data.draw(st.sampled_from(sorted(files)))
        raw = bytearray(files[kind].read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            how = data.draw(st.sampled_from(["flip", "insert", "truncate", "nasty"]))
            at = data.draw(st.integers(0, max(0, len(raw) - 1)))
            if how == "flip" and raw:
                raw[at] = data.draw(st.integers(0, 255))
            elif how == "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            elif how == "truncate":
                del raw[at:]
            else:
                raw[at:at] = data.draw(st.sampled_from(NASTY))
        files[kind].write_bytes(bytes(raw))
        try:
            _load(kind, files[kind])
        except AWGRTError:
            pass


def test_cli_names_the_file_of_a_malformed_program(tmp_path, capsys) -> None:
    from awgrt.cli import main

    path = tmp_path / "bad.json"
    path.write_text('{"schema": "awgrt.intent"}')
    assert main(["compile", str(path)]) != 0
    err = capsys.readouterr().err
    assert str(path) in err and "logical_channels" in err
