"""Run the unmodified ``spcm`` package on simulated cards.

:class:`~awgrt.sim.driver.EmulatedDriver` answers Spectrum's driver calls in Python. This module
puts it where ``spcm_core`` looks for the driver library (``libspcm_linux.so``), in one of two
*routes*:

``"c"``
    ``libspcm_emu.c`` (shipped next to this module) is compiled with the system C compiler into
    a cache directory (``$AWGRT_CACHE_DIR``, default ``$XDG_CACHE_HOME/awgrt`` or
    ``~/.cache/awgrt``; one sub-directory per hash of the source), with the soname
    ``libspcm_linux.so``, and loaded by absolute path (``RTLD_GLOBAL``) before ``spcm_core`` is
    imported. ``spcm_core``'s own ``cdll.LoadLibrary("libspcm_linux.so")`` then finds the loaded
    library by its soname. Every one of the 19 driver functions is real C with the driver's
    signature and forwards to Python callbacks, so the ctypes marshalling spcm does (int64 step
    entries with bit 63 set, byref pointers, byte counts, NULL handles) is exercised for real.
``"python"``
    For machines without a C compiler: while ``spcm_core`` is first imported, ctypes' loader
    hands it a stand-in library for ``libspcm_linux.so`` whose 19 functions are Python objects.
    ``spcm_core`` binds them exactly as it binds the real ones (including its own int64 / double /
    uint64 wrappers), and they accept the same ctypes arguments (``byref`` pointers, ``c_void_p``
    buffers, ``POINTER(c_uint64)`` handles) and convert them as C would (integers wrap to the
    parameter's width). No ``spcm`` internals are patched and ``SPCM_NO_DLL`` is not needed.

``"auto"`` (default) takes the C route when the library is already built in the cache or a C
compiler builds it, and the Python route otherwise. ``$AWGRT_SPCM_ROUTE`` or the ``route``
argument forces one. The two routes cannot share a process, and neither can work once
``spcm_core`` was imported without emulation: both cases raise :class:`SpcmEmulationError`.

Entry points:

- ``with awgrt.sim.emulated_spcm(card="M4i.6631-x8") as emu:`` (or
  ``cards=["M4i.6631-x8", "M4i.6622-x8"]``): ``import spcm`` works inside; the cards are
  ``/dev/spcm0``, ``/dev/spcm1``, ...; ``emu.card(0)`` is the :class:`SimulatedCard` behind
  ``/dev/spcm0``, ``emu.driver`` the :class:`EmulatedDriver`, ``emu.route`` ``"c"`` or
  ``"python"``. Once ``spcm`` is imported it stays bound to the emulation for the life of the
  process: a later ``emulated_spcm`` block (same route) drives fresh cards; outside any block
  every card open fails (``spcm.SpcmDeviceNotFound``) and every call returns ``ERR_INIT``.
  For example (spcm's own ``with Card`` block stops the card when it ends, so render inside it)::

      with emulated_spcm(card="M4i.6631-x8") as emu:
          import spcm
          with spcm.Card("/dev/spcm0") as card:
              ...  # channels, clock, Sequence: add_segment / add_step / write_setup
              card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
              samples = emu.card(0).render(100_000)  # int16, (samples, channels of the card)

- A whole script, unmodified::

      AWGRT_EMULATE_SPCM=M4i.6631-x8 PYTHONPATH=$(python -m awgrt.sim.spcm_emulation --pythonpath) python my_script.py
      python -m awgrt.sim.spcm_emulation --card M4i.6631-x8 my_script.py args...

  ``AWGRT_EMULATE_SPCM`` holds comma-separated card models (``1`` means one M4i.6631-x8). The
  directory printed by ``--pythonpath`` holds a ``sitecustomize.py`` that activates emulation at
  interpreter start when the variable is set (and then runs any other ``sitecustomize`` that it
  shadows). With ``AWGRT_EMULATE_SPCM_RENDER=<samples>`` and ``AWGRT_EMULATE_SPCM_OUT=<file.npz>``
  (runner: ``--render N --out FILE``), the output of every card that was force-triggered is
  rendered for ``<samples>`` samples from its first force trigger, on a copy of the card taken at
  that moment, and saved at exit (see :meth:`EmulatedSpcm.save_renders`).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import spectrum as sp
from ..card import CardSpec
from ..errors import ProgramError, UnknownCardError
from .card import SimPolicy, SimulatedCard, trigger_latency_samples
from .driver import EmulatedDriver, Recording

__all__ = [
    "DRIVER_FUNCTIONS",
    "LIBRARY_NAME",
    "EmulatedSpcm",
    "SpcmEmulationError",
    "activate_from_environment",
    "build_library",
    "cache_dir",
    "emulated_spcm",
    "emulation_active",
    "find_compiler",
    "pythonpath_dir",
]

from ._emu_build import build_library, cache_dir, find_compiler
from ._emu_common import (
    _P,
    DEFAULT_CARD,
    DRIVER_FUNCTIONS,
    ENV_CLOCK,
    ENV_EMULATE,
    ENV_OUT,
    ENV_RENDER,
    ENV_ROUTE,
    LIBRARY_NAME,
    ROUTES,
    SITE_DIR,
    SpcmEmulationError,
    _Bridge,
)
from ._emu_croute import _install_c_route, emulation_active
from ._emu_pyroute import _install_python_route

# ====================================================================== the emulation object


def _route_requested(route: str | None) -> str:
    r = (route or os.environ.get(ENV_ROUTE) or "auto").strip().lower()
    if r not in ROUTES:
        raise SpcmEmulationError(f"spcm emulation route {r!r}: choose one of {', '.join(ROUTES)} (argument route= or ${ENV_ROUTE})")
    return r


def _ensure_route(requested: str) -> tuple[str, str]:
    """Bind spcm_core to the emulation (once per process); return (route, why)."""
    with _P.lock:
        if _P.route is not None:
            if requested not in ("auto", _P.route):
                raise SpcmEmulationError(
                    f"this process already emulates the spcm driver through the {_P.route!r} route; the {requested!r} route "
                    "cannot share a process with it (spcm binds the driver library once): use a fresh process"
                )
            return _P.route, "already set up in this process"
        if "spcm_core" in sys.modules or "spcm" in sys.modules:
            raise SpcmEmulationError(
                "spcm / spcm_core was imported before the emulation was activated, so it is bound to the real driver library "
                f"(or to none): activate the emulation before the first `import spcm` (e.g. run the script with {ENV_EMULATE} set, "
                "or with `python -m awgrt.sim.spcm_emulation`)"
            )
        if importlib.util.find_spec("spcm_core") is None:
            raise SpcmEmulationError("the spcm package is not installed: pip install 'awgrt[card]' (or pip install spcm)")
        why = "forced"
        if requested == "auto":
            try:
                _install_c_route()
                route, why = "c", "C library built with the system compiler"
            except SpcmEmulationError as exc:
                if "spcm_core" in sys.modules:
                    raise
                _install_python_route()
                route, why = "python", f"C route unavailable ({exc.detail.splitlines()[0]})"
        elif requested == "c":
            _install_c_route()
            route = "c"
        else:
            _install_python_route()
            route = "python"
        _P.route = route
        return route, why


def _copy_card(card: SimulatedCard) -> SimulatedCard:
    """An independent copy of a simulated card (its immutable spec and policy are shared)."""
    return copy.deepcopy(card, {id(card.spec): card.spec, id(card.policy): card.policy})


def _normalise_cards(card: str | CardSpec | None, cards: Sequence[str | CardSpec] | None) -> dict[str, str | CardSpec]:
    if card is not None and cards is not None:
        raise SpcmEmulationError("give card= or cards=, not both")
    models = list(cards) if cards is not None else [card if card is not None else DEFAULT_CARD]
    if not models:
        raise SpcmEmulationError("cards= is empty: emulate at least one card")
    return {f"/dev/spcm{i}": m for i, m in enumerate(models)}


class EmulatedSpcm:
    """One emulation: simulated cards behind ``/dev/spcm0``, ``/dev/spcm1``, ... that the
    unmodified ``spcm`` package drives (see module doc). Made by :func:`emulated_spcm`.

    Attributes: ``driver`` (the :class:`EmulatedDriver`), ``route`` (``"c"`` or ``"python"``),
    ``route_reason`` (why that route), ``paths`` (device paths, in card order).
    """

    def __init__(
        self, cards: dict[str, str | CardSpec], *, policy: SimPolicy | None = None, route: str | None = None, clock: str = "virtual", speed: float = 1.0
    ) -> None:
        try:
            self.driver = EmulatedDriver(cards, policy=policy, clock=clock, speed=speed)
        except UnknownCardError as exc:
            raise SpcmEmulationError(exc.detail) from exc
        except ProgramError as exc:
            raise SpcmEmulationError(exc.detail) from exc
        self.paths = list(cards)
        self._route_requested = _route_requested(route)
        self.route: str | None = None  # set by activate()
        self.route_reason = ""
        self._hooks: list[Callable[[int, int], None]] = []
        self._bridge: _Bridge | None = None
        self.render_samples = 0
        self._snapshots: dict[int, SimulatedCard] = {}
        self._recordings: dict[int, Recording] = {}

    # ------------------------------------------------------------------ cards

    def card(self, index: int = 0) -> SimulatedCard:
        """The :class:`SimulatedCard` behind ``/dev/spcm<index>`` (its output can be rendered)."""
        if not 0 <= index < len(self.paths):
            raise ProgramError(f"card {index}: this emulation has {len(self.paths)} card(s)", op="card", value=index)
        return self.driver.cards[self.paths[index]]

    @property
    def library_path(self) -> Path | None:
        """C route: the built ``libspcm_linux.so`` that spcm_core is bound to; None on the Python route."""
        return Path(_P.lib._name) if self.route == "c" and _P.lib is not None else None

    @property
    def internal_errors(self) -> list[BaseException]:
        """Python exceptions raised inside the emulation (each was reported to spcm as ERR_ABORT)."""
        return self._bridge.internal_errors if self._bridge is not None else []

    def on_command(self, hook: Callable[[int, int], None]) -> Callable[[], None]:
        """Call ``hook(card_index, command_bits)`` after every M2CMD write the card accepted;
        returns a function that removes the hook. An exception in a hook reaches spcm as ERR_ABORT."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def _after_command(self, handle: int, command: int) -> None:
        path = self.driver.path_of(handle)
        if path is None:
            return
        index = self.paths.index(path)
        triggering = command & sp.M2CMD_CARD_FORCETRIGGER or (command & sp.M2CMD_CARD_ENABLETRIGGER and self.driver.software_trigger_selected(handle))
        if self.render_samples and triggering and index not in self._snapshots:
            # its first trigger (forced, or software on enable): on the virtual clock a copy of the
            # card from now on is rendered later; on the wall clock the card's own output is kept
            # as host time passes, so later triggers, rewrites and stops are in it
            self._snapshots[index] = _copy_card(self.card(index))
            if self.driver.clock == "wall":
                self._recordings[index] = self.driver.record(self.card(index), self.render_samples)
        for hook in self._hooks:
            hook(index, command)

    # ------------------------------------------------------------------ render at force trigger

    def record_renders(self, n_samples: int) -> None:
        """From now on, keep a copy of each card as it is right after its first trigger (a force
        trigger, or the software trigger firing on enable), so that :meth:`renders` can show its first ``n_samples`` output samples from
        that trigger, whatever the script does later (stop, close, more uploads)."""
        if n_samples < 0:
            raise ProgramError(f"n_samples={n_samples!r} must be >= 0", op="render", value=n_samples)
        self.render_samples = int(n_samples)

    def renders(self) -> dict[int, dict[str, Any]]:
        """For each card force-triggered since :meth:`record_renders`: ``samples`` (int16 of shape
        (n_samples, card channels), row 0 = the trigger sample), ``sample_rate_hz``,
        ``latency`` (samples from trigger to the first sequence sample, the card's model),
        ``events`` (rows of (sample from trigger, step, segment)) and ``triggers`` (samples, from
        the first, of every trigger the card took). On the wall clock the samples are what the
        card played as the script ran (later triggers, rewrites and stops included), continued
        past the script's end as the card would have gone on."""
        out = {}
        for index, snap in sorted(self._snapshots.items()):
            rec = self._recordings.get(index)
            if rec is None:  # virtual clock: the copy taken at the trigger, rendered on
                card = _copy_card(snap)
                start = card.now
                samples = card.render(self.render_samples)
            else:  # wall clock: what the card played, and for what the script did not wait for, its future
                card = _copy_card(self.card(index))
                start = rec.start
                rest = card.render(rec.remaining)
                samples = np.concatenate([*rec.chunks, rest]) if rec.chunks else rest
            window = card.events_between(start, start + self.render_samples)
            events = np.array([(e.sample - start, e.step, e.segment) for e in window], dtype=np.int64).reshape(-1, 3)
            triggers = np.array([t - start for t in card.trigger_log if start <= t < start + self.render_samples], dtype=np.int64)
            out[index] = {
                "samples": samples,
                "sample_rate_hz": card.sample_rate_hz,
                "latency": trigger_latency_samples(card.sample_rate_hz),
                "events": events,
                "triggers": triggers,
            }
        return out

    def save_renders(self, path: str | os.PathLike) -> Path:
        """Write :meth:`renders` to an ``.npz``: ``card<i>`` (samples), ``card<i>_sample_rate_hz``,
        ``card<i>_latency``, ``card<i>_events``; for a card that was never triggered
        ``card<i>_note`` says so (also on stderr). Returns the path."""
        arrays: dict[str, Any] = {}
        renders = self.renders()
        for index, r in renders.items():
            arrays[f"card{index}"] = r["samples"]
            arrays[f"card{index}_sample_rate_hz"] = np.float64(r["sample_rate_hz"])
            arrays[f"card{index}_latency"] = np.int64(r["latency"])
            arrays[f"card{index}_events"] = r["events"]
            arrays[f"card{index}_triggers"] = r["triggers"]
        for index, dev in enumerate(self.paths):
            if index not in renders:  # say so, rather than leave a silent gap
                note = f"{dev} was never triggered (no force trigger, no software trigger on enable): nothing to render"
                arrays[f"card{index}_note"] = np.array(note)
                sys.stderr.write(f"awgrt spcm emulation: {note}\n")
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    # ------------------------------------------------------------------ activation

    def activate(self) -> EmulatedSpcm:
        """Make this emulation the one spcm talks to; one at a time per process."""
        with _P.lock:
            if _P.bridge is not None:
                raise SpcmEmulationError("an spcm emulation is already active in this process: leave it first (emulations do not nest)")
            self._bridge = _Bridge(self)
            _P.bridge = self._bridge  # active before spcm_core binds: it queries the driver version at import
            try:
                self.route, self.route_reason = _ensure_route(self._route_requested)
            except BaseException:
                _P.bridge = self._bridge = None
                raise
        return self

    def deactivate(self) -> None:
        """Close every card left open (stopping it) and detach from spcm: later driver calls
        fail with ERR_INIT and opens fail, until another emulation is activated."""
        with _P.lock:
            if _P.bridge is not self._bridge or self._bridge is None:
                return
            for handle in self.driver.open_handles():
                self._bridge.close(handle)
            _P.bridge = None

    def __enter__(self) -> EmulatedSpcm:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __repr__(self) -> str:
        cards = ", ".join(f"{p}: {self.driver.specs[p].name}" for p in self.paths)
        return f"<EmulatedSpcm route={self.route!r} {cards}>"


@contextmanager
def emulated_spcm(
    card: str | CardSpec | None = None,
    *,
    cards: Sequence[str | CardSpec] | None = None,
    policy: SimPolicy | None = None,
    route: str | None = None,
    clock: str = "virtual",
    speed: float = 1.0,
) -> Iterator[EmulatedSpcm]:
    """Emulate Spectrum cards for the unmodified ``spcm`` package inside a ``with`` block.

    ``card`` (one model, default ``"M4i.6631-x8"``) or ``cards`` (several) become ``/dev/spcm0``,
    ``/dev/spcm1``, ...; ``policy`` is the :class:`SimPolicy` of the simulated cards; ``route``
    is ``"auto"`` (default, or ``$AWGRT_SPCM_ROUTE``), ``"c"`` or ``"python"`` (see module doc);
    ``clock`` is ``"virtual"`` (default: card time moves when you render or advance a card, and
    WAIT commands pass card time at once) or ``"wall"`` (card time follows the host's clock times
    ``speed`` while a card runs, as in whole-script mode).
    On leaving the block, cards still open are closed (their output stopped). Raises
    :class:`SpcmEmulationError` if spcm was imported before any emulation, the route clashes
    with the one this process uses, or another emulation is active.
    """
    emu = EmulatedSpcm(_normalise_cards(card, cards), policy=policy, route=route, clock=clock, speed=speed)
    with emu:
        yield emu


# ====================================================================== whole-script mode


_ENV_EMULATION: EmulatedSpcm | None = None


def _cards_from_env(value: str) -> list[str]:
    v = value.strip()
    if v.lower() in ("1", "true", "yes", "on"):
        return [DEFAULT_CARD]
    return [m.strip() for m in v.split(",") if m.strip()]


def _clock_from_env() -> tuple[str, float]:
    """``$AWGRT_EMULATE_SPCM_CLOCK``: ``wall`` (default in script mode), ``virtual``, or a number:
    the wall clock at that speed (card seconds per host second)."""
    value = os.environ.get(ENV_CLOCK, "").strip().lower() or "wall"
    if value in ("wall", "virtual"):
        return value, 1.0
    try:
        return "wall", float(value)
    except ValueError:
        raise SpcmEmulationError(f"${ENV_CLOCK}={value!r}: give wall, virtual or a speed factor (e.g. 0.5)") from None


def activate_from_environment() -> EmulatedSpcm | None:
    """Activate emulation for the whole process if ``$AWGRT_EMULATE_SPCM`` is set (see module doc);
    return it (the same object on later calls), or None if the variable is unset or empty.

    The emulation stays active until the process ends (cards a script leaves open are closed by
    spcm's own clean-up). With ``$AWGRT_EMULATE_SPCM_RENDER`` and ``$AWGRT_EMULATE_SPCM_OUT`` set,
    the renders are saved at exit. The card clock follows the host's wall clock unless
    ``$AWGRT_EMULATE_SPCM_CLOCK`` says ``virtual`` (or gives a speed factor)."""
    global _ENV_EMULATION
    if _ENV_EMULATION is not None:
        return _ENV_EMULATION
    value = os.environ.get(ENV_EMULATE, "")
    if not value.strip() or value.strip().lower() in ("0", "false", "no", "off"):
        return None
    clock, speed = _clock_from_env()
    emu = EmulatedSpcm(_normalise_cards(None, _cards_from_env(value)), route=None, clock=clock, speed=speed).activate()
    render = os.environ.get(ENV_RENDER, "").strip()
    out = os.environ.get(ENV_OUT, "").strip()
    if render:
        emu.record_renders(int(render))
        if out:
            import atexit

            atexit.register(emu.save_renders, out)
    _ENV_EMULATION = emu
    return emu


def pythonpath_dir() -> Path:
    """The directory to put on ``PYTHONPATH`` for the whole-script mode (holds a ``sitecustomize.py``)."""
    return SITE_DIR


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m awgrt.sim.spcm_emulation``: print the PYTHONPATH entry, build the C library,
    or run a script on emulated cards."""
    parser = argparse.ArgumentParser(
        prog="python -m awgrt.sim.spcm_emulation",
        description="Run an unmodified spcm script on simulated Spectrum cards.",
    )
    parser.add_argument("--pythonpath", action="store_true", help=f"print the directory to put on PYTHONPATH (with {ENV_EMULATE}=MODEL) and exit")
    parser.add_argument("--build", action="store_true", help="build the C route's library into the cache, print its path and exit")
    parser.add_argument("--card", action="append", dest="cards", metavar="MODEL", help=f"card model; repeat for /dev/spcm1, ... (default {DEFAULT_CARD})")
    parser.add_argument("--route", choices=ROUTES, default=None, help=f"driver route (default ${ENV_ROUTE} or auto)")
    parser.add_argument("--clock", choices=("wall", "virtual"), default="wall", help="card time follows the host's clock (default) or moves only when rendered")
    parser.add_argument("--speed", type=float, default=1.0, metavar="F", help="wall clock: card seconds per host second (default 1)")
    parser.add_argument("--render", type=int, default=0, metavar="N", help="render N samples of each card from its first force trigger")
    parser.add_argument("--out", default=None, metavar="FILE.npz", help="where --render saves the samples")
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    ns = parser.parse_args(argv)
    if ns.pythonpath:
        print(pythonpath_dir())
        return 0
    if ns.build:
        try:
            print(build_library())
        except SpcmEmulationError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0
    if not ns.script:
        parser.error("give a script to run (or --pythonpath / --build)")
    if ns.render and not ns.out:
        parser.error("--render needs --out FILE.npz")
    import runpy

    try:
        emu = EmulatedSpcm(_normalise_cards(None, ns.cards or [DEFAULT_CARD]), route=ns.route, clock=ns.clock, speed=ns.speed).activate()
    except SpcmEmulationError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    if ns.render:
        emu.record_renders(ns.render)
    sys.argv = [ns.script, *ns.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(ns.script)))
    try:
        runpy.run_path(ns.script, run_name="__main__")
    finally:
        if ns.render:
            emu.save_renders(ns.out)
    return 0


if __name__ == "__main__":
    # run the package's copy of this module, so that the process state is the one awgrt.sim uses
    from awgrt.sim.spcm_emulation import main as _main

    sys.exit(_main())
