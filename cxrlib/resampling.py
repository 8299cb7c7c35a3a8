"""Cluster bootstrap weights: resample subjects, not images, with replacement.

Images of one subject are not independent, so confidence intervals in this project resample
subjects. A resample is a weight per image (how often its subject was drawn), which lets a
metric be computed for all resamples at once as a weighted sum instead of 1,000 Python calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def group_bootstrap_weights(groups: Sequence[object], n_boot: int, seed: int = 0) -> np.ndarray:
    """``(n_boot, len(groups))`` weights: per resample, how often each item's group was drawn."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    codes, uniques = pd.factorize(pd.Series(list(groups)), sort=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniques), size=(n_boot, len(uniques)))
    counts = np.zeros((n_boot, len(uniques)))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return counts[:, codes]


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of the finite ``values``; (NaN, NaN) when none is."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)
