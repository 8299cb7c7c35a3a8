"""CNN training of stages 02 and 03 as a torchrun job (several GPUs, several machines).

The notebook calls :func:`cxrlib.classify.experiment.train_all`,
:func:`~cxrlib.classify.tuning.compare_architectures` or :func:`~cxrlib.classify.tuning.grid_search`
with a :class:`~cxrlib.distributed.launch.Launch`; with more than one process they come here.
The kernel sends the call's settings (JSON) and the cohort to a torchrun job whose every
process runs :func:`run_job`, i.e. the very same library function, now inside a process group
(see :mod:`cxrlib.classify.train` for what changes there). Rank 0 writes the results
(checkpoints, histories, tables) into the job's private folder; the kernel reads them back and
returns what the in-kernel call returns, so the notebook's later cells do not know the
difference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cxrlib import distributed
from cxrlib.atomic import atomic_path, write_csv
from cxrlib.classify import experiment, tuning
from cxrlib.classify.train import FitResult, TrainConfig, load_checkpoint, save_checkpoint
from cxrlib.distributed.launch import Launch, check_global_batch, torchrun_job
from cxrlib.images.cache import ImageCache

#: The functions a job can run, each with the keywords it forwards.
TASKS: tuple[str, ...] = ("train_all", "compare_architectures", "grid_search")
_TABLE, _HISTORY = "table.pkl", ".history.pkl"
#: The module whose ``run_job`` the processes run: this one.
_ENTRY = __name__


def train_all(
    cache: ImageCache,
    cohort: pd.DataFrame,
    configs: Sequence[TrainConfig],
    *,
    launch: Launch,
    device: torch.device | str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> list[experiment.TrainedModel]:
    """:func:`experiment.train_all` on the processes of ``launch``; the models come back with
    the weights of their best epoch, on ``device``, with their per-epoch logs in ``log_dir``."""
    for config in configs:
        check_global_batch(config.batch_size, launch)
    settings = {"configs": [asdict(c) for c in configs], "progress": progress}
    device = _device(device)
    with _job("train_all", settings, launch, cache, cohort, device) as result:
        models = []
        for config in configs:
            name = experiment.model_name(config)
            model, trained_config, meta = load_checkpoint(result / f"{name}.safetensors")
            history = pd.read_pickle(result / f"{name}{_HISTORY}")
            fit = FitResult(
                history,
                meta["best_epoch"],
                float(meta["best_score"]),
                meta["stopped_early"],
                meta["seconds"],
                meta["processes"],
            )
            models.append(experiment.TrainedModel(model.to(device), trained_config, fit))
            if log_dir is not None:
                write_csv(Path(log_dir) / f"{name}.csv", history)
    return models


def compare_architectures(
    cache: ImageCache, cohort: pd.DataFrame, *, launch: Launch, device=None, **kwargs: Any
) -> pd.DataFrame:
    """:func:`tuning.compare_architectures` on the processes of ``launch``."""
    check_global_batch(kwargs["base"].batch_size, launch)
    return _table("compare_architectures", cache, cohort, launch, device, kwargs)


def grid_search(
    cache: ImageCache, cohort: pd.DataFrame, *, launch: Launch, device=None, **kwargs: Any
) -> pd.DataFrame:
    """:func:`tuning.grid_search` on the processes of ``launch``."""
    for point in kwargs["grid"]:
        check_global_batch(int(point["batch_size"]), launch, what="grid_batch_size")
    return _table("grid_search", cache, cohort, launch, device, kwargs)


def _table(task, cache, cohort, launch, device, kwargs) -> pd.DataFrame:
    settings = {**kwargs, "base": asdict(kwargs["base"])}
    with _job(task, settings, launch, cache, cohort, _device(device)) as result:
        return pd.read_pickle(result / _TABLE)


def _job(task, settings, launch, cache, cohort, device):
    launch.check_device(device.type)
    settings = {**settings, "job": task, "cache": str(cache.root), "device": device.type}
    return torchrun_job(_ENTRY, settings, launch, tables={"cohort": cohort})


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else experiment.default_device()


# --- inside the job: every rank ---------------------------------------------------------------
def run_job(
    settings: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    result: Path | None,
    job_dir: Path | None = None,
) -> None:
    """Run the settings' job in this process; rank 0 (``result`` given) writes its outputs."""
    task = settings["job"]
    if task not in TASKS:
        raise ValueError(f"unknown CNN job task {task!r}; known: {list(TASKS)}")
    cache = ImageCache.open(settings["cache"])
    cohort = tables["cohort"]
    device = distributed.device_for(settings["device"])
    progress = bool(settings.get("progress", True)) and distributed.is_main()
    if task == "train_all":
        configs = [TrainConfig(**c) for c in settings["configs"]]
        models = experiment.train_all(cache, cohort, configs, device=device, progress=progress)
        if result is not None:
            for trained in models:
                _save(result, trained)
        return
    kwargs = {k: v for k, v in settings.items() if k not in ("job", "cache", "device")}
    kwargs["base"] = TrainConfig(**kwargs["base"])
    kwargs["progress"] = progress
    function = getattr(tuning, task)
    table = function(cache, cohort, device=device, **kwargs)
    if result is not None:
        _pickle(table, result / _TABLE)


def _pickle(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_pickle(tmp, compression=None)


def _save(result: Path, trained: experiment.TrainedModel) -> None:
    name = experiment.model_name(trained.config)
    fit = trained.fit
    # the history first: the checkpoint's JSON, written last, says the model is complete
    _pickle(fit.history, result / f"{name}{_HISTORY}")
    save_checkpoint(
        result / f"{name}.safetensors",
        trained.model,
        trained.config,
        best_epoch=fit.best_epoch,
        best_score=fit.best_score,
        stopped_early=fit.stopped_early,
        seconds=fit.seconds,
        processes=fit.processes,
    )
