"""Deprecated alias of :mod:`cxrlib.labeler`, kept for one release (cxrlib 0.1 -> 0.2).

The labeler moved to its own package so that report generation and report evaluation both
depend on it and not on each other. Import from ``cxrlib.labeler`` and run
``python -m cxrlib.labeler``; ``python -m cxrlib.reporteval.labeler`` still works meanwhile.
"""

import warnings

from cxrlib.cli import run_cli
from cxrlib.labeler import *  # noqa: F403 (the alias re-exports the public names)
from cxrlib.labeler import __all__ as _labeler_all
from cxrlib.labeler.command import label_csv, main

__all__ = [*_labeler_all, "label_csv", "main", "run_cli"]

warnings.warn(
    "cxrlib.reporteval.labeler is deprecated and will be removed in the next release; "
    "import cxrlib.labeler (command line: python -m cxrlib.labeler)",
    DeprecationWarning,
    stacklevel=2,
)

if __name__ == "__main__":
    import sys

    print(
        "note: python -m cxrlib.reporteval.labeler is deprecated; use python -m cxrlib.labeler",
        file=sys.stderr,
    )
    raise SystemExit(run_cli(main))
