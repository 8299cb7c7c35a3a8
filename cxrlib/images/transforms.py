"""Pixel scaling and training augmentation: the one place that says how an image becomes input.

Cached pixels are uint8 in [0, 255]; models see float32 ``(x / 255 - NORMALIZE_MEAN) /
NORMALIZE_STD``, i.e. [-1, 1], as in the paper (mean = std = 0.5). Training augmentation is the
paper's: random horizontal flip and a small random rotation (torchvision.transforms.v2).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode, v2

from cxrlib.images.normalization import NORMALIZE_MEAN, NORMALIZE_STD

#: Default largest rotation (degrees) of the training augmentation.
MAX_ROTATION = 10.0


def pixels_to_tensor(pixels: np.ndarray | torch.Tensor, *, channels: int = 1) -> torch.Tensor:
    """uint8 pixels (..., S, S) -> float32 in [0, 1] with a channel axis: (..., channels, S, S)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(pixels, torch.Tensor):
        tensor = pixels
    else:
        array = np.asarray(pixels)
        # A memmap row is read-only; torch wants writable memory, so copy (one image, cheap).
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.dtype != torch.uint8:
        raise ValueError(f"pixels must be uint8 (a cached image), got {tensor.dtype}")
    image = tensor.to(torch.float32).div_(255.0).unsqueeze(-3)
    return image.repeat_interleave(channels, dim=-3) if channels > 1 else image


def normalize(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> model input [-1, 1] with NORMALIZE_MEAN / NORMALIZE_STD (returns a new tensor)."""
    return (image - NORMALIZE_MEAN) / NORMALIZE_STD


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Model input -> [0, 1] for display (e.g. under a Grad-CAM overlay)."""
    return (image * NORMALIZE_STD + NORMALIZE_MEAN).clamp(0.0, 1.0)


def train_transform(*, flip: bool = True, max_rotation: float = MAX_ROTATION) -> v2.Transform:
    """Training augmentation on one float image (C, S, S) in [0, 1]: flip, then rotation.

    Random draws come from torch's global generator; the loaders of :mod:`cxrlib.images.dataset`
    seed it per batch from the DataLoader generator. Flipping mirrors the heart to the right
    side; the paper used it, and ``flip=False`` turns it off for laterality-aware models.
    Rotation fills the corners with black (0), like the film border.
    """
    if max_rotation < 0:
        raise ValueError(f"max_rotation must be >= 0 degrees, got {max_rotation!r}")
    steps: list[v2.Transform] = []
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if max_rotation > 0:
        steps.append(
            v2.RandomRotation(
                degrees=max_rotation, interpolation=InterpolationMode.BILINEAR, fill=0.0
            )
        )
    return v2.Compose(steps) if steps else v2.Identity()
