"""``python -m cxrlib.reportgen.pretrain_tiny --out DIR``: pre-train the tiny Llama-3.2-Vision.

The paper fine-tunes a model that already reads images and writes text; a randomly
initialised stand-in cannot learn to see within a CPU demo's fine-tuning. This script gives
the demo a pre-trained stand-in: the tiny ``MllamaForConditionalGeneration`` (vision tower,
cross-attention and language model, all weights trained) learns from image-report pairs of a
synthetic look-alike of its own (:mod:`.pretrain_data`: its own seed, no subject of the
profiles' data) in a curriculum of phases, each a mix of two conversation tasks on the same
images:

- *captions*: a short instruction -> "pneumonia no. pleural effusion yes. ..." - every finding
  called in every sample, so the vision path gets a dense signal from the first step;
- *reports*: the paper's instruction -> findings and impression, the task the demo fine-tunes.

Training images get the report model's augmentation (:func:`.dataset.report_augmentation`).
The result is an ordinary model folder (safetensors weights, config, generation config,
tokenizer, processor) plus ``pretraining_log.csv`` and a model card (``README.md``: data,
seed, steps, losses, the project commit, the sha256 of every file). The project ships one,
made by this script with its defaults, in ``cxrlib/reportgen/pretrained/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm
from transformers import TrainerCallback

from ..atomic import atomic_dir, write_csv, write_json, write_text
from ..cli import run_cli
from ..paths import PROJECT_ROOT
from .collator import ReportCollator
from .dataset import report_augmentation
from .model_card import CARD_FILE, files_table, folder_digests
from .pretrain_data import (
    CAPTION_FINDINGS,
    CAPTION_INSTRUCTION,
    PretrainingData,
    PretrainingSet,
    build_pretraining_set,
    profile_subject_ids,
)
from .prompts import INSTRUCTION, build_conversation
from .tiny_model import SPEC_FILE, TinyModelSpec, new_tiny_model, save_model, train_tokenizer

LOG_FILE = "pretraining_log.csv"
TASKS: tuple[str, ...] = ("captions", "reports")


@dataclass(frozen=True)
class Phase:
    """One stage of the curriculum: ``steps`` optimizer steps at peak ``lr`` (linear warm-up,
    cosine decay) on a mix of the two tasks, ``caption_share`` of the samples captions.

    ``finding_weight`` draws samples with probability proportional to 1 + finding_weight x
    (findings its caption calls present): greedy decoding states a finding only where the
    model finds it more likely than not, so a model that saw findings at their rate states
    the rarer ones too seldom; weighting studies with findings up makes it say them more
    readily (see the model card for the measured effect).
    """

    name: str
    steps: int
    lr: float
    caption_share: float
    finding_weight: float = 0.0

    def __post_init__(self) -> None:
        if (
            self.steps < 1
            or self.lr <= 0
            or not 0.0 <= self.caption_share <= 1.0
            or self.finding_weight < 0
        ):
            raise ValueError(
                f"phase {self.name!r} needs steps >= 1, lr > 0, 0 <= caption_share <= 1 and "
                f"finding_weight >= 0, got steps={self.steps}, lr={self.lr}, "
                f"caption_share={self.caption_share}, finding_weight={self.finding_weight}"
            )


def _default_spec() -> TinyModelSpec:
    return TinyModelSpec(image_size=64, patch_size=8)


def _default_phases() -> tuple[Phase, ...]:
    return (
        Phase("captions", steps=2600, lr=3e-3, caption_share=1.0),
        Phase("reports", steps=2600, lr=2e-3, caption_share=0.25, finding_weight=1.0),
    )


@dataclass(frozen=True)
class Recipe:
    """Model sizes and the curriculum."""

    spec: TinyModelSpec = field(default_factory=_default_spec)
    phases: tuple[Phase, ...] = field(default_factory=_default_phases)
    batch_size: int = 32
    warmup_steps: int = 50
    weight_decay: float = 0.01
    augment: bool = True
    eval_steps: int = 250  # optimizer steps between validation losses
    max_length: int = 384  # tokens per conversation
    seed: int = 0  # weights, sample order, task draws and augmentation

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (recorded in the model card)."""
        return asdict(self)


class PretrainingConversations(torch.utils.data.Dataset):
    """The samples of one split as conversations of one task or a random mix.

    ``caption_share`` is the chance that an item is the caption task (drawn from torch's
    global generator at each access, like the augmentation, so a sample is seen as both).
    ``order`` (sample indices, e.g. weighted draws) replaces the samples' own order.
    """

    def __init__(
        self,
        samples: pd.DataFrame,
        images: np.ndarray,
        caption_share: float,
        *,
        augment: bool,
        order: np.ndarray | None = None,
    ) -> None:
        self.captions = samples["caption"].tolist()
        self.reports = samples["report"].tolist()
        self.images = images
        self.caption_share = caption_share
        self.order = np.arange(len(self.reports)) if order is None else np.asarray(order)
        self._augment = report_augmentation() if augment else None

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, item: int) -> dict[str, Any]:
        index = int(self.order[item])
        image = Image.fromarray(self.images[index]).convert("RGB")
        if self._augment is not None:
            image = self._augment(image)
        caption = self.caption_share >= 1.0 or (
            self.caption_share > 0.0 and float(torch.rand(())) < self.caption_share
        )
        if caption:
            messages = build_conversation(image, CAPTION_INSTRUCTION, self.captions[index])
        else:
            messages = build_conversation(image, INSTRUCTION, self.reports[index])
        return {"messages": messages}


class _PrintValidation(TrainerCallback):
    """One printed line per evaluation with the validation loss of each task."""

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        losses = ", ".join(
            f"{task} {metrics[f'eval_{task}_loss']:.3f}"
            for task in TASKS
            if f"eval_{task}_loss" in (metrics or {})
        )
        tqdm.write(f"{self.phase} step {state.global_step}: validation loss {losses}")


def train_phases(
    model: Any,
    processor: Any,
    data: PretrainingSet,
    recipe: Recipe,
    *,
    work_dir: str | os.PathLike[str],
    progress: bool = True,
) -> pd.DataFrame:
    """Train every parameter of ``model`` through the curriculum; return the loss log
    (``phase,step,train_loss,val_captions_loss,val_reports_loss``, step counted over phases)."""
    from transformers import Trainer, TrainingArguments

    from .backends import quiet_transformers
    from .train import replace_progress, trainer_arguments

    train, train_images = data.split("train")
    val, val_images = data.split("validate")
    evaluation = {
        task: PretrainingConversations(val, val_images, float(task == "captions"), augment=False)
        for task in TASKS
    }
    collator = ReportCollator(processor, max_length=recipe.max_length)
    rows: list[dict[str, Any]] = []
    done = 0
    model.train()
    for number, phase in enumerate(recipe.phases):
        order = None
        if phase.finding_weight > 0:
            order = weighted_draws(
                train["caption"], phase.finding_weight, phase.steps * recipe.batch_size,
                seed=recipe.seed + number,
            )  # fmt: skip
        dataset = PretrainingConversations(
            train, train_images, phase.caption_share, augment=recipe.augment, order=order
        )
        args = trainer_arguments(
            Path(work_dir) / phase.name,
            batch_size=recipe.batch_size,
            steps=phase.steps,
            lr=phase.lr,
            warmup_steps=min(recipe.warmup_steps, phase.steps // 10),
            weight_decay=recipe.weight_decay,
            scheduler="cosine",
            seed=recipe.seed + number,
            use_cpu=not torch.cuda.is_available(),
        )
        args.update(
            per_device_eval_batch_size=64,
            eval_strategy="steps",
            eval_steps=min(recipe.eval_steps, phase.steps),
            logging_steps=10,
            remove_unused_columns=False,  # the collator needs the raw "messages"
            max_grad_norm=1.0,
        )
        with quiet_transformers():
            trainer = Trainer(
                model=model,
                args=TrainingArguments(**args),
                train_dataset=dataset,
                eval_dataset=evaluation,
                data_collator=collator,
            )
            replace_progress(trainer, progress, desc=f"pre-training: {phase.name}")
            trainer.add_callback(_PrintValidation(phase.name))
            trainer.train()
        for entry in trainer.state.log_history:
            row = {"phase": phase.name, "step": done + int(entry.get("step", 0))}
            if "loss" in entry:
                row["train_loss"] = float(entry["loss"])
            for task in TASKS:
                if f"eval_{task}_loss" in entry:
                    row[f"val_{task}_loss"] = float(entry[f"eval_{task}_loss"])
            if len(row) > 2:
                rows.append(row)
        done += phase.steps
    model.eval()
    columns = ["phase", "step", "train_loss", *[f"val_{t}_loss" for t in TASKS]]
    log = pd.DataFrame(rows, columns=columns)
    return log.groupby(["phase", "step"], sort=False, as_index=False).first()


def weighted_draws(
    captions: Sequence[str], finding_weight: float, size: int, *, seed: int = 0
) -> np.ndarray:
    """``size`` sample indices drawn with replacement, each with probability proportional to
    1 + ``finding_weight`` x (findings its caption calls present)."""
    found = np.array([c.count(" yes.") for c in captions], dtype=float)
    weights = 1.0 + finding_weight * found
    rng = np.random.default_rng(seed)
    return rng.choice(len(weights), size=size, replace=True, p=weights / weights.sum())


def project_commit() -> str:
    """The project's git commit (``+ uncommitted changes`` when the tree differs), or
    ``unknown`` outside a git checkout."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes" if dirty else "")


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def pretrain(
    out_dir: str | os.PathLike[str],
    *,
    data: PretrainingData | None = None,
    recipe: Recipe | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Build the pre-training set, train the tiny model through the curriculum and write the
    model folder with its card into ``out_dir`` (atomically). ``work_dir`` keeps the
    generated release and image cache for a re-run (a temporary folder, removed, if None)."""
    data = data or PretrainingData()
    recipe = recipe or Recipe()
    start = time.perf_counter()
    scratch = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="cxrlib-pretrain-"))
    try:
        excluded = profile_subject_ids()
        pairs = build_pretraining_set(
            scratch / "data", data, exclude_subject_ids=excluded, workers=workers,
            progress=progress,
        )  # fmt: skip
        train, _ = pairs.split("train")
        texts = [f"{INSTRUCTION}\n{r}" for r in train["report"]]
        texts += [f"{CAPTION_INSTRUCTION}\n{c}" for c in train["caption"]]
        tokenizer = train_tokenizer(texts, recipe.spec.vocab_size)
        model, processor = new_tiny_model(recipe.spec, tokenizer, recipe.seed)
        log = train_phases(
            model, processor, pairs, recipe, work_dir=scratch / "trainer", progress=progress
        )
        seconds = time.perf_counter() - start
        with atomic_dir(out_dir) as tmp:
            save_model(model, processor, tmp)
            write_json(
                tmp / SPEC_FILE,
                {
                    "spec": asdict(recipe.spec),
                    "seed": recipe.seed,
                    "n_parameters": sum(p.numel() for p in model.parameters()),
                    "pretraining": "cxrlib.reportgen.pretrain_tiny (see README.md)",
                },
            )
            write_csv(tmp / LOG_FILE, log)
            write_text(
                tmp / CARD_FILE,
                model_card(
                    tmp, data=data, recipe=recipe, pairs=pairs, log=log, seconds=seconds,
                    n_parameters=sum(p.numel() for p in model.parameters()),
                ),
            )  # fmt: skip
    finally:
        if not work_dir:
            shutil.rmtree(scratch, ignore_errors=True)
    return Path(out_dir)


def model_card(
    folder: Path,
    *,
    data: PretrainingData,
    recipe: Recipe,
    pairs: PretrainingSet,
    log: pd.DataFrame,
    seconds: float,
    n_parameters: int,
) -> str:
    """The card's markdown text (the files table covers what ``folder`` holds now)."""
    counts = pairs.samples["split"].value_counts()
    spec = recipe.spec
    phases = "\n".join(
        f"| {p.name} | {p.steps} | {p.lr:g} | {p.caption_share:g} | {p.finding_weight:g} | "
        f"{_last(log, p.name, 'train_loss')} | {_last(log, p.name, 'val_captions_loss')} | "
        f"{_last(log, p.name, 'val_reports_loss')} |"
        for p in recipe.phases
    )
    return f"""# Tiny Llama-3.2-Vision for chest X-ray reports (cxrlib demo model)

A {n_parameters / 1e6:.1f} M-parameter `MllamaForConditionalGeneration` (the architecture of
Llama-3.2-11B-Vision-Instruct: vision tower, projector, language model with cross-attention
layers) pre-trained on synthetic chest radiographs and reports, so that the cxrlib demo
fine-tunes, as the paper does, a model that already reads the image. It knows nothing of real
radiographs and is not a medical device.

Made by `python -m cxrlib.reportgen.pretrain_tiny` at project commit `{project_commit()}`
in {seconds / 60:.1f} min on {os.cpu_count()} CPU cores (torch {torch.__version__},
{platform.machine()}).

## Data
A synthetic MIMIC-CXR look-alike (`cxrlib.mimic.synth`) of its own:
`{json.dumps(data.to_dict())}`. Its subject ids avoid the {pairs.excluded_subjects} ids of the
synthetic releases of the project's profiles (demo, tiny and the notebooks' defaults), so no
patient of the data the demo fine-tunes and tests on was seen here. Preprocessed as stage 01
does (one PA image per study with findings or impression, patient-level split, cached at
{data.image_size} px): {counts.get("train", 0)} training and {counts.get("validate", 0)}
validation image-report pairs.

## Model
`{json.dumps(asdict(spec))}`: one {spec.image_size} px tile in
{(spec.image_size // spec.patch_size) ** 2} patches of {spec.patch_size} px; a byte-level BPE
tokenizer ({spec.vocab_size} tokens) trained on the training texts with Llama-3's special
tokens and chat format; `<|image|>` just past the text vocabulary, as in the real model.

## Training
Every parameter trained with AdamW (weight decay {recipe.weight_decay}, batch
{recipe.batch_size}, warm-up then cosine decay per phase, gradient norm clipped at 1, seed
{recipe.seed}), training images augmented (small rotations, shifts, zooms, exposure; no flip)
= {recipe.augment}. Two tasks on the same images: *captions* ("{CAPTION_INSTRUCTION}" ->
"pneumonia no. pleural effusion yes. ..." for {", ".join(CAPTION_FINDINGS)}) and *reports*
(the paper's instruction -> findings and impression). Last logged losses per phase
(cross-entropy per token; validation on the held-out patients):

| phase | steps | lr | caption share | finding weight | train loss | val loss: captions | reports |
|---|---|---|---|---|---|---|---|
{phases}

Every logged loss is in `{LOG_FILE}`.

## Use
Load it like any local model folder (`MllamaForConditionalGeneration.from_pretrained`,
`AutoProcessor.from_pretrained`); in cxrlib set `model: tiny-pretrained` in stage 04. Prompt with
the paper's instruction and an image, decode greedily, stop at `<|eot_id|>`.

## Files
{files_table(folder_digests(folder))}
"""


def _last(log: pd.DataFrame, phase: str, column: str) -> str:
    values = log.loc[log["phase"] == phase, column].dropna()
    return "-" if values.empty else f"{values.iloc[-1]:.3f}"


def _parser() -> argparse.ArgumentParser:
    data, recipe = PretrainingData(), Recipe()
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.reportgen.pretrain_tiny",
        description="Pre-train the tiny Llama-3.2-Vision on synthetic image-report pairs and "
        "write a model folder with its model card.",
    )
    parser.add_argument("--out", required=True, help="output model folder (replaced if present)")
    parser.add_argument("--work-dir", default=None, help="keep the generated data here for reuse")
    parser.add_argument("--subjects", type=int, default=data.subjects, help="synthetic patients")
    parser.add_argument("--data-seed", type=int, default=data.seed, help="the look-alike's seed")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=None,
        help=f"steps of each phase ({', '.join(p.name for p in recipe.phases)}); "
        f"default {' '.join(str(p.steps) for p in recipe.phases)}",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=recipe.seed, help="training seed")
    parser.add_argument("--workers", type=int, default=2, help="processes generating data")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run :func:`pretrain` from the command line."""
    args = _parser().parse_args(argv)
    recipe = Recipe(seed=args.seed)
    if args.steps is not None:
        if len(args.steps) != len(recipe.phases):
            raise ValueError(
                f"--steps needs {len(recipe.phases)} numbers (one per phase: "
                f"{', '.join(p.name for p in recipe.phases)}), got {len(args.steps)}"
            )
        phases = tuple(
            Phase(p.name, s, p.lr, p.caption_share, p.finding_weight)
            for p, s in zip(recipe.phases, args.steps, strict=True)
        )
        recipe = Recipe(phases=phases, seed=args.seed)
    data = PretrainingData(subjects=args.subjects, seed=args.data_seed)
    torch.manual_seed(recipe.seed)
    out = pretrain(
        args.out, data=data, recipe=recipe, work_dir=args.work_dir, workers=args.workers,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
