"""Classifier guidance: the CNN's predicted findings per image, from stage 03's files.

Stage 03 writes ``report_image_probs.csv`` (``dicom_id`` + one probability column per finding)
and ``metrics.csv`` (one row per finding with the ``threshold`` chosen on validation). A finding
is predicted when its probability reaches that threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..artifacts import CNN_TRAIN_TEST, METRICS_FILE, PROBS_FILE
from ..labeler import label_reports
from ..mimic.layout import CHEXPERT_LABELS, DICOM_ID, POSITIVE
from .prompts import INSTRUCTION, guided_instruction

_ID, _DISEASE, _THRESHOLD = DICOM_ID, "disease", "threshold"


def predicted_findings(probs: pd.DataFrame, thresholds: dict[str, float]) -> dict[str, list[str]]:
    """``dicom_id -> findings with prob >= threshold`` (in ``thresholds`` order)."""
    missing = [f for f in thresholds if f not in probs.columns]
    if _ID not in probs.columns or missing:
        raise ValueError(
            f"report image probabilities need columns {[_ID, *thresholds]}; missing "
            f"{[_ID] if _ID not in probs.columns else missing}: re-run stage 03"
        )
    names = list(thresholds)
    hits = probs[names].to_numpy(dtype=float) >= [thresholds[f] for f in names]
    return {
        str(dicom_id): [f for f, hit in zip(names, row, strict=True) if hit]
        for dicom_id, row in zip(probs[_ID], hits, strict=True)
    }


def load_guidance(stage03_dir: str | os.PathLike[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Read stage 03's outputs: (predicted findings per dicom_id, the findings asked about)."""
    folder = Path(stage03_dir)
    why = ("classifier-guided prompting", "or set guided = False")
    _require(folder / PROBS_FILE, *why)
    thresholds = _thresholds(folder, *why)
    probs = pd.read_csv(folder / PROBS_FILE, dtype={_ID: str})
    return predicted_findings(probs, thresholds), list(thresholds)


def classifier_findings(
    stage03_dir: str | os.PathLike[str], purpose: str, alternative: str
) -> list[str]:
    """The findings stage 03's classifier scores, in its order: what a hint can name.

    ``purpose`` and ``alternative`` complete the error message when stage 03 has not run
    (what needs the file, and how to do without it).
    """
    return list(_thresholds(Path(stage03_dir), purpose, alternative))


def _thresholds(folder: Path, purpose: str, alternative: str) -> dict[str, float]:
    path = folder / METRICS_FILE
    _require(path, purpose, alternative)
    metrics = pd.read_csv(path)
    if not {_DISEASE, _THRESHOLD} <= set(metrics.columns):
        raise ValueError(
            f"{path} needs columns {[_DISEASE, _THRESHOLD]}, has {list(metrics.columns)}: "
            "re-run stage 03"
        )
    return {str(d): float(t) for d, t in zip(metrics[_DISEASE], metrics[_THRESHOLD], strict=True)}


def _require(path: Path, purpose: str, alternative: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"{purpose} needs {path}, which does not exist: run stage {CNN_TRAIN_TEST} "
            f"first, {alternative}"
        )


def guided_instructions(
    dicom_ids: list[str],
    predicted: dict[str, list[str]],
    findings: list[str],
    instruction: str = INSTRUCTION,
) -> dict[str, str]:
    """The guided instruction for every image; an image stage 03 did not score is an error."""
    absent = [d for d in dicom_ids if d not in predicted]
    if absent:
        raise ValueError(
            f"{len(absent)} report images have no CNN probabilities (first: {absent[0]}): "
            "stage 03's report_image_probs.csv is older than stage 01's report samples; "
            "re-run stage 03"
        )
    return {d: guided_instruction(predicted[d], findings, instruction) for d in dicom_ids}


def stated_findings(report_texts: Sequence[str], findings: Sequence[str]) -> list[list[str]]:
    """Per report, the ``findings`` it states as present (the project's CheXpert labeler).

    The tiny model's pre-training pairs each training report with a guided instruction naming
    these, so that it follows classifier hints as an instruction-tuned model does; the labels
    come from the training reports only.
    """
    unknown = [f for f in findings if f not in CHEXPERT_LABELS]
    if unknown:
        raise ValueError(f"findings {unknown} are not CheXpert labels (one of {CHEXPERT_LABELS})")
    labels = label_reports(report_texts)[list(findings)].to_numpy() == POSITIVE
    return [[f for f, hit in zip(findings, row, strict=True) if hit] for row in labels]
