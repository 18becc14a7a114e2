"""Simulated function generators (Keysight 33500 and Rigol DG command sets, sans-IO), for the
loopback SCPI server: they keep the burst set-up, and when fired call ``on_fire(times_s,
high_v, pulse_s)`` with the pulse times from the firing instant, so the rig can drive the
emulated card's trigger input and the scope's view of the pulses."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .scpi import CommandSet, run_line

FireHandler = Callable[[list[float], float, float], None]


def _ignore(*args: object) -> None:
    """A setting the simulation accepts without modelling it."""


class SimulatedGenerator:
    """Shared state and protocol of the simulated generators; subclasses add their command set."""

    family = ""
    identity = ""

    def __init__(self, on_fire: FireHandler | None = None) -> None:
        self.on_fire = on_fire
        self.frequency_hz = 1e3
        self.count = 1
        self.high_v = 1.0
        self.low_v = 0.0
        self.width_s = 1e-7
        self.burst = False
        self.output = False
        self.fired: list[list[float]] = []
        self.errors: deque[str] = deque(maxlen=32)
        self.commands = CommandSet()
        self.commands.add("*IDN?", lambda: self.identity)
        self.commands.add("*OPC?", lambda: "1")
        self.commands.add("*CLS", lambda a="": self.errors.clear())
        self.commands.add("SYSTem:ERRor?", lambda: self.errors.popleft() if self.errors else '+0,"No error"')
        self.add_commands(self.commands)

    def add_commands(self, c: CommandSet) -> None:
        """Register the commands both families share; subclasses add their burst and fire commands."""
        c.add("SOURce#:FUNCtion", _ignore)
        c.add("SOURce#:FREQuency", self._set("frequency_hz", float))
        c.add("SOURce#:FUNCtion:PULSe:WIDTh", self._set("width_s", float))
        c.add("SOURce#:VOLTage:HIGH", self._set("high_v", float))
        c.add("SOURce#:VOLTage:LOW", self._set("low_v", float))
        c.add("SOURce#:BURSt:MODE", _ignore)
        c.add("SOURce#:BURSt:NCYCles", self._set("count", lambda a: int(float(a))))
        c.add("OUTPut#", self._set("output", _on))

    def handle(self, line: str) -> bytes | None:
        """Execute one line; return the answer bytes or None."""
        answers, _ = run_line(self.commands, line, self.errors)
        return b";".join(answers) + b"\n" if answers else None

    def fire(self, *args: object) -> None:
        """The burst starts now (only when set up as a burst with the output on)."""
        if not (self.burst and self.output):
            self.errors.append('-211,"Trigger ignored: burst off or output off"')
            return
        times = [k / self.frequency_hz for k in range(self.count)]
        self.fired.append(times)
        if self.on_fire is not None:
            self.on_fire(times, self.high_v, self.width_s)

    def _set(self, name: str, convert: Callable[[str], object]) -> Callable[..., None]:
        return lambda *a: setattr(self, name, convert(str(a[-1])))


def _on(text: str) -> bool:
    return text.strip().upper() in ("ON", "1")


class Keysight33500Sim(SimulatedGenerator):
    """Keysight 33500 series command set (the subset :mod:`hil.generators` uses)."""

    family = "keysight33500"
    identity = "Keysight Technologies,33622A,SIM0000001,A.02.03"

    def add_commands(self, c: CommandSet) -> None:
        super().add_commands(c)
        c.add("SOURce#:BURSt:STATe", self._set("burst", _on))
        c.add("TRIGger#:SOURce", _ignore)
        c.add("*TRG", self.fire)


class RigolDGSim(SimulatedGenerator):
    """Rigol DG series command set (the subset :mod:`hil.generators` uses)."""

    family = "rigoldg"
    identity = "Rigol Technologies,DG4102,DG4E000000001,00.01.14"

    def add_commands(self, c: CommandSet) -> None:
        super().add_commands(c)
        c.add("SOURce#:BURSt", self._set("burst", _on))
        c.add("SOURce#:BURSt:TRIGger:SOURce", _ignore)
        c.add("SOURce#:BURSt:TRIGger:IMMediate", self.fire)


#: Simulated generator class per family name.
SIMULATED_GENERATORS: dict[str, type[SimulatedGenerator]] = {"keysight33500": Keysight33500Sim, "rigoldg": RigolDGSim}
