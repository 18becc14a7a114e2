"""The simulated bench: what is wired to each scope input, and when trigger edges arrive.

The card side publishes (:meth:`Bench.publish`) the analog signals it played and the true times of the
trigger edges at scope inputs; a simulated scope that was armed before waits for a publication
newer than its arming (:meth:`Bench.wait_trigger`), as a real scope only sees triggers that come
after it is armed. ``free_run`` makes every armed acquisition trigger at once at t = 0 (for
driver tests with a steady signal).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from .signals import AnalogSignal


class Bench:
    """Signals and trigger edges shared between the card model and the scope model (thread-safe)."""

    def __init__(self, signals: Mapping[str, AnalogSignal] | None = None, *, free_run: bool = False) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self.signals: dict[str, AnalogSignal] = dict(signals or {})
        self.trigger_times: dict[str, float] = {}
        self.free_run = free_run

    def publish(self, signals: Mapping[str, AnalogSignal], trigger_times: Mapping[str, float]) -> None:
        """Replace the signals on the given inputs and announce trigger edges (input -> true time, s)."""
        with self._cond:
            self.signals.update(signals)
            self.trigger_times = dict(trigger_times)
            self.generation += 1
            self._cond.notify_all()

    def signal(self, scope_input: str) -> AnalogSignal | None:
        """The signal wired to ``scope_input`` (None: nothing connected)."""
        with self._cond:
            return self.signals.get(scope_input)

    def trigger_time(self, source: str, armed_generation: int) -> float | None:
        """True time of the trigger edge on ``source`` published after ``armed_generation``, if any."""
        with self._cond:
            if self.free_run:
                return 0.0
            if self.generation > armed_generation:
                return self.trigger_times.get(source)
            return None

    def wait_trigger(self, source: str, armed_generation: int, timeout_s: float) -> float | None:
        """Wait up to ``timeout_s`` for :meth:`trigger_time` to have an answer; None if none came."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                t = self.trigger_time(source, armed_generation)
                left = deadline - time.monotonic()
                if t is not None or left <= 0:
                    return t
                self._cond.wait(min(left, 0.05))
