"""LoRA fine-tuning with validation loss and early stopping; the adapter is what is saved.

Trainer choice: TRL's ``SFTTrainer`` where it runs (CUDA; with Unsloth's vision collator for the
``unsloth`` backend, with ours for ``hf``), transformers' ``Trainer`` with the same collator on
the CPU, where TRL 1.15's SFTTrainer fails in its Triton loss kernel. Both get the same
arguments: evaluation every ``eval_steps``, the best checkpoint by validation loss restored at
the end, and ``EarlyStoppingCallback`` stopping after ``patience`` evaluations without
improvement.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import TrainerCallback

from cxrlib.progress import progress_bar

from .. import distributed
from ..atomic import atomic_dir, write_json
from .backends import LoadedModel, quiet_transformers
from .collator import ReportCollator, reset_call_settings

#: File beside the adapter recording how it was trained.
TRAINING_FILE = "training.json"
#: peft's adapter configuration file and its key naming the base model
ADAPTER_CONFIG_FILE, BASE_MODEL_KEY = "adapter_config.json", "base_model_name_or_path"
LOG_COLUMNS: tuple[str, ...] = ("step", "epoch", "train_loss", "val_loss", "lr")
TRAINERS: tuple[str, ...] = ("sft", "trainer")


@dataclass(frozen=True)
class TrainSettings:
    """Training hyperparameters; defaults are the paper's (batch 8 x accumulation 4, ...)."""

    max_epochs: float = 2.0  # upper bound; max_steps and early stopping may end sooner
    max_steps: int = 200
    batch_size: int = 8
    grad_accum: int = 4
    lr: float = 1e-4
    warmup_steps: int = 5
    weight_decay: float = 0.001
    lr_scheduler: str = "linear"
    eval_steps: int = 10  # optimizer steps between validation-loss evaluations
    patience: int = 3  # evaluations without improvement before stopping; 0 = off, keep the last
    max_length: int = 1024  # tokens per conversation (the report end is truncated)
    seed: int = 3407
    mixed_precision: bool = True  # bf16 (or fp16) on CUDA; ignored on the CPU
    augment: bool = False  # random rotation, shift, zoom and exposure of training images

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "eval_steps", "max_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0 = no early stopping), got {self.patience}")
        if self.lr <= 0 or self.max_epochs <= 0:
            raise ValueError(
                "lr and max_epochs must be positive, got "
                f"lr={self.lr}, max_epochs={self.max_epochs}"
            )


@dataclass
class TrainResult:
    """What training did: per-step log, best validation loss, steps, wall time."""

    log: pd.DataFrame
    steps: int
    planned_steps: int
    best_step: int | None
    best_val_loss: float | None
    stopped_early: bool
    seconds: float
    trainer: str
    processes: int = 1  # processes the Trainer trained on (its DDP world in a torchrun job)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (without the log)."""
        out = {k: v for k, v in asdict(self).items() if k != "log"}
        out["first_val_loss"] = _first(self.log, "val_loss")
        out["last_train_loss"] = _last(self.log, "train_loss")
        return out


def planned_steps(n_train: int, settings: TrainSettings) -> int:
    """Optimizer steps: ``max_epochs`` passes over the data, capped at ``max_steps``."""
    if n_train < 1:
        raise ValueError("training needs at least one training sample, got none")
    per_epoch = math.ceil(n_train / (settings.batch_size * settings.grad_accum))
    return max(1, min(settings.max_steps, math.ceil(settings.max_epochs * per_epoch)))


def trainer_kind(backend: str, device: str) -> str:
    """``sft`` (TRL) on CUDA, ``trainer`` (transformers) on the CPU."""
    return "sft" if device == "cuda" else "trainer"


def train_adapter(
    loaded: LoadedModel,
    train_data: torch.utils.data.Dataset,
    val_data: torch.utils.data.Dataset,
    settings: TrainSettings,
    *,
    work_dir: str | os.PathLike[str],
    progress: bool = True,
) -> TrainResult:
    """Fine-tune the LoRA adapters of ``loaded.model`` in place; return the log and summary.

    With ``patience > 0`` training stops after that many evaluations without a lower
    validation loss and the best adapter is loaded back; with ``patience == 0`` it runs
    ``planned_steps`` and keeps the last weights. ``work_dir`` holds intermediate checkpoints
    and is removed at the end.
    """
    from transformers import EarlyStoppingCallback

    steps = planned_steps(len(train_data), settings)
    kind = trainer_kind(loaded.backend, loaded.device)
    work = Path(work_dir)
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    with quiet_transformers():
        trainer = _make_trainer(loaded, train_data, val_data, settings, steps, kind, work)
        if settings.patience > 0:
            trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=settings.patience))
        replace_progress(trainer, progress, desc="fine-tuning (LoRA)")
        try:
            if loaded.backend == "unsloth":
                from unsloth import FastVisionModel

                FastVisionModel.for_training(loaded.model)
            # validation loss before any update: the curve's starting point (train() resets
            # the trainer's log, so it is kept here)
            initial = {"step": 0, "epoch": 0.0, **trainer.evaluate()}
            trainer.train()
        finally:
            distributed.barrier()  # in a torchrun job: every rank has read the best checkpoint
            if distributed.world().local_rank == 0:
                shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - start
    state = trainer.state
    log = training_log([initial, *state.log_history])
    restored = settings.patience > 0 and state.best_metric is not None
    return TrainResult(
        log=log,
        steps=int(state.global_step),
        planned_steps=steps,
        best_step=_best_step(state) if restored else int(state.global_step),
        best_val_loss=float(state.best_metric) if restored else _last(log, "val_loss"),
        stopped_early=int(state.global_step) < steps,
        seconds=round(seconds, 1),
        trainer=kind,
        processes=int(trainer.args.world_size),
    )


def _make_trainer(loaded, train_data, val_data, settings, steps, kind, work):
    # batch_size is the global batch: in a torchrun job each process takes its share (the
    # Trainer runs DDP there and averages the gradients)
    processes = distributed.world().size
    per_process = max(1, settings.batch_size // processes)
    args = trainer_arguments(
        work,
        batch_size=per_process,
        steps=steps,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        scheduler=settings.lr_scheduler,
        seed=settings.seed,
        use_cpu=loaded.device == "cpu",
    )
    args.update(
        per_device_eval_batch_size=per_process,
        # each machine's first process keeps the checkpoints its processes read back
        save_on_each_node=processes > 1,
        gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.max_epochs,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        save_strategy="steps" if settings.patience > 0 else "no",
        save_steps=settings.eval_steps,
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=settings.patience > 0,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        remove_unused_columns=False,  # the collator needs the raw "messages"
        optim=_optimizer(loaded.device),
    )
    if loaded.device == "cuda" and settings.mixed_precision:
        bf16 = torch.cuda.is_bf16_supported()
        args.update(bf16=bf16, fp16=not bf16)
    if loaded.backend == "unsloth":
        from unsloth.trainer import UnslothVisionDataCollator

        collator = UnslothVisionDataCollator(loaded.model, loaded.processor)
    else:
        collator = ReportCollator(loaded.processor, max_length=settings.max_length)
    common = dict(
        model=loaded.model,
        train_dataset=train_data,
        eval_dataset=val_data,
        data_collator=collator,
        processing_class=loaded.processor,
    )
    if kind == "sft":
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(
            **args,
            dataset_text_field="",
            dataset_kwargs={"skip_prepare_dataset": True},
            max_length=settings.max_length,
        )
        return SFTTrainer(args=config, **common)
    from transformers import Trainer, TrainingArguments

    return Trainer(args=TrainingArguments(**args), **common)


def trainer_arguments(
    work_dir: str | os.PathLike[str],
    *,
    batch_size: int,
    steps: int,
    lr: float,
    warmup_steps: int,
    weight_decay: float,
    scheduler: str,
    seed: int,
    use_cpu: bool,
) -> dict[str, Any]:
    """``TrainingArguments`` keywords shared by fine-tuning and the tiny model's pre-training:
    the schedule, seeds, no reporting, no saving, no dataloader workers."""
    return dict(
        output_dir=str(work_dir),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=lr,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        lr_scheduler_type=scheduler,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        use_cpu=use_cpu,
    )


def _optimizer(device: str) -> str:
    """8-bit AdamW on CUDA with bitsandbytes (as Unsloth's example), plain AdamW otherwise."""
    import importlib.util

    if device == "cuda" and importlib.util.find_spec("bitsandbytes") is not None:
        return "adamw_8bit"
    return "adamw_torch"


def replace_progress(trainer: Any, progress: bool, desc: str = "training") -> None:
    """One tqdm bar with the latest losses instead of a printed dict per logging step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    # in a Jupyter kernel Trainer picks NotebookProgressCallback, whose HTML loss tables
    # would land in the notebook's outputs beside our bar
    for callback in (ProgressCallback, NotebookProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    if progress:
        trainer.add_callback(_LossBar(desc))


class _LossBar(TrainerCallback):
    """A tqdm bar over optimizer steps showing the last train/validation loss."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None
        self.postfix: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = progress_bar(total=state.max_steps, desc=self.desc, unit="step", mininterval=2.0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        for key, name in (("loss", "train"), ("eval_loss", "val")):
            if key in logs:
                self.postfix[name] = round(float(logs[key]), 3)
        if self.bar is not None and self.postfix:
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def training_log(history: list[dict[str, Any]]) -> pd.DataFrame:
    """Trainer's log history as one row per step: ``step,epoch,train_loss,val_loss,lr``."""
    rows: dict[int, dict[str, Any]] = {}
    for entry in history:
        step = int(entry.get("step", 0))
        row = rows.setdefault(step, {"step": step})
        if "epoch" in entry:
            row["epoch"] = float(entry["epoch"])
        if "loss" in entry:
            row["train_loss"] = float(entry["loss"])
        if "eval_loss" in entry:
            row["val_loss"] = float(entry["eval_loss"])
        if "learning_rate" in entry:
            row["lr"] = float(entry["learning_rate"])
    frame = pd.DataFrame(list(rows.values()), columns=list(LOG_COLUMNS))
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def save_adapter(
    loaded: LoadedModel,
    out_dir: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Save the LoRA adapter + processor (+ ``training.json``) atomically into ``out_dir``.

    peft records the base model's path in ``adapter_config.json``; a base model inside
    ``run_dir`` (stage 04's offline model) is recorded relative to the adapter folder, so a
    moved or copied run folder does not point at the old place.
    """
    reset_call_settings(loaded.tokenizer)
    with atomic_dir(out_dir) as tmp, quiet_transformers():
        loaded.model.save_pretrained(tmp)
        loaded.processor.save_pretrained(tmp)
        if run_dir is not None:
            _relative_base_model(tmp, Path(out_dir), Path(run_dir))
        write_json(tmp / TRAINING_FILE, metadata or {})
    return Path(out_dir)


def portable_path(path: str | os.PathLike[str], start: Path, run_dir: Path) -> str:
    """``path`` relative to ``start`` when it lies inside ``run_dir``, else unchanged."""
    target = Path(path)
    if target.is_absolute() and target.resolve().is_relative_to(run_dir.resolve()):
        return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()
    return str(path)


def _relative_base_model(adapter_tmp: Path, adapter_dir: Path, run_dir: Path) -> None:
    """Rewrite the base model's path in peft's config and model card (README.md)."""
    config_file = adapter_tmp / ADAPTER_CONFIG_FILE
    config = json.loads(config_file.read_text(encoding="utf-8"))
    base = config.get(BASE_MODEL_KEY)
    relative = portable_path(base, adapter_dir, run_dir) if base else base
    if not base or relative == base:
        return
    config[BASE_MODEL_KEY] = relative
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    card = adapter_tmp / "README.md"
    if card.is_file():
        card.write_text(card.read_text(encoding="utf-8").replace(base, relative))


def loss_curve_figure(logs: Mapping[str, pd.DataFrame] | pd.DataFrame):
    """Training and validation loss against the optimizer step, one colour per run."""
    import matplotlib.pyplot as plt

    if isinstance(logs, pd.DataFrame):
        logs = {"": logs}
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (name, log) in enumerate(logs.items()):
        color = f"C{i}"
        label = f"{name} " if name else ""
        train = log.dropna(subset=["train_loss"])
        val = log.dropna(subset=["val_loss"])
        ax.plot(train["step"], train["train_loss"], color=color, lw=1, alpha=0.6,
                label=f"{label}train")  # fmt: skip
        ax.plot(val["step"], val["val_loss"], "o-", color=color, ms=4, label=f"{label}validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (report tokens)")
    ax.set_title("LoRA fine-tuning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _best_step(state: Any) -> int | None:
    step = getattr(state, "best_global_step", None)
    if step is not None:
        return int(step)
    checkpoint = getattr(state, "best_model_checkpoint", None)
    return int(str(checkpoint).rsplit("-", 1)[-1]) if checkpoint else None


def _first(log: pd.DataFrame, column: str) -> float | None:
    values = log[column].dropna()
    return None if values.empty else float(values.iloc[0])


def _last(log: pd.DataFrame, column: str) -> float | None:
    values = log[column].dropna()
    return None if values.empty else float(values.iloc[-1])
