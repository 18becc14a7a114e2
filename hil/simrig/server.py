"""A loopback SCPI server: a simulated scope on 127.0.0.1, reachable as a VISA SOCKET resource.

The real drivers talk to it through pyvisa + pyvisa-py exactly as to a LAN scope
(``TCPIP0::127.0.0.1::<port>::SOCKET``, lines ending in ``\\n``, binary blocks). It listens on an
ephemeral port, serves one connection at a time, and is bounded: lines longer than
``max_line_bytes`` drop the connection, at most ``max_connections`` are served, and it stops by
itself after ``idle_timeout_s`` without traffic or ``lifetime_s`` in all (None: no such limit; a
rig that owns its server closes it itself and sets neither, so a client that analyses for minutes
between two queries still finds it there) and on :meth:`close`.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from ..errors import HILError
from .generator import SimulatedGenerator
from .instrument import SimulatedScope


class LoopbackScpiServer:
    """Serve ``instrument`` (a :class:`~hil.simrig.instrument.SimulatedScope`) on a loopback port.

    Use as a context manager, or call :meth:`start` and :meth:`close`. ``send_chunk_bytes``
    splits answers into several ``send`` calls (so clients see them arrive in pieces);
    ``slow_bytes_per_s`` sends answers of at least ``slow_from_bytes`` a byte at a time at that
    rate (a link that trickles); ``late_s`` ({command line: seconds}) holds the answer to those
    lines back that long (an instrument, or a host, too busy to answer in time), the lines after
    them waiting their turn as on a real session.
    """

    def __init__(
        self,
        instrument: SimulatedScope | SimulatedGenerator,
        *,
        idle_timeout_s: float | None = 60.0,
        lifetime_s: float | None = 1800.0,
        max_connections: int = 64,
        max_line_bytes: int = 1 << 16,
        send_chunk_bytes: int = 1 << 20,
        slow_bytes_per_s: float | None = None,
        slow_from_bytes: int = 1024,
        late_s: dict[str, float] | None = None,
    ) -> None:
        self.instrument = instrument
        self.idle_timeout_s = idle_timeout_s
        self.lifetime_s = lifetime_s
        self.max_connections = max_connections
        self.max_line_bytes = max_line_bytes
        self.send_chunk_bytes = send_chunk_bytes
        self.slow_bytes_per_s = slow_bytes_per_s
        self.slow_from_bytes = slow_from_bytes
        self.late_s = dict(late_s or {})
        self.connections = 0
        #: Answers sent a byte at a time (``slow_bytes_per_s``) that have not been sent whole yet.
        self.trickling = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._last_activity = time.monotonic()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise HILError("the loopback SCPI server is not started")
        return self._sock.getsockname()[1]

    @property
    def resource(self) -> str:
        """VISA resource name of the server."""
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LoopbackScpiServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        self._sock = sock
        self._started = self._last_activity = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name=f"scpi-loopback-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port (waits for the serving thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> LoopbackScpiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving thread

    def _expired(self) -> bool:
        now = time.monotonic()
        idle = self.idle_timeout_s is not None and now - self._last_activity > self.idle_timeout_s
        old = self.lifetime_s is not None and now - self._started > self.lifetime_s
        return self._stop.is_set() or idle or old

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._expired() and self.connections < self.max_connections:
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self._sock.accept()
            self.connections += 1
            self._last_activity = time.monotonic()
            with conn:
                self._talk(conn)
        self._stop.set()

    def _talk(self, conn: socket.socket) -> None:
        buffer = b""
        while not self._expired():
            ready, _, _ = select.select([conn], [], [], 0.05)
            if not ready:
                continue
            try:
                data = conn.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            self._last_activity = time.monotonic()
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                command = line.decode("ascii", "replace").strip()
                answer = self.instrument.handle(command)
                if answer and command in self.late_s:
                    self._stop.wait(self.late_s[command])
                if answer:
                    try:
                        rate = self.slow_bytes_per_s
                        slow = rate is not None and len(answer) >= self.slow_from_bytes
                        step = 1 if slow else self.send_chunk_bytes
                        self.trickling += slow
                        try:
                            for i in range(0, len(answer), step):
                                if self._stop.is_set():
                                    return
                                conn.sendall(answer[i : i + step])
                                if rate is not None and slow:
                                    time.sleep(1.0 / rate)
                        finally:
                            self.trickling -= slow
                    except OSError:
                        return
                self._last_activity = time.monotonic()
            if len(buffer) > self.max_line_bytes:
                return
