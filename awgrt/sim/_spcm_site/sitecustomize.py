"""Whole-script spcm emulation: put this directory on PYTHONPATH and set AWGRT_EMULATE_SPCM.

``PYTHONPATH=$(python -m awgrt.sim.spcm_emulation --pythonpath) AWGRT_EMULATE_SPCM=M4i.6631-x8 python script.py``
runs an unmodified spcm script on simulated cards (see :mod:`awgrt.sim.spcm_emulation`). With
the variable unset or empty this imports nothing from awgrt. Any other ``sitecustomize`` module
that this one shadows on ``sys.path`` still runs, after the emulation is set up.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _run_shadowed_sitecustomize() -> None:
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


if os.environ.get("AWGRT_EMULATE_SPCM", "").strip():
    # Emulation was asked for: if it cannot be set up, the script must not run at all (on a PC with
    # Spectrum's driver it would otherwise drive the real card). Python's site machinery would only
    # print an error from here and carry on, so stop the interpreter before any user code.
    try:
        from awgrt.sim.spcm_emulation import activate_from_environment

        activate_from_environment()
    except BaseException as exc:  # noqa: BLE001 - every failure must stop the script
        sys.stderr.write(
            f"awgrt spcm emulation: AWGRT_EMULATE_SPCM={os.environ.get('AWGRT_EMULATE_SPCM')!r} could not be set up "
            f"({type(exc).__name__}: {exc}); the script was not run, so it cannot reach a real card\n"
        )
        sys.stderr.flush()
        os._exit(2)

_run_shadowed_sitecustomize()
