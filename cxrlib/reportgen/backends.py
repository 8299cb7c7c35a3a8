"""Model backends: ``unsloth`` (the paper's recipe, CUDA only) and ``hf`` (everywhere).

- ``unsloth``: ``FastVisionModel`` in 4-bit with Unsloth's gradient checkpointing, LoRA on the
  vision and language layers through ``FastVisionModel.get_peft_model``.
- ``hf``: transformers' ``MllamaForConditionalGeneration`` (+ bitsandbytes 4-bit on CUDA) and
  peft's LoRA on the same layers.
- ``auto``: ``unsloth`` on CUDA when it is installed, else ``hf``.

Models are the real Llama-3.2-11B-Vision-Instruct (by Hub id) or a local folder (the tiny model
of stage 04, or a downloaded copy). Offline by default: only files already on this machine are
used, and a missing model is one error saying what to download and where to put it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cxrlib.choices import BACKENDS, TINY_PRETRAINED
from cxrlib.devices import resolve_device

#: Hub ids of the real model this project knows (what the paper fine-tuned).
REAL_MODELS: dict[str, str] = {
    "unsloth/Llama-3.2-11B-Vision-Instruct": "Unsloth's copy of Meta's weights (no licence gate)",
    "meta-llama/Llama-3.2-11B-Vision-Instruct": (
        "Meta's release (gated: accept the Llama 3.2 licence on huggingface.co and run "
        "`hf auth login` first)"
    ),
}
#: Approximate download size of the real model (16-bit safetensors), for the error message.
REAL_MODEL_SIZE = "about 21 GB"
#: Model folders shipped inside the package, by the name a profile gives as ``model``.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The tiny model pre-trained on synthetic image-report pairs (:mod:`.pretrain_tiny`).
SHIPPED_MODELS: dict[str, Path] = {TINY_PRETRAINED: PRETRAINED_DIR / "tiny-llama-3.2-vision-cxr"}

# transformers 5.17's own Mllama vision encoder calls a keyword it has deprecated; nothing a
# user can act on, and notebooks compare stderr
warnings.filterwarnings("ignore", message=r"`hidden_state` is deprecated", category=FutureWarning)

_ATTENTION_PARENTS = ("self_attn", "cross_attn")
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_VISION_MLP = ("fc1", "fc2")


@dataclass
class LoadedModel:
    """A model with its processor and the choices that produced it."""

    model: Any
    processor: Any
    backend: str  # "unsloth" or "hf"
    device: str  # "cpu" or "cuda"
    source: str  # folder the weights came from
    quantized_4bit: bool = False

    @property
    def tokenizer(self) -> Any:
        """The text tokenizer inside the processor."""
        return getattr(self.processor, "tokenizer", self.processor)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA configuration; defaults: Unsloth's radiography recipe (r = alpha = 16, no dropout)."""

    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    finetune_vision_layers: bool = True
    finetune_language_layers: bool = True
    finetune_attention_modules: bool = True
    finetune_mlp_modules: bool = True
    seed: int = 3407  # LoRA initialisation (Unsloth's random_state)

    def __post_init__(self) -> None:
        if not (self.finetune_vision_layers or self.finetune_language_layers):
            raise ValueError(
                "LoRA needs finetune_vision_layers or finetune_language_layers to be True, got "
                "both False"
            )
        if not (self.finetune_attention_modules or self.finetune_mlp_modules):
            raise ValueError(
                "LoRA needs finetune_attention_modules or finetune_mlp_modules to be True, got "
                "both False"
            )
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be a positive integer, got {self.r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what stage 04 writes as ``lora_config.json``)."""
        return asdict(self)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' informational warnings and its load/save progress bars.

    They go to stderr, which stored notebooks compare; errors still show.
    """
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def unsloth_installed() -> bool:
    """Whether the ``unsloth`` package can be imported (it is the ``gpu`` extra)."""
    return importlib.util.find_spec("unsloth") is not None


def select_backend(
    backend: str = "auto", device: str = "cpu", *, unsloth_available: bool | None = None
) -> str:
    """The backend to use: ``unsloth`` or ``hf``.

    ``auto`` picks ``unsloth`` only on CUDA with unsloth installed. Asking for ``unsloth``
    without CUDA or without the package is an error that says what to do.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if unsloth_available is None:
        unsloth_available = unsloth_installed()
    if backend == "auto":
        return "unsloth" if device == "cuda" and unsloth_available else "hf"
    if backend == "unsloth":
        if device != "cuda":
            raise ValueError(
                f"backend 'unsloth' needs a CUDA GPU (Unsloth's vision models do not run on "
                f"the CPU), but the device is {device!r}: use backend = 'hf' (or 'auto') here"
            )
        if not unsloth_available:
            raise ValueError(
                "backend 'unsloth' was asked for but the unsloth package is not installed: run "
                "`pip install -e '.[gpu]'` on the GPU machine, or use backend = 'hf' (or 'auto')"
            )
    return backend


def resolve_model_path(model: str | os.PathLike[str], *, allow_download: bool = False) -> Path:
    """The local folder holding ``model``: a folder path, a model shipped with the package
    (:data:`SHIPPED_MODELS`), or a known Hub id found offline.

    With ``allow_download=False`` (the default) nothing is fetched: a Hub id must already be in
    the Hugging Face cache, otherwise one ``FileNotFoundError`` explains the download.
    """
    text = str(model)
    if text in SHIPPED_MODELS:
        shipped = SHIPPED_MODELS[text]
        if not (shipped / "config.json").is_file():
            raise FileNotFoundError(
                f"the shipped model {text!r} is missing from {shipped}: reinstall cxrlib from "
                "a complete checkout, or rebuild it with `python -m "
                f"cxrlib.reportgen.pretrain_tiny --out {shipped}`"
            )
        return shipped
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {path} has no config.json: point `model` at a folder written by "
                "save_pretrained (e.g. stage 04's model/ or a downloaded model)"
            )
        return path
    if text not in REAL_MODELS:
        raise ValueError(
            f"model must be one of {[*SHIPPED_MODELS, *REAL_MODELS]} or an existing local "
            f"model folder, got {text!r} (no such folder)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, local_files_only=not allow_download))
    except LocalEntryNotFoundError:
        raise FileNotFoundError(_missing_weights_message(text)) from None


def _missing_weights_message(model_id: str) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path("models") / model_id.split("/")[-1]
    return (
        f"the weights of {model_id} are not on this machine (looked in the Hugging Face cache "
        f"{HF_HUB_CACHE}; downloads are off by default). Download them once ({REAL_MODEL_SIZE}; "
        f"{REAL_MODELS[model_id]}): `hf download {model_id} --local-dir {folder}` and set "
        f"model = '{folder}' (an absolute path, or relative to where the notebook runs), or "
        f"`hf download {model_id}` to fill the cache, or set allow_download = True"
    )


def load_model(
    model: str | os.PathLike[str],
    *,
    backend: str = "auto",
    device: str = "auto",
    load_in_4bit: bool = True,
    gradient_checkpointing: bool = False,
    allow_download: bool = False,
) -> LoadedModel:
    """Load model + processor with the chosen backend.

    ``load_in_4bit`` applies on CUDA only (bitsandbytes / Unsloth); on the CPU the model runs in
    float32. ``gradient_checkpointing`` trades compute for memory (Unsloth's own variant there).
    """
    device = resolve_device(device)
    chosen = select_backend(backend, device)
    path = resolve_model_path(model, allow_download=allow_download)
    with quiet_transformers():
        if chosen == "unsloth":
            return _load_unsloth(path, load_in_4bit, gradient_checkpointing)
        return _load_hf(path, device, load_in_4bit and device == "cuda", gradient_checkpointing)


def _load_unsloth(path: Path, load_in_4bit: bool, gradient_checkpointing: bool) -> LoadedModel:
    from unsloth import FastVisionModel  # noqa: I001  (imported first: it patches transformers)

    model, processor = FastVisionModel.from_pretrained(
        str(path),
        load_in_4bit=load_in_4bit,
        use_gradient_checkpointing="unsloth" if gradient_checkpointing else False,
    )
    _ensure_pad_token(processor)
    return LoadedModel(model, processor, "unsloth", "cuda", str(path), load_in_4bit)


def _load_hf(path: Path, device: str, quantize: bool, gradient_checkpointing: bool) -> LoadedModel:
    from transformers import AutoProcessor, MllamaForConditionalGeneration

    kwargs: dict[str, Any] = {"local_files_only": True}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # this process's GPU: 0 alone, its own one in a torchrun job (set by cxrlib.distributed)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        if quantize:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"],
            )
    else:
        kwargs["dtype"] = torch.float32
    model = MllamaForConditionalGeneration.from_pretrained(path, **kwargs)
    if quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    _ensure_pad_token(processor)
    return LoadedModel(model, processor, "hf", device, str(path), quantize)


def _ensure_pad_token(processor: Any) -> None:
    """Llama-3 tokenizers may ship without a pad token; use its fine-tuning pad token."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|finetune_right_pad_id|>"


def lora_target_modules(settings: LoraSettings) -> str:
    """Regex (peft ``target_modules``) selecting the Linear layers Unsloth's flags select.

    Vision layers live under ``vision_model``, language layers under ``language_model``;
    attention = self- and cross-attention projections, MLP = gate/up/down (text) and fc1/fc2
    (vision). The projector and the LM head are not adapted, as in Unsloth.
    """
    towers = [
        name
        for name, on in (
            ("vision_model", settings.finetune_vision_layers),
            ("language_model", settings.finetune_language_layers),
        )
        if on
    ]
    parents = (list(_ATTENTION_PARENTS) if settings.finetune_attention_modules else []) + (
        ["mlp"] if settings.finetune_mlp_modules else []
    )
    leaves = [*_PROJECTIONS, *_VISION_MLP]
    return (
        rf".*\.(?:{'|'.join(towers)})\..*\.(?:{'|'.join(parents)})\."
        rf"(?:{'|'.join(leaves)})"
    )


def add_lora(loaded: LoadedModel, settings: LoraSettings) -> LoadedModel:
    """Wrap the model with LoRA adapters (trainable) according to ``settings``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        if loaded.backend == "unsloth":
            from unsloth import FastVisionModel

            model = FastVisionModel.get_peft_model(
                loaded.model,
                finetune_vision_layers=settings.finetune_vision_layers,
                finetune_language_layers=settings.finetune_language_layers,
                finetune_attention_modules=settings.finetune_attention_modules,
                finetune_mlp_modules=settings.finetune_mlp_modules,
                r=settings.r,
                lora_alpha=settings.alpha,
                lora_dropout=settings.dropout,
                bias="none",
                random_state=settings.seed,
                use_rslora=False,
                loftq_config=None,
            )
        else:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(
                r=settings.r,
                lora_alpha=settings.alpha,
                lora_dropout=settings.dropout,
                bias="none",
                target_modules=lora_target_modules(settings),
            )
            model = get_peft_model(loaded.model, config)
    return LoadedModel(
        model, loaded.processor, loaded.backend, loaded.device, loaded.source, loaded.quantized_4bit
    )


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """``total`` and ``trainable`` parameter counts (4-bit weights counted as stored)."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"total": total, "trainable": trainable}


def adapted_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules carrying a LoRA adapter (to show what LoRA touches)."""
    pattern = re.compile(r"\.lora_A$")
    return sorted(
        name.removesuffix(".lora_A") for name, _ in model.named_modules() if pattern.search(name)
    )
