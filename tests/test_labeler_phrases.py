"""Phrase families and triggers that real reports need, one small sentence each.

Every sentence is written here for the test (none is taken from a real report). Each row: text,
then every label that must be set; all other labels must be empty.
"""

from __future__ import annotations

import math

import pytest

from cxrlib.labeler import explain, label_report, label_text

P, N, U = 1.0, 0.0, -1.0
ATEL, CARDIO, CONSOL, EDEMA = "Atelectasis", "Cardiomegaly", "Consolidation", "Edema"
EC, OPAC, SD, NOF = "Enlarged Cardiomediastinum", "Lung Opacity", "Support Devices", "No Finding"
EFF, PNEU, PTX = "Pleural Effusion", "Pneumonia", "Pneumothorax"


def _mentioned(text: str) -> dict[str, float]:
    return {k: v for k, v in label_text(text).items() if not math.isnan(v)}


FAMILIES: dict[str, list[tuple[str, dict[str, float]]]] = {
    # De-identification placeholders stand for a removed word (MIMIC-CXR "___", Open-i
    # "XXXX", MIMIC-III "[**...**]"): the sentence is read without it.
    "placeholders": [
        ("Heart size is XXXX within normal limits.", {CARDIO: N, NOF: P}),
        ("Small right ___ pleural effusion.", {EFF: P}),
        ("XXXX left basilar atelectasis.", {ATEL: P}),
        ("The heart and lungs have XXXX XXXX in the interval.", {NOF: P}),
        ("Chest tube placed by [**Doctor Name 12**]. No pneumothorax.", {SD: P, PTX: N, NOF: P}),
    ],
    # Generic anatomy (heart size, cardiac silhouette, contours) counts only with a word that
    # says "large", as a modifier before it or in a short predicate after it.
    "generic anatomy": [
        ("Heart size appears within normal limits.", {CARDIO: N, NOF: P}),
        ("The cardiac silhouette is normal in size and contour.", {CARDIO: N, NOF: P}),
        ("The heart and lungs have ___ since the last study.", {NOF: P}),
        ("Increased density behind the heart.", {OPAC: P}),
        ("The heart is moderately enlarged.", {CARDIO: P}),
        ("There is an interval increase in heart size.", {CARDIO: P}),
        ("Prominent cardiac silhouette.", {CARDIO: P}),
        ("The mediastinal contours are widened.", {EC: P}),
    ],
    # Inside a negated list closed by "or", a size word does not start a new finding.
    "negated lists": [
        (
            "No consolidation, large pleural effusion, or pneumothorax.",
            {CONSOL: N, EFF: N, PTX: N, NOF: P},
        ),
        ("No pneumothorax, large right pleural effusion.", {PTX: N, EFF: P}),
        ("No pneumothorax, small left effusion or atelectasis.", {PTX: N, EFF: U, ATEL: U}),
        (
            "Without focal opacity, large effusion or pneumothorax is seen.",
            {OPAC: N, EFF: N, PTX: N, NOF: P},
        ),
    ],
    # "does not demonstrate": negation whose verb would otherwise end its scope.
    "negated verbs": [
        ("The lungs do not show focal consolidation or effusion.", {CONSOL: N, EFF: N, NOF: P}),
        ("The radiograph does not demonstrate a pneumothorax.", {PTX: N, NOF: P}),
    ],
    # "otherwise" right after a verb belongs to the statement; elsewhere it ends the scope.
    "otherwise": [
        ("Heart size is otherwise normal.", {CARDIO: N, NOF: P}),
        ("Minimal atelectasis at the right base otherwise negative.", {ATEL: P}),
        ("Small left effusion; the lungs are otherwise clear.", {EFF: P}),
    ],
    # Statements of change: a finding that improves, resolves slowly or does not change is
    # still there; one that has resolved is not.
    "change": [
        ("Improving left lower lobe pneumonia.", {PNEU: P}),
        ("Resolving right pleural effusion.", {EFF: P}),
        ("The small left effusion has improved.", {EFF: P}),
        ("No significant change in the small right apical pneumothorax.", {PTX: P}),
        ("Left pneumothorax, unchanged since yesterday.", {PTX: P}),
        ("Redemonstration without interval change of mild bibasilar atelectasis.", {ATEL: P}),
        ("Decreased size of the left pneumothorax.", {PTX: P}),
        ("The right pneumothorax has resolved.", {PTX: N, NOF: P}),
        ("Interval resolution of the left pleural effusion.", {EFF: N, NOF: P}),
    ],
    # Air in the pleural space is a pneumothorax.
    "pneumothorax": [
        ("Small left pleural air collection.", {PTX: P}),
        ("No pleural air collection.", {PTX: N, NOF: P}),
        ("Air within the pleural space at the right apex.", {PTX: P}),
        ("Right hemopneumothorax.", {PTX: P, EFF: P}),
    ],
    # Fluid (or blood) in the pleural space is a pleural effusion.
    "pleural effusion": [
        ("Small left hemothorax.", {EFF: P}),
        ("A little fluid in the right pleural space.", {EFF: P}),
    ],
    # Pneumonitis is pneumonia; a healed granulomatous infection is not.
    "pneumonia": [
        ("Aspiration pneumonitis in the right lower lobe.", {PNEU: P}),
        ("Pneumonic infiltrate in the lingula.", {PNEU: P, OPAC: P}),
        ("Right lower lobe airspace disease, likely pneumonia.", {OPAC: P, PNEU: P}),
        ("Findings are suggestive of pneumonia.", {PNEU: P}),
        ("Calcified nodes from prior granulomatous infection.", {}),
        ("Small scar, sequela of old infection.", {OPAC: P}),
        ("Atypical infection is another consideration.", {PNEU: U}),
        ("Pneumonia would be a consideration.", {PNEU: U}),
    ],
    # CheXpert: "borderline heart size" is uncertain; "borderline cardiomegaly" is cardiomegaly.
    "borderline": [
        ("Borderline cardiomegaly.", {CARDIO: P}),
        ("Borderline cardiac enlargement.", {CARDIO: P}),
        ("Mild heart enlargement.", {CARDIO: P}),
        ("Borderline heart size.", {CARDIO: U}),
        ("Heart size is borderline.", {CARDIO: U}),
    ],
    # CheXpert's hedges: "question" and "suggestion of" are uncertain.
    "hedges": [
        ("Question small left pleural effusion.", {EFF: U}),
        ("Suggestion of a small right pneumothorax.", {PTX: U}),
    ],
    # Abnormalities outside the 14 labels rule out No Finding.
    "other abnormalities": [
        ("The aorta is tortuous.", {}),
        ("Degenerative arthritis of the shoulders.", {}),
        ("Thoracic spondylosis.", {}),
        ("Mild dextroscoliosis.", {}),
        ("Kyphotic thoracic spine.", {}),
        ("Metallic foreign body in the soft tissues.", {}),
        ("Low lung volumes. No pneumothorax.", {PTX: N}),
        ("The lungs are hypoinflated.", {}),
    ],
}
CASES = [(family, text, expected) for family, rows in FAMILIES.items() for text, expected in rows]


@pytest.mark.parametrize(
    ("family", "text", "expected"), CASES, ids=[f"{c[0]}: {c[1][:40]}" for c in CASES]
)
def test_phrase_family(family: str, text: str, expected: dict[str, float]) -> None:
    assert _mentioned(text) == expected


@pytest.mark.parametrize("text", ["NaN", "nan", "None", "N/A", "n/a", "NULL", " None. ", "<NA>"])
def test_missing_value_markers_are_not_labelled(text: str) -> None:
    # A missing-value marker is not a report: no label at all, not "No Finding".
    assert all(math.isnan(v) for v in label_text(text).values())
    assert all(math.isnan(v) for v in label_report(text).values())
    assert explain(text) == []


def test_a_report_that_says_none_is_still_labelled_by_its_sentences() -> None:
    # Only a text that is nothing but the marker is skipped.
    assert label_text("None of the lines has moved. No pneumothorax.")[PTX] == N


def test_mentions_name_their_deciding_trigger() -> None:
    negated, uncertain, plain = explain("No effusion. Possible pneumonia. Small pneumothorax.")
    assert (negated.label, negated.trigger) == (N, "no")
    assert (uncertain.label, uncertain.trigger) == (U, "possible")
    assert (plain.label, plain.trigger) == (P, "")
