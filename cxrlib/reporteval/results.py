"""Score every available report generator the same way: NLG, clinical efficacy, lengths.

Stage 06 gathers the baselines (always) and the fine-tuned model's reports (when stage 05
wrote them), keeps the images every generator has a report for, labels each reference and
generated report once, and returns the tables ``ce_metrics.csv`` / ``nlg_metrics.csv`` are
written from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd

from cxrlib.artifacts import (
    CONTROL_FILES,
    GENERATED_FILES,
    HINT_COLUMN,
    LLAMA_SETUP,
    LLAMA_TRAINING,
    ZERO_SHOT_CONTROL_FILE,
    ZERO_SHOT_FILE,
)
from cxrlib.labeler import label_reports, labeling_text
from cxrlib.mimic.layout import SPLITS
from cxrlib.paths import REFERENCE_DIR
from cxrlib.reporteval import clinical, nlg
from cxrlib.reporteval.baselines import REPORT_COLUMNS

_T = TypeVar("_T")
#: Stage 04 files -> generator name: the model's reports before fine-tuning (LoRA still zero).
STAGE04_REPORTS: dict[str, str] = {ZERO_SHOT_FILE: "llama_zero_shot"}
STAGE04_CONTROLS: dict[str, tuple[str, str]] = {
    ZERO_SHOT_CONTROL_FILE: (STAGE04_REPORTS[ZERO_SHOT_FILE], "another image")
}
#: Stage 05 files -> generator name in the tables.
STAGE05_REPORTS: dict[str, str] = {
    GENERATED_FILES[False]: "llama_finetuned",
    GENERATED_FILES[True]: "llama_finetuned_guided",
}
#: Stage 05 control files -> (the generator they control, the input each image got instead).
STAGE05_CONTROLS: dict[str, tuple[str, str]] = {
    CONTROL_FILES[False]: (STAGE05_REPORTS[GENERATED_FILES[False]], "another image"),
    CONTROL_FILES[True]: (STAGE05_REPORTS[GENERATED_FILES[True]], "another image's hint"),
}
#: Columns of ``image_dependence.csv``.
DEPENDENCE_COLUMNS: tuple[str, ...] = (
    "generator",
    "control",
    "labels",
    "average",
    "uncertain_as",
    "images",
    "f1",
    "f1_control",
    "difference",
    "ci_low",
    "ci_high",
)
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
    stage05_dir: str | os.PathLike[str],
    *,
    eval_split: str = "test",
    stage04_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The model's reports of ``eval_split`` as ``REPORT_COLUMNS`` (empty if none), plus
    ``hint`` where a guided table recorded one: stage 04's zero-shot reports (when
    ``stage04_dir`` is given and they cover that split), then stage 05's fine-tuned ones."""
    sources = [(stage05_dir, STAGE05_REPORTS, LLAMA_TRAINING)]
    if stage04_dir is not None:
        sources.insert(0, (stage04_dir, STAGE04_REPORTS, LLAMA_SETUP))
    frames = [
        frame.assign(generator=generator)[_with_hint(frame, REPORT_COLUMNS)]
        for folder, files, stage in sources
        for frame, generator in _read_reports(folder, files, eval_split, stage)
    ]
    if not frames:
        return pd.DataFrame(columns=list(REPORT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def load_control_reports(
    stage05_dir: str | os.PathLike[str],
    *,
    eval_split: str = "test",
    stage04_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The controls of ``eval_split`` (stage 04's zero-shot one when ``stage04_dir`` is given,
    then stage 05's): ``REPORT_COLUMNS`` + ``control``, where ``generator`` names the generator
    controlled and ``control`` what was swapped."""
    sources = [(stage05_dir, STAGE05_CONTROLS, LLAMA_TRAINING)]
    if stage04_dir is not None:
        sources.insert(0, (stage04_dir, STAGE04_CONTROLS, LLAMA_SETUP))
    frames = [
        frame.assign(generator=generator, control=control)[[*REPORT_COLUMNS, "control"]]
        for folder, files, stage in sources
        for frame, (generator, control) in _read_reports(folder, files, eval_split, stage)
    ]
    if not frames:
        return pd.DataFrame(columns=[*REPORT_COLUMNS, "control"])
    return pd.concat(frames, ignore_index=True)


def _with_hint(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [*columns, HINT_COLUMN] if HINT_COLUMN in frame.columns else list(columns)


def _read_reports(
    folder: str | os.PathLike[str], files: Mapping[str, _T], eval_split: str, stage: str
) -> Iterator[tuple[pd.DataFrame, _T]]:
    """(rows of ``eval_split``, value) for each file of ``files`` present in ``folder`` (the
    output folder of ``stage``) that has rows of that split."""
    if eval_split not in SPLITS:
        raise ValueError(f"eval_split must be one of {list(SPLITS)}, got {eval_split!r}")
    for filename, value in files.items():
        path = Path(folder) / filename
        if not path.is_file():
            continue
        frame = pd.read_csv(path, dtype={"dicom_id": str}, keep_default_na=False)
        missing = [c for c in REPORT_COLUMNS[1:] if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{path} lacks columns {missing} (has {list(frame.columns)}); re-run stage {stage}"
            )
        rows = frame[frame["split"] == eval_split]
        if not rows.empty:
            yield rows, value


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


def image_dependence(
    reports: pd.DataFrame,
    controls: pd.DataFrame,
    subjects: Mapping[str, object],
    *,
    uncertain_as: Sequence[str] = clinical.UNCERTAIN_AS,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """How much each controlled generator's CE F1 owes to its own image (``DEPENDENCE_COLUMNS``).

    For every generator with a control (:func:`load_control_reports`), its reports and the
    control's are paired by image and scored against the same references; ``difference`` is
    F1 minus the control's F1 with a paired 95 % interval resampling subjects
    (``subjects``: ``dicom_id -> subject``; an image missing there is its own subject).
    """
    rows = []
    for (generator, control), rows_control in controls.groupby(
        ["generator", "control"], sort=False
    ):
        own = reports[reports["generator"] == generator]
        paired = own.merge(rows_control, on="dicom_id", suffixes=("", "_control"))
        if paired.empty:
            continue
        reference = label_reports(paired["reference"])
        generated = label_reports(paired["generated"])
        shuffled = label_reports(paired["generated_control"])
        groups = [subjects.get(d, d) for d in paired["dicom_id"]]
        for convention_name in uncertain_as:
            for set_name, columns in clinical.LABEL_SETS.items():
                for average in clinical.AVERAGES:
                    scores = clinical.bootstrap_f1_difference(
                        reference, generated, shuffled, groups, labels=columns,
                        average=average, uncertain_as=convention_name, n_boot=n_boot, seed=seed,
                    )  # fmt: skip
                    rows.append(
                        {
                            "generator": generator,
                            "control": control,
                            "labels": set_name,
                            "average": average,
                            "uncertain_as": convention_name,
                            "images": len(paired),
                            **scores,
                        }
                    )
    return pd.DataFrame(rows, columns=list(DEPENDENCE_COLUMNS))


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


#: Columns of ``report_scores.csv``: one row per generator, the numbers a reader compares first.
REPORT_SCORE_COLUMNS: tuple[str, ...] = (
    "generator",
    "reports",
    "distinct_per_100",
    "bleu4",
    "rouge_l",
    "ce_f1_macro_competition5",
    "ce_f1_micro_chexpert14",
    "uncertain_as",
)


def report_scores(
    evaluation: Evaluation, lengths: pd.DataFrame, *, uncertain_as: str = "negative"
) -> pd.DataFrame:
    """``report_scores.csv``: per generator, BLEU-4, ROUGE-L, CE F1 (macro over the five
    competition findings and micro over the 14 labels, in one convention) and how many
    distinct reports it wrote per 100 images (a generator that writes one report for every
    image is a warning sign whatever its scores)."""
    ce = evaluation.ce[evaluation.ce["uncertain_as"] == uncertain_as]
    if ce.empty:
        raise ValueError(
            f"no CE scores with uncertain_as={uncertain_as!r}; the evaluation holds "
            f"{sorted(evaluation.ce['uncertain_as'].unique())}"
        )
    f1 = ce.set_index(["generator", "average", "labels"])["f1"]
    nlg_table = evaluation.nlg.set_index("generator")
    counts = lengths.set_index("text")
    rows = []
    for generator in nlg_table.index:
        reports = int(counts.loc[generator, "reports"])
        rows.append(
            {
                "generator": generator,
                "reports": reports,
                "distinct_per_100": 100 * counts.loc[generator, "distinct_reports"] / reports,
                "bleu4": nlg_table.loc[generator, "bleu4"],
                "rouge_l": nlg_table.loc[generator, "rouge_l"],
                "ce_f1_macro_competition5": f1[(generator, "macro", "competition5")],
                "ce_f1_micro_chexpert14": f1[(generator, "micro", "chexpert14")],
                "uncertain_as": uncertain_as,
            }
        )
    return pd.DataFrame(rows, columns=list(REPORT_SCORE_COLUMNS))


def published_anchors() -> pd.DataFrame:
    """Published MIMIC-CXR report-generation results (other data, other splits and sections)."""
    return pd.read_csv(PUBLISHED_FILE)
