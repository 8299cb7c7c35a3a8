"""Figure helpers draw what they are given: panels, curves and texts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cxrlib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_roc_curves_skip_single_class_findings_and_label_the_rest():
    curves = {"A": ([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6]), "B": ([0, 0], [0.2, 0.3])}
    fig = plots.roc_curves(curves, {"A": (1.0, 0.8, 1.0)})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["A: 1.000 [0.800, 1.000]"]


def test_grid_heatmaps_one_panel_per_finding_and_empty_ones_say_so():
    results = pd.DataFrame(
        {
            "disease": ["A", "A", "B", "B"],
            "lr": [1e-3, 1e-4] * 2,
            "batch_size": [32] * 4,
            "val_auc": [0.8, 0.7, np.nan, np.nan],
        }
    )
    fig = plots.grid_heatmaps(results, row="lr", col="batch_size")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["A", "B"]
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts == ["no val_auc"]
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.70", "0.80"]


def test_learning_curves_and_confusion_matrices():
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [0.7, 0.5],
            "val_loss": [0.6, 0.6],
            "val_auc": [0.6, 0.7],
            "is_best": [True, True],
        }
    )
    fig = plots.learning_curves({"m1": history, "m2": history})
    assert [ax.get_title() for ax in fig.axes[:2]] == ["m1", "m2"]
    fig = plots.confusion_matrices({"A": np.array([[5, 1], [2, 3]])}, {"A": 0.4})
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "2", "3", "5"]


def test_image_gallery_says_when_there_is_nothing_to_show():
    fig = plots.image_gallery([], [])
    assert [t.get_text() for t in fig.axes[0].texts] == ["no examples"]


def test_metric_bars_fixed_axis_chance_line_and_missing_values():
    table = pd.DataFrame(
        {
            "disease": ["A", "A", "B", "B"],
            "arch": ["x", "y", "x", "y"],
            "auc": [0.2, 0.9, np.nan, 0.7],
        }
    )
    fig = plots.metric_bars(
        table, value="auc", group="disease", hue="arch", reference=(0.5, "chance"), ylabel="AUC"
    )
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 1.0)  # a bar at 0.2 stays visible
    assert ax.get_ylabel() == "AUC"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["chance", "x", "y"] or set(labels) == {"chance", "x", "y"}
    assert [t.get_text() for t in ax.texts] == ["n/a"]  # the missing bar says so


def test_example_grid_keeps_columns_aligned_and_marks_empty_panels():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    rows = {"A": [(image, "p = 0.9"), None], "B": [None, (image, "p = 0.7")]}
    fig = plots.example_grid(rows, ["TP 1", "FP 1"], empty="none")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["TP 1", "FP 1"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["A", "B"]
    assert [t.get_text() for t in axes[0, 1].texts] == ["none"]
    assert axes[1, 1].get_xlabel() == "p = 0.7" and not axes[1, 1].texts


def test_learning_curves_have_axis_labels():
    history = pd.DataFrame(
        {"epoch": [1, 2], "train_loss": [0.7, 0.5], "val_loss": [0.6, 0.6],
         "val_auc": [0.6, 0.7], "is_best": [False, True]}
    )  # fmt: skip
    fig = plots.learning_curves({"m": history})
    loss_axis, auc_axis = fig.axes[0], fig.axes[-1]
    assert loss_axis.get_xlabel() == "epoch" and "loss" in loss_axis.get_ylabel()
    assert auc_axis.get_ylabel() == "validation AUC" and auc_axis.get_ylim() == (0.0, 1.0)


def test_reliability_diagram_and_label_prevalence_are_labelled():
    table = pd.DataFrame({"disease": ["A", "A"], "predicted": [0.2, 0.8], "observed": [0.1, 0.9]})
    ax = plots.reliability_diagram(table).axes[0]
    assert ax.get_xlabel() == "mean predicted probability" and ax.get_ylim() == (0.0, 1.0)
    prevalence = pd.DataFrame(
        {"positive": [3, 1], "negative": [2, 5], "uncertain": [1, 0], "not mentioned": [4, 4]},
        index=["Pneumonia", "Cardiomegaly"],
    )
    ax = plots.label_prevalence(prevalence, title="labels").axes[0]
    assert ax.get_xlabel() == "studies"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Pneumonia", "Cardiomegaly"]
