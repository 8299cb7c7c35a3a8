"""Stage 01 glue: data root resolution, overview tables, counts table, cache items, outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_mimic import Study, dicom_id, write_root

from cxrlib import artifacts as a
from cxrlib import preprocessing
from cxrlib.cohort import SplitRatios, build_cohort
from cxrlib.images.cache import build_cache
from cxrlib.mimic.tables import MimicCxr
from cxrlib.reportset import build_report_samples

EFFUSION = "Pleural Effusion"


def _studies() -> list[Study]:
    """Eight subjects, one PA + lateral study each; effusion 1 for even subjects, 0 for odd."""
    studies = []
    for k in range(8):
        studies.append(
            Study(
                subject_id=10_000_000 + k,
                study_id=50_000_000 + k,
                images=[(dicom_id(2 * k), "PA"), (dicom_id(2 * k + 1), "LATERAL")],
                labels={EFFUSION: 1.0 if k % 2 == 0 else 0.0, "Pneumonia": -1.0},
            )
        )
    return studies


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_root(tmp_path_factory.mktemp("mimic"), _studies())


def test_release_overview_counts_views_and_total(root: Path) -> None:
    table = preprocessing.release_overview(MimicCxr(root))
    assert table.loc["PA"].tolist() == [8, 8, 8]  # images, studies, subjects
    assert table.loc["LATERAL"].tolist() == [8, 8, 8]
    assert table.loc["all"].tolist() == [16, 8, 8]


def test_label_prevalence_counts_each_value(root: Path) -> None:
    table = preprocessing.label_prevalence(MimicCxr(root), (EFFUSION, "Pneumonia", "Pneumothorax"))
    assert table.loc[EFFUSION].tolist() == [4, 4, 0, 0]  # positive, negative, uncertain, blank
    assert table.loc["Pneumonia"].tolist() == [0, 0, 8, 0]
    assert table.loc["Pneumothorax"].tolist() == [0, 0, 0, 8]


def test_counts_table_is_wide_with_totals() -> None:
    counts = pd.DataFrame(
        [
            ("Pneumonia", "train", 3, 5, 8),
            ("Pneumonia", "validate", 1, 1, 2),
            ("Pneumonia", "test", 1, 2, 3),
            ("Pleural Effusion", "train", 4, 0, 4),
            ("Pleural Effusion", "validate", 0, 1, 1),
            ("Pleural Effusion", "test", 2, 2, 4),
        ],
        columns=["disease", "split", "cases", "controls", "total"],
    )
    wide = preprocessing.counts_table(counts)
    assert list(wide.columns) == [
        "train cases", "train controls", "validate cases", "validate controls",
        "test cases", "test controls", "total",
    ]  # fmt: skip
    assert list(wide.index) == ["Pneumonia", "Pleural Effusion", "all diseases"]
    assert wide.loc["Pneumonia"].tolist() == [3, 5, 1, 1, 1, 2, 13]
    assert wide.loc["all diseases", "total"] == 13 + 9


def test_cache_items_union_without_duplicates() -> None:
    cohort = pd.DataFrame({"dicom_id": ["b", "a", "b"], "path": ["pb", "pa", "pb"]})
    reports = pd.DataFrame({"dicom_id": ["c", "a"], "path": ["pc", "pa"]})
    items = preprocessing.cache_items(cohort, reports)
    assert items.to_dict("list") == {"dicom_id": ["a", "b", "c"], "path": ["pa", "pb", "pc"]}


def test_resolve_data_root_checks_a_real_root(root: Path, tmp_path: Path) -> None:
    spec = preprocessing.SyntheticSpec(subjects=5)
    assert preprocessing.resolve_data_root(root, spec) == root.resolve()
    with pytest.raises(FileNotFoundError, match="folder not found"):
        preprocessing.resolve_data_root(tmp_path / "nowhere", spec)
    with pytest.raises(ValueError, match="does not look like MIMIC-CXR"):
        preprocessing.resolve_data_root(tmp_path, spec)


def test_stage_outputs_end_to_end_on_a_fixture_root(root: Path, tmp_path: Path) -> None:
    result = build_cohort(root, diseases=[EFFUSION], ratios=SplitRatios(0.25, 0.25), seed=0)
    samples = build_report_samples(root, result.subject_splits, progress=False)
    out = tmp_path / "run" / a.PREPROCESSING
    written = preprocessing.write_outputs(out, result)
    written += preprocessing.write_report_samples(out, samples)
    assert [p.name for p in written] == [
        "cohort.csv", "counts.csv", "subject_splits.csv", "report_samples.csv",
    ]  # fmt: skip
    cache = build_cache(
        preprocessing.cache_items(result.cohort, samples), root, out / "images", 8,
        workers=1, progress=False,
    )  # fmt: skip
    assert len(cache) == 8  # the 8 PA images serve both the cohort and the report samples
    stats = preprocessing.pixel_statistics(cache)
    raw, scaled = stats.iloc[0], stats.iloc[1]
    assert scaled["mean"] == pytest.approx((raw["mean"] - 0.5) / 0.5, abs=1e-5)
    assert scaled["std"] == pytest.approx(raw["std"] / 0.5, rel=1e-5)
    images, titles = preprocessing.example_images(result.cohort, cache, per_class=1, seed=0)
    assert all(img.shape == (8, 8) and img.dtype == np.float32 for img in images)
    assert set(titles) <= {f"{EFFUSION}\ncase", f"{EFFUSION}\ncontrol"}
    listing = preprocessing.list_outputs(out)
    assert {"cohort.csv", "images/pixels.u8", "images/meta.json"} <= set(listing["file"])
