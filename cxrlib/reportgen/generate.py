"""Report generation: greedy, batched, stopping at the end of the assistant turn.

Greedy decoding (not the sampling of Unsloth's example) so that evaluation is reproducible; a
reloaded adapter must give the same reports, which :func:`compare_models` checks on logits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cxrlib.progress import progress_bar

from .. import distributed
from ..artifacts import GENERATED_COLUMNS
from .backends import LoadedModel, load_model, quiet_transformers
from .collator import ReportCollator, to_rgb
from .prompts import conversation_images, prompt_messages
from .tiny_model import EOT
from .train import ADAPTER_CONFIG_FILE

#: Schema of ``generated_reports.csv`` (read by the results stage).


def generate_reports(
    loaded: LoadedModel,
    conversations: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    progress: bool = True,
    desc: str = "generating",
) -> list[str]:
    """Generate one report per item of ``conversations`` (``{"messages": ...}``).

    A final assistant turn in an item, if any, is ignored: the model sees the prompt only.
    Prompts are left-padded so every sequence ends where generation starts. In a torchrun job
    the batches are dealt out to the processes in turn (each batch as one process would make
    it) and every process gets all reports back, in order.
    """

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(
            f"batch_size and max_new_tokens must be positive, got {batch_size}, {max_new_tokens}"
        )
    model, processor, tokenizer = loaded.model, loaded.processor, loaded.tokenizer
    if loaded.backend == "unsloth":
        from unsloth import FastVisionModel

        FastVisionModel.for_inference(model)
    model.eval()
    stop_ids = _stop_ids(model, tokenizer)
    texts: dict[int, list[str]] = {}
    n = len(conversations)
    me = distributed.world()
    starts = range(0, n, batch_size)
    mine = starts[me.rank :: me.size]
    show = progress and me.is_main
    # mininterval: a few bar updates, not one per batch, in stored notebook outputs
    for start in progress_bar(mine, desc=desc, unit="batch", disable=not show, mininterval=2.0):
        items = [conversations[i]["messages"] for i in range(start, min(start + batch_size, n))]
        batch = _prompt_batch(processor, items).to(model.device)
        with torch.inference_mode():
            ids = model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
        new = ids[:, batch["input_ids"].shape[1] :]
        texts[start] = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    for part in distributed.all_gather_objects(texts) if me.size > 1 else []:
        texts.update(part)
    return [text for start in starts for text in texts[start]]


def _prompt_batch(processor: Any, conversations: Sequence[Sequence[Mapping[str, Any]]]):
    prompts = [
        processor.apply_chat_template(
            prompt_messages(m), tokenize=False, add_generation_prompt=True
        )
        for m in conversations
    ]
    images = [[to_rgb(i) for i in conversation_images(m)] for m in conversations]
    return processor(
        images=images,
        text=prompts,
        add_special_tokens=False,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """``<|eot_id|>`` plus whatever end tokens the model's generation config names."""
    ids = [tokenizer.convert_tokens_to_ids(EOT)]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids += [configured] if isinstance(configured, int) else list(configured)
    return sorted(set(ids))


def generation_frame(
    frame: pd.DataFrame, references: Sequence[str], generated: Sequence[str]
) -> pd.DataFrame:
    """``study_id,dicom_id,split,reference,generated`` for the rows of ``frame``."""
    if not len(frame) == len(references) == len(generated):
        raise ValueError(
            f"rows, references and generated reports differ in number: {len(frame)}, "
            f"{len(references)}, {len(generated)}"
        )
    out = frame[list(GENERATED_COLUMNS[:3])].reset_index(drop=True).copy()
    out["reference"] = list(references)
    out["generated"] = list(generated)
    return out


def load_finetuned(
    model: str | os.PathLike[str],
    adapter_dir: str | os.PathLike[str],
    *,
    backend: str = "auto",
    device: str = "auto",
    load_in_4bit: bool = True,
) -> LoadedModel:
    """Base model + the saved LoRA adapter (and the processor saved beside it), for inference."""
    from peft import PeftModel
    from transformers import AutoProcessor

    adapter = Path(adapter_dir)
    if not (adapter / ADAPTER_CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"no LoRA adapter in {adapter} ({ADAPTER_CONFIG_FILE} missing): run stage "
            "05_llama_training first"
        )
    base = load_model(model, backend=backend, device=device, load_in_4bit=load_in_4bit)
    with quiet_transformers():
        peft_model = PeftModel.from_pretrained(base.model, adapter, is_trainable=False)
        processor = AutoProcessor.from_pretrained(adapter, local_files_only=True)
    return LoadedModel(
        peft_model, processor, base.backend, base.device, base.source, base.quantized_4bit
    )


def compare_models(
    a: LoadedModel, b: LoadedModel, conversations: Sequence[Mapping[str, Any]]
) -> float:
    """Largest absolute logit difference of two models on the same batch (0.0 = identical)."""
    batch = ReportCollator(a.processor)(list(conversations))
    batch.pop("labels")
    diffs = []
    for loaded in (a, b):
        loaded.model.eval()
        with torch.inference_mode():
            inputs = {k: v.to(loaded.model.device) for k, v in batch.items()}
            diffs.append(loaded.model(**inputs).logits.float().cpu())
    return float((diffs[0] - diffs[1]).abs().max())
