"""Simulated scopes that speak the Keysight, Tektronix, Rigol, Rohde & Schwarz and LeCroy command sets (sans-IO).

:meth:`SimulatedScope.handle` takes one line the client sent and returns the bytes to send back
(None: no answer). The socket server (:mod:`hil.simrig.server`) is a thin adapter around it.
Acquisitions come from a :class:`~hil.simrig.scope_model.ScopeModel` looking at a
:class:`~hil.simrig.bench.Bench`; an armed acquisition completes when the bench publishes a
trigger edge on the trigger source (``*OPC?`` waits for it, up to ``max_wait_s``, and does not
answer if none comes, as a real scope would not).

``faults`` make the instrument misbehave, for testing the drivers' error handling:
``"silent"`` (answers nothing), ``"no-trigger"`` (acquisitions never complete),
``"truncated-block"`` (a block stops half way), ``"bad-block"`` (data without a block header),
``"short-preamble"`` (scaling answers with missing fields), ``"wrong-length"`` (a block one
sample shorter than promised), ``"long-block"`` (a block followed by stray bytes, as from a
scope that sent more than its header said), ``"bad-status"`` (a status register read while an
acquisition completes answers something that is not a number), ``"huge-header"`` (a data block
whose header claims 999,999,999 bytes), ``"empty-record"`` (a record of no points).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import RigConfigError
from .bench import Bench
from .scope_model import ScopeModel
from .scpi import CommandSet, definite_block, run_line

FAULTS = frozenset(
    {"silent", "no-trigger", "truncated-block", "bad-block", "short-preamble", "wrong-length", "long-block", "bad-status", "huge-header", "empty-record"}
)
NO_ERROR = '+0,"No error"'


def _on(args: str) -> bool:
    return args.strip().upper() in ("ON", "1", "RUN")


def _num(x: float) -> str:
    return f"{x:+.10E}"


def _ignore(*args: object) -> None:
    """A setting the simulation accepts and does not model (acquisition type, trigger slope, ...)."""


def _number(*args: object) -> None:
    """A numeric setting the simulation checks and does not model (trigger level)."""
    float(str(args[-1]))


class SimulatedScope:
    """Shared state and acquisition of the simulated scopes; subclasses add a command set.

    Settings are kept in canonical units: per input its full-scale ``range_v`` and the voltage at
    the screen centre, the sample rate, the record length and the time of the first sample
    relative to the trigger (``x_origin_s``).
    """

    family = ""
    identity = ""
    #: Vertical divisions (full-scale range = divisions x volts per division).
    divisions = 8

    def __init__(self, model: ScopeModel | None = None, bench: Bench | None = None, *, faults: Iterable[str] = (), max_wait_s: float = 30.0) -> None:
        self.model = model or ScopeModel()
        self.bench = bench or Bench()
        self.faults = frozenset(faults)
        unknown = self.faults - FAULTS
        if unknown:
            raise RigConfigError(f"unknown faults {sorted(unknown)} (known: {sorted(FAULTS)})")
        self.max_wait_s = max_wait_s
        self.rng = np.random.default_rng(self.model.seed)
        self.errors: deque[str] = deque(maxlen=32)
        self.range_v = {f"CH{i}": 8.0 for i in range(1, 5)}
        self.centre_v = {f"CH{i}": 0.0 for i in range(1, 5)}
        self.displayed = {"CH1"}
        self.sample_rate_hz = self.model.sample_rate_hz
        self.n_points = 1000
        self.x_origin_s = 0.0
        self.trigger_source = "CH2"
        self.state = "stopped"
        self._armed_generation = 0
        self.record: dict[str, np.ndarray] = {}
        self.commands = CommandSet()
        for pattern, fn in (("*IDN?", lambda: self.identity), ("*RST", self.reset), ("*CLS", self.errors.clear), ("*OPC?", self._opc), ("*ESR?", lambda: "+0")):
            self.commands.add(pattern, lambda *a, fn=fn: fn())
        self.add_commands(self.commands)

    # ------------------------------------------------------------------ dialect hooks

    def add_commands(self, commands: CommandSet) -> None:
        """Register the family's commands."""

    def reset(self) -> None:
        type(self).__init__(self, self.model, self.bench, faults=self.faults, max_wait_s=self.max_wait_s)

    # ------------------------------------------------------------------ protocol

    def handle(self, line: str) -> bytes | None:
        """Execute one line (commands separated by ``;``); return the answer bytes or None."""
        if "silent" in self.faults:
            return None
        answers, unanswered = run_line(self.commands, line, self.errors)
        if unanswered:
            return None  # an unanswerable query: the client will time out, as on a real scope
        return b";".join(answers) + b"\n" if answers else None

    def next_error(self) -> str:
        return self.errors.popleft() if self.errors else NO_ERROR

    # ------------------------------------------------------------------ acquisition

    def set_timebase(self, duration_s: float, x_origin_s: float, n_points: int | None = None) -> None:
        """Record ``duration_s`` starting at ``x_origin_s``: at the model's sample rate, unless the
        memory (``max_points``, or ``n_points`` when given) forces a lower one."""
        points = n_points or self.model.max_points
        rate = min(self.model.sample_rate_hz, points / duration_s)
        self.sample_rate_hz = rate
        self.n_points = 0 if "empty-record" in self.faults else max(1, min(self.model.max_points, round(duration_s * rate)))
        self.x_origin_s = x_origin_s

    def arm(self) -> None:
        self.state = "armed"
        self._armed_generation = self.bench.generation

    def stop(self) -> None:
        if self.state == "armed":
            self.state = "stopped"

    def complete(self, wait_s: float) -> bool:
        """Finish an armed acquisition if its trigger has come (waiting up to ``wait_s``)."""
        if self.state != "armed":
            return True
        if "no-trigger" in self.faults:
            return False
        t = self.bench.wait_trigger(self.trigger_source, self._armed_generation, wait_s)
        if t is None:
            return False
        channels = {ch: (self.applied_range_v(ch), self.centre_v[ch]) for ch in sorted(self.displayed)}
        self.record = self.model.acquire(
            self.bench, channels, trigger_time_s=t, n_points=self.n_points, sample_rate_hz=self.sample_rate_hz, x_origin_s=self.x_origin_s, rng=self.rng
        )
        self.state = "done"
        return True

    def _opc(self) -> str | None:
        return "1" if self.complete(self.max_wait_s) else None

    def codes(self, channel: str) -> np.ndarray:
        """ADC codes of ``channel`` in the last record (a data query before any record is an error)."""
        if channel not in self.record:
            raise KeyError(f"no acquired data for {channel}")
        return self.record[channel]

    def applied_range_v(self, channel: str) -> float:
        """The vertical range the scope applies: the asked one times the model's ``range_factor``."""
        return self.range_v[channel] * self.model.range_factor

    def lsb_v(self, channel: str) -> float:
        return self.applied_range_v(channel) / 2**self.model.adc_bits

    # ------------------------------------------------------------------ transfer helpers

    def block(self, samples: np.ndarray, dtype: str) -> bytes:
        """Samples as a definite-length block of ``dtype`` (numpy notation, byte order included),
        with the configured faults applied."""
        payload = np.ascontiguousarray(samples).astype(dtype).tobytes()
        if "wrong-length" in self.faults:
            payload = payload[: -np.dtype(dtype).itemsize]
        if "bad-block" in self.faults:
            return b"DATA " + payload[:64].hex().encode()
        block = definite_block(payload)
        if "huge-header" in self.faults:
            return b"#9999999999" + payload
        if "truncated-block" in self.faults:
            return block[: len(block) // 2]
        if "long-block" in self.faults:
            return block + b"\n" + payload[:48] + b"\n+1.0E+99,STRAY"
        return block

    def fields(self, values: list[str]) -> str:
        """A comma-separated answer (a preamble), shortened by the ``short-preamble`` fault."""
        return ",".join(values[: len(values) // 2] if "short-preamble" in self.faults else values)


class KeysightSim(SimulatedScope):
    """Keysight InfiniiVision command set (the subset :mod:`hil.scopes.keysight` uses, and queries)."""

    family = "keysight"
    identity = "KEYSIGHT TECHNOLOGIES,DSOX3034T,SIM0000001,07.50.2021102830"
    divisions = 8

    def __init__(self, *a, **kw) -> None:
        self.wave: dict[str, Any] = {"source": "CH1", "format": "BYTE", "order": "LSBF", "unsigned": False}
        self.timebase: dict[str, Any] = {"range": 1e-6, "position": 0.0, "reference": "CENT"}
        super().__init__(*a, **kw)

    def _source(self, args: str) -> str:
        word = args.strip().upper()
        for long, short in (("CHANNEL", "CHAN"), ("EXTERNAL", "EXT")):
            for w in (long, short):
                if word.startswith(w):
                    return "EXT" if short == "EXT" else f"CH{int(word[len(w) :] or 1)}"
        raise ValueError(f"unknown source {args!r}")

    def _retime(self) -> None:
        rng, pos, ref = self.timebase["range"], self.timebase["position"], self.timebase["reference"]
        left = pos - {"LEFT": 0.0, "CENT": 0.5, "RIGH": 1.0}[ref] * rng
        self.set_timebase(rng, left)

    def _set_tb(self, key: str, value) -> None:
        self.timebase[key] = value
        self._retime()

    def _digitize(self, args: str) -> None:
        if args:
            self.displayed = {self._source(a) for a in args.split(",")}
        self.arm()

    def _scale(self) -> tuple[float, float]:
        """(volts per transferred code, transferred code of the screen centre)."""
        bits = self.model.adc_bits
        lsb = self.lsb_v(self.wave["source"])
        if self.wave["format"] == "WORD":
            return lsb / 2 ** (16 - bits), 32768.0 if self.wave["unsigned"] else 0.0
        return lsb * 2 ** (bits - 8), 128.0 if self.wave["unsigned"] else 0.0

    def _preamble(self) -> str:
        ch = self.wave["source"]
        yinc, yref = self._scale()
        fmt = {"BYTE": "+0", "WORD": "+1"}[self.wave["format"]]
        n = self.codes(ch).size if ch in self.record else self.n_points
        values = [fmt, "+0", f"+{n}", "+1", _num(1 / self.sample_rate_hz), _num(self.x_origin_s), "+0", _num(yinc), _num(self.centre_v[ch]), f"+{int(yref)}"]
        return self.fields(values)

    def _data(self) -> bytes:
        codes = self.codes(self.wave["source"]).astype(np.int32)
        bits = self.model.adc_bits
        word = self.wave["format"] == "WORD"
        samples = codes << (16 - bits) if word else codes >> (bits - 8)
        if self.wave["unsigned"]:
            samples = samples + (32768 if word else 128)
        order = "<" if self.wave["order"] == "LSBF" else ">"
        dtype = f"{order}{'u' if self.wave['unsigned'] else 'i'}{2 if word else 1}"
        return self.block(samples, dtype)

    def add_commands(self, c: CommandSet) -> None:
        c.add("SYSTem:ERRor?", self.next_error)
        c.add("CHANnel#:RANGe", lambda n, a: self.range_v.__setitem__(f"CH{n}", float(a)))
        c.add("CHANnel#:RANGe?", lambda n: _num(self.applied_range_v(f"CH{n}")))
        c.add("CHANnel#:SCALe", lambda n, a: self.range_v.__setitem__(f"CH{n}", float(a) * self.divisions))
        c.add("CHANnel#:OFFSet", lambda n, a: self.centre_v.__setitem__(f"CH{n}", float(a)))
        c.add("CHANnel#:OFFSet?", lambda n: _num(self.centre_v[f"CH{n}"]))
        c.add("CHANnel#:DISPlay", lambda n, a: (self.displayed.add if _on(a) else self.displayed.discard)(f"CH{n}"))
        c.add("TIMebase:MODE", _ignore)
        c.add("TIMebase:RANGe", lambda a: self._set_tb("range", float(a)))
        c.add("TIMebase:RANGe?", lambda: _num(self.timebase["range"]))
        c.add("TIMebase:POSition", lambda a: self._set_tb("position", float(a)))
        c.add("TIMebase:REFerence", lambda a: self._set_tb("reference", a.strip().upper()[:4]))
        c.add("ACQuire:TYPE", _ignore)
        c.add("ACQuire:SRATe?", lambda: _num(self.sample_rate_hz))
        c.add("ACQuire:POINts?", lambda: f"+{self.n_points}")
        c.add("TRIGger:MODE", _ignore)
        c.add("TRIGger:EDGE:SOURce", lambda a: setattr(self, "trigger_source", self._source(a)))
        c.add("TRIGger:EDGE:LEVel", _number)
        c.add("TRIGger:EDGE:SLOPe", _ignore)
        c.add("DIGitize", self._digitize)
        c.add("AER?", lambda: "+1" if self.state in ("armed", "done") else "+0")
        c.add("OPERegister:CONDition?", lambda: "BUSY?" if "bad-status" in self.faults else "+0" if self.complete(0.0) else "+8")
        c.add("SINGle", lambda a: self.arm())
        c.add("STOP", lambda a: self.stop())
        c.add("RUN", _ignore)
        c.add("WAVeform:SOURce", lambda a: self.wave.__setitem__("source", self._source(a)))
        c.add("WAVeform:FORMat", lambda a: self.wave.__setitem__("format", {"BYTE": "BYTE", "WORD": "WORD"}[a.strip().upper()]))
        c.add("WAVeform:BYTeorder", lambda a: self.wave.__setitem__("order", a.strip().upper()[:4]))
        c.add("WAVeform:UNSigned", lambda a: self.wave.__setitem__("unsigned", _on(a)))
        c.add("WAVeform:POINts:MODE", _ignore)
        c.add("WAVeform:POINts", _ignore)
        c.add("WAVeform:POINts?", lambda: f"+{self.n_points}")
        c.add("WAVeform:PREamble?", self._preamble)
        c.add("WAVeform:DATA?", self._data)


class TektronixSim(SimulatedScope):
    """Tektronix MSO 4/5/6 command set (the subset :mod:`hil.scopes.tektronix` uses)."""

    family = "tektronix"
    identity = "TEKTRONIX,MSO64,SIM000001,CF:91.1CT FV:1.40.7"
    divisions = 10

    def __init__(self, *a, **kw) -> None:
        self.position_div = {f"CH{i}": 0.0 for i in range(1, 5)}
        self.offset_v = {f"CH{i}": 0.0 for i in range(1, 5)}
        self.data: dict[str, Any] = {"source": "CH1", "encoding": "SRIBINARY", "bytes": 1, "start": 1, "stop": 10**9}
        self.horizontal: dict[str, Any] = {"rate": 2.5e9, "points": 1000, "position": 50.0}
        self.stop_after_sequence = False
        super().__init__(*a, **kw)

    def _retime(self) -> None:
        h = self.horizontal
        self.set_timebase(h["points"] / min(h["rate"], self.model.sample_rate_hz), 0.0, int(h["points"]))
        self.x_origin_s = -h["position"] / 100.0 * self.n_points / self.sample_rate_hz

    def _set_h(self, key: str, value: float) -> None:
        self.horizontal[key] = value
        self._retime()

    def _vertical(self, ch: str) -> None:
        # codes are taken around the offset voltage and shifted by the position (YOFf) on the way
        # out; the ADC's clipping window does not move with the position in this model
        self.centre_v[ch] = self.offset_v[ch]

    def _yoff(self, ch: str) -> int:
        """Screen position in 8-bit codes (an integer number of codes)."""
        return round(self.position_div[ch] * 2**self.model.adc_bits / self.divisions)

    def _set_v(self, table: dict, n: int, value: float) -> None:
        table[f"CH{n}"] = value
        self._vertical(f"CH{n}")

    def _set_scale(self, n: int, args: str) -> None:
        self.range_v[f"CH{n}"] = float(args) * self.divisions
        self._vertical(f"CH{n}")

    def _acq_state(self, args: str) -> None:
        if _on(args):
            self.arm()
        else:
            self.stop()

    def _transfer_scale(self) -> float:
        return 2 ** (8 * self.data["bytes"] - self.model.adc_bits)

    def _curve(self) -> bytes:
        ch = self.data["source"]
        codes = (self.codes(ch).astype(np.int32) + self._yoff(ch)) * int(self._transfer_scale())
        lo, hi = max(1, self.data["start"]), min(codes.size, self.data["stop"])
        order = "<" if self.data["encoding"].startswith("S") else ">"
        return self.block(codes[lo - 1 : hi], f"{order}i{self.data['bytes']}")

    def _wfm(self, key: str) -> str:
        ch = self.data["source"]
        values = {
            "XINcr": 1 / self.sample_rate_hz,
            "XZEro": self.x_origin_s,
            "YMUlt": self.lsb_v(ch) / self._transfer_scale(),
            "YZEro": self.offset_v[ch],
            "YOFf": self._yoff(ch) * self._transfer_scale(),
        }
        if "short-preamble" in self.faults and key == "YMUlt":
            return ""
        return _num(values[key])

    def add_commands(self, c: CommandSet) -> None:
        c.add("HEADer", _ignore)
        c.add("VERBose", _ignore)
        c.add("ALLEv?", lambda: self.next_error())
        c.add("CH#:SCAle", self._set_scale)
        c.add("CH#:SCAle?", lambda n: _num(self.applied_range_v(f"CH{n}") / self.divisions))
        c.add("CH#:OFFSet", lambda n, a: self._set_v(self.offset_v, n, float(a)))
        c.add("CH#:POSition", lambda n, a: self._set_v(self.position_div, n, float(a)))
        c.add("DISplay:GLObal:CH#:STATE", lambda n, a: (self.displayed.add if _on(a) else self.displayed.discard)(f"CH{n}"))
        c.add("HORizontal:MODE", _ignore)
        c.add("HORizontal:MODE:SAMPLERate", lambda a: self._set_h("rate", float(a)))
        c.add("HORizontal:MODE:SAMPLERate?", lambda: _num(self.sample_rate_hz))
        c.add("HORizontal:MODE:RECOrdlength", lambda a: self._set_h("points", int(float(a))))
        c.add("HORizontal:MODE:RECOrdlength?", lambda: str(self.n_points))
        c.add("HORizontal:RECOrdlength?", lambda: str(self.n_points))
        c.add("HORizontal:DELay:MODe", _ignore)
        c.add("HORizontal:POSition", lambda a: self._set_h("position", float(a)))
        c.add("ACQuire:MODe", _ignore)
        c.add("ACQuire:STOPAfter", lambda a: setattr(self, "stop_after_sequence", a.strip().upper().startswith("SEQ")))
        c.add("ACQuire:STATE", self._acq_state)
        c.add("TRIGger:A:TYPe", _ignore)
        c.add("TRIGger:A:EDGE:SOUrce", lambda a: setattr(self, "trigger_source", "EXT" if a.strip().upper().startswith("AUX") else a.strip().upper()))
        c.add("TRIGger:A:LEVel:CH#", _number)
        c.add("TRIGger:A:LEVel:AUXiliary", _number)
        c.add("TRIGger:A:EDGE:SLOpe", _ignore)
        c.add("TRIGger:STATE?", lambda: "READY" if self.state == "armed" else "SAVE")
        c.add("DATa:SOUrce", lambda a: self.data.__setitem__("source", a.strip().upper()))
        c.add("DATa:ENCdg", lambda a: self.data.__setitem__("encoding", {"SRIBINARY": "SRIBINARY", "RIBINARY": "RIBINARY"}[a.strip().upper()]))
        c.add("WFMOutpre:BYT_Nr", lambda a: self.data.__setitem__("bytes", {1: 1, 2: 2}[int(a)]))
        c.add("DATa:STARt", lambda a: self.data.__setitem__("start", int(a)))
        c.add("DATa:STOP", lambda a: self.data.__setitem__("stop", int(a)))
        for key in ("XINcr", "XZEro", "YMUlt", "YZEro", "YOFf"):
            c.add(f"WFMOutpre:{key}?", lambda key=key: self._wfm(key))
        c.add("CURVe?", self._curve)


class RigolSim(SimulatedScope):
    """Rigol DS1000Z command set (the subset :mod:`hil.scopes.rigol` uses). One ``:WAV:DATA?``
    returns at most :data:`hil.scopes.rigol.MAX_CHUNK` points, as on the scope."""

    family = "rigol"
    identity = "RIGOL TECHNOLOGIES,DS1104Z,DS1ZA000000001,00.04.04.SP4"
    divisions = 8
    max_chunk = 250_000

    def __init__(self, *a, **kw) -> None:
        self.wave: dict[str, Any] = {"source": "CH1", "start": 1, "stop": 1200}
        self.horizontal: dict[str, Any] = {"scale": 1e-6, "offset": 0.0, "depth": 12_000}
        super().__init__(*a, **kw)

    def _retime(self) -> None:
        h = self.horizontal
        duration = 12 * h["scale"]
        self.set_timebase(duration, h["offset"] - duration / 2, int(h["depth"]))

    def _set_h(self, key: str, value: float) -> None:
        self.horizontal[key] = value
        self._retime()

    @staticmethod
    def _format(args: str) -> None:
        if args.strip().upper() != "BYTE":
            raise ValueError("the simulated DS1000Z transfers BYTE only")

    def _trigger_status(self) -> str:
        if self.state == "armed" and not self.complete(0.0):
            return "WAIT"
        return "STOP"

    def _preamble(self) -> str:
        ch = self.wave["source"]
        lsb = self.lsb_v(ch)
        values = [
            "0",
            "2",
            str(self.n_points),
            "1",
            _num(1 / self.sample_rate_hz),
            _num(self.x_origin_s),
            "0",
            _num(lsb),
            _num(-self.centre_v[ch] / lsb),
            "128",
        ]
        return self.fields(values)

    def _data(self) -> bytes:
        start, stop = self.wave["start"], self.wave["stop"]
        if stop - start + 1 > self.max_chunk:
            self.errors.append('-222,"Data out of range"')
            return definite_block(b"")
        codes = self.codes(self.wave["source"]).astype(np.int32) + 128
        return self.block(codes[start - 1 : stop], "u1")

    def add_commands(self, c: CommandSet) -> None:
        c.add("SYSTem:ERRor?", self.next_error)
        c.add("CHANnel#:SCALe", lambda n, a: self.range_v.__setitem__(f"CH{n}", float(a) * self.divisions))
        c.add("CHANnel#:SCALe?", lambda n: _num(self.applied_range_v(f"CH{n}") / self.divisions))
        c.add("CHANnel#:OFFSet", lambda n, a: self.centre_v.__setitem__(f"CH{n}", -float(a)))
        c.add("CHANnel#:DISPlay", lambda n, a: (self.displayed.add if _on(a) else self.displayed.discard)(f"CH{n}"))
        c.add("TIMebase:MAIN:SCALe", lambda a: self._set_h("scale", float(a)))
        c.add("TIMebase:MAIN:OFFSet", lambda a: self._set_h("offset", float(a)))
        c.add("ACQuire:MDEPth", lambda a: self._set_h("depth", int(float(a))))
        c.add("ACQuire:MDEPth?", lambda: str(self.n_points))
        c.add("ACQuire:SRATe?", lambda: _num(self.sample_rate_hz))
        c.add("TRIGger:MODE", _ignore)
        c.add("TRIGger:EDGe:SOURce", lambda a: setattr(self, "trigger_source", "EXT" if a.strip().upper().startswith("EXT") else f"CH{a.strip()[-1]}"))
        c.add("TRIGger:EDGe:LEVel", _number)
        c.add("TRIGger:EDGe:SLOPe", _ignore)
        c.add("TRIGger:STATus?", self._trigger_status)
        c.add("SINGle", lambda a: self.arm())
        c.add("STOP", lambda a: self.stop())
        c.add("RUN", _ignore)
        c.add("WAVeform:SOURce", lambda a: self.wave.__setitem__("source", f"CH{a.strip()[-1]}"))
        c.add("WAVeform:MODE", _ignore)
        c.add("WAVeform:FORMat", self._format)
        c.add("WAVeform:STARt", lambda a: self.wave.__setitem__("start", int(a)))
        c.add("WAVeform:STOP", lambda a: self.wave.__setitem__("stop", int(a)))
        c.add("WAVeform:PREamble?", self._preamble)
        c.add("WAVeform:DATA?", self._data)


class RohdeSim(SimulatedScope):
    """R&S RTB2000 / RTM3000 command set (the subset :mod:`hil.scopes.rohde` uses)."""

    family = "rohde"
    identity = "Rohde&Schwarz,RTB2004,1333.1005k04/100000,02.300"
    divisions = 10

    def __init__(self, *a, **kw) -> None:
        self.timebase: dict[str, Any] = {"range": 1e-6, "reference": 50.0, "points": 10_000}
        self.format: dict[str, Any] = {"bits": 8, "order": "LSBF"}
        super().__init__(*a, **kw)

    def _retime(self) -> None:
        t = self.timebase
        self.set_timebase(t["range"], -t["reference"] / 100.0 * t["range"], int(t["points"]))

    def _set_tb(self, key: str, value: float) -> None:
        self.timebase[key] = value
        self._retime()

    def _format(self, args: str) -> None:
        kind, _, bits = args.strip().upper().partition(",")
        if not kind.startswith("UINT") or int(bits) not in (8, 16):
            raise ValueError("the simulated RTB transfers UINT,8 or UINT,16")
        self.format["bits"] = int(bits)

    def _scale(self, ch: str) -> tuple[float, float, int]:
        """(volts per transferred code, volts of code 0, the code offset added to ADC codes)."""
        bits = self.format["bits"]
        yinc = self.lsb_v(ch) / 2 ** (bits - self.model.adc_bits)
        zero = 2 ** (bits - 1)
        return yinc, self.centre_v[ch] - zero * yinc, zero

    def _header(self, n: int) -> str:
        points = self.codes(f"CH{n}").size
        return self.fields([_num(self.x_origin_s), _num(self.x_origin_s + points / self.sample_rate_hz), str(points), "1"])

    def _scaling(self, n: int, key: str) -> str:
        yinc, yor, _ = self._scale(f"CH{n}")
        return _num({"XORigin": self.x_origin_s, "XINCrement": 1 / self.sample_rate_hz, "YORigin": yor, "YINCrement": yinc}[key])

    def _data(self, n: int) -> bytes:
        ch = f"CH{n}"
        _, _, zero = self._scale(ch)
        bits = self.format["bits"]
        codes = (self.codes(ch).astype(np.int64) << (bits - self.model.adc_bits)) + zero
        order = "<" if self.format["order"] == "LSBF" else ">"
        return self.block(codes, f"{order}u{bits // 8}")

    def _acq_state(self) -> str:
        if self.state == "armed":
            return "RUN" if not self.complete(0.0) else "COMP"
        return "COMP" if self.state == "done" else "STOP"

    def add_commands(self, c: CommandSet) -> None:
        c.add("SYSTem:ERRor?", self.next_error)
        c.add("CHANnel#:STATe", lambda n, a: (self.displayed.add if _on(a) else self.displayed.discard)(f"CH{n}"))
        c.add("CHANnel#:RANGe", lambda n, a: self.range_v.__setitem__(f"CH{n}", float(a)))
        c.add("CHANnel#:RANGe?", lambda n: _num(self.applied_range_v(f"CH{n}")))
        c.add("CHANnel#:OFFSet", lambda n, a: self.centre_v.__setitem__(f"CH{n}", float(a)))
        c.add("TIMebase:RANGe", lambda a: self._set_tb("range", float(a)))
        c.add("TIMebase:REFerence", lambda a: self._set_tb("reference", float(a)))
        c.add("ACQuire:POINts", lambda a: self._set_tb("points", int(float(a))))
        c.add("ACQuire:POINts?", lambda: str(self.n_points))
        c.add("ACQuire:SRATe?", lambda: _num(self.sample_rate_hz))
        c.add("ACQuire:STATe?", self._acq_state)
        c.add("TRIGger:A:MODE", _ignore)
        c.add("TRIGger:A:TYPE", _ignore)
        c.add("TRIGger:A:SOURce", lambda a: setattr(self, "trigger_source", "EXT" if a.strip().upper().startswith("EXT") else a.strip().upper()))
        c.add("TRIGger:A:LEVel#:VALue", _number)
        c.add("TRIGger:A:EDGE:SLOPe", _ignore)
        c.add("SINGle", lambda a: self.arm())
        c.add("STOP", lambda a: self.stop())
        c.add("FORMat:DATA", self._format)
        c.add("FORMat:BORDer", lambda a: self.format.__setitem__("order", a.strip().upper()[:4]))
        c.add("CHANnel#:DATA:HEADer?", self._header)
        for key in ("XORigin", "XINCrement", "YORigin", "YINCrement"):
            c.add(f"CHANnel#:DATA:{key}?", lambda n, key=key: self._scaling(n, key))
        c.add("CHANnel#:DATA?", self._data)


class LeCroySim(SimulatedScope):
    """Teledyne LeCroy MAUI command set (the subset :mod:`hil.scopes.lecroy` uses), answering
    ``WAVEFORM? DESC`` with a LECROY_2_3 descriptor."""

    family = "lecroy"
    identity = "LECROY,WS4034HD,LCRY0000N00001,11.3.0"
    divisions = 8

    def __init__(self, *a, **kw) -> None:
        self.horizontal: dict[str, Any] = {"time_div": 1e-7, "delay": 0.0, "points": 10_000}
        self.comm: dict[str, Any] = {"word": False, "order": "LO"}
        self.new_acquisition = False
        super().__init__(*a, **kw)

    def handle(self, line: str) -> bytes | None:
        # a query with an argument (``C1:WAVEFORM? DESC``): the argument names what is asked
        parts = [p.strip() for p in line.split(";")]
        for i, p in enumerate(parts):
            head, _, arg = p.partition(" ")
            if head.upper().endswith(("WAVEFORM?", "WF?")):
                what = {"DESC": "DESC", "DAT1": "DATA"}.get(arg.strip().upper(), arg.strip().upper())
                parts[i] = head[: head.upper().rindex("W")] + "WF_" + what + "?"
        return super().handle(";".join(parts))

    def _retime(self) -> None:
        h = self.horizontal
        duration = 10 * h["time_div"]
        self.set_timebase(duration, -(h["delay"] + duration / 2), int(h["points"]))

    def _set_h(self, key: str, value: float) -> None:
        self.horizontal[key] = value
        self._retime()

    def _trig_mode(self, args: str) -> None:
        mode = args.strip().upper()
        if mode.startswith("SINGLE"):
            self.new_acquisition = False
            self.arm()
        elif mode.startswith("STOP"):
            self.stop()

    def _inr(self) -> str:
        if "bad-status" in self.faults:
            return "INR BUSY?"
        if self.state == "armed" and self.complete(0.0):
            self.new_acquisition = True
        answer, self.new_acquisition = ("1" if self.new_acquisition else "0"), False
        return answer

    def _codes(self, ch: str) -> tuple[np.ndarray, float]:
        """Transferred codes and volts per code."""
        bits = self.model.adc_bits
        codes = self.codes(ch).astype(np.int32)
        if self.comm["word"]:
            return codes << (16 - bits), self.lsb_v(ch) / 2 ** (16 - bits)
        return codes >> (bits - 8), self.lsb_v(ch) * 2 ** (bits - 8)

    def _desc(self, n: int) -> bytes:
        ch = f"CH{n}"
        codes, gain = self._codes(ch)
        size = 2 if self.comm["word"] else 1
        o = "<" if self.comm["order"] == "LO" else ">"
        raw = bytearray(346)
        raw[0:16] = b"WAVEDESC".ljust(16, b"\0")
        raw[16:32] = b"LECROY_2_3".ljust(16, b"\0")
        struct.pack_into(o + "h", raw, 32, 1 if self.comm["word"] else 0)
        struct.pack_into(o + "h", raw, 34, 1 if self.comm["order"] == "LO" else 0)
        struct.pack_into(o + "l", raw, 36, 346)
        struct.pack_into(o + "l", raw, 60, codes.size * size)
        raw[76:92] = b"LECROYWS4034HD".ljust(16, b"\0")
        struct.pack_into(o + "l", raw, 116, codes.size)
        struct.pack_into(o + "f", raw, 156, gain)
        struct.pack_into(o + "f", raw, 160, -self.centre_v[ch])
        struct.pack_into(o + "f", raw, 176, 1 / self.sample_rate_hz)
        struct.pack_into(o + "d", raw, 180, self.x_origin_s)
        if "short-preamble" in self.faults:
            raw = raw[:100]
        return definite_block(bytes(raw))  # the block faults apply to the data array

    def _dat1(self, n: int) -> bytes:
        codes, _ = self._codes(f"CH{n}")
        o = "<" if self.comm["order"] == "LO" else ">"
        return self.block(codes, f"{o}i2" if self.comm["word"] else "i1")

    def _comm_format(self, args: str) -> None:
        block, kind, encoding = (a.strip().upper() for a in args.split(","))
        if block != "DEF9" or encoding != "BIN" or kind not in ("BYTE", "WORD"):
            raise ValueError(f"COMM_FORMAT {args!r} is not simulated")
        self.comm["word"] = kind == "WORD"

    def add_commands(self, c: CommandSet) -> None:
        c.add("COMM_HEADER", _ignore)
        c.add("CHL?", self.next_error)
        c.add("C#:TRACE", lambda n, a: (self.displayed.add if _on(a) else self.displayed.discard)(f"CH{n}"))
        c.add("C#:VOLT_DIV", lambda n, a: self.range_v.__setitem__(f"CH{n}", float(a) * self.divisions))
        c.add("C#:VOLT_DIV?", lambda n: _num(self.applied_range_v(f"CH{n}") / self.divisions))
        c.add("C#:OFFSET", lambda n, a: self.centre_v.__setitem__(f"CH{n}", -float(a)))
        c.add("TIME_DIV", lambda a: self._set_h("time_div", float(a)))
        c.add("TRIG_DELAY", lambda a: self._set_h("delay", float(a)))
        c.add("MEMORY_SIZE", lambda a: self._set_h("points", int(float(a))))
        c.add("VBS?", lambda: _num(self.sample_rate_hz))
        c.add("TRIG_SELECT", lambda a: setattr(self, "trigger_source", {"EX": "EXT"}.get(a.split(",")[2].strip().upper(), "CH" + a.split(",")[2].strip()[-1])))
        c.add("C#:TRIG_LEVEL", lambda n, a: _number(a))
        c.add("EX:TRIG_LEVEL", _number)
        c.add("C#:TRIG_SLOPE", lambda n, a: None)
        c.add("EX:TRIG_SLOPE", _ignore)
        c.add("TRIG_MODE", self._trig_mode)
        c.add("TRIG_MODE?", lambda: "SINGLE" if self.state == "armed" else "STOP")
        c.add("INR?", self._inr)
        c.add("COMM_FORMAT", self._comm_format)
        c.add("COMM_ORDER", lambda a: self.comm.__setitem__("order", {"LO": "LO", "HI": "HI"}[a.strip().upper()]))
        c.add("C#:WF_DESC?", self._desc)
        c.add("C#:WF_DATA?", self._dat1)


#: Simulated instrument class per family name.
SIMULATED = {"keysight": KeysightSim, "tektronix": TektronixSim, "rigol": RigolSim, "rohde": RohdeSim, "lecroy": LeCroySim}
