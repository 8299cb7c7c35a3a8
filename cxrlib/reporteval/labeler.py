"""CheXpert-style report labeler: 14 observations as positive / negative / uncertain / absent.

Rules in the manner of the CheXpert labeler (Irvin et al., AAAI 2019), which produced
MIMIC-CXR's ``mimic-cxr-2.0.0-chexpert.csv``: mention phrases per observation, then
negation and uncertainty from the context of each mention, aggregated per report. Conventions
kept from CheXpert so that labels of generated and reference reports compare with the released
ones:

- values are ``1.0`` positive, ``0.0`` negative, ``-1.0`` uncertain, NaN not mentioned;
- several mentions of one observation: any positive wins, else any uncertain, else negative;
- uncertainty phrases that wrap a negation ("cannot exclude", "no new") beat the negation;
- "stable heart size" / "unchanged cardiomediastinal silhouette" are uncertain;
- "CHF"/"heart failure" (positive or uncertain) makes Cardiomegaly uncertain too;
- No Finding is 1.0 when no observation other than Support Devices is positive or uncertain
  (including abnormalities outside the 14, e.g. emphysema), else NaN — never 0.

Section-aware: a MIMIC report is labelled on its findings and impression; a report with
other headers but neither of those on its last paragraph (the official extractor's rule); a
text without any header (a generated report) on the whole text.

CLI: ``python -m cxrlib.reporteval.labeler INPUT.csv --text-column COL --out OUT.csv``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from cxrlib.atomic import write_csv
from cxrlib.cli import run_cli
from cxrlib.mimic import sections as _sections
from cxrlib.mimic.layout import CHEXPERT_LABELS, POSITIVE, UNCERTAIN
from cxrlib.progress import progress_bar
from cxrlib.reporteval import _context
from cxrlib.reporteval._context import Mention

__all__ = [
    "LABELS",
    "Mention",
    "explain",
    "label_agreement",
    "label_csv",
    "label_report",
    "label_reports",
    "label_text",
    "labeling_text",
    "main",
]

#: Output columns, named and ordered as the CheXpert CSV header.
LABELS: tuple[str, ...] = CHEXPERT_LABELS
NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
_CARDIOMEGALY = "Cardiomegaly"
_HEART_FAILURE = ("chf", "heart failure")


def labeling_text(report_text: str) -> str:
    """The part of a report that is labelled (see the module docstring).

    Findings and impression are joined by a blank line so their sentences stay apart.
    """
    if not isinstance(report_text, str):
        return ""
    parsed = _sections.parse_sections(report_text)
    if _sections.FINDINGS in parsed or _sections.IMPRESSION in parsed:
        parts = [parsed.get(_sections.FINDINGS, ""), parsed.get(_sections.IMPRESSION, "")]
        return "\n\n".join(p for p in parts if p)
    if _sections.FULL_REPORT in parsed:  # no header at all: the whole text is the report
        return report_text
    return parsed.get(_sections.LAST_PARAGRAPH, "")


def explain(text: str) -> list[Mention]:
    """Every mention in ``text`` (used as given) with its label: why a report got its labels."""
    if not isinstance(text, str):
        return []
    return [m for s in _context.split_sentences(text) for m in _context.sentence_mentions(s)]


def label_text(text: str) -> dict[str, float]:
    """Labels of ``text`` used as given (no section selection); all NaN for an empty text."""
    labels = {name: math.nan for name in LABELS}
    sentences = _context.split_sentences(text) if isinstance(text, str) else []
    if not sentences:
        return labels
    found: dict[str, list[float]] = {}
    no_finding = True
    for sentence in sentences:
        for mention in _context.sentence_mentions(sentence):
            if mention.observation != SUPPORT_DEVICES and mention.label in (POSITIVE, UNCERTAIN):
                no_finding = False
            found.setdefault(mention.observation, []).append(mention.label)
            if mention.text in _HEART_FAILURE and mention.label in (POSITIVE, UNCERTAIN):
                found.setdefault(_CARDIOMEGALY, []).append(UNCERTAIN)
    for observation, values in found.items():
        if observation in labels:
            labels[observation] = _aggregate(values)
    labels[NO_FINDING] = POSITIVE if no_finding else math.nan
    return labels


def label_report(report_text: str, *, sections: bool = True) -> dict[str, float]:
    """Labels of one report; ``sections=False`` labels the whole text."""
    return label_text(labeling_text(report_text) if sections else report_text)


def label_reports(
    texts: Iterable[str], *, sections: bool = True, progress: bool = False
) -> pd.DataFrame:
    """One row per text, the 14 CheXpert columns in header order (float: 1, 0, -1, NaN)."""
    texts = list(texts)
    rows = [
        label_report(t, sections=sections)
        for t in progress_bar(texts, desc="labelling reports", unit="report", disable=not progress)
    ]
    return pd.DataFrame(rows, columns=list(LABELS), dtype=float)


def label_agreement(reference: pd.DataFrame, predicted: pd.DataFrame) -> pd.Series:
    """Per label, the share of rows where both tables hold the same value (empty == empty)."""
    if len(reference) != len(predicted):
        raise ValueError(
            f"label tables must have the same rows, got {len(reference)} and {len(predicted)}"
        )
    ref = reference[list(LABELS)].astype(float).reset_index(drop=True)
    pred = predicted[list(LABELS)].astype(float).reset_index(drop=True)
    same = (ref == pred) | (ref.isna() & pred.isna())
    return same.mean().rename("agreement")


def _aggregate(values: list[float]) -> float:
    """CheXpert's rule for several mentions: positive > uncertain > negative."""
    if POSITIVE in values:
        return POSITIVE
    if UNCERTAIN in values:
        return UNCERTAIN
    return values[0]


def label_csv(
    input_csv: str | Path,
    *,
    text_column: str,
    out: str | Path,
    sections: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Label the ``text_column`` of a CSV; write its columns plus the 14 label columns to ``out``.

    Input cells are copied as text, unchanged. Raises ``FileNotFoundError``/``ValueError``
    naming the file and the problem.
    """
    input_csv, out = Path(input_csv), Path(out)
    if not input_csv.is_file():
        raise FileNotFoundError(f"input CSV not found: {input_csv} (give an existing CSV file)")
    if out.resolve() == input_csv.resolve():
        raise ValueError(f"--out must differ from the input file, got {out} for both")
    try:
        frame = pd.read_csv(input_csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {input_csv} as CSV: {exc}") from None
    if text_column not in frame.columns:
        raise ValueError(
            f"{input_csv} has no column {text_column!r}; its columns are {list(frame.columns)}"
            " (pass the report text column with --text-column)"
        )
    clashes = [c for c in LABELS if c in frame.columns]
    if clashes:
        raise ValueError(
            f"{input_csv} already has label columns {clashes}; rename or drop them first "
            "(the labeler adds the 14 CheXpert columns itself)"
        )
    labels = label_reports(frame[text_column], sections=sections, progress=progress)
    result = pd.concat([frame, labels], axis=1)
    write_csv(out, result)
    return result


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.reporteval.labeler",
        description="Label report texts with the 14 CheXpert observations "
        "(1.0 positive, 0.0 negative, -1.0 uncertain, empty not mentioned).",
    )
    parser.add_argument("input", type=Path, help="CSV file holding one report per row")
    parser.add_argument("--text-column", required=True, help="column holding the report text")
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
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
    result = label_csv(
        args.input,
        text_column=args.text_column,
        out=args.out,
        sections=not args.whole_text,
        progress=not args.no_progress,
    )
    positives = (result[list(LABELS)] == POSITIVE).sum()
    print(f"labelled {len(result)} reports -> {args.out}")
    print("positive mentions per label: " + ", ".join(f"{k} {v}" for k, v in positives.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
