"""CheXpert-style report labeler: report text -> the 14 CheXpert labels.

Its own room, so that report generation (classifier hints, the tiny model's pre-training) and
report evaluation (clinical efficacy) both depend on it and not on each other. It reads report
sections with :mod:`cxrlib.mimic.sections`.

- :mod:`cxrlib.labeler.label`: the labeling functions and CheXpert's conventions;
- :mod:`cxrlib.labeler.command`: ``python -m cxrlib.labeler INPUT.csv --text-column COL --out
  OUT.csv`` (or ``--explain ROW``);
- :mod:`cxrlib.labeler.score`: ``python -m cxrlib.labeler.score GOLD.csv --text-column COL``,
  precision / recall / F1 against gold labels under both uncertainty conventions;
- ``_rules`` (phrase tables) and ``_context`` (the sentence engine).
"""

from cxrlib.labeler.label import (
    LABELS,
    NO_FINDING,
    SUPPORT_DEVICES,
    Decision,
    Mention,
    explain,
    explain_report,
    is_missing_text,
    label_agreement,
    label_report,
    label_reports,
    label_text,
    labeling_text,
)

__all__ = [
    "LABELS",
    "NO_FINDING",
    "SUPPORT_DEVICES",
    "Decision",
    "Mention",
    "explain",
    "explain_report",
    "is_missing_text",
    "label_agreement",
    "label_report",
    "label_reports",
    "label_text",
    "labeling_text",
]
