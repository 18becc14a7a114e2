"""The unmodified spcm package on emulated cards (awgrt.sim.spcm_emulation), through both routes.

spcm binds the driver library once per process and the two routes cannot share one, so every
scenario runs in a fresh ``python`` subprocess and reports through its output and exit code.
Expected samples are computed here from the arrays the script wrote, with the trigger latency
taken from the hardware contract (238.5 clocks + 16 ns at up to 625 MS/s, rounded up).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from awgrt.sim.spcm_emulation import find_compiler, pythonpath_dir

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("spcm_core") is None, reason="the spcm package is not installed (pip install 'awgrt[card]')"),
    pytest.mark.slow,  # a python subprocess per test: left out of the quick subset (-m 'not slow')
]

HAS_CC = find_compiler() is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler: the C route cannot be built here")
ROUTES = [pytest.param("c", marks=needs_cc), "python"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("awgrt-cache")


def run(args: list[str], *, cache: Path, env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWGRT_") and k != "PYTHONPATH"}
    full_env["AWGRT_CACHE_DIR"] = str(cache)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=120, cwd=cwd)
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def run_code(code: str, **kwargs) -> subprocess.CompletedProcess:
    return run(["-c", textwrap.dedent(code)], **kwargs)


def lines_with(prefix: str, out: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in out.splitlines() if line.startswith(prefix)]


# ============================================================================ routes


@needs_cc
def test_c_route_builds_loads_and_spcm_core_binds_it(cache):
    out = run_code(
        """
        from awgrt.sim import emulated_spcm
        with emulated_spcm(route="c") as emu:
            import spcm, spcm_core
            print("ROUTE", emu.route)
            import ctypes
            print("LIB", emu.library_path, spcm_core.pyspcm.spcmDll._handle == ctypes.CDLL(str(emu.library_path))._handle)
            card = spcm.Card("/dev/spcm0")
            card.open()
            print("CARD", card.product_name(), card.sn(), card.function_type() == spcm.SPCM_TYPE_AO, card.max_sample_value())
            card.close()
            print("LOG", emu.driver.log)
        """,
        cache=cache,
    ).stdout
    assert lines_with("ROUTE", out) == ["c"]
    path, same = lines_with("LIB", out)[0].split()
    lib = Path(path)
    assert same == "True"  # spcm_core's load by name found the library loaded by path
    assert lib.name == "libspcm_linux.so" and lib.is_file() and cache in lib.parents
    assert lines_with("CARD", out) == ["M4i.6631-x8 10000 True 32768"]
    # spcm_core and spcm queried the driver version with a NULL handle and wrote their log lines
    assert "Python package spcm_core v" in lines_with("LOG", out)[0] and "Python package spcm v" in lines_with("LOG", out)[0]


def test_python_route_when_no_compiler_exists(cache, tmp_path):
    out = run_code(
        """
        from awgrt.sim import emulated_spcm
        with emulated_spcm(card="M4i.6622-x8") as emu:
            import spcm, spcm_core
            print("ROUTE", emu.route, "|", emu.route_reason)
            print("LIB", spcm_core.pyspcm.spcmDll._name)
            with spcm.Card("/dev/spcm0") as card:
                print("CARD", card.product_name(), card.sn())
        """,
        cache=tmp_path,  # empty cache: nothing prebuilt
        env={"CC": "/nonexistent/cc"},
    ).stdout
    route, reason = lines_with("ROUTE", out)[0].split(" | ")
    assert route == "python" and "no C compiler" in reason
    assert "Python route" in lines_with("LIB", out)[0]
    assert lines_with("CARD", out) == ["M4i.6622-x8 10000"]
    assert not list(tmp_path.rglob("*.so"))


def test_python_route_forced_by_environment(cache):
    out = run_code(
        """
        from awgrt.sim import emulated_spcm
        with emulated_spcm() as emu:
            print("ROUTE", emu.route)
        """,
        cache=cache,
        env={"AWGRT_SPCM_ROUTE": "python"},
    ).stdout
    assert lines_with("ROUTE", out) == ["python"]


def test_routes_refuse_what_cannot_work(cache):
    """Route clash, spcm imported before emulation, nesting, and life after the block."""
    other = "python" if HAS_CC else "c"
    out = run_code(
        f"""
        from awgrt.sim import emulated_spcm
        from awgrt.sim.spcm_emulation import SpcmEmulationError
        from awgrt.errors import AWGRTError
        with emulated_spcm() as emu:
            import spcm
            first = emu.route
            try:
                with emulated_spcm():
                    pass
            except SpcmEmulationError as e:
                print("NESTED", "already active" in str(e))
        try:
            with emulated_spcm(route={"python" if HAS_CC else "c"!r}):
                pass
        except SpcmEmulationError as e:
            print("CLASH", isinstance(e, AWGRTError), "cannot share a process" in str(e) or "C compiler" in str(e))
        try:
            spcm.Card("/dev/spcm0").open()
        except spcm.SpcmDeviceNotFound:
            print("OUTSIDE not found")
        with emulated_spcm(cards=["M4i.6631-x8", "M4i.6622-x8"]) as emu:
            with spcm.Card("/dev/spcm1") as c1, spcm.Card() as c0:
                print("AGAIN", emu.route == first, c1.product_name(), c0.device_identifier)
        """,
        cache=cache,
    ).stdout
    assert lines_with("NESTED", out) == ["True"]
    assert lines_with("CLASH", out) == ["True True"], (other, out)
    assert lines_with("OUTSIDE", out) == ["not found"]
    assert lines_with("AGAIN", out) == ["True M4i.6622-x8 /dev/spcm0"]

    out = run_code(
        """
        import contextlib, io, os
        os.environ["SPCM_NO_DLL"] = "1"  # spcm_core imports without any driver library
        with contextlib.redirect_stdout(io.StringIO()):
            import spcm_core
        from awgrt.sim import emulated_spcm
        from awgrt.sim.spcm_emulation import SpcmEmulationError
        try:
            with emulated_spcm():
                pass
        except SpcmEmulationError as e:
            print("EARLY", "before the emulation was activated" in str(e))
        """,
        cache=cache,
    ).stdout
    assert lines_with("EARLY", out) == ["True"]


# ============================================================================ ctypes marshalling


MARSHALLING = """
import ctypes
from awgrt.sim import emulated_spcm
from awgrt.card import decode_step_entry
with emulated_spcm(route=ROUTE) as emu:
    import spcm_core as c
    from spcm_core import byref, int32, int64, uint32, uint64, double, c_void_p, create_string_buffer
    h = c.spcm_hOpen(create_string_buffer(b"/dev/spcm0"))
    print("OPEN", bool(h), bool(c.spcm_hOpen(create_string_buffer(b"/dev/spcm0"))), bool(c.spcm_hOpen(create_string_buffer(b"/dev/spcm7"))))
    c.spcm_dwSetParam_i64(h, c.SPC_CARDMODE, c.SPC_REP_STD_SEQUENCE)
    c.spcm_dwSetParam_i64(h, c.SPC_CHENABLE, 3)
    c.spcm_dwSetParam_i64(h, c.SPC_SEQMODE_MAXSEGMENTS, 2)
    # an END entry (bit 63) written as spcm writes it: an unsigned Python int through the int64 wrapper
    word = (1 << 63) | (5 << 32) | (0 << 16) | 1
    print("SET", c.spcm_dwSetParam_i64(h, c.SPC_SEQMODE_STEPMEM0 + 1, word))
    v = int64(0)
    print("GET", c.spcm_dwGetParam_i64(h, c.SPC_SEQMODE_STEPMEM0 + 1, byref(v)), v.value)
    e = decode_step_entry(v.value)
    print("DECODE", e.end, e.loops, e.segment, e.next, emu.card(0).steps[1].end)
    # the same entry through SetParam_i64m (high and low 32 bits)
    print("I64M", c.spcm_dwSetParam_i64m(h, c.SPC_SEQMODE_STEPMEM0 + 2, int32(-(1 << 31) | 5), uint32(1)))
    c.spcm_dwGetParam_i64(h, c.SPC_SEQMODE_STEPMEM0 + 2, byref(v))
    print("BACK64M", v.value == word - (1 << 64))
    v32 = int32(0)
    print("I32", c.spcm_dwGetParam_i32(h, c.SPC_MIINST_MAXADCVALUE, byref(v32)), v32.value, c.spcm_dwSetParam_i32(h, c.SPC_SEQMODE_STARTSTEP, 1))
    d = double(0)
    c.spcm_dwSetParam_d64(h, c.SPC_SAMPLERATE, 5e8)
    print("D64", c.spcm_dwGetParam_d64(h, c.SPC_SAMPLERATE, byref(d)), d.value)
    name = create_string_buffer(256)
    print("PTR", c.spcm_dwGetParam_ptr(h, c.SPC_PCITYP, byref(name), 256), name.value.decode())
    log = create_string_buffer(b"hello log")
    print("LOG", c.spcm_dwSetParam_ptr(None, c.SPC_WRITE_TO_LOG, log, 9), emu.driver.log[-1])
    # a refused write: code, register, value and text through all three GetErrorInfo variants
    for fn, vt in ((c.spcm_dwGetErrorInfo_i32, int32), (c.spcm_dwGetErrorInfo_i64, int64), (c.spcm_dwGetErrorInfo_d64, double)):
        code = c.spcm_dwSetParam_i64(h, c.SPC_SEQMODE_MAXSEGMENTS, 3)
        reg, val, text = uint32(0), vt(0), create_string_buffer(c.ERRORTEXTLEN)
        print("ERR", code, fn(h, byref(reg), byref(val), byref(text)), reg.value, val.value, text.value.decode())
    # DMA: DefTransfer (c_void_p buffer, uint64 offset and byte length) then DATA_STARTDMA
    import numpy as np
    c.spcm_dwSetParam_i64(h, c.SPC_SEQMODE_WRITESEGMENT, 0)
    c.spcm_dwSetParam_i64(h, c.SPC_SEQMODE_SEGMENTSIZE, 192)
    data = (np.arange(2 * 192) - 200).astype(np.int16)
    code = c.spcm_dwDefTransfer_i64(h, c.SPCM_BUF_DATA, c.SPCM_DIR_PCTOCARD, 0, data.ctypes.data_as(c_void_p), 0, data.nbytes)
    print("DMA", code, c.spcm_dwSetParam_i64(h, c.SPC_M2CMD, c.M2CMD_DATA_STARTDMA | c.M2CMD_DATA_WAITDMA),
          bool((emu.card(0).segment_data(0).ravel() == data).all()))
    print("INVALIDATE", c.spcm_dwInvalidateBuf(h, c.SPCM_BUF_DATA))
    p, n = c_void_p(1234), uint64(99)
    print("CONTBUF", c.spcm_dwGetContBuf_i64(h, c.SPCM_BUF_DATA, byref(p), byref(n)), p.value, n.value)
    visa = (c.c_char_p * 4)()
    print("DISCOVERY", c.spcm_dwDiscovery(visa, 4, 64, 100), c.spcm_dwSendIDNRequest(visa, 4, 64))
    c.spcm_vClose(h)
    print("CLOSED", c.spcm_dwGetParam_i64(h, c.SPC_PCITYP, byref(v)) != 0, bool(c.spcm_hOpen(create_string_buffer(b"/dev/spcm0"))))
"""


@pytest.mark.parametrize("route", ROUTES)
def test_all_19_functions_marshal_like_the_driver(route, cache):
    out = run_code(MARSHALLING.replace("ROUTE", repr(route)), cache=cache).stdout
    end_word = (1 << 63) | (5 << 32) | 1
    assert lines_with("OPEN", out) == ["True False False"]  # a card opens once; no such card
    assert lines_with("SET", out) == ["0"]
    assert lines_with("GET", out) == [f"0 {end_word - (1 << 64)}"]  # bit 63 reads back negative
    assert lines_with("DECODE", out) == ["True 5 1 0 True"]
    assert lines_with("I64M", out) == ["0"] and lines_with("BACK64M", out) == ["True"]
    assert lines_with("I32", out) == ["0 32768 0"]
    assert lines_with("D64", out) == ["0 500000000.0"]
    assert lines_with("PTR", out) == ["0 M4i.6631-x8"]
    assert lines_with("LOG", out) == ["0 hello log"]
    errs = lines_with("ERR", out)
    assert len(errs) == 3
    for line in errs:
        code, code2, reg, val, text = line.split(" ", 4)
        assert int(code) == int(code2) == 0x101  # ERR_VALUE
        assert int(reg) == 349910 and float(val) == 3
        assert text.startswith("the value for this register is not in a valid range") and "MAXSEGMENTS=3" in text
    assert lines_with("DMA", out) == ["0 0 True"]
    assert lines_with("INVALIDATE", out) == ["0"]
    assert lines_with("CONTBUF", out) == ["0 None 0"]
    assert lines_with("DISCOVERY", out) == ["0 0"]
    assert lines_with("CLOSED", out) == ["True True"]


# ============================================================================ a plain spcm script

PLAIN_SCRIPT = '''
"""A sequence-mode script as a lab writes it: spcm only (modelled on spcm's sequence examples)."""
import sys

import numpy as np
import spcm
from spcm import units

with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_STD_SEQUENCE)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0 | spcm.CHANNEL1)
    channels.enable(True)
    channels.amp(1 * units.V)
    channels.stop_level(spcm.SPCM_STOPLVL_ZERO)
    clock = spcm.Clock(card)
    clock.sample_rate(625 * units.MHz)
    trigger = spcm.Trigger(card)
    trigger.or_mask(spcm.SPC_TMASK_NONE)

    sequence = spcm.Sequence(card)
    lengths = [384, 512, 416]
    segments = [sequence.add_segment(n) for n in lengths]
    rng = np.random.default_rng(7)
    written = []
    for seg, n in zip(segments, lengths):
        data = rng.integers(-30000, 30000, size=(2, n), dtype=np.int16)
        seg[:] = data
        written.append(np.array(seg[:]))
    s0 = sequence.add_step(segments[0], loops=2)
    s1 = sequence.add_step(segments[1], loops=3)
    s2 = sequence.add_step(segments[2], loops=1)
    s3 = sequence.add_step(segments[0], loops=1)
    s0.set_transition(s1)
    s1.set_transition(s2)
    s2.set_transition(s3)
    s3.final_step()
    sequence.entry_step(s0)
    sequence.write_setup()
    for i in range(4):
        print("STEP", i, *sequence.step_memory(i))
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
    print("STATUS", card.status(), sequence.status())
    np.savez(sys.argv[1], *written, steps=np.array([[0, 2], [1, 3], [2, 1], [0, 1]]))
'''


def _expected_output(arrays: np.lib.npyio.NpzFile, n: int) -> np.ndarray:
    """What the card plays from the force trigger on, built from the script's own arrays."""
    fs = 625e6
    latency = math.ceil(238.5 + 16e-9 * fs)  # 238.5 clocks + 16 ns, first sample at or after it
    segs = [arrays[f"arr_{i}"].T for i in range(3)]  # spcm's segment arrays are (channels, samples)
    parts = [np.zeros((latency, 2), np.int16)]  # the ZERO stop level until the first sample
    for seg, loops in arrays["steps"]:
        parts += [segs[seg]] * int(loops)
    played = np.concatenate(parts)
    tail = np.zeros((n - len(played), 2), np.int16)  # after END: the stop level again
    return np.concatenate([played, tail])


@pytest.mark.parametrize("mode", ["environment", "runner-python"])
def test_plain_spcm_script_plays_what_it_programmed(mode, cache, tmp_path):
    script = tmp_path / "lab_script.py"
    script.write_text(PLAIN_SCRIPT)
    written, rendered, n = tmp_path / "written.npz", tmp_path / "rendered.npz", 4096
    if mode == "environment":
        env = {
            "AWGRT_EMULATE_SPCM": "M4i.6631-x8",
            "AWGRT_EMULATE_SPCM_RENDER": str(n),
            "AWGRT_EMULATE_SPCM_OUT": str(rendered),
            "PYTHONPATH": str(pythonpath_dir()),
        }
        proc = run([str(script), str(written)], cache=cache, env=env, cwd=tmp_path)
    else:
        args = ["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.6631-x8", "--route", "python", "--render", str(n), "--out", str(rendered)]
        proc = run([*args, str(script), str(written)], cache=cache, cwd=tmp_path)
    assert "awgrt" not in script.read_text()
    out = proc.stdout
    steps = [list(map(int, s.split())) for s in lines_with("STEP", out)]
    # step, next, segment, loops as spcm's step_memory() decodes them from the read-back entries
    assert [s[:4] for s in steps] == [[0, 1, 0, 2], [1, 2, 1, 3], [2, 3, 2, 1], [3, 0, 0, 1]]
    assert [s[4] & 0x80000000 != 0 for s in steps] == [False, False, False, True]  # the END flag
    assert steps[3][4] < 0  # spcm decodes the negative int64 read-back into negative flags
    bits, step = map(int, lines_with("STATUS", out)[0].split())
    # the card clock follows the host's: by this read the force trigger has started replay (and
    # the 5 us program has probably ended, READY on its last step)
    assert bits & 0x3 == 0x3 and 0 <= step <= 3 and (not bits & 0x4 or step == 3)
    arrays, got = np.load(written), np.load(rendered)
    expected = _expected_output(arrays, n)
    assert got["card0"].shape == (n, 2)
    np.testing.assert_array_equal(got["card0"], expected)
    assert got["card0_events"][:, 0].tolist() == [249, 249 + 2 * 384, 249 + 2 * 384 + 3 * 512, 249 + 2 * 384 + 3 * 512 + 416]
    assert proc.stderr.strip() == ""


# ============================================================================ driver errors

ERRORS = """
from awgrt.sim import emulated_spcm
with emulated_spcm(route=ROUTE) as emu:
    import numpy as np
    import spcm
    card = spcm.Card("/dev/spcm0")
    card.open()
    card.card_mode(spcm.SPC_REP_STD_SEQUENCE)
    spcm.Channels(card, card_enable=spcm.CHANNEL0)
    seq = spcm.Sequence(card)
    seq.max_segments(4)
    sim = emu.card(0)

    def attempt(label, fn):
        try:
            fn()
            print(label, "no error")
        except spcm.SpcmException as e:
            err = e.error
            print(label, type(e).__name__, err.register, err.value, "|", err.text)

    attempt("MAXSEG", lambda: seq.max_segments(3))
    print("AFTER_MAXSEG", sim.max_segments, sim.state)
    code = spcm.spcm_dwSetParam_i64(card._handle, spcm.SPC_SEQMODE_MAXSEGMENTS, 3)
    card.get_error_info()
    print("CODE", code)
    seq.write_segment(1)
    attempt("SIZE", lambda: seq.segment_size(100))
    print("AFTER_SIZE", sim.slots[1].size, sim.write_segment)
    attempt("LOOPS0", lambda: seq.step_memory(0, 1, 0, 0, spcm.SPCSEQ_ENDLOOPALWAYS))
    print("AFTER_LOOPS0", 0 in sim.steps)
    seq.step_memory(0, 0, 1, 1, spcm.SPCSEQ_END)  # points at an empty segment
    attempt("START", lambda: card.start(spcm.M2CMD_CARD_FORCETRIGGER))
    print("AFTER_START", sim.state, card.status() & spcm.M2STAT_CARD_READY == 0)
    attempt("OPEN2", lambda: spcm.Card("/dev/spcm0").open())
    card.close()
    with spcm.Card("/dev/spcm0") as again:
        print("REOPEN", again.sn())
        remove = emu.on_command(lambda index, command: 1 / 0)  # a bug inside the emulation
        attempt("HOOK", lambda: again.cmd(spcm.M2CMD_CARD_STOP))
        remove()
        print("INTERNAL", [type(e).__name__ for e in emu.internal_errors])
"""


@pytest.mark.parametrize("route", ROUTES)
def test_driver_errors_reach_the_script_as_spcm_exceptions(route, cache):
    out = run_code(ERRORS.replace("ROUTE", repr(route)), cache=cache).stdout
    kind, reg, val, text = _split_error(lines_with("MAXSEG", out)[0])
    assert (kind, reg, val) == ("SpcmException", 349910, 3)
    assert text.startswith("the value for this register is not in a valid range:") and "power of two" in text
    assert lines_with("AFTER_MAXSEG", out) == ["4 idle"]  # unchanged
    assert lines_with("CODE", out) == [str(0x101)]  # ERR_VALUE
    kind, reg, val, text = _split_error(lines_with("SIZE", out)[0])
    assert (kind, reg, val) == ("SpcmException", 349940, 100) and "multiple of 32" in text
    assert lines_with("AFTER_SIZE", out) == ["0 1"]
    kind, reg, _, text = _split_error(lines_with("LOOPS0", out)[0])
    assert (kind, reg) == ("SpcmException", 340000) and "loops=0" in text
    assert lines_with("AFTER_LOOPS0", out) == ["False"]
    kind, reg, val, text = _split_error(lines_with("START", out)[0])
    assert kind == "SpcmException" and reg == 100 and text.startswith("command sequence is not allowed:") and "empty segment 1" in text
    assert lines_with("AFTER_START", out) == ["idle True"]  # never started
    assert lines_with("OPEN2", out)[0].startswith("SpcmDeviceNotFound")
    assert lines_with("REOPEN", out) == ["10000"]
    # a Python exception inside the emulation never passes for success: it is ERR_ABORT with its text
    kind, reg, val, text = _split_error(lines_with("HOOK", out)[0])
    assert (kind, reg, val) == ("SpcmException", 100, 0x40) and "internal error in a command hook: ZeroDivisionError" in text
    assert lines_with("INTERNAL", out) == ["['ZeroDivisionError']"]


def _split_error(line: str) -> tuple[str, int, int, str]:
    head, text = line.split(" | ", 1)
    kind, reg, val = head.split()
    return kind, int(reg), int(val), text


# ============================================================================ safety


@pytest.mark.parametrize(
    "env",
    [
        {"AWGRT_EMULATE_SPCM": "M4i.9999"},
        {"AWGRT_EMULATE_SPCM": "M4i.6631-x8", "AWGRT_EMULATE_SPCM_RENDER": "lots"},
    ],
)
def test_whole_script_mode_never_runs_a_script_it_cannot_emulate(cache, tmp_path, env):
    # on a PC with Spectrum's driver installed, carrying on would drive the real card
    script = tmp_path / "lab_script.py"
    script.write_text("print('USER CODE RAN')\n")
    from awgrt.sim.spcm_emulation import pythonpath_dir

    proc = run([str(script)], cache=cache, env={**env, "PYTHONPATH": str(pythonpath_dir())}, check=False)
    assert proc.returncode != 0
    assert "USER CODE RAN" not in proc.stdout
    assert "could not be set up" in proc.stderr and "not run" in proc.stderr


def test_the_runner_refuses_an_unknown_model_before_the_script(cache, tmp_path):
    script = tmp_path / "lab_script.py"
    script.write_text("print('USER CODE RAN')\n")
    proc = run(["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.9999", str(script)], cache=cache, check=False)
    assert proc.returncode != 0 and "USER CODE RAN" not in proc.stdout and "M4i.9999" in proc.stderr


MODES = """
from awgrt.sim import emulated_spcm
with emulated_spcm() as emu:
    import spcm
    with spcm.Card("/dev/spcm0") as card:
        for name in ("SPC_REP_STD_SINGLE", "SPC_REP_STD_MULTI", "SPC_REP_FIFO_SINGLE", "SPC_REP_FIFO_MULTI", "SPC_REP_STD_CONTINUOUS",
                     "SPC_REP_STD_SINGLERESTART", "SPC_REP_STD_GATE", "SPC_REP_FIFO_GATE", "SPC_REP_STD_DDS"):
            try:
                card.card_mode(getattr(spcm, name))
                print("MODE", name, "accepted")
            except spcm.SpcmException as e:
                print("MODE", name, "refused", e.error.register, "|", e.error.text)
        card.card_mode(spcm.SPC_REP_STD_SEQUENCE)
        print("SEQUENCE ok")
"""


def test_replay_modes_the_emulator_does_not_play_are_refused_at_the_mode_write(cache):
    out = run_code(MODES, cache=cache).stdout
    modes = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines_with("MODE", out)}
    for name in ("SPC_REP_STD_SINGLE", "SPC_REP_STD_MULTI", "SPC_REP_FIFO_SINGLE", "SPC_REP_FIFO_MULTI", "SPC_REP_STD_CONTINUOUS", "SPC_REP_STD_SINGLERESTART",
                 "SPC_REP_STD_GATE"):
        assert modes[name] == "accepted", name
    verdict, reg, text = modes["SPC_REP_FIFO_GATE"].split(" ", 2)
    assert verdict == "refused" and reg == "9500" and "SPC_REP_FIFO_GATE" in text and "not emulated" in text
    verdict, reg, text = modes["SPC_REP_STD_DDS"].split(" ", 2)  # an option the card lacks, said so
    assert verdict == "refused" and reg == "9500" and "DDS firmware option" in text
    assert lines_with("SEQUENCE", out) == ["ok"]


REGISTERS = """
from awgrt.sim import emulated_spcm
with emulated_spcm() as emu:
    import spcm
    with spcm.Card("/dev/spcm0") as card:
        for name in ("SPC_DDS_NUM_CORES", "SPC_DIGMODE0", "SPC_TRIG_CH0_MODE"):
            try:
                print("READ", name, "value", card.get_i(getattr(spcm, name)))
            except spcm.SpcmException as e:
                print("READ", name, "refused", e.error.register, "|", e.error.text)
        ios = spcm.MultiPurposeIOs(card)
        print("XIO", len(ios), ios[0].avail_modes() & spcm.SPCM_XMODE_ASYNCOUT != 0)
        ios[0].x_mode(spcm.SPCM_XMODE_ASYNCOUT)
        print("XMODE", ios[0].x_mode() == spcm.SPCM_XMODE_ASYNCOUT)
        try:
            ios[1].x_mode(spcm.SPCM_XMODE_PULSEGEN)
            print("BADXMODE accepted")
        except spcm.SpcmException as e:
            print("BADXMODE refused", e.error.register)
        for cls in ("DDS", "PulseGenerators"):
            try:
                getattr(spcm, cls)(card)
                print("OPTION", cls, "made")
            except spcm.SpcmException as e:
                print("OPTION", cls, "refused |", str(e)[:80])
        card.set_i(spcm.SPC_TRIG_ORMASK, spcm.SPC_TMASK_EXT0)
        print("STORED", card.get_i(spcm.SPC_TRIG_ORMASK) == spcm.SPC_TMASK_EXT0)
        print("KERNEL", card.get_i(spcm.SPC_GETKERNELVERSION) > 0, card.drv_version()["major"] > 0)
        print("FEATURES", card.features() & spcm.SPCM_FEAT_SEQUENCE != 0, card.features() & spcm.SPCM_FEAT_MULTI != 0, card.ext_features())
"""


def test_registers_answer_like_a_card_without_options(cache):
    out = run_code(REGISTERS, cache=cache).stdout
    reads = lines_with("READ", out)
    # registers of options this card lacks (DDS, digital outputs, channel triggers of digitisers)
    assert len(reads) == 3 and all(" refused " in r and "not valid for this type of board" in r for r in reads)
    # the three multi-purpose lines an M4i.66xx has, with their modes; a mode it lacks is refused
    assert lines_with("XIO", out) == ["3 True"] and lines_with("XMODE", out) == ["True"]
    assert lines_with("BADXMODE", out) == ["refused 600201"]
    # spcm's own feature checks refuse the firmware options cleanly
    options = lines_with("OPTION", out)
    assert options[1].startswith("PulseGenerators refused")
    assert options[0].startswith("DDS refused")  # its first register read is refused
    assert lines_with("STORED", out) == ["True"] and lines_with("KERNEL", out) == ["True True"]
    assert lines_with("FEATURES", out) == ["True True 0"]


def test_an_output_the_script_never_enables_stays_at_the_stop_level(cache, tmp_path):
    # the same script without channels.enable(True): on a card its outputs stay off
    script = tmp_path / "lab_script.py"
    script.write_text(PLAIN_SCRIPT.replace("    channels.enable(True)\n", ""))
    assert "enable(True)" not in script.read_text()
    written, rendered, n = tmp_path / "written.npz", tmp_path / "rendered.npz", 4096
    args = ["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.6631-x8", "--render", str(n), "--out", str(rendered)]
    run([*args, str(script), str(written)], cache=cache, cwd=tmp_path)
    got = np.load(rendered)["card0"]
    assert got.shape == (n, 2) and not got.any()  # the ZERO stop level, although replay ran
    assert np.load(rendered)["card0_events"].shape[0] == 4


def test_a_software_trigger_on_enable_renders_and_a_script_that_never_starts_gets_a_note(cache, tmp_path):
    # the plain script started by its software trigger alone (no force trigger): the same output
    script = tmp_path / "lab_script.py"
    text = PLAIN_SCRIPT.replace("spcm.SPC_TMASK_NONE", "spcm.SPC_TMASK_SOFTWARE").replace(
        "card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)", "card.start(spcm.M2CMD_CARD_ENABLETRIGGER)"
    )
    assert "FORCETRIGGER" not in text
    script.write_text(text.replace('    print("STATUS", card.status(), sequence.status())\n', ""))
    written, rendered, n = tmp_path / "written.npz", tmp_path / "rendered.npz", 4096
    args = ["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.6631-x8", "--render", str(n), "--out", str(rendered)]
    run([*args, str(script), str(written)], cache=cache, cwd=tmp_path)
    np.testing.assert_array_equal(np.load(rendered)["card0"], _expected_output(np.load(written), n))
    # never started: a note, in the file and on stderr, instead of an empty file
    idle = tmp_path / "idle.py"
    idle.write_text("import spcm\nwith spcm.Card('/dev/spcm0') as card:\n    card.card_mode(spcm.SPC_REP_STD_SEQUENCE)\n")
    proc = run([*args, str(idle)], cache=cache, cwd=tmp_path)
    saved = np.load(rendered)
    assert "card0" not in saved.files and "never triggered" in str(saved["card0_note"])
    assert "never triggered" in proc.stderr


# ============================================================================ standard replay modes
# Plain spcm scripts (no awgrt import) for the standard modes, run whole on the wall clock, and an
# independent walk here of what each programmed, from the arrays it wrote and the trigger samples
# the card took (the host decides when its force triggers land).

SINGLE_SCRIPT = '''
"""Standard single replay as a lab writes it: spcm only."""
import sys, time
import numpy as np
import spcm
from spcm import units

LOOPS = int(sys.argv[2])
with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_STD_SINGLE)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0 | spcm.CHANNEL1)
    channels.enable(True)
    channels.amp(1 * units.V)
    channels.stop_level(spcm.SPCM_STOPLVL_ZERO)
    spcm.Clock(card).sample_rate(50 * units.MHz)
    spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
    transfer = spcm.DataTransfer(card)
    transfer.memory_size(2048)
    transfer.allocate_buffer(2048)
    transfer.loops(LOOPS)
    data = np.random.default_rng(3).integers(-30000, 30000, size=(2, 2048), dtype=np.int16)
    transfer.buffer[:] = data
    transfer.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
    if LOOPS:
        while not card.status() & spcm.M2STAT_CARD_READY:  # polling ends by itself: card time moves
            time.sleep(0.0001)
        print("READY", card.status() & spcm.M2STAT_CARD_READY != 0)
    else:
        time.sleep(0.01)  # 500,000 samples of continuous replay, then stop
        card.stop()
    np.save(sys.argv[1], data)
'''

MULTI_SCRIPT = '''
"""Standard multi replay: one segment per trigger, spcm only."""
import sys, time
import numpy as np
import spcm
from spcm import units

with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_STD_MULTI)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0)
    channels.enable(True)
    channels.amp(1 * units.V)
    channels.stop_level(spcm.SPCM_STOPLVL_HOLDLAST)
    spcm.Clock(card).sample_rate(50 * units.MHz)
    spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
    multi = spcm.Multi(card)
    multi.memory_size(3 * 512)
    multi.allocate_buffer(512, num_segments=3)  # also sets the segment size
    multi.loops(1)
    data = np.random.default_rng(5).integers(-30000, 30000, size=(1, 3 * 512), dtype=np.int16)
    multi.buffer.reshape(-1)[:] = data.reshape(-1)
    multi.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
    card.timeout(0)  # no timeout: WAITREADY returns when the last segment has played
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
    for _ in range(3):
        card.cmd(spcm.M2CMD_CARD_FORCETRIGGER)
        time.sleep(0.002)  # 100,000 samples: the segment has long played
    card.cmd(spcm.M2CMD_CARD_WAITREADY)
    print("READY", card.status() & spcm.M2STAT_CARD_READY != 0)
    np.save(sys.argv[1], data)
'''


def _run_plain(
    script_text: str, route: str, cache: Path, tmp_path: Path, n: int, *args: str, speed: float = 1.0
) -> tuple[subprocess.CompletedProcess, np.ndarray, dict]:
    script = tmp_path / "lab_script.py"
    script.write_text(script_text)
    assert "awgrt" not in script_text
    written, rendered = tmp_path / "written.npy", tmp_path / "rendered.npz"
    runner = ["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.6631-x8", "--route", route, "--speed", str(speed), "--render", str(n), "--out", str(rendered)]
    proc = run([*runner, str(script), str(written), *args], cache=cache, cwd=tmp_path)
    got = np.load(rendered)
    return proc, np.load(written), {k: got[k] for k in got.files}


def _latency(fs: float) -> int:
    return math.ceil(238.5 + 16e-9 * fs)  # 238.5 clocks + 16 ns, first sample at or after it


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("loops", [3, 0], ids=["three-loops", "continuous"])
def test_standard_single_replay_plays_its_memory_loops_times(route, loops, cache, tmp_path):
    n = 20_000
    proc, data, got = _run_plain(SINGLE_SCRIPT, route, cache, tmp_path, n, str(loops))
    lat = _latency(50e6)
    memory = data.T  # spcm's buffer is [channel, sample]
    want = np.zeros((n, 2), np.int16)  # ZERO stop level before and after
    plays = 3 if loops else -(-(n - lat) // 2048)
    for k in range(plays):
        a = lat + k * 2048
        want[a : min(n, a + 2048)] = memory[: min(2048, n - a)]
    np.testing.assert_array_equal(got["card0"], want)
    assert got["card0_triggers"].tolist() == [0]
    if loops:
        assert lines_with("READY", proc.stdout) == ["True"]  # the polling loop ended by itself
    assert proc.stderr.strip() == ""


@pytest.mark.parametrize("route", ROUTES)
def test_standard_multi_replay_plays_one_segment_per_trigger(route, cache, tmp_path):
    n = 400_000
    # at a twentieth of real time the script's three triggers (2 ms of host time apart, more on a
    # busy machine) stay well inside the rendered window (160 ms of host time)
    proc, data, got = _run_plain(MULTI_SCRIPT, route, cache, tmp_path, n, speed=0.05)
    lat = _latency(50e6)
    segments = data.reshape(3, 512)
    triggers = got["card0_triggers"].tolist()
    assert len(triggers) == 3 and triggers[0] == 0 and all(b - a > 512 + lat for a, b in zip(triggers, triggers[1:]))
    want = np.zeros(n, np.int16)  # HOLDLAST: zero until the first segment, then each one's last sample
    level, end = 0, 0
    for segment, t in zip(segments, triggers):
        a = t + lat
        want[end:a] = level
        want[a : a + 512] = segment
        level, end = segment[-1], a + 512
    want[end:] = level
    np.testing.assert_array_equal(got["card0"][:, 0], want)
    assert got["card0"][:, 1].tolist() == [0] * n  # the second output is not enabled
    assert lines_with("READY", proc.stdout) == ["True"]  # WAITREADY with no timeout returned
    assert proc.stderr.strip() == ""


FIFO_SCRIPT = '''
"""FIFO single replay, streaming a long waveform through a small ring buffer: spcm only."""
import sys, time
import numpy as np
import spcm
from spcm import units

NOTIFY, BLOCKS = 4096, 12
with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_FIFO_SINGLE)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0)
    channels.enable(True)
    channels.amp(1 * units.V)
    channels.stop_level(spcm.SPCM_STOPLVL_ZERO)
    spcm.Clock(card).sample_rate(50 * units.MHz)
    spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
    transfer = spcm.DataTransfer(card)
    transfer.notify_samples(NOTIFY)
    transfer.allocate_buffer(4 * NOTIFY)
    transfer.loops(0)
    stream = np.random.default_rng(11).integers(-30000, 30000, size=BLOCKS * NOTIFY, dtype=np.int16)
    transfer.buffer[0, :] = stream[: 4 * NOTIFY]
    transfer.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA)
    transfer.avail_card_len(4 * NOTIFY)
    transfer.wait_dma()
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
    sent = 4 * NOTIFY
    transfer.polling(False)
    for block in transfer:
        block[0, :] = stream[sent : sent + NOTIFY]
        sent += NOTIFY
        if sent == len(stream):
            transfer.flush()  # hand over the last block
            break
    print("FILL", transfer.fill_size_promille())
    while not card.status() & spcm.M2STAT_CARD_READY:  # the stream runs dry
        time.sleep(0.001)
    print("UNDERRUN", card.status() & spcm.M2STAT_DATA_OVERRUN != 0)
    try:
        transfer.wait_dma()
        print("WAITDMA ok")
    except spcm.SpcmException as e:
        print("WAITDMA", e.error.text)
    np.save(sys.argv[1], stream)
'''


@pytest.mark.parametrize("route", ROUTES)
def test_fifo_replay_streams_through_the_ring_buffer_and_reports_the_underrun(route, cache, tmp_path):
    lat = _latency(50e6)
    n = lat + 12 * 4096 + 1000
    # at a hundredth of real time the host keeps ahead of the card, as a lab PC keeps ahead of 50 MS/s
    proc, stream, got = _run_plain(FIFO_SCRIPT, route, cache, tmp_path, n, speed=0.01)
    want = np.zeros(n, np.int16)
    want[lat : lat + stream.size] = stream  # every block in order, no gap, then the stop level
    np.testing.assert_array_equal(got["card0"][:, 0], want)
    assert 0 <= int(lines_with("FILL", proc.stdout)[0]) <= 1000  # per mille of the on-board FIFO (tiny here)
    assert lines_with("UNDERRUN", proc.stdout) == ["True"]  # the card reports running dry
    from awgrt import spectrum as sp

    assert lines_with("WAITDMA", proc.stdout)[0].startswith(sp.ERROR_TEXTS[sp.ERR_FIFOHWOVERRUN])  # raised by spcm


FIFO_MULTI_SCRIPT = '''
"""FIFO multi replay: the stream's next segment on every trigger, spcm only."""
import sys, time
import numpy as np
import spcm
from spcm import units

SEGMENT = 2048
with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_FIFO_MULTI)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0)
    channels.enable(True)
    channels.amp(1 * units.V)
    channels.stop_level(spcm.SPCM_STOPLVL_ZERO)
    spcm.Clock(card).sample_rate(50 * units.MHz)
    spcm.Trigger(card).or_mask(spcm.SPC_TMASK_NONE)
    multi = spcm.Multi(card)
    multi.allocate_buffer(SEGMENT, num_segments=3)  # also sets the segment size
    multi.loops(3)  # three segments, then the card is done
    multi.notify_samples(SEGMENT)
    stream = np.random.default_rng(13).integers(-30000, 30000, size=3 * SEGMENT, dtype=np.int16)
    multi.buffer.reshape(-1)[:] = stream
    multi.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA)
    multi.avail_card_len(3 * SEGMENT)
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
    for _ in range(3):
        card.cmd(spcm.M2CMD_CARD_FORCETRIGGER)
        time.sleep(0.02)  # 10,000 card samples at a hundredth of real time: the segment has played
    card.timeout(0)
    card.cmd(spcm.M2CMD_CARD_WAITREADY)
    print("DONE", card.status() & spcm.M2STAT_CARD_READY != 0, card.status() & spcm.M2STAT_DATA_OVERRUN == 0)
    np.save(sys.argv[1], stream)
'''


@pytest.mark.parametrize("route", ROUTES)
def test_fifo_multi_replay_plays_the_streams_next_segment_per_trigger(route, cache, tmp_path):
    lat = _latency(50e6)
    n = 120_000
    proc, stream, got = _run_plain(FIFO_MULTI_SCRIPT, route, cache, tmp_path, n, speed=0.01)
    triggers = got["card0_triggers"].tolist()
    assert len(triggers) == 3 and all(b - a > 2048 + lat for a, b in zip(triggers, triggers[1:]))
    want = np.zeros(n, np.int16)
    for k, t in enumerate(triggers):
        want[t + lat : t + lat + 2048] = stream[k * 2048 : (k + 1) * 2048]
    np.testing.assert_array_equal(got["card0"][:, 0], want)
    assert lines_with("DONE", proc.stdout) == ["True True"]  # READY after the third, no underrun


WAITS_SCRIPT = '''
"""Waiting on the card: WAITTRIGGER with a timeout, then with a trigger; spcm only."""
import time
import numpy as np
import spcm
from spcm import units

with spcm.Card("/dev/spcm0") as card:
    card.card_mode(spcm.SPC_REP_STD_SINGLE)
    channels = spcm.Channels(card, card_enable=spcm.CHANNEL0)
    channels.enable(True)
    spcm.Clock(card).sample_rate(50 * units.MHz)
    spcm.Trigger(card).or_mask(spcm.SPC_TMASK_EXT0)  # nothing drives EXT0 here
    transfer = spcm.DataTransfer(card)
    transfer.memory_size(1024)
    transfer.allocate_buffer(1024)
    transfer.loops(1)
    transfer.buffer[:] = 1000
    transfer.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
    card.timeout(50 * units.ms)
    card.start(spcm.M2CMD_CARD_ENABLETRIGGER)
    t0 = time.monotonic()
    try:
        card.cmd(spcm.M2CMD_CARD_WAITTRIGGER)
        print("WAITTRIGGER returned")
    except spcm.SpcmTimeout:
        print("TIMEOUT after", round((time.monotonic() - t0) * 1000), "ms")
    card.cmd(spcm.M2CMD_CARD_FORCETRIGGER)
    card.cmd(spcm.M2CMD_CARD_WAITTRIGGER)
    card.cmd(spcm.M2CMD_CARD_WAITREADY)
    print("STATUS", card.status() & (spcm.M2STAT_CARD_TRIGGER | spcm.M2STAT_CARD_READY))
'''


@pytest.mark.parametrize("route", ROUTES)
def test_waits_take_the_time_a_card_takes_and_time_out(route, cache, tmp_path):
    script = tmp_path / "lab_script.py"
    script.write_text(WAITS_SCRIPT)
    proc = run(["-m", "awgrt.sim.spcm_emulation", "--card", "M4i.6631-x8", "--route", route, str(script)], cache=cache, cwd=tmp_path)
    (timeout,) = lines_with("TIMEOUT after", proc.stdout)
    assert 45 <= int(timeout.split()[0]) <= 1000  # SPC_TIMEOUT 50 ms on the host's clock
    assert lines_with("STATUS", proc.stdout) == [str(0x2 | 0x4)]


def test_a_wait_that_could_never_end_is_refused_on_the_virtual_clock(cache):
    out = run_code(
        """
        from awgrt.sim import emulated_spcm
        with emulated_spcm(route="python") as emu:
            import spcm
            with spcm.Card("/dev/spcm0") as card:
                card.card_mode(spcm.SPC_REP_STD_SINGLE)
                spcm.Channels(card, card_enable=spcm.CHANNEL0).enable(True)
                transfer = spcm.DataTransfer(card)
                transfer.memory_size(1024)
                transfer.allocate_buffer(1024)
                transfer.loops(0)  # until stopped: never READY
                transfer.start_buffer_transfer(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)
                card.timeout(0)
                card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
                try:
                    card.cmd(spcm.M2CMD_CARD_WAITREADY)
                    print("WAIT returned")
                except spcm.SpcmException as e:
                    print("WAIT refused |", e.error.text)
        """,
        cache=cache,
    ).stdout
    (line,) = lines_with("WAIT", out)
    assert line.startswith("refused") and "would hang" in line
