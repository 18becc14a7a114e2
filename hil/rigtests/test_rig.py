"""The nightly rig tests: every suite program on the rig given with ``--rig`` (skipped without).

``pytest hil --rig rig.toml`` (from the repository root) is the nightly job; each program's checks must all pass, and the
scope must be reachable and answer as its family should.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.rig import open_rig
from hil.runner import run_program
from hil.suite import SUITE

pytestmark = pytest.mark.hil


#: How long a test process waits for another one to finish with the rig.
RIG_LOCK_TIMEOUT_S = 3600.0


def rig_lock_path(rig_spec: str) -> Path:
    """The lock file of a rig: one per rig file (or simulated rig) and user, in the temp dir."""
    import hashlib
    import os
    import tempfile

    key = hashlib.sha256(str(Path(rig_spec).resolve() if Path(rig_spec).exists() else rig_spec).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"awgrt-rig-{uid}-{key}.lock"


@pytest.fixture(scope="module")
def rig(rig_spec: str):
    """The rig, held by one test process at a time (``pytest -n auto`` must never drive one
    card and scope from two processes at once)."""
    from filelock import FileLock

    with FileLock(str(rig_lock_path(rig_spec)), timeout=RIG_LOCK_TIMEOUT_S), open_rig(rig_spec) as r:
        yield r


#: What the ``*IDN?`` of each family starts with.
VENDORS = {
    "keysight": ("KEYSIGHT", "AGILENT"),
    "tektronix": ("TEKTRONIX",),
    "rigol": ("RIGOL",),
    "rohde": ("ROHDE&SCHWARZ", "ROHDE & SCHWARZ"),
    "lecroy": ("LECROY", "TELEDYNE"),
}


def test_the_rig_is_held_by_one_process_at_a_time(rig, rig_spec: str) -> None:
    # the lock this process holds cannot be taken by another one meanwhile
    import subprocess
    import sys

    lock = str(rig_lock_path(rig_spec))
    code = f"from filelock import FileLock, Timeout\ntry:\n    FileLock({lock!r}, timeout=0.2).acquire()\n    print('TAKEN')\n"
    code += "except Timeout:\n    print('BUSY')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == "BUSY"


def test_scope_is_the_configured_family(rig) -> None:
    assert rig.scope.identity.upper().startswith(VENDORS[rig.config.scope.family]), rig.scope.identity


@pytest.mark.parametrize("program", SUITE, ids=lambda p: p.name)
def test_suite_program_passes(rig, program, request: pytest.FixtureRequest) -> None:
    results, _ = run_program(rig, program)
    failed = [f"{r.name}: {r.measured:.4g} {r.unit} (limit {r.limit:.4g}) {dict(r.detail).get('error', '')}" for r in results if not r.passed]
    out = Path(request.config.getoption("--hil-out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{program.name}.txt").write_text("\n".join(f"{r.name}\t{r.measured}\t{r.sigma}\t{r.limit}\t{r.unit}\t{r.passed}" for r in results) + "\n")
    assert results and not failed, "\n".join(failed)
