"""Rig configuration (``rig.toml``) and the rigs that play a program and let a scope record it.

A rig is a card, a scope and the wiring between them: which scope input sees each AWG channel,
and which sees the card's trigger (the edge that starts replay is t = 0 of every record) or, with
``[trigger] scope = "marker"``, a marker line the card raises at the first sample it plays. See
``hil/rig.example.toml`` for every key. :func:`open_rig` gives

- :class:`SimRig` for ``"sim"`` (or a rig file with ``[card] backend = "sim"``): the simulated
  card (:class:`~awgrt.backends.SimBackend`), its analog output model, a scope model behind a
  loopback SCPI server, and the real pyvisa driver talking to it;
- :class:`HardwareRig` for ``"spcm"``: the card through ``awgrt.backends.SpcmBackend`` and the
  scope at its VISA resource;
- :class:`EmulatedRig` for ``"emulated"``: the hardware rig's code path with ``SpcmBackend`` on
  the emulated driver and the simulated scope behind the loopback server.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
import time
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from awgrt._files import read_text
from awgrt.backends import Backend, SimBackend
from awgrt.card import CARDS, DEFAULT_CARD, XIO_LINES, ClockConfig, unknown_card_message
from awgrt.errors import SerializationError
from awgrt.ir.intent import MARKER_LINES
from awgrt.program import CompiledSequenceProgram

from .errors import RigConfigError
from .generators import FunctionGenerator, open_generator
from .limits import Limits
from .response import Filter, SignalPath
from .scopes import CHANNELS, DRIVERS, TRIGGER_SOURCES, Scope, open_scope
from .simrig.bench import Bench
from .simrig.faults import Faults
from .simrig.generator import SIMULATED_GENERATORS
from .simrig.instrument import SIMULATED
from .simrig.scope_model import ScopeModel
from .simrig.server import LoopbackScpiServer
from .simrig.signals import DacOutput, FunctionSignal

#: How the rig's card is driven: the simulator (SimBackend), the real card (SpcmBackend), or
#: SpcmBackend on the emulated driver (the rig code path in CI).
CARD_BACKENDS = ("sim", "spcm", "emulated")


@dataclass(frozen=True)
class CardConfig:
    """The AWG card: ``model`` (a name in ``awgrt.CARDS``), ``backend`` (``"sim"`` or ``"spcm"``),
    ``device`` (the spcm device, e.g. ``"/dev/spcm0"``; None: the first AWG found), sample rate,
    output amplitude (mV at full scale, into 50 ohm), rated clock accuracy (ppm), its
    reconstruction filter, the output delay (s) from a sample to the scope input, and its clock:
    ``clock_source`` (``"internal"``, or ``"external_reference"``: locked to the lab reference of
    ``reference_hz`` fed to its clock input) and ``clock_output`` (the card's clock output on)."""

    model: str = DEFAULT_CARD
    backend: str = "sim"
    device: str | None = None
    sample_rate_hz: float = 625e6
    amplitude_mv: int = 1000
    clock_ppm: float = 20.0
    reconstruction: Filter = Filter("butterworth", 280e6, 3)
    output_delay_s: float = 0.0
    clock_source: str = "internal"
    reference_hz: float = 10e6
    clock_output: bool = False

    @property
    def clock(self) -> ClockConfig:
        """The clock set-up the card is configured with."""
        external = self.clock_source == "external_reference"
        return ClockConfig(self.clock_source, self.reference_hz if external else None, self.clock_output)  # type: ignore[arg-type]  # checked by RigConfig


@dataclass(frozen=True)
class ScopeConfig:
    """The scope: driver ``family``, VISA ``resource`` (``"sim"``: a simulated scope on a
    loopback server), sample rate to ask for, ADC bits, front end (for expected amplitudes),
    rated timebase accuracy (ppm), I/O timeout (s), driver ``options`` (byte order, words) and
    the VISA library (``""``: the system's, falling back to pyvisa-py; ``"@py"``: pyvisa-py).
    ``enob``: effective bits at the rate and bandwidth used (from the scope's data sheet; 0:
    ``adc_bits`` less 1.85), which sets the rig's nominal noise the checks are judged against."""

    family: str = "keysight"
    resource: str = "sim"
    sample_rate_hz: float = 2.5e9
    adc_bits: int = 8
    enob: float = 0.0
    front_end: Filter = Filter("bessel", 1e9, 4)
    timebase_ppm: float = 25.0
    timeout_s: float = 10.0
    options: Mapping[str, Any] = field(default_factory=dict)
    visa_library: str = ""


#: Where the card's triggers come from.
TRIGGER_KINDS = ("software", "generator")
#: What the scope triggers on (``[trigger] scope``).
SCOPE_TRIGGERS = ("card", "marker")


@dataclass(frozen=True)
class TriggerConfig:
    """How the rig triggers the card (``[trigger]`` of a rig file). ``source``: ``"software"``
    (the card's force trigger; triggers after the first come from the host's clock, good to about
    ``software_jitter_s``, so checks after them are only as well placed) or ``"generator"``: a
    function generator of ``generator`` family (``hil.generators``) at VISA ``resource`` whose
    output ``channel`` drives the card's EXT0 input (threshold ``card_level_v``) and the scope
    input ``[wiring] trigger``, pulses ``high_v`` high and ``pulse_s`` wide; the scope triggers on
    the first pulse and records them all, so each trigger's time is measured.

    ``scope``: what ``[wiring] trigger`` carries and the scope triggers on: ``"card"`` (the
    card's trigger output, or the generator's pulses: t = 0 of a record is the first trigger) or
    ``"marker"`` (the card's multi-purpose line ``marker_line``, which each suite program raises
    at the start of every pass of its first segment: t = 0 is the first sample replay plays, so
    the trigger latency is out of the timing). On a scope channel the marker's edges are
    recorded: each pass of that segment is timed, and with software triggers the pass a later
    trigger ended it on is measured rather than assumed. ``marker_delay_s``: from a card sample
    to its marker edge at the scope input (the analog output's is ``[card] output_delay_s``)."""

    source: str = "software"
    software_jitter_s: float = 2e-3
    generator: str = "keysight33500"
    resource: str = "sim"
    channel: int = 1
    high_v: float = 2.5
    pulse_s: float = 1e-7
    card_level_v: float = 1.0
    scope: str = "card"
    marker_line: str = "X0"
    marker_delay_s: float = 0.0

    @property
    def marker(self) -> bool:
        """The scope triggers on the card's marker line."""
        return self.scope == "marker"


@dataclass(frozen=True)
class ReferenceTone:
    """A reference tone on a spare scope input (``[clock] reference_input``): a frequency
    standard's output (a rubidium or GPS-disciplined oscillator's 10 MHz) of ``hz``, accurate to
    ``ppm``, about ``amplitude_v`` peak at the scope input. Recorded with every frequency check,
    it measures the scope's timebase error, so the card's clock error is told apart from it."""

    input: str
    hz: float = 10e6
    ppm: float = 0.01
    amplitude_v: float = 1.0


@dataclass(frozen=True)
class RigConfig:
    """A whole rig (see module doc). ``wiring``: AWG hardware channel -> scope input;
    ``trigger_input``: the scope input that sees the card's trigger; ``shared_reference``: card
    and scope share a 10 MHz reference; ``reference``: a reference tone the scope records instead
    (:class:`ReferenceTone`); ``limits``: pass limits (defaults from the scope's
    resolution); ``sim_scope``: the scope model of a simulated rig."""

    name: str = "sim"
    card: CardConfig = CardConfig()
    scope: ScopeConfig = ScopeConfig()
    wiring: Mapping[int, str] = field(default_factory=lambda: {0: "CH1", 1: "CH3"})
    trigger_input: str = "CH2"
    trigger_level_v: float = 0.5
    shared_reference: bool = False
    limits: Limits | None = None
    sim_scope: ScopeModel = ScopeModel()
    trigger: TriggerConfig = TriggerConfig()
    reference: ReferenceTone | None = None

    def __post_init__(self) -> None:
        if self.trigger.source not in TRIGGER_KINDS:
            raise RigConfigError(f"[trigger] source must be one of {', '.join(TRIGGER_KINDS)}, got {self.trigger.source!r}", value=self.trigger.source)
        if self.trigger.scope not in SCOPE_TRIGGERS:
            raise RigConfigError(f"[trigger] scope must be one of {', '.join(SCOPE_TRIGGERS)}, got {self.trigger.scope!r}", value=self.trigger.scope)
        if self.trigger.marker_line not in MARKER_LINES:
            raise RigConfigError(
                f"[trigger] marker_line must be one of the card's multi-purpose lines {', '.join(MARKER_LINES)}, got {self.trigger.marker_line!r}",
                value=self.trigger.marker_line,
            )
        if self.trigger.source == "generator" and not self.trigger.marker and self.trigger_input not in CHANNELS:
            raise RigConfigError(
                f"[wiring] trigger must be a scope channel ({', '.join(CHANNELS)}) that records the generator's pulses, got {self.trigger_input!r}"
            )
        if self.card.model not in CARDS:
            raise RigConfigError(f"[card] {unknown_card_message(self.card.model, CARDS)}", value=self.card.model)
        clock_problem = self.card.clock.problem(CARDS[self.card.model])
        if clock_problem:
            raise RigConfigError(f"[card] clock_source / reference_hz / clock_output: {clock_problem}", value=self.card.clock_source)
        if self.card.backend not in CARD_BACKENDS:
            raise RigConfigError(f"[card] backend must be one of {', '.join(CARD_BACKENDS)}, got {self.card.backend!r}", value=self.card.backend)
        if self.scope.family not in DRIVERS:
            raise RigConfigError(f"[scope] family {self.scope.family!r} unknown (known: {', '.join(DRIVERS)})", value=self.scope.family)
        bad = {k: v for k, v in self.wiring.items() if v not in CHANNELS}
        if bad or self.trigger_input not in TRIGGER_SOURCES or self.trigger_input in self.wiring.values():
            raise RigConfigError(
                f"[wiring] maps AWG channels to {CHANNELS} and the trigger to another input of {TRIGGER_SOURCES}; "
                f"got {dict(self.wiring)}, trigger {self.trigger_input!r}"
            )
        ref = self.reference
        if ref is not None:
            taken = {*self.wiring.values(), self.trigger_input}
            if ref.input not in CHANNELS or ref.input in taken:
                raise RigConfigError(
                    f"[clock] reference_input must be a scope channel ({', '.join(CHANNELS)}) no AWG channel or trigger uses, got {ref.input!r}",
                    value=ref.input,
                )
            if self.shared_reference:
                raise RigConfigError("[clock]: a shared reference puts card and scope on one clock; a reference tone then has nothing to tell apart")
            if not (ref.hz > 0 and ref.ppm >= 0 and ref.amplitude_v > 0):
                raise RigConfigError(f"[clock]: reference_hz and reference_v must be positive and reference_ppm not negative, got {ref}")
        if self.limits is None:
            object.__setattr__(
                self,
                "limits",
                Limits.for_scope(
                    self.scope.adc_bits,
                    scope_ppm=self.scope.timebase_ppm,
                    awg_ppm=self.card.clock_ppm,
                    shared_reference=self.shared_reference,
                    reference_ppm=ref.ppm if ref is not None else None,
                ),
            )

    @property
    def simulated(self) -> bool:
        """The card is simulated (SimBackend, or SpcmBackend on the emulated driver) and so is the scope."""
        return self.card.backend in ("sim", "emulated")

    @property
    def scope_enob(self) -> float:
        """The scope's effective bits: as configured, the simulated scope's own, or the ADC bits less 1.85."""
        if self.scope.enob > 0:
            return self.scope.enob
        if self.simulated:
            return self.sim_scope.enob
        return self.scope.adc_bits - 1.85

    def path(self) -> SignalPath:
        """The analog path the checks expect amplitudes through."""
        return SignalPath(self.card.sample_rate_hz, self.card.reconstruction, self.scope.front_end)

    @classmethod
    def load(cls, path: str | Path) -> RigConfig:
        """Read a rig file (see ``hil/rig.example.toml``)."""
        try:
            data = tomllib.loads(read_text(path, "rig file"))
        except (SerializationError, tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
            raise RigConfigError(f"cannot read rig file {path}: {exc}") from None
        return cls.from_dict(data, name=Path(path).stem)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "rig") -> RigConfig:
        """Build from the tables of a rig file."""
        data = dict(data)
        unknown = sorted(set(data) - {"name", "card", "scope", "wiring", "clock", "limits", "sim_scope", "trigger"})
        if unknown:
            raise RigConfigError(f"rig file: unknown tables {unknown}")
        card = _section(CardConfig, data.get("card", {}), "card")
        scope = _section(ScopeConfig, data.get("scope", {}), "scope")
        if not isinstance(data.get("name", name), str):
            raise RigConfigError(f"name = {data['name']!r}: must be a string", value=data["name"])
        for table in ("wiring", "clock", "limits"):
            if not isinstance(data.get(table, {}), Mapping):
                raise RigConfigError(f"[{table}] must be a table, not {data[table]!r}", value=data[table])
        wiring_table = dict(data.get("wiring", {}))
        trigger = _check_value(wiring_table.pop("trigger", "CH2"), str, "wiring.trigger")
        level = wiring_table.pop("trigger_level_v", 0.5)
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
            raise RigConfigError(f"wiring.trigger_level_v = {level!r}: must be a finite number of volts", value=level)
        for key, value in wiring_table.items():
            if not re.fullmatch(r"awg[0-9]{1,2}", key):
                raise RigConfigError(f"wiring.{key}: unknown key (AWG hardware channels are awg0, awg1, ...; also trigger, trigger_level_v)", value=key)
            _check_value(value, str, f"wiring.{key}")
        wiring = {int(k.removeprefix("awg")): v for k, v in wiring_table.items()} or {0: "CH1", 1: "CH3"}
        clock = dict(data.get("clock", {}))
        shared = _check_value(clock.pop("shared_reference", False), bool, "clock.shared_reference")
        reference = _reference(clock)
        sim_scope = _section(ScopeModel, data.get("sim_scope", {}), "sim_scope")
        trigger_config = _section(TriggerConfig, data.get("trigger", {}), "trigger")
        base = cls(
            name=data.get("name", name),
            card=card,
            scope=scope,
            wiring=wiring,
            trigger_input=trigger,
            trigger_level_v=level,
            shared_reference=shared,
            sim_scope=sim_scope,
            trigger=trigger_config,
            reference=reference,
        )
        if data.get("limits") and base.limits is not None:
            base = replace(base, limits=base.limits.with_overrides(dict(data["limits"])))
        return base


def _reference(clock: dict[str, Any]) -> ReferenceTone | None:
    """The ``[clock]`` table's reference tone (its keys other than ``shared_reference``)."""
    keys = {"reference_input": "input", "reference_hz": "hz", "reference_ppm": "ppm", "reference_v": "amplitude_v"}
    unknown = sorted(set(clock) - set(keys))
    if unknown:
        raise RigConfigError(f"[clock]: unknown keys {unknown} (known: {sorted(['shared_reference', *keys])})", value=unknown)
    if not clock:
        return None
    if "reference_input" not in clock:
        raise RigConfigError("[clock]: a reference tone needs reference_input (the scope channel it is wired to)")
    try:
        values: dict[str, Any] = {keys[k]: _check_value(v, str if k == "reference_input" else float, f"clock.{k}") for k, v in clock.items()}
        return ReferenceTone(**values)
    except RigConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise RigConfigError(f"[clock]: {exc}") from exc


#: Numbers of a rig file that must be above zero (the others must be at least zero); every number must be finite.
_POSITIVE = {"sample_rate_hz", "timeout_s", "reference_hz", "reference_v", "amplitude_mv", "adc_bits", "pulse_s", "channel", "amplitude_v"}


def _check_value(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against the field type ``kind`` (``where``: its path in the file, for the
    error). Strict, as a database column is: no string for a bool, no bool for a number, no NaN."""
    name = where.rsplit(".", 1)[-1]
    if kind is bool:
        if not isinstance(value, bool):
            raise RigConfigError(f"{where} = {value!r}: must be true or false (not a string)", value=value)
        return value
    if kind in (int, float):
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
        if not number or not math.isfinite(value):
            raise RigConfigError(f"{where} = {value!r}: must be a finite {'whole ' if kind is int else ''}number", value=value)
        low_ok = value > 0 if name in _POSITIVE else value >= 0
        if not low_ok:
            raise RigConfigError(f"{where} = {value!r}: must be {'positive' if name in _POSITIVE else 'at least zero'}", value=value)
        return float(value) if kind is float else value
    if kind is str or kind == (str | None):
        if not isinstance(value, str):
            raise RigConfigError(f"{where} = {value!r}: must be a string", value=value)
        return value
    if kind is Filter:
        if not isinstance(value, Mapping):
            raise RigConfigError(f"{where} = {value!r}: must be a table (kind, cutoff_hz, order)", value=value)
        return _section(Filter, value, where)
    if isinstance(value, Mapping) or not isinstance(kind, type):
        return dict(value) if isinstance(value, Mapping) else value
    raise RigConfigError(f"{where} = {value!r}: must be a {getattr(kind, '__name__', kind)}", value=value)


def _section(cls: type, table: Mapping[str, Any], name: str) -> Any:
    """A config dataclass from a TOML table, every key typed (see :func:`_check_value`);
    ``*_filter`` sub-tables become :class:`Filter` s. Unknown keys are refused with their path."""
    if not isinstance(table, Mapping):
        raise RigConfigError(f"[{name}] must be a table, not {table!r}", value=table)
    table = dict(table)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise RigConfigError(f"[{name}]: unknown keys {[f'{name}.{k}' for k in unknown]} (known: {sorted(known)})", value=unknown)
    table = {key: _check_value(value, hints[key], f"{name}.{key}") for key, value in table.items()}
    try:
        return cls(**table)
    except (TypeError, ValueError) as exc:
        raise RigConfigError(f"[{name}]: {exc}") from exc


# ---------------------------------------------------------------------------------- rigs


class Rig(abc.ABC):
    """A card and a scope, wired (see module doc). A context manager."""

    def __init__(self, config: RigConfig) -> None:
        self.config = config
        self.scope: Scope
        #: The output delay (s) fitted on the latest acquisition that showed it (a move): the
        #: cable does not change within a run, so records without a move use it.
        self.fitted_delay_s: float | None = None

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def play(self, program: CompiledSequenceProgram, triggers: Sequence[int], n_samples: int) -> None:
        """Load and start ``program``, trigger it at card samples ``triggers`` (the first starts
        replay; the scope sees it) and let it play for ``n_samples``."""

    def close(self) -> None:
        self.scope.close()

    def _configure(self, backend: Backend, program: CompiledSequenceProgram, trigger: Any, **trigger_options: Any) -> None:
        """Configure ``backend`` for ``program`` (``trigger_options``: further trigger settings, such as the level) and load it."""
        card = self.config.card
        backend.configure(
            sample_rate_hz=program.sample_rate_hz,
            n_channels=program.n_channels,
            amplitude_mv=card.amplitude_mv,
            trigger=trigger,
            clock=card.clock,
            **trigger_options,
        )
        backend.load(program)


def simulated_scope(config: RigConfig) -> tuple[Bench, LoopbackScpiServer, Scope]:
    """A simulated scope of the rig's family behind a loopback SCPI server, opened through its
    real driver: (the bench it looks at, the server, the driver)."""
    bench = Bench()
    model = dataclasses.replace(config.sim_scope, timebase_error_ppm=0.0) if config.shared_reference else config.sim_scope  # locked to the card
    server = LoopbackScpiServer(SIMULATED[config.scope.family](model, bench), idle_timeout_s=None, lifetime_s=None).start()  # closed with its rig
    try:
        scope = open_scope(config.scope.family, server.resource, timeout_s=config.scope.timeout_s, **dict(config.scope.options))
    except Exception:
        server.close()
        raise
    return bench, server, scope


#: The card's trigger output as the simulated rigs model it [assume: a 3.3 V, 100 ns pulse per
#: trigger event]; a real rig records whatever its trigger output makes, through ``[wiring] trigger``.
CARD_TRIGGER_OUT_V = 3.3
CARD_TRIGGER_OUT_S = 1e-7


#: A marker line's high level as the simulated rigs model it [assume: LVTTL, 3.3 V; the manual's
#: multi-purpose lines drive 3.3 V LVTTL].
MARKER_HIGH_V = 3.3


def marker_signal(levels, rate_hz: float, delay_s: float, high_v: float = MARKER_HIGH_V) -> tuple[FunctionSignal, float | None]:
    """A marker line played at ``rate_hz`` (card samples in true time): ``levels`` (0/1 per
    sample from sample 0) as a ``high_v`` logic signal ``delay_s`` late, and the true time of its
    first rising edge (None: it never rises, and a scope waiting on it does not trigger)."""
    import numpy as np

    lv = np.asarray(levels, dtype=np.int8)
    step = np.diff(lv, prepend=0)
    rises = np.flatnonzero(step > 0) / rate_hz + delay_s
    falls = np.flatnonzero(step < 0) / rate_hz + delay_s

    def fn(t: np.ndarray) -> np.ndarray:
        return high_v * (np.searchsorted(rises, t, "right") - np.searchsorted(falls, t, "right")).astype(np.float64)

    return FunctionSignal(fn), float(rises[0]) if rises.size else None


def pulse_train(edges_s, high_v: float, width_s: float) -> FunctionSignal:
    """Rectangular pulses of ``high_v`` starting at true times ``edges_s``, each ``width_s`` long."""
    import numpy as np

    edges = np.asarray(edges_s, dtype=float)
    return FunctionSignal(lambda t: high_v * np.any((t[:, None] >= edges) & (t[:, None] < edges + width_s), axis=1))


def scope_trigger(config: RigConfig, signals: dict[str, Any], triggers: Sequence[int], rate_hz: float, lines) -> tuple[dict[str, Any], dict[str, float]]:
    """``signals`` with what a simulated rig wires to the scope's trigger input, and the true
    time the scope triggers (none: it never triggers): the card's marker line (from the rendered
    multi-purpose ``lines``) with ``[trigger] scope = "marker"``, else one trigger-output pulse per
    trigger (recorded on a scope channel; the scope triggers on the first)."""
    trigger_in = config.trigger_input
    if config.trigger.marker:
        signal, first = marker_signal(lines[:, MARKER_LINES.index(config.trigger.marker_line)], rate_hz, config.trigger.marker_delay_s)
        return {**signals, trigger_in: signal}, ({trigger_in: first} if first is not None else {})
    if trigger_in in CHANNELS:  # the card's trigger output, one pulse per trigger
        signals = {**signals, trigger_in: pulse_train([t / rate_hz for t in triggers], CARD_TRIGGER_OUT_V, CARD_TRIGGER_OUT_S)}
    return signals, {trigger_in: min(triggers) / rate_hz}


def card_outputs(config: RigConfig, faults: Faults, samples, sample_rate_hz: float) -> dict[str, Any]:
    """What the simulated bench wires to the scope: the analog output of every wired card channel
    (scope input -> signal) for int16 ``samples`` (card samples x channels), with the faults that
    act on the output (gain, skew, the card's clock), and the reference tone, if the rig has one."""
    card = config.card
    volts_per_code = card.amplitude_mv / 1000 / 32767 * 10 ** (faults.amp_error_db / 20)
    rate = faults.card_rate_hz(sample_rate_hz)
    out: dict[str, Any] = {
        scope_in: DacOutput(samples[:, hw], rate, volts_per_code, card.output_delay_s + faults.output_delay_s(hw), card.reconstruction)
        for hw, scope_in in config.wiring.items()
        if hw < samples.shape[1]
    }
    if config.reference is not None:
        out[config.reference.input] = reference_signal(config.reference)
    return out


def reference_signal(ref: ReferenceTone) -> FunctionSignal:
    """The simulated frequency standard: an exact sine of the reference tone's frequency."""
    import numpy as np

    w = 2 * np.pi * ref.hz
    return FunctionSignal(lambda t: ref.amplitude_v * np.sin(w * t), lambda t: ref.amplitude_v * w * np.cos(w * t))


class SimRig(Rig):
    """The simulated rig (see module doc). ``faults`` perturb what the card plays."""

    def __init__(self, config: RigConfig | None = None, *, faults: Faults | None = None) -> None:
        super().__init__(config or RigConfig())
        self.faults = faults or Faults()
        self.bench, self.server, self.scope = simulated_scope(self.config)

    def play(self, program: CompiledSequenceProgram, triggers: Sequence[int], n_samples: int) -> None:
        import numpy as np

        lines = np.zeros((n_samples, XIO_LINES), np.uint8) if self.config.trigger.marker else None
        with SimBackend(program.card) as backend:
            self._configure(backend, program, "external")
            backend.start()
            for t in self._delivered(sorted(triggers), program):
                backend.schedule_trigger(t)
            samples = backend.capture(n_samples, lines=lines)
        fs = self.faults.card_rate_hz(program.sample_rate_hz)  # card samples in true time
        signals = card_outputs(self.config, self.faults, samples, program.sample_rate_hz)
        self.bench.publish(*scope_trigger(self.config, signals, triggers, fs, lines))

    def _delivered(self, triggers: list[int], program: CompiledSequenceProgram) -> list[int]:
        """The card samples the card's triggers really come at (as asked, on this rig)."""
        return triggers

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.server.close()


class HardwareRig(Rig):
    """A real card and scope. The scope is opened first (at its VISA resource, with the system's
    VISA library), then the card (``awgrt.backends.SpcmBackend``). The card is triggered by
    software (``force_trigger``); its trigger output must be wired to the scope's
    ``trigger_input``. Triggers after the first are forced after the programmed delay in
    wall-clock time, so checks after a second trigger are only as well placed as the host's timing."""

    def __init__(self, config: RigConfig) -> None:
        super().__init__(config)
        self.generator: FunctionGenerator | None = None
        self._open_scope()
        try:
            if config.trigger.source == "generator":
                self._open_generator()
            from awgrt.backends import SpcmBackend

            self.backend: Backend = SpcmBackend(config.card.device, card=config.card.model)
            self.backend.open()
        except Exception:
            self.scope.close()
            if self.generator is not None:
                self.generator.close()
            raise

    def _open_scope(self) -> None:
        s = self.config.scope
        self.scope = open_scope(s.family, s.resource, timeout_s=s.timeout_s, backend=s.visa_library, **dict(s.options))

    def _open_generator(self) -> None:
        t = self.config.trigger
        s = self.config.scope
        self.generator = open_generator(t.generator, t.resource, channel=t.channel, timeout_s=s.timeout_s, backend=s.visa_library)

    def play(self, program: CompiledSequenceProgram, triggers: Sequence[int], n_samples: int) -> None:
        trig = sorted(triggers)
        self._triggers = trig
        fs = program.sample_rate_hz
        if self.generator is None:  # software: forced triggers, later ones on the host's clock
            self._configure(self.backend, program, "software")
            self.backend.start(force_trigger=True)
            self._began(program)
            for before, t in zip(trig, trig[1:]):
                self._pause(t - before, program)
                self.backend.force_trigger()
        else:  # one burst of pulses into EXT0, armed before the card starts
            gaps = {b - a for a, b in zip(trig, trig[1:])}
            if len(gaps) > 1:
                raise RigConfigError(f"a generator burst makes equally spaced triggers; this program asks for gaps of {sorted(gaps)} samples")
            tc = self.config.trigger
            period = (gaps.pop() if gaps else n_samples) / fs
            assert self.generator is not None
            self.generator.burst(count=len(trig), period_s=period, high_v=tc.high_v, pulse_s=min(tc.pulse_s, period / 2))
            self._configure(self.backend, program, "external", trigger_level_mv=round(tc.card_level_v * 1000))
            self.backend.start()
            self._began(program)
            self.generator.fire()
            self._pause(trig[-1] - trig[0], program)  # the burst plays out
        self._pause(max(0, n_samples - trig[-1]), program)
        self._ended(program, trig[0])

    def _began(self, program: CompiledSequenceProgram) -> None:
        """The card was just started and force-triggered (the first trigger)."""

    def _pause(self, n_samples: int, program: CompiledSequenceProgram) -> None:
        """Let the card play ``n_samples`` samples: the host waits that long."""
        time.sleep(n_samples / program.sample_rate_hz)

    def _ended(self, program: CompiledSequenceProgram, first_trigger: int) -> None:
        """Everything the scope needs has played (the scope is wired to the card itself)."""

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            try:
                if self.generator is not None:
                    self.generator.close()
            finally:
                super().close()


class EmulatedRig(HardwareRig):
    """The nightly rig path minus the hardware (``[card] backend = "emulated"``, or ``--rig
    emulated``): the card is ``SpcmBackend`` driving the unmodified ``spcm`` package on the
    emulated Spectrum driver (:func:`awgrt.sim.emulated_spcm`, virtual clock), and the scope is the
    simulated one behind the loopback SCPI server, through the real driver, pyvisa and pyvisa-py.
    :meth:`HardwareRig.play` runs as on the bench; where the bench waits, the emulated card renders
    what it plays meanwhile, and that output (through the card-output model) is what the scope sees.
    ``faults`` perturb the card's output as on the simulated rig."""

    def __init__(self, config: RigConfig, *, faults: Faults | None = None) -> None:
        from awgrt.sim import emulated_spcm

        self.faults = faults or Faults()
        self._emulation = emulated_spcm(card=config.card.model)
        self.emu = self._emulation.__enter__()
        self._chunks: list = []
        try:
            super().__init__(replace(config, card=replace(config.card, device="/dev/spcm0")))
        except BaseException:
            self._emulation.__exit__(None, None, None)
            raise

    def _open_scope(self) -> None:
        self.bench, self.server, self.scope = simulated_scope(self.config)

    def _open_generator(self) -> None:
        # the simulated generator behind its own loopback server, opened through the real driver;
        # firing it drives the emulated card's EXT0 input and the scope's view of the pulses
        t = self.config.trigger
        self._generator_model = SIMULATED_GENERATORS[t.generator](self._pulses_fired)
        self._generator_server = LoopbackScpiServer(self._generator_model, idle_timeout_s=None, lifetime_s=None).start()  # closed with its rig
        try:
            self.generator = open_generator(t.generator, self._generator_server.resource, channel=t.channel, timeout_s=self.config.scope.timeout_s)
        except Exception:
            self._generator_server.close()
            raise

    def _pulses_fired(self, times_s: list[float], high_v: float, pulse_s: float) -> None:
        card = self.emu.card(0)
        fs = self.faults.card_rate_hz(card.sample_rate_hz)  # generator times in card samples
        self._pulses: Any = (times_s, high_v, pulse_s)
        for t in times_s:
            card.external_trigger(card.now + round(t * fs), 0)

    def _began(self, program: CompiledSequenceProgram) -> None:
        self._chunks = []
        self._lines: list = []
        self._pulses = None

    def _pause(self, n_samples: int, program: CompiledSequenceProgram) -> None:
        import numpy as np

        lines = np.zeros((int(n_samples), XIO_LINES), np.uint8) if self.config.trigger.marker else None
        self._chunks.append(self.emu.card(0).render(int(n_samples), lines=lines))
        self._lines.append(lines)

    def _ended(self, program: CompiledSequenceProgram, first_trigger: int) -> None:
        import numpy as np

        samples = np.concatenate(self._chunks) if self._chunks else np.zeros((0, program.n_channels), np.int16)
        # rendered from the first force trigger on: put it where the suite's timeline has it
        samples = np.concatenate([np.zeros((first_trigger, samples.shape[1]), np.int16), samples])
        fs = self.faults.card_rate_hz(program.sample_rate_hz)  # card samples in true time
        signals = card_outputs(self.config, self.faults, samples, program.sample_rate_hz)
        if self._pulses is not None and not self.config.trigger.marker:  # the generator's output is wired to the scope's trigger input too
            times, high_v, width = self._pulses
            signals[self.config.trigger_input] = pulse_train([first_trigger / fs + t for t in times], high_v, width)
            self.bench.publish(signals, {self.config.trigger_input: first_trigger / fs})
            return
        lines = np.concatenate([np.zeros((first_trigger, XIO_LINES), np.uint8), *self._lines]) if self.config.trigger.marker else None
        self.bench.publish(*scope_trigger(self.config, signals, self._triggers, fs, lines))

    def close(self) -> None:
        try:
            super().close()
        finally:
            try:
                self.server.close()
                if getattr(self, "_generator_server", None) is not None:
                    self._generator_server.close()
            finally:
                self._emulation.__exit__(None, None, None)


#: The named simulated rigs (``"sim"``, ``"emulated"``) wire a 10 MHz reference tone to the
#: input the default wiring leaves free, so the card's clock is told from the scope's.
SIM_REFERENCE_INPUT = "CH4"


def rig_config(spec: str | Path | RigConfig) -> RigConfig:
    """``"sim"``, ``"emulated"``, a rig file path or a :class:`RigConfig` -> its configuration."""
    if isinstance(spec, RigConfig):
        return spec
    if str(spec) in ("sim", "emulated"):
        return RigConfig(name=str(spec), card=CardConfig(backend=str(spec)), reference=ReferenceTone(SIM_REFERENCE_INPUT))
    return RigConfig.load(spec)


def open_rig(spec: str | Path | RigConfig, *, faults: Faults | None = None) -> Rig:
    """``"sim"``, ``"emulated"``, a rig file path or a :class:`RigConfig` -> a ready rig. Faults
    need a simulated or emulated rig."""
    config = rig_config(spec)
    if config.card.backend == "emulated":
        return EmulatedRig(config, faults=faults)
    if config.simulated:
        return SimRig(config, faults=faults)
    if faults is not None and faults.any:
        raise RigConfigError("fault injection needs the simulated or emulated rig (--rig sim or emulated, or [card] backend = 'sim' or 'emulated')")
    return HardwareRig(config)


def scope_range_v(peak_v: float, fill: float = 0.8) -> float:
    """Full-scale range (V) that puts a signal of ``peak_v`` at ``fill`` of the screen."""
    return 2 * max(peak_v, 1e-3) / fill if math.isfinite(peak_v) else 1.0
