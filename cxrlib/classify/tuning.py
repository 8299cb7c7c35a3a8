"""Hyperparameter tuning of the paper (section 4.2) on the validation split.

Two steps, as in the paper: compare architectures with fixed settings, then search a grid over
learning rate, weight decay, batch size and dropout for the chosen architecture. Every run
trains with early stopping and is scored by its best validation AUC per finding. The test
split is never looked at here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace

import pandas as pd
from sklearn.model_selection import ParameterGrid

from cxrlib.classify.experiment import (
    check_task,
    configs_for,
    model_name,
    predict_frame,
    train_model,
    training_frames,
)
from cxrlib.classify.train import TrainConfig, mean_auc
from cxrlib.classify.zoo import ARCHITECTURES, check_architecture, count_parameters
from cxrlib.distributed import world
from cxrlib.distributed.launch import Launch
from cxrlib.images.cache import ImageCache
from cxrlib.progress import progress_bar

#: The knobs of the grid, in the order of ``grid_results.csv`` columns.
GRID_KEYS: tuple[str, ...] = ("lr", "weight_decay", "batch_size", "dropout")
BEST_PARAMS_COLUMNS: tuple[str, ...] = (
    "disease",
    "architecture",
    *GRID_KEYS,
    "val_auc",
    "best_epoch",
    "task",
)


def param_grid(
    *,
    lr: Sequence[float],
    weight_decay: Sequence[float],
    batch_size: Sequence[int],
    dropout: Sequence[float],
) -> list[dict[str, float]]:
    """Every combination of the four knobs (scikit-learn's ParameterGrid), in a fixed order."""
    values = {"lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "dropout": dropout}
    for key, options in values.items():
        if isinstance(options, str) or not isinstance(options, Sequence) or len(options) == 0:
            raise ValueError(f"grid values of {key!r} must be a non-empty list, got {options!r}")
    return [{k: point[k] for k in GRID_KEYS} for point in ParameterGrid(values)]


def _validation_aucs(trained, cache: ImageCache, cohort: pd.DataFrame) -> dict[str, float]:
    """Per finding, the AUC of the trained (best-epoch) model on its validation images."""
    if len(trained.diseases) == 1 and trained.config.monitor == "auc":
        # fit() already scored the best epoch on exactly these images
        return {trained.diseases[0]: float(trained.fit.best_score)}
    frames, label_column = training_frames(cohort, trained.config)
    frame = frames["validate"]
    probs = predict_frame(trained.model, cache, frame, channels=trained.config.in_chans)
    columns = [label_column] if isinstance(label_column, str) else label_column
    return {
        disease: mean_auc(frame[[column]].to_numpy(float), probs[:, [k]])
        for k, (disease, column) in enumerate(zip(trained.diseases, columns, strict=True))
    }


def _run(
    cache: ImageCache,
    cohort: pd.DataFrame,
    configs: Sequence[TrainConfig],
    *,
    device,
    progress: bool,
    extra: dict[str, object],
    max_train_images: int | None = None,
) -> list[dict[str, object]]:
    rows = []
    for config in configs:
        tick = time.perf_counter()
        trained = train_model(
            cache,
            cohort,
            config,
            device=device,
            progress=progress,
            max_train_images=max_train_images,
        )
        seconds = time.perf_counter() - tick
        for disease, auc in _validation_aucs(trained, cache, cohort).items():
            rows.append(
                {
                    "disease": disease,
                    "model": model_name(config),
                    "architecture": config.architecture,
                    **{k: getattr(config, k) for k in GRID_KEYS},
                    **extra,
                    "val_auc": auc,
                    "best_epoch": trained.fit.best_epoch,
                    "epochs_run": len(trained.fit.history),
                    "seconds": seconds,
                    "parameters": count_parameters(trained.model),
                }
            )
    return rows


def compare_architectures(
    cache: ImageCache,
    cohort: pd.DataFrame,
    *,
    diseases: Sequence[str],
    architectures: Sequence[str],
    base: TrainConfig,
    task: str = "binary",
    device=None,
    progress: bool = True,
    max_train_images: int | None = None,
    launch: Launch | None = None,
) -> pd.DataFrame:
    """``architecture_comparison.csv``: validation AUC of each architecture per finding, with
    the base settings (``disease,architecture,val_auc,best_epoch,epochs_run,seconds,...``).

    ``max_train_images`` trains each run on a seeded sample of the training images (a quick,
    rougher comparison); None = all. A ``launch`` of several processes runs the comparison as
    a torchrun job (:mod:`cxrlib.classify.ddp`).
    """
    check_task(task)
    for name in architectures:
        check_architecture(name)
    if launch is not None and launch.distributed and world().size == 1:
        from cxrlib.classify import ddp

        return ddp.compare_architectures(
            cache, cohort, launch=launch, device=device, diseases=list(diseases),
            architectures=list(architectures), base=base, task=task,
            max_train_images=max_train_images, progress=progress,
        )  # fmt: skip
    rows = []
    bar = progress_bar(
        architectures, desc="architectures", disable=not (progress and world().is_main)
    )
    for name in bar:
        bar.set_postfix(architecture=name)
        params = {d: {"architecture": name} for d in diseases}
        configs = configs_for(task, diseases, params, base)
        rows += _run(
            cache,
            cohort,
            configs,
            device=device,
            progress=False,
            extra={},
            max_train_images=max_train_images,
        )
    return pd.DataFrame(rows)


def choose_architecture(comparison: pd.DataFrame) -> str:
    """The architecture with the highest mean validation AUC over findings (ties: zoo order)."""
    if comparison.empty:
        raise ValueError("the architecture comparison is empty: compare at least one architecture")
    means = comparison.groupby("architecture")["val_auc"].mean()
    order = [a for a in ARCHITECTURES if a in means.index]
    return max(order, key=lambda a: (means[a], -order.index(a)))


def grid_search(
    cache: ImageCache,
    cohort: pd.DataFrame,
    *,
    diseases: Sequence[str],
    grid: Sequence[dict[str, float]],
    base: TrainConfig,
    task: str = "binary",
    device=None,
    progress: bool = True,
    launch: Launch | None = None,
) -> pd.DataFrame:
    """``grid_results.csv``: one row per finding and grid point with its validation AUC.

    A ``launch`` of several processes runs the search as a torchrun job.
    """
    check_task(task)
    if not grid:
        raise ValueError("the grid is empty: give at least one value per knob")
    if launch is not None and launch.distributed and world().size == 1:
        from cxrlib.classify import ddp

        return ddp.grid_search(
            cache, cohort, launch=launch, device=device, diseases=list(diseases),
            grid=[dict(point) for point in grid], base=base, task=task, progress=progress,
        )  # fmt: skip
    rows = []
    bar = progress_bar(grid, desc="grid", disable=not (progress and world().is_main))
    for k, point in enumerate(bar):
        configs = configs_for(task, diseases, {d: point for d in diseases}, replace(base))
        rows += _run(cache, cohort, configs, device=device, progress=False, extra={"grid_point": k})
    return pd.DataFrame(rows)


def best_params(grid_results: pd.DataFrame, *, task: str = "binary") -> pd.DataFrame:
    """``best_params.csv``: per finding, the grid point with the best validation AUC.

    Multilabel: one network serves every finding, so the point with the best mean AUC is
    chosen for all. Ties keep the earlier grid point (a NaN AUC never wins).
    """
    check_task(task)
    results = grid_results.copy()
    results["_score"] = results["val_auc"].fillna(-1.0)
    if task == "multilabel":
        means = results.groupby("grid_point", sort=True)["_score"].mean()
        point = int(means.idxmax())
        chosen = results[results["grid_point"] == point]
    else:
        order = results.sort_values(
            ["disease", "_score", "grid_point"], ascending=[True, False, True], kind="stable"
        )
        chosen = order.drop_duplicates("disease")
        findings = list(dict.fromkeys(grid_results["disease"]))
        chosen = chosen.set_index("disease").loc[findings].reset_index()
    return chosen.assign(task=task)[list(BEST_PARAMS_COLUMNS)].reset_index(drop=True)


def training_seconds(results: pd.DataFrame) -> float:
    """Total training time of a comparison or grid table (a shared network counted once)."""
    keys = [c for c in ("grid_point", "architecture", "model") if c in results.columns]
    return float(results.drop_duplicates(keys)["seconds"].sum())


def params_by_disease(best: pd.DataFrame) -> dict[str, dict[str, object]]:
    """``best_params.csv`` as {finding: {architecture, lr, weight_decay, batch_size, dropout}}."""
    missing = [c for c in ("disease", "architecture", *GRID_KEYS) if c not in best.columns]
    if missing:
        raise ValueError(f"best_params.csv lacks column(s) {missing}; re-run 02_cnn_tuning")
    keys = ["architecture", *GRID_KEYS]
    return {row["disease"]: {k: row[k] for k in keys} for row in best.to_dict("records")}


def config_summary(config: TrainConfig) -> dict[str, object]:
    """The config as a flat dict (for tables shown in notebooks)."""
    return {k: v for k, v in asdict(config).items() if k != "diseases"}
