"""``python -m cxrlib.mimic.synth --out DIR --subjects N --seed S``: write a synthetic release."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cxrlib.cli import run_cli
from cxrlib.mimic.synth.generate import generate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.mimic.synth",
        description="Write a synthetic MIMIC-CXR look-alike (DICOM, reports, CSV tables).",
    )
    parser.add_argument("--out", required=True, help="output folder (missing or empty)")
    parser.add_argument("--subjects", type=int, required=True, help="number of patients")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--min-size", type=int, default=512, help="smallest image side in px")
    parser.add_argument("--max-size", type=int, default=1024, help="largest image side in px")
    parser.add_argument(
        "--prevalence",
        choices=("mimic", "enriched"),
        default="mimic",
        help="label rates: the release's (default) or enriched paper findings (demo scale)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate and print the counts."""
    args = _parser().parse_args(argv)
    summary = generate(
        args.out,
        args.subjects,
        args.seed,
        min_size=args.min_size,
        max_size=args.max_size,
        prevalence=args.prevalence,
        progress=not args.quiet,
        workers=args.workers,
    )
    print(
        f"wrote {summary.subjects} subjects, {summary.studies} studies, {summary.images} images "
        f"to {summary.root} (split subjects {summary.split_subjects})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
