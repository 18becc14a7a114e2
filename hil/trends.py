"""Figures over nights: the history every run appends to, and drift flags that come before a fail.

Every finished run without injected faults appends one line per check to ``hil-history.jsonl``
in its output folder (``--out awgrt-out/hil`` -> ``awgrt-out/hil/hil-history.jsonl``; a run
keeps it when it clears its folder), or to the file ``--history`` names (one history for runs
that write to dated folders): the run's
start time, the rig, and the check's program, name, measured value, sigma, limit, unit and
verdict. Runs with ``--inject`` are tests of the harness, not figures of the rig, and are left out.

``awgrt hil --trend DIR`` (DIR: the folder holding the history, or the history file) groups the
lines by rig, program and check name (a figure), and for each figure compares its latest night
with the ``nights`` before it: the figure *drifts* when the latest value lies more than ``k``
times the figure's own scatter from their mean, the scatter being the larger of their standard
deviation and their median sigma (a run's own measurement uncertainty). A drift is flagged even
while the value is inside its limit: that is the point, the rig is moving before it fails. Too
few nights (fewer than ``min_nights``) give no verdict. It writes ``DIR/trends/<figure>.png``
(every night's value with its sigma, the limit and the baseline band) and
``DIR/trends/summary.md``, prints the flagged figures, and exits non-zero if any figure drifts.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .analysis.result import CheckResult

HISTORY_NAME = "hil-history.jsonl"
#: Nights before the latest that a figure is compared with, by default.
NIGHTS = 10
#: How many of its own scatters the latest value may lie from the baseline mean.
DRIFT_K = 4.0
#: Fewest earlier nights that give a verdict.
MIN_NIGHTS = 5


def history_path(out_dir: str | Path, history: str | Path | None = None) -> Path:
    """Where a run writing to ``out_dir`` appends its figures: ``history`` when given (one
    history for runs that write to dated folders), else ``hil-history.jsonl`` in ``out_dir``."""
    return Path(history).resolve() if history is not None else Path(out_dir).resolve() / HISTORY_NAME


def append_history(
    results: Iterable[CheckResult], rig: str, out_dir: str | Path, *, started: str | None = None, history: str | Path | None = None
) -> Path:
    """Append one line per result to the run's history (:func:`history_path`; one write: a run's
    lines are never interleaved with another's). Returns the history's path."""
    run = started or datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = []
    for r in results:
        entry = {
            "run": run,
            "rig": rig,
            "program": r.program,
            "name": r.name,
            "check": r.check,
            "where": r.where,
            "measured": float(r.measured) if math.isfinite(r.measured) else None,
            "sigma": float(r.sigma) if math.isfinite(r.sigma) else None,
            "limit": float(r.limit),
            "unit": str(r.unit),
            "two_sided": bool(r.two_sided),
            "passed": bool(r.passed),
        }
        lines.append(json.dumps(entry, sort_keys=True))
    path = history_path(out_dir, history)
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = _ends_torn(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("\n" if torn else "") + "".join(line + "\n" for line in lines))  # a torn last line stays alone on its line
        fh.flush()
        os.fsync(fh.fileno())
    return path


@dataclass(frozen=True)
class Figure:
    """One figure over nights: (run, measured, sigma, limit, passed) in run order."""

    rig: str
    program: str
    name: str
    unit: str
    two_sided: bool
    runs: tuple[str, ...]
    measured: tuple[float, ...]
    sigma: tuple[float, ...]
    limit: tuple[float, ...]
    passed: tuple[bool, ...]

    @property
    def key(self) -> str:
        return f"{self.rig} {self.program} {self.name}"


@dataclass(frozen=True)
class Trend:
    """A figure's verdict: ``drifting`` (None: too few nights), the baseline's mean and scatter,
    and how many scatters the latest value lies from the mean."""

    figure: Figure
    drifting: bool | None
    mean: float
    scatter: float
    deviation: float  # (latest - mean) / scatter


def _ends_torn(path: Path) -> bool:
    """Whether ``path`` exists and its last byte is not a newline (a write cut short by a crash)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def _entry(line: bytes) -> dict | None:
    """One history line as an entry, or None when it is not a valid one (not UTF-8, not JSON,
    a field missing or of the wrong type: a torn or damaged line)."""
    try:
        e = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    if not isinstance(e, dict):
        return None
    text = ("rig", "program", "name", "run")
    if not all(isinstance(e.get(k), str) for k in text):
        return None
    for k in ("measured", "sigma"):
        if e.get(k) is not None and (isinstance(e[k], bool) or not isinstance(e[k], (int, float))):
            return None
    if isinstance(e.get("limit"), bool) or not isinstance(e.get("limit"), (int, float)):
        return None
    if not isinstance(e.get("passed", False), bool) or not isinstance(e.get("two_sided", True), bool) or not isinstance(e.get("unit", ""), str):
        return None
    return e


def load_history(path: str | Path) -> list[Figure]:
    """The figures in a history file (or the folder holding ``hil-history.jsonl``); lines that
    are not valid entries (a torn last line after a crash, a damaged byte, a field of the wrong
    type) are skipped."""
    p = Path(path)
    if p.is_dir():
        p = p / HISTORY_NAME
    groups: dict[tuple[str, str, str], list[dict]] = {}
    with open(p, "rb") as fh:
        for line in fh:
            e = _entry(line)
            if e is not None:
                groups.setdefault((e["rig"], e["program"], e["name"]), []).append(e)
    figures = []
    for (rig, program, name), entries in groups.items():
        entries.sort(key=lambda e: e["run"])
        figures.append(
            Figure(
                rig,
                program,
                name,
                str(entries[-1].get("unit", "")),
                bool(entries[-1].get("two_sided", True)),
                tuple(e["run"] for e in entries),
                tuple(math.nan if e.get("measured") is None else float(e["measured"]) for e in entries),
                tuple(math.nan if e.get("sigma") is None else float(e["sigma"]) for e in entries),
                tuple(float(e["limit"]) for e in entries),
                tuple(bool(e.get("passed")) for e in entries),
            )
        )
    return sorted(figures, key=lambda f: f.key)


def trend(figure: Figure, *, nights: int = NIGHTS, k: float = DRIFT_K, min_nights: int = MIN_NIGHTS) -> Trend:
    """Compare a figure's latest night with the ``nights`` before it (see module doc)."""
    values = np.array(figure.measured, dtype=float)
    sigmas = np.array(figure.sigma, dtype=float)
    base = values[:-1][-nights:]
    base_sigma = sigmas[:-1][-nights:]
    ok = np.isfinite(base)
    if ok.sum() < min_nights or not math.isfinite(values[-1]):
        return Trend(figure, None, math.nan, math.nan, math.nan)
    mean = float(base[ok].mean())
    spread = float(base[ok].std(ddof=1))
    typical_sigma = float(np.nanmedian(base_sigma)) if np.isfinite(base_sigma).any() else 0.0
    scatter = max(spread, typical_sigma, 1e-12 * max(1.0, abs(mean)))
    deviation = (values[-1] - mean) / scatter
    return Trend(figure, bool(abs(deviation) > k), mean, scatter, float(deviation))


def _filename(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:150] + ".png"


def plot_trend(t: Trend, path: Path, *, nights: int, k: float) -> Path:
    """The figure over nights: values with sigma, limit(s), baseline band; the latest marked red when it drifts."""
    from awgrt.plot import new_figure, save_figure

    f = t.figure
    x = np.arange(len(f.runs))
    fig = new_figure(figsize=(8, 3.6))
    ax = fig.subplots()
    ax.errorbar(x, f.measured, yerr=[s if math.isfinite(s) else 0.0 for s in f.sigma], fmt="o-", ms=4, lw=1, capsize=2, label="measured ± sigma")
    ax.plot(x, f.limit, "k--", lw=1, label="limit")
    if f.two_sided:
        ax.plot(x, [-v for v in f.limit], "k--", lw=1)
    if t.drifting is not None:
        lo = max(0, len(x) - 1 - nights)
        ax.fill_between(x[lo:-1], t.mean - k * t.scatter, t.mean + k * t.scatter, color="tab:green", alpha=0.15, label=f"baseline ± {k:g} scatter")
        if t.drifting:
            ax.plot(x[-1], f.measured[-1], "o", color="tab:red", ms=9, label=f"drift ({t.deviation:+.1f} scatters)")
    ax.set_xticks(x)
    ax.set_xticklabels([r[:10] for r in f.runs], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(f.unit)
    ax.set_title(f.key, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return path


def trend_report(where: str | Path, *, nights: int = NIGHTS, k: float = DRIFT_K, min_nights: int = MIN_NIGHTS, plots: bool = True) -> list[Trend]:
    """Every figure's trend (see module doc); writes ``trends/`` beside the history."""
    p = Path(where)
    folder = p if p.is_dir() else p.parent
    trends = [trend(f, nights=nights, k=k, min_nights=min_nights) for f in load_history(p)]
    out = folder / "trends"
    lines = [
        f"# HIL trends: {sum(bool(t.drifting) for t in trends)} of {len(trends)} figures drift",
        "",
        f"Latest night against the {nights} before it; drift: more than {k:g} scatters from their mean (fewer than {min_nights} nights: no verdict).",
        "",
        "| figure | nights | latest | mean | scatter | deviation | limit | verdict | plot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    def number(v: float, spec: str) -> str:
        return format(v, spec) if math.isfinite(v) else "-"  # no verdict yet: nothing to show, not nan

    for t in trends:
        f = t.figure
        png = ""
        if plots and len(f.runs) > 1:  # one night is a point, not a trend: no figure for it
            png = f"[png]({plot_trend(t, out / _filename(f.key), nights=nights, k=k).relative_to(folder).as_posix()})"
        verdict = "no verdict" if t.drifting is None else "**DRIFT**" if t.drifting else "steady"
        if not f.passed[-1]:
            verdict += ", **FAIL**"
        cells = [
            f.key,
            str(len(f.runs)),
            f"{number(f.measured[-1], '.4g')} {f.unit}",
            number(t.mean, ".4g"),
            number(t.scatter, ".3g"),
            number(t.deviation, "+.1f"),
            number(f.limit[-1], ".4g"),
            verdict,
            png,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return trends


def main(where: str | Path, *, nights: int = NIGHTS, plots: bool = True) -> int:
    """``awgrt hil --trend DIR``: print the drifting figures; exit status 1 if any drift."""
    trends = trend_report(where, nights=nights, plots=plots)
    drifting = [t for t in trends if t.drifting]
    for t in drifting:
        f = t.figure
        print(f"DRIFT {f.key}: {f.measured[-1]:.4g} {f.unit}, {t.deviation:+.1f} scatters from {t.mean:.4g} (limit {f.limit[-1]:.4g})")
    judged = sum(t.drifting is not None for t in trends)
    folder = Path(where) if Path(where).is_dir() else Path(where).parent
    most = max((len(t.figure.runs) for t in trends), default=0)
    if trends and not judged:
        print(f"the history holds {most} night(s): trends need {MIN_NIGHTS + 1} (each figure's table row is in {folder / 'trends' / 'summary.md'})")
    print(f"{len(drifting)} of {judged} figures with enough nights drift ({len(trends)} figures); see {folder / 'trends'}")
    return 1 if drifting else 0
