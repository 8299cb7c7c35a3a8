"""The CNN stages' dataset over the preprocessing cache, and a fast, deterministic loader."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torch.utils.data.sampler import BatchSampler

from cxrlib import distributed
from cxrlib.images.cache import ImageCache
from cxrlib.images.normalization import NORMALIZE_MEAN, NORMALIZE_STD
from cxrlib.images.transforms import pixels_to_tensor
from cxrlib.seeding import worker_init_fn

Transform = Callable[[torch.Tensor], torch.Tensor]


class _Batch(NamedTuple):
    """What the loader's batch sampler yields: dataset positions and the epoch's seed (the
    image at position ``p`` draws its augmentation from ``seed + p``)."""

    indices: tuple[int, ...]
    seed: int


class CachedImageDataset(Dataset):
    """Chest radiographs from an :class:`~cxrlib.images.cache.ImageCache`, one per ``frame`` row.

    **Samples** (the one sample contract of the project)::

        {"image":    float32 tensor (C, S, S), C = ``channels`` (1, or 3 = the grey image
                     repeated for ImageNet-shaped models), S = cache.image_size,
                     values (x/255 - NORMALIZE_MEAN) / NORMALIZE_STD, i.e. [-1, 1], bright bones;
         "label":    float32 tensor, shape () for one ``label_column`` or (K,) for K columns;
                     1 = positive, 0 = negative, NaN = unknown (``label_column=None``: all NaN);
         "dicom_id": str, the image's MIMIC-CXR dicom_id;
         "index":    int, the row position in ``frame`` (join outputs back with frame.iloc)}

    A batch from :func:`make_loader` has the same keys: image (B, C, S, S), label (B,) or (B, K),
    dicom_id a list of B str, index an int64 tensor (B,).

    **Data**: MIMIC-CXR (Johnson et al., Scientific Data 2019; PhysioNet credentialed licence,
    data use agreement required) or the project's synthetic look-alike (no restrictions). The
    dataset holds ``len(frame)`` images; labels are taken from ``frame`` as they are (values other
    than 0/1/NaN are kept, and the first-batch check warns about them).

    **Leakage**: this class never splits. Pass the rows of one split of the cohort, whose split is
    by patient (``subject_splits.csv``), never by image.

    ``transform`` (e.g. :func:`~cxrlib.images.transforms.train_transform`) acts on one float
    image (1, S, S) in [0, 1] before normalisation; under :func:`make_loader` its random draws
    are seeded per image and epoch, so an image is augmented alike whichever process and batch
    it lands in.
    """

    def __init__(
        self,
        cache: ImageCache,
        frame: pd.DataFrame,
        *,
        label_column: str | Sequence[str] | None = "label",
        transform: Transform | None = None,
        channels: int = 1,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        columns = [label_column] if isinstance(label_column, str) else list(label_column or [])
        missing = [c for c in ("dicom_id", *columns) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"frame lacks column(s) {missing}; it has {list(frame.columns)} "
                "(label_column names the label column(s), or None for unlabelled images)"
            )
        self.cache = cache
        self.frame = frame.reset_index(drop=True)
        self.transform = transform
        self.channels = channels
        self.label_columns = tuple(columns)
        self._scalar_label = isinstance(label_column, str) or label_column is None
        self._dicom_ids = self.frame["dicom_id"].astype(str).tolist()
        self._rows = cache.rows(self._dicom_ids)
        self._labels = self._read_labels()

    def _read_labels(self) -> np.ndarray:
        if not self.label_columns:
            return np.full(len(self.frame), np.nan, dtype=np.float32)
        labels = []
        for column in self.label_columns:
            values = pd.to_numeric(self.frame[column], errors="coerce")
            bad = values.isna() & self.frame[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(
                    f"label column {column!r} holds a non-numeric value "
                    f"{self.frame[column].iloc[row]!r} in row {row}; labels are 1, 0 or empty"
                )
            labels.append(values.to_numpy(dtype=np.float32))
        stacked = np.stack(labels, axis=1)
        return stacked[:, 0].copy() if self._scalar_label else stacked

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        known = self._labels[np.isfinite(self._labels)]
        return (
            f"CachedImageDataset(images={len(self)}, image_size={self.cache.image_size}, "
            f"channels={self.channels}, labels={list(self.label_columns)}, "
            f"positives={int((known == 1).sum())}, negatives={int((known == 0).sum())}, "
            f"unknown={int(self._labels.size - known.size)})"
        )

    def __getitem__(self, index: int | _Batch) -> dict[str, Any]:
        """One sample (an int index), or a whole batch (what :func:`make_loader` asks for)."""
        if isinstance(index, _Batch):
            return self.get_batch(index.indices, seed=index.seed)
        position = int(index)
        if not -len(self) <= position < len(self):
            raise IndexError(f"index {position} out of range for {len(self)} images")
        position %= len(self)
        image = pixels_to_tensor(self.cache.pixels[self._rows[position]])
        if self.transform is not None:
            image = self.transform(image)
        return {
            "image": self._finish(image),
            "label": torch.from_numpy(np.array(self._labels[position])),
            "dicom_id": self._dicom_ids[position],
            "index": position,
        }

    def get_batch(self, indices: Sequence[int], *, seed: int | None = None) -> dict[str, Any]:
        """A collated batch read from the memmap in one slice (no per-sample collation).

        With ``seed``, the image at dataset position ``p`` draws its transform from torch's
        generator seeded with ``seed + p`` and the global state is left untouched, so an image
        is augmented the same whichever process, batch or batch position it lands in, and
        whatever the model drew in between.
        """
        positions = np.asarray(indices, dtype=np.int64)
        images = pixels_to_tensor(self.cache.pixels[self._rows[positions]])
        if self.transform is not None:
            with torch.random.fork_rng(devices=[], enabled=seed is not None):
                augmented = []
                for position, image in zip(positions, images, strict=True):
                    if seed is not None:
                        torch.manual_seed((seed + int(position)) % 2**63)
                    augmented.append(self.transform(image))
                images = torch.stack(augmented)
        return {
            "image": self._finish(images),
            "label": torch.from_numpy(self._labels[positions]),
            "dicom_id": [self._dicom_ids[p] for p in positions],
            "index": torch.from_numpy(positions),
        }

    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        # in place: the tensor is this call's own, and a batch is a few MB
        image = image.sub_(NORMALIZE_MEAN).div_(NORMALIZE_STD)
        return image.repeat_interleave(self.channels, dim=-3) if self.channels > 1 else image


class _ShardedBatches(Sampler):
    """This process's batches of each epoch, and the epoch's augmentation seed.

    The order of an epoch is ``DistributedSampler``'s (a permutation seeded with ``seed +
    epoch``; with P processes rank r takes positions r, r + P, ...), cut into batches of
    ``batch_size`` per process. Batch k of every rank together are positions [kB, (k+1)B) of
    the permutation, B = P x ``batch_size``: the batch one process with batch B would see, which
    is what lets P processes train like one. Each pass starts the next epoch unless
    :meth:`set_epoch` says which.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        world: distributed.World,
        collated: bool,
    ) -> None:
        self._order = DistributedSampler(
            dataset, num_replicas=world.size, rank=world.rank, shuffle=shuffle, seed=seed
        )
        self._batches = BatchSampler(self._order, batch_size, drop_last)
        self._seed = int(seed)
        self._collated = collated
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle and augment as epoch ``epoch`` on the next pass."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[_Batch | list[int]]:
        self._order.set_epoch(self.epoch)
        seed = epoch_seed(self._seed, self.epoch)
        self.epoch += 1
        for indices in self._batches:
            yield _Batch(tuple(indices), seed) if self._collated else list(indices)

    def __len__(self) -> int:
        return len(self._batches)


def epoch_seed(seed: int, epoch: int) -> int:
    """The augmentation seed of one epoch of a loader seeded with ``seed`` (same on every rank)."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(2, np.uint32)
    return (int(state[0]) << 30) ^ int(state[1])


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell a :func:`make_loader` loader which epoch comes next (other iterables: nothing)."""
    for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


class _CheckedLoader(DataLoader):
    """A DataLoader whose first batch ever is checked once for implausible pixels or labels."""

    _sanity_checked = False

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        if self._sanity_checked:
            return batches
        self._sanity_checked = True
        return _check_first(batches)


def _check_first(batches: Iterator[Any]) -> Iterator[Any]:
    first = True
    for batch in batches:
        if first and isinstance(batch, dict):
            problems = first_batch_problems(batch)
            if problems:
                warnings.warn("first batch looks wrong: " + "; ".join(problems), stacklevel=2)
        first = False
        yield batch


def first_batch_problems(batch: dict[str, Any]) -> list[str]:
    """Cheap plausibility checks of a batch (pixel range, label values and balance), as text."""
    problems = []
    image = batch.get("image")
    if isinstance(image, torch.Tensor) and image.numel():
        low, high = float(image.min()), float(image.max())
        if low < -1.001 or high > 1.001:
            problems.append(
                f"pixel values in [{low:.3g}, {high:.3g}], expected [-1, 1] after normalisation "
                "(normalised twice, or not built from uint8 cache pixels?)"
            )
        elif high - low < 0.05:
            problems.append(
                f"pixel values almost constant ([{low:.3g}, {high:.3g}]): blank images?"
            )
    label = batch.get("label")
    if isinstance(label, torch.Tensor) and label.numel():
        known = label[torch.isfinite(label)]
        odd = sorted({float(v) for v in known.unique()} - {0.0, 1.0})
        if odd:
            problems.append(f"labels other than 0/1/NaN: {odd[:5]} (map uncertain labels first)")
        elif known.numel() >= 8 and known.unique().numel() == 1:
            problems.append(
                f"all {known.numel()} known labels are {float(known[0]):g}: check label_column, "
                "the cohort's balance, or shuffle"
            )
    return problems


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader with seeded shuffling and augmentation, and a first-batch sanity check.

    The same ``seed`` gives the same batches (order and augmentation) whatever ``num_workers``.
    Each pass over the loader is the next epoch (reshuffled, re-augmented); ``set_epoch`` names
    one. Inside a torchrun job (:mod:`cxrlib.distributed`) every process gets its share of each
    batch: ``batch_size`` is the global batch, each of P processes loads ``batch_size / P``
    (rounded up) of it, and the shares of one step make up the batch a single process would
    load. Sequential loaders (``shuffle=False``) give each process every P-th image, the last
    few repeated so that all have as many; their ``index`` tells the images apart.
    For a :class:`CachedImageDataset` each batch is read from the memmap in one slice and
    augmented in place of per-sample loading and collation; other datasets load as usual.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    world = distributed.world()
    collated = isinstance(dataset, CachedImageDataset)
    batches = _ShardedBatches(
        dataset,
        math.ceil(batch_size / world.size),
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        world=world,
        collated=collated,
    )
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "worker_init_fn": worker_init_fn,
        # the DataLoader draws its worker base seed from its own generator at every iterator
        # start (once only with persistent workers); order and augmentation never use it
        "generator": torch.Generator().manual_seed(int(seed) + 1),
        "pin_memory": pin_memory,
        "persistent_workers": num_workers > 0,
    }
    if collated:
        # batch_size=None: the sampler yields whole batches, the dataset returns them collated.
        return _CheckedLoader(dataset, sampler=batches, batch_size=None, **common)
    return _CheckedLoader(dataset, batch_sampler=batches, **common)
