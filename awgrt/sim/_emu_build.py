"""Building the C route's driver library: the system compiler, the cache directory and a safe
concurrent build (see :mod:`awgrt.sim.spcm_emulation`)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._emu_common import ABI_VERSION, ENV_CACHE, LIBRARY_NAME, SOURCE, SpcmEmulationError


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set (None if it does not exist), else ``cc``, ``gcc`` or ``clang`` on PATH."""
    cc = os.environ.get("CC")
    if cc:
        first = cc.split()[0]
        return cc if shutil.which(first) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cache_dir() -> Path:
    """``$AWGRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/awgrt``, else ``~/.cache/awgrt``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "awgrt"


def _library_path(base: Path | None = None) -> Path:
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + f"|{ABI_VERSION}|{sys.platform}|{platform.machine()}".encode()).hexdigest()[:16]
    return (base or cache_dir()) / f"libspcm_emu-{key}" / LIBRARY_NAME


def _writable_build_dir(target: Path) -> Path:
    """``target``'s directory, created; if the default cache cannot be written (and
    ``$AWGRT_CACHE_DIR`` is unset), a per-user directory under the system temp dir instead."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.access(target.parent, os.W_OK):
            return target
    except OSError:
        pass
    if os.environ.get(ENV_CACHE):
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent} (${ENV_CACHE})")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = _library_path(Path(tempfile.gettempdir()) / f"awgrt-cache-{uid}")
    try:
        fallback.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent} nor {fallback.parent}: {exc} (set ${ENV_CACHE})") from exc
    return fallback


def build_library(*, force: bool = False) -> Path:
    """Compile ``libspcm_emu.c`` into the cache (once per source hash) and return the path of the
    built ``libspcm_linux.so``. If the default cache is not writable, a per-user directory in the
    system temp dir is used. Concurrent builds are safe (each writes a temporary file, then
    renames it into place). Raises :class:`SpcmEmulationError` with the compiler's output if
    there is no compiler or the build fails."""
    if not sys.platform.startswith("linux"):
        raise SpcmEmulationError(f"the C route needs Linux (ELF sonames); this is {sys.platform}: use route='python'")
    target = _library_path()
    if target.exists() and not force:
        return target
    cc = find_compiler()
    if cc is None:
        raise SpcmEmulationError("no C compiler found (set CC, or install cc/gcc/clang); route='python' needs none")
    target = _writable_build_dir(target)
    if target.exists() and not force:
        return target
    try:
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    except OSError as exc:
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent}: {exc} (set ${ENV_CACHE})") from exc
    os.close(fd)
    cmd = [*cc.split(), "-shared", "-fPIC", "-O2", "-std=c99", f"-Wl,-soname,{LIBRARY_NAME}", "-o", tmp, str(SOURCE)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise SpcmEmulationError(f"building the emulated driver library failed: {' '.join(cmd)}\n{proc.stderr.strip()}")
        os.replace(tmp, target)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpcmEmulationError(f"building the emulated driver library failed: {' '.join(cmd)}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
