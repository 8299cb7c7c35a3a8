"""Benchmark of CNN training: data-pipeline overhead and images/s per architecture.

From one run, side by side:

1. an epoch through the project's data pipeline (``CachedImageDataset`` over the memmapped
   cache, training augmentation, ``make_loader``) against pure model compute on the very same
   batches held in memory; the ratio should be <= 1.10 (the pipeline costs at most 10%);
2. training and inference images/s of every architecture of the zoo at the same image size.

Epochs are interleaved (pipeline, pure, pipeline, pure, ...) and the median is reported, so
load from other processes hits both sides alike.

    python bench/train.py                       # a temporary random cache, 64 px
    python bench/train.py --run-dir runs/demo   # the cache and cohort of a finished stage 01
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cxrlib.classify.train import masked_bce
from cxrlib.classify.zoo import ARCHITECTURES, create_model
from cxrlib.cli import run_cli
from cxrlib.images.cache import ImageCache, build_cache
from cxrlib.images.dataset import CachedImageDataset, make_loader
from cxrlib.images.transforms import train_transform
from cxrlib.paths import stage_dir

TARGET_RATIO = 1.10


def _read_npy(path: Path) -> np.ndarray:
    return np.load(path)


def _random_cache(folder: Path, count: int, image_size: int) -> tuple[ImageCache, pd.DataFrame]:
    rng = np.random.default_rng(0)
    (folder / "data").mkdir()
    rows = []
    for k in range(count):
        dicom_id = f"{k:08x}-00000000-00000000-00000000-00000000"
        path = f"{dicom_id}.npy"
        np.save(folder / "data" / path, rng.random((image_size, image_size), dtype=np.float32))
        rows.append({"dicom_id": dicom_id, "path": path, "label": float(k % 2)})
    frame = pd.DataFrame(rows)
    cache = build_cache(
        frame,
        folder / "data",
        folder / "cache",
        image_size,
        workers=1,
        progress=False,
        reader=_read_npy,
    )
    return cache, frame


def _stage01(run_dir: Path) -> tuple[ImageCache, pd.DataFrame]:
    out = stage_dir(run_dir, "01_preprocessing")
    cache = ImageCache.open(out / "images")
    cohort = pd.read_csv(out / "cohort.csv", dtype={"dicom_id": str})
    train = cohort[cohort["split"] == "train"].drop_duplicates("dicom_id")
    return cache, train.reset_index(drop=True)


def _step(model, optimizer, images: torch.Tensor, labels: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    masked_bce(model(images), labels).backward()
    optimizer.step()


def _epoch(model, optimizer, batches: Iterable[dict]) -> float:
    tick = time.perf_counter()
    for batch in batches:
        _step(model, optimizer, batch["image"], batch["label"])
    return time.perf_counter() - tick


def pipeline_ratio(
    cache: ImageCache, frame: pd.DataFrame, *, architecture: str, batch_size: int, repeats: int
) -> tuple[float, float, float]:
    """(median pipeline epoch s, median pure-compute epoch s, ratio) on the same batches."""
    torch.manual_seed(0)
    dataset = CachedImageDataset(cache, frame, transform=train_transform())
    loader = make_loader(dataset, batch_size, shuffle=True, seed=0)
    held = [{"image": b["image"].clone(), "label": b["label"].clone()} for b in loader]
    model = create_model(architecture).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    _epoch(model, optimizer, held[:2])  # warm-up: allocator, kernels
    with_pipeline, pure = [], []
    for _ in range(repeats):
        with_pipeline.append(_epoch(model, optimizer, loader))
        pure.append(_epoch(model, optimizer, held))
    a, b = statistics.median(with_pipeline), statistics.median(pure)
    return a, b, a / b


def throughput(
    architectures: Sequence[str], image_size: int, batch_size: int, steps: int
) -> pd.DataFrame:
    """Training and inference images/s of each architecture on random batches."""
    rows = []
    images = torch.randn(batch_size, 1, image_size, image_size)
    labels = (torch.arange(batch_size) % 2).float()
    for name in architectures:
        torch.manual_seed(0)
        model = create_model(name).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        _step(model, optimizer, images, labels)
        tick = time.perf_counter()
        for _ in range(steps):
            _step(model, optimizer, images, labels)
        train_rate = steps * batch_size / (time.perf_counter() - tick)
        model.eval()
        with torch.no_grad():
            model(images)
            tick = time.perf_counter()
            for _ in range(steps):
                model(images)
            infer_rate = steps * batch_size / (time.perf_counter() - tick)
        rows.append(
            {
                "architecture": name,
                "train_img_s": round(train_rate, 1),
                "infer_img_s": round(infer_rate, 1),
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="run folder with a finished 01_preprocessing")
    parser.add_argument("--images", type=int, default=256, help="random cache size (no --run-dir)")
    parser.add_argument("--image-size", type=int, default=64, help="px (no --run-dir)")
    parser.add_argument("--architecture", default="resnet18", choices=sorted(ARCHITECTURES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved epoch pairs")
    parser.add_argument("--steps", type=int, default=3, help="batches per throughput measure")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument(
        "--architectures",
        default=",".join(ARCHITECTURES),
        help="comma-separated, for images/s ('' to skip)",
    )
    args = parser.parse_args(argv)
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:  # 1 thread is steadier on a busy machine (no OpenMP spinning)
        torch.set_num_threads(args.threads)
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.run_dir is not None:
            cache, frame = _stage01(args.run_dir)
        else:
            cache, frame = _random_cache(Path(tmp), args.images, args.image_size)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{len(frame)} images at {cache.image_size} px, batch {args.batch_size}"
        )
        a, b, ratio = pipeline_ratio(
            cache,
            frame,
            architecture=args.architecture,
            batch_size=args.batch_size,
            repeats=args.repeats,
        )
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        print(
            f"epoch with data pipeline {a:.2f} s | pure compute on the same batches {b:.2f} s "
            f"| ratio {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}"
        )
        names = [n for n in args.architectures.split(",") if n]
        if names:
            table = throughput(names, cache.image_size, args.batch_size, args.steps)
            print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
