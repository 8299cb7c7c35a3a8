"""Job entry points the distributed tests hand to torchrun (``run_job`` per module function).

``toy_fit``: the library's ``fit`` on a small network without batch norm (PyTorch synchronises
batch-norm statistics on CUDA only, so on CPU processes only such a network can train exactly
as one process does). ``failing_cnn``: stage 03's CNN job with rank 1 raising in its second
epoch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from cxrlib import distributed
from cxrlib.atomic import atomic_path
from cxrlib.classify import ddp, experiment, train, zoo
from cxrlib.images.cache import ImageCache
from cxrlib.images.dataset import CachedImageDataset, make_loader
from cxrlib.images.transforms import train_transform

#: Which test job ``run_job`` runs (the test sets it in the workers' environment).
JOB_VARIABLE = "CXRLIB_TEST_JOB"


def toy_network(outputs: int) -> zoo.Classifier:
    """Two convolutions, no batch norm: a Classifier like the zoo's, small enough for a test."""
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    return zoo.Classifier("toy", backbone, 16, outputs, dropout=0.0)


def toy_fit(cache: ImageCache, cohort: pd.DataFrame, config: train.TrainConfig) -> tuple:
    """(history, final weights) of ``fit`` on the cohort's train/validate images."""
    frames, columns = experiment.training_frames(cohort, config)
    train_set = CachedImageDataset(
        cache, frames["train"], label_column=columns, transform=train_transform()
    )
    val_set = CachedImageDataset(cache, frames["validate"], label_column=columns)
    labels = frames["train"][columns].to_numpy(dtype=float)
    model = toy_network(len(config.diseases))
    result = train.fit(
        model,
        make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed),
        make_loader(val_set, 8, shuffle=False, seed=config.seed),
        config,
        device="cpu",
        pos_weight=train.balanced_pos_weight(labels),
        progress=False,
    )
    return result, {k: v.clone() for k, v in model.state_dict().items()}


def run_job(
    settings: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    result: Path | None,
    job_dir: Path | None = None,
) -> None:
    job = os.environ[JOB_VARIABLE]
    if job == "toy_fit":
        cache = ImageCache.open(settings["cache"])
        config = train.TrainConfig(**settings["config"])
        fit, weights = toy_fit(cache, tables["cohort"], config)
        if result is not None:
            with atomic_path(result / "fit.pt") as tmp:
                torch.save({"history": fit.history, "weights": weights, "fit": fit}, tmp)
        return
    if job == "failing_cnn":
        original = train._train_epoch

        def second_epoch_fails_on_rank_1(*args, **kwargs):
            loss = original(*args, **kwargs)
            if distributed.world().rank == 1 and getattr(second_epoch_fails_on_rank_1, "done", 0):
                raise RuntimeError("injected failure in epoch 2")
            second_epoch_fails_on_rank_1.done = 1
            return loss

        train._train_epoch = second_epoch_fails_on_rank_1
        ddp.run_job(settings, tables, result, job_dir)
        return
    raise ValueError(f"unknown test job {job!r}")
