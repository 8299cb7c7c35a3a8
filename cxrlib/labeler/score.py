"""Score the labeler against gold labels: per-finding precision, recall and F1.

    python -m cxrlib.labeler.score GOLD.csv --text-column report_text

``GOLD.csv`` holds report texts and, for any of the 14 CheXpert labels, a gold column named
``<label> (gold)`` (another suffix with ``--gold-suffix``): 1 present, 0 or empty not present,
-1 uncertain. The labeler reads each text; each label becomes present/not present under two
conventions, applied to gold and labeler alike: uncertain (-1) counted as not present
("uncertain as negative") and as present ("uncertain as positive"). Printed per finding:
precision, recall, F1 (scikit-learn, ``zero_division=0``), gold positives and predicted
positives under each convention; then the macro average over the findings other than No
Finding, and No Finding on its own line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from cxrlib.atomic import check_writable, write_csv
from cxrlib.choices import UNCERTAIN_AS
from cxrlib.cli import run_cli
from cxrlib.labeler._io import read_csv_text, require_column
from cxrlib.labeler.label import LABELS, NO_FINDING, label_reports
from cxrlib.mimic.layout import POSITIVE, UNCERTAIN

__all__ = [
    "GOLD_SUFFIX",
    "MACRO",
    "UNCERTAIN_AS",
    "better_convention_f1",
    "format_table",
    "main",
    "score_csv",
    "score_labels",
]

GOLD_SUFFIX = " (gold)"
#: Row name of the macro average (over the scored findings other than No Finding).
MACRO = "macro"
_COLUMNS = ("finding", "uncertain_as", "precision", "recall", "f1", "support", "predicted")


def gold_columns(frame: pd.DataFrame, suffix: str = GOLD_SUFFIX) -> dict[str, str]:
    """CheXpert label -> gold column of ``frame``, for every label that has one."""
    return {name: f"{name}{suffix}" for name in LABELS if f"{name}{suffix}" in frame.columns}


def read_gold(frame: pd.DataFrame, columns: dict[str, str], path: str | Path) -> pd.DataFrame:
    """The gold columns as floats (1, 0, -1, NaN for empty), named by their CheXpert label."""
    gold = {}
    for name, column in columns.items():
        text = frame[column].str.strip()
        values = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        bad = text.ne("") & ~values.isin([1.0, 0.0, -1.0])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: column {column!r} row {row} holds {frame[column].iloc[row]!r}; gold "
                "labels must be 1 (present), 0 (not present), -1 (uncertain) or empty"
            )
        gold[name] = values.astype(float)
    return pd.DataFrame(gold)


def present(labels: pd.Series, uncertain_as: str) -> np.ndarray:
    """0/1 "present" of a label column (1, 0, -1, NaN) under one convention."""
    if uncertain_as not in UNCERTAIN_AS:
        raise ValueError(f"uncertain_as must be one of {UNCERTAIN_AS}, got {uncertain_as!r}")
    values = labels.to_numpy(dtype=float)
    hit = values == POSITIVE
    if uncertain_as == "positive":
        hit |= values == UNCERTAIN
    return hit.astype(int)


def score_labels(gold: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per finding of ``gold`` and convention, then the macro rows.

    Columns: finding, uncertain_as, precision, recall, f1, support (gold present), predicted
    (labeler present). The macro rows average precision, recall and F1 over the findings other
    than No Finding (support and predicted are summed).
    """
    rows = []
    for uncertain_as in UNCERTAIN_AS:
        for name in gold.columns:
            truth = present(gold[name], uncertain_as)
            guess = present(predicted[name], uncertain_as)
            p, r, f, _ = precision_recall_fscore_support(
                truth, guess, average="binary", zero_division=0
            )
            rows.append((name, uncertain_as, p, r, f, int(truth.sum()), int(guess.sum())))
    table = pd.DataFrame(rows, columns=list(_COLUMNS))
    findings = table[table.finding != NO_FINDING]
    if not findings.empty:
        macro = findings.groupby("uncertain_as", sort=False).agg(
            precision=("precision", "mean"),
            recall=("recall", "mean"),
            f1=("f1", "mean"),
            support=("support", "sum"),
            predicted=("predicted", "sum"),
        )
        macro = macro.reset_index().assign(finding=MACRO)[list(_COLUMNS)]
        table = pd.concat([table, macro], ignore_index=True)
    return table


def score_csv(
    path: str | Path,
    *,
    text_column: str,
    gold_suffix: str = GOLD_SUFFIX,
    sections: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Label the texts of a gold CSV and score them (:func:`score_labels`)."""
    frame = read_csv_text(path)
    require_column(frame, path, text_column)
    columns = gold_columns(frame, gold_suffix)
    if not columns:
        raise ValueError(
            f"{path} has no gold columns: expected columns named '<label>{gold_suffix}' for "
            f"CheXpert labels such as 'Pneumonia{gold_suffix}'; its columns are "
            f"{list(frame.columns)} (set the suffix with --gold-suffix)"
        )
    if frame.empty:
        raise ValueError(f"{path} has a header but no rows; nothing to score")
    gold = read_gold(frame, columns, path)
    predicted = label_reports(frame[text_column], sections=sections, progress=progress)
    table = score_labels(gold, predicted)
    table.attrs["reports"] = len(frame)
    return table


def better_convention_f1(table: pd.DataFrame) -> pd.Series:
    """Per finding (No Finding and the macro rows left out), the higher F1 of the two conventions.

    A gold standard with its own convention for hedged findings (present for some findings,
    absent for others) is best compared finding by finding under the convention that fits.
    """
    findings = table[~table.finding.isin([MACRO, NO_FINDING])]
    return findings.groupby("finding", sort=False)["f1"].max()


def format_table(table: pd.DataFrame) -> str:
    """The long table as one line per finding: both conventions side by side."""
    wide = table.pivot(index="finding", columns="uncertain_as")
    order = [f for f in dict.fromkeys(table.finding) if f not in (MACRO, NO_FINDING)]
    order += [f for f in (MACRO, NO_FINDING) if f in wide.index]
    head = (
        f"{'finding':<28}{'uncertain as negative':^26}  {'uncertain as positive':^26}  {'gold+':>6}"
    )
    sub = f"{'':<28}" + f"{'P':>8}{'R':>8}{'F1':>8}  " * 2 + f"{'(neg/pos)':>6}"
    lines = [head, sub]
    for finding in order:
        if finding == MACRO:
            lines.append(f"{'macro (findings)':<28}")
        else:
            lines.append(f"{finding:<28}")
        for convention in UNCERTAIN_AS:
            row = wide.loc[finding]
            lines[-1] += "".join(
                f"{row[(m, convention)]:>8.3f}" for m in ("precision", "recall", "f1")
            )
            lines[-1] += "  "
        support = wide.loc[finding, "support"]
        lines[-1] += f"{support['negative']:>4}/{support['positive']}"
    better = better_convention_f1(table)
    if not better.empty:
        lines.append(
            f"F1 under each finding's better convention: macro {better.mean():.3f}, lowest "
            f"{better.min():.3f} ({better.idxmin()})"
        )
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.labeler.score",
        description="Label the report texts of a CSV with gold label columns and print "
        "per-finding precision, recall and F1 under both uncertainty conventions.",
    )
    parser.add_argument(
        "gold", type=Path, help="CSV with report texts and '<label> (gold)' columns"
    )
    parser.add_argument("--text-column", required=True, help="column holding the report text")
    parser.add_argument(
        "--gold-suffix",
        default=GOLD_SUFFIX,
        help=f"suffix of the gold column names after the CheXpert label (default {GOLD_SUFFIX!r})",
    )
    parser.add_argument("--out", type=Path, help="also write the long score table to this CSV")
    parser.add_argument(
        "--whole-text",
        action="store_true",
        help="label the whole text instead of the findings and impression sections",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the CLI; returns the exit status."""
    args = _parse_args(argv)
    if args.out is not None:
        check_writable(args.out)
    table = score_csv(
        args.gold,
        text_column=args.text_column,
        gold_suffix=args.gold_suffix,
        sections=not args.whole_text,
    )
    labels = table.loc[table.finding != MACRO, "finding"].nunique()
    print(f"{args.gold}: {table.attrs['reports']} reports, {labels} labels with gold columns")
    print(format_table(table))
    if args.out is not None:
        write_csv(args.out, table)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
