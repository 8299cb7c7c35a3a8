"""Evaluation of binary predictions: the paper's table, thresholds, bootstrap CIs, calibration.

Metrics come from scikit-learn. A set with one class only cannot have an AUC: it is reported
as NaN with the reason in the ``note`` column, never as an error or a silent number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from cxrlib.invariants import range_checks
from cxrlib.mimic.layout import SPLIT_COLUMN, SUBJECT_ID
from cxrlib.resampling import group_bootstrap_weights, percentile_interval

#: The paper's fixed decision threshold, reported beside the validation-chosen one.
DEFAULT_THRESHOLD = 0.5
#: Columns of ``metrics.csv`` (03_cnn_train_test), in order, each with whether the stage-03
#: headline table shows it (the others stay in the file only).
_METRICS_SPEC: tuple[tuple[str, bool], ...] = (
    ("disease", True),
    ("accuracy", True),
    ("f1", True),
    ("auc", True),
    ("auc_ci_low", True),
    ("auc_ci_high", True),
    ("threshold", True),
    ("accuracy_at_0_5", True),
    ("f1_at_0_5", True),
    ("precision", False),
    ("recall", False),
    ("specificity", False),
    ("brier", False),
    ("n_test", True),
    ("cases_test", True),
    ("n_subjects_test", False),
    ("note", False),
)
METRICS_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _METRICS_SPEC)
#: The subset of ``METRICS_COLUMNS`` that stage 03 displays, in file order.
HEADLINE_METRICS_COLUMNS: tuple[str, ...] = tuple(name for name, shown in _METRICS_SPEC if shown)
#: Columns of ``metrics.csv`` that are fractions (the threshold is a probability).
_UNIT_INTERVAL_COLUMNS: tuple[str, ...] = (
    "accuracy", "f1", "auc", "auc_ci_low", "auc_ci_high", "threshold", "accuracy_at_0_5",
    "f1_at_0_5", "precision", "recall", "specificity", "brier",
)  # fmt: skip


def _as_arrays(labels: Sequence[float], probs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=float).ravel()
    p = np.asarray(probs, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probs differ in length: {y.size} vs {p.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"labels must be 0 or 1, got values {sorted(set(y.tolist()) - {0.0, 1.0})[:5]}"
        )
    return y, p


def single_class_reason(labels: Sequence[float], what: str = "set") -> str:
    """'' when both classes are present, else why an AUC cannot be computed."""
    y = np.asarray(labels, dtype=float)
    if y.size == 0:
        return f"empty {what}"
    classes = sorted({int(v) for v in np.unique(y)})
    if len(classes) < 2:
        return f"{what} has one class only (label {classes[0]}, n={y.size}): AUC undefined"
    return ""


def f1_max_threshold(labels: Sequence[float], probs: Sequence[float]) -> tuple[float, str]:
    """(threshold maximising F1 on these predictions, note); 0.5 with a note when undefined.

    Used on the validation split, so that the test split only ever sees a fixed threshold.
    """
    y, p = _as_arrays(labels, probs)
    reason = single_class_reason(y, "validation set")
    if reason or y.sum() == 0:
        return DEFAULT_THRESHOLD, f"threshold {DEFAULT_THRESHOLD} ({reason})"
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))]), ""


def binary_metrics(
    labels: Sequence[float], probs: Sequence[float], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float | int | str]:
    """Accuracy, F1, AUC, precision, recall, specificity, Brier score at ``threshold``.

    A positive prediction is ``prob >= threshold``. AUC is NaN (reason in ``note``) when the
    set has one class only.
    """
    y, p = _as_arrays(labels, probs)
    if y.size == 0:
        raise ValueError("cannot evaluate an empty set of predictions")
    pred = (p >= threshold).astype(float)
    reason = single_class_reason(y, "test set")
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0.0, 1.0]).ravel()
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "auc": float("nan") if reason else float(roc_auc_score(y, p)),
        "precision": float(precision_score(y, pred, zero_division=0.0)),
        "recall": float(recall_score(y, pred, zero_division=0.0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "brier": float(brier_score_loss(y, p, pos_label=1.0)),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
        "note": reason,
    }


def weighted_auc(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each row of ``weights`` (B, N) over the same labels/probs (N,): ties count 1/2.

    Hand-written (vectorised Mann-Whitney) because a bootstrap calls it 1,000 times per
    finding, which ``roc_auc_score(sample_weight=...)`` does one Python call at a time; the
    tests check equality with scikit-learn.
    """
    y, p = _as_arrays(labels, probs)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.argsort(p, kind="stable")
    p, y, w = p[order], y[order], w[:, order]
    # group tied scores: a positive beats negatives with a lower score, ties count half
    _, start = np.unique(p, return_index=True)
    group = np.searchsorted(start, np.arange(p.size), side="right") - 1
    pos_w, neg_w = w * y, w * (1.0 - y)
    neg_in_group = np.add.reduceat(neg_w, start, axis=1)  # (B, G)
    neg_below = np.cumsum(neg_in_group, axis=1) - neg_in_group  # strictly lower scores
    credit = neg_below[:, group] + 0.5 * neg_in_group[:, group]
    total_pos, total_neg = pos_w.sum(axis=1), neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_w * credit).sum(axis=1) / (total_pos * total_neg)
    return np.where((total_pos > 0) & (total_neg > 0), auc, np.nan)


def bootstrap_auc_ci(
    labels: Sequence[float],
    probs: Sequence[float],
    groups: Sequence[object],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling ``groups`` (subjects) with replacement.

    Images of one subject are not independent, so the subject is the resampling unit.
    Resamples with one class only are dropped; (NaN, NaN) when none is left or the set has
    one class.
    """
    y, p = _as_arrays(labels, probs)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if single_class_reason(y):
        return float("nan"), float("nan")
    groups = list(groups)
    if len(groups) != y.size:
        raise ValueError(f"groups and labels differ in length: {len(groups)} vs {y.size}")
    aucs = weighted_auc(y, p, group_bootstrap_weights(groups, n_boot, seed))
    return percentile_interval(aucs, level)


def evaluate_disease(
    validate: pd.DataFrame,
    test: pd.DataFrame,
    *,
    disease: str,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | str]:
    """One row of ``metrics.csv`` from validation and test predictions (``label``, ``prob``,
    ``subject_id`` columns): threshold chosen on validation, metrics and CI on test."""
    for split_name, frame in (("validate", validate), ("test", test)):
        if frame.empty:
            raise ValueError(
                f"disease {disease!r} has no predictions in split {split_name!r}; the cohort "
                "needs images of this disease in every split (see counts.csv)"
            )
    threshold, note = f1_max_threshold(validate["label"], validate["prob"])
    chosen = binary_metrics(test["label"], test["prob"], threshold)
    fixed = binary_metrics(test["label"], test["prob"], DEFAULT_THRESHOLD)
    low, high = bootstrap_auc_ci(
        test["label"], test["prob"], test[SUBJECT_ID], n_boot=n_boot, level=level, seed=seed
    )
    notes = [n for n in (note, chosen["note"]) if n]
    return {
        "disease": disease,
        "accuracy": chosen["accuracy"],
        "f1": chosen["f1"],
        "auc": chosen["auc"],
        "auc_ci_low": low,
        "auc_ci_high": high,
        "threshold": threshold,
        "accuracy_at_0_5": fixed["accuracy"],
        "f1_at_0_5": fixed["f1"],
        "precision": chosen["precision"],
        "recall": chosen["recall"],
        "specificity": chosen["specificity"],
        "brier": chosen["brier"],
        "n_test": len(test),
        "cases_test": int(test["label"].sum()),
        "n_subjects_test": int(test[SUBJECT_ID].nunique()),
        "note": "; ".join(notes),
    }


def evaluate_predictions(
    predictions: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """``metrics.csv`` from ``predictions.csv`` rows (disease, split, subject_id, label, prob)."""
    rows = []
    for disease, frame in predictions.groupby("disease", sort=False):
        rows.append(
            evaluate_disease(
                frame[frame[SPLIT_COLUMN] == "validate"],
                frame[frame[SPLIT_COLUMN] == "test"],
                disease=str(disease),
                n_boot=n_boot,
                level=level,
                seed=seed,
            )
        )
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


def confusion_matrices(
    predictions: pd.DataFrame, thresholds: dict[str, float], *, split: str = "test"
) -> dict[str, np.ndarray]:
    """Per disease, the 2x2 matrix [[tn, fp], [fn, tp]] at that disease's threshold."""
    out = {}
    for disease, frame in predictions[predictions[SPLIT_COLUMN] == split].groupby(
        "disease", sort=False
    ):
        pred = (frame["prob"].to_numpy() >= thresholds[disease]).astype(float)
        out[str(disease)] = confusion_matrix(frame["label"], pred, labels=[0.0, 1.0])
    return out


def calibration_table(
    predictions: pd.DataFrame, *, n_bins: int = 10, split: str = "test"
) -> pd.DataFrame:
    """Reliability data per disease: mean predicted probability vs observed frequency per bin."""
    rows = []
    for disease, frame in predictions[predictions[SPLIT_COLUMN] == split].groupby(
        "disease", sort=False
    ):
        if single_class_reason(frame["label"]):
            continue
        observed, predicted = calibration_curve(
            frame["label"], frame["prob"], n_bins=n_bins, strategy="uniform"
        )
        rows += [
            {"disease": disease, "predicted": float(a), "observed": float(b)}
            for a, b in zip(predicted, observed, strict=True)
        ]
    return pd.DataFrame(rows, columns=["disease", "predicted", "observed"])


def round_metrics(metrics: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A display copy of a metrics table: numbers rounded, NaN kept visible."""
    out = metrics.copy()
    numeric = out.select_dtypes("number").columns
    out[numeric] = out[numeric].map(
        lambda v: v if isinstance(v, int | np.integer) or not math.isfinite(v) else round(v, digits)
    )
    return out


def metrics_checks(metrics: pd.DataFrame) -> pd.DataFrame:
    """What every CPU computes alike about a ``metrics.csv`` table (:mod:`cxrlib.invariants`):
    its size, the test counts per finding, and every fraction within [0, 1]."""
    checks = range_checks(
        metrics,
        dict.fromkeys(_UNIT_INTERVAL_COLUMNS, (0.0, 1.0)),
        ordered=[("auc_ci_low", "auc_ci_high")],
    )
    counts = pd.DataFrame(
        {
            "check": [f"{d}: test images, cases" for d in metrics["disease"]],
            "result": [
                f"{n}, {c}" for n, c in zip(metrics["n_test"], metrics["cases_test"], strict=True)
            ],
        }
    ).set_index("check")
    return pd.concat([checks, counts])
