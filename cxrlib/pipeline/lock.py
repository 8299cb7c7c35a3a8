"""One run at a time per run folder.

Two ``run_all.py`` processes on the same run folder would write the same stage folders and
records at once. :class:`RunLock` takes an exclusive lock on ``<run_dir>/.run.lock`` for the
whole run; a second runner fails at once with a message naming the holder. The operating system
releases the lock when the holder exits, however it exits (a ``kill -9`` included), so a stale
lock file never blocks a later run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

LOCK_NAME = ".run.lock"


class RunFolderBusy(ValueError):
    """Another run holds the run folder (a user error: exit code 2)."""


class RunLock:
    """Exclusive, non-blocking lock on a run folder, held in a ``with`` block."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderBusy(
                f"run folder {self.path.parent} is in use by another run ({holder}); wait for "
                "it to finish, or pass --run-dir with another folder"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                }
            )
        )
        handle.flush()
        self._file = handle
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def _try_lock(handle: IO[str]) -> bool:
    """Lock ``handle`` exclusively without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): run unlocked rather than not at all
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
