"""A small progress bar for long work, drawn on stderr only once the work has taken a second.

Short jobs print nothing; long ones show ``desc [#####.....] 52% 1.3 s, about 1.2 s left: what``
(``what``: the part in hand, :attr:`Progress.note`) and a final line. On a
terminal the bar redraws in place; when the stream is not a terminal (a log file, CI) it writes a
plain line every 10 % instead, with no carriage returns. Thread-safe: workers may advance it.
No dependency beyond the standard library, so the core keeps numpy and scipy as its only needs.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Progress over ``total`` units. Use as a context manager and call :meth:`advance`."""

    def __init__(self, total: float, desc: str, *, enabled: bool = True, delay_s: float = 1.0, stream: TextIO | None = None) -> None:
        self.total = max(float(total), 1e-300)
        self.desc = desc
        self.enabled = enabled
        self.delay_s = delay_s
        self.stream = stream or sys.stderr
        self.done = 0.0
        self.start = time.perf_counter()
        self.shown = False
        self._last_draw = 0.0
        self._lock = threading.Lock()
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self._last_tenth = -1
        #: What is being worked on now (a segment's name, ...): shown after the time.
        self.note = ""
        self._width = 0  # of the line drawn last on a terminal (a shorter one covers it)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            with self._lock:
                self.done = max(self.done, self.total) if exc[0] is None else self.done
                self._draw(final=True)

    def advance(self, amount: float = 1.0) -> None:
        with self._lock:
            self.done += amount
            now = time.perf_counter()
            if not (self.enabled and self.done < self.total and now - self.start >= self.delay_s):
                return
            if self.terminal:
                if now - self._last_draw >= 0.1:
                    self._draw()
            elif int(10 * self.done / self.total) > self._last_tenth:
                self._draw()

    def _draw(self, final: bool = False) -> None:
        frac = min(1.0, self.done / self.total)
        elapsed = time.perf_counter() - self.start
        left = f", about {elapsed * (1 - frac) / frac:.1f} s left" if 0.02 <= frac < 1 and not final else ""
        what = f": {self.note}" if self.note and not final else ""
        if self.terminal:
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            line = f"\r{self.desc} [{bar}] {100 * frac:3.0f}% {elapsed:.1f} s{left}{what}"
            self.stream.write(line.ljust(self._width) + ("\n" if final else ""))
            self._width = len(line)
        else:  # a log: whole lines, one per tenth
            self._last_tenth = int(10 * frac)
            self.stream.write(f"{self.desc}: {100 * frac:3.0f}% after {elapsed:.1f} s{left}{what}\n")
        self.stream.flush()
        self.shown = True
        self._last_draw = time.perf_counter()
