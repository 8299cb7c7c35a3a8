"""What the runner prints: a failing stage in one screen, and the closing summary."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrlib.artifacts import INDEX_FILE

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: traceback lines shown for a failing cell (the end is where the error is)
TRACEBACK_LINES = 12


@dataclass
class StageResult:
    """How one stage of this invocation went."""

    name: str
    #: ``ran``, ``skipped`` (up to date), ``failed``, ``interrupted`` or ``not selected``
    outcome: str
    wall_s: float | None = None
    reason: str = ""


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def failure_report(stage: str, exc: BaseException, executed: Path) -> str:
    """One screen naming the notebook, the cell, the error and where the failing notebook is."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    lines = [f"stage {stage} failed"]
    if isinstance(exc, PapermillExecutionError):
        first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
        lines.append(f"  cell {exc.cell_index} (execution count {exc.exec_count}): {first}")
        lines.append(f"  {exc.ename}: {strip_ansi(str(exc.evalue))}")
        tb = strip_ansi("\n".join(exc.traceback or [])).splitlines()
        tb = [ln for ln in tb if ln.strip()][-TRACEBACK_LINES:]
        if tb:
            lines.append("  traceback (last lines):")
            lines.extend(f"    {ln}" for ln in tb)
    elif isinstance(exc, CellTimeoutError):
        lines.append(f"  a cell ran past the profile's cell_timeout: {_first_line(exc)}")
        lines.append(
            "  raise cell_timeout in the profile (null = no limit) or make the stage lighter"
        )
    elif isinstance(exc, DeadKernelError):
        lines.append(f"  the kernel died: {_first_line(exc)}")
        lines.append("  this is most often out of memory: lower batch_size, workers or image_size")
    else:
        lines.append(f"  {type(exc).__name__}: {strip_ansi(str(exc))}")
    lines.append(f"  executed notebook (open it to see every output): {executed}")
    return "\n".join(lines)


def summary(results: Sequence[StageResult], run_dir: Path) -> str:
    """Wall time per stage and where the results are."""
    width = max((len(r.name) for r in results), default=0)
    lines = ["stages:"]
    for r in results:
        when = f"{r.wall_s:8.1f} s" if r.wall_s is not None else " " * 10
        note = f"  ({r.reason})" if r.reason else ""
        lines.append(f"  {r.name:<{width}}  {when}  {r.outcome}{note}")
    lines.append(f"results: {run_dir}")
    index = run_dir / INDEX_FILE
    if index.is_file():
        lines.append(f"summary page: {index}")
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    text = strip_ansi(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
