"""Atomic output writing: an interrupted stage never leaves a half-written file.

Every artifact in a run folder is written to a temporary sibling and renamed
into place (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

#: Endings of the temporary names used below: a file or folder being written (``.tmp``) and a
#: folder being replaced (``.old``). Never outputs (see :mod:`cxrlib.pipeline.fingerprint`).
TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"
TEMPORARY_SUFFIXES: tuple[str, ...] = (TMP_SUFFIX, OLD_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed
    and ``path`` keeps its previous content, if any.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the output the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it onto ``path`` on success.

    For outputs that are folders (a model, an adapter). An existing ``path`` is replaced only
    after the new folder is complete; on any exception the temporary folder is removed and
    ``path`` keeps its previous content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            # two renames: the old folder disappears only once the new one is complete
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=OLD_SUFFIX, dir=tmp.parent)
            )
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(
    path: str | os.PathLike[str], *, what: str = "--out", folder: bool = False
) -> Path:
    """Fail before any work is done when ``path`` cannot be written, naming it and why.

    ``folder=False``: ``path`` is a file to (over)write: it must not be a folder, and the
    nearest existing folder above it must be writable. ``folder=True``: ``path`` is a folder
    to create or write into. ``what`` names the option or parameter. Raises
    ``IsADirectoryError``, ``NotADirectoryError`` or ``PermissionError`` with a message that
    names ``what`` and the path; checking creates nothing.
    """
    target = Path(path)
    if not folder and target.is_dir():
        raise IsADirectoryError(f"{what} {target} is a folder; give a file path instead")
    if folder and target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{what} {target} is a file; give a folder path instead")
    existing = target if folder and target.is_dir() else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {target}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{what} {target}: no permission to write in {existing}; choose another place "
            "or fix the folder's permissions"
        )
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (stable bytes for a stable object)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, **to_csv_kwargs: Any) -> Path:
    """Write a DataFrame as CSV atomically (``index=False`` unless told otherwise).

    A ``.gz`` suffix gzips with a fixed mtime so the bytes depend on the content only.
    """
    to_csv_kwargs.setdefault("index", False)
    target = Path(path)
    if target.suffix == ".gz" and "compression" not in to_csv_kwargs:
        # gzip by hand: pandas would store the temporary file's name in the gzip header
        text = frame.to_csv(**to_csv_kwargs)
        return write_bytes(target, gzip.compress(text.encode("utf-8"), mtime=0))
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, **to_csv_kwargs)
    return target


def save_figure(path: str | os.PathLike[str], fig: Any, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    target = Path(path)
    savefig_kwargs.setdefault("bbox_inches", "tight")
    savefig_kwargs.setdefault("dpi", 110)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", **savefig_kwargs)
    return target


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
