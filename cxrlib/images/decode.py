"""The cache's pixel recipe: decode one image through a reader, resize it, quantise it.

Kept apart from the cache's bookkeeping because it is what worker processes run, and because
anything that must look like a cached image (a figure, a single-image prediction) calls
:func:`resize_to_square`. See :mod:`cxrlib.images.cache` for why stretch + antialiased bilinear.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

RESIZE_METHOD = "stretch whole image to square; Pillow antialiased bilinear on float; round(255*x)"

#: ``reader(path) -> float32 (H, W) in [0, 1]``, display orientation (bright bones).
Reader = Callable[[Path], np.ndarray]


# --- resizing ---------------------------------------------------------------------------------
def resize_to_square(image: np.ndarray, image_size: int) -> np.ndarray:
    """Resize a float image in [0, 1] (H, W) to uint8 (image_size, image_size), as the cache does.

    This is the cache's one pixel recipe; use it wherever an image must look like a cached one.
    """
    return _quantize(_resize_float(image, image_size))


def _resize_float(image: np.ndarray, image_size: int) -> np.ndarray:
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    return np.asarray(pil.resize((image_size, image_size), Image.Resampling.BILINEAR))


def _quantize(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def reader_name(reader: Reader) -> str:
    """``module.qualname`` of a reader function or callable object (recorded in meta.json)."""
    owner = reader if hasattr(reader, "__qualname__") else type(reader)
    return f"{owner.__module__}.{owner.__qualname__}"


def default_reader() -> Reader:
    """The project's reader, imported on first use (DICOM, JPG and PNG)."""
    try:
        from cxrlib.mimic.dicom import read_image
    except ImportError as exc:  # pragma: no cover - the reader ships with cxrlib
        raise ValueError(
            "no image reader: cxrlib.mimic.dicom.read_image could not be imported "
            f"({exc}); pass reader=<callable(path) -> float32 HxW in [0, 1]>"
        ) from exc
    return read_image


def _load(reader: Reader, path: Path, dicom_id: str) -> np.ndarray:
    """Decode one image through ``reader``; every failure names the file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"image of dicom_id {dicom_id} not found: {path}; check data_root and the 'path' "
            "column (paths are relative to the data root), or drop the row from the items"
        )
    try:
        image = reader(path)
    except (ValueError, OSError) as exc:
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise  # already one clear message naming the file
        raise ValueError(f"cannot read image {path} (dicom_id {dicom_id}): {exc}") from exc
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"reader {reader_name(reader)} returned an array of shape {image.shape} and dtype "
            f"{image.dtype} for {path}; expected a 2-D float array (H, W) in [0, 1]"
        )
    return image


def _check_range(small: np.ndarray, reader: Reader, path: Path) -> None:
    """Range check on the resized image: 1/1000 of the work of checking the source, and a
    reader scaling to [0, 255] or returning NaN shows there just the same."""
    low, high = float(small.min()), float(small.max())
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"reader {reader_name(reader)} returned values in [{low:.4g}, {high:.4g}] for "
            f"{path}; expected [0, 1] (a float image scaled for display)"
        )


def decode_chunk(task: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Decode and resize one chunk (runs in a worker process or in-process).

    With ``write=True`` the pixels go straight into the shared memmap before this returns, so
    the parent may mark the rows done; otherwise they are returned for the parent to write.
    """
    rows = np.asarray(task["rows"], dtype=np.int64)
    size = task["image_size"]
    out = np.empty((len(rows), size, size), dtype=np.uint8)
    shapes = np.empty((len(rows), 2), dtype=np.int32)
    for k, (path, dicom_id) in enumerate(zip(task["paths"], task["dicom_ids"], strict=True)):
        file = Path(task["data_root"], path)
        image = _load(task["reader"], file, dicom_id)
        shapes[k] = image.shape
        small = _resize_float(image, size)
        _check_range(small, task["reader"], file)
        out[k] = _quantize(small)
    if not task["write"]:
        return rows, shapes, out
    # Open the memmap per chunk: a worker holds no mapping between tasks, and nothing has to
    # be pickled but the path. No msync: the pages are in the shared page cache, visible to
    # the parent and to a later run even if this process is killed.
    pixels = np.memmap(task["pixels_path"], dtype=np.uint8, mode="r+", shape=task["shape"])
    pixels[rows] = out
    del pixels
    return rows, shapes, None
