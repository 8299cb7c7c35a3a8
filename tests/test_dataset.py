"""CNN dataset over the cache: the sample contract, seeded loaders, augmentation, sanity check."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from cxrlib.images.cache import ImageCache, build_cache
from cxrlib.images.dataset import CachedImageDataset, first_batch_problems, make_loader
from cxrlib.images.normalization import NORMALIZE_MEAN, NORMALIZE_STD
from cxrlib.images.transforms import denormalize, pixels_to_tensor, train_transform

SIZE = 16
N = 24


def read_npy(path: Path) -> np.ndarray:
    """Test reader: the float image saved with np.save."""
    return np.load(path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    """N distinct 16-px images: a vertical gradient whose brightness grows with the image number."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    ids, paths = [], []
    for k in range(N):
        image = np.clip(
            np.linspace(0, 1, SIZE)[:, None] * (k + 1) / N + rng.random((SIZE, SIZE)) * 0.1, 0, 1
        )
        np.save(root / f"im{k:02d}.npy", image.astype(np.float32))
        ids.append(f"im{k:02d}")
        paths.append(f"im{k:02d}.npy")
    items = pd.DataFrame({"dicom_id": ids, "path": paths})
    out = tmp_path_factory.mktemp("cache")
    return build_cache(items, root, out, SIZE, workers=1, progress=False, reader=read_npy)


@pytest.fixture
def frame() -> pd.DataFrame:
    labels = [1.0, 0.0, np.nan] * (N // 3)
    return pd.DataFrame(
        {
            "dicom_id": [f"im{k:02d}" for k in reversed(range(N))],  # not the cache's order
            "label": labels,
            "other": [0.0, 1.0] * (N // 2),
        }
    )


# --- sample contract ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_sample_contract(cache: ImageCache, frame: pd.DataFrame, channels: int) -> None:
    dataset = CachedImageDataset(cache, frame, channels=channels)
    assert len(dataset) == N
    sample = dataset[1]
    assert set(sample) == {"image", "label", "dicom_id", "index"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (
        channels,
        SIZE,
        SIZE,
    )
    assert sample["dicom_id"] == "im22" and sample["index"] == 1  # frame row 1
    assert sample["label"].dtype == torch.float32 and sample["label"].shape == ()
    assert float(sample["label"]) == 0.0 and torch.isnan(dataset[2]["label"])  # NaN = unknown
    expected = (cache.get("im22").astype(np.float32) / 255 - 0.5) / 0.5
    for channel in sample["image"]:
        assert torch.allclose(channel, torch.from_numpy(expected), atol=1e-6)
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
    assert dataset[-1]["dicom_id"] == "im00"
    with pytest.raises(IndexError):
        dataset[N]


def test_normalisation_constants_and_inverse() -> None:
    assert NORMALIZE_MEAN == 0.5 and NORMALIZE_STD == 0.5  # the paper's values
    pixels = np.array([[0, 51, 255]], dtype=np.uint8)
    image = pixels_to_tensor(pixels)
    assert image.shape == (1, 1, 3) and image.flatten().tolist() == pytest.approx([0, 0.2, 1])
    assert torch.allclose(denormalize((image - 0.5) / 0.5), image)
    assert torch.equal(pixels_to_tensor(pixels, channels=3), image.repeat(3, 1, 1))
    with pytest.raises(ValueError, match="pixels must be uint8"):
        pixels_to_tensor(pixels.astype(np.float32))


@pytest.mark.parametrize(
    ("label_column", "shape", "first"),
    [
        ("label", (), [1.0]),
        (["label", "other"], (2,), [1.0, 0.0]),  # several columns: multi-label vector
        (None, (), [float("nan")]),  # unlabelled images (inference only)
    ],
)
def test_label_columns(
    cache: ImageCache, frame: pd.DataFrame, label_column: object, shape: tuple, first: list
) -> None:
    dataset = CachedImageDataset(cache, frame, label_column=label_column)
    label = dataset[0]["label"]
    assert label.shape == shape
    np.testing.assert_array_equal(label.numpy().reshape(-1), np.array(first, dtype=np.float32))


def test_loader_batch_equals_stacked_samples(cache: ImageCache, frame: pd.DataFrame) -> None:
    dataset = CachedImageDataset(cache, frame, label_column=["label", "other"], channels=3)
    loader = make_loader(dataset, 5, shuffle=False, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 5  # 24 images: four of 5, one of 4
    batch = batches[1]
    assert batch["image"].shape == (5, 3, SIZE, SIZE) and batch["label"].shape == (5, 2)
    assert batch["index"].tolist() == [5, 6, 7, 8, 9]
    assert batch["dicom_id"] == [dataset[i]["dicom_id"] for i in range(5, 10)]
    for row, i in enumerate(range(5, 10)):
        assert torch.equal(batch["image"][row], dataset[i]["image"])
        torch.testing.assert_close(batch["label"][row], dataset[i]["label"], equal_nan=True)
    drop = make_loader(dataset, 5, shuffle=False, seed=0, drop_last=True)
    assert len(drop) == len(list(drop)) == 4


# --- determinism ---------------------------------------------------------------------------------
def _epochs(loader: torch.utils.data.DataLoader, epochs: int = 2) -> list[dict]:
    return [batch for _ in range(epochs) for batch in loader]


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["image"], y["image"]) and torch.equal(x["index"], y["index"])
        for x, y in zip(a, b, strict=True)
    )


def test_same_seed_same_batches_and_augmentation(cache: ImageCache, frame: pd.DataFrame) -> None:
    dataset = CachedImageDataset(cache, frame, transform=train_transform())
    torch.manual_seed(1)
    first = _epochs(make_loader(dataset, 8, shuffle=True, seed=7))
    torch.manual_seed(2)  # the global generator plays no part
    second = _epochs(make_loader(dataset, 8, shuffle=True, seed=7))
    assert _same(first, second)
    other = _epochs(make_loader(dataset, 8, shuffle=True, seed=8))
    assert not _same(first, other)
    # each epoch reshuffles and re-augments
    assert not torch.equal(first[0]["index"], first[3]["index"])
    # augmentation really changed the pixels (flip or rotation)
    plain = CachedImageDataset(cache, frame)
    assert any(
        not torch.equal(b["image"], plain.get_batch(b["index"].tolist())["image"]) for b in first
    )


def test_worker_processes_give_the_same_batches(cache: ImageCache, frame: pd.DataFrame) -> None:
    dataset = CachedImageDataset(cache, frame, transform=train_transform())
    in_process = _epochs(make_loader(dataset, 8, shuffle=True, seed=3))
    workers = _epochs(make_loader(dataset, 8, shuffle=True, seed=3, num_workers=2))
    assert _same(in_process, workers)


def test_augmentation_is_reproducible_with_a_seed(cache: ImageCache) -> None:
    image = pixels_to_tensor(cache.get("im05"))
    transform = train_transform(max_rotation=15)
    torch.manual_seed(0)
    a = torch.stack([transform(image) for _ in range(6)])
    torch.manual_seed(0)
    b = torch.stack([transform(image) for _ in range(6)])
    assert torch.equal(a, b)
    assert a.shape == (6, 1, SIZE, SIZE) and a.min() >= 0 and a.max() <= 1
    assert len({tuple(x.flatten().tolist()) for x in a}) > 1  # random draws differ
    assert torch.equal(train_transform(flip=False, max_rotation=0)(image), image)
    flip_only = train_transform(max_rotation=0)
    outputs = {bool(torch.equal(flip_only(image), image.flip(-1))) for _ in range(20)}
    assert outputs == {True, False}  # p = 0.5: both happen in 20 draws
    with pytest.raises(ValueError, match="max_rotation must be >= 0"):
        train_transform(max_rotation=-1)


# --- first-batch sanity check --------------------------------------------------------------------
def test_sanity_check_warns_once_on_one_class(cache: ImageCache, frame: pd.DataFrame) -> None:
    dataset = CachedImageDataset(cache, frame.assign(label=0.0))
    loader = make_loader(dataset, 8, shuffle=True, seed=0)
    with pytest.warns(UserWarning, match="all 8 known labels are 0"):
        list(loader)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(loader)  # checked once per loader


def test_sanity_check_is_quiet_on_plausible_data(cache: ImageCache, frame: pd.DataFrame) -> None:
    loader = make_loader(CachedImageDataset(cache, frame), 8, shuffle=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(loader)


@pytest.mark.parametrize(
    ("image", "label", "message"),
    [
        (torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0.0, 1, 0, 1]), None),
        (
            torch.rand(4, 1, 8, 8) * 255,
            torch.tensor([0.0, 1, 0, 1]),
            r"pixel values in \[.*expected \[-1, 1\]",
        ),
        (torch.full((4, 1, 8, 8), 0.3), torch.tensor([0.0, 1, 0, 1]), "almost constant"),
        (
            torch.rand(4, 1, 8, 8),
            torch.tensor([0.0, 1, -1, float("nan")]),
            r"labels other than 0/1/NaN: \[-1.0\]",
        ),
        (torch.rand(8, 1, 8, 8), torch.ones(8), "all 8 known labels are 1"),
        (torch.rand(7, 1, 8, 8), torch.ones(7), None),  # too few to judge the balance
    ],
)
def test_first_batch_problems(
    image: torch.Tensor, label: torch.Tensor, message: str | None
) -> None:
    problems = first_batch_problems({"image": image, "label": label})
    if message is None:
        assert problems == []
    else:
        assert len(problems) == 1 and re.search(message, problems[0])


# --- other datasets and errors -------------------------------------------------------------------
def test_make_loader_accepts_any_map_dataset() -> None:
    data = TensorDataset(torch.arange(10.0))
    a = [b[0].tolist() for b in make_loader(data, 4, shuffle=True, seed=5)]
    b = [b[0].tolist() for b in make_loader(data, 4, shuffle=True, seed=5)]
    assert a == b and sorted(sum(a, [])) == list(range(10))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"channels": 2}, ValueError, "channels must be 1 or 3, got 2"),
        ({"label_column": "Pneumonia"}, ValueError, r"frame lacks column\(s\) \['Pneumonia'\]"),
        (
            {"frame": pd.DataFrame({"dicom_id": ["im00"], "label": ["yes"]})},
            ValueError,
            "non-numeric value 'yes' in row 0",
        ),
        (
            {"frame": pd.DataFrame({"dicom_id": ["zz"], "label": [1]})},
            KeyError,
            r"not in the image cache .*'zz'",
        ),
    ],
)
def test_dataset_errors(
    cache: ImageCache, frame: pd.DataFrame, kwargs: dict, error: type, message: str
) -> None:
    args = {"frame": frame, **kwargs}
    with pytest.raises(error, match=message):
        CachedImageDataset(cache, **args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
    ],
)
def test_loader_errors(cache: ImageCache, frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    args = {"batch_size": 4, "shuffle": False, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_loader(CachedImageDataset(cache, frame), **args)
