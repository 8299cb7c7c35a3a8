"""Progress bars for the terminal of whoever runs the work, never for a notebook's outputs.

Inside a Jupyter kernel ``sys.stderr`` is captured into the notebook, so a tqdm bar there
leaves hundreds of half-drawn lines in the executed and stored notebooks. The kernel process's
own stream (``sys.__stderr__``) is the terminal that started it: the one running
``run_all.py`` (papermill starts kernels with the runner's streams) or ``jupyter lab``. Bars
go there, and only when it is a terminal (tqdm's ``disable=None``), so logs and CI output get
the runner's one line per stage instead of carriage-return noise. Outside a kernel (command
line tools, scripts) bars go to ``sys.stderr`` under the same rule.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm


def terminal_stream() -> TextIO:
    """Where progress goes: the process's own stderr inside a Jupyter kernel, else stderr."""
    inside_kernel = "ipykernel" in sys.modules and sys.stderr is not sys.__stderr__
    if inside_kernel and sys.__stderr__ is not None:
        return sys.__stderr__
    return sys.stderr


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` drawn on :func:`terminal_stream`.

    ``disable=True`` (a caller's ``progress=False``) hides the bar; otherwise it shows only
    when the stream is a terminal.
    """
    kwargs.setdefault("file", terminal_stream())
    if kwargs.get("disable") is not True:
        kwargs["disable"] = None
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
