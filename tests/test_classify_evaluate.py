"""Evaluation: equal to scikit-learn on fixed arrays, thresholds, subject bootstrap, NaN reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from cxrlib.classify import evaluate

# Ten predictions written out: 4 cases, 6 controls.
LABELS = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
PROBS = [0.9, 0.8, 0.7, 0.55, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1]


def test_binary_metrics_equal_sklearn_on_fixed_arrays():
    got = evaluate.binary_metrics(LABELS, PROBS, threshold=0.5)
    pred = [int(p >= 0.5) for p in PROBS]  # 1 1 1 1 1 0 0 0 0 0
    assert got["accuracy"] == pytest.approx(accuracy_score(LABELS, pred))
    assert got["f1"] == pytest.approx(f1_score(LABELS, pred))
    assert got["auc"] == pytest.approx(roc_auc_score(LABELS, PROBS))
    # by hand: tp=3 (0.9, 0.7, 0.55), fp=2 (0.8, 0.5), fn=1 (0.35), tn=4
    assert (got["tp"], got["fp"], got["fn"], got["tn"]) == (3, 2, 1, 4)
    assert got["accuracy"] == pytest.approx(0.7)
    assert got["precision"] == pytest.approx(3 / 5)
    assert got["recall"] == pytest.approx(3 / 4)
    assert got["specificity"] == pytest.approx(4 / 6)
    # case/control pairs ordered right: 0.9 > 6 controls, 0.7 > 5, 0.55 > 5, 0.35 > 3
    assert got["auc"] == pytest.approx(19 / 24)
    assert got["note"] == ""


def test_f1_max_threshold_picks_the_best_cut_on_validation():
    threshold, note = evaluate.f1_max_threshold(LABELS, PROBS)
    # cut at 0.55: tp 3, fp 1 (0.8), fn 1 -> F1 = 6/8 = 0.75, better than 0.35 (tp 4, fp 3:
    # F1 = 8/11 = 0.727), 0.7 (tp 2, fp 1, fn 2: 0.571) or 0.9 (0.4)
    assert threshold == pytest.approx(0.55)
    assert note == ""
    f1 = evaluate.binary_metrics(LABELS, PROBS, threshold)["f1"]
    assert f1 == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([0, 0, 0], "one class only (label 0"),
        ([1, 1], "one class only (label 1"),
    ],
)
def test_single_class_set_gives_nan_auc_with_a_reason(labels, reason):
    got = evaluate.binary_metrics(labels, [0.2] * len(labels))
    assert math.isnan(got["auc"])
    assert reason in got["note"]
    threshold, note = evaluate.f1_max_threshold(labels, [0.3] * len(labels))
    assert threshold == evaluate.DEFAULT_THRESHOLD
    assert "one class only" in note
    low, high = evaluate.bootstrap_auc_ci(labels, [0.3] * len(labels), range(len(labels)))
    assert math.isnan(low) and math.isnan(high)


def test_weighted_auc_equals_sklearn_with_sample_weights_and_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60).astype(float)
    probs = np.round(rng.random(60), 1)  # many ties
    weights = rng.integers(0, 4, size=(5, 60)).astype(float)
    got = evaluate.weighted_auc(labels, probs, weights)
    for row, value in zip(weights, got, strict=True):
        assert value == pytest.approx(roc_auc_score(labels, probs, sample_weight=row))


def test_bootstrap_interval_contains_the_point_estimate_and_resamples_subjects():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(40), np.zeros(60)]
    probs = np.clip(0.35 * labels + rng.normal(0.4, 0.2, 100), 0, 1)
    subjects = np.repeat(np.arange(50), 2)  # two images per subject
    auc = roc_auc_score(labels, probs)
    low, high = evaluate.bootstrap_auc_ci(labels, probs, subjects, n_boot=500, seed=0)
    assert low < auc < high
    assert 0.05 < high - low < 0.4
    # same seed, same interval; another seed, another one
    assert (low, high) == evaluate.bootstrap_auc_ci(labels, probs, subjects, n_boot=500, seed=0)
    assert (low, high) != evaluate.bootstrap_auc_ci(labels, probs, subjects, n_boot=500, seed=1)


def _predictions(disease: str, val: list[tuple], test: list[tuple]) -> pd.DataFrame:
    rows = [
        {"disease": disease, "split": split, "subject_id": sid, "label": y, "prob": p}
        for split, part in (("validate", val), ("test", test))
        for sid, y, p in part
    ]
    return pd.DataFrame(rows)


def test_evaluate_predictions_uses_the_validation_threshold_on_test():
    val = [(1, 1, 0.7), (2, 0, 0.6), (3, 1, 0.65), (4, 0, 0.2)]  # F1-max cut: 0.65
    test = [(5, 1, 0.9), (6, 1, 0.66), (7, 0, 0.64), (8, 0, 0.3), (9, 1, 0.55)]
    table = evaluate.evaluate_predictions(_predictions("Edema", val, test), n_boot=200)
    assert list(table.columns) == list(evaluate.METRICS_COLUMNS)
    row = table.iloc[0]
    assert row["threshold"] == pytest.approx(0.65)
    assert row["accuracy"] == pytest.approx(4 / 5)  # only the 0.55 case is missed
    assert row["accuracy_at_0_5"] == pytest.approx(4 / 5)  # 0.64 control is a false positive
    assert row["auc"] == pytest.approx(5 / 6)
    assert (row["n_test"], row["cases_test"], row["n_subjects_test"]) == (5, 3, 5)
    assert row["note"] == ""


def test_a_disease_with_an_empty_split_is_a_clear_error():
    frame = _predictions("Edema", [], [(5, 1, 0.9), (6, 0, 0.1)])
    with pytest.raises(ValueError, match="'Edema' has no predictions in split 'validate'"):
        evaluate.evaluate_predictions(frame)


def test_single_class_test_set_is_reported_as_nan_not_an_error():
    frame = _predictions("Edema", [(1, 1, 0.8), (2, 0, 0.2)], [(5, 0, 0.9), (6, 0, 0.1)])
    row = evaluate.evaluate_predictions(frame, n_boot=50).iloc[0]
    assert math.isnan(row["auc"]) and math.isnan(row["auc_ci_low"])
    assert "test set has one class only (label 0, n=2)" in row["note"]
    assert row["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        ([1, 0], [0.5], "differ in length"),
        ([1, 2], [0.5, 0.5], "labels must be 0 or 1"),
    ],
)
def test_bad_inputs_are_value_errors(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        evaluate.binary_metrics(labels, probs)


def test_confusion_and_calibration_tables():
    frame = _predictions("Edema", [(1, 1, 0.8), (2, 0, 0.2)], [(5, 1, 0.9), (6, 0, 0.6)])
    matrices = evaluate.confusion_matrices(frame, {"Edema": 0.5})
    assert matrices["Edema"].tolist() == [[0, 1], [0, 1]]
    table = evaluate.calibration_table(frame, n_bins=2)
    # bin [0, 0.5) is empty; bin [0.5, 1]: mean prob 0.75, observed 1/2
    assert table[["predicted", "observed"]].to_numpy().tolist() == [[0.75, 0.5]]
