"""CheXpert-style labeler: hand-written sentences and reports, real examples, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from cxrlib.labeler import label_report, label_text, labeling_text
from cxrlib.mimic.layout import CHEXPERT_LABELS

REALDATA = Path(__file__).parents[1] / ".." / "shared" / "realdata"

P, N, U = 1.0, 0.0, -1.0
ATEL, CARDIO, CONSOL, EDEMA = "Atelectasis", "Cardiomegaly", "Consolidation", "Edema"
EC, FRACT, LESION, OPAC = "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity"
NOF, EFF, PLOTH, PNEU = "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia"
PTX, SD = "Pneumothorax", "Support Devices"


def _mentioned(text: str) -> dict[str, float]:
    return {k: v for k, v in label_text(text).items() if not math.isnan(v)}


# Each row: text, then every label that must be set (all others must be empty).
CASES = [
    # --- negation and its scope ---------------------------------------------------------------
    ("No effusion or pneumothorax.", {EFF: N, PTX: N, NOF: P}),
    (
        "No pleural effusion, pneumothorax or consolidation is seen.",
        {EFF: N, PTX: N, CONSOL: N, NOF: P},
    ),
    (
        "There is no focal consolidation, effusion, or pneumothorax.",
        {CONSOL: N, EFF: N, PTX: N, NOF: P},
    ),
    (
        "Lungs are clear without focal consolidation, effusion, or edema.",
        {CONSOL: N, EFF: N, EDEMA: N, NOF: P},
    ),
    ("No pneumothorax, small left effusion.", {PTX: N, EFF: P}),
    ("There is no effusion, and the heart is enlarged.", {EFF: N, CARDIO: P}),
    ("Cardiomegaly without overt edema.", {CARDIO: P, EDEMA: N}),
    ("No pneumothorax. Small right pleural effusion.", {PTX: N, EFF: P}),
    ("No pleural effusion and mild bibasilar atelectasis.", {EFF: N, ATEL: P}),
    ("Pneumothorax is not seen.", {PTX: N, NOF: P}),
    ("The previously seen right pneumothorax has resolved.", {PTX: N, NOF: P}),
    ("Pleural effusions have largely resolved.", {EFF: N, NOF: P}),
    ("Interval resolution of the right pleural effusion.", {EFF: N, NOF: P}),
    ("There is no longer a left pleural effusion.", {EFF: N, NOF: P}),
    ("No evidence of pneumonia.", {PNEU: N, NOF: P}),
    ("No signs of pneumonia or edema.", {PNEU: N, EDEMA: N, NOF: P}),
    ("No definite pneumothorax.", {PTX: N, NOF: P}),
    ("No focal consolidation is seen to suggest pneumonia.", {CONSOL: N, PNEU: N, NOF: P}),
    ("No focal opacity concerning for pneumonia.", {OPAC: N, PNEU: N, NOF: P}),
    ("The lungs are clear of focal consolidation.", {CONSOL: N, NOF: P}),
    ("No acute fracture is identified.", {FRACT: N, NOF: P}),
    ("No displaced rib fractures.", {FRACT: N, NOF: P}),
    ("The endotracheal tube has been removed.", {SD: N, NOF: P}),
    ("The study is limited, but there is no large pneumothorax.", {PTX: N, NOF: P}),
    ("Findings are not consistent with pneumonia.", {PNEU: N, NOF: P}),
    # --- uncertainty ---------------------------------------------------------------------------
    ("Cannot exclude pneumonia.", {PNEU: U}),
    ("Pneumonia cannot be excluded.", {PNEU: U}),
    ("Superimposed pneumonia is not excluded.", {PNEU: U}),
    ("Cannot rule out a small left pleural effusion.", {EFF: U}),
    ("Possible small right pleural effusion.", {EFF: U}),
    ("Questionable small left pleural effusion.", {EFF: U}),
    ("Probable left lower lobe pneumonia.", {PNEU: U}),
    ("May represent early pneumonia.", {PNEU: U}),
    ("Atelectasis versus pneumonia.", {ATEL: U, PNEU: U}),
    ("Mild interstitial edema versus atypical infection.", {EDEMA: U, PNEU: U}),
    (
        "Minimal patchy airspace disease within the lingula, may reflect atelectasis or "
        "consolidation.",
        {OPAC: P, ATEL: U, CONSOL: U},
    ),
    (
        "Left lower lobe opacity which may represent atelectasis, though pneumonia cannot be "
        "excluded.",
        {OPAC: P, ATEL: U, PNEU: U},
    ),
    ("Increased opacity in the right lower lobe concerning for pneumonia.", {OPAC: P, PNEU: U}),
    (
        "Opacities in the lung bases, which may be due to atelectasis, aspiration, or infection.",
        {OPAC: P, ATEL: U, PNEU: U},
    ),
    ("Pneumonia is less likely.", {PNEU: U}),
    ("Pneumonia?", {PNEU: U}),
    ("Borderline heart size.", {CARDIO: U}),
    ("No new consolidation.", {CONSOL: U}),
    ("Mild pulmonary vascular congestion.", {EDEMA: U}),
    ("No vascular congestion.", {EDEMA: N, NOF: P}),
    (
        "There is mild blunting of the left costophrenic angle, which could be due to a small "
        "effusion or pleural thickening.",
        {EFF: U, PLOTH: U},
    ),
    ("Findings suggestive of pneumonia in the appropriate clinical setting.", {PNEU: U}),
    # --- positives, real phrasing --------------------------------------------------------------
    ("Findings are consistent with pneumonia.", {PNEU: P}),
    ("Retrocardiac opacity, likely atelectasis.", {OPAC: P, ATEL: P}),
    (
        "Moderate cardiomegaly with mild interstitial pulmonary edema and small bilateral pleural "
        "effusions.",
        {CARDIO: P, EDEMA: P, EFF: P},
    ),
    ("Moderate-to-large right pleural effusion.", {EFF: P}),
    ("Small pleural effusions bilaterally, right greater than left.", {EFF: P}),
    ("Left-sided pleural effusion has decreased in size.", {EFF: P}),
    ("Pulmonary edema has improved but persists.", {EDEMA: P}),
    ("Subsegmental atelectasis in the left lower lobe.", {ATEL: P}),
    ("Tiny left apical pneumothorax.", {PTX: P}),
    ("A 1.5 cm nodule in the right upper lobe.", {LESION: P}),
    ("Old healed left rib fractures.", {FRACT: P}),
    ("Mild cardiomegaly is unchanged.", {CARDIO: P}),
    ("Mild enlargement of the cardiac silhouette is unchanged.", {CARDIO: P}),
    ("The cardiac silhouette is enlarged but stable.", {CARDIO: P}),
    ("Heart size is mildly enlarged.", {CARDIO: P}),
    ("Enlarged cardiac silhouette.", {CARDIO: P}),
    ("The mediastinum is widened.", {EC: P}),
    ("Apical pleural thickening.", {PLOTH: P}),
    ("Decompensated CHF.", {EDEMA: P, CARDIO: U}),
    # --- generic cardiac terms -----------------------------------------------------------------
    ("Heart size normal and lungs are clear.", {CARDIO: N, NOF: P}),
    ("Heart is normal in size.", {CARDIO: N, NOF: P}),
    ("The heart is top normal in size.", {CARDIO: N, NOF: P}),
    ("Heart size is at the upper limits of normal.", {CARDIO: N, NOF: P}),
    ("The heart is not enlarged.", {CARDIO: N, NOF: P}),
    ("The mediastinum is not widened.", {EC: N, NOF: P}),
    ("The cardiomediastinal silhouette is normal.", {EC: N, NOF: P}),
    ("Cardiomediastinal silhouette is within normal limits.", {EC: N, NOF: P}),
    ("Normal heart size. Hilar contours are unremarkable.", {CARDIO: N, EC: N, NOF: P}),
    ("The heart size, mediastinal and hilar contours are normal.", {CARDIO: N, EC: N, NOF: P}),
    ("Heart size and mediastinal contours are stable.", {CARDIO: U, EC: U}),
    ("Stable cardiomediastinal silhouette.", {EC: U}),
    ("Heart size appears to be within normal limits.", {CARDIO: N, NOF: P}),
    ("Mild cardiomegaly, normal mediastinum.", {CARDIO: P, EC: N}),
    # --- support devices and unmentions --------------------------------------------------------
    (
        "Endotracheal tube terminates 4.5 cm above the carina. Nasogastric tube courses below "
        "the diaphragm.",
        {SD: P, NOF: P},
    ),
    ("Right PICC line ends at the cavoatrial junction.", {SD: P, NOF: P}),
    ("Lines and tubes are in standard position.", {SD: P, NOF: P}),
    ("Sternotomy wires are intact.", {SD: P, NOF: P}),
    ("Unchanged position of the endotracheal tube.", {SD: P, NOF: P}),
    ("Pacemaker leads project over the heart.", {SD: P, NOF: P}),
    ("Plate-like atelectasis at the left base.", {ATEL: P}),
    ("Small pericardial effusion.", {NOF: P}),
    ("A calcified nodule is seen.", {}),  # "calcified" rules out No Finding, not a lesion
    ("Massive right pleural effusion.", {EFF: P}),
    # --- more real phrasing ------------------------------------------------------------------
    (
        "Bibasilar opacities likely reflect atelectasis, though infection cannot be excluded.",
        {OPAC: P, ATEL: P, PNEU: U},
    ),
    (
        "There is increased interstitial opacity bilaterally compatible with pulmonary edema.",
        {OPAC: P, EDEMA: P},
    ),
    ("No large pleural effusion, though small effusions cannot be excluded.", {EFF: U}),
    ("Possible trace left pleural effusion versus pleural thickening.", {EFF: U, PLOTH: U}),
    ("Mild atelectasis at the lung bases without focal consolidation.", {ATEL: P, CONSOL: N}),
    ("Heart size is difficult to assess given low lung volumes.", {CARDIO: U}),
    ("The heart may be mildly enlarged, accentuated by technique.", {CARDIO: U}),
    ("There is no suspicious pulmonary nodule or pneumonia.", {LESION: N, PNEU: N, NOF: P}),
    ("Right IJ catheter tip is in the mid SVC. No pneumothorax.", {SD: P, PTX: N, NOF: P}),
    ("Prominence of the pulmonary vasculature suggests mild fluid overload.", {}),
    # --- No Finding ----------------------------------------------------------------------------
    ("No acute cardiopulmonary process.", {NOF: P}),
    ("Hyperinflated lungs consistent with COPD.", {}),
    ("Emphysema without pneumonia.", {PNEU: N}),
    ("No emphysema.", {NOF: P}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:50] for c in CASES])
def test_sentence_labels(text: str, expected: dict[str, float]) -> None:
    assert _mentioned(text) == expected


def test_every_observation_has_a_phrase() -> None:
    # One sentence per observation: each of the 14 columns is reachable.
    texts = {
        ATEL: "atelectasis",
        CARDIO: "cardiomegaly",
        CONSOL: "consolidation",
        EDEMA: "edema",
        EC: "widened mediastinum",
        FRACT: "rib fracture",
        LESION: "lung mass",
        OPAC: "airspace opacity",
        EFF: "pleural effusion",
        PLOTH: "pleural thickening",
        PNEU: "pneumonia",
        PTX: "pneumothorax",
        SD: "chest tube",
    }
    for observation, text in texts.items():
        assert label_text(f"There is {text}.")[observation] == P, text
    assert set(texts) | {NOF} == set(CHEXPERT_LABELS)


def test_output_shape_and_empty_text() -> None:
    labels = label_text("")
    assert list(labels) == list(CHEXPERT_LABELS)
    assert all(math.isnan(v) for v in labels.values())
    assert all(math.isnan(v) for v in label_report(float("nan")).values())  # pandas empty cell


def test_no_finding_is_never_negative() -> None:
    for text, _ in CASES:
        assert label_text(text)[NOF] in (P,) or math.isnan(label_text(text)[NOF])


# --- sections ---------------------------------------------------------------------------------
MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // ?pneumonia

 COMPARISON:  ___

 FINDINGS:

 PA and lateral views of the chest provided.  There is no focal consolidation,
 effusion, or pneumothorax.  The cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute intrathoracic process.
"""


def test_sections_exclude_indication() -> None:
    # "?pneumonia" in the indication must not make Pneumonia uncertain.
    labels = label_report(MIMIC_REPORT)
    assert math.isnan(labels[PNEU])
    assert labels[CONSOL] == N and labels[EFF] == N and labels[PTX] == N and labels[EC] == N
    assert labels[NOF] == P
    assert label_report(MIMIC_REPORT, sections=False)[PNEU] == U


def test_labeling_text_choices() -> None:
    # Generated reports carry FINDINGS/IMPRESSION headers on the first line.
    assert labeling_text("FINDINGS: Small effusion.\nIMPRESSION: Effusion.") == (
        "Small effusion.\n\nEffusion."
    )
    # No header at all: the whole text, every paragraph.
    two_paragraphs = "1. Left effusion.\n\n2. Cardiomegaly."
    assert labeling_text(two_paragraphs) == two_paragraphs
    # Other headers but no findings/impression: the last paragraph (official rule).
    assert labeling_text(" INDICATION: cough.\n\n Mild edema.\n") == "Mild edema."


# --- real reports ------------------------------------------------------------------------------
def _realdata_rows() -> list[pd.Series]:
    path = REALDATA / "reports_dev.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return [row for _, row in frame.iterrows()]


@pytest.mark.skipif(
    not (REALDATA / "reports_dev.csv").is_file(),
    reason="../shared/realdata/reports_dev.csv is absent (real sample reports, not shipped)",
)
@pytest.mark.parametrize("index", range(6))
def test_real_reports(index: int) -> None:
    rows = _realdata_rows()
    row = rows[index]
    labels = label_report(row["report_text"])
    label_columns = [c for c in row.index if c in CHEXPERT_LABELS]
    assert len(label_columns) == 7
    for column in label_columns:
        expected = row[column]
        if row["report_id"].startswith("chexpert"):
            # The CheXpert labeler's own output: blanks are "not mentioned" and must match.
            assert (math.isnan(labels[column]) and math.isnan(expected)) or (
                labels[column] == expected
            ), (row["report_id"], column, labels[column], expected)
        elif not math.isnan(expected):
            # NegBio examples are labelled only where the text is explicit.
            assert labels[column] == expected, (row["report_id"], column)
