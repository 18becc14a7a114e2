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


@pytest.fixture(scope="module")
def rig(rig_spec: str):
    with open_rig(rig_spec) as r:
        yield r


#: What the ``*IDN?`` of each family starts with.
VENDORS = {"keysight": ("KEYSIGHT", "AGILENT"), "tektronix": ("TEKTRONIX",), "rigol": ("RIGOL",)}


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
