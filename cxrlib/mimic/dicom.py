"""Image readers: a MIMIC-CXR DICOM, or a JPG/PNG of the MIMIC-CXR-JPG release, as display pixels.

The contract of :func:`read_image`: a 2-D ``float32`` array (rows, columns) in ``[0, 1]`` where
bright means dense (bones white), whatever the file's bit depth, rescale, window or photometric
interpretation. Every failure a user can cause (missing, corrupt, truncated, unsupported file)
is one ``ValueError``/``FileNotFoundError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Suffixes read with Pillow (MIMIC-CXR-JPG and PNG exports); anything else is read as DICOM.
RASTER_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

_DECODER_HINT = (
    "install the pixel data handlers (pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg; "
    "JPEG-LS also needs pyjpegls) or convert the file to an uncompressed transfer syntax"
)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one radiograph as ``float32`` (rows, columns) in ``[0, 1]``, bones bright.

    DICOM: modality LUT (RescaleSlope/Intercept), then the first VOI LUT or window when the file
    has one, MONOCHROME1 inverted. JPG/PNG: grey levels divided by the format's maximum.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"image file not found: {file}; check the data root and the path column "
            "(images live under files/pNN/pNNNNNNNN/sNNNNNNNN/)"
        )
    if file.suffix.lower() in RASTER_SUFFIXES:
        return _read_raster(file)
    return _read_dicom(file)


def _read_raster(file: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                pixels = np.asarray(img, dtype=np.float64) / 65535.0
            elif img.mode == "I":  # 16-bit PNG on older Pillow versions
                pixels = np.asarray(img, dtype=np.float64)
                pixels = pixels / (65535.0 if pixels.max() > 255 else 255.0)
            else:
                pixels = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(
            f"cannot read image {file}: {exc}; the file is corrupt, truncated or not an image "
            "- re-download it"
        ) from exc
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)


def _read_dicom(file: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(file)
    except InvalidDicomError as exc:
        raise ValueError(f"{file} is not a DICOM file ({exc}); re-download it") from exc
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise ValueError(
            f"cannot read DICOM {file}: {type(exc).__name__}: {exc}; the file is corrupt or "
            "truncated - re-download it"
        ) from exc
    if "PixelData" not in ds:
        raise ValueError(f"DICOM {file} has no PixelData element: it holds no image")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        raise ValueError(
            f"DICOM {file}: PhotometricInterpretation PALETTE COLOR is not supported "
            "(expected MONOCHROME1, MONOCHROME2 or RGB)"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(
            f"DICOM {file} has {frames} frames; a radiograph has one - pass single-frame files"
        )
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        stored = ds.pixel_array
    except (RuntimeError, NotImplementedError) as exc:
        name = getattr(transfer_syntax, "name", transfer_syntax)
        raise ValueError(
            f"cannot decode DICOM {file} (transfer syntax {name}): {exc}; {_DECODER_HINT}"
        ) from exc
    except Exception as exc:  # truncated pixel data, bad lengths, broken codestreams
        raise ValueError(
            f"cannot decode the pixels of DICOM {file}: {type(exc).__name__}: {exc}; the file "
            "is corrupt or truncated - re-download it"
        ) from exc
    if stored.ndim == 3 and stored.shape[-1] == 3:
        # Colour files (rare secondary captures): luminance, ITU-R BT.601 weights.
        grey = stored.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return _to_unit_range(grey, None, invert=False)
    if stored.ndim != 2:
        raise ValueError(
            f"DICOM {file}: pixel array of shape {stored.shape} is not a single grey image"
        )
    try:
        return _display_pixels(stored, ds, invert=photometric == "MONOCHROME1")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"DICOM {file}: invalid rescale or window attributes ({type(exc).__name__}: {exc}); "
            "fix RescaleSlope/RescaleIntercept, WindowCenter/WindowWidth or the VOI LUT"
        ) from exc


def _display_pixels(stored: np.ndarray, ds: object, *, invert: bool) -> np.ndarray:
    """Stored values -> modality values -> VOI (when present) -> [0, 1], bones bright."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(stored, ds).astype(np.float64)
    if not _has_voi(ds):
        return _to_unit_range(values, None, invert=invert)
    windowed = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64)
    # Output range of the VOI transform over every storable value: a window maps to its own
    # range, so a narrow window shows as the radiologist set it (no min-max stretch).
    probe = apply_modality_lut(_stored_extremes(ds), ds).astype(np.float64)
    limits = np.asarray(apply_voi_lut(probe, ds, index=0), dtype=np.float64)
    return _to_unit_range(windowed, (float(limits.min()), float(limits.max())), invert=invert)


def _has_voi(ds: object) -> bool:
    """A non-empty VOI LUT sequence, or both window attributes with values (some files carry
    them empty)."""
    has_lut = bool(ds.get("VOILUTSequence"))  # type: ignore[attr-defined]
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")  # type: ignore[attr-defined]
    has_window = center not in (None, "") and width not in (None, "")
    return has_lut or has_window


def _stored_extremes(ds: object) -> np.ndarray:
    bits = int(ds.BitsStored)  # type: ignore[attr-defined]
    if int(ds.get("PixelRepresentation", 0)) == 1:  # type: ignore[attr-defined]
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return np.array([lo, hi], dtype=np.int32)
    return np.array([0, 2**bits - 1], dtype=np.int64)


def _to_unit_range(
    values: np.ndarray, limits: tuple[float, float] | None, *, invert: bool
) -> np.ndarray:
    """Scale to [0, 1] over ``limits`` (the image's own min/max when None), inverting if asked.

    Without a window the official MIMIC-CXR-JPG conversion also min-max scales; a constant
    image becomes all zeros (all ones when inverted) rather than a division by zero.
    """
    lo, hi = limits if limits is not None else (float(values.min()), float(values.max()))
    span = hi - lo
    scaled = np.zeros_like(values) if span <= 0 else (values - lo) / span
    scaled = np.clip(scaled, 0.0, 1.0)
    if invert:
        scaled = 1.0 - scaled
    return np.ascontiguousarray(scaled, dtype=np.float32)
