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

from ..artifacts import METRICS_FILE, PROBS_FILE
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
    paths = [folder / PROBS_FILE, folder / METRICS_FILE]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"classifier-guided prompting needs {path}, which does not exist: run stage "
                "03_cnn_train_test first, or set guided = False"
            )
    probs = pd.read_csv(paths[0], dtype={_ID: str})
    metrics = pd.read_csv(paths[1])
    if not {_DISEASE, _THRESHOLD} <= set(metrics.columns):
        raise ValueError(
            f"{paths[1]} needs columns {[_DISEASE, _THRESHOLD]}, has {list(metrics.columns)}: "
            "re-run stage 03"
        )
    thresholds = {
        str(d): float(t) for d, t in zip(metrics[_DISEASE], metrics[_THRESHOLD], strict=True)
    }
    return predicted_findings(probs, thresholds), list(thresholds)


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
    from ..reporteval.labeler import label_reports

    unknown = [f for f in findings if f not in CHEXPERT_LABELS]
    if unknown:
        raise ValueError(f"findings {unknown} are not CheXpert labels (one of {CHEXPERT_LABELS})")
    labels = label_reports(report_texts)[list(findings)].to_numpy() == POSITIVE
    return [[f for f, hit in zip(findings, row, strict=True) if hit] for row in labels]
