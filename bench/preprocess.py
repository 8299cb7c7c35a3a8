"""Benchmark the preprocessing cache build against a plain decode+resize loop, side by side.

One run on the same files, methods interleaved (the order rotates every repeat) so that load
from other processes hits all of them alike; ratios are taken per repeat, then the median.

    python bench/preprocess.py --data-root DIR            # any folder of .dcm/.png/.jpg files
    python bench/preprocess.py --subjects 40 --seed 0     # a synthetic look-alike made for it

Targets: the cache's own cost over the plain loop (1 worker each) <= 25 %; 2 workers >= 1.6x
faster than 1. Also compares workers writing into the shared memmap with workers returning
arrays to the parent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from cxrlib.cli import run_cli
from cxrlib.images import cache as cache_module
from cxrlib.images.cache import build_cache
from cxrlib.images.decode import resize_to_square
from cxrlib.mimic.layout import IMAGE_SUFFIXES

OVERHEAD_TARGET = 0.25
SPEEDUP_TARGET = 1.6


def _cpu_seconds() -> float:
    """User + system time of this process and its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _items(data_root: Path, limit: int | None) -> pd.DataFrame:
    files = sorted(p for p in data_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no {list(IMAGE_SUFFIXES)} files under {data_root}")
    files = files[:limit] if limit else files
    rel = [p.relative_to(data_root).as_posix() for p in files]
    return pd.DataFrame({"dicom_id": [r.rsplit(".", 1)[0] for r in rel], "path": rel})


def _synthetic_root(subjects: int, seed: int, min_size: int, max_size: int) -> Path:
    try:
        from cxrlib.mimic.synth import ensure_synthetic
    except ImportError as exc:
        raise ValueError(
            f"the synthetic generator is not available ({exc}); pass --data-root"
        ) from exc
    return ensure_synthetic(subjects, seed, min_size=min_size, max_size=max_size)


def _methods(
    items: pd.DataFrame, root: Path, size: int, scratch: Path
) -> dict[str, Callable[[], None]]:
    from cxrlib.mimic.dicom import read_image

    def plain() -> None:
        for path in items["path"]:
            resize_to_square(read_image(root / path), size)

    def cache(workers: int, write_in_worker: bool = True) -> Callable[[], None]:
        def run() -> None:
            out = Path(tempfile.mkdtemp(dir=scratch))
            cache_module._WRITE_IN_WORKER = write_in_worker
            try:
                build_cache(items, root, out, size, workers=workers, progress=False)
            finally:
                cache_module._WRITE_IN_WORKER = True
                for name in os.listdir(out):
                    (out / name).unlink()
                out.rmdir()

        return run

    return {
        "plain decode+resize loop": plain,
        "build_cache workers=1": cache(1),
        "build_cache workers=2": cache(2),
        "build_cache workers=2, arrays returned": cache(2, write_in_worker=False),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-root", type=Path, help="folder of DICOM/PNG/JPG files (read only)")
    source.add_argument(
        "--subjects", type=int, help="generate a synthetic set of this many subjects"
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic set seed")
    parser.add_argument(
        "--min-size", type=int, default=512, help="synthetic image size, smallest side"
    )
    parser.add_argument(
        "--max-size", type=int, default=1024, help="synthetic image size, largest side"
    )
    parser.add_argument("--image-size", type=int, default=128, help="cache image size (px)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per method")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many files")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")

    root = args.data_root or _synthetic_root(args.subjects, args.seed, args.min_size, args.max_size)
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} is not a folder")
    items = _items(root, args.limit)
    n = len(items)
    for path in items["path"]:  # warm the page cache so the first method is not penalised
        (root / path).read_bytes()
    from cxrlib.mimic.dicom import read_image

    read_image(root / items["path"][0])  # and the reader's lazy imports
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as scratch:
        methods = _methods(items, root, args.image_size, Path(scratch))
        names = list(methods)
        seconds: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                start, start_cpu = time.perf_counter(), _cpu_seconds()
                methods[name]()
                seconds[name].append(time.perf_counter() - start)
                cpu[name].append(_cpu_seconds() - start_cpu)

    load = os.getloadavg()
    print(
        f"{n} images from {root}, cache image_size {args.image_size}, {args.repeats} repeats, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'method':42s} {'images/s (median)':>18s} {'best':>8s} {'CPU ms/image':>13s}")
    for name in names:
        rate, best = n / statistics.median(seconds[name]), n / min(seconds[name])
        work = 1000 * statistics.median(cpu[name]) / n
        print(f"{name:42s} {rate:18.1f} {best:8.1f} {work:13.2f}")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(seconds[a], seconds[b], strict=True))

    overhead = ratio(names[1], names[0]) - 1
    speedup = ratio(names[1], names[2])
    transport = ratio(names[3], names[2])
    print(
        f"cache overhead, 1 worker vs plain loop: {overhead:+.1%} "
        f"(target <= {OVERHEAD_TARGET:.0%}) {'PASS' if overhead <= OVERHEAD_TARGET else 'MISS'}"
    )
    print(
        f"speed-up, 2 workers vs 1: {speedup:.2f}x "
        f"(target >= {SPEEDUP_TARGET}x) {'PASS' if speedup >= SPEEDUP_TARGET else 'MISS'}"
    )
    print(
        f"workers writing the memmap vs returning arrays: {transport:.2f}x "
        "(> 1 = writing in the worker is faster)"
    )
    # CPU seconds do not depend on other load: they say what 2 free cores would give.
    extra = statistics.median(cpu[names[2]]) / statistics.median(cpu[names[1]])
    print(
        f"CPU work, 2 workers vs 1: {extra:.2f}x (pool and process cost); "
        f"with 2 idle cores the speed-up would be about {min(2.0, 2 / extra):.2f}x"
    )
    if load[0] > (os.cpu_count() or 1):
        print("note: load average above the CPU count; wall-clock ratios are unreliable")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
