"""Backend selection, device resolution, offline model resolution and LoRA targets."""

from __future__ import annotations

import re

import huggingface_hub.constants
import pytest
import torch

from cxrlib.devices import resolve_device
from cxrlib.reportgen import backends
from cxrlib.reportgen.backends import LoraSettings, lora_target_modules, select_backend

REAL_ID = "unsloth/Llama-3.2-11B-Vision-Instruct"


@pytest.mark.parametrize(
    ("backend", "device", "unsloth", "expected"),
    [
        ("auto", "cpu", False, "hf"),
        ("auto", "cpu", True, "hf"),  # Unsloth's vision models are CUDA-only
        ("auto", "cuda", False, "hf"),
        ("auto", "cuda", True, "unsloth"),
        ("hf", "cpu", True, "hf"),
        ("hf", "cuda", True, "hf"),
        ("unsloth", "cuda", True, "unsloth"),
    ],
)
def test_select_backend(backend, device, unsloth, expected):
    assert select_backend(backend, device, unsloth_available=unsloth) == expected


@pytest.mark.parametrize(
    ("backend", "device", "unsloth", "message"),
    [
        ("unsloth", "cpu", True, "'unsloth' needs a CUDA GPU.*use backend = 'hf'"),
        ("unsloth", "cuda", False, r"unsloth package is not installed.*pip install -e '\.\[gpu\]'"),
        ("vllm", "cpu", False, r"backend must be one of \['auto', 'unsloth', 'hf'\], got 'vllm'"),
    ],
)
def test_select_backend_errors(backend, device, unsloth, message):
    with pytest.raises(ValueError, match=message):
        select_backend(backend, device, unsloth_available=unsloth)


def test_resolve_device():
    """One answer for both halves of the study (CNNs and the report model)."""
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"device must be one of \['auto', 'cpu', 'cuda'\]"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU: use device = 'auto' or 'cpu'"):
            resolve_device("cuda")


def test_unsloth_without_gpu_is_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="'unsloth' needs a CUDA GPU"):
        backends.load_model(tmp_path, backend="unsloth")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("model_id", list(backends.REAL_MODELS))
def test_missing_real_weights_offline_says_what_to_download(empty_hub_cache, model_id):
    with pytest.raises(FileNotFoundError) as info:
        backends.resolve_model_path(model_id)
    message = str(info.value)
    name = model_id.split("/")[1]
    assert f"the weights of {model_id} are not on this machine" in message
    assert str(empty_hub_cache) in message  # where it looked
    assert f"hf download {model_id} --local-dir models/{name}" in message  # what to run
    assert f"model = 'models/{name}'" in message  # where to point
    assert "allow_download = True" in message
    if model_id.startswith("meta-llama"):
        assert "licence" in message


def test_real_weights_found_in_hub_cache_offline(empty_hub_cache):
    # the Hub cache layout: models--<org>--<name>/refs/main -> snapshots/<commit>/
    repo = empty_hub_cache / "models--unsloth--Llama-3.2-11B-Vision-Instruct"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert backends.resolve_model_path(REAL_ID) == snapshot


def test_local_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json.*save_pretrained"):
        backends.resolve_model_path(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert backends.resolve_model_path(tmp_path) == tmp_path
    assert backends.resolve_model_path(str(tmp_path)) == tmp_path


def test_unknown_model_id(tmp_path):
    with pytest.raises(
        ValueError, match="model must be one of .*unsloth/Llama-3.2-11B.*got 'gpt2'"
    ):
        backends.resolve_model_path("gpt2")


# Linear layers of an Mllama model (one of each kind), and which flags select them
_VISION_ATTN = "model.vision_model.transformer.layers.0.self_attn.q_proj"
_VISION_GLOBAL_MLP = "model.vision_model.global_transformer.layers.1.mlp.fc2"
_TEXT_ATTN = "model.language_model.layers.0.self_attn.o_proj"
_TEXT_CROSS = "model.language_model.layers.3.cross_attn.k_proj"
_TEXT_MLP = "model.language_model.layers.2.mlp.down_proj"
_NEVER = ["model.multi_modal_projector", "lm_head", "model.vision_model.patch_embedding"]


@pytest.mark.parametrize(
    ("flags", "selected"),
    [
        ({}, [_VISION_ATTN, _VISION_GLOBAL_MLP, _TEXT_ATTN, _TEXT_CROSS, _TEXT_MLP]),
        ({"finetune_vision_layers": False}, [_TEXT_ATTN, _TEXT_CROSS, _TEXT_MLP]),
        ({"finetune_language_layers": False}, [_VISION_ATTN, _VISION_GLOBAL_MLP]),
        ({"finetune_mlp_modules": False}, [_VISION_ATTN, _TEXT_ATTN, _TEXT_CROSS]),
        ({"finetune_attention_modules": False}, [_VISION_GLOBAL_MLP, _TEXT_MLP]),
    ],
)
def test_lora_targets_follow_unsloth_flags(flags, selected):
    pattern = re.compile(lora_target_modules(LoraSettings(**flags)))
    names = [_VISION_ATTN, _VISION_GLOBAL_MLP, _TEXT_ATTN, _TEXT_CROSS, _TEXT_MLP, *_NEVER]
    assert [n for n in names if pattern.fullmatch(n)] == selected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"finetune_vision_layers": False, "finetune_language_layers": False}, "vision_layers or"),
        (
            {"finetune_attention_modules": False, "finetune_mlp_modules": False},
            "attention_modules or",
        ),
        ({"r": 0}, "rank r must be a positive integer, got 0"),
    ],
)
def test_lora_settings_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraSettings(**kwargs)
