"""Training collator for Mllama: the loss falls on the report tokens only.

trl's built-in vision collators mishandle Mllama (a cross-attention mask of the wrong length,
or training on the prompt with the ``<|image|>`` id - outside the LM head - as a label), so this
one applies the chat template, calls the processor with ``add_special_tokens=False`` (the
template already holds the BOS; a second one would shift everything) and masks with -100:
every prompt token, padding, and the image token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .prompts import conversation_images, prompt_messages

IGNORE_INDEX = -100  # label value the loss skips (PyTorch's cross-entropy default)


class ReportCollator:
    """Turn ``[{"messages": conversation}, ...]`` into model inputs with masked ``labels``.

    The returned batch holds ``input_ids``, ``attention_mask``, ``pixel_values``,
    ``aspect_ratio_ids``, ``aspect_ratio_mask``, ``cross_attention_mask`` and ``labels``
    (right-padded). ``max_length`` truncates the report end, never the prompt.
    """

    def __init__(self, processor: Any, *, max_length: int | None = None) -> None:
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(
            getattr(processor, "image_token", "<|image|>")
        )

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        conversations = [example["messages"] for example in examples]
        texts = [self._render(m, generation_prompt=False) for m in conversations]
        prompts = [self._render(prompt_messages(m), generation_prompt=True) for m in conversations]
        images = [[to_rgb(image) for image in conversation_images(m)] for m in conversations]
        prompt_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        self._check_room(prompt_ids)
        kwargs: dict[str, Any] = {}
        if self.max_length is not None:
            kwargs.update(truncation=True, max_length=self.max_length)
        batch = self.processor(
            images=images,
            text=texts,
            add_special_tokens=False,
            padding=True,
            padding_side="right",
            return_tensors="pt",
            **kwargs,
        )
        labels = batch["input_ids"].clone()
        for row, ids in enumerate(prompt_ids):
            self._check_prefix(batch["input_ids"][row], ids)
            labels[row, : len(ids)] = IGNORE_INDEX
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        labels[batch["input_ids"] == self.image_token_id] = IGNORE_INDEX
        batch["labels"] = labels
        return dict(batch)

    def _render(self, messages: Sequence[Mapping[str, Any]], *, generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )

    def _check_room(self, prompt_ids: list[list[int]]) -> None:
        longest = max(len(ids) for ids in prompt_ids)
        if self.max_length is not None and longest >= self.max_length:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for the report: the prompt alone "
                f"takes {longest} tokens; raise max_length"
            )

    def _check_prefix(self, input_ids: torch.Tensor, prompt_ids: list[int]) -> None:
        """The prompt's tokens must open the full sequence, or the mask would be wrong."""
        if input_ids[: len(prompt_ids)].tolist() != list(prompt_ids):
            raise RuntimeError(
                "the tokenised prompt is not a prefix of the tokenised conversation; the "
                "tokenizer merges across the assistant header, so prompt masking would be wrong"
            )


def to_rgb(image: Any) -> Image.Image:
    """PIL RGB image from a PIL image or a uint8 array (H, W) / (H, W, 3)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    return Image.fromarray(array).convert("RGB")


def reset_call_settings(tokenizer: Any) -> None:
    """Undo the truncation and padding the collator's calls leave on a fast tokenizer: they
    would be saved as its defaults, and a reloaded processor then warns on every call."""
    backend = getattr(getattr(tokenizer, "tokenizer", tokenizer), "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
