"""Image readers: DICOM (bit depths, rescale, window, MONOCHROME1, compression) and JPG/PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_mimic import write_dicom
from PIL import Image
from pydicom.uid import JPEG2000Lossless, RLELossless

from cxrlib.mimic.dicom import read_image

REAL_DICOM = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "dicom"

RAMP_12 = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)  # 0..4080, 12 bits


def _check_contract(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.float32
    assert image.shape == shape
    assert image.flags["C_CONTIGUOUS"]
    assert float(image.min()) >= 0.0
    assert float(image.max()) <= 1.0


@pytest.mark.parametrize(
    ("name", "kwargs", "stored", "expected"),
    [
        # 12 bits in 16, no window: min-max to [0, 1]
        ("mono2_12bit", {"bits_stored": 12}, RAMP_12, RAMP_12 / 4080),
        # MONOCHROME1: low stored value = bright, so the display is inverted
        (
            "mono1_12bit",
            {"bits_stored": 12, "photometric": "MONOCHROME1"},
            RAMP_12,
            1 - RAMP_12 / 4080,
        ),
        # 8 bits
        (
            "mono2_8bit",
            {},
            np.arange(256, dtype=np.uint8).reshape(16, 16),
            np.arange(256).reshape(16, 16) / 255,
        ),
        # a linear rescale alone changes nothing after min-max
        ("rescale", {"bits_stored": 12, "rescale": (2.0, -1024.0)}, RAMP_12, RAMP_12 / 4080),
        # signed 16-bit pixels (PixelRepresentation 1)
        (
            "signed",
            {"bits_stored": 16, "signed": True},
            (RAMP_12.astype(np.int32) - 2048).astype(np.int16),
            RAMP_12 / 4080,
        ),
        # window 1536..2560 of the 0..4095 range: below is black, above is white
        (
            "window",
            {"bits_stored": 12, "window": (2048.0, 1024.0)},
            RAMP_12,
            np.clip((RAMP_12 - 1535.5) / 1023, 0, 1),
        ),
        # window applied to rescaled (modality) values: 2x - 1000 in [0, 2000] is displayed
        (
            "rescale_window",
            {"bits_stored": 12, "rescale": (2.0, -1000.0), "window": (1000.0, 2000.0)},
            RAMP_12,
            np.clip((2.0 * RAMP_12 - 1000 - 0 + 0.5) / 1999, 0, 1),
        ),
        # window on a MONOCHROME1 image: windowed, then inverted
        (
            "mono1_window",
            {"bits_stored": 12, "photometric": "MONOCHROME1", "window": (2048.0, 1024.0)},
            RAMP_12,
            1 - np.clip((RAMP_12 - 1535.5) / 1023, 0, 1),
        ),
    ],
)
def test_dicom_display_pixels(
    tmp_path: Path, name: str, kwargs: dict, stored: np.ndarray, expected: np.ndarray
) -> None:
    path = write_dicom(tmp_path / f"{name}.dcm", stored, **kwargs)
    image = read_image(path)
    _check_contract(image, stored.shape)
    np.testing.assert_allclose(image, expected, atol=2e-3)


def test_unused_high_bits_are_ignored(tmp_path: Path) -> None:
    """BitsStored 12: garbage in the top 4 bits of a 16-bit word must not change the pixels."""
    noisy = RAMP_12 | np.uint16(0xF000)
    clean = read_image(write_dicom(tmp_path / "clean.dcm", RAMP_12, bits_stored=12))
    dirty = read_image(write_dicom(tmp_path / "dirty.dcm", noisy, bits_stored=12))
    np.testing.assert_array_equal(clean, dirty)


def test_constant_image_is_zero_not_nan(tmp_path: Path) -> None:
    image = read_image(write_dicom(tmp_path / "flat.dcm", np.full((4, 5), 7, dtype=np.uint16)))
    np.testing.assert_array_equal(image, np.zeros((4, 5), dtype=np.float32))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_transfer_syntaxes_decode_like_uncompressed(tmp_path: Path, syntax: str) -> None:
    stored = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 7) % 4096
    plain = read_image(write_dicom(tmp_path / "plain.dcm", stored, bits_stored=12))
    packed_path = write_dicom(
        tmp_path / "packed.dcm", stored, bits_stored=12, transfer_syntax=syntax
    )
    assert pydicom.dcmread(packed_path).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(read_image(packed_path), plain)


# --- failures: one ValueError naming the file ----------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.dcm"):
        read_image(tmp_path / "nope.dcm")


def test_not_a_dicom(tmp_path: Path) -> None:
    path = tmp_path / "text.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(ValueError, match=r"text\.dcm"):
        read_image(path)


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.995], ids=["half", "header", "last-bytes"])
def test_truncated_dicom(tmp_path: Path, keep: float) -> None:
    full = write_dicom(tmp_path / "full.dcm", RAMP_12, bits_stored=12).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(ValueError, match=r"cut\.dcm"):
        read_image(path)


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "header_only.dcm", RAMP_12, pixel_data=False)
    with pytest.raises(ValueError, match=r"header_only\.dcm has no PixelData"):
        read_image(path)


def test_multi_frame_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "frames.dcm", RAMP_12)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)
    with pytest.raises(ValueError, match=r"frames\.dcm has 2 frames"):
        read_image(path)


def test_empty_window_attributes_are_ignored(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "empty_window.dcm", RAMP_12, bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = None, None
    ds.save_as(path)
    np.testing.assert_allclose(read_image(path), RAMP_12 / 4080, atol=1e-6)


def test_invalid_window(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "bad_window.dcm", RAMP_12, bits_stored=12, window=(100.0, 0.0))
    with pytest.raises(ValueError, match=r"bad_window\.dcm: invalid rescale or window"):
        read_image(path)


def test_palette_color_is_unsupported(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "palette.dcm", RAMP_12)
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.save_as(path)
    with pytest.raises(ValueError, match="PALETTE COLOR is not supported"):
        read_image(path)


# --- JPG / PNG (MIMIC-CXR-JPG) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "pixels", "scale"),
    [
        (".png", np.arange(256, dtype=np.uint8).reshape(16, 16), 255),  # 8-bit grey
        (".png", (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16), 65535),  # 16-bit grey
        (".jpg", np.full((16, 16), 128, dtype=np.uint8), 255),
    ],
)
def test_raster_images(tmp_path: Path, suffix: str, pixels: np.ndarray, scale: int) -> None:
    path = tmp_path / f"image{suffix}"
    Image.fromarray(pixels).save(path, quality=95)
    image = read_image(path)
    _check_contract(image, pixels.shape)
    np.testing.assert_allclose(image, pixels / scale, atol=2 / 255)  # JPEG is lossy


def test_rgb_jpg_is_read_as_grey(tmp_path: Path) -> None:
    path = tmp_path / "colour.jpg"
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(path, quality=95)
    np.testing.assert_allclose(read_image(path), 200 / 255, atol=2 / 255)


def test_truncated_jpg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "cut.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.jpg"):
        read_image(path)


def test_garbage_png(tmp_path: Path) -> None:
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x00\x01not a png" * 10)
    with pytest.raises(ValueError, match=r"garbage\.png"):
        read_image(path)


# --- real public DICOM files --------------------------------------------------------------------


def _real(name: str) -> Path:
    path = REAL_DICOM / name
    if not path.is_file():
        pytest.skip(f"real sample DICOMs not available ({path} absent in this clone)")
    return path


@pytest.mark.parametrize("name", ["nih_00000001_000_google.dcm", "nih_00000002_000_google.dcm"])
def test_real_nih_monochrome2_8bit(name: str) -> None:
    path = _real(name)
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    image = read_image(path)
    _check_contract(image, (1024, 1024))
    # MONOCHROME2 without a window: the stored grey levels, min-max scaled, not inverted
    expected = (stored - stored.min()) / (stored.max() - stored.min())
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_real_veterinary_monochrome1_is_inverted() -> None:
    path = _real("highdicom_dx_image_veterinary_thorax.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_image(path)
    _check_contract(image, (169, 211))
    # Its window (center 128, width 256) spans the 8-bit range: display = 1 - stored / 255.
    np.testing.assert_allclose(image, 1 - ds.pixel_array / 255.0, atol=1e-6)
    # Inverted: the most attenuating (highest stored) pixels come out darkest.
    assert image.reshape(-1)[np.argmax(ds.pixel_array)] < 0.05
