"""Training loop of the paper (section 4.4): Adam, BCE-with-logits, early stopping, checkpoints.

``fit`` trains any :class:`~cxrlib.classify.zoo.Classifier` on loaders that yield the sample
contract of :mod:`cxrlib.images` (``{"image", "label", ...}``; label NaN = unknown, masked out
of the loss, which is what lets one multi-label network learn from per-disease cohorts).
Early stopping watches the validation AUC, keeps the best weights in memory and restores them
at the end. Mixed precision is used on CUDA only.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm import tqdm

from cxrlib.atomic import atomic_path, write_csv, write_json
from cxrlib.choices import LR_SCHEDULES, POS_WEIGHT_MODES
from cxrlib.classify.zoo import Classifier, create_model

#: Allowed values of ``TrainConfig.monitor`` (the early-stopping metric on validation).
MONITORS: tuple[str, ...] = ("auc", "loss")
HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_auc",
    "lr",
    "seconds",
    "is_best",
)


@dataclass
class TrainConfig:
    """Everything that made a model: stored in every checkpoint's JSON."""

    architecture: str = "resnet18"
    weights: str = "none"  # "none", "imagenet" or a local file
    dropout: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 20  # upper bound; early stopping decides
    patience: int = 5  # epochs without improvement before stopping
    min_delta: float = 1e-4  # smallest improvement of the monitored metric that counts
    monitor: str = "auc"
    pos_weight: str = "none"  # "balanced" weighs positives by negatives/positives
    lr_schedule: str = "constant"  # or "cosine" (see LR_SCHEDULES)
    image_size: int = 224
    in_chans: int = 1
    diseases: list[str] = field(default_factory=list)  # one per output logit
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pos_weight not in POS_WEIGHT_MODES:
            raise ValueError(
                f"pos_weight must be one of {list(POS_WEIGHT_MODES)}, got {self.pos_weight!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {list(MONITORS)}, got {self.monitor!r}")
        for name in ("lr", "max_epochs", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def build_model(self, *, weights: str | None = None) -> Classifier:
        """The untrained network this configuration describes (``weights`` overrides)."""
        return create_model(
            self.architecture,
            weights=self.weights if weights is None else weights,
            dropout=self.dropout,
            num_outputs=max(1, len(self.diseases)),
            in_chans=self.in_chans,
        )


@dataclass
class FitResult:
    """What ``fit`` leaves besides the trained (best-epoch) model."""

    history: pd.DataFrame
    best_epoch: int
    best_score: float
    stopped_early: bool
    seconds: float


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def balanced_pos_weight(labels: np.ndarray) -> torch.Tensor:
    """negatives / positives per output (labels (N,) or (N, K), NaN ignored); 1 when undefined."""
    y = np.asarray(labels, dtype=float)
    y = y.reshape(len(y), -1)
    pos = np.nansum(y == 1.0, axis=0).astype(float)
    neg = np.nansum(y == 0.0, axis=0).astype(float)
    weight = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1.0), 1.0)
    return torch.as_tensor(weight, dtype=torch.float32)


def masked_bce(
    logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean BCE-with-logits over the known (non-NaN) labels; 0 when none is known."""
    labels = labels.reshape(logits.shape).to(logits.dtype)
    known = ~torch.isnan(labels)
    target = torch.where(known, labels, torch.zeros_like(labels))
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none"
    )
    return (loss * known).sum() / known.sum().clamp(min=1)


def mean_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean AUC over outputs with both classes among the known labels; NaN when none has."""
    y = np.asarray(labels, dtype=float).reshape(len(labels), -1)
    p = np.asarray(probs, dtype=float).reshape(len(probs), -1)
    aucs = []
    for k in range(y.shape[1]):
        known = ~np.isnan(y[:, k])
        if len(np.unique(y[known, k])) == 2:
            aucs.append(roc_auc_score(y[known, k], p[known, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    *,
    device: torch.device | None = None,
    features: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(outputs (N, K) float32, labels (N, K)) over a loader; ``features=True`` returns the
    backbone features (N, D) instead of logits."""
    device = device or next(model.parameters()).device
    model.eval()
    outputs, labels = [], []
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        with _autocast(device):
            out = model.features(images) if features else model(images)
        outputs.append(out.float().cpu())
        labels.append(batch["label"].reshape(len(images), -1).float())
    if not outputs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()


def fit(
    model: Classifier,
    train_loader: Iterable[dict[str, Any]],
    val_loader: Iterable[dict[str, Any]],
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    pos_weight: torch.Tensor | None = None,
    log_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of the best validation epoch.

    ``pos_weight`` (one value per output) is used when ``config.pos_weight == "balanced"``
    (compute it with :func:`balanced_pos_weight` on the training labels). The per-epoch log is
    rewritten atomically to ``log_path`` (CSV) after every epoch.
    """
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
        if config.lr_schedule == "cosine"
        else None
    )
    weight = None
    if config.pos_weight == "balanced":
        if pos_weight is None:
            raise ValueError(
                "pos_weight='balanced' needs the pos_weight tensor: "
                "pass balanced_pos_weight(<training labels>)"
            )
        weight = pos_weight.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    sign = 1.0 if config.monitor == "auc" else -1.0
    best_score, best_epoch, best_state, wait = -math.inf, 0, None, 0
    rows: list[dict[str, Any]] = []
    stopped_early = False
    start = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        tick = time.perf_counter()
        train_loss = _train_epoch(model, train_loader, optimizer, scaler, weight, device)
        logits, labels = predict_logits(model, val_loader, device=device)
        val_loss = float(
            masked_bce(
                torch.from_numpy(logits),
                torch.from_numpy(labels),
                None if weight is None else weight.cpu(),
            )
        )
        val_auc = mean_auc(labels, 1.0 / (1.0 + np.exp(-logits)))
        score = sign * (val_auc if config.monitor == "auc" else val_loss)
        if not math.isfinite(score):  # single-class validation set: fall back to the loss
            score = -val_loss
        improved = score > best_score + config.min_delta
        if improved:
            best_score, best_epoch, wait = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            wait += 1
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_auc": val_auc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - tick,
                "is_best": improved,
            }
        )
        if schedule is not None:
            schedule.step()
        bar.set_postfix(loss=f"{train_loss:.3f}", val_auc=f"{val_auc:.3f}")
        if log_path is not None:
            write_csv(log_path, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))
        if wait >= config.patience:
            stopped_early = True
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return FitResult(
        history,
        best_epoch,
        sign * best_score if best_epoch else float("nan"),
        stopped_early,
        time.perf_counter() - start,
    )


def _train_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    pos_weight: torch.Tensor | None,
    device: torch.device,
) -> float:
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device):
            logits = model(images)
        loss = masked_bce(logits.float(), labels, pos_weight)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach()) * len(images)
        count += len(images)
    return total / max(count, 1)


def _autocast(device: torch.device) -> torch.autocast:
    # float16 autocast on CUDA only: CPU bfloat16 autocast is slower than float32 for these nets.
    return torch.autocast(
        device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda"
    )


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, config: TrainConfig, **extra: Any
) -> Path:
    """Weights to ``path`` (.safetensors) and the config (+ ``extra``) to the same name .json.

    Both files are written atomically; the JSON is written last.
    """
    target = Path(path)
    if target.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {target}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(target) as tmp:
        save_file(state, str(tmp))
    write_json(target.with_suffix(".json"), {"config": asdict(config), **extra})
    return target


def load_checkpoint(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu"
) -> tuple[Classifier, TrainConfig, dict[str, Any]]:
    """(model in eval mode, its TrainConfig, the extra fields) from :func:`save_checkpoint`."""
    target = Path(path)
    meta_path = target.with_suffix(".json")
    for file in (target, meta_path):
        if not file.is_file():
            raise FileNotFoundError(
                f"checkpoint file {file} not found; run the training stage (03_cnn_train_test) "
                "to create it"
            )
    meta = json.loads(meta_path.read_text())
    config = TrainConfig(**meta.pop("config"))
    model = config.build_model(weights="none")  # the checkpoint holds every weight
    model.load_state_dict(load_file(str(target), device="cpu"))
    return model.to(device).eval(), config, meta
