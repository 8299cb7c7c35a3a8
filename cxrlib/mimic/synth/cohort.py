"""The plan of a synthetic release: subjects, studies, images, ids, dates, labels and split.

Planning is cheap and sequential; rendering (the expensive part) only reads the plan. Every
subject draws from its own generator (``[seed, stream, subject_index]``), so a subject's
studies do not depend on the others; only the ids (kept unique) and the split are global.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np

from cxrlib.mimic.layout import POSITIVE, STUDY_ID_RANGE, SUBJECT_ID_RANGE, VIEW_POSITIONS
from cxrlib.mimic.synth import labels as lab

# generator streams: one per purpose so adding draws to one never shifts another
STREAM_IDS, STREAM_SUBJECT, STREAM_SPLIT, STREAM_RENDER, STREAM_ANATOMY, STREAM_REPORT = range(6)

_STUDIES_PER_SUBJECT = np.array([0.42, 0.24, 0.15, 0.11, 0.08])
_SETTING_OTHER = 0.05
#: Oblique, decubitus and other rare views: layout's list less the four common ones.
_RARE_VIEWS: tuple[str, ...] = tuple(
    v for v in VIEW_POSITIONS if v not in ("AP", "PA", "LATERAL", "LL")
)
MISSING_VIEW_SHARE = 0.03
MONOCHROME1_SHARE = 0.15
_YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019")

#: (ViewCodeSequence CodeMeaning) per ViewPosition, as in the released metadata.
VIEW_CODE_MEANING: dict[str, str] = {
    "PA": "postero-anterior",
    "AP": "antero-posterior",
    "LATERAL": "lateral",
    "LL": "left lateral",
    "LPO": "left posterior oblique",
    "RAO": "right anterior oblique",
    "RPO": "right posterior oblique",
    "LAO": "left anterior oblique",
    "AP AXIAL": "antero-posterior",
    "XTABLE LATERAL": "lateral",
    "AP LLD": "antero-posterior",
    "PA LLD": "postero-anterior",
    "L5 S1": "antero-posterior",
    "SWIMMERS": "lateral",
    "AP RLD": "antero-posterior",
    "PA RLD": "postero-anterior",
}
_PROCEDURES = {
    "pa_lateral": ("CHEST (PA AND LAT)", "CHEST (PA AND LAT)", "CHEST (PRE-OP PA AND LAT)"),
    "portable": ("CHEST (PORTABLE AP)", "CHEST (PORTABLE AP)", "CHEST (SINGLE VIEW)"),
    "other": ("CHEST (PA AND LAT)", "CHEST (SINGLE VIEW)", "CHEST (LAT DECUB ONLY)"),
}


@dataclass(frozen=True)
class ImagePlan:
    """One DICOM file: what to render (``view``) and how to store it."""

    dicom_id: str
    view: str  # the projection rendered: a VIEW_POSITIONS value
    view_position: str  # the ViewPosition tag: ``view`` or "" (missing, ~3%)
    rows: int
    columns: int
    photometric: str  # MONOCHROME1 or MONOCHROME2
    rescale: tuple[float, float] | None  # (slope, intercept) when the tags are written
    window: bool  # WindowCenter/WindowWidth written
    series_uid: str
    sop_uid: str
    number: int  # 1-based position in the study


@dataclass(frozen=True)
class StudyPlan:
    """One study: its labels, report facts and images."""

    index: int  # position within the subject, for per-study generator keys
    study_id: int
    setting: str
    procedure: str
    date: dt.date
    time: str  # DICOM TM, e.g. "080556.875"
    orientation: str  # "Erect", "Recumbent" or ""
    age: int
    chexpert: dict[str, float]
    negbio: dict[str, float]
    has_chexpert: bool
    lesions: dict[str, lab.Lesion]
    study_uid: str
    images: tuple[ImagePlan, ...]
    #: The view of every image taken, whether a release holds it or not: the report describes
    #: the examination, so a release of some views (``keep_views``) keeps the study's report.
    examined_views: tuple[str, ...]

    @property
    def has_finding(self) -> bool:
        """True unless CheXpert says No Finding."""
        return self.chexpert["No Finding"] != POSITIVE


@dataclass
class SubjectPlan:
    """One patient (MIMIC-IV ``patients`` row) and their studies."""

    index: int
    subject_id: int
    gender: str
    anchor_age: int
    anchor_year: int
    anchor_year_group: str
    dod: str
    studies: list[StudyPlan] = field(default_factory=list)
    split: str = "train"


def _uid(rng: np.random.Generator) -> str:
    """A ``2.25.<128-bit integer>`` UID (the UUID-derived root needs no registration)."""
    return "2.25." + str(int.from_bytes(rng.bytes(16), "big"))


def sop_instance_uid(dicom_id: str) -> str:
    """The image's SOP Instance UID: ``2.25.`` + the first 128 bits of its dicom_id."""
    return "2.25." + str(int(dicom_id.replace("-", "")[:32], 16))


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(rng.bytes(4).hex() for _ in range(5))


def _views(rng: np.random.Generator, setting: str) -> list[str]:
    """Views of one study, tuned to MIMIC's image shares (AP 39%, PA 25%, lateral 31%)."""
    lateral = "LATERAL" if rng.random() < 0.7 else "LL"
    if setting == "pa_lateral":
        views = ["PA"] if rng.random() < 0.06 else ["PA", lateral]
        if rng.random() < 0.035:
            views.append(views[-1])
        return views
    if setting == "portable":
        views = ["AP", "AP"] if rng.random() < 0.12 else ["AP"]
        if rng.random() < 0.2:
            views.append(lateral)
        return views
    rare = str(rng.choice(_RARE_VIEWS))
    first = str(rng.choice(("PA", "AP", "LATERAL")))
    return [first, rare] if rng.random() < 0.6 else [rare]


def _size(rng: np.random.Generator, view: str, min_size: int, max_size: int) -> tuple[int, int]:
    """(rows, columns): long side skewed to the top of the range, portrait like 3056x2544."""
    long_side = min_size + round((max_size - min_size) * float(rng.beta(3.0, 1.5)))
    aspect = float(rng.uniform(0.86, 1.0) if view == "AP" else rng.uniform(0.80, 0.86))
    short = max(min_size, round(long_side * aspect))
    if view == "AP" and rng.random() < 0.1:
        return short, long_side  # landscape portable film
    return long_side, short


def _time(rng: np.random.Generator) -> str:
    seconds = float(rng.uniform(0, 86_400))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}{int(minutes):02d}{secs:06.3f}"


def _plan_subject(
    index: int,
    subject_id: int,
    seed: int,
    min_size: int,
    max_size: int,
    used: set[int],
    prevalence: str = "mimic",
) -> SubjectPlan:
    rng = np.random.default_rng([seed, STREAM_SUBJECT, index])
    gender = "F" if rng.random() < 0.52 else "M"
    anchor_age = int(np.clip(rng.normal(62, 17), 18, 95))
    anchor_age = 91 if anchor_age > 89 else anchor_age
    anchor_year = int(rng.integers(2110, 2186))
    subject = SubjectPlan(
        index,
        subject_id,
        gender,
        anchor_age,
        anchor_year,
        str(rng.choice(_YEAR_GROUPS)),
        "",
    )
    frailty = float(rng.standard_normal())
    p_portable = 1.0 / (1.0 + math.exp(-(0.4 + 1.0 * frailty)))
    n_studies = 1 + int(rng.choice(len(_STUDIES_PER_SUBJECT), p=_STUDIES_PER_SUBJECT))
    day = dt.date(anchor_year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3 * 365)))
    for k in range(n_studies):
        if k:
            day += dt.timedelta(days=1 + int(rng.exponential(150)))
        if rng.random() < _SETTING_OTHER:
            setting = "other"
        else:
            setting = "portable" if rng.random() < p_portable else "pa_lateral"
        chexpert = lab.sample_labels(rng, setting, frailty, prevalence)
        study_id = int(rng.integers(STUDY_ID_RANGE[0], STUDY_ID_RANGE[1] + 1))
        while study_id in used:  # the release's study ids are unique
            study_id = int(rng.integers(STUDY_ID_RANGE[0], STUDY_ID_RANGE[1] + 1))
        used.add(study_id)
        images = []
        for j, view in enumerate(_views(rng, setting)):
            rows, cols = _size(rng, view, min_size, max_size)
            rescale = None
            if rng.random() < 0.3:
                rescale = (1.0, 0.0) if rng.random() < 0.8 else (1.0, -1024.0)
            dicom_id = _dicom_id(rng)
            images.append(
                ImagePlan(
                    dicom_id=dicom_id,
                    view=view,
                    view_position="" if rng.random() < MISSING_VIEW_SHARE else view,
                    rows=rows,
                    columns=cols,
                    photometric="MONOCHROME1"
                    if rng.random() < MONOCHROME1_SHARE
                    else "MONOCHROME2",
                    rescale=rescale,
                    window=bool(rng.random() < 0.5),
                    series_uid=_uid(rng),
                    sop_uid=sop_instance_uid(dicom_id),
                    number=j + 1,
                )
            )
        if setting == "portable":
            orientation = str(rng.choice(("Recumbent", "Erect", ""), p=(0.6, 0.3, 0.1)))
        else:
            orientation = "Erect" if rng.random() < 0.9 else ""
        subject.studies.append(
            StudyPlan(
                index=k,
                study_id=study_id,
                setting=setting,
                procedure=str(rng.choice(_PROCEDURES[setting], p=(0.7, 0.2, 0.1))),
                date=day,
                time=_time(rng),
                orientation=orientation,
                age=min(anchor_age + (day.year - anchor_year), 91),
                chexpert=chexpert,
                negbio=lab.negbio_copy(chexpert, rng),
                has_chexpert=bool(rng.random() >= 0.0106),
                lesions=lab.sample_lesions(chexpert, rng),
                study_uid=_uid(rng),
                images=tuple(images),
                examined_views=tuple(image.view for image in images),
            )
        )
    if rng.random() < 0.12:
        subject.dod = (day + dt.timedelta(days=int(rng.integers(1, 900)))).isoformat()
    return subject


def split_fractions(subjects: int) -> tuple[float, float]:
    """(validate, test) shares of subjects: 10% each up to 2,000 subjects, then down to MIMIC's
    small 2% / 3% (never under 200 subjects each), so small sets still evaluate."""
    if subjects <= 2000:
        return 0.10, 0.10
    return max(0.02, 200 / subjects), max(0.03, 200 / subjects)


def _assign_splits(plan: list[SubjectPlan], seed: int) -> None:
    """Patient-disjoint split; test subjects are drawn favouring studies with findings."""
    n = len(plan)
    if n < 3:
        return
    val_share, test_share = split_fractions(n)
    n_test = max(1, round(test_share * n))
    n_val = max(1, round(val_share * n))
    rng = np.random.default_rng([seed, STREAM_SPLIT])
    finding_share = np.array([np.mean([s.has_finding for s in p.studies]) for p in plan])
    weights = 0.25 + finding_share
    test = rng.choice(n, size=n_test, replace=False, p=weights / weights.sum())
    rest = np.setdiff1d(np.arange(n), test)
    val = rng.choice(rest, size=n_val, replace=False)
    for i in test:
        plan[int(i)].split = "test"
    for i in val:
        plan[int(i)].split = "validate"


def subject_ids(subjects: int, seed: int, exclude: Collection[int] = ()) -> np.ndarray:
    """The sorted subject ids of a release of ``subjects`` patients drawn with ``seed``.

    Ids in ``exclude`` are never drawn, so a release can be made disjoint from another (the
    tiny model's pre-training set from the demo's data). Without ``exclude`` the ids are
    those of every earlier release with the same ``subjects`` and ``seed``.
    """
    low, high = SUBJECT_ID_RANGE
    span = high - low + 1
    banned = np.unique([int(i) - low for i in exclude if low <= int(i) <= high])
    if subjects > span - len(banned):
        raise ValueError(
            f"subjects must be at most {span - len(banned)} with {len(banned)} ids excluded, "
            f"got {subjects}"
        )
    rng = np.random.default_rng([seed, STREAM_IDS])
    # drawing len(banned) extra ids and dropping the banned ones keeps the draw of an
    # exclusion-free release unchanged
    drawn = rng.choice(span, size=subjects + len(banned), replace=False)
    kept = drawn[~np.isin(drawn, banned)][:subjects]
    return np.sort(kept) + low


def plan_dataset(
    subjects: int,
    seed: int,
    min_size: int,
    max_size: int,
    prevalence: str = "mimic",
    exclude_subject_ids: Collection[int] = (),
) -> list[SubjectPlan]:
    """All subjects of a release, sorted by subject_id, with their split assigned; no subject
    id in ``exclude_subject_ids`` (see :func:`subject_ids`)."""
    ids = subject_ids(subjects, seed, exclude_subject_ids)
    used: set[int] = set()
    plan = [
        _plan_subject(i, int(sid), seed, min_size, max_size, used, prevalence)
        for i, sid in enumerate(ids)
    ]
    _assign_splits(plan, seed)
    return plan


def keep_views(plan: list[SubjectPlan], views: Collection[str]) -> list[SubjectPlan]:
    """The plan with only the images whose ViewPosition tag is one of ``views`` (the others
    are neither rendered nor listed) and only the studies left with an image; every subject
    stays. The kept images are the full plan's, pixel for pixel (see ``generate``), and so
    are the reports, which describe every view taken."""
    wanted = set(views)
    out = []
    for subject in plan:
        studies = []
        for study in subject.studies:
            images = tuple(i for i in study.images if i.view_position in wanted)
            if images:
                studies.append(replace(study, images=images))
        out.append(replace(subject, studies=studies))
    return out
