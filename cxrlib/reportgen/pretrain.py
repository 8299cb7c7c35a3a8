"""Text-only pre-training of the tiny model's language model.

The real Llama-3.2-Vision-Instruct arrives knowing language and its chat format; a randomly
initialised stand-in does not, and LoRA (a low-rank update of frozen weights) learns a language
from scratch far too slowly for a CPU demo. So the tiny model gets a short causal-LM
pre-training of all its text weights on text-only conversations (instruction -> training
report) before it is saved. Without pixels the cross-attention layers are skipped
(transformers' Mllama text-only path), so they and the vision tower stay random: reading the
image is left to the LoRA fine-tuning of stage 05, as in the paper.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .tiny_model import IMAGE


@dataclass(frozen=True)
class PretrainSettings:
    """Causal-LM pre-training of the text model (all text weights, AdamW, linear decay)."""

    steps: int = 150
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 10
    weight_decay: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(
                "pre-training needs steps >= 0, batch_size >= 1 and lr > 0, got "
                f"steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (recorded beside the model)."""
        return asdict(self)


class _TextDataset(torch.utils.data.Dataset):
    def __init__(self, ids: list[list[int]]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.ids[index]}


def pretrain_text(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    settings: PretrainSettings,
    *,
    work_dir: str | os.PathLike[str],
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``model``'s text weights on ``texts`` (complete, special tokens written in them);
    return the loss log.

    Only parameters the text-only forward pass reaches change (embeddings, self-attention
    layers, norms, LM head); ``work_dir`` is scratch space, removed at the end.
    """
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from .backends import quiet_transformers
    from .train import replace_progress, trainer_arguments

    if settings.steps == 0:
        return pd.DataFrame(columns=["step", "loss"])
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts if t]
    if not ids:
        raise ValueError("pre-training needs texts, got none")
    work = Path(work_dir)
    args = TrainingArguments(
        **trainer_arguments(
            work,
            batch_size=settings.batch_size,
            steps=settings.steps,
            lr=settings.lr,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            scheduler="linear",
            seed=settings.seed,
            use_cpu=not torch.cuda.is_available(),
        ),
        logging_steps=10,
    )
    pad_and_label = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)

    def collate(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = pad_and_label(features)
        # <|image|> lies outside the LM head: never a label (padding is already masked)
        batch["labels"][batch["input_ids"] == image_id] = -100
        return batch

    with quiet_transformers():
        trainer = Trainer(
            model=model, args=args, train_dataset=_TextDataset(ids), data_collator=collate
        )
        replace_progress(trainer, progress, desc="pre-training (text)")
        try:
            trainer.train()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    model.eval()
    rows = [
        {"step": int(e["step"]), "loss": float(e["loss"])}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    return pd.DataFrame(rows, columns=["step", "loss"])
