"""The paper's reference table and the side-by-side comparison."""

from __future__ import annotations

import pandas as pd
import pytest

from cxrlib import plots
from cxrlib.classify import paper_results
from cxrlib.mimic.layout import PAPER_FINDINGS


def test_paper_table_holds_the_published_numbers():
    table = paper_results.paper_results().set_index("disease")
    assert list(table.index) == list(PAPER_FINDINGS)
    # accuracy / F1 / AUC as printed in the paper
    assert table.loc["Pneumonia"].tolist() == [0.6792, 0.5405, 0.6914]
    assert table.loc["Cardiomegaly"].tolist() == [0.2727, 0.1111, 0.6000]
    assert table.loc["Pleural Effusion", "auc"] == 0.8618


def test_every_source_is_described():
    sources = set(paper_results.load_reference_results()["source"])
    assert sources == set(paper_results.SOURCES)


def test_compare_with_paper_lines_up_ours_and_theirs_like_for_like():
    ours = pd.DataFrame(
        {
            "disease": ["Cardiomegaly", "Pneumonia"],
            "accuracy": [0.5, 0.7],
            "f1": [0.2, 0.6],
            "auc": [0.9, 0.7],
            "auc_ci_low": [0.8, 0.6],
            "auc_ci_high": [0.95, 0.8],
            "threshold": [0.31, 0.62],
            "accuracy_at_0_5": [0.45, 0.72],
            "f1_at_0_5": [0.1, 0.55],
            "n_test": [80, 75],
        }
    )
    table = paper_results.compare_with_paper(ours)
    assert list(table.columns[: len(paper_results.COMPARISON_COLUMNS)]) == list(
        paper_results.COMPARISON_COLUMNS
    )
    table = table.set_index("disease")
    assert list(table.index) == ["Pneumonia", "Cardiomegaly"]  # the paper's order
    row = table.loc["Cardiomegaly"]
    assert (row.auc_paper, row.auc_ours, row.auc_ci_low) == (0.6, 0.9, 0.8)
    # ours at 0.5 beside ours at the validation-chosen threshold; the paper's is unknown
    assert (row.accuracy_ours_0_5, row.accuracy_ours_tuned) == (0.45, 0.5)
    assert (row.f1_ours_0_5, row.f1_ours_tuned, row.threshold_ours_tuned) == (0.1, 0.2, 0.31)
    assert row.threshold_paper == "not stated"
    assert (row.test_images_paper_implied, row.test_images_ours) == (22, 80)
    assert table.loc["Cardiomegaly", "auc_chexclusion_densenet121"] == 0.828


@pytest.mark.parametrize(
    ("accuracy", "f1", "size"),
    [
        (0.2727, 0.1111, 22),  # 3/11 fits the accuracy, but only 6/22 with TP 1 fits the F1
        (0.75, 0.8, 4),  # TP 2, TN 1, one error: 3/4 and 4/5
        (0.5, 0.0, 2),  # one right (a true negative), one wrong
        (1.0, 1.0, 1),
    ],
)
def test_implied_test_size(accuracy, f1, size):
    assert paper_results.implied_test_size(accuracy, f1) == size


def test_implied_test_size_of_impossible_values_is_none():
    assert paper_results.implied_test_size(0.5, 0.9999, limit=50) is None
    assert paper_results.implied_test_size(float("nan"), 0.5) is None


def test_auc_long_form_for_the_figure():
    comparison = pd.DataFrame(
        [{"disease": "A", "auc_paper": 0.6, "auc_ours": 0.9, "auc_ci_low": 0.8,
          "auc_ci_high": 0.95}]
    )  # fmt: skip
    long = paper_results.auc_long(comparison)
    assert long[["disease", "source", "auc"]].to_dict("records") == [
        {"disease": "A", "source": "paper", "auc": 0.6},
        {"disease": "A", "source": "this run", "auc": 0.9},
    ]
    assert long[["ci_low", "ci_high"]].iloc[0].isna().all()  # the paper gives no interval
    assert long[["ci_low", "ci_high"]].iloc[1].tolist() == [0.8, 0.95]
    fig = plots.metric_bars(long, value="auc", group="disease", hue="source",
                            low="ci_low", high="ci_high")  # fmt: skip
    error_bars = [c for c in fig.axes[0].containers if getattr(c, "has_yerr", False)]
    assert len(error_bars) == 1  # only this run's bar carries an interval
