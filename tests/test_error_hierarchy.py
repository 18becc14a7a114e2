"""One error hierarchy: every exception the packages raise is an awgrt.errors.AWGRTError subclass.

A few raises are part of another protocol and never reach a user; each is listed with why.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import awgrt.errors
import hil.errors

ROOT = Path(__file__).resolve().parents[1]

#: (file, raised name): why it may stay a builtin.
ALLOWED = {
    ("awgrt/builder.py", "TypeError"): "caught on the next lines and turned into a ProgramError",
    ("awgrt/_savefile.py", "ValueError"): "caught in the same function and turned into a SerializationError",
    ("awgrt/ir/intent.py", "NotImplementedError"): "abstract method of the op base class",
    ("awgrt/sim/_emu_pyroute.py", "TypeError"): "ctypes argument conversion of the emulated C library, as ctypes raises it",
    ("hil/runner.py", "TypeError"): "json.dumps' default= protocol",
    ("awgrt/sim/__init__.py", "AttributeError"): "module __getattr__ protocol",
    ("awgrt/sim/_emu_pyroute.py", "AttributeError"): "__getattr__ protocol of the emulated library object",
    ("awgrt/cli.py", "SystemExit"): "the command line's exit with a usage message",
    ("hil/resolution.py", "SystemExit"): "the script's exit status",
    ("hil/simrig/instrument.py", "KeyError"): "inside the simulated scope; its SCPI dispatcher answers it as a command error",
    ("hil/simrig/instrument.py", "ValueError"): "inside the simulated scope; its SCPI dispatcher answers it as a command error",
}


def _ours() -> set[str]:
    names = set()
    for module in (awgrt.errors, hil.errors):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, awgrt.errors.AWGRTError):
                names.add(name)
    return names


def test_every_raise_is_an_awgrt_error():
    ours = _ours()
    builtin_errors = {n for n, o in vars(builtins).items() if isinstance(o, type) and issubclass(o, BaseException)}
    bad = []
    for pkg in ("awgrt", "hil"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel.startswith("hil/test_") or rel.endswith("conftest.py"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Raise) or node.exc is None:
                    continue
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else exc.attr if isinstance(exc, ast.Attribute) else None
                if name in builtin_errors and (rel, name) not in ALLOWED:
                    bad.append(f"{rel}:{node.lineno} raises {name}")
                elif name and name[0].isupper() and name not in ours and name not in builtin_errors and not name.startswith("Spcm"):
                    bad.append(f"{rel}:{node.lineno} raises {name}, not an awgrt error")
    assert not bad, "\n".join(bad)


def test_capabilities_have_their_own_error():
    assert issubclass(awgrt.errors.UnsupportedError, awgrt.errors.AWGRTError)
    assert issubclass(awgrt.errors.UnsupportedError, NotImplementedError)
