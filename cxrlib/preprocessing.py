"""Stage 01 (paper section 4.1): from a MIMIC-CXR root to the cohort, report samples and cache.

The notebook ``01_preprocessing`` narrates these steps; this module holds what it calls so that
tests reach it. Outputs and their schemas are listed in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib import artifacts as a
from cxrlib import atomic, config, paths
from cxrlib.cohort import CohortResult
from cxrlib.images.cache import ImageCache
from cxrlib.images.normalization import NORMALIZE_MEAN, NORMALIZE_STD
from cxrlib.mimic import layout
from cxrlib.mimic.tables import MimicCxr
from cxrlib.reportset import REPORT_SAMPLE_COLUMNS


@dataclass(frozen=True)
class SyntheticSpec:
    """Arguments of the synthetic look-alike used when ``data_root == "synthetic"``."""

    subjects: int
    seed: int = 0
    min_size: int = 512
    max_size: int = 1024
    prevalence: str = "mimic"


def resolve_data_root(data_root: str | os.PathLike[str], synthetic: SyntheticSpec) -> Path:
    """The folder to read: a checked MIMIC-CXR root, or the synthetic look-alike.

    The look-alike is generated on first use into the cache folder and reused afterwards.
    """
    checked = config.check_data_root(data_root, base=Path.cwd())
    if checked != config.SYNTHETIC:
        return Path(checked)
    from cxrlib.mimic.synth import ensure_synthetic

    return Path(
        ensure_synthetic(
            synthetic.subjects,
            synthetic.seed,
            min_size=synthetic.min_size,
            max_size=synthetic.max_size,
            prevalence=synthetic.prevalence,
        )
    )


def write_data_source(
    out_dir: str | os.PathLike[str], root: str | os.PathLike[str], data_root: str
) -> Path:
    """``data_source.json``: whether the run read the synthetic look-alike, and which (the
    later stages and the summary page say what a number can mean from it)."""
    return atomic.write_json(
        Path(out_dir) / a.DATA_SOURCE_FILE,
        {"synthetic": data_root == config.SYNTHETIC, "root": describe_root(root)},
    )


def read_data_source(run_dir: str | os.PathLike[str]) -> dict[str, object]:
    """Stage 01's ``data_source.json`` (see :func:`write_data_source`)."""
    return json.loads(_stage_file(run_dir, a.DATA_SOURCE_FILE).read_text(encoding="utf-8"))


def read_cohort(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Stage 01's ``cohort.csv`` (``dicom_id`` as text)."""
    return pd.read_csv(_stage_file(run_dir, a.COHORT_FILE), dtype={layout.DICOM_ID: str})


def read_report_samples(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Stage 01's ``report_samples.csv``: ids as text, an absent section as ''; the one reader
    every later stage uses."""
    path = _stage_file(run_dir, a.REPORT_SAMPLES_FILE)
    frame = pd.read_csv(path, dtype={layout.DICOM_ID: str}, keep_default_na=False)
    missing = [c for c in REPORT_SAMPLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks columns {missing} (has {list(frame.columns)}); re-run stage "
            f"{a.PREPROCESSING}"
        )
    return frame


def open_cache(run_dir: str | os.PathLike[str]) -> ImageCache:
    """Stage 01's image cache."""
    return ImageCache.open(_stage_file(run_dir, a.CACHE_DIR))


def _stage_file(run_dir: str | os.PathLike[str], name: str) -> Path:
    path = paths.stage_dir(run_dir, a.PREPROCESSING) / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run stage {a.PREPROCESSING} first (python run_all.py --until "
            f"{a.PREPROCESSING}) with the same run_dir"
        )
    return path


def describe_root(data_root: str | os.PathLike[str]) -> str:
    """A short, machine-independent description of a data root (for notebook output)."""
    root = Path(data_root)
    if root.is_relative_to(paths.cache_dir()):
        return f"<cache>/{root.relative_to(paths.cache_dir()).as_posix()}"
    return root.name


def release_overview(mimic: MimicCxr) -> pd.DataFrame:
    """Subjects, studies and images per view position: what the release holds before filtering."""
    meta = mimic.table(layout.METADATA)
    views = meta[layout.VIEW_POSITION].fillna("").replace("", "(missing)")
    table = (
        meta.assign(view=views)
        .groupby("view")
        .agg(
            images=(layout.DICOM_ID, "size"),
            studies=(layout.STUDY_ID, "nunique"),
            subjects=(layout.SUBJECT_ID, "nunique"),
        )
        .sort_values(["images", "view"], ascending=[False, True])
    )
    total = pd.DataFrame(
        {
            "images": [len(meta)],
            "studies": [meta[layout.STUDY_ID].nunique()],
            "subjects": [meta[layout.SUBJECT_ID].nunique()],
        },
        index=["all"],
    )
    return pd.concat([table, total])


def label_prevalence(
    mimic: MimicCxr, labels: tuple[str, ...] = layout.PAPER_FINDINGS
) -> pd.DataFrame:
    """Studies per label value (positive / negative / uncertain / not mentioned), CheXpert table."""
    chexpert = mimic.table(layout.CHEXPERT)
    rows = []
    for label in labels:
        values = chexpert[label]
        rows.append(
            {
                "label": label,
                "positive": int((values == layout.POSITIVE).sum()),
                "negative": int((values == layout.NEGATIVE).sum()),
                "uncertain": int((values == layout.UNCERTAIN).sum()),
                "not mentioned": int(values.isna().sum()),
            }
        )
    return pd.DataFrame(rows).set_index("label")


def counts_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Cases / controls per disease and split, wide (the paper's cohort table) with totals."""
    wide = counts.pivot(index="disease", columns="split", values=["cases", "controls"])
    order = [s for s in layout.SPLITS if s in counts["split"].unique()]
    wide = wide.reindex(columns=pd.MultiIndex.from_product([["cases", "controls"], order]))
    wide.columns = [f"{split} {kind}" for kind, split in wide.columns]
    wide = wide[[f"{split} {kind}" for split in order for kind in ("cases", "controls")]]
    wide["total"] = wide.sum(axis=1)
    wide = wide.reindex(
        [d for d in layout.PAPER_FINDINGS if d in wide.index]
        + sorted(set(wide.index) - set(layout.PAPER_FINDINGS))
    )
    wide.loc["all diseases"] = wide.sum(axis=0)
    return wide.astype(int)


def cache_items(cohort: pd.DataFrame, report_samples: pd.DataFrame) -> pd.DataFrame:
    """``dicom_id,path`` of every image a later stage reads (cohort and report samples)."""
    cols = [layout.DICOM_ID, layout.PATH]
    items = pd.concat([cohort[cols], report_samples[cols]], ignore_index=True)
    return items.drop_duplicates(layout.DICOM_ID).sort_values(layout.DICOM_ID, kind="mergesort")


def pixel_statistics(cache: ImageCache, dicom_ids: list[str] | None = None) -> pd.DataFrame:
    """Mean / std / range of the cached pixels, raw ([0, 1]) and after the mean/std 0.5 scaling."""
    ids = list(cache.dicom_ids if dicom_ids is None else dicom_ids)
    raw = cache.stack(ids).astype(np.float32) / 255.0
    scaled = (raw - NORMALIZE_MEAN) / NORMALIZE_STD
    return pd.DataFrame(
        [
            {
                "pixels": "raw / 255",
                "mean": raw.mean(),
                "std": raw.std(),
                "min": raw.min(),
                "max": raw.max(),
            },
            {
                "pixels": "normalised (x - 0.5) / 0.5",
                "mean": scaled.mean(),
                "std": scaled.std(),
                "min": scaled.min(),
                "max": scaled.max(),
            },
        ]
    ).set_index("pixels")


def example_images(
    cohort: pd.DataFrame, cache: ImageCache, *, per_class: int = 2, seed: int = 0
) -> tuple[list[np.ndarray], list[str]]:
    """A few cases and controls per disease from the training split, for a picture grid."""
    rng = np.random.default_rng(seed)
    images, titles = [], []
    train = cohort[cohort[layout.SPLIT_COLUMN] == "train"]
    for disease in dict.fromkeys(cohort["disease"]):
        for label, name in ((1, "case"), (0, "control")):
            pool = train[(train["disease"] == disease) & (train["label"] == label)]
            take = pool.iloc[rng.permutation(len(pool))[:per_class]]
            for dicom_id in take[layout.DICOM_ID]:
                images.append(cache.get(dicom_id).astype(np.float32) / 255.0)
                titles.append(f"{disease}\n{name}")
    return images, titles


def write_outputs(out_dir: str | os.PathLike[str], result: CohortResult) -> list[Path]:
    """Write the cohort, its counts and the subject split atomically; return the paths."""
    out = Path(out_dir)
    return [
        atomic.write_csv(out / a.COHORT_FILE, result.cohort),
        atomic.write_csv(out / a.COUNTS_FILE, result.counts),
        atomic.write_csv(out / a.SUBJECT_SPLITS_FILE, result.subject_splits),
    ]


def write_report_samples(
    out_dir: str | os.PathLike[str], report_samples: pd.DataFrame
) -> list[Path]:
    """Write the report-generation samples atomically; return the path (in a list)."""
    return [atomic.write_csv(Path(out_dir) / a.REPORT_SAMPLES_FILE, report_samples)]


def list_outputs(out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Files a stage wrote (relative names and sizes), for the notebook's closing cell."""
    out = Path(out_dir)
    rows = [
        {"file": p.relative_to(out).as_posix(), "kB": round(p.stat().st_size / 1024, 1)}
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    return pd.DataFrame(rows)
