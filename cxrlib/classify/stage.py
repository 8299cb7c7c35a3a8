"""Stages 02 (tuning) and 03 (train/test): reading upstream files, writing artifacts.

The notebooks ``02_cnn_tuning`` and ``03_cnn_train_test`` call these so that each cell stays a
line or two. File names and schemas: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib import artifacts as a
from cxrlib import preprocessing
from cxrlib.atomic import atomic_path, write_csv
from cxrlib.classify.evaluate import HEADLINE_METRICS_COLUMNS
from cxrlib.classify.experiment import (
    TrainedModel,
    check_cohort,
    model_name,
    predict_frame,
)
from cxrlib.classify.gradcam import EXAMPLE_KINDS, gradcam_maps, overlay, pick_examples
from cxrlib.classify.train import save_checkpoint
from cxrlib.images.cache import ImageCache
from cxrlib.images.dataset import CachedImageDataset
from cxrlib.images.transforms import denormalize
from cxrlib.mimic.layout import DICOM_ID, SPLIT_COLUMN
from cxrlib.paths import stage_dir


@dataclass(frozen=True)
class Preprocessed:
    """What stage 01 left for the CNN stages."""

    cache: ImageCache
    cohort: pd.DataFrame
    report_samples: pd.DataFrame


def load_preprocessed(run_dir: str | os.PathLike[str], diseases: Sequence[str]) -> Preprocessed:
    """Stage 01's cache, cohort and report samples; every finding needs images in every split."""
    cohort = preprocessing.read_cohort(run_dir)
    samples = preprocessing.read_report_samples(run_dir)
    check_cohort(cohort, diseases)
    return Preprocessed(preprocessing.open_cache(run_dir), cohort, samples)


def read_best_params(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Stage 02's ``best_params.csv`` (what stage 03 trains)."""
    path = stage_dir(run_dir, a.CNN_TUNING) / a.BEST_PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run stage {a.CNN_TUNING} first with the same run_dir"
        )
    return pd.read_csv(path)


def save_models(out_dir: str | os.PathLike[str], models: Sequence[TrainedModel]) -> list[Path]:
    """``checkpoints/<name>.safetensors`` + ``.json`` per model (name: finding slug or
    ``multilabel``), with the best epoch, its validation score and the processes that
    trained it."""
    paths = []
    for trained in models:
        path = Path(out_dir) / a.CHECKPOINT_DIR / f"{model_name(trained.config)}.safetensors"
        paths.append(
            save_checkpoint(
                path,
                trained.model,
                trained.config,
                best_epoch=trained.fit.best_epoch,
                best_val_score=trained.fit.best_score,
                monitor=trained.config.monitor,
                processes=trained.fit.processes,
            )
        )
    return paths


def report_image_outputs(
    models: Sequence[TrainedModel], cache: ImageCache, report_samples: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """(probabilities ``dicom_id`` + one column per finding, embeddings (N, D) float32) for
    every image of the report samples.

    Embeddings are the backbone features; with one binary model per finding they are the
    concatenation of each model's L2-normalised features, so that every finding's network
    weighs the same in a cosine similarity.
    """
    frame = report_samples[[DICOM_ID]].drop_duplicates().reset_index(drop=True)
    probs = frame.copy()
    blocks = []
    for trained in models:
        channels = trained.config.in_chans
        p = predict_frame(trained.model, cache, frame, channels=channels)
        for k, disease in enumerate(trained.diseases):
            probs[disease] = p[:, k]
        features = predict_frame(trained.model, cache, frame, features=True, channels=channels)
        if len(models) > 1:
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            features = features / np.where(norms == 0, 1.0, norms)
        blocks.append(features)
    return probs, np.concatenate(blocks, axis=1).astype(np.float32)


def write_embeddings(
    path: str | os.PathLike[str], dicom_ids: Sequence[str], embeddings: np.ndarray
) -> Path:
    """``report_image_embeddings.npz``: ``dicom_id`` (N,) str, ``embedding`` (N, D) float32."""
    ids = np.asarray([str(d) for d in dicom_ids], dtype=np.str_)  # no pickle needed to read
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, dicom_id=ids, embedding=embeddings.astype(np.float32))
    return Path(path)


def write_predictions(
    out_dir: str | os.PathLike[str], predictions: pd.DataFrame, metrics: pd.DataFrame
) -> list[Path]:
    """``predictions.csv`` and ``metrics.csv`` (atomic)."""
    out = Path(out_dir)
    return [
        write_csv(out / a.PREDICTIONS_FILE, predictions),
        write_csv(out / a.METRICS_FILE, metrics),
    ]


def gradcam_examples(
    models: Sequence[TrainedModel],
    cache: ImageCache,
    predictions: pd.DataFrame,
    thresholds: dict[str, float],
    *,
    n: int = 3,
    split: str = "test",
) -> tuple[dict[str, list[tuple[np.ndarray, str] | None]], list[str]]:
    """Grad-CAM overlays of the ``n`` most confident true and false positives of each finding.

    Returns ``(rows, columns)`` for :func:`cxrlib.plots.example_grid`: per finding a list of
    ``2 n`` cells (RGB uint8 overlay and its caption, or None when the finding has fewer such
    examples), and the column titles ``TP 1 .. TP n, FP 1 .. FP n``.
    """
    columns = [f"{kind} {i + 1}" for kind in EXAMPLE_KINDS for i in range(n)]
    rows: dict[str, list[tuple[np.ndarray, str] | None]] = {}
    test = predictions[predictions[SPLIT_COLUMN] == split]
    for trained in models:
        trained.model.eval()
        for k, disease in enumerate(trained.diseases):
            mine = test[test["disease"] == disease]
            cells: list[tuple[np.ndarray, str] | None] = []
            for kind in EXAMPLE_KINDS:
                chosen = pick_examples(mine, thresholds[disease], kind, n=n)
                found: list[tuple[np.ndarray, str] | None] = []
                if not chosen.empty:
                    dataset = CachedImageDataset(
                        cache, chosen, label_column=None, channels=trained.config.in_chans
                    )
                    batch = dataset.get_batch(range(len(chosen)))
                    maps = gradcam_maps(trained.model, batch["image"], output_index=k)
                    grey = denormalize(batch["image"][:, 0]).numpy()
                    found = [
                        (overlay(image, cam), f"p = {prob:.2f}")
                        for image, cam, prob in zip(grey, maps, chosen["prob"], strict=True)
                    ]
                cells += found + [None] * (n - len(found))
            rows[disease] = cells
    return rows, columns


def metrics_display(metrics: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The headline columns of ``metrics.csv``, rounded, indexed by finding."""
    return metrics[list(HEADLINE_METRICS_COLUMNS)].set_index("disease").round(digits)
