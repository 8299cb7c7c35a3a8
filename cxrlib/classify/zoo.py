"""Model zoo: the paper's four torchvision CNNs with a new head (one logit per finding).

One factory, :func:`create_model`, backed by the plain dict :data:`ARCHITECTURES`. Every
network is wrapped in :class:`Classifier` = ``backbone`` (the torchvision model with its last
layer removed, giving a feature vector) + ``head`` (dropout, then one linear layer), so that
training, embeddings and Grad-CAM see the same structure whatever the architecture.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

#: Value of ``weights`` meaning random initialisation / torchvision's ImageNet weights.
WEIGHTS_NONE = "none"
WEIGHTS_IMAGENET = "imagenet"
#: Seconds to wait for a download of ImageNet weights before giving up (offline machines).
_DOWNLOAD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ArchSpec:
    """What the factory needs to know about one torchvision architecture."""

    builder: Callable[..., nn.Module]
    weights_enum: str  # torchvision weights enum, e.g. "ResNet18_Weights"
    first_conv: str  # dotted name of the first convolution (adapted to ``in_chans``)
    last_layer: str  # dotted name of the layer replaced by the head
    cam_layer: str  # dotted name (inside the backbone) Grad-CAM looks at
    paper_name: str


ARCHITECTURES: dict[str, ArchSpec] = {
    "vgg16": ArchSpec(
        torchvision.models.vgg16,
        "VGG16_Weights",
        "features.0",
        "classifier.6",
        "features.29",
        "VGG-16",
    ),
    "resnet18": ArchSpec(
        torchvision.models.resnet18, "ResNet18_Weights", "conv1", "fc", "layer4", "ResNet-18"
    ),
    "resnet50": ArchSpec(
        torchvision.models.resnet50, "ResNet50_Weights", "conv1", "fc", "layer4", "ResNet-50"
    ),
    "densenet121": ArchSpec(
        torchvision.models.densenet121,
        "DenseNet121_Weights",
        "features.conv0",
        "classifier",
        "features.norm5",
        "DenseNet-121",
    ),
}


class Classifier(nn.Module):
    """``backbone`` (image -> feature vector) followed by ``head`` (dropout + linear -> logits).

    Input: float tensor (N, in_chans, S, S), normalised. Output: logits (N, num_outputs).
    """

    def __init__(
        self,
        architecture: str,
        backbone: nn.Module,
        feature_dim: int,
        num_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_outputs))
        self.feature_dim = feature_dim
        self.num_outputs = num_outputs

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature vectors (N, feature_dim): the input of the last layer (used as embeddings)."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    @property
    def cam_layer(self) -> nn.Module:
        """The layer whose activations Grad-CAM weighs (the last convolutional block)."""
        return self.backbone.get_submodule(ARCHITECTURES[self.architecture].cam_layer)


def check_architecture(name: str) -> ArchSpec:
    """The spec of ``name``; an unknown name raises a ValueError listing the valid ones."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}; "
            "pick one of these names"
        )
    return ARCHITECTURES[name]


def create_model(
    name: str,
    *,
    weights: str | os.PathLike[str] = WEIGHTS_NONE,
    dropout: float = 0.0,
    num_outputs: int = 1,
    in_chans: int = 1,
) -> Classifier:
    """Build architecture ``name`` with ``num_outputs`` logits and optional dropout before them.

    ``weights``: ``"none"`` (random), ``"imagenet"`` (torchvision's, from its cache or a
    download), or the path of a local file (``.safetensors`` or a torch state dict; either a
    plain torchvision state dict or a checkpoint of this class). ``in_chans`` = 1 for grey
    X-rays: pretrained first-layer filters are summed over RGB, which equals feeding the grey
    image replicated to 3 channels at a third of the first layer's cost.
    """
    spec = check_architecture(name)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if int(num_outputs) < 1:
        raise ValueError(f"num_outputs must be >= 1, got {num_outputs!r}")
    if int(in_chans) not in (1, 3):
        raise ValueError(f"in_chans must be 1 (grey) or 3 (RGB), got {in_chans!r}")
    backbone = spec.builder(weights=None)
    feature_dim = backbone.get_submodule(spec.last_layer).in_features
    _replace(backbone, spec.last_layer, nn.Identity())
    if in_chans != 3:
        _replace(
            backbone,
            spec.first_conv,
            _conv_with_in_chans(backbone.get_submodule(spec.first_conv), in_chans),
        )
    model = Classifier(name, backbone, feature_dim, int(num_outputs), float(dropout))
    if isinstance(weights, str) and weights == WEIGHTS_NONE:
        return model
    if isinstance(weights, str) and weights == WEIGHTS_IMAGENET:
        state = _imagenet_state_dict(name, spec)
    else:
        state = _read_state_file(weights)
    load_pretrained(model, state, source=str(weights))
    return model


def load_pretrained(model: Classifier, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``model``: a full checkpoint of this class or a backbone only.

    A torchvision state dict (no ``backbone.`` prefix) loads into the backbone, its original
    last layer dropped; a first-layer weight with 3 input channels is summed to 1 when needed.
    A head whose shape differs (other number of outputs) is left at its initialisation.
    """
    spec = ARCHITECTURES[model.architecture]
    if not any(k.startswith("backbone.") for k in state):
        state = {
            f"backbone.{k}": v for k, v in state.items() if not k.startswith(spec.last_layer + ".")
        }
    conv_key = f"backbone.{spec.first_conv}.weight"
    own = model.state_dict()
    if conv_key in state and state[conv_key].shape[1] != own[conv_key].shape[1]:
        state[conv_key] = _adapt_conv_weight(state[conv_key], own[conv_key].shape[1])
    head = {k: v for k, v in state.items() if k.startswith("head.")}
    if any(k not in own or own[k].shape != v.shape for k, v in head.items()):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing = [k for k in own if k.startswith("backbone.") and k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"weights {source} do not fit architecture {model.architecture!r}: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}, {len(wrong)} keys of another shape {wrong[:3]}; "
            "pass weights saved from the same architecture"
        )
    model.load_state_dict(state, strict=False)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def imagenet_cache_file(name: str) -> Path:
    """Where torchvision looks for the ImageNet weights of ``name`` (``$TORCH_HOME``)."""
    spec = check_architecture(name)
    url = getattr(torchvision.models, spec.weights_enum).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _imagenet_state_dict(name: str, spec: ArchSpec) -> dict[str, torch.Tensor]:
    cached = imagenet_cache_file(name)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    enum = getattr(torchvision.models, spec.weights_enum).IMAGENET1K_V1
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            return enum.get_state_dict(progress=False)
    except OSError as exc:  # URLError, timeouts, DNS failures are OSErrors
        raise FileNotFoundError(
            f"ImageNet weights for {name!r} are not cached at {cached} and could not be "
            f"downloaded from {enum.url} ({exc}). Copy that file to {cached} (set $TORCH_HOME "
            "to use another torchvision cache folder), or pass weights=<path of a local "
            "weights file>, or use weights='none' to train from scratch"
        ) from exc


def _read_state_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"weights must be {WEIGHTS_NONE!r}, {WEIGHTS_IMAGENET!r} or the path of a local "
            f"weights file (.safetensors or a torch state dict); got {str(path)!r}, which is "
            "not a file"
        )
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(file, device="cpu")
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoding failure is a bad user file
        raise ValueError(f"cannot read weights file {file}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"weights file {file} does not hold a state dict of tensors")
    return state


def _adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    # Summing RGB filters keeps the response to a grey image replicated on 3 channels.
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    return weight.repeat(1, in_chans, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def _conv_with_in_chans(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    # A fresh network keeps its own initialisation: take the first input channels' filters
    # (torchvision's fan-out init does not depend on the number of input channels).
    with torch.no_grad():
        new.weight.copy_(conv.weight[:, :in_chans])
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _replace(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def describe(name: str) -> dict[str, Any]:
    """Human-readable facts about an architecture (paper name, feature size, parameters)."""
    model = create_model(name)
    return {
        "architecture": name,
        "paper_name": ARCHITECTURES[name].paper_name,
        "feature_dim": model.feature_dim,
        "parameters": count_parameters(model),
    }
