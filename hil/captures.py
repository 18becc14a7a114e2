"""Saved captures: every record a run took, kept so its checks can be run again later.

``run_suite(..., out_dir=DIR)`` writes ``DIR/captures/<program>__<channel>.npz`` for each AWG
channel of each program: the scope's raw codes and scaling (:class:`~hil.scopes.Capture`), the
vertical range the scope reported, the card samples of the triggers as measured, the rig's name
and the faults injected. :func:`check_capture` runs the program's checks on saved captures (the
program is compiled again for the rig's card; the timeline is placed on the saved triggers), as
``awgrt hil --recheck DIR`` does for a whole folder: after a change of limits, of the analysis, or
to look again at a night that failed.

A capture file is read as untrusted input (:mod:`awgrt._savefile`): a problem is a
:class:`~awgrt.errors.SerializationError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from awgrt._atomic import atomic_write
from awgrt._savefile import SaveFile, check_value, need
from awgrt.errors import SerializationError

from .scopes.base import Capture

SCHEMA = "awgrt.hil.capture"
VERSION = 1
#: Largest record accepted from a file (bytes of codes).
MAX_CODES_BYTES = 512 * 2**20


@dataclass(frozen=True)
class SavedCapture:
    """One AWG channel's record with what a recheck needs: the suite ``program``'s name, the
    logical ``awg_channel`` (``"H"``, ``"V"``), the scope input's reported ``range_v`` and
    ``offset_v``, the card samples of the ``triggers`` (the first is t = 0 of the record), the
    ``rig`` name, the ``faults`` injected when it was taken and the output ``delay_s`` the run
    started its fits from (the rig file's, or one fitted on an earlier record of the run)."""

    capture: Capture
    program: str
    awg_channel: str
    range_v: float
    offset_v: float
    triggers: tuple[int, ...]
    rig: str = ""
    faults: tuple[str, ...] = field(default=())
    delay_s: float = 0.0

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz``), atomically."""
        c = self.capture
        meta = {
            "schema": SCHEMA,
            "schema_version": VERSION,
            "program": self.program,
            "awg_channel": self.awg_channel,
            "scope_channel": c.channel,
            "range_v": self.range_v,
            "offset_v": self.offset_v,
            "triggers": list(self.triggers),
            "rig": self.rig,
            "faults": list(self.faults),
            "delay_s": self.delay_s,
            "x_increment_s": c.x_increment_s,
            "x_origin_s": c.x_origin_s,
            "y_increment_v": c.y_increment_v,
            "y_origin_v": c.y_origin_v,
            "y_reference": c.y_reference,
            "metadata": json.loads(json.dumps(dict(c.metadata), default=_plain)),
        }
        meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return atomic_write(path, lambda f: np.savez(f, meta=meta_bytes, codes=np.asarray(c.codes)))  # type: ignore[arg-type]
        except OSError as exc:
            raise SerializationError(f"cannot save the capture to {path}: {exc.strerror or exc}", op="save", value=str(path)) from exc

    @classmethod
    def load(cls, path: str | Path) -> SavedCapture:
        """Read a capture written by :meth:`save` (see module doc)."""
        with SaveFile(path) as f:
            meta = f.meta()
            if meta.get("schema") != SCHEMA or meta.get("schema_version") != VERSION:
                raise f.fail("meta.schema", f"not an awgrt HIL capture of version {VERSION}", meta.get("schema"))
            codes = f.array("codes", MAX_CODES_BYTES)
            if codes.ndim != 1 or codes.dtype.kind not in "iu" or codes.size == 0:
                raise f.fail("codes", f"must be a non-empty 1-D integer array, got {codes.dtype} of shape {codes.shape}")
            numbers = {}
            for key in ("x_increment_s", "x_origin_s", "y_increment_v", "y_origin_v", "y_reference", "range_v", "offset_v", "delay_s"):
                value = float(need(f, meta, key, "real"))
                if not math.isfinite(value):
                    raise f.fail(f"meta.{key}", "must be finite", value)
                numbers[key] = value
            for key in ("x_increment_s", "range_v"):
                if numbers[key] <= 0:
                    raise f.fail(f"meta.{key}", "must be above zero", numbers[key])
            triggers = tuple(check_value(f, "meta.triggers", t, "int") for t in need(f, meta, "triggers", "list"))
            if not triggers or any(t < 0 for t in triggers):
                raise f.fail("meta.triggers", "must be one or more card samples (>= 0)", list(triggers)[:8])
            faults = tuple(check_value(f, "meta.faults", x, "str") for x in need(f, meta, "faults", "list"))
            metadata = meta.get("metadata", {})
            if not isinstance(metadata, dict):
                raise f.fail("meta.metadata", "must be an object", type(metadata).__name__)
            try:
                capture = Capture(
                    need(f, meta, "scope_channel", "str"),
                    codes,
                    numbers["x_increment_s"],
                    numbers["x_origin_s"],
                    numbers["y_increment_v"],
                    numbers["y_origin_v"],
                    numbers["y_reference"],
                    metadata,
                )
            except Exception as exc:  # the capture's own checks: one line naming the file
                raise f.fail("meta", str(exc)) from None
            return cls(
                capture,
                need(f, meta, "program", "str"),
                need(f, meta, "awg_channel", "str"),
                numbers["range_v"],
                numbers["offset_v"],
                triggers,
                need(f, meta, "rig", "str"),
                faults,
                numbers["delay_s"],
            )


def _plain(x: object) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def capture_path(out_dir: str | Path, program: str, awg_channel: str) -> Path:
    """Where a run keeps one channel's capture of one program."""
    return Path(out_dir) / "captures" / f"{program}__{awg_channel}.npz"


def saved_in(folder: str | Path) -> list[Path]:
    """The capture files of a run's output ``folder`` (its ``captures/``, or the folder itself)."""
    folder = Path(folder)
    inside = folder / "captures"
    return sorted((inside if inside.is_dir() else folder).glob("*.npz"))


def grouped(captures: Iterable[SavedCapture]) -> dict[str, list[SavedCapture]]:
    """Captures by program, in the order first seen."""
    out: dict[str, list[SavedCapture]] = {}
    for c in captures:
        out.setdefault(c.program, []).append(c)
    return out


def check_capture(captures: SavedCapture | str | Path | Sequence[SavedCapture | str | Path], rig: Any = "sim") -> list:
    """Run the checks of the suite program the ``captures`` were taken of (one acquisition: one
    or both AWG channels, as :class:`SavedCapture` or capture files) for ``rig`` (``"sim"``,
    ``"emulated"``, a rig file or a :class:`~hil.rig.RigConfig`: its card, signal path, scope
    resolution and limits); returns the :class:`~hil.analysis.CheckResult` s. The rig is not
    opened: nothing is played."""
    from .runner import recheck_program

    items = captures if isinstance(captures, Sequence) and not isinstance(captures, (str, bytes)) else [captures]
    loaded = [c if isinstance(c, SavedCapture) else SavedCapture.load(c) for c in items]
    programs = grouped(loaded)
    if len(programs) != 1:
        raise SerializationError(f"captures of one program expected, got {sorted(programs)}", value=sorted(programs))
    (name, group), = programs.items()
    return recheck_program(name, group, rig)
