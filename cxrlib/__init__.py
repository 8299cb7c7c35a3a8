"""cxrlib: the helper package of the MIMIC-CXR study notebooks.

Rooms (see docs/ARCHITECTURE.md): ``mimic`` (layout, readers, synthetic look-alike),
``cohort`` and ``reportset`` (the paper's selection rules), ``images`` (preprocessing cache,
datasets), ``classify`` (CNNs), ``labeler`` (CheXpert-style report labeler, used by both
halves of the report work), ``reportgen`` (Llama-3.2-Vision), ``reporteval`` (metrics and
baselines), ``pipeline`` (papermill runner), ``plots``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxrlib")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+unknown"
