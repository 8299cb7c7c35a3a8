"""Report sample set; plus the data layer end to end on a tiny synthetic MIMIC-CXR."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fixtures_mimic import Study, dicom_id, write_root

from cxrlib.cohort import build_cohort, merge_tables
from cxrlib.mimic import layout
from cxrlib.mimic.dicom import read_image
from cxrlib.mimic.tables import MimicCxr
from cxrlib.reportset import REPORT_SAMPLE_COLUMNS, build_report_samples

S1, S2, S3 = 10000001, 10000002, 10000003
FINDINGS_ONLY = " FINDINGS:  Small left effusion.\n"
NO_SECTIONS = " INDICATION:  cough\n"  # nothing to learn from: left out
LAST_PARAGRAPH = " INDICATION:  cough\n \n No acute process.\n"


def _splits(*pairs: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=[layout.SUBJECT_ID, layout.SPLIT_COLUMN])


def _root(tmp_path: Path) -> Path:
    studies = [
        # two PA images in one study: the smallest dicom_id is kept; the lateral never
        Study(S1, 51000001, [(dicom_id(3), "PA"), (dicom_id(2), "PA"), (dicom_id(1), "LATERAL")]),
        Study(S1, 51000002, [(dicom_id(4), "PA")], report=FINDINGS_ONLY, date=21800301),
        Study(S2, 52000001, [(dicom_id(5), "PA")], report=NO_SECTIONS),
        Study(S2, 52000002, [(dicom_id(6), "AP")]),  # not PA
        Study(S3, 53000001, [(dicom_id(7), "PA")], report=LAST_PARAGRAPH),
    ]
    return write_root(tmp_path / "root", studies)


def test_samples(tmp_path: Path) -> None:
    root = _root(tmp_path)
    samples = build_report_samples(
        root, _splits((S1, "train"), (S2, "validate"), (S3, "test")), progress=False
    )
    assert tuple(samples.columns) == REPORT_SAMPLE_COLUMNS
    expected = [
        (
            S1,
            51000001,
            dicom_id(2),
            "train",
            "PA and lateral views of the chest provided. No focal consolidation.",
            "No acute intrathoracic process.",
        ),
        (S1, 51000002, dicom_id(4), "train", "Small left effusion.", ""),
        (S3, 53000001, dicom_id(7), "test", "", "No acute process."),  # last-paragraph fallback
    ]
    columns = [
        layout.SUBJECT_ID,
        layout.STUDY_ID,
        layout.DICOM_ID,
        layout.SPLIT_COLUMN,
        "findings",
        "impression",
    ]
    assert [tuple(r) for r in samples[columns].itertuples(index=False)] == expected
    assert samples[layout.PATH].iloc[0] == f"files/p10/p{S1}/s51000001/{dicom_id(2)}.dcm"
    assert samples.dtypes[layout.SUBJECT_ID] == "int64"


def test_restricted_to_subjects(tmp_path: Path) -> None:
    root = _root(tmp_path)
    samples = build_report_samples(root, _splits((S3, "test")), subject_ids=[S3], progress=False)
    assert samples[layout.STUDY_ID].tolist() == [53000001]


def test_reports_under_the_unzipped_folder(tmp_path: Path) -> None:
    """mimic-cxr-reports.zip unpacks to mimic-cxr-reports/files/...; images stay in files/."""
    root = _root(tmp_path)
    for report in list((root / layout.FILES_DIR).rglob("*.txt")):
        target = root / "mimic-cxr-reports" / report.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        report.rename(target)
    splits = _splits((S1, "train"), (S2, "train"), (S3, "train"))
    assert len(build_report_samples(root, splits, progress=False)) == 3


def test_missing_reports(tmp_path: Path) -> None:
    root = _root(tmp_path)
    splits = _splits((S1, "train"), (S2, "train"), (S3, "train"))
    (root / layout.report_path(S3, 53000001)).unlink()
    with pytest.warns(UserWarning, match=r"1 of 4 PA studies have no report file"):
        samples = build_report_samples(root, splits, progress=False)
    assert S3 not in samples[layout.SUBJECT_ID].tolist()
    for report in (root / layout.FILES_DIR).rglob("*.txt"):
        report.unlink()
    with pytest.raises(FileNotFoundError, match=r"no report found for any of the 4 PA studies"):
        build_report_samples(root, splits, progress=False)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            _splits((S1, "train"), (S2, "train")),
            rf"subject {S3} \(and 0 more PA studies\) has no split",
        ),
        (_splits((S1, "train"), (S1, "test")), rf"lists subject {S1} more than once"),
        (
            _splits((S1, "tarin")),
            r"split must be one of \['train', 'validate', 'test'\], got 'tarin'",
        ),
        (pd.DataFrame({layout.SUBJECT_ID: [S1]}), r"needs columns .* missing \['split'\]"),
    ],
)
def test_bad_subject_splits(tmp_path: Path, splits: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_report_samples(_root(tmp_path), splits, progress=False)


# --- the data layer on the synthetic look-alike ------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cxrlib.mimic.synth import generate

    root = tmp_path_factory.mktemp("synthetic") / "mimic-cxr"
    generate(root, 12, 11, min_size=128, max_size=160, progress=False)
    return root


def test_on_synthetic_data(synthetic_root: Path) -> None:
    images, _ = merge_tables(MimicCxr(synthetic_root))
    pa = images[images[layout.VIEW_POSITION] == layout.PA]
    # every paper finding this tiny set has a 0/1 label for (the rest would be an empty cohort)
    diseases = [d for d in layout.PAPER_FINDINGS if pa[d].isin([0.0, 1.0]).any()]
    assert diseases, "the synthetic set should label some paper finding on a PA image"
    result = build_cohort(synthetic_root, diseases=diseases, seed=0)
    again = build_cohort(synthetic_root, diseases=diseases, seed=0)
    pd.testing.assert_frame_equal(result.cohort, again.cohort)  # deterministic
    cohort = result.cohort
    assert set(cohort["label"]) <= {0, 1}
    assert not cohort.duplicated(["disease", layout.SUBJECT_ID]).any()  # one image per subject
    assert result.id_report["count"].sum() == 0
    assert cohort.groupby(layout.SUBJECT_ID)[layout.SPLIT_COLUMN].nunique().max() == 1
    assert int(result.counts["total"].sum()) == len(cohort)
    for path in cohort[layout.PATH].unique():
        image = read_image(synthetic_root / path)
        assert image.dtype == "float32" and image.ndim == 2
        assert 128 <= max(image.shape) <= 160
    official = build_cohort(synthetic_root, diseases=diseases, split_source="official")
    assert official.cohort[layout.DICOM_ID].tolist() == cohort[layout.DICOM_ID].tolist()

    samples = build_report_samples(synthetic_root, result.subject_splits, progress=False)
    assert tuple(samples.columns) == REPORT_SAMPLE_COLUMNS
    assert len(samples) > 0
    assert ((samples["findings"] != "") | (samples["impression"] != "")).all()
    lookup = result.subject_splits.set_index(layout.SUBJECT_ID)[layout.SPLIT_COLUMN]
    assert (samples[layout.SPLIT_COLUMN] == samples[layout.SUBJECT_ID].map(lookup)).all()
    assert not samples.duplicated(layout.STUDY_ID).any()  # one image per study
