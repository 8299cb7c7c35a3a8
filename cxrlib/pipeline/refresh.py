"""Re-execute the stored notebooks in place: the outputs nbval compares against.

``python -m cxrlib.pipeline.refresh`` (``make notebooks``) runs every stage notebook of
``notebooks/`` in pipeline order with its own defaults, as nbval will, into a fresh
``runs/interactive/`` (the notebooks' default run folder), and saves each one over itself.
Timing metadata that papermill and Jupyter add to every cell is dropped so that a refresh
changes only what a reader sees. Run it after changing a notebook or anything its
``# NBVAL_CHECK_OUTPUT`` cells print, and commit the result.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat

from cxrlib.cli import run_cli
from cxrlib.openmp import apply_openmp_environment
from cxrlib.paths import NOTEBOOKS_DIR, RUNS_DIR
from cxrlib.pipeline.runner import KERNEL_NAME, check_kernel, papermill_executor
from cxrlib.pipeline.stages import STAGES, select_stages

#: The notebooks' default ``run_dir`` (``../runs/interactive`` from ``notebooks/``).
INTERACTIVE_RUN_DIR = RUNS_DIR / "interactive"
#: Per-cell and per-notebook metadata that only records when and how long a cell ran.
_VOLATILE_METADATA = ("execution", "papermill")


def refresh(
    notebooks: Sequence[Path],
    *,
    run_dir: Path = INTERACTIVE_RUN_DIR,
    kernel_name: str = KERNEL_NAME,
) -> None:
    """Execute ``notebooks`` in order, each saved over itself, from an empty ``run_dir``."""
    check_kernel(kernel_name)
    apply_openmp_environment()
    execute = papermill_executor(kernel_name)
    shutil.rmtree(run_dir, ignore_errors=True)
    for path in notebooks:
        t0 = time.perf_counter()
        # no parameters: the notebook runs with its own defaults, as nbval runs it
        execute(path, path, parameters={}, cwd=path.parent, cell_timeout=None, progress_bar=False)
        strip_volatile_metadata(path)
        print(f"{path.name}: {time.perf_counter() - t0:.1f} s", flush=True)


def strip_volatile_metadata(path: Path) -> None:
    """Drop the run-time records papermill and Jupyter write into a notebook's metadata."""
    nb = nbformat.read(path, as_version=4)
    for key in _VOLATILE_METADATA:
        nb.metadata.pop(key, None)
        for cell in nb.cells:
            cell.metadata.pop(key, None)
    nbformat.write(nb, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.pipeline.refresh",
        description="Re-execute the stored notebooks in place with their defaults (the outputs "
        "nbval compares), from an empty runs/interactive/.",
    )
    parser.add_argument(
        "--until", metavar="S", help="stop after this stage (earlier ones always run)"
    )
    args = parser.parse_args(argv)
    stages = select_stages(STAGES, stop=args.until)
    refresh([NOTEBOOKS_DIR / s.notebook for s in stages])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
