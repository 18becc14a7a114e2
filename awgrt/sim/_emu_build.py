"""Building the C route's driver library: the system compiler, the cache directory and a safe
concurrent build (see :mod:`awgrt.sim.spcm_emulation`)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import stat
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


def untrusted(path: Path) -> str | None:
    """Why ``path`` (a directory or the library) must not be trusted to hold code this process
    loads, or None: it must be a real file or directory (not a link), owned by this user and
    writable by nobody else, as ssh and pip ask of their own files."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return f"{path} is neither a file nor a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} belongs to user {st.st_uid}, not to this user ({os.getuid()})"
    if st.st_mode & 0o022:
        return f"{path} can be written by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private_dir(path: Path) -> str | None:
    """Create ``path`` (mode 0700) if it is missing; None if it is then trusted, else why not."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return untrusted(path)


def _writable_build_dir(target: Path) -> Path:
    """Where to build ``target``: its own directory when this user owns it (and nobody else can
    write it); else, if ``$AWGRT_CACHE_DIR`` is unset, a per-user directory under the system temp
    dir that passes the same check (:func:`untrusted`); else a fresh private directory made for
    this process (``mkdtemp``). Code is never loaded from a directory another user could have
    planted it in."""
    problem = _private_dir(target.parent)
    if problem is None and os.access(target.parent, os.W_OK):
        return target
    if os.environ.get(ENV_CACHE):
        raise SpcmEmulationError(f"cannot use {target.parent} (${ENV_CACHE}) for the emulated driver library: {problem or 'not writable'}")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    base = Path(tempfile.gettempdir()) / f"awgrt-cache-{uid}"
    fallback = _library_path(base)
    if _private_dir(base) is None and _private_dir(fallback.parent) is None:
        return fallback
    try:
        return Path(tempfile.mkdtemp(prefix="awgrt-emu-")) / LIBRARY_NAME  # private (0700) and new: nobody else's
    except OSError as exc:
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent} nor a temporary directory: {exc} (set ${ENV_CACHE})") from exc


def _trusted_library(target: Path) -> bool:
    """``target`` exists and it and the directories it was found in pass :func:`untrusted`."""
    return target.exists() and all(untrusted(p) is None for p in (target, target.parent))


def build_library(*, force: bool = False) -> Path:
    """Compile ``libspcm_emu.c`` into the cache (once per source hash) and return the path of the
    built ``libspcm_linux.so``. A library is loaded only from a directory this user owns and
    nobody else can write (:func:`untrusted`); if the default cache is not such a directory, a
    per-user directory in the system temp dir that is, or else a fresh private one, is used. Concurrent builds are safe (each writes a temporary file, then
    renames it into place). Raises :class:`SpcmEmulationError` with the compiler's output if
    there is no compiler or the build fails."""
    if not sys.platform.startswith("linux"):
        raise SpcmEmulationError(f"the C route needs Linux (ELF sonames); this is {sys.platform}: use route='python'")
    target = _library_path()
    if _trusted_library(target) and not force:
        return target
    cc = find_compiler()
    if cc is None:
        raise SpcmEmulationError("no C compiler found (set CC, or install cc/gcc/clang); route='python' needs none")
    target = _writable_build_dir(target)
    if _trusted_library(target) and not force:
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
