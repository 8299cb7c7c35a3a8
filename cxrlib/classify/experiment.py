"""From the cohort and the image cache to trained models and predictions (one call per model).

Two tasks share this code:

* ``binary`` (the paper): one network per finding, trained on that finding's cohort rows
  (``cohort.csv`` rows of the finding, label 1 = case, 0 = control);
* ``multilabel``: one network with one logit per finding, trained on the union of the
  findings' cohorts; an image absent from a finding's cohort has label NaN for it, masked out
  of the loss, so each logit learns exactly from its own cohort.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrlib.choices import TASKS
from cxrlib.classify.train import (
    FitResult,
    TrainConfig,
    balanced_pos_weight,
    default_device,
    fit,
    predict_logits,
)
from cxrlib.classify.zoo import Classifier
from cxrlib.cohort import COHORT_COLUMNS
from cxrlib.images import CachedImageDataset, ImageCache, make_loader, train_transform
from cxrlib.mimic.layout import DICOM_ID, PATH, SPLIT_COLUMN, SPLITS, STUDY_ID, SUBJECT_ID
from cxrlib.seeding import seed_everything

_ID_COLUMNS = [SUBJECT_ID, STUDY_ID, DICOM_ID, PATH, SPLIT_COLUMN]
#: Columns of ``predictions.csv`` (03_cnn_train_test).
PREDICTION_COLUMNS: tuple[str, ...] = (
    "disease",
    SUBJECT_ID,
    STUDY_ID,
    DICOM_ID,
    SPLIT_COLUMN,
    "label",
    "prob",
)
#: Batch size used for inference (no gradients: larger batches are cheaper per image).
PREDICT_BATCH_SIZE = 128


@dataclass
class TrainedModel:
    """A trained network (weights of its best validation epoch) and how it got there."""

    model: Classifier
    config: TrainConfig
    fit: FitResult

    @property
    def diseases(self) -> list[str]:
        return list(self.config.diseases)


def check_task(task: str) -> str:
    """``task`` itself, or a ValueError listing the allowed values."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task


def check_cohort(cohort: pd.DataFrame, diseases: Sequence[str]) -> None:
    """Columns present, known findings, and every split non-empty for each finding."""
    missing = [c for c in COHORT_COLUMNS if c not in cohort.columns]
    if missing:
        raise ValueError(
            f"cohort lacks column(s) {missing}; expected {list(COHORT_COLUMNS)} "
            "(cohort.csv of stage 01_preprocessing)"
        )
    known = sorted(cohort["disease"].unique())
    for disease in diseases:
        if disease not in known:
            raise ValueError(
                f"disease {disease!r} is not in the cohort, which holds {known}; "
                "choose diseases among them or rebuild the cohort with it"
            )
        for split in SPLITS:
            disease_frame(cohort, disease, split)


def disease_frame(cohort: pd.DataFrame, disease: str, split: str | None = None) -> pd.DataFrame:
    """The cohort rows of one finding (and split), with a clear error when there are none."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    rows = cohort[cohort["disease"] == disease]
    if split is not None:
        rows = rows[rows[SPLIT_COLUMN] == split]
    if rows.empty:
        where = f" in split {split!r}" if split else ""
        raise ValueError(
            f"disease {disease!r} has no images{where} in the cohort; see counts.csv of stage "
            "01_preprocessing (more synthetic_subjects or other split ratios give every "
            "finding images in every split)"
        )
    return rows.reset_index(drop=True)


def multilabel_frame(cohort: pd.DataFrame, diseases: Sequence[str], split: str) -> pd.DataFrame:
    """One row per image of the findings' cohorts in ``split``; one label column per finding.

    The label is NaN where the image is not in that finding's cohort.
    """
    rows = pd.concat([disease_frame(cohort, d, split) for d in diseases], ignore_index=True)
    wide = rows.pivot_table(index=DICOM_ID, columns="disease", values="label", aggfunc="first")
    others = [c for c in _ID_COLUMNS if c != DICOM_ID]
    ids = rows.drop_duplicates(DICOM_ID).set_index(DICOM_ID)[others]
    wide = ids.join(wide.reindex(columns=list(diseases)))
    return (
        wide.reset_index()[_ID_COLUMNS + list(diseases)]
        .sort_values(DICOM_ID)
        .reset_index(drop=True)
    )


def training_frames(
    cohort: pd.DataFrame, config: TrainConfig
) -> tuple[dict[str, pd.DataFrame], str | list[str]]:
    """({split: frame}, label column(s)) for the findings of ``config`` (1 = binary task)."""
    if not config.diseases:
        raise ValueError("config.diseases is empty: name the finding(s) the model predicts")
    if len(config.diseases) == 1:
        disease = config.diseases[0]
        return {s: disease_frame(cohort, disease, s) for s in SPLITS}, "label"
    return {s: multilabel_frame(cohort, config.diseases, s) for s in SPLITS}, list(config.diseases)


def train_model(
    cache: ImageCache,
    cohort: pd.DataFrame,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    log_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    max_train_images: int | None = None,
) -> TrainedModel:
    """Seed, build the network of ``config``, train it on the train split with early stopping
    on the validate split, and return it with the weights of its best epoch.

    ``max_train_images`` trains on a seeded sample of that many training images (quick
    comparisons); None = all.
    """
    frames, label_column = training_frames(cohort, config)
    if max_train_images is not None and max_train_images < len(frames["train"]):
        if max_train_images < 1:
            raise ValueError(f"max_train_images must be >= 1 or None, got {max_train_images!r}")
        sample = frames["train"].sample(n=max_train_images, random_state=config.seed)
        frames["train"] = sample.sort_index().reset_index(drop=True)
    if cache.image_size != config.image_size:
        config = replace(config, image_size=cache.image_size)
    seed_everything(config.seed)
    model = config.build_model()
    channels = config.in_chans
    train_set = CachedImageDataset(
        cache,
        frames["train"],
        label_column=label_column,
        transform=train_transform(),
        channels=channels,
    )
    val_set = CachedImageDataset(
        cache, frames["validate"], label_column=label_column, channels=channels
    )
    train_loader = make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed)
    val_loader = make_loader(val_set, PREDICT_BATCH_SIZE, shuffle=False, seed=config.seed)
    labels = frames["train"][label_column].to_numpy(dtype=float)
    pos_weight = balanced_pos_weight(labels) if config.pos_weight == "balanced" else None
    result = fit(
        model,
        train_loader,
        val_loader,
        config,
        device=device,
        pos_weight=pos_weight,
        log_path=log_path,
        progress=progress,
        desc=model_name(config),
    )
    return TrainedModel(model, config, result)


def predict_frame(
    model: Classifier,
    cache: ImageCache,
    frame: pd.DataFrame,
    *,
    features: bool = False,
    device: torch.device | str | None = None,
    channels: int = 1,
) -> np.ndarray:
    """Probabilities (N, K) of every image of ``frame`` (``features=True``: features (N, D))."""
    dataset = CachedImageDataset(cache, frame, label_column=None, channels=channels)
    loader = make_loader(dataset, PREDICT_BATCH_SIZE, shuffle=False, seed=0)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    outputs, _ = predict_logits(model, loader, device=device, features=features)
    if features:
        return outputs.astype(np.float32)
    return (1.0 / (1.0 + np.exp(-outputs.astype(np.float64)))).astype(np.float32)


def prediction_rows(
    trained: TrainedModel,
    cache: ImageCache,
    cohort: pd.DataFrame,
    splits: Sequence[str] = ("validate", "test"),
) -> pd.DataFrame:
    """``predictions.csv`` rows (disease,subject_id,study_id,dicom_id,split,label,prob) of the
    model's findings on their cohort images of ``splits``."""
    parts = []
    for k, disease in enumerate(trained.diseases):
        rows = cohort[(cohort["disease"] == disease) & cohort[SPLIT_COLUMN].isin(splits)]
        rows = rows.reset_index(drop=True)
        probs = predict_frame(trained.model, cache, rows, channels=trained.config.in_chans)
        parts.append(rows.assign(prob=probs[:, k])[list(PREDICTION_COLUMNS)])
    return pd.concat(parts, ignore_index=True)


def train_all(
    cache: ImageCache,
    cohort: pd.DataFrame,
    configs: Sequence[TrainConfig],
    *,
    device: torch.device | str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> list[TrainedModel]:
    """Train each configuration in turn (a per-epoch log ``<log_dir>/<model name>.csv`` each)."""
    device = device or default_device()
    trained = []
    for config in configs:
        log_path = None if log_dir is None else Path(log_dir) / f"{model_name(config)}.csv"
        trained.append(
            train_model(cache, cohort, config, device=device, log_path=log_path, progress=progress)
        )
    return trained


def model_name(config: TrainConfig) -> str:
    """File-name stem of a model: the finding's slug, or ``multilabel``."""
    if len(config.diseases) == 1:
        return disease_slug(config.diseases[0])
    return "multilabel"


def disease_slug(disease: str) -> str:
    """``Pleural Effusion`` -> ``pleural_effusion`` (file names without spaces)."""
    return disease.strip().lower().replace(" ", "_")


def configs_for(
    task: str,
    diseases: Sequence[str],
    params: Mapping[str, Mapping[str, object]],
    base: TrainConfig,
) -> list[TrainConfig]:
    """The configurations to train: one per finding (binary) or one for all (multilabel).

    ``params`` maps a finding to its chosen hyperparameters (``best_params.csv`` rows); the
    multilabel network uses the first finding's (they are equal when tuned multilabel).
    """
    check_task(task)
    fields = ("architecture", "lr", "weight_decay", "batch_size", "dropout")

    def chosen(disease: str) -> dict[str, object]:
        if disease not in params:
            raise ValueError(
                f"no tuned parameters for disease {disease!r} (best_params.csv "
                f"holds {sorted(params)}); re-run 02_cnn_tuning with it"
            )
        values = params[disease]
        return {f: _plain(values[f]) for f in fields if f in values}

    if task == "binary":
        return [replace(base, diseases=[d], **chosen(d)) for d in diseases]
    return [replace(base, diseases=list(diseases), **chosen(diseases[0]))]


def _plain(value: object) -> object:
    """numpy scalars from a DataFrame row -> Python numbers (dataclass fields, JSON)."""
    return value.item() if isinstance(value, np.generic) else value
