"""How torch's OpenMP threads wait on the CPU: spin briefly, then sleep.

libgomp (torch's OpenMP runtime) lets an idle thread spin 300,000 rounds before it sleeps.
Alone that is fastest for the tiny Llama, whose operations take about 100 microseconds, but
two torch processes on the same two cores then spin against each other: 20 LoRA steps took
5-18x as long as alone (``bench/reportgen.py``). ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once)
avoids the clash but makes the tiny Llama 1.7-2.6x slower alone. Spinning 1,000 rounds keeps
the speed alone (within about 10 %) and limits the clash to about 2x, the cost of sharing.

libgomp reads these variables once, when torch is first imported, so they must be in the
environment of a process before it starts: the runner sets them for the notebook kernels it
launches and the test suite for nbval's kernels. A value the user set is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: Environment the project gives every process that runs torch (see the module docstring).
OPENMP_ENVIRONMENT: dict[str, str] = {"GOMP_SPINCOUNT": "1000"}


def apply_openmp_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add :data:`OPENMP_ENVIRONMENT` to ``environ`` where the user has not set a value."""
    for name, value in OPENMP_ENVIRONMENT.items():
        environ.setdefault(name, value)
