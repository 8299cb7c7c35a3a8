"""Command line of the labeler: label the report column of a CSV, or explain one report.

    python -m cxrlib.labeler INPUT.csv --text-column COL --out OUT.csv [--prefix pred_]
    python -m cxrlib.labeler INPUT.csv --text-column COL --explain ROW

The output holds the input's columns, copied as text, then the 14 CheXpert label columns
(1.0 positive, 0.0 negative, -1.0 uncertain, empty not mentioned), named as in the CheXpert
header or with ``--prefix`` before each name (for an input that already holds labels, e.g. a
gold standard). ``--explain`` prints, for each label of one row, the phrase and the trigger that
decided it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cxrlib.atomic import check_writable, write_csv
from cxrlib.labeler._io import read_csv_text, require_column
from cxrlib.labeler.label import LABELS, explain_report, label_reports
from cxrlib.mimic.layout import POSITIVE

__all__ = ["label_csv", "main", "explain_row"]


def label_csv(
    input_csv: str | Path,
    *,
    text_column: str,
    out: str | Path,
    sections: bool = True,
    progress: bool = True,
    prefix: str = "",
) -> pd.DataFrame:
    """Label the ``text_column`` of a CSV; write its columns plus the 14 label columns to ``out``.

    Label columns are named ``prefix + label``. Input cells are copied as text, unchanged.
    Every check (input readable, column present, no name clash, ``out`` writable) runs before
    the labelling; errors are ``FileNotFoundError``/``PermissionError``/``ValueError`` naming
    the file and the problem.
    """
    input_csv, out = Path(input_csv), Path(out)
    if out.resolve() == input_csv.resolve():
        raise ValueError(f"--out must differ from the input file, got {out} for both")
    check_writable(out)
    frame = read_csv_text(input_csv)
    require_column(frame, input_csv, text_column)
    columns = [f"{prefix}{name}" for name in LABELS]
    clashes = [c for c in columns if c in frame.columns]
    if clashes:
        hint = (
            "pass --prefix (e.g. --prefix pred_) to write the labels under other names, or "
            "drop those columns"
            if not prefix
            else f"choose another --prefix than {prefix!r}"
        )
        raise ValueError(f"{input_csv} already has label columns {clashes}; {hint}")
    labels = label_reports(frame[text_column], sections=sections, progress=progress)
    labels.columns = columns
    result = pd.concat([frame, labels], axis=1)
    write_csv(out, result)
    return result


def explain_row(input_csv: str | Path, *, text_column: str, row: int, sections: bool = True) -> str:
    """A readable account of how each label of data row ``row`` (0-based) was decided."""
    frame = read_csv_text(input_csv)
    require_column(frame, input_csv, text_column)
    if not 0 <= row < len(frame):
        raise ValueError(
            f"--explain {row}: {input_csv} has {len(frame)} data rows; give a row number "
            f"from 0 to {len(frame) - 1}"
        )
    lines = [f"row {row} of {input_csv} ({text_column}):"]
    for d in explain_report(frame[text_column].iloc[row], sections=sections):
        value = "empty" if math.isnan(d.value) else f"{d.value:g}"
        line = f"  {d.label:<27} {value:>5}  {d.reason}"
        if d.phrase:
            line += f"; phrase {d.phrase!r}"
        if d.trigger:
            line += f", trigger {d.trigger!r}"
        if d.sentence:
            line += f"\n  {'':<27} {'':>5}  in: {d.sentence!r}"
        lines.append(line)
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.labeler",
        description="Label report texts with the 14 CheXpert observations "
        "(1.0 positive, 0.0 negative, -1.0 uncertain, empty not mentioned).",
    )
    parser.add_argument("input", type=Path, help="CSV file holding one report per row")
    parser.add_argument("--text-column", required=True, help="column holding the report text")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="CSV file to write")
    action.add_argument(
        "--explain",
        type=int,
        metavar="ROW",
        help="print how each label of data row ROW (0 = first row after the header) was "
        "decided, and write nothing",
    )
    parser.add_argument(
        "--prefix",
        default="",
        help="put this before each label column name (e.g. pred_), for an input that already "
        "has label columns",
    )
    parser.add_argument(
        "--whole-text",
        action="store_true",
        help="label the whole text instead of the findings and impression sections",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the CLI; returns the exit status."""
    args = _parse_args(argv)
    sections = not args.whole_text
    if args.explain is not None:
        print(
            explain_row(
                args.input, text_column=args.text_column, row=args.explain, sections=sections
            )
        )
        return 0
    result = label_csv(
        args.input,
        text_column=args.text_column,
        out=args.out,
        sections=sections,
        progress=not args.no_progress,
        prefix=args.prefix,
    )
    columns = [f"{args.prefix}{name}" for name in LABELS]
    positives = (result[columns] == POSITIVE).sum()
    print(f"labelled {len(result)} reports -> {args.out}")
    print("positive mentions per label: " + ", ".join(f"{k} {v}" for k, v in positives.items()))
    return 0
