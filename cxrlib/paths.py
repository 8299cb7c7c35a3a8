"""Project, cache and run-folder paths: derived here once, never from the working directory."""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root (the folder holding ``cxrlib/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMETERS_DIR = PROJECT_ROOT / "parameters"
RUNS_DIR = PROJECT_ROOT / "runs"
REFERENCE_DIR = PROJECT_ROOT / "cxrlib" / "reference"


def cache_dir() -> Path:
    """Folder for generated data that is reused across runs (not tracked by git).

    ``$CXRLIB_CACHE_DIR`` overrides the default ``<project>/.cache``.
    """
    return Path(os.environ.get("CXRLIB_CACHE_DIR", PROJECT_ROOT / ".cache")).expanduser()


def stage_dir(run_dir: str | os.PathLike[str], stage: str) -> Path:
    """Output folder of one stage inside a run folder, e.g. ``runs/demo/01_preprocessing``."""
    return Path(run_dir) / stage
