"""Study-level CheXpert labels with MIMIC-like prevalences, and what each one looks like.

Labels come from a Gaussian copula: every label has a latent score made of shared factors
(general illness, infection, fluid overload) plus its own noise, so labels co-occur as in
MIMIC (effusion with atelectasis and cardiomegaly, pneumonia with consolidation). A label is
positive above its positive threshold, uncertain just below it (borderline cases, which the
phantom renders faintly) and, further down, an explicit negative with the label's own
mention rate, otherwise blank. The thresholds give each label its MIMIC rate exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from cxrlib.choices import PREVALENCES
from cxrlib.mimic.layout import CHEXPERT_LABELS, NEGATIVE, PAPER_FINDINGS, POSITIVE, UNCERTAIN

NAN = float("nan")

#: Fractions of all MIMIC-CXR studies labelled (positive, negative, uncertain). The six paper
#: findings follow the training-split counts of the reference table; the others follow the
#: released CheXpert file. "No Finding" is derived, never sampled.
BASE_RATES: dict[str, tuple[float, float, float]] = {
    "Atelectasis": (0.198, 0.004, 0.043),
    "Cardiomegaly": (0.171, 0.070, 0.026),
    "Consolidation": (0.046, 0.035, 0.013),
    "Edema": (0.120, 0.110, 0.055),
    "Enlarged Cardiomediastinum": (0.031, 0.023, 0.041),
    "Fracture": (0.019, 0.004, 0.003),
    "Lung Lesion": (0.028, 0.004, 0.005),
    "Lung Opacity": (0.226, 0.013, 0.017),
    "Pleural Effusion": (0.232, 0.119, 0.023),
    "Pleural Other": (0.009, 0.001, 0.003),
    "Pneumonia": (0.069, 0.107, 0.078),
    "Pneumothorax": (0.041, 0.185, 0.004),
    "Support Devices": (0.292, 0.015, 0.001),
}

#: ``prevalence="enriched"``: the six paper findings are mentioned in most studies, half of
#: the mentions explicit negatives. At MIMIC's rates a per-finding cohort of PA images labelled
#: exactly 1 or 0 holds a few dozen images per thousand patients (atelectasis has almost no
#: explicit negatives), too few to train and test a CNN in a CPU demo; the enriched look-alike
#: gives usable cohorts at a few hundred patients. Co-occurrence, uncertainty and noise stay.
ENRICHED_RATES: dict[str, tuple[float, float, float]] = {
    label: (0.34, 0.40, 0.05) for label in PAPER_FINDINGS
}

#: Study settings: portable AP (inpatients, sicker, more devices), PA and lateral
#: (outpatients), other (oblique or lateral-only studies).
SETTINGS: tuple[str, ...] = ("portable", "pa_lateral", "other")
_POSITIVE_MULTIPLIER = {"portable": 1.35, "pa_lateral": 0.6, "other": 1.0}
_DEVICE_MULTIPLIER = {"portable": 1.75, "pa_lateral": 0.2, "other": 1.0}

#: Loadings on the shared factors (general, infection, fluid); the rest is the label's own.
_LOADINGS: dict[str, tuple[float, float, float]] = {
    "Atelectasis": (0.40, 0.00, 0.40),
    "Cardiomegaly": (0.30, 0.00, 0.50),
    "Consolidation": (0.30, 0.70, 0.00),
    "Edema": (0.30, 0.00, 0.60),
    "Enlarged Cardiomediastinum": (0.30, 0.00, 0.40),
    "Fracture": (0.20, 0.00, 0.00),
    "Lung Lesion": (0.20, 0.00, 0.00),
    "Lung Opacity": (0.40, 0.50, 0.00),
    "Pleural Effusion": (0.40, 0.00, 0.50),
    "Pleural Other": (0.20, 0.00, 0.00),
    "Pneumonia": (0.30, 0.70, 0.00),
    "Pneumothorax": (0.30, 0.00, 0.00),
    "Support Devices": (0.50, 0.00, 0.00),
}
_SAMPLED = tuple(label for label in CHEXPERT_LABELS if label != "No Finding")
_NORMAL = NormalDist()

#: Share of studies whose image disagrees with the report for a paper finding
#: (finding described but not visible, or visible but not described).
IMAGE_LABEL_NOISE = 0.04
#: Share of CheXpert-NegBio disagreements per label and study.
NEGBIO_DISAGREEMENT = 0.03


@dataclass(frozen=True)
class Lesion:
    """What the image shows for one label: strength 0-1 (0.15 subtle, 1 florid), side, zone."""

    strength: float
    side: str  # "right", "left", "bilateral" (patient sides) or "" when not lateralised
    zone: str = ""  # "upper", "middle", "lower" or a device list for Support Devices
    visible: bool = True


def _thresholds(prevalence: str, setting: str, label: str) -> tuple[float, float, float]:
    """Latent thresholds (positive, uncertain) and the negative mention probability."""
    rates = ENRICHED_RATES if prevalence == "enriched" else BASE_RATES
    pos, neg, unc = rates.get(label, BASE_RATES[label])
    mult = (_DEVICE_MULTIPLIER if label == "Support Devices" else _POSITIVE_MULTIPLIER)[setting]
    pos = min(pos * mult, 0.85)
    unc = min(unc, 0.95 - pos)
    t_pos = _NORMAL.inv_cdf(1.0 - pos)
    t_unc = _NORMAL.inv_cdf(1.0 - pos - unc)
    p_neg = min(neg / max(1.0 - pos - unc, 1e-6), 1.0)
    return t_pos, t_unc, p_neg


_THRESHOLDS = {
    (p, s, lab): _thresholds(p, s, lab) for p in PREVALENCES for s in SETTINGS for lab in _SAMPLED
}


def no_finding(labels: dict[str, float]) -> float:
    """CheXpert rule: 1.0 when no label but Support Devices is positive or uncertain, else NaN."""
    for label, value in labels.items():
        if label in ("No Finding", "Support Devices"):
            continue
        if value in (POSITIVE, UNCERTAIN):
            return NAN
    return POSITIVE


def sample_labels(
    rng: np.random.Generator, setting: str, frailty: float, prevalence: str = "mimic"
) -> dict[str, float]:
    """Draw one study's CheXpert labels; ``frailty`` (a subject's N(0,1) score) shifts all."""
    factors = rng.standard_normal(3)
    factors[0] = 0.6 * factors[0] + 0.8 * frailty  # the general factor keeps unit variance
    labels: dict[str, float] = {}
    for label in _SAMPLED:
        load = np.asarray(_LOADINGS[label])
        own = math.sqrt(max(1.0 - float(load @ load), 0.0))
        latent = float(load @ factors) + own * float(rng.standard_normal())
        t_pos, t_unc, p_neg = _THRESHOLDS[(prevalence, setting, label)]
        mention = float(rng.random())
        if latent > t_pos:
            labels[label] = POSITIVE
        elif latent > t_unc:
            labels[label] = UNCERTAIN
        else:
            labels[label] = NEGATIVE if mention < p_neg else NAN
    labels["No Finding"] = no_finding(labels)
    return {label: labels[label] for label in CHEXPERT_LABELS}


def negbio_copy(labels: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    """NegBio's labels: the same report read by another labeler, a few % different."""
    out = dict(labels)
    for label in _SAMPLED:
        if rng.random() >= NEGBIO_DISAGREEMENT:
            continue
        value = out[label]
        if value == POSITIVE:
            out[label] = UNCERTAIN
        elif value == UNCERTAIN:
            out[label] = POSITIVE if rng.random() < 0.5 else NEGATIVE
        elif value == NEGATIVE:
            out[label] = UNCERTAIN if rng.random() < 0.3 else NAN
        else:
            out[label] = NEGATIVE
    out["No Finding"] = no_finding(out)
    return out


_SIDE_WEIGHTS: dict[str, tuple[float, float, float]] = {  # right, left, bilateral
    "Pleural Effusion": (0.35, 0.25, 0.40),
    "Pneumothorax": (0.50, 0.47, 0.03),
    "Atelectasis": (0.30, 0.30, 0.40),
    "Consolidation": (0.55, 0.40, 0.05),
    "Pneumonia": (0.45, 0.35, 0.20),
    "Lung Opacity": (0.40, 0.35, 0.25),
    "Lung Lesion": (0.55, 0.45, 0.0),
    "Fracture": (0.5, 0.5, 0.0),
    "Pleural Other": (0.5, 0.4, 0.1),
}
_ZONES = ("upper", "middle", "lower")
_ZONE_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "Consolidation": (0.25, 0.15, 0.60),
    "Pneumonia": (0.20, 0.25, 0.55),
    "Lung Opacity": (0.20, 0.30, 0.50),
    "Lung Lesion": (0.50, 0.30, 0.20),
}
DEVICES: tuple[str, ...] = ("ett", "ng", "ij_line", "picc", "pacemaker", "chest_tube")
_DEVICE_WEIGHTS = np.array([0.30, 0.25, 0.35, 0.20, 0.12, 0.08])


def _strength(rng: np.random.Generator, value: float) -> float:
    """Visual strength: positives mostly clear with a subtle fifth; uncertain ones faint."""
    if value == UNCERTAIN:
        return float(rng.uniform(0.08, 0.35))
    if rng.random() < 0.2:
        return float(rng.uniform(0.12, 0.35))
    return float(rng.beta(2.2, 1.6) * 0.75 + 0.25)


def sample_lesions(labels: dict[str, float], rng: np.random.Generator) -> dict[str, Lesion]:
    """Side, zone and strength of every positive/uncertain label, and whether it is visible.

    Paper findings get image-side label noise: a described finding may be invisible and an
    unreported one may show faintly; an uncertain one shows half of the time.
    """
    lesions: dict[str, Lesion] = {}
    for label in _SAMPLED:
        value = labels[label]
        reported = value in (POSITIVE, UNCERTAIN)
        visible = True
        if label in PAPER_FINDINGS:
            missed = reported and rng.random() < IMAGE_LABEL_NOISE
            if missed or (value == UNCERTAIN and rng.random() < 0.5):
                visible = False
            elif not reported:
                if rng.random() >= IMAGE_LABEL_NOISE / 2:
                    continue
                value = UNCERTAIN  # an unreported, faint finding
        elif not reported:
            continue
        side = ""
        if label in _SIDE_WEIGHTS:
            side = str(rng.choice(("right", "left", "bilateral"), p=_SIDE_WEIGHTS[label]))
        zone = ""
        if label in _ZONE_WEIGHTS:
            zone = str(rng.choice(_ZONES, p=_ZONE_WEIGHTS[label]))
        elif label == "Support Devices":
            n = 1 + int(rng.random() < 0.45) + int(rng.random() < 0.15)
            p = _DEVICE_WEIGHTS / _DEVICE_WEIGHTS.sum()
            chosen = rng.choice(len(DEVICES), size=n, replace=False, p=p)
            zone = ",".join(DEVICES[i] for i in sorted(chosen))
        lesions[label] = Lesion(_strength(rng, value), side, zone, visible)
    return lesions
