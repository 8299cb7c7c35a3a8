"""Stage 06 (results analysis): the calls notebook ``06_results_analysis`` makes.

Reads stage 01 (report samples, image cache), stage 03 (CNN metrics, probabilities and
embeddings of the report images) and, when present, stage 05 (generated reports); writes
``ce_metrics.csv``, ``nlg_metrics.csv`` and the other tables and figures of the paper's
Results and Discussion into ``<run_dir>/06_results_analysis``.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib import artifacts as a
from cxrlib import preprocessing
from cxrlib.artifacts import (
    CE_FILE,
    CONTROLS_FILE,
    GENERATED_LABELS_FILE,
    HINT_COLUMN,
    LENGTHS_FILE,
    METRICS_FILE,
    NLG_FILE,
    PER_FINDING_FILE,
    PROBS_FILE,
)
from cxrlib.artifacts import EVALUATED_REPORTS_FILE as REPORTS_FILE
from cxrlib.atomic import write_csv
from cxrlib.mimic.layout import DICOM_ID, SUBJECT_ID
from cxrlib.paths import stage_dir
from cxrlib.reporteval import baselines, clinical, figures, results


@dataclass(frozen=True)
class Inputs:
    """The upstream folders of stage 06 inside one run folder."""

    run_dir: Path

    @property
    def stage01(self) -> Path:
        return stage_dir(self.run_dir, a.PREPROCESSING)

    @property
    def stage03(self) -> Path:
        return stage_dir(self.run_dir, a.CNN_TRAIN_TEST)

    @property
    def stage04(self) -> Path:
        return stage_dir(self.run_dir, a.LLAMA_SETUP)

    @property
    def stage05(self) -> Path:
        return stage_dir(self.run_dir, a.LLAMA_TRAINING)

    def report_samples(self) -> pd.DataFrame:
        """Stage 01's report samples (ids as strings, empty sections as '')."""
        return preprocessing.read_report_samples(self.run_dir)

    def cnn_metrics(self) -> pd.DataFrame:
        path = self.stage03 / METRICS_FILE
        _require(path, a.CNN_TRAIN_TEST)
        return pd.read_csv(path)

    def cnn_probs(self) -> pd.DataFrame:
        path = self.stage03 / PROBS_FILE
        _require(path, a.CNN_TRAIN_TEST)
        return pd.read_csv(path, dtype={"dicom_id": str})


def _require(path: Path, stage: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stage {stage} first (python run_all.py)")


def collect_reports(inputs: Inputs, *, eval_split: str = "test") -> pd.DataFrame:
    """Baselines (always), stage 04's zero-shot and stage 05's fine-tuned reports (when
    present) on the images all share."""
    base = baselines.baseline_reports(
        inputs.report_samples(), inputs.stage03, eval_split=eval_split
    )
    generated = results.load_generated_reports(
        inputs.stage05, eval_split=eval_split, stage04_dir=inputs.stage04
    )
    return results.common_images(pd.concat([base, generated], ignore_index=True))


def image_dependence(
    inputs: Inputs, reports: pd.DataFrame, *, eval_split: str = "test", seed: int = 0
) -> pd.DataFrame:
    """:func:`results.image_dependence` of the controls of stages 04 and 05 (no rows when they
    wrote none), resampling subjects as stage 01's report samples name them."""
    controls = results.load_control_reports(
        inputs.stage05, eval_split=eval_split, stage04_dir=inputs.stage04
    )
    samples = inputs.report_samples()
    subjects = dict(zip(samples[DICOM_ID], samples[SUBJECT_ID], strict=True))
    return results.image_dependence(reports, controls, subjects, seed=seed)


def headline_dependence(
    dependence: pd.DataFrame, *, uncertain_as: str = "negative"
) -> pd.DataFrame:
    """The image-dependence table in one convention, indexed by generator and score."""
    table = dependence[dependence["uncertain_as"] == uncertain_as]
    return table.drop(columns="uncertain_as").set_index(["generator", "labels", "average"])


def coverage(reports: pd.DataFrame) -> pd.DataFrame:
    """Reports per generator and split (what the tables were computed on)."""
    return (
        reports.groupby(["generator", "split"], sort=False).size().rename("reports").reset_index()
    )


def headline_ce(ce: pd.DataFrame, *, uncertain_as: str = "negative") -> pd.DataFrame:
    """CE F1 per generator in one convention: columns like ``micro chexpert14``."""
    table = ce[ce["uncertain_as"] == uncertain_as]
    wide = table.pivot_table(
        index="generator", columns=["average", "labels"], values="f1", sort=False
    )
    wide.columns = [f"{average} {labels}" for average, labels in wide.columns]
    return wide.reindex(list(dict.fromkeys(table["generator"])))


def gallery(
    reports: pd.DataFrame,
    inputs: Inputs,
    *,
    examples: int = 3,
    seed: int = 0,
) -> list[figures.GalleryExample]:
    """Examples for :func:`cxrlib.reporteval.figures.report_gallery`, drawn with ``seed``: each
    image with its reference, every generator's report (and the hint a guided one was given,
    when stage 05 recorded it) and the CNN's probabilities as caption."""
    ids = sorted(reports["dicom_id"].unique())
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), size=min(examples, len(ids)), replace=False).tolist())
    cache = preprocessing.open_cache(inputs.run_dir)
    probs = inputs.cnn_probs().set_index("dicom_id")
    by_image = reports.set_index(["generator", "dicom_id"])
    generators = list(dict.fromkeys(reports["generator"]))
    out = []
    for dicom_id in (ids[i] for i in chosen):
        row = probs.loc[dicom_id] if dicom_id in probs.index else pd.Series(dtype=float)
        caption = "CNN: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items())
        rows = {g: by_image.loc[(g, dicom_id)] for g in generators}
        hints = {g: str(r[HINT_COLUMN]) for g, r in rows.items() if _has_hint(r)}
        out.append(
            figures.GalleryExample(
                dicom_id=dicom_id,
                image=cache.get(dicom_id),
                caption=textwrap.fill(caption, 48),
                reference=rows[generators[0]]["reference"],
                reports={g: r["generated"] for g, r in rows.items()},
                hints=hints,
            )
        )
    return out


def _has_hint(row: pd.Series) -> bool:
    value = row.get(HINT_COLUMN)
    return isinstance(value, str) and bool(value)


def write_outputs(
    out_dir: str | os.PathLike[str],
    evaluation: results.Evaluation,
    reports: pd.DataFrame,
    lengths: pd.DataFrame,
) -> list[Path]:
    """Write the stage's tables; returns their paths."""
    out = Path(out_dir)
    labels = evaluation.labels.drop(columns=["reference", "generated"])
    return [
        write_csv(out / CE_FILE, evaluation.ce[list(clinical.CE_COLUMNS)]),
        write_csv(out / NLG_FILE, evaluation.nlg[list(results.NLG_COLUMNS)]),
        write_csv(out / PER_FINDING_FILE, evaluation.per_finding),
        write_csv(out / LENGTHS_FILE, lengths),
        write_csv(out / REPORTS_FILE, reports),
        write_csv(out / GENERATED_LABELS_FILE, labels),
    ]


def write_dependence(out_dir: str | os.PathLike[str], dependence: pd.DataFrame) -> Path:
    """``image_dependence.csv`` (the controls' table) atomically."""
    return write_csv(Path(out_dir) / CONTROLS_FILE, dependence[list(results.DEPENDENCE_COLUMNS)])
