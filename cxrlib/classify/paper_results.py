"""The paper's reported CNN table (and two published MIMIC-CXR AUROC baselines) for comparison.

The numbers live in ``cxrlib/reference/paper_cnn_results.csv`` (one fact, one place):
``source,disease,accuracy,f1,auc``; ``source == "paper"`` is the study being reproduced
(ResNet-18, PA only, one image per subject, threshold 0.5); the other sources report AUROC only.
"""

from __future__ import annotations

import pandas as pd

from cxrlib.mimic.layout import PAPER_FINDINGS
from cxrlib.paths import REFERENCE_DIR

PAPER_RESULTS_FILE = REFERENCE_DIR / "paper_cnn_results.csv"
PAPER_SOURCE = "paper"
#: Human-readable names of the sources in the reference file.
SOURCES: dict[str, str] = {
    "paper": "paper being reproduced (ResNet-18, PA, 1 image/subject)",
    "chexclusion_densenet121": "CheXclusion DenseNet-121 (own 8-1-1 split, 5 seeds)",
    "torchxrayvision_densenet121_res224_all": "torchxrayvision densenet121-res224-all",
}


def load_reference_results() -> pd.DataFrame:
    """All rows of the reference file (``source,disease,accuracy,f1,auc``)."""
    table = pd.read_csv(PAPER_RESULTS_FILE)
    unknown = set(table["disease"]) - set(PAPER_FINDINGS)
    if unknown:  # the file ships with the package: a wrong name is a bug, not a user error
        raise RuntimeError(f"{PAPER_RESULTS_FILE} names unknown findings {sorted(unknown)}")
    return table


def paper_results() -> pd.DataFrame:
    """The paper's own table: ``disease,accuracy,f1,auc`` in the paper's finding order."""
    table = load_reference_results()
    table = table[table["source"] == PAPER_SOURCE].drop(columns="source")
    return table.set_index("disease").loc[list(PAPER_FINDINGS)].reset_index()


def compare_with_paper(metrics: pd.DataFrame) -> pd.DataFrame:
    """Side by side: our ``accuracy,f1,auc`` (+ AUC CI) against the paper's, per finding.

    Columns: ``disease``, then ``<metric>_paper``, ``<metric>_ours`` and ``<metric>_diff``
    (ours - paper) for accuracy, F1 and AUC, and the CI bounds of our AUC; other published
    AUROCs are appended as ``auc_<source>``.
    """
    ours = metrics.set_index("disease")
    paper = paper_results().set_index("disease")
    common = [d for d in paper.index if d in ours.index]
    out = pd.DataFrame(index=pd.Index(common, name="disease"))
    for metric in ("accuracy", "f1", "auc"):
        out[f"{metric}_paper"] = paper.loc[common, metric]
        out[f"{metric}_ours"] = ours.loc[common, metric]
        out[f"{metric}_diff"] = out[f"{metric}_ours"] - out[f"{metric}_paper"]
    for bound in ("auc_ci_low", "auc_ci_high"):
        if bound in ours.columns:
            out[bound] = ours.loc[common, bound]
    others = load_reference_results()
    for source, rows in others[others["source"] != PAPER_SOURCE].groupby("source", sort=False):
        out[f"auc_{source}"] = rows.set_index("disease")["auc"].reindex(common)
    return out.reset_index()
