#!/usr/bin/env python
"""Run the study end to end: ``python run_all.py [--profile demo] [--list] ...`` (see --help).

Exit codes: 0 done, 1 a stage failed, 2 a configuration error, 130 interrupted.
"""

import sys

from cxrlib.cli import run_cli
from cxrlib.pipeline.runner import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
