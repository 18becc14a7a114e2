"""Loading a saved program treats the file as untrusted input (``awgrt._savefile``)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, CompiledSequenceProgram, compile_sequence_program, quantize_resolved_ir
from awgrt.errors import AWGRTError, SerializationError

FS = 625e6


@pytest.fixture(scope="module")
def program():
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .logical_channel("V")
        .define("h", logical_channel="H", freqs=[90e6], amps=[0.3], phases=[0.0])
        .define("v", logical_channel="V", freqs=[100e6], amps=[0.3], phases=[0.0])
        .segment("a", mode="wait_trig")
        .tones("H")
        .use_def("h")
        .tones("V")
        .use_def("v")
        .hold(time=1.6e-6)
        .segment("b")
        .tones("H")
        .move(df=1e6, time=1e-6)
    )
    return compile_sequence_program(quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS)), progress=False)


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return path


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _with_seg0(tmp_path, program, a):
    good = program.save(tmp_path / "good.npz")
    members = _members(good)
    members["seg0.npy"] = _npy(a)
    return _write(tmp_path / "bad.npz", members)


def test_round_trip_is_exact(tmp_path, program):
    again = CompiledSequenceProgram.load(program.save(tmp_path / "p.npz"))
    assert again.digest == program.digest
    assert all(np.array_equal(a.data, b.data) and a.data.dtype == np.int16 and not b.data.flags.writeable for a, b in zip(program.segments, again.segments))


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(40000.0, np.float64), (40000, np.int32), (np.nan, np.float64), (-40000, np.int64), (0.5, np.float32), (70000, np.uint32)],
)
def test_values_that_are_not_exact_int16_are_refused(tmp_path, program, value, dtype):
    a = np.array(program.segments[0].data, dtype=dtype)
    a[3, 1] = value
    with pytest.raises(SerializationError) as exc:
        CompiledSequenceProgram.load(_with_seg0(tmp_path, program, a))
    assert "bad.npz" in str(exc.value) and "'seg0'" in str(exc.value) and "sample 3 channel 1" in str(exc.value)


def test_an_exact_cast_is_accepted(tmp_path, program):
    for dtype in (np.int32, np.float64, np.dtype(">i2")):
        a = np.array(program.segments[0].data, dtype=dtype)
        loaded = CompiledSequenceProgram.load(_with_seg0(tmp_path, program, a))
        assert loaded.segments[0].data.dtype == np.int16 and np.array_equal(loaded.segments[0].data, program.segments[0].data)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m.pop("sample_rate_hz"), "meta.sample_rate_hz"),
        (lambda m: m.__setitem__("n_channels", "two"), "meta.n_channels"),
        (lambda m: m.__setitem__("segments", {"a": 1}), "meta.segments"),
        (lambda m: m["segments"][0].__setitem__("clipped", [0.5]), "meta.segments[0].clipped"),
        (lambda m: m["steps"].__setitem__(0, [0, 1]), "meta.steps[0]"),
        (lambda m: m["steps"][0].__setitem__(3, "yes"), "meta.steps[0]"),
        (lambda m: m.__setitem__("schema", "other"), "meta.schema"),
    ],
)
def test_malformed_metadata_names_the_field(tmp_path, program, edit, field):
    members = _members(program.save(tmp_path / "good.npz"))
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())
    edit(meta)
    members["meta.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(SerializationError) as exc:
        CompiledSequenceProgram.load(_write(tmp_path / "bad.npz", members))
    assert repr(field) in str(exc.value) and "bad.npz" in str(exc.value)


def test_meta_that_is_not_json_and_a_wrong_shape(tmp_path, program):
    members = _members(program.save(tmp_path / "good.npz"))
    members["meta.npy"] = _npy(np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(SerializationError, match="'meta'.*not valid JSON"):
        CompiledSequenceProgram.load(_write(tmp_path / "bad.npz", members))
    with pytest.raises(SerializationError, match=r"'seg0'.*shape \(10, 3\)"):
        CompiledSequenceProgram.load(_with_seg0(tmp_path, program, np.zeros((10, 3), dtype=np.int16)))


def test_an_absurd_shape_is_refused_before_allocating(tmp_path, program):
    members = _members(program.save(tmp_path / "good.npz"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i2", "fortran_order": False, "shape": (10**12, 2)})
    members["seg0.npy"] = header.getvalue() + b"\0" * 64
    path = _write(tmp_path / "huge.npz", members)
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError, match="'seg0'.*needs 4000000000000 bytes"):
            CompiledSequenceProgram.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_a_truncated_file_is_a_serialization_error(tmp_path, program):
    whole = program.save(tmp_path / "whole.npz").read_bytes()
    for cut in (10, len(whole) // 2, len(whole) - 30):
        (tmp_path / "cut.npz").write_bytes(whole[:cut])
        with pytest.raises(SerializationError, match="cut.npz"):
            CompiledSequenceProgram.load(tmp_path / "cut.npz")


def test_a_member_claiming_more_than_the_file_holds(tmp_path, program):
    path = program.save(tmp_path / "p.npz")
    raw = bytearray(path.read_bytes())
    # patch the uncompressed size of the first member in the central directory to 2**31
    cd = raw.rfind(b"PK\x01\x02")
    first = raw.find(b"PK\x01\x02")
    assert first != -1 and cd != -1
    raw[first + 24 : first + 28] = (2**31).to_bytes(4, "little")
    (tmp_path / "liar.npz").write_bytes(bytes(raw))
    with pytest.raises(AWGRTError):
        CompiledSequenceProgram.load(tmp_path / "liar.npz")


def test_a_missing_file_is_a_serialization_error(tmp_path):
    with pytest.raises(SerializationError, match="cannot read"):
        CompiledSequenceProgram.load(tmp_path / "none.npz")


def test_a_file_of_another_format_says_which_awgrt_wrote_it_and_what_to_do(tmp_path, program):
    from awgrt import __version__

    members = _members(program.save(tmp_path / "good.npz"))
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())
    assert meta["awgrt_version"] == __version__  # every file says which awgrt wrote it
    meta["schema_version"], meta["awgrt_version"] = 99, "9.9.0"
    members["meta.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(SerializationError, match=r"written by awgrt 9\.9\.0 in file format 99; awgrt .* reads format 1: load it with the awgrt"):
        CompiledSequenceProgram.load(_write(tmp_path / "future.npz", members))
