"""What every pyvisa-driven scope shares: opening the resource, text and binary transfers with
timeouts, and turning pyvisa's failures into clear :class:`~hil.errors.ScopeError` s.

Binary waveforms travel as IEEE 488.2 definite-length blocks (``#<n><length><payload>``) read by
``query_binary_values(..., container=np.array)``; the element type and byte order are always
stated explicitly by the driver, never left to the instrument's defaults.

**Resynchronisation.** After any timeout or unusable answer the session is resynchronised: the
device is cleared and whatever is left in the input buffer is dropped, so a malformed block (or
stray bytes after one) fails only the exchange it belongs to, never the ones after it. A raw
socket has no device clear: what has arrived is dropped until the link is quiet, and then, since a
late answer may still be on its way (a busy instrument or host), ``*IDN?`` is asked and answers
are read and dropped up to the one that is the scope's identity: answers come in order, so the
session is in step again whenever the instrument is slow. A text
query whose answer is unusable is resynchronised and asked once more (queries have no side
effects); a block read is not retried: that capture fails. Every resynchronisation is logged
and counted in ``scope.resyncs``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..errors import RigConfigError, ScopeConnectionError, ScopeError, ScopeProtocolError, ScopeTimeoutError
from .base import AcquisitionSettings, Capture, ChannelSettings, Scope

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A socket session is resynchronised by reading until it is quiet this long (s) ...
RESYNC_QUIET_S = 0.05
#: ... for at most this long (s).
RESYNC_MAX_S = 2.0

#: The slowest transfer accepted (bytes/s): a block of n bytes must arrive whole within
#: ``timeout_s + n / MIN_TRANSFER_BPS`` of its query, one deadline for the whole transfer.
MIN_TRANSFER_BPS = 1e6
#: Largest block read when no preamble promised its size (a descriptor, a few hundred bytes).
MAX_UNPROMISED_BLOCK_BYTES = 1 << 20
#: Most bytes asked of the driver per read call.
READ_CHUNK = 1 << 16


#: The shortest time over which a link's rate is trusted (s): bytes that piled up in the socket
#: while the reader was not running arrive at once and would make a trickle look fast.
PACE_MIN_S = 0.05


def _paced(got: int, since: float, left_s: float, wanted: int, last: int) -> int:
    """How many bytes to ask of one driver read: a read returns only when it has them (or the
    link goes quiet), so a link that trickles could hold one large read far past any deadline.
    Ask what the rate seen so far (``got`` bytes since the reading began at ``since``, over at
    least :data:`PACE_MIN_S`) delivers in a quarter of the time left, and at most twice the last
    read asked (``last``): one byte first, then growing with the link (a fast one reaches
    READ_CHUNK within 17 reads). Bytes that piled up while the reader waited for a CPU (a busy
    machine) are read in growing bites, not taken for a fast link, so no read outlasts the
    deadline by much more than the reader was held up, however slowly bytes come."""
    if got == 0:
        return 1
    rate = got / max(time.monotonic() - since, PACE_MIN_S)
    return max(1, min(wanted, READ_CHUNK, 2 * last, int(rate * left_s / 4)))

#: pyvisa ``datatype`` letters for signed / unsigned samples of 1 and 2 bytes.
DATATYPES = {(1, True): "b", (1, False): "B", (2, True): "h", (2, False): "H"}


def _pyvisa():
    try:
        import pyvisa
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ScopeConnectionError("talking to a scope needs pyvisa and pyvisa-py: pip install 'awgrt[hil]'") from exc
    return pyvisa


def open_resource(resource: str, *, timeout_s: float, backend: str = "@py", resource_manager: Any = None) -> Any:
    """Open a VISA message resource with ``\\n`` terminations and a timeout in seconds.

    ``backend`` picks the VISA library (``"@py"``: pyvisa-py, pure Python; ``""``: the system
    VISA). Raises :class:`ScopeConnectionError` naming the resource when it cannot be opened.
    """
    pyvisa = _pyvisa()
    try:
        rm = resource_manager or pyvisa.ResourceManager(backend)
        res = rm.open_resource(resource, read_termination="\n", write_termination="\n")
    except (pyvisa.errors.Error, OSError, ValueError) as exc:
        raise ScopeConnectionError(f"cannot open: {exc}", resource=resource) from exc
    res.timeout = max(1, round(timeout_s * 1000))
    return res


class VisaScope(Scope):
    """Base of the pyvisa drivers: holds the resource and wraps every transfer.

    ``timeout_s`` bounds each command and transfer; ``acquire_timeout_s`` is the default wait for
    a trigger in :meth:`wait`. Subclasses implement the family's command set.
    """

    def __init__(self, resource: str, *, timeout_s: float = 5.0, backend: str = "@py", resource_manager: Any = None) -> None:
        self.resource_name = resource
        self.timeout_s = float(timeout_s)
        self.resyncs = 0
        self._res = open_resource(resource, timeout_s=timeout_s, backend=backend, resource_manager=resource_manager)
        try:
            self._idn = self.query("*IDN?")
        except ScopeTimeoutError:
            self.close()
            raise
        except ScopeError as exc:
            self.close()
            raise ScopeConnectionError(f"cannot talk to it: {exc.detail}", resource=resource, command="*IDN?") from exc
        self.settings: AcquisitionSettings | None = None

    # ------------------------------------------------------------------ transfers

    def _fail(self, exc: Exception, command: str, timeout_s: float | None = None) -> ScopeError:
        if isinstance(exc, ScopeError):
            return exc
        pyvisa = _pyvisa()
        if isinstance(exc, pyvisa.errors.VisaIOError) and exc.error_code == pyvisa.constants.StatusCode.error_timeout:
            return ScopeTimeoutError(f"no complete answer within {timeout_s or self.timeout_s:g} s", resource=self.resource_name, command=command)
        if isinstance(exc, (pyvisa.errors.Error, OSError)):
            return ScopeError(f"transfer failed: {exc}", resource=self.resource_name, command=command)
        return ScopeProtocolError(f"unusable answer: {exc}", resource=self.resource_name, command=command)

    def resync(self, why: str) -> None:
        """Clear the device and drop whatever is left in the input buffer (see module doc)."""
        self.resyncs += 1
        log.warning("scope %s: resynchronising the session after %s", self.resource_name, why)
        pyvisa = _pyvisa()
        with contextlib.suppress(Exception):
            self._res.flush(pyvisa.constants.BufferOperation.discard_read_buffer_no_io)
        if getattr(self._res, "resource_class", "") != "SOCKET":
            with contextlib.suppress(Exception):
                self._res.clear()  # device clear (VXI-11, HiSLIP, USBTMC): the instrument drops its output queue
            return
        # a raw socket has no device clear: read and drop what arrives until it is quiet, for at most
        # RESYNC_MAX_S in all (each read returns what has come, so a trickle cannot hold it longer)
        deadline = time.monotonic() + RESYNC_MAX_S
        got, since, asked = 0, time.monotonic(), 1
        try:
            self._res.timeout = max(1, round(RESYNC_QUIET_S * 1000))
            while (left := deadline - time.monotonic()) > 0:
                asked = _paced(got, since, left, READ_CHUNK, asked)
                try:
                    chunk = self._read_some(asked)
                except Exception:  # quiet (timeout) or gone: either way nothing more to drop
                    break
                if not chunk:
                    break
                got += len(chunk)
            self._handshake(max(deadline, time.monotonic() + self.timeout_s))  # its own time: the answer it waits for comes last
        finally:
            with contextlib.suppress(Exception):
                self._res.timeout = max(1, round(self.timeout_s * 1000))

    def _handshake(self, deadline: float) -> None:
        """Ask ``*IDN?`` and drop the answers before the one that is the scope's identity (once it
        is known), so an answer that came late cannot be taken for the next query's; gives up
        quietly at ``deadline`` (the next exchange then fails and resynchronises again)."""
        idn = getattr(self, "_idn", None)
        if not idn:
            return
        with contextlib.suppress(Exception):
            self._res.write("*IDN?")
            while (left := deadline - time.monotonic()) > 0:
                self._res.timeout = max(1, round(min(left, self.timeout_s) * 1000))
                if self._res.read().strip() == idn:
                    return

    def _guard(self, command: str, action: Callable[[], T], timeout_s: float | None = None) -> T:
        """Run one transfer; on failure resynchronise and raise the matching ScopeError."""
        try:
            return action()
        except Exception as exc:
            err = self._fail(exc, command, timeout_s)
            self.resync(f"{type(err).__name__} on {command!r}")
            raise err from exc

    def write(self, command: str) -> None:
        """Send one command (no answer expected)."""
        self._guard(command, lambda: self._res.write(command))

    def _query_once(self, command: str, timeout_s: float | None) -> str:
        def ask() -> str:
            try:
                if timeout_s is not None:
                    self._res.timeout = max(1, round(timeout_s * 1000))
                return self._res.query(command).strip()
            finally:
                self._res.timeout = max(1, round(self.timeout_s * 1000))

        return self._guard(command, ask, timeout_s)

    def query(self, command: str, *, timeout_s: float | None = None) -> str:
        """Send a query and return its text answer, stripped."""
        return self._parsed(command, lambda text: text, timeout_s=timeout_s)

    def _parsed(self, command: str, parse: Callable[[str], T], *, timeout_s: float | None = None) -> T:
        """Query and parse; an unusable answer (undecodable or unparsable) is resynchronised and
        asked once more before it is an error. Timeouts are not repeated."""
        try:
            return parse(self._query_once(command, timeout_s))
        except ScopeTimeoutError:
            raise
        except ScopeProtocolError as err:
            if err.__cause__ is None:  # parse() refused an answer that arrived whole
                self.resync(f"an unusable answer to {command!r}")
        return parse(self._query_once(command, timeout_s))

    def query_float(self, command: str) -> float:
        """A query whose answer is one number."""

        def parse(text: str) -> float:
            value = math.nan
            for token in reversed(text.split()[-2:]):  # a header may lead and a unit follow ("C1:VDIV 50E-3 V")
                try:
                    value = float(token)
                    break
                except ValueError:
                    continue
            if not math.isfinite(value):
                raise ScopeProtocolError(f"expected a number, got {text[:200]!r}", resource=self.resource_name, command=command)
            return value

        return self._parsed(command, parse)

    def read_back_ranges(self, settings: AcquisitionSettings, command: Callable[[str], str], per_answer: float = 1.0) -> dict[str, ChannelSettings]:
        """The vertical range each of ``settings``' channels uses, as the scope reports it
        (``command(channel)`` asks it; the answer times ``per_answer`` is the full-scale range).
        Scopes snap a range to their V/div steps, often to a narrower one than asked: the
        analysis uses what is read here (noise, clipping rails), never what was asked."""
        applied = {}
        for ch, cs in settings.channels.items():
            range_v = self.query_float(command(ch)) * per_answer
            if not range_v > 0:
                raise ScopeProtocolError(f"the scope reports a range of {range_v!r} V for {ch}", resource=self.resource_name, command=command(ch))
            applied[ch] = ChannelSettings(range_v, cs.offset_v)
        return applied

    def query_fields(self, command: str, n: int) -> list[float]:
        """A query answered by at least ``n`` comma-separated numbers (a preamble)."""

        def parse(text: str) -> list[float]:
            try:
                values = [float(v) for v in text.split(",")]
            except ValueError:
                values = []
            if len(values) < n or not all(math.isfinite(v) for v in values[:n]):
                raise ScopeProtocolError(f"expected {n} comma-separated numbers, got {text[:200]!r}", resource=self.resource_name, command=command)
            return values

        return self._parsed(command, parse)

    def query_block(self, command: str, *, bytes_per_point: int, signed: bool, big_endian: bool, expected: int | None = None) -> np.ndarray:
        """Send a query answered by one definite-length binary block; return its samples.

        ``expected``: the number of samples the preamble promised (checked when given).
        """
        dtype = np.dtype(DATATYPES[(bytes_per_point, signed)]).newbyteorder(">" if big_endian else "<")
        limit = expected * bytes_per_point if expected is not None else MAX_UNPROMISED_BLOCK_BYTES
        raw = self._guard(command, lambda: self._block(command, limit))
        if len(raw) % bytes_per_point:
            self.resync(f"a block of {len(raw)} bytes for {bytes_per_point}-byte samples")
            raise self._unusable(command, f"a block of {len(raw)} bytes is not whole {bytes_per_point}-byte samples")
        data = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        if expected is not None and data.size != expected:
            self.resync(f"a block of {data.size} samples for {expected} promised")
            raise ScopeProtocolError(f"block holds {data.size} samples, the preamble promised {expected}", resource=self.resource_name, command=command)
        return data

    def _block(self, command: str, limit: int) -> bytes:
        """Send ``command`` and read its definite-length block (``#<n><length><data>`` then the
        terminating newline), checking the header against ``limit`` bytes before reading the data
        and bounding the whole transfer by one deadline (see :data:`MIN_TRANSFER_BPS`)."""
        self._res.write(command)
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            head = self._read_exact(2, deadline, started)
            if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
                raise self._unusable(command, f"not a definite-length block (it starts {bytes(head)!r})")
            digits = self._read_exact(int(head[1:2]), deadline, started)
            if not digits.isdigit():
                raise self._unusable(command, f"block header {bytes(head + digits)!r} is not a length")
            length = int(digits)
            if length > limit:
                raise ScopeProtocolError(
                    f"block header claims {length} bytes, more than the {limit} the preamble promised: not read",
                    resource=self.resource_name,
                    command=command,
                )
            deadline = started + self.timeout_s + length / MIN_TRANSFER_BPS
            data = self._read_exact(length, deadline, started)
            end = self._read_exact(1, deadline, started)
            if end != b"\n":
                raise self._unusable(command, f"the block of {length} bytes goes on past its length ({bytes(end)!r})")
            return bytes(data)
        finally:
            self._res.timeout = max(1, round(self.timeout_s * 1000))

    def _unusable(self, command: str, why: str) -> ScopeProtocolError:
        return ScopeProtocolError(f"unusable answer: {why}", resource=self.resource_name, command=command)

    def _read_exact(self, count: int, deadline: float, started: float) -> bytearray:
        """``count`` bytes of the answer, or ScopeTimeoutError once ``deadline`` passes (however
        slowly the bytes trickle in: the deadline is for the whole transfer)."""
        buf, asked = bytearray(), 1
        while len(buf) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScopeTimeoutError(
                    f"no complete answer within {deadline - started:.3g} s ({len(buf)} of {count} bytes; transfers must run at "
                    f"{MIN_TRANSFER_BPS / 1e6:g} MB/s or faster)",
                    resource=self.resource_name,
                )
            self._res.timeout = max(1, round(left * 1000))
            # paced by the rate since the query: bytes the driver already buffered cannot fake a fast link
            asked = _paced(len(buf), started, left, count - len(buf), asked)
            buf += self._read_some(asked)
        return buf

    def _read_some(self, count: int) -> bytes:
        """What the session has, up to ``count`` bytes, within its timeout (a partial read is
        expected: no warning for stopping short of ``count`` or at a newline)."""
        codes = _pyvisa().constants.StatusCode
        with self._res.ignore_warning(codes.success_max_count_read, codes.success_termination_character_read):
            chunk, _status = self._res.visalib.read(self._res.session, count)
        return bytes(chunk)

    def poll(self, command: str, done, timeout_s: float, what: str, *, interval_s: float = 0.005) -> str:
        """Repeat query ``command`` until ``done(answer)``; raise ScopeTimeoutError naming ``what``
        after ``timeout_s``. Returns the last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.query(command)
            try:
                finished = done(answer)
            except (ValueError, TypeError, ArithmeticError) as exc:  # an answer that is not the number asked for
                raise ScopeProtocolError(f"{what}: unusable answer {answer[:200]!r} ({exc})", resource=self.resource_name, command=command) from exc
            if finished:
                return answer
            if time.monotonic() > deadline:
                raise ScopeTimeoutError(f"{what} after {timeout_s:g} s (last answer {answer!r})", resource=self.resource_name, command=command)
            time.sleep(interval_s)

    def opc(self, timeout_s: float) -> None:
        """``*OPC?``: block until pending operations (an acquisition) are complete."""
        answer = self.query("*OPC?", timeout_s=timeout_s)
        if answer.lstrip("+") != "1":
            raise ScopeProtocolError(f"expected '1', got {answer!r}", resource=self.resource_name, command="*OPC?")

    # ------------------------------------------------------------------ interface

    @property
    def identity(self) -> str:
        return self._idn

    def wait(self, timeout_s: float) -> None:
        try:
            self.opc(timeout_s)
        except ScopeTimeoutError as exc:
            raise ScopeTimeoutError(
                f"acquisition not complete after {timeout_s:g} s: no trigger on {self.settings.trigger.source if self.settings else '?'}?",
                resource=self.resource_name,
                command="*OPC?",
            ) from exc

    def close(self) -> None:
        try:
            self._res.close()
        except Exception:  # closing a broken connection must not hide the original error
            pass

    def _capture(
        self, channel: str, codes: np.ndarray, *, x_increment_s: float, x_origin_s: float, y_increment_v: float, y_origin_v: float, y_reference: float, **meta
    ) -> Capture:
        if codes.size == 0:
            raise ScopeProtocolError(f"the scope returned an empty record of {channel} (0 points)", resource=self.resource_name)
        if not all(math.isfinite(v) for v in (x_increment_s, x_origin_s, y_increment_v, y_origin_v, y_reference)) or x_increment_s <= 0:
            problem = f"the record of {channel} has an unusable time or volt scale (x increment {x_increment_s!r} s)"
            raise ScopeProtocolError(problem, resource=self.resource_name)
        meta = {"scope": self._idn, "family": self.family, "resource": self.resource_name, **meta}
        return Capture(channel, codes, x_increment_s, x_origin_s, y_increment_v, y_origin_v, y_reference, meta)


class WordScope(VisaScope):
    """A VISA scope whose samples travel as bytes or 16-bit words (``word``), the words in
    ``byte_order`` ``"little"`` or ``"big"``."""

    def __init__(self, resource: str, *, word: bool = False, byte_order: str = "little", **kw: Any) -> None:
        if byte_order not in ("little", "big"):
            raise RigConfigError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
        self.word = word
        self.byte_order = byte_order
        super().__init__(resource, **kw)
