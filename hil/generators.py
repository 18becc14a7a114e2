"""Function generators that trigger the card: a burst of pulses at set delays, over pyvisa.

A rig whose ``[trigger] source = "generator"`` wires a generator's output to the card's EXT0
trigger input and to a scope input (``[wiring] trigger``): the scope triggers on the first pulse
and records every pulse, so the checks know when each trigger came. The suite's triggers are the
pulses of one burst (equally spaced: ``count`` pulses ``period_s`` apart), armed before the card
starts and fired by a bus trigger.

Keysight 33500 series (33500B / 33600A), confirmed from the series' user guide (SCPI reference):
``SOURce<n>:FUNCtion PULSe``, ``SOURce<n>:FUNCtion:PULSe:WIDTh``, ``SOURce<n>:FREQuency``,
``SOURce<n>:VOLTage:HIGH`` / ``:LOW``, ``SOURce<n>:BURSt:MODE TRIGgered``, ``:BURSt:NCYCles``,
``:BURSt:STATe ON``, ``TRIGger<n>:SOURce BUS``, ``OUTPut<n> ON``, ``*TRG``, ``*OPC?``, ``SYSTem:ERRor?``.

Rigol DG series (DG800 / DG900 / DG1000Z / DG4000), from the DG programming guides, to be
confirmed on the rig: ``:SOURce<n>:FUNCtion PULSe``, ``:SOURce<n>:FUNCtion:PULSe:WIDTh``,
``:SOURce<n>:FREQuency``, ``:SOURce<n>:VOLTage:HIGH`` / ``:LOW``, ``:SOURce<n>:BURSt ON``,
``:SOURce<n>:BURSt:MODE TRIGgered``, ``:SOURce<n>:BURSt:NCYCles``,
``:SOURce<n>:BURSt:TRIGger:SOURce MANual``, ``:OUTPut<n> ON``, fired with
``:SOURce<n>:BURSt:TRIGger:IMMediate``; errors with ``:SYSTem:ERRor?``.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from typing import Any

from .errors import GeneratorError, RigConfigError
from .scopes.visa import open_resource

log = logging.getLogger(__name__)


class FunctionGenerator(abc.ABC):
    """One channel of a function generator over VISA (see module doc). A context manager."""

    family = ""

    def __init__(self, resource: str, *, channel: int = 1, timeout_s: float = 5.0, backend: str = "@py", resource_manager: Any = None) -> None:
        if channel not in (1, 2):
            raise RigConfigError(f"generator channel must be 1 or 2, got {channel!r}", value=channel)
        self.resource_name = resource
        self.channel = channel
        self._res = open_resource(resource, timeout_s=timeout_s, backend=backend, resource_manager=resource_manager)
        try:
            self.identity = self.query("*IDN?")
        except Exception:
            self._res.close()
            raise

    def write(self, command: str) -> None:
        with self._translated(command):
            self._res.write(command)

    def query(self, command: str) -> str:
        with self._translated(command):
            return str(self._res.query(command)).strip()

    @contextlib.contextmanager
    def _translated(self, command: str):
        """pyvisa's errors (a timeout, a lost connection, an undecodable answer) as
        :class:`GeneratorError` naming the generator and the command."""
        try:
            yield
        except GeneratorError:
            raise
        except Exception as exc:  # pyvisa's VisaIOError, OSError, UnicodeDecodeError ...
            raise GeneratorError(f"generator {self.resource_name}: {command!r} failed: {type(exc).__name__}: {exc}") from exc

    def check_errors(self) -> None:
        """Raise :class:`GeneratorError` with the generator's first queued error, if any."""
        answer = self.query("SYSTem:ERRor?")
        code = answer.split(",", 1)[0].strip().lstrip("+")
        if code not in ("0", "-0"):
            raise GeneratorError(f"generator {self.resource_name} refused the set-up: {answer}")

    def burst(self, *, count: int, period_s: float, high_v: float, pulse_s: float) -> None:
        """Arm a burst of ``count`` pulses ``period_s`` apart (``high_v`` high, 0 V low,
        ``pulse_s`` wide), fired by :meth:`fire`, and switch the output on."""
        if count < 1 or not period_s > pulse_s > 0 or not high_v > 0:
            raise GeneratorError(f"a burst of {count} pulses of {pulse_s:g} s every {period_s:g} s at {high_v:g} V cannot be made")
        self._burst(count, period_s, high_v, pulse_s)
        self.check_errors()

    #: What the family's commands start with ("" or ":").
    root = ""

    def _burst(self, count: int, period_s: float, high_v: float, pulse_s: float) -> None:
        n, r = self.channel, self.root
        self.write("*CLS")
        self.write(f"{r}SOURce{n}:FUNCtion PULSe")
        self.write(f"{r}SOURce{n}:FREQuency {1.0 / period_s:.12g}")
        self.write(f"{r}SOURce{n}:FUNCtion:PULSe:WIDTh {pulse_s:.9g}")
        self.write(f"{r}SOURce{n}:VOLTage:LOW 0")
        self.write(f"{r}SOURce{n}:VOLTage:HIGH {high_v:.6g}")
        self.write(f"{r}SOURce{n}:BURSt:MODE TRIGgered")
        self.write(f"{r}SOURce{n}:BURSt:NCYCles {count}")
        for command in self._burst_on():
            self.write(command)
        self.write(f"{r}OUTPut{n} ON")

    @abc.abstractmethod
    def _burst_on(self) -> list[str]:
        """The family's commands that switch the burst on and make it wait for :meth:`fire`."""

    def fire(self) -> None:
        """Start the armed burst now; returns once the generator has taken the command."""
        self._fire()
        self.query("*OPC?")

    @abc.abstractmethod
    def _fire(self) -> None:
        """Send the family's command that starts the burst."""

    def close(self) -> None:
        """Switch the output off and close the session; a generator that no longer answers is
        logged (its output may still be on) and the session closed all the same."""
        try:
            self.write(f"OUTPut{self.channel} OFF")
        except GeneratorError as exc:
            log.warning("%s; its output may still be on", exc)
        finally:
            with contextlib.suppress(Exception):
                self._res.close()

    def __enter__(self) -> FunctionGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Keysight33500(FunctionGenerator):
    """Keysight 33500 series (see module doc)."""

    family = "keysight33500"

    def _burst_on(self) -> list[str]:
        return [f"SOURce{self.channel}:BURSt:STATe ON", f"TRIGger{self.channel}:SOURce BUS"]

    def _fire(self) -> None:
        self.write("*TRG")


class RigolDG(FunctionGenerator):
    """Rigol DG series (see module doc)."""

    family = "rigoldg"
    root = ":"

    def _burst_on(self) -> list[str]:
        return [f":SOURce{self.channel}:BURSt ON", f":SOURce{self.channel}:BURSt:TRIGger:SOURce MANual"]

    def _fire(self) -> None:
        self.write(f":SOURce{self.channel}:BURSt:TRIGger:IMMediate")


#: Driver class per family name (``[trigger] generator`` of a rig file).
GENERATORS: dict[str, type[FunctionGenerator]] = {"keysight33500": Keysight33500, "rigoldg": RigolDG}


def open_generator(family: str, resource: str, **options: Any) -> FunctionGenerator:
    """Open the generator at VISA ``resource`` with the driver of ``family``."""
    try:
        cls = GENERATORS[family]
    except KeyError:
        raise RigConfigError(f"unknown generator family {family!r} (known: {', '.join(GENERATORS)})", value=family) from None
    return cls(resource, **options)
