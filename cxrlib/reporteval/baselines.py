"""Baseline report generators that a fine-tuned model has to beat, scored like it.

(a) ``constant_normal``: the same normal report for every image — what a model that ignores
the image and learned the commonest report would write;
(b) ``nearest_neighbour``: the training report of the most similar training image by the
CNN's embedding (cosine similarity) — retrieval, no generation;
(c) ``cnn_template``: one sentence per finding the CNN was trained for, positive when its
probability reaches the threshold chosen on validation (stage 03's ``metrics.csv``),
negative otherwise.

All texts use the target format of the fine-tuned model (``FINDINGS: ... IMPRESSION: ...``,
:func:`cxrlib.reportgen.prompts.report_text`), so NLG and CE scores compare like for like.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.artifacts import EMBEDDINGS_FILE, GENERATED_COLUMNS
from cxrlib.mimic.layout import SPLITS
from cxrlib.reportgen.guidance import load_guidance
from cxrlib.reportgen.prompts import check_report_samples, report_text, reports

#: Baseline names, in table order.
BASELINES: tuple[str, ...] = ("constant_normal", "nearest_neighbour", "cnn_template")
#: Columns of a frame of generated reports of several generators.
REPORT_COLUMNS: tuple[str, ...] = ("generator", *GENERATED_COLUMNS)

NORMAL_FINDINGS = (
    "The lungs are clear. There is no focal consolidation, pleural effusion or pneumothorax. "
    "Heart size is normal. The mediastinal contours are normal."
)
NORMAL_IMPRESSION = "No acute cardiopulmonary process."
#: (positive, negative) sentence per finding of the paper; others use a generic pair.
TEMPLATE_SENTENCES: dict[str, tuple[str, str]] = {
    "Pneumonia": ("Findings are consistent with pneumonia.", "No evidence of pneumonia."),
    "Pleural Effusion": ("There is a pleural effusion.", "No pleural effusion."),
    "Pneumothorax": ("There is a pneumothorax.", "No pneumothorax."),
    "Atelectasis": ("There is atelectasis.", "No atelectasis."),
    "Cardiomegaly": ("The heart is enlarged.", "Heart size is normal."),
    "Consolidation": ("There is focal consolidation.", "No focal consolidation."),
}


def constant_normal_report() -> str:
    """Baseline (a): one normal report."""
    return report_text(NORMAL_FINDINGS, NORMAL_IMPRESSION)


def template_report(predicted: Sequence[str], findings: Sequence[str]) -> str:
    """Baseline (c) for one image: ``predicted`` findings stated, the other ``findings`` denied."""
    chosen = set(predicted)
    positive = [_sentences(f)[0] for f in findings if f in chosen]
    negative = [_sentences(f)[1] for f in findings if f not in chosen]
    impression = " ".join(positive) if positive else NORMAL_IMPRESSION
    return report_text(" ".join(positive + negative), impression)


def _sentences(finding: str) -> tuple[str, str]:
    if finding in TEMPLATE_SENTENCES:
        return TEMPLATE_SENTENCES[finding]
    name = finding.lower()
    return f"There is {name}.", f"No {name}."


def load_embeddings(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(dicom_ids (N,) str, embeddings (N, D) float32)`` from stage 03's ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CNN embeddings not found: {path}; run stage 03_cnn_train_test first"
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("dicom_id", "embedding") if k not in data.files]
        if missing:
            raise ValueError(f"{path} lacks arrays {missing} (has {data.files}); re-run stage 03")
        ids, embeddings = data["dicom_id"].astype(str), data["embedding"].astype(np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(ids):
        raise ValueError(
            f"{path}: embedding must be (N, D) with N = {len(ids)} dicom_ids, got shape "
            f"{embeddings.shape}; re-run stage 03"
        )
    return ids, embeddings


def nearest_neighbours(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Row index into ``database`` of each query's most cosine-similar row (ties: first)."""
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"query and database embeddings differ in width: {queries.shape[1]} vs "
            f"{database.shape[1]}"
        )
    similarity = _unit_rows(queries) @ _unit_rows(database).T
    return similarity.argmax(axis=1)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def retrieval_reports(
    queries: Sequence[str],
    train: pd.DataFrame,
    ids: np.ndarray,
    embeddings: np.ndarray,
) -> list[str]:
    """Baseline (b): for each query dicom_id, the report of the nearest ``train`` image.

    ``train`` holds ``dicom_id`` and ``report`` columns; ``ids``/``embeddings`` must cover
    every query and training image.
    """
    row_of = {d: i for i, d in enumerate(ids)}
    wanted = list(queries) + list(train["dicom_id"])
    absent = [d for d in wanted if d not in row_of]
    if absent:
        raise ValueError(
            f"{len(absent)} report images have no CNN embedding (first: {absent[0]}); "
            "stage 03's report_image_embeddings.npz is older than stage 01: re-run stage 03"
        )
    if train.empty:
        raise ValueError("no training reports to retrieve from: the train split is empty")
    query_matrix = embeddings[[row_of[d] for d in queries]]
    train_matrix = embeddings[[row_of[d] for d in train["dicom_id"]]]
    nearest = nearest_neighbours(query_matrix, train_matrix)
    texts = train["report"].tolist()
    return [texts[i] for i in nearest]


def baseline_reports(
    samples: pd.DataFrame,
    stage03_dir: str | os.PathLike[str],
    *,
    eval_split: str = "test",
    baselines: Sequence[str] = BASELINES,
) -> pd.DataFrame:
    """Reports of the baselines for every ``eval_split`` image of stage 01's report samples.

    Returns ``REPORT_COLUMNS`` rows (generator, study_id, dicom_id, split, reference, generated).
    """
    check_report_samples(samples, "report samples")
    if eval_split not in SPLITS:
        raise ValueError(f"eval_split must be one of {list(SPLITS)}, got {eval_split!r}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {list(BASELINES)}")
    samples = samples.assign(dicom_id=samples["dicom_id"].astype(str))
    evaluated = samples[samples["split"] == eval_split].reset_index(drop=True)
    if evaluated.empty:
        raise ValueError(
            f"no report samples in split {eval_split!r} (splits present: "
            f"{sorted(samples['split'].unique())}); choose another eval_split"
        )
    references = reports(evaluated)
    frames = []
    for name in baselines:
        generated = _generate(name, evaluated, samples, Path(stage03_dir))
        frame = evaluated[["study_id", "dicom_id", "split"]].copy()
        frame.insert(0, "generator", name)
        frame["reference"] = references
        frame["generated"] = generated
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[list(REPORT_COLUMNS)]


def _generate(
    name: str, evaluated: pd.DataFrame, samples: pd.DataFrame, stage03_dir: Path
) -> list[str]:
    if name == "constant_normal":
        return [constant_normal_report()] * len(evaluated)
    if name == "nearest_neighbour":
        train = samples[samples["split"] == "train"]
        train = pd.DataFrame({"dicom_id": train["dicom_id"], "report": reports(train)})
        ids, embeddings = load_embeddings(stage03_dir / EMBEDDINGS_FILE)
        return retrieval_reports(evaluated["dicom_id"].tolist(), train, ids, embeddings)
    predicted, findings = load_guidance(stage03_dir)
    return _template_reports(evaluated["dicom_id"].tolist(), predicted, findings)


def _template_reports(
    dicom_ids: Sequence[str], predicted: Mapping[str, Sequence[str]], findings: Sequence[str]
) -> list[str]:
    absent = [d for d in dicom_ids if d not in predicted]
    if absent:
        raise ValueError(
            f"{len(absent)} report images have no CNN probabilities (first: {absent[0]}); "
            "stage 03's report_image_probs.csv is older than stage 01: re-run stage 03"
        )
    return [template_report(predicted[d], findings) for d in dicom_ids]
