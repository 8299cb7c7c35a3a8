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
import torch

from cxrlib import preprocessing
from cxrlib.artifacts import (  # noqa: F401 (names of the outputs of stages 02 and 03)
    BEST_PARAMS_FILE,
    CHECKPOINT_DIR,
    COMPARISON_FILE,
    EMBEDDINGS_FILE,
    GRID_FILE,
    LOG_DIR,
    METRICS_FILE,
    PREDICTIONS_FILE,
    PROBS_FILE,
)
from cxrlib.artifacts import CNN_TRAIN_TEST as TRAIN_TEST_STAGE  # noqa: F401
from cxrlib.artifacts import CNN_TUNING as TUNING_STAGE
from cxrlib.atomic import atomic_path, write_csv
from cxrlib.choices import DEVICES
from cxrlib.classify.evaluate import HEADLINE_METRICS_COLUMNS
from cxrlib.classify.experiment import (
    TrainedModel,
    check_cohort,
    model_name,
    predict_frame,
)
from cxrlib.classify.gradcam import EXAMPLE_KINDS, gradcam_maps, overlay, pick_examples
from cxrlib.classify.train import save_checkpoint
from cxrlib.images import CachedImageDataset, ImageCache
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
    folder = stage_dir(run_dir, preprocessing.STAGE)
    for name in (preprocessing.COHORT_FILE, preprocessing.REPORT_SAMPLES_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} not found: run stage {preprocessing.STAGE} first "
                f"(python run_all.py --until {preprocessing.STAGE}) with the same run_dir"
            )
    cohort = pd.read_csv(folder / preprocessing.COHORT_FILE, dtype={DICOM_ID: str})
    samples = pd.read_csv(
        folder / preprocessing.REPORT_SAMPLES_FILE, dtype={DICOM_ID: str}, keep_default_na=False
    )
    check_cohort(cohort, diseases)
    cache = ImageCache.open(folder / preprocessing.CACHE_DIR)
    return Preprocessed(cache, cohort, samples)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def read_best_params(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Stage 02's ``best_params.csv`` (what stage 03 trains)."""
    path = stage_dir(run_dir, TUNING_STAGE) / BEST_PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run stage {TUNING_STAGE} first with the same run_dir"
        )
    return pd.read_csv(path)


def save_models(out_dir: str | os.PathLike[str], models: Sequence[TrainedModel]) -> list[Path]:
    """``checkpoints/<name>.safetensors`` + ``.json`` per model (name: finding slug or
    ``multilabel``), with the best epoch and its validation score."""
    paths = []
    for trained in models:
        path = Path(out_dir) / CHECKPOINT_DIR / f"{model_name(trained.config)}.safetensors"
        paths.append(
            save_checkpoint(
                path,
                trained.model,
                trained.config,
                best_epoch=trained.fit.best_epoch,
                best_val_score=trained.fit.best_score,
                monitor=trained.config.monitor,
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
    return [write_csv(out / PREDICTIONS_FILE, predictions), write_csv(out / METRICS_FILE, metrics)]


def gradcam_examples(
    models: Sequence[TrainedModel],
    cache: ImageCache,
    predictions: pd.DataFrame,
    thresholds: dict[str, float],
    *,
    n: int = 3,
    split: str = "test",
) -> tuple[list[np.ndarray], list[str]]:
    """Grad-CAM overlays of the most confident true and false positives of each finding
    (RGB uint8 images and their titles), for a picture grid."""
    images, titles = [], []
    rows = predictions[predictions[SPLIT_COLUMN] == split]
    for trained in models:
        trained.model.eval()
        for k, disease in enumerate(trained.diseases):
            mine = rows[rows["disease"] == disease]
            for kind in EXAMPLE_KINDS:
                chosen = pick_examples(mine, thresholds[disease], kind, n=n)
                if chosen.empty:
                    continue
                dataset = CachedImageDataset(
                    cache, chosen, label_column=None, channels=trained.config.in_chans
                )
                batch = dataset.get_batch(range(len(chosen)))
                maps = gradcam_maps(trained.model, batch["image"], output_index=k)
                grey = denormalize(batch["image"][:, 0]).numpy()
                for image, cam, prob in zip(grey, maps, chosen["prob"], strict=True):
                    images.append(overlay(image, cam))
                    titles.append(f"{disease}\n{kind} p={prob:.2f}")
    return images, titles


def metrics_display(metrics: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The headline columns of ``metrics.csv``, rounded, indexed by finding."""
    return metrics[list(HEADLINE_METRICS_COLUMNS)].set_index("disease").round(digits)
