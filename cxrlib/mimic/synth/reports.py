"""Free-text reports in MIMIC-CXR style whose sentences agree with the study's CheXpert labels.

Every labelled observation gets one sentence (positive with side and severity, negated, or
hedged), in both the FINDINGS and the IMPRESSION when a report has both, so a labeler reading
either section (or the last paragraph of a header-less report) recovers the same labels.
Blank labels are never mentioned. Sentences never mix two observations of different polarity.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np

from cxrlib.mimic.layout import NEGATIVE, POSITIVE, UNCERTAIN
from cxrlib.mimic.synth.cohort import StudyPlan
from cxrlib.mimic.synth.labels import Lesion

_WIDTH = 78  # a leading space + 78 characters stays within MIMIC's 79

_SEVERITY = (("small", "moderate", "large"), ("mild", "moderate", "severe"))


def _sev(strength: float, kind: int = 0) -> str:
    return _SEVERITY[kind][0 if strength < 0.4 else 1 if strength < 0.75 else 2]


def _side(lesion: Lesion) -> str:
    return "bilateral" if lesion.side == "bilateral" else lesion.side or "right"


def _base(lesion: Lesion) -> str:
    """``the right lung base`` or ``both lung bases``."""
    return "both lung bases" if lesion.side == "bilateral" else f"the {_side(lesion)} lung base"


def _lobe(lesion: Lesion) -> str:
    zone = lesion.zone or "lower"
    if zone == "middle":
        return "right middle lobe" if lesion.side == "right" else "lingula"
    side = "bilateral" if lesion.side == "bilateral" else lesion.side
    return f"{side} {zone} lobe" + ("s" if lesion.side == "bilateral" else "")


def _positive(label: str, les: Lesion, rng: np.random.Generator) -> str:
    side, sev = _side(les), _sev(les.strength)
    mild = _sev(les.strength, 1)
    devices = {
        "ett": "Endotracheal tube terminates ___ cm above the carina",
        "ng": "Nasogastric tube courses below the diaphragm, tip in the stomach",
        "ij_line": "Right internal jugular central venous catheter ends in the SVC",
        "picc": "Left PICC line terminates in the lower SVC",
        "pacemaker": "Left chest wall pacemaker with leads in the right atrium and ventricle",
        "chest_tube": "Chest tube projects over the hemithorax",
    }
    if label == "Support Devices":
        named = [devices[d] for d in les.zone.split(",") if d in devices]
        return ".  ".join(named or ["Tubes and lines are in place"]) + "."
    options: dict[str, list[str]] = {
        "Pleural Effusion": [
            f"{sev.capitalize()} bilateral pleural effusions",
            f"There are {sev} bilateral pleural effusions",
            f"Bilateral pleural effusions are {sev} in size",
        ]
        if side == "bilateral"
        else [
            f"{sev.capitalize()} {side} pleural effusion",
            f"There is a {sev} {side} pleural effusion",
            f"{side.capitalize()} pleural effusion is {sev} in size",
        ],
        "Pneumothorax": [
            f"{sev.capitalize()} {side} apical pneumothorax",
            f"There is a {sev} {side} pneumothorax",
            f"{side.capitalize()} pneumothorax is present, {sev} in size",
        ],
        "Cardiomegaly": [
            f"{mild.capitalize()} cardiomegaly",
            f"The heart is {mild}ly enlarged",
            f"{mild.capitalize()} enlargement of the cardiac silhouette",
        ],
        "Consolidation": [
            f"Consolidation in the {_lobe(les)}",
            f"There is dense consolidation of the {_lobe(les)}",
            f"{mild.capitalize()} {_lobe(les)} consolidation",
        ],
        "Pneumonia": [
            f"Findings are consistent with pneumonia in the {_lobe(les)}",
            f"{_lobe(les).capitalize()} pneumonia",
            f"Pneumonia involving the {_lobe(les)}",
        ],
        "Atelectasis": [
            f"{mild.capitalize()} {side} basilar atelectasis",
            f"Plate-like atelectasis at {_base(les)}",
            f"{side.capitalize()} basal atelectasis with elevation of the hemidiaphragm",
        ],
        "Edema": [
            f"{mild.capitalize()} pulmonary edema",
            f"There is {mild} interstitial pulmonary edema",
            f"{mild.capitalize()} perihilar edema",
        ],
        "Enlarged Cardiomediastinum": [
            "The mediastinum is widened",
            "Enlarged cardiomediastinal silhouette",
        ],
        "Fracture": [
            f"Healing fracture of a {side} lateral rib",
            f"{side.capitalize()} rib fracture",
        ],
        "Lung Lesion": [
            f"{round(0.6 + 2.5 * les.strength, 1)} cm nodule in the {_lobe(les)}",
            f"Rounded mass in the {_lobe(les)}",
        ],
        "Lung Opacity": [
            f"Patchy opacities in both {les.zone or 'lower'} lung zones"
            if side == "bilateral"
            else f"Patchy opacity in the {side} {les.zone or 'lower'} lung",
            f"Hazy opacity at {_base(les)}",
        ],
        "Pleural Other": [
            f"{side.capitalize()} apical pleural thickening",
            f"{side.capitalize()} pleural thickening",
        ],
    }
    return str(rng.choice(options[label])) + "."


_UNCERTAIN: dict[str, list[str]] = {
    "Pleural Effusion": [
        "Possible small {side} pleural effusion.",
        "Blunting of the {side} costophrenic angle may represent a small effusion.",
        "A small {side} pleural effusion cannot be excluded.",
    ],
    "Pneumothorax": [
        "Possible tiny {side} apical pneumothorax.",
        "Questionable {side} apical pneumothorax.",
    ],
    "Cardiomegaly": [
        "Possible mild cardiomegaly.",
        "The heart may be mildly enlarged, accentuated by technique.",
    ],
    "Consolidation": [
        "Possible consolidation in the {lobe}.",
        "Consolidation in the {lobe} cannot be excluded.",
    ],
    "Pneumonia": [
        "Pneumonia cannot be excluded.",
        "Possible early pneumonia in the {lobe}.",
        "Findings may represent pneumonia in the appropriate clinical setting.",
    ],
    "Atelectasis": [
        "Possible {side} basilar atelectasis.",
        "Streaky density at {base} may represent atelectasis.",
    ],
    "Edema": ["Possible mild pulmonary edema.", "Mild pulmonary edema cannot be excluded."],
    "Enlarged Cardiomediastinum": ["Possible mediastinal widening, which may be due to technique."],
    "Fracture": ["Possible nondisplaced {side} rib fracture."],
    "Lung Lesion": ["Possible nodule in the {lobe}."],
    "Lung Opacity": ["Possible subtle opacity at {base}."],
    "Pleural Other": ["Possible {side} pleural thickening."],
    "Support Devices": ["Possible malpositioned tube in the upper chest."],
}
#: How a negated observation is named inside a combined "No X, Y, or Z." sentence.
_NEGATION_NAMES: dict[str, list[str]] = {
    "Pleural Effusion": ["pleural effusion", "effusion"],
    "Pneumothorax": ["pneumothorax"],
    "Consolidation": ["focal consolidation", "consolidation"],
    "Pneumonia": ["pneumonia"],
    "Edema": ["pulmonary edema", "edema"],
    "Atelectasis": ["atelectasis"],
    "Lung Lesion": ["suspicious pulmonary nodules"],
    "Lung Opacity": ["focal airspace opacity"],
    "Fracture": ["displaced rib fracture", "acute fracture"],
    "Pleural Other": ["pleural thickening"],
}
_PLURAL_NAMES = frozenset({"suspicious pulmonary nodules"})  # "There are no ..."
_NEGATIVE_SENTENCES: dict[str, list[str]] = {
    "Cardiomegaly": [
        "Heart size is normal.",
        "The cardiac silhouette is normal in size.",
        "No cardiomegaly.",
    ],
    "Enlarged Cardiomediastinum": [
        "The mediastinal contours are normal.",
        "Normal cardiomediastinal silhouette.",
    ],
    "Support Devices": ["Interval removal of the endotracheal tube."],
}
_NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "No acute intrathoracic process.",
    "Normal chest radiograph.",
)
_NEUTRAL = (
    "The lungs are well expanded.",
    "Bony structures are intact.",
    "The hila are unremarkable.",
    "There is no free air under the diaphragm.",
)
_INDICATIONS = (
    "___F with cough",
    "___M with shortness of breath",
    "___-year-old with fever",
    "History: ___F with chest pain",
    "___M s/p line placement",
    "___-year-old man with dyspnea",
    "___F with hypoxia",
)
_QUESTIONS = ("?pneumonia", "eval for effusion", "eval for acute process", "r/o pneumothorax")


def _sentences(study: StudyPlan, rng: np.random.Generator) -> list[str]:
    """One sentence per labelled observation, negatives mostly folded into one sentence."""
    out: list[str] = []
    negated: list[str] = []
    for label, value in study.chexpert.items():
        if label == "No Finding" or math.isnan(value):
            continue
        les = study.lesions.get(label, Lesion(0.5, "right", "lower"))
        if value == POSITIVE:
            out.append(_positive(label, les, rng))
        elif value == UNCERTAIN:
            template = str(rng.choice(_UNCERTAIN[label]))
            out.append(template.format(side=_side(les), lobe=_lobe(les), base=_base(les)))
        elif value == NEGATIVE:
            if label in _NEGATION_NAMES:
                negated.append(str(rng.choice(_NEGATION_NAMES[label])))
            else:
                out.append(str(rng.choice(_NEGATIVE_SENTENCES[label])))
    if negated:
        order = rng.permutation(len(negated))
        names = [negated[i] for i in order]
        if len(names) == 1:
            text = f"No {names[0]}."
        elif len(names) == 2:
            text = f"No {names[0]} or {names[1]}."
        else:
            text = "No " + ", ".join(names[:-1]) + f", or {names[-1]}."
        if rng.random() < 0.4:
            verb = "There are " if names[0] in _PLURAL_NAMES else "There is "
            text = verb + text[0].lower() + text[1:]
        out.append(text)
    return out


def _paragraph(sentences: list[str]) -> str:
    return textwrap.fill(
        "  ".join(sentences),
        width=_WIDTH + 1,
        initial_indent=" ",
        subsequent_indent=" ",
        break_on_hyphens=False,
    )


def _section(name: str, body: str) -> str:
    """A one-line section like `` INDICATION:  ___F with cough``."""
    return textwrap.fill(
        f"{name}:  {body}",
        width=_WIDTH + 1,
        initial_indent=" ",
        subsequent_indent=" ",
        break_on_hyphens=False,
    )


def write_report(study: StudyPlan, rng: np.random.Generator) -> str:
    """The report text of one study (``\\n`` line ends, lines <= 79 characters)."""
    mentions = _sentences(study, rng)
    views = set(study.examined_views)
    if "PA" in views:
        technique = (
            "PA and lateral views of the chest provided."
            if len(views) > 1
            else "Single PA view of the chest."
        )
    elif "AP" in views:
        technique = "Portable semi-upright AP view of the chest."
    else:
        technique = "Lateral view of the chest."
    impression = mentions if mentions else [str(rng.choice(_NORMAL_IMPRESSIONS))]
    findings = [technique, *mentions]
    if rng.random() < 0.5:
        findings.append(str(rng.choice(_NEUTRAL)))
    layout = rng.choice(("both", "impression", "findings", "none"), p=(0.54, 0.29, 0.12, 0.05))
    parts = ["                                 FINAL REPORT"]
    if layout == "none":  # no headers: only the last paragraph carries the observations
        parts.append(_paragraph([f"{study.procedure.title()}, ___.", "Comparison: ___."]))
        parts.append(_paragraph(impression))
        return "\n\n".join(parts) + "\n"
    if rng.random() < 0.41:
        parts.append(_section("EXAMINATION", study.procedure))
    if rng.random() < 0.67:
        indication = str(rng.choice(_INDICATIONS))
        if rng.random() < 0.4:
            indication += "  // " + str(rng.choice(_QUESTIONS))
        parts.append(_section("INDICATION", indication))
    if rng.random() < 0.2:
        parts.append(_section("HISTORY", "___"))
    if rng.random() < 0.36:
        parts.append(_section("TECHNIQUE", technique.rstrip(".")))
    if rng.random() < 0.68:
        parts.append(_section("COMPARISON", str(rng.choice(("___", "None.", "Prior from ___.")))))
    if layout in ("both", "findings"):
        parts.append(" FINDINGS:\n\n" + _paragraph(findings))
    if layout in ("both", "impression"):
        parts.append(" IMPRESSION:\n\n" + _paragraph(impression))
    return "\n\n".join(parts) + "\n"
