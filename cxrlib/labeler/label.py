"""CheXpert-style report labeler: 14 observations as positive / negative / uncertain / absent.

Rules in the manner of the CheXpert labeler (Irvin et al., AAAI 2019), which produced
MIMIC-CXR's ``mimic-cxr-2.0.0-chexpert.csv``: mention phrases per observation, then
negation and uncertainty from the context of each mention, aggregated per report. Conventions
kept from CheXpert so that labels of generated and reference reports compare with the released
ones:

- values are ``1.0`` positive, ``0.0`` negative, ``-1.0`` uncertain, NaN not mentioned;
- several mentions of one observation: any positive wins, else any uncertain, else negative;
- uncertainty phrases that wrap a negation ("cannot exclude", "no new") beat the negation;
- hedges are uncertain ("possible", "probable", "may represent", "concerning for", "X versus
  Y", "X or Y", "differential diagnosis includes"); "likely", "consistent with" and
  "suggestive of" are positive (CheXpert's pattern lists have no rule for them);
- "stable heart size" / "unchanged cardiomediastinal silhouette" / "borderline heart size" are
  uncertain, while "borderline cardiomegaly" is cardiomegaly and "no change in the
  pneumothorax" a pneumothorax;
- "CHF"/"heart failure" (positive or uncertain) makes Cardiomegaly uncertain too;
- No Finding is 1.0 when no observation other than Support Devices is positive or uncertain
  (including abnormalities outside the 14, e.g. emphysema), else NaN — never 0.

Where we differ from CheXpert, because it reads real text wrongly: a generic anatomy phrase
("heart size", "cardiac silhouette", "mediastinal contours") that no negation or hedge
qualifies counts only when its clause says the structure is large ("the heart is enlarged"),
not in "the heart and lungs have ___ in the interval"; de-identification placeholders
(MIMIC's ``___``, Open-i's ``XXXX``) are read as absent words; a few common abnormalities
CheXpert's No Finding list lacks (tortuous aorta, arthritis, hypoinflation) rule out No
Finding; phrases its lists lack are added where radiologists use them (pneumonitis, pleural
air, hemothorax), and a healed granulomatous infection is not pneumonia; a text that is a
missing-value marker ("NaN", "None", "N/A") is not labelled.

Gold labels made by other conventions disagree by design, and the difference is kept: on the
Open-i reports manually coded from MeSH terms (NegBio's gold standard), a hedged pneumonia
("possible pneumonia", "infection" in a differential) is coded absent while a hedged
atelectasis or borderline heart size is coded present; CheXpert calls all of them uncertain.
Score such sets under both conventions (uncertain as negative, as positive):
``python -m cxrlib.labeler.score``.

Section-aware: a MIMIC report is labelled on its findings and impression; a report with
other headers but neither of those on its last paragraph (the official extractor's rule); a
text without any header (a generated report) on the whole text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from cxrlib.labeler import _context
from cxrlib.labeler._context import Mention
from cxrlib.mimic import sections as _sections
from cxrlib.mimic.layout import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN

#: Output columns, named and ordered as the CheXpert CSV header.
LABELS: tuple[str, ...] = CHEXPERT_LABELS
NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
_CARDIOMEGALY = "Cardiomegaly"
_HEART_FAILURE = ("chf", "heart failure")
#: The ``trigger`` of the Cardiomegaly mention that CheXpert's heart-failure rule adds.
_HEART_FAILURE_RULE = "heart failure rule"
_VALUE_WORDS = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}
#: Texts that stand for a missing value, not a report (pandas' and spreadsheets' markers).
_MISSING_TEXT = re.compile(r"(?:nan|none|null|n/?a|<na>|#n/?a)\.?", re.IGNORECASE)


@dataclass(frozen=True)
class Decision:
    """Why one label of one report has its value.

    ``phrase``: the mention that decided it ("" when none); ``trigger``: the context phrase
    that made it negative or uncertain ("" when none); ``reason``: the rule in words.
    """

    label: str
    value: float
    phrase: str
    trigger: str
    sentence: str
    reason: str


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


def is_missing_text(text: object) -> bool:
    """Is ``text`` no report at all: not a string, or a missing-value marker ("NaN", "N/A")?"""
    return not isinstance(text, str) or bool(_MISSING_TEXT.fullmatch(text.strip()))


def explain(text: str) -> list[Mention]:
    """Every mention in ``text`` (used as given) with its label: why a report got its labels."""
    if is_missing_text(text):
        return []
    return [m for s in _context.split_sentences(text) for m in _context.sentence_mentions(s)]


def label_text(text: str) -> dict[str, float]:
    """Labels of ``text`` used as given (no section selection); all NaN for an empty text."""
    return _decide(text)[0]


def label_report(report_text: str, *, sections: bool = True) -> dict[str, float]:
    """Labels of one report; ``sections=False`` labels the whole text."""
    return label_text(labeling_text(report_text) if sections else report_text)


def explain_report(report_text: str, *, sections: bool = True) -> list[Decision]:
    """One :class:`Decision` per CheXpert label of one report, in header order."""
    text = labeling_text(report_text) if sections else report_text
    labels, deciders = _decide(text)
    return [_decision(name, labels[name], deciders.get(name)) for name in LABELS]


def _decision(name: str, value: float, mention: Mention | None) -> Decision:
    if mention is None:  # not mentioned, or No Finding that nothing ruled out
        if value == POSITIVE:
            return Decision(
                name, value, "", "", "", "no other observation is positive or uncertain"
            )
        return Decision(name, value, "", "", "", "not mentioned")
    trigger = mention.trigger
    if name == NO_FINDING:
        observation = mention.observation.strip("_").replace("_", " ")
        reason = f"ruled out: {observation} is {_VALUE_WORDS[mention.label]}"
        trigger = ""
    elif trigger == _HEART_FAILURE_RULE:
        reason = "uncertain: heart failure makes Cardiomegaly uncertain (CheXpert)"
    elif trigger:
        reason = f"{_VALUE_WORDS[value]}: the trigger qualifies the phrase"
    elif value == UNCERTAIN:
        reason = "uncertain: the phrase itself only suggests the observation"
    else:
        reason = "positive: stated without negation or hedge"
    return Decision(name, value, mention.text, trigger, mention.sentence, reason)


def _decide(text: str) -> tuple[dict[str, float], dict[str, Mention]]:
    """Labels of ``text`` and, per label, the mention that decided it."""
    labels = {name: math.nan for name in LABELS}
    deciders: dict[str, Mention] = {}
    sentences = [] if is_missing_text(text) else _context.split_sentences(text)
    if not sentences:
        return labels, deciders
    found: dict[str, list[Mention]] = {}
    blocker: Mention | None = None  # the first mention that rules out No Finding
    for sentence in sentences:
        for mention in _context.sentence_mentions(sentence):
            positive_or_uncertain = mention.label in (POSITIVE, UNCERTAIN)
            if blocker is None and positive_or_uncertain and mention.observation != SUPPORT_DEVICES:
                blocker = mention
            found.setdefault(mention.observation, []).append(mention)
            if mention.text in _HEART_FAILURE and positive_or_uncertain:
                found.setdefault(_CARDIOMEGALY, []).append(
                    Mention(
                        _CARDIOMEGALY,
                        mention.text,
                        mention.sentence,
                        UNCERTAIN,
                        False,
                        _HEART_FAILURE_RULE,
                    )
                )
    for observation, mentions in found.items():
        if observation in labels:
            value = _aggregate([m.label for m in mentions])
            labels[observation] = value
            deciders[observation] = next(m for m in mentions if m.label == value)
    labels[NO_FINDING] = POSITIVE if blocker is None else math.nan
    if blocker is not None:
        deciders[NO_FINDING] = blocker
    return labels, deciders


def label_reports(
    texts: Iterable[str], *, sections: bool = True, progress: bool = False
) -> pd.DataFrame:
    """One row per text, the 14 CheXpert columns in header order (float: 1, 0, -1, NaN)."""
    texts = list(texts)
    rows = [
        label_report(t, sections=sections)
        for t in tqdm(texts, desc="labelling reports", unit="report", disable=not progress)
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
