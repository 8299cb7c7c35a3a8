"""The preprocessing cache built in slices: N builders, on as many machines as you like.

Shard ``i`` of ``N`` holds the rows ``[i * n // N, (i + 1) * n // N)`` of the sorted item list
(the cache's own row order) and is itself a small, complete cache in ``<out>/shards/i-of-N/``:
built, checkpointed and resumed exactly like a whole one (:mod:`cxrlib.images.cache`), its
``meta.json`` written last. Each builder writes only its own folder, so builders never share a
file, not even on a network file system. :func:`finish_shards` then checks that every shard is
there and complete and was built from the same items, size, reader and data root, and joins
them into the cache a single build writes, byte for byte (``pixels.u8``, ``index.csv`` and
``meta.json``, the last one written last), before removing the shards.

From the command line (every builder and the finisher take the same item list: stage 01's
``cohort.csv`` and ``report_samples.csv`` are what stage 01 caches)::

    python -m cxrlib.images.shards build --items cohort.csv report_samples.csv \\
        --data-root DIR --out RUN/01_preprocessing/images --image-size 224 --shard 3/8
    python -m cxrlib.images.shards finish --items ... --out ... --image-size 224 --shards 8

Stage 01 then finds the complete cache and reuses it.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlib import cli
from cxrlib.atomic import atomic_path, write_csv, write_json
from cxrlib.images.cache import (
    INDEX_COLUMNS,
    INDEX_FILE,
    META_FILE,
    PIXELS_FILE,
    ImageCache,
    build_folder,
    items_sha256,
    prepare_build,
    read_json,
    same_spec,
)
from cxrlib.images.decode import Reader

SHARDS_DIR = "shards"
#: Bytes copied at a time when joining the shards' pixels.
_COPY_CHUNK = 64 * 1024 * 1024


def shard_bounds(count: int, shard: int, shards: int) -> tuple[int, int]:
    """Rows ``[low, high)`` of shard ``shard`` of ``shards`` over ``count`` rows."""
    check_shard(shard, shards)
    return shard * count // shards, (shard + 1) * count // shards


def check_shard(shard: int, shards: int) -> None:
    """A ValueError unless ``0 <= shard < shards``."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"the number of shards must be an integer >= 1, got {shards!r}")
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
        raise ValueError(f"shard must be an integer in [0, {shards - 1}], got {shard!r}")


def shard_dir(out_dir: str | os.PathLike[str], shard: int, shards: int) -> Path:
    """``<out_dir>/shards/<shard>-of-<shards>``."""
    return Path(out_dir).expanduser().resolve() / SHARDS_DIR / f"{shard}-of-{shards}"


def _shard_spec(frame: pd.DataFrame, spec: dict[str, Any], shard: int, shards: int):
    low, high = shard_bounds(len(frame), shard, shards)
    part = frame.iloc[low:high].reset_index(drop=True)
    part_spec = {
        **spec,
        "count": len(part),
        "items_sha256": items_sha256(part),
        "shard": [shard, shards],
        "rows": [low, high],
        "cache_items_sha256": spec["items_sha256"],
    }
    return part, part_spec


def build_shard(
    items: pd.DataFrame,
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    image_size: int,
    shard: int,
    shards: int,
    *,
    workers: int = 2,
    progress: bool = True,
    reader: Reader | None = None,
) -> Path:
    """Build shard ``shard`` of ``shards`` of the cache of ``items`` (resuming an unfinished
    one, keeping a finished one); return its folder. Arguments as :func:`build_cache`."""
    check_shard(shard, shards)
    root, out, frame, reader, spec = prepare_build(
        items, data_root, out_dir, image_size, workers, reader
    )
    part, part_spec = _shard_spec(frame, spec, shard, shards)
    folder = shard_dir(out, shard, shards)
    if part.empty:  # more shards than images: nothing to decode, still a complete shard
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / INDEX_FILE, pd.DataFrame(columns=list(INDEX_COLUMNS)))
        write_json(folder / META_FILE, {**part_spec, "dtype": "uint8", "shape": [0, 0, 0]})
        return folder
    build_folder(part, root, folder, part_spec, reader, workers=int(workers), progress=progress)
    return folder


def finish_shards(
    items: pd.DataFrame,
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    image_size: int,
    shards: int,
    *,
    reader: Reader | None = None,
) -> ImageCache:
    """Join the ``shards`` complete shards into the cache at ``out_dir``; return it opened.

    Every shard must be complete and built from these items, size, reader and data root; the
    error names the ones that are not. A complete cache of the same build already there is
    returned as is (finishing twice is harmless).
    """
    check_shard(0, shards)
    root, out, frame, reader, spec = prepare_build(items, data_root, out_dir, image_size, 1, reader)
    meta = out / META_FILE
    if meta.is_file() and same_spec(read_json(meta), spec):
        return ImageCache.open(out)
    folders, problems = [], []
    for shard in range(shards):
        _, part_spec = _shard_spec(frame, spec, shard, shards)
        folder = shard_dir(out, shard, shards)
        problem = _shard_problem(folder, part_spec)
        if problem:
            problems.append(f"{shard}/{shards} ({problem})")
        folders.append(folder)
    if problems:
        raise FileNotFoundError(
            f"cannot finish the image cache at {out}: shard(s) {', '.join(problems)}; build "
            f"them with python -m cxrlib.images.shards build ... --shard i/{shards} (same "
            "items, data root, image size and reader), then finish again"
        )
    meta.unlink(missing_ok=True)  # the folder claims no cache until the new one is whole
    with atomic_path(out / PIXELS_FILE) as tmp, open(tmp, "wb") as target:
        for folder in (f for f in folders if (f / PIXELS_FILE).is_file()):
            with open(folder / PIXELS_FILE, "rb") as source:
                shutil.copyfileobj(source, target, _COPY_CHUNK)
    parts = [pd.read_csv(f / INDEX_FILE, dtype={"dicom_id": str, "path": str}) for f in folders]
    index = pd.concat(parts, ignore_index=True).assign(row=np.arange(len(frame)))
    write_csv(out / INDEX_FILE, index[list(INDEX_COLUMNS)])
    size = spec["image_size"]
    write_json(meta, {**spec, "dtype": "uint8", "shape": [len(frame), size, size]})
    shutil.rmtree(out / SHARDS_DIR)
    return ImageCache.open(out)


def _shard_problem(folder: Path, spec: dict[str, Any]) -> str | None:
    """Why the shard at ``folder`` cannot be used, or None."""
    if not (folder / META_FILE).is_file():
        return "unfinished" if folder.is_dir() else "missing"
    recorded = read_json(folder / META_FILE)
    if not same_spec(recorded, spec) or recorded.get("rows") != spec["rows"]:
        return "built from other items, size, reader or data root"
    pixels = folder / PIXELS_FILE
    expected = spec["count"] * spec["image_size"] ** 2
    if spec["count"] and (not pixels.is_file() or pixels.stat().st_size != expected):
        return "damaged: wrong pixels.u8 size"
    return None


# --- command line ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.images.shards",
        description="Build the image cache in slices (on several machines), then join them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("build", "build one shard (resumes an unfinished one)"),
        ("finish", "check that every shard is complete and join them into the cache"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--items", nargs="+", required=True, type=Path,
            help="CSV file(s) with columns dicom_id, path (e.g. stage 01's cohort.csv and "
            "report_samples.csv)",
        )  # fmt: skip
        command.add_argument("--data-root", required=True, type=Path, help="MIMIC-CXR root")
        command.add_argument("--out", required=True, type=Path, help="the cache folder")
        command.add_argument("--image-size", required=True, type=int, help="side in pixels")
        if name == "build":
            command.add_argument("--shard", required=True, help="i/N: shard i (from 0) of N")
            command.add_argument("--workers", type=int, default=2, help="decoding processes")
        else:
            command.add_argument("--shards", required=True, type=int, help="N, as when built")
    return parser


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> (3, 8), checked."""
    try:
        shard, shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be i/N, e.g. 0/8, got {text!r}") from None
    check_shard(shard, shards)
    return shard, shards


def read_items(paths: Sequence[Path]) -> pd.DataFrame:
    """The ``dicom_id, path`` rows of every file (duplicates are cached once)."""
    frames = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"items file {path} not found")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in ("dicom_id", "path") if c not in frame.columns]
        if missing:
            raise ValueError(f"items file {path} lacks column(s) {missing}")
        frames.append(frame[["dicom_id", "path"]])
    return pd.concat(frames, ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    items = read_items(args.items)
    if args.command == "build":
        shard, shards = parse_shard(args.shard)
        folder = build_shard(
            items, args.data_root, args.out, args.image_size, shard, shards, workers=args.workers
        )
        print(f"shard {shard}/{shards} complete: {folder}")
        return 0
    cache = finish_shards(items, args.data_root, args.out, args.image_size, args.shards)
    print(f"image cache complete: {len(cache)} images at {cache.image_size} px in {cache.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run_cli(main))
