"""The released CSV tables of a synthetic plan, in layout's column order, gzipped like MIMIC."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlib.atomic import write_csv
from cxrlib.mimic import layout
from cxrlib.mimic.synth.cohort import VIEW_CODE_MEANING, SubjectPlan


def _frame(spec: layout.TableSpec, rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(spec.columns))


def build_tables(plan: list[SubjectPlan]) -> dict[str, pd.DataFrame]:
    """One DataFrame per ``layout.TABLES`` entry, rows sorted by subject, study and image."""
    rows: dict[str, list[dict[str, object]]] = {name: [] for name in layout.TABLES}
    for subject in plan:
        rows["patients"].append(
            {
                "subject_id": subject.subject_id,
                "gender": subject.gender,
                "anchor_age": subject.anchor_age,
                "anchor_year": subject.anchor_year,
                "anchor_year_group": subject.anchor_year_group,
                "dod": subject.dod or None,
            }
        )
        for study in sorted(subject.studies, key=lambda s: s.study_id):
            ids = {"subject_id": subject.subject_id, "study_id": study.study_id}
            report = str(layout.report_path(subject.subject_id, study.study_id))
            rows["study_list"].append({**ids, "path": report})
            if study.has_chexpert:
                rows["chexpert"].append({**ids, **study.chexpert})
            rows["negbio"].append({**ids, **study.negbio})
            for image in sorted(study.images, key=lambda im: im.dicom_id):
                path = layout.image_path(subject.subject_id, study.study_id, image.dicom_id)
                rows["record_list"].append({**ids, "dicom_id": image.dicom_id, "path": str(path)})
                rows["split"].append({**ids, "dicom_id": image.dicom_id, "split": subject.split})
                rows["metadata"].append(
                    {
                        **ids,
                        "dicom_id": image.dicom_id,
                        "PerformedProcedureStepDescription": study.procedure,
                        "ViewPosition": image.view_position or None,
                        "Rows": image.rows,
                        "Columns": image.columns,
                        "StudyDate": int(study.date.strftime("%Y%m%d")),
                        "StudyTime": float(study.time),  # the release drops the leading zero
                        "ProcedureCodeSequence_CodeMeaning": study.procedure,
                        "ViewCodeSequence_CodeMeaning": VIEW_CODE_MEANING.get(image.view_position),
                        "PatientOrientationCodeSequence_CodeMeaning": study.orientation or None,
                    }
                )
    return {name: _frame(layout.TABLES[name], rows[name]) for name in layout.TABLES}


def write_tables(root: Path, plan: list[SubjectPlan]) -> dict[str, int]:
    """Write every table under ``root`` (gzip with mtime 0: same plan, same bytes); row counts."""
    counts = {}
    for name, frame in build_tables(plan).items():
        write_csv(root / layout.TABLES[name].filename, frame)
        counts[name] = len(frame)
    return counts
