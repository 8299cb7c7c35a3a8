"""The paper's reported CNN table (and two published MIMIC-CXR AUROC baselines) for comparison.

The numbers live in ``cxrlib/reference/paper_cnn_results.csv`` (one fact, one place):
``source,disease,accuracy,f1,auc``; ``source == "paper"`` is the study being reproduced
(ResNet-18, PA only, one image per subject); the other sources report AUROC only.

Like for like: the paper does not say at which threshold its accuracy and F1 were taken, so
ours are given at 0.5 and at the threshold chosen on validation, and the paper's threshold is
marked unknown. Its numbers are given to four decimals, which pins down how few test images
they can come from: an accuracy of 0.2727 is 3/11, 6/22, ...; together with the F1 only some
of those sizes have a confusion matrix that gives both (:func:`implied_test_size`).
"""

from __future__ import annotations

import math

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
#: What the paper says of the threshold behind its accuracy and F1.
PAPER_THRESHOLD = "not stated"
#: Decimals the paper reports (a reported value stands for +- half a unit of the last one).
PAPER_DECIMALS = 4
#: Largest test set searched for :func:`implied_test_size`.
MAX_IMPLIED_SIZE = 2000
#: Columns of :func:`compare_with_paper`, in order (published AUROCs follow as ``auc_<source>``).
COMPARISON_COLUMNS: tuple[str, ...] = (
    "disease",
    "auc_paper",
    "auc_ours",
    "auc_ci_low",
    "auc_ci_high",
    "accuracy_paper",
    "accuracy_ours_0_5",
    "accuracy_ours_tuned",
    "f1_paper",
    "f1_ours_0_5",
    "f1_ours_tuned",
    "threshold_paper",
    "threshold_ours_tuned",
    "test_images_paper_implied",
    "test_images_ours",
)


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


def implied_test_size(
    accuracy: float, f1: float, *, decimals: int = PAPER_DECIMALS, limit: int = MAX_IMPLIED_SIZE
) -> int | None:
    """The smallest number of test images with a confusion matrix whose accuracy and F1 round
    to the reported values (None when no size up to ``limit`` fits).

    Accuracy = (TP + TN) / n and F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (2 TP + n - TP - TN):
    for each n, each count of correct calls and each TP, check both against the rounding.
    """
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (accuracy, f1)):
        return None
    tolerance = 0.5 * 10.0**-decimals + 1e-12
    for n in range(1, limit + 1):
        correct = round(accuracy * n)
        for right in {max(0, correct - 1), correct, min(n, correct + 1)}:
            if abs(right / n - accuracy) > tolerance:
                continue
            wrong = n - right
            for tp in range(right + 1):
                denominator = 2 * tp + wrong
                if denominator and abs(2 * tp / denominator - f1) <= tolerance:
                    return n
    return None


def compare_with_paper(metrics: pd.DataFrame) -> pd.DataFrame:
    """Side by side, per finding: the paper's AUC, accuracy and F1 and ours, like for like.

    ``metrics`` is stage 03's ``metrics.csv``. Ours are given at the paper's usual 0.5
    (``*_ours_0_5``) and at the threshold chosen on validation (``*_ours_tuned``); the paper's
    threshold is :data:`PAPER_THRESHOLD`. ``test_images_paper_implied`` is the smallest test
    set the paper's accuracy and F1 fit (:func:`implied_test_size`); ``test_images_ours`` ours.
    Other published AUROCs follow as ``auc_<source>``. Columns: :data:`COMPARISON_COLUMNS`.
    """
    ours = metrics.set_index("disease")
    paper = paper_results().set_index("disease")
    common = [d for d in paper.index if d in ours.index]
    out = pd.DataFrame(index=pd.Index(common, name="disease"))
    out["auc_paper"] = paper.loc[common, "auc"]
    out["auc_ours"] = ours.loc[common, "auc"]
    for bound in ("auc_ci_low", "auc_ci_high"):
        out[bound] = ours.loc[common, bound]
    for metric in ("accuracy", "f1"):
        out[f"{metric}_paper"] = paper.loc[common, metric]
        out[f"{metric}_ours_0_5"] = ours.loc[common, f"{metric}_at_0_5"]
        out[f"{metric}_ours_tuned"] = ours.loc[common, metric]
    out["threshold_paper"] = PAPER_THRESHOLD
    out["threshold_ours_tuned"] = ours.loc[common, "threshold"]
    out["test_images_paper_implied"] = [
        implied_test_size(paper.loc[d, "accuracy"], paper.loc[d, "f1"]) for d in common
    ]
    out["test_images_paper_implied"] = out["test_images_paper_implied"].astype("Int64")
    out["test_images_ours"] = ours.loc[common, "n_test"].astype("Int64")
    out = out.reset_index()[list(COMPARISON_COLUMNS)]
    others = load_reference_results()
    for source, rows in others[others["source"] != PAPER_SOURCE].groupby("source", sort=False):
        out[f"auc_{source}"] = rows.set_index("disease")["auc"].reindex(common).to_numpy()
    return out


def auc_long(comparison: pd.DataFrame) -> pd.DataFrame:
    """The AUC columns of :func:`compare_with_paper` in long form for a bar chart:
    ``disease,source,auc,ci_low,ci_high`` (an interval for our AUC only: the paper gives none)."""
    rows = []
    for r in comparison.itertuples(index=False):
        rows.append(
            {"disease": r.disease, "source": "paper", "auc": r.auc_paper,
             "ci_low": float("nan"), "ci_high": float("nan")}
        )  # fmt: skip
        rows.append(
            {"disease": r.disease, "source": "this run", "auc": r.auc_ours,
             "ci_low": r.auc_ci_low, "ci_high": r.auc_ci_high}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["disease", "source", "auc", "ci_low", "ci_high"])


def comparison_title(synthetic: bool) -> str:
    """Title of the AUC figure beside the paper, with the caveat the data calls for."""
    if synthetic:
        return (
            "Test AUC: the paper (real MIMIC-CXR) and this run "
            "(synthetic look-alike: not comparable)"
        )
    return "Test AUC: the paper and this run (MIMIC-CXR; other split, other test images)"
