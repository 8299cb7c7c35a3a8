"""What every CPU computes alike about a result table: its size, which values are defined, and
that each lies in its range.

A trained model's numbers differ in the last bits from one instruction set to another
(PyTorch's CPU kernels take other paths), and on small test sets that shows in the second
decimal of an AUC. The notebooks' regression cells (``# NBVAL_CHECK_OUTPUT``) therefore print
these checks instead of the numbers: a wrong table shape, a metric outside [0, 1] or an AUC
that went undefined fails on every machine, while the numbers themselves are shown unchecked.
Whether a metric is defined (an AUC needs both classes) depends on the data only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

CHECK_COLUMNS: tuple[str, ...] = ("check", "result")


def range_checks(
    frame: pd.DataFrame,
    ranges: Mapping[str, tuple[float, float]],
    *,
    ordered: Iterable[Sequence[str]] = (),
) -> pd.DataFrame:
    """One row per check, indexed by its description; ``result`` is text (``yes``/``NO ...``).

    ``ranges`` maps a column to its closed interval; NaN counts as undefined, not as out of
    range. ``ordered`` lists column tuples whose defined values must not decrease left to
    right (e.g. ``("auc_ci_low", "auc_ci_high")``).
    """
    missing = [c for c in [*ranges, *(c for cols in ordered for c in cols)] if c not in frame]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(frame.columns)}")
    rows: list[tuple[str, str]] = [("rows", str(len(frame)))]
    for column, (low, high) in ranges.items():
        values = pd.to_numeric(frame[column], errors="coerce")
        defined = values.notna()
        outside = int((~values[defined].between(low, high)).sum())
        verdict = "yes" if outside == 0 else f"NO: {outside} outside"
        rows.append(
            (f"{column} in [{low:g}, {high:g}]", f"{verdict} ({int(defined.sum())} defined)")
        )
    for columns in ordered:
        sub = frame[list(columns)].apply(pd.to_numeric, errors="coerce").dropna()
        bad = sum(int((sub[a] > sub[b]).sum()) for a, b in itertools.pairwise(columns))
        rows.append((" <= ".join(columns), "yes" if bad == 0 else f"NO: {bad} rows"))
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS)).set_index("check")


def rows_within(frame: pd.DataFrame, allowed: Sequence[Mapping[str, object]]) -> bool:
    """True when every row of ``frame`` equals one of ``allowed`` on the keys of ``allowed``
    (e.g. each chosen hyperparameter setting is a point of the grid searched)."""
    if not allowed:
        return frame.empty
    keys = list(allowed[0])
    points = {tuple(point[k] for k in keys) for point in allowed}
    return all(tuple(row) in points for row in frame[keys].itertuples(index=False))
