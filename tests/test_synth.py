"""The synthetic MIMIC-CXR look-alike: layout, schemas, DICOM tags, reports, split, determinism."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxrlib.mimic import layout
from cxrlib.mimic.synth import (
    SynthSummary,
    cohort,
    dicom_writer,
    ensure_synthetic,
    generate,
    phantom,
    read_marker,
    reports,
    tables,
)
from cxrlib.mimic.synth import __main__ as cli
from cxrlib.mimic.synth.generate import MARKER
from cxrlib.mimic.synth.labels import BASE_RATES, Lesion

SUBJECTS, SEED, MIN_SIZE, MAX_SIZE = 10, 7, 128, 192


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    root = tmp_path_factory.mktemp("synth") / "mimic"
    summary = generate(root, SUBJECTS, SEED, min_size=MIN_SIZE, max_size=MAX_SIZE, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def big_plan() -> list[cohort.SubjectPlan]:
    """A plan (no pixels) large enough for proportions: planning is cheap."""
    return cohort.plan_dataset(2000, 3, 512, 1024)


def _table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / layout.TABLES[name].filename, dtype={"dicom_id": str})


# --- layout and schemas -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(layout.TABLES))
def test_every_table_has_the_released_columns_in_order(release, name):
    root, _ = release
    spec = layout.TABLES[name]
    assert (root / spec.filename).read_bytes()[:2] == b"\x1f\x8b"  # gzipped like the release
    frame = _table(root, name)
    assert tuple(frame.columns) == spec.columns
    assert not frame[list(spec.required)].isna().any().any()


def test_counts_agree_with_the_summary(release):
    root, summary = release
    assert summary.subjects == SUBJECTS == len(_table(root, "patients"))
    assert summary.studies == len(_table(root, "study_list")) == len(_table(root, "negbio"))
    assert summary.images == len(_table(root, "record_list")) == len(_table(root, "metadata"))
    assert read_marker(root)["summary"]["images"] == summary.images


def test_ids_have_the_real_formats(release):
    root, _ = release
    records = _table(root, "record_list")
    assert records.subject_id.between(10_000_000, 19_999_999).all()
    assert records.study_id.between(50_000_000, 59_999_999).all()
    assert records.dicom_id.str.fullmatch(layout.DICOM_ID_PATTERN.pattern).all()
    assert records.dicom_id.is_unique
    assert _table(root, "study_list").study_id.is_unique


def test_paths_exist_and_reports_sit_beside_study_folders(release):
    root, _ = release
    for row in _table(root, "record_list").itertuples():
        assert row.path == str(layout.image_path(row.subject_id, row.study_id, row.dicom_id))
        assert (root / row.path).is_file()
    for row in _table(root, "study_list").itertuples():
        report = root / row.path
        assert report.is_file() and report.suffix == ".txt"
        assert (report.parent / report.stem).is_dir()  # files/pXX/pN/sM.txt beside sM/


def test_patients_and_labels_use_mimic_values(release):
    root, _ = release
    patients = _table(root, "patients")
    assert set(patients.gender) <= {"M", "F"}
    assert patients.anchor_year.between(2100, 2200).all()
    assert patients.anchor_age.between(18, 91).all()
    for name in ("chexpert", "negbio"):
        values = _table(root, name)[list(layout.CHEXPERT_LABELS)].stack().dropna()
        assert set(values) <= layout.LABEL_VALUES
        assert set(_table(root, name)["No Finding"].dropna()) <= {1.0}


# --- DICOM --------------------------------------------------------------------------------
def test_dicom_files_carry_the_release_tags(release):
    root, _ = release
    meta = _table(root, "metadata").set_index("dicom_id")
    records = _table(root, "record_list")
    for row in records.itertuples():
        ds = pydicom.dcmread(root / row.path)
        m = meta.loc[row.dicom_id]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == layout.DX_FOR_PRESENTATION_SOP_CLASS
        assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert list(ds.ImageType) == ["DERIVED", "PRIMARY"]
        assert ds.SpecificCharacterSet == "ISO_IR 100"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
            16,
            12,
            11,
            0,
        )
        assert ds.PhotometricInterpretation in ("MONOCHROME1", "MONOCHROME2")
        assert (ds.Rows, ds.Columns) == (m.Rows, m.Columns)
        assert MIN_SIZE <= min(ds.Rows, ds.Columns) <= max(ds.Rows, ds.Columns) <= MAX_SIZE
        assert int(ds.StudyDate) == m.StudyDate and 2100 <= int(ds.StudyDate[:4]) <= 2200
        assert float(ds.StudyTime) == pytest.approx(m.StudyTime)
        assert ds.ViewPosition == ("" if pd.isna(m.ViewPosition) else m.ViewPosition)
        assert ds.PerformedProcedureStepDescription == m.PerformedProcedureStepDescription
        assert ds.ProcedureCodeSequence[0].CodeMeaning == m.ProcedureCodeSequence_CodeMeaning
        if not pd.isna(m.ViewCodeSequence_CodeMeaning):
            assert ds.ViewCodeSequence[0].CodeMeaning == m.ViewCodeSequence_CodeMeaning
        assert ds.PatientSex in ("M", "F") and re.fullmatch(r"\d{3}Y", ds.PatientAge)
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.max() <= 4095
        assert pixels.shape == (ds.Rows, ds.Columns)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_monochrome1_stores_inverted_values(photometric):
    plan = cohort.ImagePlan("x", "PA", "PA", 4, 4, photometric, None, False, "1", "1", 1)
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
    stored = dicom_writer.to_stored(ramp, plan, np.random.default_rng(0)).ravel().astype(int)
    rising = photometric == "MONOCHROME2"  # MONOCHROME1: white (1.0) stored as low values
    assert (np.diff(stored) > 0).all() == rising and (np.diff(stored) < 0).all() != rising


def test_image_mix_resembles_mimic(big_plan):
    images = [im for s in big_plan for st in s.studies for im in st.images]
    share = Counter(im.view for im in images)
    n = len(images)
    expected = {"AP": 0.39, "PA": 0.25, "LATERAL": 0.22, "LL": 0.09}
    for view, target in expected.items():
        assert share[view] / n == pytest.approx(target, abs=0.05), view
    assert sum(im.view_position == "" for im in images) / n == pytest.approx(0.03, abs=0.015)
    mono1 = sum(im.photometric == "MONOCHROME1" for im in images) / n
    assert mono1 == pytest.approx(0.15, abs=0.03)
    assert any(im.rescale for im in images) and any(im.window for im in images)
    per_subject = Counter(len(s.studies) for s in big_plan)
    assert set(per_subject) <= {1, 2, 3, 4, 5} and per_subject[1] > per_subject[5]
    pa_studies = [st for s in big_plan for st in s.studies if st.setting == "pa_lateral"]
    with_lateral = [st for st in pa_studies if {"LATERAL", "LL"} & {i.view for i in st.images}]
    assert len(with_lateral) / len(pa_studies) > 0.85
    portable = [st for s in big_plan for st in s.studies if st.setting == "portable"]
    assert sum(len(st.images) == 1 for st in portable) / len(portable) > 0.6


# --- labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("label", layout.PAPER_FINDINGS)
def test_label_rates_follow_mimic(big_plan, label):
    values = np.array([st.chexpert[label] for s in big_plan for st in s.studies])
    pos, neg, unc = BASE_RATES[label]
    assert np.mean(values == 1.0) == pytest.approx(pos, abs=0.02 + 0.15 * pos)
    assert np.mean(values == 0.0) == pytest.approx(neg, abs=0.01 + 0.15 * neg)
    assert np.mean(values == -1.0) == pytest.approx(unc, abs=0.01 + 0.15 * unc)


def test_no_finding_follows_chexpert_and_negbio_differs_a_little(big_plan):
    studies = [st for s in big_plan for st in s.studies]
    differ = 0
    for st in studies:
        others = [v for k, v in st.chexpert.items() if k not in ("No Finding", "Support Devices")]
        expected = 1.0 if all(math.isnan(v) or v == 0.0 for v in others) else None
        assert (st.chexpert["No Finding"] == 1.0) == (expected == 1.0)
        differ += any(
            not (math.isnan(a) and math.isnan(b)) and a != b
            for a, b in zip(st.chexpert.values(), st.negbio.values(), strict=True)
        )
    assert 0.05 < differ / len(studies) < 0.5  # 3% per label over 13 labels
    missing = sum(not st.has_chexpert for st in studies) / len(studies)
    assert missing == pytest.approx(0.0106, abs=0.008)


# --- reports ------------------------------------------------------------------------------
_KEYWORDS = {
    "Pleural Effusion": ("effusion",),
    "Pneumothorax": ("pneumothorax",),
    "Cardiomegaly": ("cardiomegaly", "heart", "cardiac silhouette"),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis",),
    "Edema": ("edema",),
    "Enlarged Cardiomediastinum": ("mediastin",),
    "Fracture": ("fracture",),
    "Lung Lesion": ("nodule", "mass"),
    "Lung Opacity": ("opacit",),
    "Pleural Other": ("pleural thickening",),
    "Support Devices": ("tube", "catheter", "pacemaker", "picc"),
}
_UNCERTAIN_CUES = ("possible", "cannot be excluded", "may ", "questionable")
_SECTION = re.compile(r"\n ([A-Z][A-Z ()/,-]+):\s")


def _sections(text: str) -> dict[str, str]:
    parts = _SECTION.split(text)
    found = {name.lower(): body for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    found["last_paragraph"] = text.strip().split("\n\n")[-1]
    return found


def _label(text: str) -> dict[str, float]:
    """A tiny CheXpert-style reading: keyword per sentence, negation and hedge cues."""
    mentions: dict[str, set[float]] = {}
    for sentence in re.split(r"(?<=\.)\s+", " ".join(text.split()).lower()):
        if (
            sentence.startswith(("no ", "there is no ", "there are no "))
            or "removal" in sentence
            or ("normal" in sentence)
        ):
            value = 0.0
        elif any(cue in sentence for cue in _UNCERTAIN_CUES):
            value = -1.0
        else:
            value = 1.0
        for label, words in _KEYWORDS.items():
            if any(w in sentence for w in words):
                mentions.setdefault(label, set()).add(value)
    return {k: 1.0 if 1.0 in v else -1.0 if -1.0 in v else 0.0 for k, v in mentions.items()}


def _expected(labels: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in labels.items() if k != "No Finding" and not math.isnan(v)}


def test_reports_agree_with_the_labels(big_plan):
    layouts = Counter()
    for subject in big_plan[:400]:
        for study in subject.studies:
            text = reports.write_report(study, np.random.default_rng(study.study_id))
            assert text.startswith(" " * 10) and "FINAL REPORT" in text.splitlines()[0]
            assert max(len(line) for line in text.splitlines()) <= 79
            sections = _sections(text)
            layouts[("findings" in sections, "impression" in sections)] += 1
            expected = _expected(study.chexpert)
            for name in ("impression", "findings"):
                if name in sections:
                    assert _label(sections[name]) == expected, (name, text, study.chexpert)
            if "impression" not in sections and "findings" not in sections:
                assert _label(sections["last_paragraph"]) == expected, text
    total = sum(layouts.values())
    assert layouts[(True, True)] / total == pytest.approx(0.54, abs=0.06)
    assert layouts[(True, False)] / total == pytest.approx(0.12, abs=0.04)
    assert layouts[(False, False)] / total == pytest.approx(0.05, abs=0.03)


def test_report_files_match_the_generated_text(release):
    root, _ = release
    studies = _table(root, "study_list")
    texts = [(root / p).read_text() for p in studies.path]
    assert all("FINAL REPORT" in t for t in texts)
    assert any("___" in t for t in texts)


# --- split --------------------------------------------------------------------------------
def test_split_is_patient_disjoint_and_covers_every_image(release):
    root, _ = release
    split = _table(root, "split")
    assert set(split.split) <= set(layout.SPLITS)
    assert (split.groupby("subject_id").split.nunique() == 1).all()
    assert set(split.dicom_id) == set(_table(root, "record_list").dicom_id)
    per_subject = split.drop_duplicates("subject_id").split.value_counts()
    assert per_subject["validate"] >= 1 and per_subject["test"] >= 1


@pytest.mark.parametrize(
    ("subjects", "validate", "test"),
    [(100, 0.10, 0.10), (2000, 0.10, 0.10), (10_000, 0.02, 0.03), (65_379, 0.02, 0.03)],
)
def test_split_fractions_shrink_to_mimic_at_full_scale(subjects, validate, test):
    assert cohort.split_fractions(subjects) == (validate, test)


def test_test_split_is_enriched_in_findings(big_plan):
    def finding_share(split: str) -> float:
        studies = [st for s in big_plan if s.split == split for st in s.studies]
        return float(np.mean([st.has_finding for st in studies]))

    counts = Counter(s.split for s in big_plan)
    assert counts["validate"] == counts["test"] == 200
    assert finding_share("test") > finding_share("train") + 0.03


# --- phantom ------------------------------------------------------------------------------
def _difference(label: str, side: str) -> tuple[np.ndarray, np.ndarray, phantom.Anatomy]:
    """Density with minus without one finding, same anatomy and same random draws."""
    lesion = Lesion(0.9, side, "lower")
    anatomy = phantom.sample_anatomy(np.random.default_rng(5), "M", {}, "pa_lateral")
    if label in ("Cardiomegaly", "Atelectasis"):
        anatomy_with = phantom.sample_anatomy(
            np.random.default_rng(5), "M", {label: lesion}, "pa_lateral"
        )
    else:
        anatomy_with = anatomy
    shape = (200, 170)
    base = phantom.render_density("PA", anatomy, {}, shape, np.random.default_rng(9))
    found = phantom.render_density(
        "PA", anatomy_with, {label: lesion}, shape, np.random.default_rng(9)
    )
    u = (np.arange(shape[1]) + 0.5 - shape[1] / 2) / shape[0] + 0.5
    return found - base, u, anatomy


@pytest.mark.parametrize(
    ("label", "side", "sign", "where"),
    [
        # effusion: denser at the patient-right base (image left, lower half)
        ("Pleural Effusion", "right", 1, "left-low"),
        # pneumothorax: more lucent, patient left (image right), upper half
        ("Pneumothorax", "left", -1, "right-high"),
        ("Consolidation", "right", 1, "left-low"),
        ("Pneumonia", "left", 1, "right-low"),
        ("Atelectasis", "right", 1, "left-low"),
        # cardiomegaly: a bigger heart, denser around the lower midline
        ("Cardiomegaly", "", 1, "low"),
    ],
)
def test_each_paper_finding_changes_the_image_where_it_should(label, side, sign, where):
    diff, u, anatomy = _difference(label, side)
    rows = np.arange(diff.shape[0])[:, None] / diff.shape[0]
    cols = np.broadcast_to(u[None, :], diff.shape)
    region = np.ones(diff.shape, dtype=bool)
    if "left" in where:
        region &= cols < anatomy.cx
    if "right" in where:
        region &= cols > anatomy.cx
    region &= (rows > 0.45) if "low" in where else (rows < 0.55) if "high" in where else True
    change = np.clip(diff * sign, 0.0, None)  # the finding's own direction of change
    assert change[region].sum() > 0.7 * change.sum()
    assert change.sum() > 0.25 * np.abs(diff).sum() > 0


def test_cardiomegaly_means_a_cardiothoracic_ratio_above_half():
    normal = [
        phantom.sample_anatomy(np.random.default_rng(i), "F", {}, "pa_lateral").ctr
        for i in range(200)
    ]
    big = [
        phantom.sample_anatomy(
            np.random.default_rng(i), "F", {"Cardiomegaly": Lesion(strength, "")}, "pa_lateral"
        ).ctr
        for i, strength in enumerate(np.linspace(0.12, 1.0, 200))
    ]
    assert 0.42 < np.mean(normal) < 0.48 and np.mean(big) > 0.53
    assert max(normal) > min(big)  # overlap near the border, as in reality


# --- determinism, refusal, interruption ---------------------------------------------------
def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = generate(tmp_path / "a", 4, 11, min_size=64, max_size=96, progress=False)
    generate(tmp_path / "b", 4, 11, min_size=64, max_size=96, progress=False, workers=2)
    hashes = _hashes(tmp_path / "a")
    assert len(hashes) > first.images + first.studies  # images, reports, tables, marker
    assert hashes == _hashes(tmp_path / "b")
    generate(tmp_path / "c", 4, 12, min_size=64, max_size=96, progress=False)
    assert hashes != _hashes(tmp_path / "c")


def test_subject_ids_are_those_of_the_plan_and_unchanged_without_exclusion():
    # the draw every release made before exclusion existed: the demo's ids must not move
    rng = np.random.default_rng([3, cohort.STREAM_IDS])
    span = layout.SUBJECT_ID_RANGE[1] - layout.SUBJECT_ID_RANGE[0] + 1
    before = np.sort(rng.choice(span, size=2000, replace=False)) + layout.SUBJECT_ID_RANGE[0]
    assert cohort.subject_ids(2000, 3).tolist() == before.tolist()
    assert [s.subject_id for s in cohort.plan_dataset(50, 3, 64, 64)] == cohort.subject_ids(
        50, 3
    ).tolist()


def test_excluded_subject_ids_are_never_drawn():
    other = set(cohort.subject_ids(3000, 0).tolist())
    # seed 0 again: without exclusion the two releases would be the same patients
    ids = cohort.subject_ids(500, 0, exclude=other)
    assert len(set(ids.tolist())) == 500 and not other & set(ids.tolist())
    assert ids.tolist() == sorted(ids.tolist())
    with pytest.raises(ValueError, match="subjects must be at most"):
        cohort.subject_ids(3, 0, exclude=range(10_000_000, 19_999_998))


def test_exclusion_is_recorded_in_the_marker_and_the_cache_name(tmp_path):
    banned = cohort.subject_ids(4, 11).tolist()
    summary = generate(
        tmp_path / "a", 4, 11, min_size=64, max_size=64, progress=False,
        exclude_subject_ids=banned,
    )  # fmt: skip
    arguments = read_marker(summary.root)["arguments"]
    assert arguments["excluded_subject_ids"] == 4
    assert len(arguments["excluded_subject_ids_sha256"]) == 64
    subjects = set(_table(summary.root, "record_list")["subject_id"])
    assert not subjects & set(banned)
    from cxrlib.mimic.synth.generate import _Settings

    name = _Settings(4, 11, 64, 64, "mimic", tuple(banned)).cache_root().name
    assert name.startswith("mimic-cxr-n4-s11-64-64-x")


def test_a_release_of_some_views_holds_the_same_images(tmp_path):
    full = generate(tmp_path / "full", 6, 11, min_size=64, max_size=64, progress=False)
    pa = generate(tmp_path / "pa", 6, 11, min_size=64, max_size=64, progress=False, views=["PA"])
    meta_full = _table(full.root, "metadata")
    meta_pa = _table(pa.root, "metadata")
    assert set(meta_pa["ViewPosition"]) == {"PA"}
    expected = meta_full[meta_full["ViewPosition"] == "PA"]
    assert sorted(meta_pa["dicom_id"]) == sorted(expected["dicom_id"]) != []
    full_hashes, pa_hashes = _hashes(full.root), _hashes(pa.root)
    dicoms = [name for name in pa_hashes if name.endswith(".dcm")]
    assert len(dicoms) == len(expected)
    assert all(pa_hashes[name] == full_hashes[name] for name in dicoms)
    # a report describes the examination, not the release: same text with or without laterals
    reports = [name for name in pa_hashes if name.endswith(".txt")]
    assert reports and all(pa_hashes[name] == full_hashes[name] for name in reports)
    assert any("PA and lateral" in (pa.root / name).read_text() for name in reports)
    assert read_marker(pa.root)["arguments"]["views"] == "PA"
    with pytest.raises(ValueError, match="views must be among"):
        generate(tmp_path / "x", 2, 1, min_size=64, max_size=64, progress=False, views=["PAA"])


def test_refuses_to_overwrite_other_content(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(out, 3, 1, min_size=64, max_size=64, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_reuses_a_complete_generation_and_refuses_other_arguments(tmp_path):
    out = tmp_path / "data"
    out.mkdir()  # an empty folder is fine
    generate(out, 3, 1, min_size=64, max_size=64, progress=False)
    stamp = (out / MARKER).stat().st_mtime_ns
    again = generate(out, 3, 1, min_size=64, max_size=64, progress=False)
    assert again.root == out and (out / MARKER).stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="subjects"):
        generate(out, 4, 1, min_size=64, max_size=64, progress=False)


def test_an_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tables, "write_tables", boom)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "data", 3, 1, min_size=64, max_size=64, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subjects": 0}, "subjects must be at least 1, got 0"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"min_size": 300, "max_size": 200}, "min_size=300, max_size=200"),
        ({"max_size": 9000}, "<= 4096"),
        ({"prevalence": "balanced"}, "prevalence must be one of ['mimic', 'enriched']"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    args = {"subjects": 2, "seed": 0, "min_size": 64, "max_size": 64, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(tmp_path / "x", args.pop("subjects"), args.pop("seed"), progress=False, **args)
    assert not (tmp_path / "x").exists()


def test_ensure_synthetic_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRLIB_CACHE_DIR", str(tmp_path / "cache"))
    root = ensure_synthetic(3, 2, min_size=64, max_size=80, progress=False)
    assert root == tmp_path / "cache" / "synthetic" / "mimic-cxr-n3-s2-64-80"
    stamp = (root / MARKER).stat().st_mtime_ns
    assert ensure_synthetic(3, 2, min_size=64, max_size=80, progress=False) == root
    assert (root / MARKER).stat().st_mtime_ns == stamp


# --- command line -------------------------------------------------------------------------
def test_cli_writes_and_reports_counts(tmp_path, capsys):
    argv = [
        "--out",
        str(tmp_path / "o"),
        "--subjects",
        "2",
        "--seed",
        "3",
        "--min-size",
        "64",
        "--max-size",
        "64",
        "--quiet",
    ]
    assert cli.run_cli(cli.main, argv) == 0
    assert "wrote 2 subjects" in capsys.readouterr().out
    assert (tmp_path / "o" / MARKER).is_file()


def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("x")
    argv = ["--out", str(tmp_path / "o"), "--subjects", "2", "--quiet"]
    assert cli.run_cli(cli.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not empty" in err and "\n" not in err
    bad = [
        "--out",
        str(tmp_path / "p"),
        "--subjects",
        "2",
        "--min-size",
        "900",
        "--max-size",
        "100",
    ]
    assert cli.run_cli(cli.main, bad) == 2
    assert "min_size=900" in capsys.readouterr().err


def test_enriched_prevalence_mentions_the_paper_findings_in_most_studies():
    """Enriched: each paper finding is labelled 1 or 0 in most studies, both values common;
    the other labels keep MIMIC's rates (Support Devices is compared as a control)."""
    mimic = cohort.plan_dataset(600, 1, 512, 1024)
    enriched = cohort.plan_dataset(600, 1, 512, 1024, "enriched")

    def rates(plan, label):
        values = np.array([st.chexpert[label] for s in plan for st in s.studies])
        return (values == 1.0).mean(), (values == 0.0).mean()

    for label in layout.PAPER_FINDINGS:
        pos, neg = rates(enriched, label)
        assert pos > 0.2 and neg > 0.2, (label, pos, neg)
    assert rates(mimic, "Atelectasis")[1] < 0.02  # MIMIC: almost no explicit negatives
    assert abs(rates(mimic, "Support Devices")[0] - rates(enriched, "Support Devices")[0]) < 0.05


def test_enriched_release_has_its_own_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRLIB_CACHE_DIR", str(tmp_path / "cache"))
    root = ensure_synthetic(3, 2, min_size=64, max_size=80, prevalence="enriched", progress=False)
    assert root.name == "mimic-cxr-n3-s2-64-80-enriched"
    assert read_marker(root)["arguments"]["prevalence"] == "enriched"
