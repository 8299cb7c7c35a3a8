"""NLG and clinical-efficacy metrics against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cxrlib.labeler import label_agreement
from cxrlib.mimic.layout import CHEXPERT_LABELS
from cxrlib.reporteval import clinical, nlg


def _labels(rows: list[dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(CHEXPERT_LABELS), dtype=float)


# Three reports. Reference: cardiomegaly + uncertain edema + negative effusion; effusion;
# No Finding. Generated: cardiomegaly + edema; uncertain effusion; No Finding + atelectasis.
REFERENCE = _labels(
    [
        {"Cardiomegaly": 1.0, "Edema": -1.0, "Pleural Effusion": 0.0},
        {"Pleural Effusion": 1.0},
        {"No Finding": 1.0},
    ]
)
GENERATED = _labels(
    [
        {"Cardiomegaly": 1.0, "Edema": 1.0},
        {"Pleural Effusion": -1.0},
        {"No Finding": 1.0, "Atelectasis": 1.0},
    ]
)

# (uncertain_as, labels, average) -> (precision, recall, f1), worked out by hand:
# uncertain -> negative: TP cardiomegaly, No Finding; FP edema, atelectasis; FN effusion.
# uncertain -> positive: TP cardiomegaly, edema, effusion, No Finding; FP atelectasis.
# Macro averages divide by 14 (or 5): labels without any positive score 0.
EXPECTED_CE = [
    ("negative", "chexpert14", "micro", 2 / 4, 2 / 3, 4 / 7),
    ("negative", "chexpert14", "macro", 2 / 14, 2 / 14, 2 / 14),
    ("negative", "competition5", "micro", 1 / 3, 1 / 2, 2 / 5),
    ("negative", "competition5", "macro", 1 / 5, 1 / 5, 1 / 5),
    ("positive", "chexpert14", "micro", 4 / 5, 1.0, 8 / 9),
    ("positive", "chexpert14", "macro", 4 / 14, 4 / 14, 4 / 14),
    ("positive", "competition5", "micro", 3 / 4, 1.0, 6 / 7),
    ("positive", "competition5", "macro", 3 / 5, 3 / 5, 3 / 5),
]


def test_ce_metrics_hand_computed() -> None:
    table = clinical.ce_metrics(REFERENCE, GENERATED, generator="g")
    assert list(table.columns) == list(clinical.CE_COLUMNS)
    assert len(table) == len(EXPECTED_CE)
    for uncertain_as, labels, average, p, r, f in EXPECTED_CE:
        row = table[
            (table.uncertain_as == uncertain_as)
            & (table["labels"] == labels)
            & (table.average == average)
        ]
        assert row[["precision", "recall", "f1"]].iloc[0].tolist() == pytest.approx([p, r, f])
    assert set(table.generator) == {"g"}


def test_ce_default_convention_only() -> None:
    table = clinical.ce_metrics(REFERENCE, GENERATED, generator="g", uncertain_as="negative")
    assert set(table.uncertain_as) == {"negative"} and len(table) == 4


def test_per_finding_hand_computed() -> None:
    table = clinical.per_finding(REFERENCE, GENERATED, generator="g")
    assert list(table.columns) == list(clinical.PER_FINDING_COLUMNS)
    table = table.set_index("label")
    assert table.loc["Cardiomegaly", ["precision", "recall", "f1"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["Edema", ["precision", "f1", "support", "predicted"]].tolist() == [0, 0, 0, 1]
    assert table.loc["Pleural Effusion", ["recall", "support", "predicted"]].tolist() == [0, 1, 0]
    assert table.loc["Fracture", ["f1", "support", "predicted"]].tolist() == [0, 0, 0]
    positive = clinical.per_finding(REFERENCE, GENERATED, generator="g", uncertain_as="positive")
    edema = positive.set_index("label").loc["Edema"]
    assert (edema.f1, edema.support) == (1.0, 1)


def test_binarize_conventions() -> None:
    frame = _labels([{"Edema": -1.0, "Fracture": 0.0, "Cardiomegaly": 1.0}])
    negative = clinical.binarize(frame).iloc[0]
    positive = clinical.binarize(frame, uncertain_as="positive").iloc[0]
    assert (negative.Edema, negative.Fracture, negative.Cardiomegaly, negative.Atelectasis) == (
        0,
        0,
        1,
        0,
    )
    assert (positive.Edema, positive.Fracture) == (1, 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clinical.binarize(REFERENCE, uncertain_as="maybe"), "uncertain_as must be one"),
        (lambda: clinical.binarize(REFERENCE.drop(columns="Edema")), "lacks CheXpert columns"),
        (lambda: clinical.binarize(REFERENCE.replace(1.0, 2.0)), "allowed values are"),
        (lambda: clinical.ce_metrics(REFERENCE, GENERATED.iloc[:2], generator="g"), "one row"),
        (
            lambda: clinical.ce_metrics(REFERENCE.iloc[:0], GENERATED.iloc[:0], generator="g"),
            "no reports",
        ),
    ],
)
def test_clinical_user_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_convention_sentence_states_everything() -> None:
    text = clinical.convention("positive")
    for part in (
        "uncertain (-1.0) counted as positive",
        "micro",
        "macro",
        "chexpert14",
        "Pleural Effusion",
        "not mentioned as negative",
    ):
        assert part in text


def test_label_agreement() -> None:
    other = GENERATED.copy()
    agreement = label_agreement(REFERENCE, other)
    # Cardiomegaly: 1/1, NaN/NaN, NaN/NaN -> all equal; Edema: -1 vs 1 differs once.
    assert agreement["Cardiomegaly"] == 1.0
    assert agreement["Edema"] == pytest.approx(2 / 3)
    assert agreement["Pleural Effusion"] == pytest.approx(1 / 3)
    assert agreement["Atelectasis"] == pytest.approx(2 / 3)
    assert agreement["Fracture"] == 1.0


# --- NLG -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Heart size is normal.", "heart size is normal ."),
        ("1. Left effusion.  2. No pneumothorax.", "left effusion . no pneumothorax ."),
        ("No acute process... Lungs clear", "no acute process . lungs clear ."),
        ("Tube at ___ cm (stable); x-ray: fine?", "tube at cm stable x-ray fine ."),
        ("FINDINGS:\nLine one\nline two.", "findings line one line two ."),
        ("", ""),
    ],
)
def test_clean_report_r2gen(raw: str, clean: str) -> None:
    assert nlg.clean_report(raw) == clean


def test_nlg_scores_hand_computed() -> None:
    # hyp "the heart is enlarged ." vs ref "the heart is normal .": 4/5 unigrams, 2/4 bigrams,
    # 1/3 trigrams, 0/2 4-grams match; equal lengths so no brevity penalty.
    scores = nlg.nlg_scores(["The heart is normal."], ["The heart is enlarged."], meteor=False)
    assert list(scores) == list(nlg.NLG_METRICS)
    assert scores["bleu1"] == pytest.approx(0.8, abs=1e-6)
    assert scores["bleu2"] == pytest.approx(math.sqrt(0.8 * 0.5), abs=1e-6)
    assert scores["bleu3"] == pytest.approx((0.8 * 0.5 / 3) ** (1 / 3), abs=1e-6)
    assert scores["bleu4"] < 1e-3  # no matching 4-gram
    assert scores["rouge_l"] == pytest.approx(0.8)  # LCS 4 of 5 words both ways
    assert math.isnan(scores["meteor"])


def test_nlg_identical_and_sections() -> None:
    refs = ["FINDINGS: No effusion.\nIMPRESSION: Normal.", "FINDINGS: Small left effusion."]
    scores = nlg.nlg_scores(refs, ["No effusion. Normal.", "Small left effusion."], meteor=False)
    # The headers are not scored: the texts match exactly.
    assert scores["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["cider"] == pytest.approx(10.0)  # CIDEr-D of identical reports


def test_nlg_empty_hypothesis_scores_zero() -> None:
    scores = nlg.nlg_scores(["Small left effusion."], [""], meteor=False)
    assert scores["bleu1"] == 0.0 and scores["rouge_l"] == 0.0 and scores["cider"] == 0.0


@pytest.mark.parametrize(
    ("refs", "hyps", "message"),
    [(["a"], ["a", "b"], "must pair up"), ([], [], "no reports to score")],
)
def test_nlg_user_errors(refs, hyps, message) -> None:
    with pytest.raises(ValueError, match=message):
        nlg.nlg_scores(refs, hyps, meteor=False)


def test_meteor_skipped_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="METEOR skipped: no 'java'"):
        scores = nlg.nlg_scores(["No effusion."], ["No effusion."])
    assert math.isnan(scores["meteor"]) and scores["bleu1"] > 0.99


@pytest.mark.slow  # starts the METEOR JVM (10-40 s on a busy 2-core machine)
@pytest.mark.skipif(not nlg.java_available(), reason="METEOR needs a Java runtime on the PATH")
def test_meteor_with_java() -> None:
    refs = ["No pleural effusion or pneumothorax.", "Small left pleural effusion."]
    groups = {"same": (refs, refs), "worse": (refs, ["No pneumothorax.", ""])}
    scores = nlg.nlg_scores_by_group(groups)  # one JVM for both groups
    assert scores["same"]["meteor"] == pytest.approx(1.0, abs=0.01)
    assert 0.0 < scores["worse"]["meteor"] < 0.9
    assert scores["worse"]["bleu1"] < scores["same"]["bleu1"]
