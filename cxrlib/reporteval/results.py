"""Score every available report generator the same way: NLG, clinical efficacy, lengths.

Stage 06 gathers the baselines (always) and the fine-tuned model's reports (when stage 05
wrote them), keeps the images every generator has a report for, labels each reference and
generated report once, and returns the tables ``ce_metrics.csv`` / ``nlg_metrics.csv`` are
written from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrlib.artifacts import GENERATED_FILES, LLAMA_TRAINING
from cxrlib.mimic.layout import SPLITS
from cxrlib.paths import REFERENCE_DIR
from cxrlib.reporteval import clinical, nlg
from cxrlib.reporteval.baselines import REPORT_COLUMNS
from cxrlib.reporteval.labeler import label_reports, labeling_text

STAGE05 = LLAMA_TRAINING
#: Stage 05 files -> generator name in the tables.
STAGE05_REPORTS: dict[str, str] = {
    GENERATED_FILES[False]: "llama_finetuned",
    GENERATED_FILES[True]: "llama_finetuned_guided",
}
PUBLISHED_FILE = REFERENCE_DIR / "published_report_metrics.csv"
NLG_COLUMNS: tuple[str, ...] = ("generator", *nlg.NLG_METRICS)


@dataclass(frozen=True)
class Evaluation:
    """Scores of several generators on the same images.

    ``nlg``: ``NLG_COLUMNS``; ``ce``: ``clinical.CE_COLUMNS``; ``per_finding``:
    ``clinical.PER_FINDING_COLUMNS``; ``labels``: the reports with the 14 label columns of
    the generated text (``reference_labels`` holds those of the references, same rows).
    """

    nlg: pd.DataFrame
    ce: pd.DataFrame
    per_finding: pd.DataFrame
    labels: pd.DataFrame
    reference_labels: pd.DataFrame


def load_generated_reports(
    stage05_dir: str | os.PathLike[str], *, eval_split: str = "test"
) -> pd.DataFrame:
    """Stage 05's generated reports of ``eval_split`` as ``REPORT_COLUMNS`` (empty if none)."""
    if eval_split not in SPLITS:
        raise ValueError(f"eval_split must be one of {list(SPLITS)}, got {eval_split!r}")
    frames = []
    for filename, generator in STAGE05_REPORTS.items():
        path = Path(stage05_dir) / filename
        if not path.is_file():
            continue
        frame = pd.read_csv(path, dtype={"dicom_id": str}, keep_default_na=False)
        missing = [c for c in REPORT_COLUMNS[1:] if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{path} lacks columns {missing} (has {list(frame.columns)}); re-run stage "
                f"{STAGE05}"
            )
        frame = frame[frame["split"] == eval_split]
        frames.append(frame.assign(generator=generator)[list(REPORT_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(REPORT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def common_images(reports: pd.DataFrame) -> pd.DataFrame:
    """Only the images that every generator has a report for, in a stable order."""
    per_generator = reports.groupby("generator", sort=False)["dicom_id"].agg(set)
    shared = set.intersection(*per_generator) if len(per_generator) else set()
    if not shared:
        raise ValueError(
            "the generators share no image to compare on: "
            + ", ".join(f"{g} {len(ids)} images" for g, ids in per_generator.items())
        )
    order = {g: i for i, g in enumerate(per_generator.index)}
    kept = reports[reports["dicom_id"].isin(shared)].assign(
        _order=lambda f: f["generator"].map(order)
    )
    kept = kept.sort_values(["_order", "dicom_id"], kind="stable").drop(columns="_order")
    return kept.reset_index(drop=True)


def evaluate_reports(
    reports: pd.DataFrame,
    *,
    uncertain_as: Sequence[str] = clinical.UNCERTAIN_AS,
    meteor: bool = True,
    progress: bool = False,
) -> Evaluation:
    """NLG and CE scores of every generator in ``reports`` (``REPORT_COLUMNS``)."""
    missing = [c for c in REPORT_COLUMNS if c not in reports.columns]
    if missing:
        raise ValueError(f"report table lacks columns {missing}; has {list(reports.columns)}")
    if reports.empty:
        raise ValueError("no reports to evaluate")
    reports = reports.reset_index(drop=True)
    unique_refs = list(dict.fromkeys(reports["reference"]))
    ref_table = label_reports(unique_refs, progress=progress)
    ref_table.index = unique_refs
    reference_labels = ref_table.loc[reports["reference"]].reset_index(drop=True)
    generated_labels = label_reports(reports["generated"], progress=progress)
    groups = reports.groupby("generator", sort=False)
    nlg_scores = nlg.nlg_scores_by_group(
        {g: (rows["reference"].tolist(), rows["generated"].tolist()) for g, rows in groups},
        meteor=meteor,
    )
    nlg_rows = [{"generator": g, **scores} for g, scores in nlg_scores.items()]
    ce, per_label = [], []
    for generator, rows in groups:
        ref, gen = reference_labels.loc[rows.index], generated_labels.loc[rows.index]
        ce.append(clinical.ce_metrics(ref, gen, generator=generator, uncertain_as=uncertain_as))
        per_label.append(
            clinical.per_finding(ref, gen, generator=generator, uncertain_as=uncertain_as)
        )
    return Evaluation(
        nlg=pd.DataFrame(nlg_rows, columns=list(NLG_COLUMNS)),
        ce=pd.concat(ce, ignore_index=True),
        per_finding=pd.concat(per_label, ignore_index=True),
        labels=pd.concat([reports, generated_labels], axis=1),
        reference_labels=reference_labels,
    )


def length_statistics(reports: pd.DataFrame) -> pd.DataFrame:
    """Words per report (findings + impression text) for the references and each generator."""
    columns = {"reference": reports.drop_duplicates("dicom_id")["reference"]}
    for generator, rows in reports.groupby("generator", sort=False):
        columns[generator] = rows["generated"]
    out = []
    for name, texts in columns.items():
        words = texts.map(lambda t: len(labeling_text(t).split()))
        out.append(
            {
                "text": name,
                "reports": len(words),
                "mean_words": words.mean(),
                "median_words": words.median(),
                "min_words": words.min(),
                "max_words": words.max(),
                "distinct_reports": texts.nunique(),
            }
        )
    return pd.DataFrame(out)


def published_anchors() -> pd.DataFrame:
    """Published MIMIC-CXR report-generation results (other data, other splits and sections)."""
    return pd.read_csv(PUBLISHED_FILE)
