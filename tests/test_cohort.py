"""Cohort builder: the paper's rules, the shared patient-level split, id checks, the CLI."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_mimic import Study, dicom_id, write_root

from cxrlib import cli
from cxrlib.cohort import (
    COHORT_COLUMNS,
    COUNTS_COLUMNS,
    SplitRatios,
    build_cohort,
    check_patient_disjoint,
    main,
    random_subject_splits,
    subject_split_of,
)
from cxrlib.mimic import layout

S1, S2, S3 = 10000001, 10000002, 10000003
PNEUMONIA = "Pneumonia"


def _background() -> list[Study]:
    """Two subjects that always give the Pneumonia cohort a case and a control."""
    return [
        Study(S2, 52000001, [(dicom_id(901), "PA")], labels={PNEUMONIA: 1.0}),
        Study(S3, 53000001, [(dicom_id(902), "PA")], labels={PNEUMONIA: 0.0}),
    ]


# Each scenario: studies of subject S1 -> (dicom_id chosen, label), or None when S1 is left out.
SCENARIOS = {
    "lateral-only": ([Study(S1, 51000001, [(dicom_id(1), "LATERAL")], {PNEUMONIA: 1.0})], None),
    "ap-only": ([Study(S1, 51000001, [(dicom_id(1), "AP")], {PNEUMONIA: 1.0})], None),
    "uncertain": ([Study(S1, 51000001, [(dicom_id(1), "PA")], {PNEUMONIA: -1.0})], None),
    "not-mentioned": ([Study(S1, 51000001, [(dicom_id(1), "PA")], {})], None),
    "pa-beside-lateral": (
        [Study(S1, 51000001, [(dicom_id(2), "LATERAL"), (dicom_id(3), "PA")], {PNEUMONIA: 1.0})],
        (dicom_id(3), 1),
    ),
    "earliest-date-wins": (
        [
            Study(S1, 51000002, [(dicom_id(4), "PA")], {PNEUMONIA: 1.0}, date=21800102),
            Study(S1, 51000001, [(dicom_id(5), "PA")], {PNEUMONIA: 0.0}, date=21800101),
        ],
        (dicom_id(5), 0),
    ),
    "same-date-earliest-time-wins": (
        [
            Study(S1, 51000001, [(dicom_id(4), "PA")], {PNEUMONIA: 1.0}, time=93000.5),
            Study(S1, 51000002, [(dicom_id(5), "PA")], {PNEUMONIA: 0.0}, time=213014.531),
        ],
        (dicom_id(4), 1),
    ),
    "same-study-smallest-dicom-id": (
        [Study(S1, 51000001, [(dicom_id(7), "PA"), (dicom_id(6), "PA")], {PNEUMONIA: 0.0})],
        (dicom_id(6), 0),
    ),
    # the label filter comes before the choice: an uncertain earlier study is skipped
    "uncertain-earlier-study-skipped": (
        [
            Study(S1, 51000001, [(dicom_id(4), "PA")], {PNEUMONIA: -1.0}, date=21800101),
            Study(S1, 51000002, [(dicom_id(5), "PA")], {PNEUMONIA: 1.0}, date=21800301),
        ],
        (dicom_id(5), 1),
    ),
    "missing-date-sorts-last": (
        [
            Study(S1, 51000001, [(dicom_id(4), "PA")], {PNEUMONIA: 1.0}, date=None),
            Study(S1, 51000002, [(dicom_id(5), "PA")], {PNEUMONIA: 0.0}, date=21900101),
        ],
        (dicom_id(5), 0),
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selection_rules(tmp_path: Path, scenario: str) -> None:
    studies, expected = SCENARIOS[scenario]
    root = write_root(tmp_path / "root", studies + _background())
    cohort = build_cohort(root, diseases=[PNEUMONIA]).cohort
    chosen = cohort[cohort[layout.SUBJECT_ID] == S1]
    if expected is None:
        assert chosen.empty
    else:
        assert chosen[[layout.DICOM_ID, "label"]].values.tolist() == [list(expected)]


def test_cohort_frame(tmp_path: Path) -> None:
    root = write_root(
        tmp_path / "root",
        [
            Study(S1, 51000001, [(dicom_id(1), "PA"), (dicom_id(2), "LATERAL")], {PNEUMONIA: 1.0}),
            *_background(),
        ],
    )
    cohort = build_cohort(root, diseases=[PNEUMONIA]).cohort
    assert tuple(cohort.columns) == COHORT_COLUMNS
    assert cohort.dtypes[layout.SUBJECT_ID] == np.int64
    assert cohort.dtypes[layout.STUDY_ID] == np.int64
    assert cohort.dtypes["label"] == np.int64
    assert cohort[[layout.SUBJECT_ID, "label"]].values.tolist() == [[S1, 1], [S2, 1], [S3, 0]]
    first = cohort[cohort[layout.SUBJECT_ID] == S1].iloc[0]
    assert first[layout.PATH] == f"files/p10/p{S1}/s51000001/{dicom_id(1)}.dcm"
    assert (root / first[layout.PATH]).is_file()


def test_counts(tmp_path: Path) -> None:
    studies = [
        Study(10000000 + i, 51000000 + i, [(dicom_id(i), "PA")], {PNEUMONIA: float(i % 2)})
        for i in range(10)
    ]
    root = write_root(tmp_path / "root", studies)
    result = build_cohort(root, diseases=[PNEUMONIA], ratios=SplitRatios(0.2, 0.2), seed=3)
    counts = result.counts
    assert tuple(counts.columns) == COUNTS_COLUMNS
    assert counts[layout.SPLIT_COLUMN].tolist() == list(layout.SPLITS)
    assert counts["total"].tolist() == [6, 2, 2]  # round(10 * 0.2) each for validate and test
    assert counts["cases"].sum() == 5 and counts["controls"].sum() == 5
    assert (counts["cases"] + counts["controls"] == counts["total"]).all()


def test_split_is_shared_by_diseases_and_covers_every_subject(tmp_path: Path) -> None:
    studies = [
        Study(
            10000000 + i,
            51000000 + i,
            [(dicom_id(i), "PA" if i % 5 else "LATERAL")],
            {PNEUMONIA: float(i % 2), "Pleural Effusion": float((i // 2) % 2)},
        )
        for i in range(40)
    ]
    root = write_root(tmp_path / "root", studies)
    result = build_cohort(root, diseases=[PNEUMONIA, "Pleural Effusion"], seed=1)
    splits = result.subject_splits
    assert tuple(splits.columns) == (layout.SUBJECT_ID, layout.SPLIT_COLUMN)
    assert splits[layout.SUBJECT_ID].tolist() == [10000000 + i for i in range(40)]  # all, sorted
    lookup = splits.set_index(layout.SUBJECT_ID)[layout.SPLIT_COLUMN]
    cohort = result.cohort
    assert (cohort[layout.SPLIT_COLUMN] == cohort[layout.SUBJECT_ID].map(lookup)).all()
    assert cohort.groupby(layout.SUBJECT_ID)[layout.SPLIT_COLUMN].nunique().max() == 1
    # one split for every disease list: asking for one disease gives the same split
    alone = build_cohort(root, diseases=["Pleural Effusion"], seed=1).subject_splits
    pd.testing.assert_frame_equal(alone, splits)


def test_random_split_sizes_and_determinism() -> None:
    subjects = list(range(10000000, 10000100))
    strata = [i % 3 for i in range(100)]
    first = random_subject_splits(subjects, strata, ratios=(0.1, 0.2), seed=7)
    again = random_subject_splits(
        list(reversed(subjects)), list(reversed(strata)), ratios=(0.1, 0.2), seed=7
    )
    pd.testing.assert_frame_equal(first, again)  # input order does not matter
    assert first[layout.SPLIT_COLUMN].value_counts().to_dict() == {
        "train": 70,
        "test": 20,
        "validate": 10,
    }
    other = random_subject_splits(subjects, strata, ratios=(0.1, 0.2), seed=8)
    assert not other[layout.SPLIT_COLUMN].equals(first[layout.SPLIT_COLUMN])
    # stratified: each stratum (33 or 34 subjects) gets its share of test subjects, +-1
    per_stratum = first.assign(stratum=strata).groupby("stratum")[layout.SPLIT_COLUMN]
    test_counts = per_stratum.apply(lambda s: int((s == "test").sum())).tolist()
    assert all(abs(n - 0.2 * 33.3) <= 1.5 for n in test_counts), test_counts


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ((0.5, 0.6), r"sum below 1.*validate=0.5, test=0.6"),
        ((-0.1, 0.2), r"each in \[0, 1\).*validate=-0.1"),
        ((0.1,), r"ratios must be \(validate, test\) shares"),
        (("a", 0.1), r"ratios must be \(validate, test\) shares"),
    ],
)
def test_bad_ratios(ratios: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_subject_splits([10000001, 10000002], ratios=ratios)


def test_official_split(tmp_path: Path) -> None:
    studies = [
        Study(S1, 51000001, [(dicom_id(1), "PA")], {PNEUMONIA: 1.0}, split="test"),
        Study(S2, 52000001, [(dicom_id(2), "PA")], {PNEUMONIA: 0.0}, split="validate"),
        Study(S3, 53000001, [(dicom_id(3), "PA")], {PNEUMONIA: 0.0}, split="train"),
    ]
    root = write_root(tmp_path / "root", studies)
    result = build_cohort(root, diseases=[PNEUMONIA], split_source="official")
    assert result.cohort[layout.SPLIT_COLUMN].tolist() == ["test", "validate", "train"]


def test_official_split_with_a_subject_in_two_splits(tmp_path: Path) -> None:
    studies = [
        Study(S1, 51000001, [(dicom_id(1), "PA")], {PNEUMONIA: 1.0}, split="test"),
        Study(S1, 51000002, [(dicom_id(2), "PA")], {PNEUMONIA: 0.0}, split="train"),
        *_background(),
    ]
    root = write_root(tmp_path / "root", studies)
    with pytest.raises(ValueError, match=rf"subject {S1} has images in several splits.*leak"):
        build_cohort(root, diseases=[PNEUMONIA], split_source="official")


def test_subject_split_of_looks_up_each_row_and_names_a_missing_subject() -> None:
    splits = pd.DataFrame({layout.SUBJECT_ID: [S1, S2], layout.SPLIT_COLUMN: ["train", "test"]})
    frame = pd.DataFrame({layout.SUBJECT_ID: [S2, S1, S2]}, index=[5, 6, 7])
    split = subject_split_of(frame, splits)
    assert split.to_dict() == {5: "test", 6: "train", 7: "test"}
    with pytest.raises(ValueError, match=rf"subject {S3} \(and 1 more images\) has no split"):
        subject_split_of(pd.DataFrame({layout.SUBJECT_ID: [S1, S3, S3]}), splits, rows="images")


def test_check_patient_disjoint() -> None:
    frame = pd.DataFrame(
        {layout.SUBJECT_ID: [S1, S1, S2], layout.SPLIT_COLUMN: ["train", "test", "test"]}
    )
    with pytest.raises(
        ValueError, match=rf"patient leakage: subject {S1} is in splits \['test', 'train'\]"
    ):
        check_patient_disjoint(frame)
    check_patient_disjoint(frame.iloc[1:])  # one split each: fine


def test_empty_cohort_names_disease_and_filter(tmp_path: Path) -> None:
    studies = [
        Study(S1, 51000001, [(dicom_id(1), "PA")], {PNEUMONIA: 1.0, "Pneumothorax": -1.0}),
        Study(S2, 52000001, [(dicom_id(2), "PA")], {PNEUMONIA: 0.0}),
    ]
    root = write_root(tmp_path / "root", studies)
    with pytest.raises(
        ValueError,
        match=r"cohort for 'Pneumothorax' is empty after keeping labels exactly 1 or 0: its 2 PA "
        r"images have labels \{'-1': 1, 'empty': 1\}",
    ):
        build_cohort(root, diseases=[PNEUMONIA, "Pneumothorax"])


def test_no_pa_view_at_all(tmp_path: Path) -> None:
    root = write_root(
        tmp_path / "root", [Study(S1, 51000001, [(dicom_id(1), "AP")], {PNEUMONIA: 1.0})]
    )
    with pytest.raises(ValueError, match=r"no PA image among the 1 labelled images.*'AP': 1"):
        build_cohort(root, diseases=[PNEUMONIA])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"diseases": ["Pneumonai"]},
            r"diseases must be a non-empty list of .*unknown: \['Pneumonai'\]",
        ),
        ({"diseases": ["No Finding"]}, r"unknown: \['No Finding'\]"),
        ({"diseases": []}, r"diseases must be a non-empty list"),
        ({"diseases": [PNEUMONIA, PNEUMONIA]}, r"must not repeat"),
        (
            {"split_source": "offical"},
            r"split_source must be one of \['random', 'official'\], got 'offical'",
        ),
        (
            {"label_source": "chexbert"},
            r"label_source must be one of \['chexpert', 'negbio'\], got 'chexbert'",
        ),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    root = write_root(tmp_path / "root", _background())
    with pytest.raises(ValueError, match=message):
        build_cohort(root, **{"diseases": [PNEUMONIA], **kwargs})


def test_id_report(tmp_path: Path) -> None:
    studies = [
        Study(S1, 51000001, [(dicom_id(1), "PA")], {PNEUMONIA: 1.0}, has_label_row=False),
        *_background(),
    ]
    root = write_root(tmp_path / "root", studies)
    # a label row for a study without images, and a subject missing from patients
    chexpert = pd.read_csv(root / layout.CHEXPERT.filename, dtype=str, keep_default_na=False)
    orphan = chexpert.iloc[[0]].assign(
        **{layout.SUBJECT_ID: "10000009", layout.STUDY_ID: "59000009"}
    )
    pd.concat([chexpert, orphan]).to_csv(root / layout.CHEXPERT.filename, index=False)
    patients = pd.read_csv(root / layout.PATIENTS.filename, dtype=str, keep_default_na=False)
    patients[patients[layout.SUBJECT_ID] != str(S3)].to_csv(
        root / layout.PATIENTS.filename, index=False
    )
    result = build_cohort(root, diseases=[PNEUMONIA])
    report = result.id_report.set_index("check")["count"].to_dict()
    assert report == {
        "images whose study has no label row": 1,  # S1's study
        "label rows whose study has no image": 1,  # the orphan row
        "images whose subject has no patients row": 1,  # S3
    }
    assert result.cohort[layout.SUBJECT_ID].tolist() == [S2]


def test_label_row_for_another_subject(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root", _background())
    chexpert = pd.read_csv(root / layout.CHEXPERT.filename, dtype=str, keep_default_na=False)
    chexpert.loc[0, layout.SUBJECT_ID] = str(S1)
    chexpert.to_csv(root / layout.CHEXPERT.filename, index=False)
    with pytest.raises(
        ValueError,
        match=rf"study 52000001 is labelled for subject {S1} but its images belong to subject {S2}",
    ):
        build_cohort(root, diseases=[PNEUMONIA])


def test_negbio_labels_and_missing_tables(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root", _background(), patients=False)
    with pytest.raises(
        FileNotFoundError, match=r"patients.csv.gz not found .*hosp/patients.csv.gz"
    ):
        build_cohort(root, diseases=[PNEUMONIA])
    (root / layout.CHEXPERT.filename).unlink()
    result = build_cohort(root, diseases=[PNEUMONIA], label_source="negbio", use_patients=False)
    assert result.cohort["label"].tolist() == [1, 0]


def test_images_missing_or_jpg(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root", _background(), images=False)
    with pytest.raises(
        FileNotFoundError, match=r"2 selected images are missing .*first: files/p10/"
    ):
        build_cohort(root, diseases=[PNEUMONIA])
    paths = build_cohort(root, diseases=[PNEUMONIA], require_images=False).cohort[layout.PATH]
    assert paths.str.endswith(".dcm").all()
    jpg = write_root(tmp_path / "jpg", _background(), suffix=".jpg")
    assert build_cohort(jpg, diseases=[PNEUMONIA]).cohort[layout.PATH].str.endswith(".jpg").all()


def test_corrupt_label_file_is_one_clear_error(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root", _background())
    (root / layout.CHEXPERT.filename).write_bytes(gzip.compress(b"subject_id,study_id\n")[:-8])
    with pytest.raises(ValueError, match=r"mimic-cxr-2.0.0-chexpert.csv.gz is not a valid gzip"):
        build_cohort(root, diseases=[PNEUMONIA])


# --- command line ---------------------------------------------------------------------------


def test_cli_writes_csv_and_prints_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_root(tmp_path / "root", _background())
    out = tmp_path / "out" / "cohort.csv"
    code = cli.run_cli(
        main, ["--data-root", str(root), "--out", str(out), "--diseases", PNEUMONIA, "--seed", "5"]
    )
    assert code == 0
    written = pd.read_csv(out, dtype={layout.DICOM_ID: str})
    expected = build_cohort(root, diseases=[PNEUMONIA], seed=5).cohort
    assert written[list(COHORT_COLUMNS)].astype(str).equals(expected.astype(str))
    printed = capsys.readouterr().out
    assert "Pneumonia" in printed and "cases/controls" in printed
    assert "total images: 2 over 1 cohorts (the paper: 4,742 over its six)" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{root}/cohort.csv"], "is inside the data root"),
        (["--out", "{tmp}/c.csv", "--diseases", "Pneumonai"], "unknown: ['Pneumonai']"),
        (["--out", "{tmp}/c.csv", "--val-ratio", "0.9"], "sum below 1"),
        (["--out", "{tmp}"], "--out {tmp} is a folder; give a file path instead"),
        (["--out", "{root}/../x/c.csv/d.csv"], "is a file, not a folder"),
    ],
)
def test_cli_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    root = write_root(tmp_path / "root", _background())
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "c.csv").write_text("a file where a folder is needed")
    argv = ["--data-root", str(root)] + [a.format(root=root, tmp=tmp_path) for a in args]
    assert cli.run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert err.count("\n") == 1
    assert not (root / "cohort.csv").exists()


def test_cli_missing_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run_cli(
        main, ["--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "c.csv")]
    )
    assert code == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_checks_the_output_before_doing_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable --out used to fail after the cohort was built, naming a hidden temp file."""
    import cxrlib.cohort as cohort_module

    root = write_root(tmp_path / "root", _background())
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # as root every folder is writable: deny this one explicitly
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    monkeypatch.setattr(cohort_module, "build_cohort", lambda *a, **k: pytest.fail("worked first"))
    argv = ["--data-root", str(root), "--out", str(locked / "c.csv")]
    assert cli.run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: --out {locked / 'c.csv'}: no permission to write in {locked}; "
        "choose another place or fix the folder's permissions\n"
    )


def test_cli_unreadable_table_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table the user may not read (permission denied) once ended in a 46-line traceback."""
    root = write_root(tmp_path / "root", _background())
    table = root / layout.METADATA.filename
    real_read_csv = pd.read_csv

    def read_csv(path, *args, **kwargs):
        if Path(path) == table:  # as root chmod 000 is no obstacle: raise what a user gets
            raise PermissionError(13, "Permission denied", str(table))
        return real_read_csv(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", read_csv)
    argv = ["--data-root", str(root), "--out", str(tmp_path / "c.csv")]
    assert cli.run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: cannot read {table}: permission denied; make the file readable "
        "for this user\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_cli_unreadable_table_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_root(tmp_path / "root", _background())
    (root / layout.METADATA.filename).chmod(0)
    assert cli.run_cli(main, ["--data-root", str(root), "--out", str(tmp_path / "c.csv")]) == 2
    assert "permission denied" in capsys.readouterr().err


def test_label_table_with_a_header_and_no_rows(tmp_path: Path) -> None:
    """Once reported as 'no PA image among the 0 labelled images'."""
    root = write_root(tmp_path / "root", _background())
    header = gzip.decompress((root / layout.CHEXPERT.filename).read_bytes()).splitlines()[0]
    (root / layout.CHEXPERT.filename).write_bytes(gzip.compress(header + b"\n"))
    with pytest.raises(ValueError, match=r"chexpert.csv.gz has a header but no rows"):
        build_cohort(root, diseases=[PNEUMONIA])
