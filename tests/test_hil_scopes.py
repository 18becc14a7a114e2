"""The scope drivers through pyvisa + pyvisa-py against the loopback SCPI server.

The simulated scopes digitise a known analog function of time; each test computes the volts it
expects from that function at the driver's time axis, so scaling (preamble / WFMOutpre fields,
offsets, positions, signed and unsigned codes), byte order, word size and chunking are all
checked end to end. Misbehaving servers must give clear errors, quickly.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from hil.errors import ScopeConnectionError, ScopeError, ScopeProtocolError, ScopeTimeoutError
from hil.scopes import AcquisitionSettings, ChannelSettings, TriggerSettings, open_scope
from hil.simrig import SIMULATED, Bench, FunctionSignal, LoopbackScpiServer, ScopeModel

pytest.importorskip("pyvisa_py")

F_HZ = 7e6
AMPLITUDE_V = 0.3
DC_V = 0.05
#: A noiseless, distortion-free scope with an exact timebase: only quantisation remains.
IDEAL = ScopeModel(noise_lsb_rms=0.0, jitter_s=0.0, hd2_dbc=-400.0, hd3_dbc=-400.0, timebase_error_ppm=0.0, trigger_skew_s=0.0)


def signal(t: np.ndarray) -> np.ndarray:
    return AMPLITUDE_V * np.sin(2 * np.pi * F_HZ * t) + DC_V


def serve(family: str, *, faults=(), model: ScopeModel = IDEAL, max_wait_s: float = 1.0, **server_kw) -> LoopbackScpiServer:
    bench = Bench({"CH1": FunctionSignal(signal)}, free_run="no-trigger" not in faults)
    return LoopbackScpiServer(SIMULATED[family](model, bench, faults=faults, max_wait_s=max_wait_s), **server_kw)


def settings(n: int = 4000, range_v: float = 1.0, offset_v: float = 0.0, pre_s: float = 0.4e-6) -> AcquisitionSettings:
    return AcquisitionSettings({"CH1": ChannelSettings(range_v, offset_v)}, 2.5e9, n, pre_s, TriggerSettings("CH2", 0.5))


def acquire(scope, s: AcquisitionSettings, timeout_s: float = 2.0):
    scope.configure(s)
    scope.arm()
    scope.wait(timeout_s)
    return scope.read("CH1")


CASES = [
    ("keysight", {}, "int8"),
    ("keysight", {"word": True}, "int16"),
    ("keysight", {"word": True, "byte_order": "big"}, "int16"),
    ("tektronix", {}, "int8"),
    ("tektronix", {"bytes_per_point": 2}, "int16"),
    ("tektronix", {"bytes_per_point": 2, "byte_order": "big"}, "int16"),
    ("rigol", {}, "uint8"),
    ("rohde", {}, "uint8"),
    ("rohde", {"word": True}, "uint16"),
    ("rohde", {"word": True, "byte_order": "big"}, "uint16"),
    ("lecroy", {}, "int8"),
    ("lecroy", {"word": True}, "int16"),
    ("lecroy", {"word": True, "byte_order": "big"}, "int16"),
]


@pytest.mark.parametrize(("family", "options", "dtype"), CASES, ids=[f"{f}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for f, o, _ in CASES])
def test_driver_scales_codes_to_the_signal(family: str, options: dict, dtype: str) -> None:
    lsb = 1.0 / 256
    with serve(family) as srv, open_scope(family, srv.resource, timeout_s=2.0, **options) as scope:
        cap = acquire(scope, settings(offset_v=0.1))
    assert cap.codes.dtype == np.dtype(dtype) and cap.codes.dtype.isnative
    assert cap.n == 4000
    assert cap.x_increment_s == pytest.approx(1 / 2.5e9)
    assert cap.time_s[0] == pytest.approx(-0.4e-6)
    err = np.abs(cap.volts - signal(cap.time_s))
    float32_fields = 1e-7 if family == "lecroy" else 0.0  # LeCroy sends its gain and offset as float32
    assert err.max() <= 0.5 * lsb + 1e-9 + float32_fields  # only the 8-bit quantiser's half LSB
    assert np.ptp(cap.codes.astype(int)) > 100  # the signal spans many codes, so scaling is really exercised


def test_tektronix_position_moves_yoff_and_volts_stay_right() -> None:
    with serve("tektronix") as srv, open_scope("tektronix", srv.resource, timeout_s=2.0) as scope:
        scope.configure(settings())
        scope.write("CH1:POSition -1.5")  # 1.5 divisions down: codes shift, YOFf says by how much
        scope.arm()
        scope.wait(2.0)
        cap = scope.read("CH1")
    assert cap.y_reference == round(-1.5 * 256 / 10)
    assert np.abs(cap.volts - signal(cap.time_s)).max() <= 0.5 / 256 + 1e-9


def test_keysight_unsigned_words_use_yref() -> None:
    with serve("keysight") as srv, open_scope("keysight", srv.resource, timeout_s=2.0, word=True) as scope:
        acquire(scope, settings())
        scope.write(":WAVeform:UNSigned 1")
        pre = scope.query_fields(":WAVeform:PREamble?", 10)
        raw = scope.query_block(":WAVeform:DATA?", bytes_per_point=2, signed=False, big_endian=False)
    yinc, yorig, yref = pre[7], pre[8], pre[9]
    assert yref == 32768
    t = pre[5] + np.arange(raw.size) * pre[4]
    assert np.abs((raw - yref) * yinc + yorig - signal(t)).max() <= 0.5 / 256 + 1e-9


def test_rigol_reads_long_records_in_chunks() -> None:
    with serve("rigol", send_chunk_bytes=4096) as srv, open_scope("rigol", srv.resource, timeout_s=2.0, chunk_points=3000) as scope:
        cap = acquire(scope, settings(n=10_000))
    assert cap.metadata["chunks"] == 4
    assert cap.n == 10_000
    assert np.abs(cap.volts - signal(cap.time_s)).max() <= 0.5 / 256 + 1e-9


def test_rigol_refuses_a_chunk_beyond_its_limit() -> None:
    with serve("rigol") as srv, open_scope("rigol", srv.resource, timeout_s=2.0) as scope:
        acquire(scope, settings(n=300_000))
        scope.write(":WAVeform:STARt 1")
        scope.write(":WAVeform:STOP 300000")
        with pytest.raises(ScopeProtocolError, match="promised 300000"):
            scope.query_block(":WAVeform:DATA?", bytes_per_point=1, signed=False, big_endian=False, expected=300_000)
        assert "out of range" in scope.query(":SYSTem:ERRor?")


@pytest.mark.parametrize("family", ["keysight", "tektronix", "rigol", "rohde", "lecroy"])
def test_no_trigger_times_out_with_a_clear_error(family: str) -> None:
    with serve(family, faults=("no-trigger",), max_wait_s=0.3) as srv, open_scope(family, srv.resource, timeout_s=1.0) as scope:
        scope.configure(settings())
        scope.arm()
        t0 = time.monotonic()
        with pytest.raises(ScopeTimeoutError, match="not complete") as info:
            scope.wait(0.2)
        assert srv.resource in str(info.value)
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("bad-block", ScopeProtocolError, "unusable answer"),
        ("short-preamble", ScopeProtocolError, "expected"),
        ("wrong-length", ScopeProtocolError, "promised"),
        ("truncated-block", ScopeTimeoutError, "no complete answer"),
    ],
)
@pytest.mark.parametrize("family", ["keysight", "tektronix", "rohde", "lecroy"])
def test_misbehaving_scope_gives_a_clear_error(family: str, fault: str, error: type, message: str) -> None:
    with serve(family, faults=(fault,)) as srv, open_scope(family, srv.resource, timeout_s=0.3) as scope:
        scope.configure(settings())
        scope.arm()
        scope.wait(1.0)
        with pytest.raises(error, match=message) as info:
            scope.read("CH1")
    assert isinstance(info.value, ScopeError) and "command" in str(info.value)


@pytest.mark.parametrize("fault", ["long-block", "bad-block", "truncated-block", "wrong-length", "short-preamble"])
@pytest.mark.parametrize("family", ["keysight", "tektronix", "rigol", "rohde", "lecroy"])
def test_after_a_protocol_error_the_session_resynchronises(family: str, fault: str) -> None:
    # one malformed answer fails that capture only: the next ones on the same session are clean
    with serve(family, faults=(fault,)) as srv, open_scope(family, srv.resource, timeout_s=0.3) as scope:
        scope.configure(settings())
        scope.arm()
        scope.wait(1.0)
        try:
            scope.read("CH1")  # a stray tail after a good block may only show on the next command
        except ScopeError:
            pass
        srv.instrument.faults = frozenset()
        for _ in range(2):
            capture = acquire(scope, settings())
            assert capture.codes.size == 4000
        assert scope.query("*IDN?") == scope.identity


def test_silent_scope_fails_at_open() -> None:
    with serve("keysight", faults=("silent",)) as srv:
        with pytest.raises(ScopeTimeoutError, match=r"\*IDN\?"):
            open_scope("keysight", srv.resource, timeout_s=0.2)


def test_unreachable_scope_is_a_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ScopeConnectionError, match=f"127.0.0.1::{port}"):
        open_scope("keysight", f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.5)


def test_server_stops_by_itself_when_idle() -> None:
    srv = serve("keysight", idle_timeout_s=0.2).start()
    try:
        deadline = time.monotonic() + 3.0
        while srv.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not srv.running
    finally:
        srv.close()


def test_server_drops_an_overlong_line() -> None:
    with serve("keysight", max_line_bytes=1024) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=2.0) as conn:
            conn.sendall(b"A" * 5000)
            assert conn.recv(10) == b""  # the server hung up instead of buffering without bound


def test_all_byte_values_round_trip_in_a_block() -> None:
    model = ScopeModel(adc_bits=8, noise_lsb_rms=0.0, jitter_s=0.0, hd2_dbc=-400.0, hd3_dbc=-400.0, trigger_skew_s=0.0)
    ramp = FunctionSignal(lambda t: (np.arange(t.size) % 256 - 128 + 0.25) / 256.0)  # every code, range 1 V
    bench = Bench({"CH1": ramp}, free_run=True)
    with LoopbackScpiServer(SIMULATED["keysight"](model, bench)) as srv, open_scope("keysight", srv.resource, timeout_s=2.0) as scope:
        cap = acquire(scope, settings(n=2048))
    assert np.array_equal(np.sort(np.unique(cap.codes)), np.arange(-128, 128))
    assert np.array_equal(cap.codes[:256], np.arange(256) - 128)


@pytest.mark.parametrize("family", ["keysight", "lecroy"])
def test_an_unusable_status_answer_is_a_protocol_error_of_that_capture(family: str) -> None:
    with serve(family, faults=("bad-status",)) as srv, open_scope(family, srv.resource, timeout_s=0.3) as scope:
        scope.configure(settings())
        scope.arm()
        with pytest.raises(ScopeProtocolError, match="unusable answer") as info:
            scope.wait(1.0)
        assert "BUSY" in str(info.value)
        srv.instrument.faults = frozenset()
        assert acquire(scope, settings()).codes.size == 4000  # the session goes on


@pytest.mark.parametrize("family", ["keysight", "tektronix", "rohde", "lecroy"])
def test_a_trickling_transfer_is_bounded_as_a_whole(family: str) -> None:
    # each byte arrives well inside the socket timeout (5 ms apart), the whole block would take 20 s:
    # the transfer ends at its deadline (0.5 s + 4000 bytes at 1 MB/s) and the resynchronisation's
    # 2 s bound. Judged by events, not by the clock: the read has given up while the server is
    # still sending the block (a read held to the trickle's end would return after it)
    with serve(family, slow_bytes_per_s=200.0) as srv, open_scope(family, srv.resource, timeout_s=0.5) as scope:
        scope.configure(settings())
        scope.arm()
        scope.wait(5.0)
        with pytest.raises(ScopeTimeoutError, match="no complete answer"):
            scope.read("CH1")
        assert srv.trickling == 1


@pytest.mark.parametrize("family", ["keysight", "rigol", "lecroy"])
def test_an_answer_that_comes_after_its_query_gave_up_is_not_taken_for_the_next_ones(family: str) -> None:
    # the answer to *OPC? comes 0.4 s late (a busy scope or host), after the 0.2 s timeout and after
    # the resynchronisation's quiet period: the *IDN? handshake drops it, so the session is in step
    with serve(family, late_s={"*OPC?": 0.4}) as srv, open_scope(family, srv.resource, timeout_s=0.2) as scope:
        with pytest.raises(ScopeTimeoutError):
            scope.query("*OPC?")
        srv.late_s.clear()
        assert scope.resyncs >= 1
        assert scope.query("*IDN?") == scope.identity
        assert acquire(scope, settings()).codes.size == 4000


def test_bytes_that_piled_up_on_a_busy_machine_are_not_taken_for_a_fast_link() -> None:
    from hil.scopes.visa import PACE_MIN_S, READ_CHUNK, _paced

    now = time.monotonic()
    # 1,000 bytes read within a millisecond (they were waiting in the socket): the rate is taken
    # over PACE_MIN_S at least, and a read asks at most twice the last one
    assert _paced(1, now - 1e-4, 2.0, 1 << 20, 1) <= 2
    assert _paced(1000, now - 1e-3, 2.0, 1 << 20, 8) == 16
    assert _paced(1000, now - 1e-3, 2.0, 1 << 20, 1 << 20) == int(1000 / PACE_MIN_S * 2.0 / 4)
    # a fast link grows to READ_CHUNK by doubling
    asked, got, start = 1, 0, now - 1.0
    for _ in range(17):
        asked = _paced(got, start, 1.0, 1 << 30, asked)
        got += asked * 1000  # as if the link had delivered plenty
    assert asked == READ_CHUNK


@pytest.mark.parametrize("family", ["keysight", "tektronix", "rohde", "lecroy"])
def test_a_block_header_beyond_the_preamble_is_refused_before_reading(family: str) -> None:
    with serve(family, faults=("huge-header",)) as srv, open_scope(family, srv.resource, timeout_s=0.5) as scope:
        scope.configure(settings())
        scope.arm()
        scope.wait(1.0)
        with pytest.raises(ScopeProtocolError, match="claims 999999999 bytes"):
            scope.read("CH1")
        srv.instrument.faults = frozenset()
        assert acquire(scope, settings()).codes.size == 4000


@pytest.mark.parametrize("family", ["keysight", "tektronix", "rigol", "rohde", "lecroy"])
def test_an_empty_record_is_a_protocol_error(family: str) -> None:
    # a scope whose memory gives no points: refused where it shows (set-up or record), never an IndexError
    with serve(family, faults=("empty-record",)) as srv, open_scope(family, srv.resource, timeout_s=0.5) as scope:
        with pytest.raises(ScopeError, match="empty record|record length 0"):
            scope.configure(settings())
            scope.arm()
            scope.wait(1.0)
            scope.read("CH1")


@pytest.mark.parametrize("family", ["keysight", "tektronix", "rigol", "rohde", "lecroy"])
@pytest.mark.parametrize("factor", [0.6, 1.6])
def test_configure_reports_the_range_the_scope_applied(family: str, factor: float) -> None:
    # scopes snap a range to their V/div steps: configure() returns the range read back, not the one asked
    import dataclasses

    model = dataclasses.replace(IDEAL, range_factor=factor)
    with serve(family, model=model) as srv, open_scope(family, srv.resource, timeout_s=2.0) as scope:
        used = scope.configure(settings(range_v=1.0, offset_v=0.1))
        cap = (scope.arm(), scope.wait(2.0), scope.read("CH1"))[2]
    assert used.channels["CH1"].range_v == pytest.approx(factor)
    assert used.channels["CH1"].offset_v == pytest.approx(0.1)
    # and the record's own scaling agrees with what was read back (one ADC range, 8 bits)
    per_code = abs(cap.y_increment_v) * 2 ** (8 * cap.codes.dtype.itemsize)
    assert per_code == pytest.approx(factor, rel=1e-6)


@pytest.mark.parametrize("answer", ["0", "-0.5", "nan", "volts"])
def test_an_unusable_range_read_back_is_a_protocol_error(answer: str) -> None:
    class BadRange(SIMULATED["keysight"]):  # type: ignore[misc, valid-type]
        def add_commands(self, c) -> None:
            c.add("CHANnel#:RANGe?", lambda n: answer)  # found before the family's own answer
            super().add_commands(c)

    srv_scope = BadRange(IDEAL, Bench({"CH1": FunctionSignal(signal)}), max_wait_s=1.0)
    with LoopbackScpiServer(srv_scope) as srv, open_scope("keysight", srv.resource, timeout_s=0.5) as scope:
        with pytest.raises(ScopeProtocolError, match="range|number"):
            scope.configure(settings())


def test_a_server_without_limits_outlives_a_silence_that_stops_a_limited_one() -> None:
    """A rig's own server (no idle or lifetime limit) still answers after its client was silent
    for longer than a limited server's idle limit; the limited one stops (waited for as an event,
    with a generous deadline, so a busy machine only makes it slower)."""
    limited = serve("keysight", idle_timeout_s=0.3).start()
    free = serve("keysight", idle_timeout_s=None, lifetime_s=None).start()
    try:
        with open_scope("keysight", limited.resource, timeout_s=2.0) as a, open_scope("keysight", free.resource, timeout_s=2.0) as b:
            assert a.configure(settings()) and b.configure(settings())  # real queries on both
            deadline = time.monotonic() + 30.0
            while limited.running and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not limited.running  # the silence outlasted its limit ...
            assert free.running and b.configure(settings())  # ... and the rig's kind of server still answers
    finally:
        limited.close()
        free.close()


def test_the_rigs_servers_live_as_long_as_their_rig() -> None:
    from hil.rig import RigConfig, SimRig

    rig = SimRig(RigConfig())
    try:
        assert rig.server.idle_timeout_s is None and rig.server.lifetime_s is None
    finally:
        rig.close()
