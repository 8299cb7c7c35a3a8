"""``python -m cxrlib.labeler``: the labeler's command line (see :mod:`cxrlib.labeler.command`)."""

from cxrlib.cli import run_cli
from cxrlib.labeler.command import main

raise SystemExit(run_cli(main))
