"""Report-model fine-tuning and generation as a torchrun job (several GPUs, several machines).

Backend ``hf`` only: transformers' ``Trainer`` (and TRL's ``SFTTrainer`` on top of it) run
DDP by themselves when started by torchrun, each process training on its share of every batch;
the kernel only starts the job. Rank 0 saves the one adapter; generation deals the batches out
to the processes and gathers the reports in order (:func:`~.generate.generate_reports`).
Unsloth's open-source release trains on one GPU, so the ``unsloth`` backend refuses more
than one process.

With one process (``launch`` None or of size 1) both functions run in the kernel, as
:func:`.stage.fine_tune` and :func:`.stage.generate_table` do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from .. import artifacts as a
from .. import distributed
from ..atomic import atomic_dir, atomic_path, write_csv
from ..distributed.launch import RESULT_DIR, Launch, check_global_batch, torchrun_job
from ..images.cache import ImageCache
from . import stage
from .backends import LoadedModel, LoraSettings
from .generate import load_finetuned
from .prompts import INSTRUCTION
from .train import (
    TRAINING_FILE,
    TrainResult,
    TrainSettings,
    _relative_base_model,
    portable_path,
)

TASKS: tuple[str, ...] = ("fine_tune", "generate")
_RESULT_FILE, _TABLE_FILE = "train_result.pkl", "generated.pkl"


def check_backend(backend: str, launch: Launch | None) -> None:
    """The ``unsloth`` backend trains on one GPU: a clear error for more processes."""
    if backend == "unsloth" and launch is not None and launch.distributed:
        raise ValueError(
            f"backend 'unsloth' trains on one GPU (Unsloth's open-source release has no "
            f"multi-GPU training), but {launch.world_size} processes were asked for: set "
            "nproc_per_node = 1 and nnodes = 1, or set backend = 'hf' in stage 04 to train on "
            "several GPUs with transformers' Trainer"
        )


def fine_tune(
    record: Mapping[str, Any],
    lora: LoraSettings,
    samples: pd.DataFrame,
    cache: ImageCache,
    settings: TrainSettings,
    out_dir: str | os.PathLike[str],
    *,
    launch: Launch | None = None,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    guided: bool = False,
    gradient_checkpointing: bool = False,
    progress: bool = True,
) -> tuple[LoadedModel, TrainResult]:
    """:func:`.stage.fine_tune` on the processes of ``launch``: the adapter and training log
    land in ``out_dir`` as there, and the fine-tuned model comes back loaded from them."""
    check_backend(record["backend"], launch)
    keywords = dict(instructions=instructions, guided=guided, progress=progress)
    if launch is None or not launch.distributed:
        return stage.fine_tune(
            record, lora, samples, cache, settings, out_dir,
            gradient_checkpointing=gradient_checkpointing, **keywords,
        )  # fmt: skip
    check_global_batch(settings.batch_size, launch)
    launch.check_device(record["device"])
    job = {
        "task": "fine_tune",
        "record": dict(record),
        "lora": lora.to_dict(),
        "settings": asdict(settings),
        "gradient_checkpointing": gradient_checkpointing,
        "cache": str(cache.root),
        **keywords,
    }
    out = Path(out_dir)
    log, adapter = a.TRAINING_LOG_FILES[guided], a.ADAPTER_DIRS[guided]
    with torchrun_job(__name__, job, launch, tables={"samples": samples}) as result:
        trained = pd.read_pickle(result / _RESULT_FILE)
        written = result / a.LLAMA_TRAINING
        write_csv(out / log, pd.read_csv(written / log))
        with atomic_dir(out / adapter) as tmp:
            shutil.copytree(written / adapter, tmp, dirs_exist_ok=True)
            _record_base_model(tmp, out / adapter, record)
    loaded = load_finetuned(
        record["path"],
        out / adapter,
        backend=record["backend"],
        device=record["device"],
        load_in_4bit=record["load_in_4bit"],
    )
    return loaded, trained


def generate_table(
    record: Mapping[str, Any],
    adapter_dir: str | os.PathLike[str],
    frame: pd.DataFrame,
    cache: ImageCache,
    *,
    launch: Launch,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`.stage.generate_table` with base model + saved adapter, the batches shared out
    over the processes of ``launch``."""
    job = {
        "task": "generate",
        "record": dict(record),
        "adapter": str(Path(adapter_dir).resolve()),
        "cache": str(cache.root),
        "instructions": instructions,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "progress": progress,
    }
    launch.check_device(record["device"])
    with torchrun_job(__name__, job, launch, tables={"frame": frame}) as result:
        return pd.read_pickle(result / _TABLE_FILE)


def _record_base_model(adapter_tmp: Path, adapter_dir: Path, record: Mapping[str, Any]) -> None:
    """Name the base model as :func:`.stage.fine_tune` does in the run folder (relative to the
    adapter when inside it), not as seen from the job's scratch folder."""
    run_dir = adapter_dir.parent.parent
    _relative_base_model(adapter_tmp, adapter_dir, run_dir)
    info = json.loads((adapter_tmp / TRAINING_FILE).read_text(encoding="utf-8"))
    info["model"]["path"] = portable_path(record["path"], adapter_dir, run_dir)
    (adapter_tmp / TRAINING_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


# --- inside the job: every rank ---------------------------------------------------------------
def run_job(
    job: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    result: Path | None,
    job_dir: Path | None = None,
) -> None:
    """Fine-tune (every rank trains, rank 0 saves) or generate (batches shared out)."""
    task = job["task"]
    if task not in TASKS:
        raise ValueError(f"unknown report-model job task {task!r}; known: {list(TASKS)}")
    cache = ImageCache.open(job["cache"])
    record = dict(job["record"])
    progress = bool(job["progress"]) and distributed.is_main()
    if task == "fine_tune":
        # every process of a machine shares the Trainer's checkpoint folder in here
        out = Path(job_dir) / RESULT_DIR / a.LLAMA_TRAINING
        _, trained = stage.fine_tune(
            record,
            LoraSettings(**job["lora"]),
            tables["samples"],
            cache,
            TrainSettings(**job["settings"]),
            out,
            instructions=job["instructions"],
            guided=job["guided"],
            gradient_checkpointing=job["gradient_checkpointing"],
            progress=progress,
        )
        if result is not None:
            _pickle(trained, result / _RESULT_FILE)
        return
    loaded = load_finetuned(
        record["path"],
        job["adapter"],
        backend=record["backend"],
        device=record["device"],
        load_in_4bit=record["load_in_4bit"],
    )
    table = stage.generate_table(
        loaded,
        tables["frame"],
        cache,
        instructions=job["instructions"],
        batch_size=job["batch_size"],
        max_new_tokens=job["max_new_tokens"],
        progress=progress,
    )
    if result is not None:
        _pickle(table, result / _TABLE_FILE)


def _pickle(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.to_pickle(obj, tmp, compression=None)
