"""Completion records: when a stage may be skipped.

A stage is up to date when ``<run_dir>/<stage>/.stage.json`` exists and records the same
parameters, the same notebook code, the same upstream records, and outputs that are all still
there unchanged (size and mtime_ns). This is Ploomber's rule, with the record file as the
product's metadata. The record is written (atomically) only after the stage succeeded, so a
stage that failed or was interrupted has none and re-runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from cxrlib.atomic import TEMPORARY_SUFFIXES, write_json

RECORD_NAME = ".stage.json"
#: the stale reason of a stage without a record
NOT_RUN = "not run yet"


def notebook_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a notebook's code cells.

    Outputs, execution counts and markdown are left out on purpose: re-saving a notebook after
    running it interactively must not invalidate finished stages; changed code must.
    """
    nb = nbformat.read(os.fspath(path), as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return _sha256(json.dumps(code).encode("utf-8"))


def record_path(stage_dir: str | os.PathLike[str]) -> Path:
    """Where a stage folder keeps its completion record."""
    return Path(stage_dir) / RECORD_NAME


def record_hash(stage_dir: str | os.PathLike[str]) -> str | None:
    """SHA-256 of a stage's record file (what dependents remember), or None when absent."""
    path = record_path(stage_dir)
    return _sha256(path.read_bytes()) if path.is_file() else None


def scan_outputs(stage_dir: str | os.PathLike[str]) -> dict[str, list[int]]:
    """Every file under ``stage_dir`` (except the record and temp files): ``[size, mtime_ns]``.

    Temporary files and folders of :mod:`cxrlib.atomic` (hidden, ending in ``.tmp`` or
    ``.old``) are never outputs, even when a killed write left one behind.
    """
    root = Path(stage_dir)
    found: dict[str, list[int]] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _is_temporary(d))
        for name in files:
            if name == RECORD_NAME or _is_temporary(name):
                continue
            path = Path(dirpath, name)
            st = path.stat()
            found[path.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return dict(sorted(found.items()))


def write_record(
    stage_dir: str | os.PathLike[str],
    *,
    stage: str,
    notebook_sha: str,
    parameters: Mapping[str, Any],
    upstream: Mapping[str, str],
    wall_s: float,
) -> Path:
    """Record a finished stage: what it ran with, and every file its folder holds now."""
    record = {
        "stage": stage,
        "notebook_hash": notebook_sha,
        "parameters": _plain(parameters),
        "upstream": dict(upstream),
        "outputs": scan_outputs(stage_dir),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(wall_s, 3),
    }
    return write_json(record_path(stage_dir), record)


def remove_record(stage_dir: str | os.PathLike[str]) -> None:
    """Forget that a stage finished (done before re-running it)."""
    record_path(stage_dir).unlink(missing_ok=True)


def stale_reason(
    stage_dir: str | os.PathLike[str],
    *,
    notebook_sha: str,
    parameters: Mapping[str, Any],
    upstream: Mapping[str, str | None],
) -> str | None:
    """Why a stage must re-run (``NOT_RUN``, ``"parameter changed: lr"``...), or None if done."""
    path = record_path(stage_dir)
    if not path.is_file():
        return NOT_RUN
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        old_params, old_upstream = record["parameters"], record["upstream"]
        outputs, old_sha = record["outputs"], record["notebook_hash"]
    except (ValueError, KeyError, TypeError):
        return "completion record unreadable"
    if old_sha != notebook_sha:
        return "notebook changed"
    new_params = _plain(parameters)
    changed = sorted(
        k for k in old_params.keys() | new_params.keys() if old_params.get(k) != new_params.get(k)
    )
    if changed:
        shown = ", ".join(
            f"{k} {old_params.get(k)!r} -> {new_params.get(k)!r}" for k in changed[:3]
        )
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        return f"parameter changed: {shown}{more}"
    for name, sha in upstream.items():
        if sha is None:
            return f"upstream {name} not done"
        if old_upstream.get(name) != sha:
            return f"upstream {name} re-ran"
    root = Path(stage_dir)
    for rel, (size, mtime_ns) in outputs.items():
        try:
            st = (root / rel).stat()
        except FileNotFoundError:
            return f"output missing: {rel}"
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return f"output changed: {rel}"
    return None


def _is_temporary(name: str) -> bool:
    """A name :mod:`cxrlib.atomic` gives its temporary files and folders."""
    return name.endswith(TEMPORARY_SUFFIXES)


def _plain(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON view of parameters (tuples become lists), so stored and fresh values compare."""
    return json.loads(json.dumps(dict(obj), default=str))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
