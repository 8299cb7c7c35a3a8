"""Speed of the synthetic MIMIC-CXR writer: studies/s, images/s and MB/s against the target.

    python bench/synth.py [--subjects 100] [--workers 1,2] [--min-size 512 --max-size 1024]

Each worker count writes the same release (same seed) into a fresh temporary folder, side by
side in one run, so the ratios compare like with like on this machine's current load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cxrlib.mimic.synth import generate

TARGET_STUDIES_PER_S = 20.0


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,2", help="comma-separated process counts")
    parser.add_argument("--min-size", type=int, default=512)
    parser.add_argument("--max-size", type=int, default=1024)
    args = parser.parse_args()
    print(f"{args.subjects} subjects, sizes {args.min_size}-{args.max_size} px")
    print(
        f"{'workers':>7} {'seconds':>8} {'studies/s':>10} {'images/s':>9} {'MB/s':>7} "
        f"{'vs target':>9}"
    )
    first = None
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "mimic"
            start = time.perf_counter()
            summary = generate(
                root,
                args.subjects,
                args.seed,
                min_size=args.min_size,
                max_size=args.max_size,
                progress=False,
                workers=workers,
            )
            seconds = time.perf_counter() - start
            rate = summary.studies / seconds
            first = first or rate
            print(
                f"{workers:>7} {seconds:>8.1f} {rate:>10.1f} {summary.images / seconds:>9.1f} "
                f"{_size_mb(root) / seconds:>7.1f} {rate / TARGET_STUDIES_PER_S:>8.2f}x"
                f"   ({rate / first:.2f}x the first row)"
            )


if __name__ == "__main__":
    main()
