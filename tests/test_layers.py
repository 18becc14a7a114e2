"""The package's layers only point down: a module never imports one from a higher layer.

Layers, lowest first (a module may import its own layer and any below it):

    errors, spectrum, _progress, _blas, _units, _atomic, _files, _warn  <  card, _savefile, calibration, plot  <  ir  <  program  <  compiler
    <  builder, sim  <  backends  <  runtime, upload, readback, rearrange  <  demo  <  cli  <  the package root  <  hil

The CLI may reach into ``hil`` only from inside the function of ``awgrt hil`` (the harness stays
optional for the core).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = [
    ("awgrt.errors", "awgrt.spectrum", "awgrt._progress", "awgrt._version", "awgrt._blas", "awgrt._units", "awgrt._atomic", "awgrt._files", "awgrt._warn"),
    ("awgrt.card", "awgrt._savefile", "awgrt.calibration", "awgrt.plot"),
    ("awgrt.ir",),
    ("awgrt.program",),
    ("awgrt.compiler",),
    ("awgrt.builder", "awgrt.sim"),
    ("awgrt.backends",),
    ("awgrt.runtime", "awgrt.upload", "awgrt.readback", "awgrt.rearrange"),
    ("awgrt.demo",),
    ("awgrt.cli",),
    ("awgrt",),
    ("hil",),
]


def layer_of(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (i, name)
    assert best is not None, f"{module} is in no layer"
    return best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(imported module, line, at module level) of every awgrt/hil import in a file."""
    me = module_name(path)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for n in block.body
    }
    for parent in ast.walk(tree):
        for node in ast.iter_child_nodes(parent):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                    targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            if id(node) in type_only:  # for annotations only: no import happens at run time
                continue
            for t in targets:
                if t.split(".")[0] in ("awgrt", "hil"):
                    yield t, node.lineno, id(node) in top_level or isinstance(parent, ast.If)


def test_no_module_imports_a_higher_layer():
    upward = []
    for pkg in ("awgrt", "hil"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            me = module_name(path)
            for target, line, module_level in imports(path):
                if layer_of(target) <= layer_of(me):
                    continue
                if me == "awgrt.cli" and target.startswith("hil") and not module_level:
                    continue  # `awgrt hil` loads the harness on demand
                upward.append(f"{path.relative_to(ROOT)}:{line}: {me} imports {target}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_core_loads_without_scipy_optimize_hil_or_spcm():
    heavy = "('scipy.optimize', 'hil', 'spcm', 'pyvisa', 'matplotlib')"
    code = f"import sys, awgrt, awgrt.ir, awgrt.backends; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
