"""One BLAS thread for the small matrix products of synthesis and of the HIL fits."""

from __future__ import annotations

import contextlib

_BLAS: list = []  # the threadpoolctl controller, made on first use (finding the libraries takes ms)


def single_threaded_blas():
    """Synthesis's small matrix products run on one BLAS thread: on a busy machine a
    multi-threaded BLAS turns a 0.2 ms product into tens of milliseconds."""
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")
