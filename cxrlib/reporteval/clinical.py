"""Clinical efficacy (CE): precision / recall / F1 of generated against reference labels.

Both reports are labelled with the CheXpert-style labeler; each label becomes binary:
1.0 is positive, 0.0 and "not mentioned" are negative, and uncertain (-1.0) is negative by
default (R2Gen, LLaVA-Rad and MAIRA-2 report their main numbers this way) or positive on
request. Scores are micro (pooled over labels) and macro (mean of per-label scores) over the
14 CheXpert labels and over the 5 competition labels. A label with no positive in reference
and generated reports scores 0 (scikit-learn's ``zero_division=0``), so macro averages never
skip labels. Every table carries its convention in the ``uncertain_as`` column and
:func:`convention` gives the sentence to print beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from cxrlib.choices import UNCERTAIN_AS
from cxrlib.mimic.layout import CHEXPERT_LABELS, COMPETITION_LABELS, LABEL_VALUES, UNCERTAIN
from cxrlib.resampling import group_bootstrap_weights, percentile_interval

#: Label sets of the CE tables: name in the ``labels`` column -> CheXpert columns.
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "chexpert14": CHEXPERT_LABELS,
    "competition5": COMPETITION_LABELS,
}
AVERAGES: tuple[str, ...] = ("micro", "macro")
#: Columns of ``ce_metrics.csv``.
CE_COLUMNS: tuple[str, ...] = (
    "generator",
    "labels",
    "average",
    "uncertain_as",
    "precision",
    "recall",
    "f1",
)
#: Columns of the per-finding table.
PER_FINDING_COLUMNS: tuple[str, ...] = (
    "generator",
    "label",
    "uncertain_as",
    "precision",
    "recall",
    "f1",
    "support",
    "predicted",
)


def convention(uncertain_as: str = "negative") -> str:
    """One sentence stating how the CE numbers were computed (print it with every table)."""
    _check_uncertain_as(uncertain_as)
    return (
        "CE: CheXpert-style labels of reference and generated reports; positive = 1.0, "
        f"uncertain (-1.0) counted as {uncertain_as}, negative and not mentioned as negative; "
        "micro = pooled over labels, macro = mean over labels (a label without positives "
        "scores 0); chexpert14 = all 14 labels incl. No Finding, competition5 = "
        + ", ".join(COMPETITION_LABELS)
        + "."
    )


def binarize(labels: pd.DataFrame, *, uncertain_as: str = "negative") -> pd.DataFrame:
    """0/1 matrix of a label frame (CheXpert columns; values 1, 0, -1 or NaN)."""
    _check_uncertain_as(uncertain_as)
    missing = [c for c in CHEXPERT_LABELS if c not in labels.columns]
    if missing:
        raise ValueError(
            f"label table lacks CheXpert columns {missing}; label the reports with "
            "cxrlib.labeler first"
        )
    values = labels[list(CHEXPERT_LABELS)].astype(float)
    bad = ~(values.isna() | values.isin(sorted(LABEL_VALUES)))
    if bad.any().any():
        column = bad.any().idxmax()
        raise ValueError(
            f"label column {column!r} holds {values[column][bad[column]].iloc[0]!r}; "
            "allowed values are 1.0, 0.0, -1.0 or empty"
        )
    positive = values == 1.0
    if uncertain_as == "positive":
        positive |= values == UNCERTAIN
    return positive.astype(int)


def ce_metrics(
    reference: pd.DataFrame,
    generated: pd.DataFrame,
    *,
    generator: str,
    uncertain_as: Sequence[str] | str = UNCERTAIN_AS,
) -> pd.DataFrame:
    """The CE table: one row per label set x average x convention (``CE_COLUMNS``)."""
    rows = []
    for convention_name in _as_tuple(uncertain_as):
        y_true, y_pred = _binary_pair(reference, generated, convention_name)
        for set_name, columns in LABEL_SETS.items():
            for average in AVERAGES:
                p, r, f, _ = precision_recall_fscore_support(
                    y_true[list(columns)].to_numpy(),
                    y_pred[list(columns)].to_numpy(),
                    average=average,
                    zero_division=0,
                )
                rows.append((generator, set_name, average, convention_name, p, r, f))
    return pd.DataFrame(rows, columns=list(CE_COLUMNS)).astype(
        {"precision": float, "recall": float, "f1": float}
    )


def per_finding(
    reference: pd.DataFrame,
    generated: pd.DataFrame,
    *,
    generator: str,
    uncertain_as: Sequence[str] | str = "negative",
) -> pd.DataFrame:
    """Precision / recall / F1 per CheXpert label (``PER_FINDING_COLUMNS``).

    ``support``: reports whose reference is positive; ``predicted``: generated positives.
    """
    frames = []
    for convention_name in _as_tuple(uncertain_as):
        y_true, y_pred = _binary_pair(reference, generated, convention_name)
        p, r, f, support = precision_recall_fscore_support(
            y_true.to_numpy(), y_pred.to_numpy(), average=None, zero_division=0
        )
        frames.append(
            pd.DataFrame(
                {
                    "generator": generator,
                    "label": list(CHEXPERT_LABELS),
                    "uncertain_as": convention_name,
                    "precision": p.astype(float),
                    "recall": r.astype(float),
                    "f1": f.astype(float),
                    "support": support.astype(int),
                    "predicted": y_pred.sum(axis=0).to_numpy().astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(PER_FINDING_COLUMNS)]


def weighted_f1(
    y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray, *, average: str
) -> np.ndarray:
    """F1 of binary ``(N, L)`` label matrices under each row of ``weights`` ``(B, N)``: ``(B,)``.

    ``macro`` averages per-label F1 (0 for a label without true or predicted positives, as
    scikit-learn's ``zero_division=0``); ``micro`` pools the counts. Hand-written because a
    bootstrap needs 1,000 of them, computed here as one matrix product; the tests check
    equality with scikit-learn's ``sample_weight``.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {list(AVERAGES)}, got {average!r}")
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    tp, fp, fn = w @ (t * p), w @ ((1 - t) * p), w @ (t * (1 - p))
    if average == "micro":
        tp, fp, fn = (x.sum(axis=1, keepdims=True) for x in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1.mean(axis=1)


def bootstrap_f1_difference(
    reference: pd.DataFrame,
    generated: pd.DataFrame,
    control: pd.DataFrame,
    groups: Sequence[object],
    *,
    labels: Sequence[str] = COMPETITION_LABELS,
    average: str = "macro",
    uncertain_as: str = "negative",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """F1 of ``generated`` and of ``control`` against the same ``reference`` labels (rows
    aligned), their difference, and its paired percentile interval resampling ``groups``
    (subjects): does ``generated`` score higher than ``control`` beyond chance?"""
    y_true, y_gen = _binary_pair(reference, generated, uncertain_as)
    _, y_control = _binary_pair(reference, control, uncertain_as)
    if len(groups) != len(y_true) or len(y_control) != len(y_true):
        raise ValueError(
            f"reference, generated, control and groups need one row per report each, got "
            f"{len(y_true)}, {len(y_gen)}, {len(y_control)} and {len(groups)}"
        )
    columns = list(labels)
    t, g, c = (frame[columns].to_numpy() for frame in (y_true, y_gen, y_control))
    ones = np.ones((1, len(t)))
    f1, f1_control = (float(weighted_f1(t, y, ones, average=average)[0]) for y in (g, c))
    weights = group_bootstrap_weights(groups, n_boot, seed)
    differences = weighted_f1(t, g, weights, average=average) - weighted_f1(
        t, c, weights, average=average
    )
    low, high = percentile_interval(differences, level)
    return {
        "f1": f1,
        "f1_control": f1_control,
        "difference": f1 - f1_control,
        "ci_low": low,
        "ci_high": high,
    }


def _binary_pair(
    reference: pd.DataFrame, generated: pd.DataFrame, uncertain_as: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if len(reference) != len(generated):
        raise ValueError(
            f"reference and generated label tables must have one row per report each, got "
            f"{len(reference)} and {len(generated)} rows"
        )
    if len(reference) == 0:
        raise ValueError("no reports to score: the label tables are empty")
    return (
        binarize(reference, uncertain_as=uncertain_as).reset_index(drop=True),
        binarize(generated, uncertain_as=uncertain_as).reset_index(drop=True),
    )


def _as_tuple(uncertain_as: Sequence[str] | str) -> tuple[str, ...]:
    values = (uncertain_as,) if isinstance(uncertain_as, str) else tuple(uncertain_as)
    for value in values:
        _check_uncertain_as(value)
    return values


def _check_uncertain_as(value: str) -> None:
    if value not in UNCERTAIN_AS:
        raise ValueError(f"uncertain_as must be one of {list(UNCERTAIN_AS)}, got {value!r}")
