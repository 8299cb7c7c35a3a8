"""MIMIC-CXR layout and table schemas: the single source of truth.

Every file name, column name, label value and id format of the MIMIC-CXR
(2.0.0), MIMIC-CXR-JPG (2.1.0) and MIMIC-IV ``patients`` releases lives here.
Readers, the synthetic look-alike writer and the cohort builder import these
names; nothing else in the project spells a MIMIC column out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

# --- identifiers -------------------------------------------------------------
SUBJECT_ID_RANGE = (10_000_000, 19_999_999)
STUDY_ID_RANGE = (50_000_000, 59_999_999)
DICOM_ID_PATTERN = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")

# --- label columns (CheXpert / NegBio), in released order ----------------------
CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
#: The six findings studied by the paper, named exactly as the CheXpert header.
PAPER_FINDINGS: tuple[str, ...] = (
    "Pneumonia",
    "Pleural Effusion",
    "Pneumothorax",
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
)
#: The five CheXpert "competition" observations used by clinical-efficacy metrics.
COMPETITION_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
LABEL_VALUES: frozenset[float] = frozenset({POSITIVE, NEGATIVE, UNCERTAIN})  # or empty (NaN)

# --- split values ---------------------------------------------------------------
SPLITS: tuple[str, ...] = ("train", "validate", "test")

# --- view positions -------------------------------------------------------------
VIEW_POSITIONS: tuple[str, ...] = (
    "AP",
    "PA",
    "LATERAL",
    "LL",
    "LPO",
    "RAO",
    "RPO",
    "LAO",
    "AP AXIAL",
    "XTABLE LATERAL",
    "AP LLD",
    "PA LLD",
    "L5 S1",
    "SWIMMERS",
    "AP RLD",
    "PA RLD",
)
PA = "PA"
#: Frontal projections (postero-anterior and antero-posterior): what a full-scale model reads.
FRONTAL_VIEWS: tuple[str, ...] = ("PA", "AP")


# --- tables ---------------------------------------------------------------------
@dataclass(frozen=True)
class TableSpec:
    """One released CSV: its file name (relative to the data root) and column order."""

    name: str
    filename: str
    columns: tuple[str, ...]
    #: columns that must never be empty
    required: tuple[str, ...] = ()

    @property
    def plain_filename(self) -> str:
        """The same table without the ``.gz`` suffix (both are accepted)."""
        return self.filename.removesuffix(".gz")


RECORD_LIST = TableSpec(
    "record_list",
    "cxr-record-list.csv.gz",
    ("subject_id", "study_id", "dicom_id", "path"),
    required=("subject_id", "study_id", "dicom_id", "path"),
)
STUDY_LIST = TableSpec(
    "study_list",
    "cxr-study-list.csv.gz",
    ("subject_id", "study_id", "path"),
    required=("subject_id", "study_id", "path"),
)
METADATA = TableSpec(
    "metadata",
    "mimic-cxr-2.0.0-metadata.csv.gz",
    (
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
        "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ),
    required=("dicom_id", "subject_id", "study_id"),
)
SPLIT = TableSpec(
    "split",
    "mimic-cxr-2.0.0-split.csv.gz",
    ("dicom_id", "study_id", "subject_id", "split"),
    required=("dicom_id", "study_id", "subject_id", "split"),
)
CHEXPERT = TableSpec(
    "chexpert",
    "mimic-cxr-2.0.0-chexpert.csv.gz",
    ("subject_id", "study_id", *CHEXPERT_LABELS),
    required=("subject_id", "study_id"),
)
NEGBIO = TableSpec(
    "negbio",
    "mimic-cxr-2.0.0-negbio.csv.gz",
    ("subject_id", "study_id", *CHEXPERT_LABELS),
    required=("subject_id", "study_id"),
)
#: MIMIC-IV hosp/patients; looked for at ``patients.csv.gz`` or ``hosp/patients.csv.gz``.
PATIENTS = TableSpec(
    "patients",
    "patients.csv.gz",
    ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    required=("subject_id",),
)
PATIENTS_ALTERNATIVE_DIRS: tuple[str, ...] = ("", "hosp")

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (RECORD_LIST, STUDY_LIST, METADATA, SPLIT, CHEXPERT, NEGBIO, PATIENTS)
}

# --- files ----------------------------------------------------------------------
FILES_DIR = "files"
#: Folders that may hold the report tree: the data root itself, or the unpacked zip.
REPORT_ROOTS: tuple[str, ...] = ("", "mimic-cxr-reports")
IMAGE_SUFFIXES: tuple[str, ...] = (".dcm", ".jpg", ".png")


def subject_dir(subject_id: int) -> PurePosixPath:
    """``files/p10/p10000032`` for subject 10000032 (top folder = first two digits)."""
    sid = f"{int(subject_id):08d}"
    return PurePosixPath(FILES_DIR, f"p{sid[:2]}", f"p{sid}")


def study_dir(subject_id: int, study_id: int) -> PurePosixPath:
    """``files/p10/p10000032/s50414267``."""
    return subject_dir(subject_id) / f"s{int(study_id)}"


def image_path(
    subject_id: int, study_id: int, dicom_id: str, suffix: str = ".dcm"
) -> PurePosixPath:
    """Relative path of one image, as in ``cxr-record-list`` (``.jpg`` for MIMIC-CXR-JPG)."""
    return study_dir(subject_id, study_id) / f"{dicom_id}{suffix}"


def report_path(subject_id: int, study_id: int) -> PurePosixPath:
    """Relative path of a study's report: beside the study folder, not inside it."""
    return subject_dir(subject_id) / f"s{int(study_id)}.txt"


# --- DICOM ------------------------------------------------------------------------
DX_FOR_PRESENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"


# --- column names the readers and the cohort builder select on --------------------
SUBJECT_ID = "subject_id"
STUDY_ID = "study_id"
DICOM_ID = "dicom_id"
PATH = "path"
SPLIT_COLUMN = "split"
VIEW_POSITION = "ViewPosition"
STUDY_DATE = "StudyDate"
STUDY_TIME = "StudyTime"
NO_FINDING = "No Finding"
#: Whole-number columns besides the ids (may be empty in the release, hence nullable).
INTEGER_COLUMNS: tuple[str, ...] = ("Rows", "Columns", STUDY_DATE, "anchor_age", "anchor_year")
#: Real-valued columns (``StudyTime`` is ``HHMMSS.fff`` with the leading zero dropped).
FLOAT_COLUMNS: tuple[str, ...] = (STUDY_TIME,)
