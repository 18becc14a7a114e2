"""Warnings that point at the user's line: the first frame outside the awgrt package."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` made by the caller of this function that names
    the innermost frame outside awgrt (the user's line), however deep inside awgrt the caller is."""
    level, frame = 1, sys._getframe(2)  # the frame that called the one calling us is level 2
    while frame is not None:
        level += 1
        if not str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
            return level
        frame = frame.f_back  # type: ignore[assignment]
    return level


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` at the user's line (see :func:`user_stacklevel`)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())
