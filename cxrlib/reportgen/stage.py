"""Stages 04 (Llama setup) and 05 (Llama training): upstream files in, artifacts out.

The notebooks ``04_llama_setup`` and ``05_llama_training`` call these so that each cell stays
a line or two. File names and schemas: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import distributed, preprocessing
from ..artifacts import (
    ADAPTER_DIRS,
    CNN_TRAIN_TEST,
    CONTROL_FILES,
    GENERATED_FILES,
    HINT_COLUMN,
    LLAMA_SETUP,
    LORA_FILE,
    MODEL_DIR,
    MODEL_FILE,
)
from ..artifacts import TRAINING_LOG_FILES as LOG_FILES
from ..atomic import write_csv, write_json
from ..choices import TINY_MODEL
from ..images.cache import ImageCache
from ..mimic.layout import DICOM_ID, SPLIT_COLUMN, SPLITS
from ..paths import stage_dir
from . import controls
from .backends import (
    SHIPPED_MODELS,
    LoadedModel,
    LoraSettings,
    add_lora,
    load_model,
    resolve_model_path,
)
from .dataset import ConversationDataset, ImageSource, reports
from .generate import compare_models, generate_reports, generation_frame, load_finetuned
from .guidance import classifier_findings, guided_instructions, load_guidance
from .model_card import verify_model_folder
from .pretrain import PretrainSettings
from .prompts import INSTRUCTION, hint_of
from .tiny_model import TinyModelSpec, build_tiny_model
from .train import TrainResult, TrainSettings, portable_path, save_adapter, train_adapter

#: Value of the ``model`` parameter that builds the offline tiny model (random weights);
#: ``TINY_PRETRAINED`` loads the one pre-trained on synthetic image-report pairs (shipped).
TINY = TINY_MODEL

_PARTS = ("vision_model", "multi_modal_projector", "language_model", "lm_head")


def report_samples(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Stage 01's report samples (ids as strings, absent sections as '')."""
    return preprocessing.read_report_samples(run_dir)


def image_cache(run_dir: str | os.PathLike[str]) -> ImageCache:
    """Stage 01's preprocessed images."""
    return preprocessing.open_cache(run_dir)


def split(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    """Rows of ``frame`` in the given MIMIC splits, in file order."""
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        raise ValueError(f"split names must be among {list(SPLITS)}, got {unknown}")
    return frame[frame[SPLIT_COLUMN].isin(names)].reset_index(drop=True)


def split_counts(frame: pd.DataFrame) -> pd.Series:
    """Report samples per split, in MIMIC's split order."""
    return frame.groupby(SPLIT_COLUMN).size().reindex(list(SPLITS), fill_value=0).rename("pairs")


def prepare_model(
    model: str,
    out_dir: str | os.PathLike[str],
    *,
    train_reports: Sequence[str] = (),
    spec: TinyModelSpec | None = None,
    pretrain: PretrainSettings | None = None,
    guidance_findings: Sequence[str] = (),
    seed: int = 0,
    allow_download: bool = False,
    progress: bool = True,
) -> Path:
    """The model folder stage 05 loads: the random tiny model built into ``out_dir/model``,
    the pre-trained tiny model shipped with the package (checked against its model card), or
    the local folder holding the real model (found offline unless ``allow_download``)."""
    if model in SHIPPED_MODELS:
        path = resolve_model_path(model)
        problems = verify_model_folder(path)
        if problems:
            raise ValueError(
                f"the shipped model {model!r} in {path} does not match its model card "
                f"({'; '.join(problems[:3])}): restore it from the repository (git checkout -- "
                f"{path.name}) or rebuild it with python -m cxrlib.reportgen.pretrain_tiny"
            )
        return path
    if model == TINY:
        return build_tiny_model(
            train_reports,
            Path(out_dir) / MODEL_DIR,
            spec,
            seed=seed,
            pretrain=pretrain,
            guidance_findings=guidance_findings,
            progress=progress,
        )
    return resolve_model_path(model, allow_download=allow_download)


def pretraining_findings(
    run_dir: str | os.PathLike[str], model: str, *, guided: bool
) -> tuple[str, ...]:
    """The findings the tiny model's guided pre-training names: stage 03's, so that the hints
    it learns to follow are those stage 05 will give. None for unguided pre-training or a real
    model (which is not pre-trained here)."""
    if model != TINY or not guided:
        return ()
    return tuple(
        classifier_findings(
            stage_dir(run_dir, CNN_TRAIN_TEST),
            "guided pre-training of the tiny model (tiny_pretrain_guided = True)",
            "or set tiny_pretrain_guided = False",
        )
    )


def write_setup(
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    model_path: str | os.PathLike[str],
    loaded: LoadedModel,
    lora: LoraSettings,
    load_in_4bit: bool,
) -> list[Path]:
    """``model.json`` (what stage 05 loads, and how) and ``lora_config.json``."""
    out = Path(out_dir)
    path = Path(model_path)
    inside = path.resolve().is_relative_to(out.resolve())
    if model in SHIPPED_MODELS:  # the name, resolved on loading: a moved project still works
        where = model
    elif inside:  # relative to this stage folder, so a moved run folder still works
        where = path.resolve().relative_to(out.resolve()).as_posix()
    else:
        where = str(path)
    record = {
        "model": model,
        "path": where,
        "backend": loaded.backend,
        "device": loaded.device,
        "load_in_4bit": load_in_4bit,
    }
    return [write_json(out / MODEL_FILE, record), write_json(out / LORA_FILE, lora.to_dict())]


def read_setup(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], LoraSettings]:
    """Stage 04's model record (``path`` made absolute, or a shipped model's name) and LoRA
    settings."""
    folder = stage_dir(run_dir, LLAMA_SETUP)
    for name in (MODEL_FILE, LORA_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} not found: run stage {LLAMA_SETUP} first "
                f"(python run_all.py --until {LLAMA_SETUP}) with the same run_dir"
            )
    record = json.loads((folder / MODEL_FILE).read_text())
    path = Path(record["path"])
    if record["path"] not in SHIPPED_MODELS:
        record["path"] = str(path if path.is_absolute() else folder / path)
    lora = LoraSettings(**json.loads((folder / LORA_FILE).read_text()))
    return record, lora


def parameter_table(model: torch.nn.Module) -> pd.DataFrame:
    """Parameters per part of the model (vision tower, projector, language model, LM head)."""
    rows = {part: {"parameters": 0, "trainable": 0} for part in (*_PARTS, "other")}
    for name, param in model.named_parameters():
        part = next((p for p in _PARTS if f"{p}." in f"{name}." or name.startswith(p)), "other")
        rows[part]["parameters"] += param.numel()
        rows[part]["trainable"] += param.numel() if param.requires_grad else 0
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table[table["parameters"] > 0]
    table.loc["total"] = table.sum()
    table["trainable %"] = (100 * table["trainable"] / table["parameters"]).round(2)
    return table


def lora_table(lora: LoraSettings, target_modules: str, adapted: Sequence[str]) -> pd.DataFrame:
    """The LoRA configuration as a two-column table (setting, value)."""
    rows = {**asdict(lora), "target_modules (regex)": target_modules}
    rows["adapted Linear layers"] = len(adapted)
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


def render_conversation(processor: Any, conversation: Mapping[str, Any]) -> str:
    """The conversation as the model reads it (chat template applied, before tokenisation)."""
    return processor.apply_chat_template(list(conversation["messages"]), tokenize=False)


def token_count(processor: Any, text: str) -> int:
    """Tokens of ``text`` (special tokens written in the text count as one)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def datasets(
    samples: pd.DataFrame,
    cache: ImageCache,
    instructions: str | Mapping[str, str],
    *,
    augment: bool = False,
) -> tuple[ConversationDataset, ConversationDataset]:
    """(training, validation) conversations with reports."""
    train = ConversationDataset(
        split(samples, "train"), cache, instructions=instructions, augment=augment
    )
    val = ConversationDataset(split(samples, "validate"), cache, instructions=instructions)
    return train, val


def augmented_examples(
    samples: pd.DataFrame, cache: ImageCache, *, examples: int = 2, repeats: int = 3, seed: int = 0
) -> tuple[list[np.ndarray], list[str]]:
    """The first training images, each as cached and ``repeats`` times as the training
    augmentation draws it (seeded), as grey floats in [0, 1] with titles: what
    ``augment = True`` shows the model."""
    frame = split(samples, "train").iloc[:examples]
    plain = ConversationDataset(frame, cache)
    augmented = ConversationDataset(frame, cache, augment=True)
    images, titles = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index in range(len(frame)):
            images.append(_grey(plain.image(index)))
            titles.append(f"{frame.at[index, DICOM_ID][:8]} as cached")
            for k in range(repeats):
                images.append(_grey(augmented.image(index)))
                titles.append(f"augmented {k + 1}")
    return images, titles


def _grey(image: Any) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def write_generated(
    out_dir: str | os.PathLike[str], table: pd.DataFrame, *, guided: bool, control: bool = False
) -> Path:
    """``generated_reports.csv`` (``_guided``; a control's file with ``control``) atomically."""
    files = CONTROL_FILES if control else GENERATED_FILES
    return write_csv(Path(out_dir) / files[guided], table)


def tiny_spec(
    *,
    image_size: int,
    patch_size: int,
    vocab_size: int,
    text_hidden: int,
    text_layers: int,
    vision_hidden: int,
    vision_layers: int,
) -> TinyModelSpec:
    """The tiny model's sizes from the notebook's parameters; layer roles follow the real model.

    Every third text layer is a cross-attention layer (the real model: every fifth of 40);
    the vision tower hands every second local layer's output to the projector.
    """
    if text_layers < 3 or vision_layers < 2:
        raise ValueError(
            "the tiny model needs tiny_text_layers >= 3 and tiny_vision_layers >= 2, got "
            f"{text_layers} and {vision_layers}"
        )
    return TinyModelSpec(
        image_size=image_size,
        patch_size=patch_size,
        vocab_size=vocab_size,
        text_hidden=text_hidden,
        text_layers=text_layers,
        cross_attention_layers=tuple(range(2, text_layers, 3)),
        vision_hidden=vision_hidden,
        vision_layers=vision_layers,
        intermediate_layers=tuple(range(1, vision_layers, 2)),
    )


def fine_tune(
    record: Mapping[str, Any],
    lora: LoraSettings,
    samples: pd.DataFrame,
    cache: ImageCache,
    settings: TrainSettings,
    out_dir: str | os.PathLike[str],
    *,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    guided: bool = False,
    gradient_checkpointing: bool = False,
    progress: bool = True,
) -> tuple[LoadedModel, TrainResult]:
    """Load stage 04's model, add its LoRA, train on the training split with validation loss,
    save the adapter + processor and the training log; return the trained model and result.

    In a torchrun job every process trains (:mod:`.distributed`) and rank 0 alone writes."""
    loaded = load_model(
        record["path"],
        backend=record["backend"],
        device=record["device"],
        load_in_4bit=record["load_in_4bit"],
        gradient_checkpointing=gradient_checkpointing,
    )
    loaded = add_lora(loaded, lora)
    train_data, val_data = datasets(samples, cache, instructions, augment=settings.augment)
    out = Path(out_dir)
    result = train_adapter(
        loaded, train_data, val_data, settings, work_dir=out / ".checkpoints", progress=progress
    )
    if not distributed.is_main():
        return loaded, result
    write_csv(out / LOG_FILES[guided], result.log)
    adapter_dir = out / ADAPTER_DIRS[guided]
    run_dir = out.parent
    save_adapter(
        loaded,
        adapter_dir,
        {
            "model": {**record, "path": portable_path(record["path"], adapter_dir, run_dir)},
            "lora": lora.to_dict(),
            "training": asdict(settings),
            "result": result.summary(),
            "guided": guided,
        },
        run_dir=run_dir,
    )
    return loaded, result


def generate_table(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    cache: ImageSource,
    *,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    progress: bool = True,
) -> pd.DataFrame:
    """``study_id,dicom_id,split,reference,generated`` for the rows of ``frame``, and ``hint``
    (what each prompt added to the paper's instruction) when ``instructions`` is per image."""
    prompts = ConversationDataset(frame, cache, instructions=instructions, with_report=False)
    texts = generate_reports(
        loaded, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress
    )
    table = generation_frame(frame, reports(frame), texts)
    if not isinstance(instructions, str):
        table[HINT_COLUMN] = [hint_of(instructions[d]) for d in table[DICOM_ID]]
    return table


def control_table(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    cache: ImageCache,
    *,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    guided: bool = False,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`generate_table` with every image's input taken from another image of its split
    (see :mod:`.controls`): the unguided adapter sees the other image, the guided adapter its
    own image with the other image's hint. Adds the column ``input_from``."""
    partners = controls.shuffled_partners(frame, seed)
    images: ImageSource = cache
    if guided:
        if isinstance(instructions, str):
            raise ValueError("the guided control needs one instruction per image (a mapping)")
        instructions = controls.partner_instructions(instructions, partners)
    else:
        images = controls.PartnerImages(cache, partners)
    table = generate_table(
        loaded, frame, images, instructions=instructions, batch_size=batch_size,
        max_new_tokens=max_new_tokens, progress=progress,
    )  # fmt: skip
    return controls.with_sources(table, partners)


def guided_prompts(run_dir: str | os.PathLike[str], samples: pd.DataFrame) -> dict[str, str]:
    """Every report image's classifier-guided instruction, from stage 03's calls."""
    predicted, findings = load_guidance(stage_dir(run_dir, CNN_TRAIN_TEST))
    return guided_instructions(list(samples[DICOM_ID]), predicted, findings, INSTRUCTION)


def adapter_reports(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    cache: ImageCache,
    out_dir: str | os.PathLike[str],
    *,
    instructions: str | Mapping[str, str] = INSTRUCTION,
    guided: bool = False,
    controls: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 128,
) -> pd.DataFrame:
    """One adapter's reports for ``frame`` written to its table, and with ``controls`` its
    control (:func:`control_table`) to the control's; returns the reports."""
    settings = {"batch_size": batch_size, "max_new_tokens": max_new_tokens}
    generated = generate_table(loaded, frame, cache, instructions=instructions, **settings)
    write_generated(out_dir, generated, guided=guided)
    if controls:
        control = control_table(
            loaded, frame, cache, instructions=instructions, guided=guided, seed=seed,
            progress=False, **settings,
        )  # fmt: skip
        write_generated(out_dir, control, guided=guided, control=True)
    return generated


def reload_check(
    loaded: LoadedModel,
    record: Mapping[str, Any],
    adapter_dir: str | os.PathLike[str],
    frame: pd.DataFrame,
    cache: ImageCache,
    expected: Sequence[str],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
) -> dict[str, Any]:
    """Reload base model + saved adapter from disk; compare logits and regenerated reports
    with the in-memory model on the rows of ``frame`` (``expected``: its reports from it)."""
    reloaded = load_finetuned(
        record["path"],
        adapter_dir,
        backend=record["backend"],
        device=record["device"],
        load_in_4bit=record["load_in_4bit"],
    )
    with_reports = ConversationDataset(frame, cache)
    diff = compare_models(loaded, reloaded, [with_reports[i] for i in range(len(frame))])
    again = generate_table(
        reloaded, frame, cache, batch_size=batch_size, max_new_tokens=max_new_tokens,
        progress=False,
    )["generated"].tolist()  # fmt: skip
    return {
        "images": len(frame),
        "max_abs_logit_difference": diff,
        "same_reports": again == list(expected),
    }
