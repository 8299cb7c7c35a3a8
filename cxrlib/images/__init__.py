"""Images: the preprocessing cache, the CNN dataset and its augmentation (no disease knowledge)."""

from cxrlib.images.cache import ImageCache, build_cache
from cxrlib.images.dataset import (
    CachedImageDataset,
    first_batch_problems,
    make_loader,
    set_epoch,
)
from cxrlib.images.decode import resize_to_square
from cxrlib.images.transforms import (
    NORMALIZE_MEAN,
    NORMALIZE_STD,
    denormalize,
    normalize,
    pixels_to_tensor,
    train_transform,
)

__all__ = [
    "NORMALIZE_MEAN",
    "NORMALIZE_STD",
    "CachedImageDataset",
    "ImageCache",
    "build_cache",
    "denormalize",
    "first_batch_problems",
    "make_loader",
    "normalize",
    "pixels_to_tensor",
    "resize_to_square",
    "set_epoch",
    "train_transform",
]
