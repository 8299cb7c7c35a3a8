"""The report-generation sample set: PA images with their report's findings and impression.

One PA image per study (the cohort's choice rule: earliest StudyDate/StudyTime, then the
smallest ``dicom_id``), kept when its report has a findings or an impression section (the
last-paragraph fallback counts as impression, see :mod:`cxrlib.mimic.sections`). Each sample
takes its subject's split from the shared patient-level split of :mod:`cxrlib.cohort`, so no
patient is in two splits here or across the CNN and report stages. The paper had 2,562
training and 285 validation samples; this set keeps MIMIC's test split as a third part.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import pandas as pd

from cxrlib.cohort import check_patient_disjoint, order_images, subject_split_of
from cxrlib.mimic import layout
from cxrlib.mimic.sections import extract_findings_impression
from cxrlib.mimic.tables import MimicCxr
from cxrlib.progress import progress_bar

REPORT_SAMPLE_COLUMNS: tuple[str, ...] = (
    layout.SUBJECT_ID,
    layout.STUDY_ID,
    layout.DICOM_ID,
    layout.PATH,
    layout.SPLIT_COLUMN,
    "findings",
    "impression",
)


def build_report_samples(
    data_root: str | os.PathLike[str],
    subject_splits: pd.DataFrame,
    *,
    subject_ids: Iterable[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """``subject_id,study_id,dicom_id,path,split,findings,impression``, sorted by subject, study.

    ``subject_splits`` is ``CohortResult.subject_splits`` (``subject_id,split``) and must
    cover every subject with a PA image. ``subject_ids`` restricts the set (e.g. to the cohort's
    subjects). Sections are ``""`` when absent; reports are read with a progress bar. Studies
    whose report file is missing are left out with one warning; none found is an error.
    """
    mimic = MimicCxr(data_root)
    meta = mimic.table(layout.METADATA)
    pa = order_images(meta[meta[layout.VIEW_POSITION] == layout.PA])
    if subject_ids is not None:
        wanted = {int(s) for s in subject_ids}
        pa = pa[pa[layout.SUBJECT_ID].isin(wanted)]
    studies = pa.drop_duplicates(layout.STUDY_ID, keep="first")
    studies = studies.sort_values([layout.SUBJECT_ID, layout.STUDY_ID], kind="mergesort")
    splits = _lookup_splits(studies, subject_splits)

    rows, missing = [], []
    iterator = progress_bar(
        list(studies[[layout.SUBJECT_ID, layout.STUDY_ID, layout.DICOM_ID]].itertuples(False)),
        desc="reports",
        unit="report",
        disable=not progress,
    )
    for (subject_id, study_id, dicom_id), split in zip(iterator, splits, strict=True):
        try:
            text = mimic.read_report(subject_id, study_id)
        except FileNotFoundError:
            missing.append(layout.report_path(subject_id, study_id).as_posix())
            continue
        findings, impression = extract_findings_impression(text)
        if not (findings or impression):
            continue
        path = mimic.image_relpath(subject_id, study_id, dicom_id)
        rows.append((subject_id, study_id, dicom_id, path, split, findings, impression))
    if missing and len(missing) == len(studies):
        raise FileNotFoundError(
            f"no report found for any of the {len(studies)} PA studies under {mimic.root} "
            f"(first tried: {missing[0]}); reports come with MIMIC-CXR (mimic-cxr-reports.zip) - "
            "unpack it into the data root"
        )
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(studies)} PA studies have no report file and were left "
            f"out (first: {missing[0]})",
            stacklevel=2,
        )
    samples = pd.DataFrame(rows, columns=list(REPORT_SAMPLE_COLUMNS))
    samples = samples.astype({layout.SUBJECT_ID: "int64", layout.STUDY_ID: "int64"})
    check_patient_disjoint(samples)
    return samples.reset_index(drop=True)


def _lookup_splits(studies: pd.DataFrame, subject_splits: pd.DataFrame) -> list[str]:
    missing_columns = [
        c for c in (layout.SUBJECT_ID, layout.SPLIT_COLUMN) if c not in subject_splits
    ]
    if missing_columns:
        raise ValueError(
            f"subject_splits needs columns {[layout.SUBJECT_ID, layout.SPLIT_COLUMN]}, missing "
            f"{missing_columns}; pass CohortResult.subject_splits"
        )
    if subject_splits[layout.SUBJECT_ID].duplicated().any():
        subject = subject_splits.loc[
            subject_splits[layout.SUBJECT_ID].duplicated(), layout.SUBJECT_ID
        ]
        raise ValueError(
            f"subject_splits lists subject {subject.iloc[0]} more than once; one split per subject"
        )
    unknown = ~subject_splits[layout.SPLIT_COLUMN].isin(layout.SPLITS)
    if unknown.any():
        raise ValueError(
            f"subject_splits: split must be one of {list(layout.SPLITS)}, got "
            f"{subject_splits.loc[unknown, layout.SPLIT_COLUMN].iloc[0]!r}"
        )
    return list(subject_split_of(studies, subject_splits, rows="PA studies"))
