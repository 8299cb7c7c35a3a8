"""Stage 06 (results analysis): the calls notebook ``06_results_analysis`` makes.

Reads stage 01 (report samples, image cache), stage 03 (CNN metrics, probabilities and
embeddings of the report images) and, when present, stage 05 (generated reports); writes
``ce_metrics.csv``, ``nlg_metrics.csv`` and the other tables and figures of the paper's
Results and Discussion into ``<run_dir>/06_results_analysis``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib import preprocessing
from cxrlib.artifacts import (
    CE_FILE,
    CONTROLS_FILE,
    GENERATED_LABELS_FILE,
    LENGTHS_FILE,
    METRICS_FILE,
    NLG_FILE,
    PER_FINDING_FILE,
    PROBS_FILE,
)
from cxrlib.artifacts import CNN_TRAIN_TEST as TRAIN_TEST_STAGE
from cxrlib.artifacts import EVALUATED_REPORTS_FILE as REPORTS_FILE
from cxrlib.artifacts import RESULTS_ANALYSIS as STAGE  # noqa: F401
from cxrlib.atomic import write_csv
from cxrlib.mimic.layout import DICOM_ID, SUBJECT_ID
from cxrlib.paths import stage_dir
from cxrlib.reporteval import baselines, clinical, results

STAGE01, STAGE03 = preprocessing.STAGE, TRAIN_TEST_STAGE
STAGE04, STAGE05 = results.STAGE04, results.STAGE05


@dataclass(frozen=True)
class Inputs:
    """The upstream folders of stage 06 inside one run folder."""

    run_dir: Path

    @property
    def stage01(self) -> Path:
        return stage_dir(self.run_dir, STAGE01)

    @property
    def stage03(self) -> Path:
        return stage_dir(self.run_dir, STAGE03)

    @property
    def stage04(self) -> Path:
        return stage_dir(self.run_dir, STAGE04)

    @property
    def stage05(self) -> Path:
        return stage_dir(self.run_dir, STAGE05)

    def report_samples(self) -> pd.DataFrame:
        """Stage 01's report samples (ids as strings, empty sections as '')."""
        path = self.stage01 / preprocessing.REPORT_SAMPLES_FILE
        _require(path, STAGE01)
        return pd.read_csv(path, dtype={"dicom_id": str}, keep_default_na=False)

    def cnn_metrics(self) -> pd.DataFrame:
        path = self.stage03 / METRICS_FILE
        _require(path, STAGE03)
        return pd.read_csv(path)

    def cnn_probs(self) -> pd.DataFrame:
        path = self.stage03 / PROBS_FILE
        _require(path, STAGE03)
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
) -> tuple[list[np.ndarray], list[str], dict[str, list[str]], list[str]]:
    """Examples for :func:`cxrlib.reporteval.figures.report_gallery`, drawn with ``seed``.

    Returns images (uint8), references, generator -> generated texts, and captions with the
    image id and the CNN's probabilities.
    """
    from cxrlib.images import ImageCache

    ids = sorted(reports["dicom_id"].unique())
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), size=min(examples, len(ids)), replace=False).tolist())
    picked = [ids[i] for i in chosen]
    cache = ImageCache.open(inputs.stage01 / preprocessing.CACHE_DIR)
    probs = inputs.cnn_probs().set_index("dicom_id")
    by_image = reports.set_index(["generator", "dicom_id"])
    generators = list(dict.fromkeys(reports["generator"]))
    references = [by_image.loc[(generators[0], d), "reference"] for d in picked]
    generated = {g: [by_image.loc[(g, d), "generated"] for d in picked] for g in generators}
    captions = []
    for d in picked:
        row = probs.loc[d] if d in probs.index else pd.Series(dtype=float)
        pairs = [f"{k} {v:.2f}" for k, v in row.items()]
        lines = ["   ".join(pairs[k : k + 2]) for k in range(0, len(pairs), 2)]
        captions.append("\n".join([f"{d[:17]}  CNN probabilities:" if lines else d[:17], *lines]))
    return [cache.get(d) for d in picked], references, generated, captions


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
