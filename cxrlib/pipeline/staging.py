"""Stage-level atomicity: a stage's folder holds either complete outputs or none.

Files are written atomically one by one (:mod:`cxrlib.atomic`), but a stage writes many: one
that is killed or fails half-way would leave some new files beside old ones. So the runner
gives every stage run a fresh folder:

- :meth:`StageFolder.begin` moves a completed folder aside (``.<stage>.previous``) and starts
  the stage in an empty one; a folder without a completion record (left by a killed run) is
  emptied instead.
- :meth:`StageFolder.commit` (after the completion record is written) deletes the old folder.
- :meth:`StageFolder.rollback` (failure, Ctrl-C) deletes the partial folder and puts the old
  one back, record included, so a failed re-run leaves the previous results as they were.
- A run killed outright (SIGKILL, power loss) leaves ``.<stage>.previous`` behind:
  :func:`recover`, called before every run, rolls it back then.

``reusable`` names outputs (top-level entries of the stage folder) that check themselves and
may serve the next run (stage 01's image cache resumes an unfinished build or rebuilds when its
inputs changed): they move into the fresh folder instead of being rebuilt, and back on
rollback. Moves are renames within the run folder, so nothing is copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from cxrlib.pipeline.fingerprint import record_path

PREVIOUS_SUFFIX = ".previous"


def previous_path(folder: str | os.PathLike[str]) -> Path:
    """Where :meth:`StageFolder.begin` keeps a stage's previous outputs during a run."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}{PREVIOUS_SUFFIX}"


def interrupted(folder: str | os.PathLike[str]) -> bool:
    """True when a run of this stage was killed and its previous outputs wait to be restored."""
    return previous_path(folder).exists()


def recover(folder: str | os.PathLike[str], reusable: Sequence[str] = ()) -> bool:
    """Undo a run that was killed before it could roll back; True when there was one."""
    if not interrupted(folder):
        return False
    StageFolder(folder, reusable).rollback()
    return True


class StageFolder:
    """The output folder of one stage run (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str], reusable: Sequence[str] = ()) -> None:
        self.folder = Path(folder)
        self.previous = previous_path(self.folder)
        self.reusable = tuple(reusable)

    def begin(self) -> Path:
        """Empty the folder for a new run, keeping a completed one aside; returns the folder."""
        recover(self.folder, self.reusable)
        if record_path(self.folder).is_file():
            os.replace(self.folder, self.previous)
            self.folder.mkdir(parents=True)
            self._move_reusable(self.previous, self.folder)
        elif self.folder.exists():
            self._strip_to_reusable()
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def commit(self) -> None:
        """The run completed: forget the previous outputs."""
        shutil.rmtree(self.previous, ignore_errors=True)

    def rollback(self) -> None:
        """The run failed or was interrupted: back to the state before :meth:`begin`."""
        if self.previous.exists():
            if self.folder.exists():
                self._move_reusable(self.folder, self.previous)
                shutil.rmtree(self.folder)
            os.replace(self.previous, self.folder)
        elif self.folder.exists():
            self._strip_to_reusable()

    def _move_reusable(self, source: Path, target: Path) -> None:
        for rel in self.reusable:
            if (source / rel).exists() and not (target / rel).exists():
                os.replace(source / rel, target / rel)

    def _strip_to_reusable(self) -> None:
        """Delete everything in the folder except the reusable outputs."""
        for entry in self.folder.iterdir():
            if entry.name in self.reusable:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
