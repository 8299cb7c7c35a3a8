"""The paper's per-disease cohorts (section 4.1) and the one patient-level split.

Rules, applied per disease (names exactly as the CheXpert CSV headers):

1. merge image metadata, the study labels (CheXpert, or NegBio) and MIMIC-IV patients on
   ``subject_id``/``study_id``; ids that do not match are counted in ``CohortResult.id_report``;
2. keep PA views only;
3. keep images whose study label for the disease is exactly 1 (case) or 0 (control); uncertain
   (-1) and unmentioned (empty) are left out, which is what makes some cohorts very unbalanced;
4. keep one PA image per subject: the earliest study (StudyDate, then StudyTime) and, within it,
   the smallest ``dicom_id``, so the choice never depends on file order;
5. give each image its subject's split.

The split is patient-level and computed ONCE for every subject in the metadata (so it does not
depend on the disease list): MIMIC's official split file, or a seeded random split stratified on
(has a PA image, that image's study is positive for any paper finding). The same split serves
every disease and the report sample set; a subject found in two splits is an error.

Leakage note: splitting by subject, never by image or study, keeps one patient's radiographs
out of both training and evaluation.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from cxrlib import cli
from cxrlib.atomic import check_writable, write_csv
from cxrlib.choices import SPLIT_SOURCES
from cxrlib.mimic import layout
from cxrlib.mimic.tables import MimicCxr

LABEL_SOURCES: dict[str, layout.TableSpec] = {"chexpert": layout.CHEXPERT, "negbio": layout.NEGBIO}
COHORT_COLUMNS: tuple[str, ...] = (
    "disease",
    layout.SUBJECT_ID,
    layout.STUDY_ID,
    layout.DICOM_ID,
    layout.PATH,
    "label",
    layout.SPLIT_COLUMN,
)
COUNTS_COLUMNS: tuple[str, ...] = ("disease", layout.SPLIT_COLUMN, "cases", "controls", "total")
SUBJECT_SPLIT_COLUMNS: tuple[str, ...] = (layout.SUBJECT_ID, layout.SPLIT_COLUMN)
ID_REPORT_COLUMNS: tuple[str, ...] = ("check", "count", "example")
#: Diseases a cohort can be built for: every CheXpert label with explicit negatives.
COHORT_DISEASES: tuple[str, ...] = tuple(
    d for d in layout.CHEXPERT_LABELS if d != layout.NO_FINDING
)
#: The total the paper reports over its six cohorts (for the CLI's comparison line).
PAPER_TOTAL_IMAGES = 4742
_TRAIN, _VALIDATE, _TEST = layout.SPLITS


class SplitRatios(NamedTuple):
    """Shares of subjects in ``validate`` and ``test``; ``train`` takes the rest."""

    validate: float = 0.1
    test: float = 0.2


@dataclass(frozen=True)
class CohortResult:
    """What :func:`build_cohort` returns (schemas in docs/ARCHITECTURE.md)."""

    #: ``disease,subject_id,study_id,dicom_id,path,label,split``, one row per image and disease
    cohort: pd.DataFrame
    #: ``subject_id,split`` for every subject of the metadata: THE patient-level split
    subject_splits: pd.DataFrame
    #: ``disease,split,cases,controls,total``
    counts: pd.DataFrame
    #: ``check,count,example``: ids that did not line up between the tables
    id_report: pd.DataFrame


def build_cohort(
    data_root: str | os.PathLike[str],
    *,
    diseases: Sequence[str] = layout.PAPER_FINDINGS,
    split_source: str = "random",
    ratios: tuple[float, float] = SplitRatios(),
    seed: int = 0,
    label_source: str = "chexpert",
    use_patients: bool = True,
    require_images: bool = True,
) -> CohortResult:
    """Build the per-disease cohorts of the paper and the shared subject split.

    ``ratios`` is ``(validate, test)`` for ``split_source="random"`` (ignored for
    ``"official"``). ``use_patients=False`` skips the MIMIC-IV patients table (for a data root
    without it). ``require_images`` checks that every selected image file exists.
    """
    diseases = _check_diseases(diseases)
    mimic = MimicCxr(data_root)
    images, id_report = merge_tables(mimic, label_source=label_source, use_patients=use_patients)
    subject_splits = build_subject_splits(
        mimic, images, split_source=split_source, ratios=ratios, seed=seed
    )
    pa = _pa_images(images)
    frames = [_disease_cohort(pa, disease) for disease in diseases]
    cohort = pd.concat(frames, ignore_index=True)
    cohort[layout.PATH] = _image_paths(mimic, cohort, require_images=require_images)
    cohort[layout.SPLIT_COLUMN] = subject_split_of(cohort, subject_splits, rows="cohort rows")
    check_patient_disjoint(cohort)
    cohort = cohort.loc[:, list(COHORT_COLUMNS)]
    return CohortResult(cohort, subject_splits, count_cohort(cohort, diseases), id_report)


def _check_diseases(diseases: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(diseases, str):
        diseases = (diseases,)
    unknown = [d for d in diseases if d not in COHORT_DISEASES]
    if unknown or not diseases:
        raise ValueError(
            f"diseases must be a non-empty list of {list(COHORT_DISEASES)}, got {list(diseases)}"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    if len(set(diseases)) != len(diseases):
        raise ValueError(f"diseases must not repeat a name, got {list(diseases)}")
    return tuple(diseases)


def merge_tables(
    mimic: MimicCxr, *, label_source: str = "chexpert", use_patients: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Images with their study's labels (and a patients row), plus the id mismatch report.

    Images without a label row, and subjects without a patients row, are left out and counted.
    A study whose label row names another subject than its images is an error.
    """
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {list(LABEL_SOURCES)}, got {label_source!r}")
    keys = [layout.SUBJECT_ID, layout.STUDY_ID]
    meta = mimic.table(layout.METADATA)
    labels = mimic.table(LABEL_SOURCES[label_source])
    report: list[tuple[str, int, str]] = []

    study_subject = meta.drop_duplicates(layout.STUDY_ID).set_index(layout.STUDY_ID)
    owner = labels[layout.STUDY_ID].map(study_subject[layout.SUBJECT_ID])
    clash = owner.notna() & (owner != labels[layout.SUBJECT_ID])
    if clash.any():
        study = int(labels.loc[clash, layout.STUDY_ID].iloc[0])
        labelled_for = int(labels.loc[clash, layout.SUBJECT_ID].iloc[0])
        raise ValueError(
            f"{LABEL_SOURCES[label_source].filename}: study {study} is labelled for subject "
            f"{labelled_for} but its images belong to subject {int(owner[clash].iloc[0])} "
            f"({int(clash.sum())} such studies); the tables come from different releases - use "
            "files of one release"
        )
    merged = meta.merge(labels, on=keys, how="left", indicator=True)
    unlabelled = merged["_merge"] == "left_only"
    report.append(_report_row("images whose study has no label row", merged[unlabelled]))
    merged = merged[~unlabelled].drop(columns="_merge")
    orphan = ~labels[layout.STUDY_ID].isin(meta[layout.STUDY_ID])
    report.append(_report_row("label rows whose study has no image", labels[orphan]))
    if use_patients:
        patients = mimic.table(layout.PATIENTS)
        known = merged[layout.SUBJECT_ID].isin(patients[layout.SUBJECT_ID])
        report.append(_report_row("images whose subject has no patients row", merged[~known]))
        merged = merged[known]
    return merged.reset_index(drop=True), pd.DataFrame(report, columns=list(ID_REPORT_COLUMNS))


def _report_row(check: str, rows: pd.DataFrame) -> tuple[str, int, str]:
    if rows.empty:
        return check, 0, ""
    subject, study = (int(rows[key].iloc[0]) for key in (layout.SUBJECT_ID, layout.STUDY_ID))
    example = f"subject {subject}, study {study}"
    return check, len(rows), example


def order_images(images: pd.DataFrame) -> pd.DataFrame:
    """Images in the documented choice order: subject, StudyDate, StudyTime, dicom_id.

    Missing dates or times sort last, so a dated study is preferred.
    """
    by = [layout.SUBJECT_ID, layout.STUDY_DATE, layout.STUDY_TIME, layout.DICOM_ID]
    return images.sort_values(by, na_position="last", kind="mergesort").reset_index(drop=True)


def _pa_images(images: pd.DataFrame) -> pd.DataFrame:
    pa = images[images[layout.VIEW_POSITION] == layout.PA]
    if pa.empty:
        views = images[layout.VIEW_POSITION].replace("", "(missing)").value_counts()
        raise ValueError(
            f"no {layout.PA} image among the {len(images)} labelled images "
            f"(ViewPosition values seen: {views.to_dict()}); the cohort needs PA views"
        )
    return order_images(pa)


def _disease_cohort(pa: pd.DataFrame, disease: str) -> pd.DataFrame:
    """One disease's cohort from the ordered PA images (see :func:`_pa_images`)."""
    labels = pa[disease]
    kept = pa[labels.isin([layout.POSITIVE, layout.NEGATIVE])]
    if kept.empty:
        seen = labels.map(lambda v: "empty" if pd.isna(v) else f"{v:g}").value_counts()
        raise ValueError(
            f"cohort for {disease!r} is empty after keeping labels exactly 1 or 0: its "
            f"{len(pa)} PA images have labels {seen.to_dict()}; check the label file or choose "
            "another disease"
        )
    first = kept.drop_duplicates(layout.SUBJECT_ID, keep="first")
    return pd.DataFrame(
        {
            "disease": disease,
            layout.SUBJECT_ID: first[layout.SUBJECT_ID].to_numpy(),
            layout.STUDY_ID: first[layout.STUDY_ID].to_numpy(),
            layout.DICOM_ID: first[layout.DICOM_ID].to_numpy(),
            "label": first[disease].astype("int64").to_numpy(),
        }
    )


def _image_paths(mimic: MimicCxr, cohort: pd.DataFrame, *, require_images: bool) -> list[str]:
    """Relative image paths, located on disk (``.dcm`` or the JPG release's ``.jpg``)."""
    found: dict[str, str] = {}
    missing: list[str] = []
    rows = cohort[[layout.SUBJECT_ID, layout.STUDY_ID, layout.DICOM_ID]].drop_duplicates()
    for subject_id, study_id, dicom_id in rows.itertuples(index=False):
        if not require_images:
            found[dicom_id] = layout.image_path(subject_id, study_id, dicom_id).as_posix()
            continue
        try:
            found[dicom_id] = mimic.image_relpath(subject_id, study_id, dicom_id)
        except FileNotFoundError:
            missing.append(layout.image_path(subject_id, study_id, dicom_id).as_posix())
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} selected images are missing under {mimic.root} (first: "
            f"{missing[0]}, as .dcm/.jpg/.png); download them, or pass require_images=False"
        )
    return [found[d] for d in cohort[layout.DICOM_ID]]


def build_subject_splits(
    mimic: MimicCxr,
    images: pd.DataFrame,
    *,
    split_source: str = "random",
    ratios: tuple[float, float] = SplitRatios(),
    seed: int = 0,
) -> pd.DataFrame:
    """``subject_id,split`` for every subject of the metadata, sorted by subject.

    ``images`` is :func:`merge_tables`' frame; it only feeds the strata of a random split.
    """
    if split_source not in SPLIT_SOURCES:
        raise ValueError(f"split_source must be one of {list(SPLIT_SOURCES)}, got {split_source!r}")
    subjects = np.unique(mimic.table(layout.METADATA)[layout.SUBJECT_ID].to_numpy())
    if split_source == "official":
        return official_subject_splits(mimic, subjects)
    return random_subject_splits(subjects, _strata(images, subjects), ratios=ratios, seed=seed)


def _strata(images: pd.DataFrame, subjects: np.ndarray) -> np.ndarray:
    """0 = no labelled PA image, 1 = first PA study negative for all paper findings, 2 = positive.

    Fixed to the paper's findings so that the split never depends on the diseases asked for.
    """
    pa = order_images(images[images[layout.VIEW_POSITION] == layout.PA])
    first = pa.drop_duplicates(layout.SUBJECT_ID, keep="first").set_index(layout.SUBJECT_ID)
    positive = (first[list(layout.PAPER_FINDINGS)] == layout.POSITIVE).any(axis=1)
    stratum = positive.astype("int64") + 1
    return pd.Series(subjects).map(stratum).fillna(0).astype("int64").to_numpy()


def _systematic_take(n: int, share: float) -> np.ndarray:
    """Mask taking ``round(n * share)`` of ``n`` ordered items, evenly spread along the order."""
    steps = np.floor(np.arange(n + 1) * share + 0.5)
    return np.diff(steps) > 0


def random_subject_splits(
    subjects: Iterable[int],
    strata: Sequence[int] | np.ndarray | None = None,
    *,
    ratios: tuple[float, float] = SplitRatios(),
    seed: int = 0,
) -> pd.DataFrame:
    """A seeded, stratified, patient-level split: ``subject_id,split`` sorted by subject.

    Subjects are shuffled within each stratum, strata are laid end to end, and test then
    validate subjects are taken at evenly spaced positions, so every stratum gets its share
    (+-1) and the totals are ``round(n * ratio)`` whatever the strata sizes.
    """
    val_ratio, test_ratio = _check_ratios(ratios)
    raw = np.asarray([int(s) for s in subjects], dtype=np.int64)
    groups = np.zeros(len(raw), dtype=np.int64) if strata is None else np.asarray(strata)
    if len(groups) != len(raw):
        raise ValueError(f"strata must have one value per subject ({len(raw)}), got {len(groups)}")
    by_id = np.argsort(raw, kind="stable")  # the shuffle must not depend on the input order
    ids, groups = raw[by_id], groups[by_id]
    if len(np.unique(ids)) != len(ids):
        raise ValueError("subjects must be distinct ids")
    rng = np.random.default_rng(seed)
    shuffled = np.concatenate(
        [rng.permutation(ids[groups == g]) for g in np.unique(groups)]
        or [np.array([], dtype=np.int64)]
    )
    split = np.full(len(shuffled), _TRAIN, dtype=object)
    test = _systematic_take(len(shuffled), test_ratio)
    split[test] = _TEST
    rest = np.flatnonzero(~test)
    val_share = val_ratio / (1.0 - test_ratio) if test_ratio < 1 else 0.0
    split[rest[_systematic_take(len(rest), val_share)]] = _VALIDATE
    frame = pd.DataFrame({layout.SUBJECT_ID: shuffled, layout.SPLIT_COLUMN: split.astype(str)})
    return frame.sort_values(layout.SUBJECT_ID, kind="mergesort").reset_index(drop=True)


def _check_ratios(ratios: tuple[float, float]) -> tuple[float, float]:
    try:
        val_ratio, test_ratio = (float(r) for r in ratios)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"ratios must be (validate, test) shares, e.g. (0.1, 0.2); got {ratios!r}"
        ) from exc
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(
            "ratios must be (validate, test) with each in [0, 1) and a sum below 1 (train "
            f"takes the rest); got validate={val_ratio}, test={test_ratio}"
        )
    return val_ratio, test_ratio


def official_subject_splits(mimic: MimicCxr, subjects: np.ndarray) -> pd.DataFrame:
    """Subject-level split from MIMIC's ``mimic-cxr-2.0.0-split`` file (per image there)."""
    table = mimic.table(layout.SPLIT)
    per_subject = table.groupby(layout.SUBJECT_ID)[layout.SPLIT_COLUMN].unique()
    mixed = per_subject[per_subject.map(len) > 1]
    if not mixed.empty:
        raise ValueError(
            f"{layout.SPLIT.filename}: subject {mixed.index[0]} has images in several splits "
            f"{sorted(mixed.iloc[0])} ({len(mixed)} such subjects): the split would leak "
            "patients; use split_source='random' or fix the file"
        )
    splits = per_subject.map(lambda v: v[0])
    absent = [int(s) for s in subjects if s not in splits.index]
    if absent:
        raise ValueError(
            f"{layout.SPLIT.filename} has no row for {len(absent)} subjects of the metadata "
            f"(first: {absent[0]}); use split_source='random' or the split file of this release"
        )
    frame = pd.DataFrame(
        {layout.SUBJECT_ID: subjects, layout.SPLIT_COLUMN: splits.loc[subjects].to_numpy()}
    )
    return frame.astype({layout.SUBJECT_ID: "int64", layout.SPLIT_COLUMN: str})


def subject_split_of(
    frame: pd.DataFrame, subject_splits: pd.DataFrame, *, rows: str = "rows"
) -> pd.Series:
    """The split of each row's subject (str, aligned with ``frame``): every table of a run takes
    its split from the one subject split, so no subject can land in two splits.

    ``rows`` names what the rows are in the error raised when a subject has no split.
    """
    lookup = subject_splits.set_index(layout.SUBJECT_ID)[layout.SPLIT_COLUMN]
    split = frame[layout.SUBJECT_ID].map(lookup)
    if split.isna().any():
        subject = frame.loc[split.isna(), layout.SUBJECT_ID].iloc[0]
        raise ValueError(
            f"subject {subject} (and {int(split.isna().sum()) - 1} more {rows}) has no split "
            "in subject_splits; compute the split from the same data root (build_cohort)"
        )
    return split.astype(str)


def check_patient_disjoint(frame: pd.DataFrame) -> None:
    """Raise when any subject appears in more than one split (patient leakage)."""
    per_subject = frame.groupby(layout.SUBJECT_ID)[layout.SPLIT_COLUMN].nunique()
    leaked = per_subject[per_subject > 1]
    if not leaked.empty:
        subject = leaked.index[0]
        splits = sorted(
            frame.loc[frame[layout.SUBJECT_ID] == subject, layout.SPLIT_COLUMN].unique()
        )
        raise ValueError(
            f"patient leakage: subject {subject} is in splits {splits} ({len(leaked)} such "
            "subjects); every subject must be in exactly one split"
        )


def count_cohort(cohort: pd.DataFrame, diseases: Sequence[str]) -> pd.DataFrame:
    """``disease,split,cases,controls,total`` for every disease and split (zeros included)."""
    rows = []
    for disease in diseases:
        part = cohort[cohort["disease"] == disease]
        for split in layout.SPLITS:
            labels = part.loc[part[layout.SPLIT_COLUMN] == split, "label"]
            cases, controls = int((labels == 1).sum()), int((labels == 0).sum())
            rows.append((disease, split, cases, controls, cases + controls))
    return pd.DataFrame(rows, columns=list(COUNTS_COLUMNS))


def format_counts(counts: pd.DataFrame) -> str:
    """The counts as a disease x split table of ``cases/controls`` plus totals, for printing."""
    cell = counts["cases"].astype(str) + "/" + counts["controls"].astype(str)
    table = counts.assign(cell=cell).pivot(
        index="disease", columns=layout.SPLIT_COLUMN, values="cell"
    )
    table = table.reindex(index=list(dict.fromkeys(counts["disease"])), columns=list(layout.SPLITS))
    table["total"] = counts.groupby("disease")["total"].sum()
    table.columns.name = "cases/controls"
    return table.to_string()


# --- command line ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.cohort",
        description="Build the paper's per-disease cohorts (PA, label 1/0, one image per subject).",
    )
    parser.add_argument("--data-root", required=True, type=Path, help="MIMIC-CXR data root")
    parser.add_argument("--out", required=True, type=Path, help="cohort CSV to write")
    parser.add_argument("--split-source", default="random", choices=SPLIT_SOURCES)
    parser.add_argument("--val-ratio", type=float, default=SplitRatios().validate)
    parser.add_argument("--test-ratio", type=float, default=SplitRatios().test)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--diseases",
        default=",".join(layout.PAPER_FINDINGS),
        help="comma-separated CheXpert names (default: the paper's six)",
    )
    parser.add_argument("--label-source", default="chexpert", choices=sorted(LABEL_SOURCES))
    parser.add_argument(
        "--no-patients", action="store_true", help="do not require MIMIC-IV patients.csv.gz"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: write the cohort CSV atomically and print the counts."""
    args = _parser().parse_args(argv)
    root, out = args.data_root.expanduser().resolve(), args.out.expanduser().resolve()
    if out == root or root in out.parents:
        raise ValueError(
            f"--out {out} is inside the data root {root}, which is read-only; write elsewhere"
        )
    check_writable(out, what="--out")
    result = build_cohort(
        root,
        diseases=[d.strip() for d in args.diseases.split(",") if d.strip()],
        split_source=args.split_source,
        ratios=SplitRatios(args.val_ratio, args.test_ratio),
        seed=args.seed,
        label_source=args.label_source,
        use_patients=not args.no_patients,
    )
    write_csv(out, result.cohort)
    mismatches = result.id_report[result.id_report["count"] > 0]
    for check, count, example in mismatches.itertuples(index=False):
        print(f"ids: {count} {check} (e.g. {example})")
    print(format_counts(result.counts))
    print(
        f"total images: {len(result.cohort)} over {result.counts['disease'].nunique()} cohorts "
        f"(the paper: {PAPER_TOTAL_IMAGES:,} over its six); wrote {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run_cli(main))
