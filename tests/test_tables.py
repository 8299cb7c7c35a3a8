"""Table readers: file lookup, schema and value validation, types; MimicCxr locators."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_mimic import Study, dicom_id, write_root

from cxrlib.mimic import layout
from cxrlib.mimic.tables import MimicCxr, find_table, read_table

SUBJECT, STUDY = 10000032, 50414267


def _root(tmp_path: Path, **kwargs) -> Path:
    studies = [
        Study(
            SUBJECT,
            STUDY,
            [(dicom_id(1), "PA"), (dicom_id(2), "LATERAL")],
            labels={"Pneumonia": 1.0, "Edema": -1.0, "Cardiomegaly": 0.0},
        ),
        Study(10000033, 50000001, [(dicom_id(3), "")], labels={"No Finding": 1.0}),
    ]
    return write_root(tmp_path / "root", studies, **kwargs)


def _write_text(root: Path, spec: layout.TableSpec, text: str) -> Path:
    """Replace a table by the given CSV text (written gzipped under the released name)."""
    path = root / spec.filename
    path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    return path


def test_types_and_values(tmp_path: Path) -> None:
    root = _root(tmp_path)
    meta = read_table(root, "metadata")
    assert list(meta.columns) == list(layout.METADATA.columns)
    assert meta[layout.SUBJECT_ID].dtype == np.int64
    assert meta[layout.STUDY_ID].dtype == np.int64
    assert meta[layout.DICOM_ID].tolist() == [dicom_id(1), dicom_id(2), dicom_id(3)]
    assert meta[layout.VIEW_POSITION].tolist() == ["PA", "LATERAL", ""]  # missing view -> ""
    assert str(meta["Rows"].dtype) == "Int64"
    assert meta[layout.STUDY_TIME].dtype == np.float64
    labels = read_table(root, layout.CHEXPERT)
    first = labels.iloc[0]
    assert (first["Pneumonia"], first["Edema"], first["Cardiomegaly"]) == (1.0, -1.0, 0.0)
    assert np.isnan(first["Atelectasis"])  # empty = not mentioned
    assert labels["No Finding"].dtype == np.float64


@pytest.mark.parametrize("gz", [True, False], ids=["csv.gz", "csv"])
def test_gz_or_plain(tmp_path: Path, gz: bool) -> None:
    root = _root(tmp_path, gz=gz)
    expected = layout.SPLIT.filename if gz else layout.SPLIT.plain_filename
    assert find_table(root, "split").name == expected
    assert len(read_table(root, "split")) == 3


def test_patients_under_hosp(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "hosp").mkdir()
    (root / layout.PATIENTS.filename).rename(root / "hosp" / layout.PATIENTS.filename)
    assert read_table(root, "patients")[layout.SUBJECT_ID].tolist() == [SUBJECT, 10000033]


def test_missing_file_names_paths_and_what_to_do(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / layout.NEGBIO.filename).unlink()
    with pytest.raises(FileNotFoundError) as info:
        read_table(root, "negbio")
    message = str(info.value)
    assert str(root / layout.NEGBIO.filename) in message
    assert str(root / layout.NEGBIO.plain_filename) in message
    assert "PhysioNet" in message and "python -m cxrlib.mimic.synth" in message


def test_unknown_table_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown table 'metdata'; known tables: \["):
        read_table(tmp_path, "metdata")


def test_columns_in_another_order_are_accepted(tmp_path: Path) -> None:
    root = _root(tmp_path)
    _write_text(
        root,
        layout.SPLIT,
        f"split,subject_id,study_id,dicom_id\ntest,{SUBJECT},{STUDY},{dicom_id(1)}\n",
    )
    assert list(read_table(root, "split").columns) == list(layout.SPLIT.columns)


SPLIT_HEADER = ",".join(layout.SPLIT.columns)  # dicom_id,study_id,subject_id,split
GOOD_SPLIT_ROW = f"{dicom_id(1)},{STUDY},{SUBJECT},train"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # schema
        (
            f"dicom_id,study_id,split\n{dicom_id(1)},{STUDY},train\n",
            r"missing columns \['subject_id'\]",
        ),
        (
            f"{SPLIT_HEADER},extra\n{GOOD_SPLIT_ROW},x\n",
            r"unexpected columns \['extra'\]",
        ),
        # values: the message names the column, the row (1-based, and the file line) and value
        (
            f"{SPLIT_HEADER}\n{GOOD_SPLIT_ROW}\n{dicom_id(2)},{STUDY},{SUBJECT},tarin\n",
            r"column 'split' row 2 \(line 3\) has value 'tarin'.*\('train', 'validate', 'test'\)",
        ),
        (
            f"{SPLIT_HEADER}\n{dicom_id(1)},{STUDY},1234,train\n",
            r"column 'subject_id' row 1 \(line 2\) has value '1234', which is not an 8-digit id",
        ),
        (
            f"{SPLIT_HEADER}\n{dicom_id(1)},40000000,{SUBJECT},train\n",
            r"column 'study_id' row 1 .* '40000000'.*50000000-59999999",
        ),
        (
            f"{SPLIT_HEADER}\nABC-123,{STUDY},{SUBJECT},train\n",
            r"column 'dicom_id' row 1 .* 'ABC-123', which is not a dicom_id",
        ),
        (
            f"{SPLIT_HEADER}\n{dicom_id(1)},{STUDY},,train\n",
            r"column 'subject_id' row 1 .* '', which must not be empty",
        ),
        (
            f"{SPLIT_HEADER}\n{GOOD_SPLIT_ROW}\n{GOOD_SPLIT_ROW}\n",
            r"column 'dicom_id' row 2 .*repeats an earlier row",
        ),
        # broken files
        ("", r"is empty \(no header line\)"),
        (
            f"{SPLIT_HEADER}\n{GOOD_SPLIT_ROW},1,2\n",
            r"not a well-formed CSV file \(.*Expected 4 fields in line 2, saw 6",
        ),
        (f'{SPLIT_HEADER}\n"{dicom_id(1)},{STUDY},{SUBJECT},train\n', r"not a well-formed CSV"),
    ],
    ids=[
        "missing-column",
        "extra-column",
        "bad-split",
        "short-subject-id",
        "study-id-range",
        "dicom-id-format",
        "required-empty",
        "duplicate-key",
        "empty-file",
        "too-many-fields",
        "open-quote",
    ],
)
def test_bad_split_file(tmp_path: Path, text: str, message: str) -> None:
    root = _root(tmp_path)
    path = _write_text(root, layout.SPLIT, text)
    with pytest.raises(ValueError, match=message) as info:
        read_table(root, "split")
    assert str(path) in str(info.value)


def _label_text(values: dict[str, str]) -> str:
    header = ",".join(f'"{c}"' if " " in c else c for c in layout.CHEXPERT.columns)
    row = [str(SUBJECT), str(STUDY)] + [values.get(c, "") for c in layout.CHEXPERT_LABELS]
    return f"{header}\n{','.join(row)}\n"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"Pneumonia": "2.0"}, r"column 'Pneumonia' row 1 .* '2.0', which is not 1.0, 0.0, -1.0"),
        ({"Edema": "yes"}, r"column 'Edema' row 1 .* 'yes'"),
        ({"No Finding": "0.0"}, r"column 'No Finding' .* '0.0', which is not 1.0 or empty"),
        ({"No Finding": "-1.0"}, r"column 'No Finding' .* '-1.0'"),
    ],
)
def test_bad_label_values(tmp_path: Path, values: dict[str, str], message: str) -> None:
    root = _root(tmp_path)
    _write_text(root, layout.CHEXPERT, _label_text(values))
    with pytest.raises(ValueError, match=message):
        read_table(root, "chexpert")


@pytest.mark.parametrize("text", ["1", "1.0", "0", "0.0", "-1", "-1.0", ""])
def test_label_spellings_accepted(tmp_path: Path, text: str) -> None:
    root = _root(tmp_path)
    _write_text(root, layout.CHEXPERT, _label_text({"Pneumonia": text}))
    value = read_table(root, "chexpert").loc[0, "Pneumonia"]
    assert (np.isnan(value) and text == "") or value == float(text)


def test_bad_view_position(tmp_path: Path) -> None:
    root = _root(tmp_path)
    meta = pd.read_csv(root / layout.METADATA.filename, dtype=str, keep_default_na=False)
    meta.loc[1, layout.VIEW_POSITION] = "PAA"
    meta.to_csv(root / layout.METADATA.filename, index=False)
    with pytest.raises(ValueError, match=r"column 'ViewPosition' row 2 .* 'PAA'"):
        read_table(root, "metadata")


def test_bad_whole_number(tmp_path: Path) -> None:
    root = _root(tmp_path)
    meta = pd.read_csv(root / layout.METADATA.filename, dtype=str, keep_default_na=False)
    meta.loc[0, "Rows"] = "3056.5"
    meta.to_csv(root / layout.METADATA.filename, index=False)
    with pytest.raises(ValueError, match=r"column 'Rows' row 1 .* '3056.5', which is not a whole"):
        read_table(root, "metadata")


@pytest.mark.parametrize(
    "content",
    [b"\x1f\x8b\x08\x00garbage after a gzip magic", b"plain bytes, not gzip at all \xff\xfe"],
    ids=["corrupt-gzip", "not-gzip"],
)
def test_corrupt_gzip(tmp_path: Path, content: bytes) -> None:
    root = _root(tmp_path)
    (root / layout.SPLIT.filename).write_bytes(content)
    with pytest.raises(ValueError, match=r"mimic-cxr-2.0.0-split.csv.gz"):
        read_table(root, "split")


def test_truncated_plain_csv(tmp_path: Path) -> None:
    """A download cut part-way through the last line (pandas alone would pad it silently)."""
    root = _root(tmp_path, gz=False)
    path = root / layout.SPLIT.plain_filename
    path.write_text(f"{SPLIT_HEADER}\n{GOOD_SPLIT_ROW}\n{dicom_id(2)},{STUDY}")
    with pytest.raises(ValueError, match=r"last line has 2 fields where the header has 4"):
        read_table(root, "split")


def test_truncated_gzip(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = root / layout.METADATA.filename
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"truncated"):
        read_table(root, "metadata")


# --- MimicCxr: images and reports ------------------------------------------------------------


def test_locates_dicom_and_jpg(tmp_path: Path) -> None:
    mimic = MimicCxr(_root(tmp_path))
    expected = f"files/p10/p{SUBJECT}/s{STUDY}/{dicom_id(1)}.dcm"
    assert mimic.image_relpath(SUBJECT, STUDY, dicom_id(1)) == expected
    jpg = MimicCxr(_root(tmp_path / "jpg", suffix=".jpg"))
    assert jpg.image_relpath(SUBJECT, STUDY, dicom_id(1)).endswith(f"{dicom_id(1)}.jpg")
    with pytest.raises(
        FileNotFoundError,
        match=rf"image {dicom_id(99)} of subject {SUBJECT}, study {STUDY} not found",
    ):
        mimic.find_image(SUBJECT, STUDY, dicom_id(99))


@pytest.mark.parametrize("base", ["", "mimic-cxr-reports"])
def test_reports_under_either_root(tmp_path: Path, base: str) -> None:
    root = tmp_path / "root"
    report = root / base / layout.report_path(SUBJECT, STUDY)
    report.parent.mkdir(parents=True)
    report.write_text("IMPRESSION: fine.\n")
    assert MimicCxr(root).read_report(SUBJECT, STUDY) == "IMPRESSION: fine.\n"


def test_missing_report_and_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mimic-cxr-reports.zip"):
        MimicCxr(tmp_path).find_report(SUBJECT, STUDY)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        MimicCxr(tmp_path / "absent")


def test_table_is_cached_and_copied(tmp_path: Path) -> None:
    mimic = MimicCxr(_root(tmp_path))
    first = mimic.table("metadata")
    first.loc[0, layout.VIEW_POSITION] = "changed"
    assert mimic.table("metadata").loc[0, layout.VIEW_POSITION] == "PA"
    assert mimic.has_table("patients")
    assert not mimic.has_table("record_list") or mimic.has_table(layout.RECORD_LIST)
