"""The paper's reference table and the side-by-side comparison."""

from __future__ import annotations

import pandas as pd
import pytest

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


def test_compare_with_paper_lines_up_ours_and_theirs():
    ours = pd.DataFrame(
        {
            "disease": ["Cardiomegaly", "Pneumonia"],
            "accuracy": [0.5, 0.7],
            "f1": [0.2, 0.6],
            "auc": [0.9, 0.7],
            "auc_ci_low": [0.8, 0.6],
            "auc_ci_high": [0.95, 0.8],
        }
    )
    table = paper_results.compare_with_paper(ours).set_index("disease")
    assert list(table.index) == ["Pneumonia", "Cardiomegaly"]  # the paper's order
    assert table.loc["Cardiomegaly", "auc_diff"] == pytest.approx(0.9 - 0.6)
    assert table.loc["Pneumonia", "accuracy_paper"] == 0.6792
    assert table.loc["Cardiomegaly", "auc_ci_low"] == 0.8
    assert table.loc["Cardiomegaly", "auc_chexclusion_densenet121"] == 0.828
