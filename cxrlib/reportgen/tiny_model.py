"""An offline tiny Llama-3.2-Vision: same architecture and file layout, a millionth of the size.

Lets every later step (LoRA, training, generation, save/reload) run on a CPU with no download.
Built from an ``MllamaConfig`` (random weights), with a byte-level BPE tokenizer trained on the
training reports (Llama-3's pre-tokenisation pattern, special tokens and chat format, and
``<|image|>`` added last, just past the text vocabulary as in the real model) and an
``MllamaImageProcessor``, all saved as an ordinary model folder that ``from_pretrained`` reads
exactly like the real one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..atomic import atomic_dir, write_json
from .guidance import stated_findings
from .prompts import INSTRUCTION, build_conversation, guided_instruction

if TYPE_CHECKING:
    from .pretrain import PretrainSettings

#: Llama-3's special tokens used by the chat format, in the real model's id order.
BOS, EOS_TEXT = "<|begin_of_text|>", "<|end_of_text|>"
START_HEADER, END_HEADER, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
PAD, PYTHON_TAG, IMAGE = "<|finetune_right_pad_id|>", "<|python_tag|>", "<|image|>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS_TEXT, START_HEADER, END_HEADER, EOT, PAD, PYTHON_TAG)

#: Llama-3's pre-tokenisation regex (tokenizer.json of the real model), so that the prompt's
#: tokens are a prefix of prompt + report, which the collator's masking relies on.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: Llama-3.2-Vision's chat format for the messages we use (user/assistant/system turns, text and
#: image parts). The real template adds tool-calling and a dated system prompt for text-only
#: chats; neither is used here.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif content['type'] == 'text' %}{{- content['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

#: The real processor's normalisation (CLIP statistics), kept so the tiny model sees the same
#: pixel scale.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

#: Value of the tanh gates of the text model's cross-attention layers. transformers initialises
#: them to 0 (right for pre-training from scratch, which opens them); the real model's are open.
#: Left at 0 the image would be cut off entirely, and LoRA (which adapts Linear layers only)
#: could never open them.
CROSS_ATTENTION_GATE = 1.0

#: File written beside the weights recording how the tiny model was made.
SPEC_FILE = "tiny_model_spec.json"


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of the tiny model. Defaults: ~1.8M parameters, one 64 px tile, 4x4 patches.

    One tile per image (``max_num_tiles=1`` with the single aspect ratio 1:1) because the cached
    images are square and small: four tiles would quadruple the vision cost for padding.
    """

    image_size: int = 64  # tile size in pixels; multiple of patch_size
    patch_size: int = 16
    vision_hidden: int = 64
    vision_layers: int = 4
    vision_global_layers: int = 2
    vision_heads: int = 4
    intermediate_layers: tuple[int, ...] = (1, 3)
    text_hidden: int = 128
    text_layers: int = 6  # self-attention and cross-attention layers together
    text_heads: int = 4
    text_kv_heads: int = 2
    cross_attention_layers: tuple[int, ...] = (2, 5)
    vocab_size: int = 1024  # BPE vocabulary incl. special tokens, without <|image|>
    max_position_embeddings: int = 2048

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            nearest = self.patch_size * max(1, round(self.image_size / self.patch_size))
            raise ValueError(
                f"tiny model image_size must be a multiple of patch_size={self.patch_size}, "
                f"got {self.image_size}: use e.g. {nearest}"
            )
        if max(self.cross_attention_layers, default=0) >= self.text_layers:
            raise ValueError(
                f"cross_attention_layers {list(self.cross_attention_layers)} must be below "
                f"text_layers={self.text_layers}"
            )
        if max(self.intermediate_layers, default=0) >= self.vision_layers:
            raise ValueError(
                f"intermediate_layers {list(self.intermediate_layers)} must be below "
                f"vision_layers={self.vision_layers}"
            )


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on ``texts``, with Llama-3's special tokens.

    Returns a ``PreTrainedTokenizerFast`` whose ``<|image|>`` id equals the size of the text
    vocabulary (the embedding row the real model also keeps outside its LM head).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    n_min = len(SPECIAL_TOKENS) + 256
    if vocab_size < n_min:
        raise ValueError(
            f"tokenizer vocab_size must be >= {n_min} (bytes + special tokens), got {vocab_size}"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer)
    backend.add_special_tokens([IMAGE])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=TinyModelSpec.max_position_embeddings,
    )


def build_processor(tokenizer, image_size: int):
    """``MllamaProcessor``: an ``MllamaImageProcessor`` (one square tile) + ``tokenizer``."""
    from transformers import MllamaImageProcessor, MllamaProcessor

    image_processor = MllamaImageProcessor(
        size={"height": image_size, "width": image_size},
        max_image_tiles=1,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    return MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )


def tiny_config(spec: TinyModelSpec, tokenizer):
    """The ``MllamaConfig`` of the tiny model for this tokenizer."""
    from transformers import MllamaConfig

    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE)
    # Weights drawn with std = hidden**-0.5 (the real model's 0.02 is that scale at 4096 wide):
    # at width 128 the default 0.02 leaves the frozen LM head so small that, after the frozen
    # final norm, no LoRA update can make a token likely (loss floor ~3 nats).
    vision = dict(
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        hidden_size=spec.vision_hidden,
        num_hidden_layers=spec.vision_layers,
        num_global_layers=spec.vision_global_layers,
        attention_heads=spec.vision_heads,
        intermediate_size=4 * spec.vision_hidden,
        max_num_tiles=1,
        supported_aspect_ratios=[[1, 1]],
        intermediate_layers_indices=list(spec.intermediate_layers),
        # the projector reads the last hidden state concatenated with each intermediate one
        vision_output_dim=spec.vision_hidden * (len(spec.intermediate_layers) + 1),
        initializer_range=spec.vision_hidden**-0.5,
    )
    text = dict(
        vocab_size=image_token_id,  # <|image|> sits just past the LM head, as in the real model
        hidden_size=spec.text_hidden,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads,
        intermediate_size=2 * spec.text_hidden,
        cross_attention_layers=list(spec.cross_attention_layers),
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        # the chat model ends its turns with <|eot_id|> (the tokenizer's eos); keeping config,
        # generation config and tokenizer in agreement avoids transformers re-aligning them
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=spec.text_hidden**-0.5,
    )
    ids = {k: text[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return MllamaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token_id, **ids
    )


def build_tiny_model(
    reports: Iterable[str],
    out_dir: str | os.PathLike[str],
    spec: TinyModelSpec | None = None,
    *,
    instruction: str = INSTRUCTION,
    seed: int = 0,
    pretrain: PretrainSettings | None = None,
    guidance_findings: Sequence[str] = (),
    progress: bool = True,
) -> Path:
    """Train the tokenizer, build the model, optionally pre-train its text, save to ``out_dir``.

    The tokenizer learns from the instruction and the ``reports``; pre-training (see
    :mod:`.pretrain`) reads the text-only conversations instruction -> report or, with
    ``guidance_findings``, guided instruction -> report, the instruction naming the findings the
    report states (:func:`pretraining_pairs`): the real model is instruction-tuned and reads
    such hints out of the box, a random stand-in only once shown. The folder holds
    ``config.json``, ``model.safetensors``, ``generation_config.json``, the tokenizer, processor
    and chat template files, and :data:`SPEC_FILE`; it is written atomically.
    """
    from .pretrain import pretrain_text

    spec = spec or TinyModelSpec()
    reports = [t for t in reports if t]
    if not reports:
        raise ValueError("the tiny model's tokenizer needs training reports, got none")
    pairs = pretraining_pairs(reports, instruction, guidance_findings)
    tokenizer = train_tokenizer([f"{text}\n{r}" for text, r in pairs], spec.vocab_size)
    model, processor = new_tiny_model(spec, tokenizer, seed)
    log = None
    with atomic_dir(out_dir) as tmp:
        if pretrain is not None and pretrain.steps > 0:
            texts = [
                processor.apply_chat_template(build_conversation(None, text, r), tokenize=False)
                for text, r in pairs
            ]
            log = pretrain_text(
                model, tokenizer, texts, pretrain, work_dir=tmp / "_work", progress=progress
            )
        save_model(model, processor, tmp)
        write_json(
            tmp / SPEC_FILE,
            {
                "spec": asdict(spec),
                "seed": seed,
                "n_reports": len(reports),
                "n_parameters": _n_parameters(model),
                "pretrain": None if pretrain is None else pretrain.to_dict(),
                "pretrain_guidance_findings": list(guidance_findings),
                "pretrain_final_loss": None if log is None or log.empty else log["loss"].iloc[-1],
            },
        )
    return Path(out_dir)


def new_tiny_model(spec: TinyModelSpec, tokenizer: Any, seed: int = 0) -> tuple[Any, Any]:
    """(``MllamaForConditionalGeneration`` with random weights drawn with ``seed``, its
    ``MllamaProcessor``) for ``tokenizer``; the cross-attention gates set open
    (:data:`CROSS_ATTENTION_GATE`) and greedy decoding ending at ``<|eot_id|>`` configured."""
    from transformers import GenerationConfig, MllamaForConditionalGeneration

    processor = build_processor(tokenizer, spec.image_size)
    config = tiny_config(spec, tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MllamaForConditionalGeneration(config)
    _open_cross_attention_gates(model, CROSS_ATTENTION_GATE)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    return model, processor


def save_model(model: Any, processor: Any, folder: str | os.PathLike[str]) -> None:
    """``save_pretrained`` of model and processor into ``folder`` (the files a local model
    folder holds: config, safetensors weights, generation config, tokenizer, processor)."""
    from .backends import quiet_transformers
    from .collator import reset_call_settings

    reset_call_settings(processor)
    with quiet_transformers():
        model.save_pretrained(folder)
        processor.save_pretrained(folder)


def pretraining_pairs(
    reports: Sequence[str], instruction: str, guidance_findings: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(instruction, report) pairs of the text pre-training: every report under the plain
    instruction or, with ``guidance_findings``, under the guided one naming its own findings.

    Guided only, not both: the guided instruction opens with the plain one, and at demo scale
    every step is needed for the hint to take (pre-training on both forms, 300 steps on 623
    reports left the guided adapter writing only normal reports).
    """
    if not guidance_findings:
        return [(instruction, r) for r in reports]
    stated = stated_findings(reports, guidance_findings)
    return [
        (guided_instruction(found, guidance_findings, instruction), r)
        for found, r in zip(stated, reports, strict=True)
    ]


def _open_cross_attention_gates(model: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                param.fill_(value)


def _n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
