"""A tiny cohort and image cache for the CNN tests: each finding is a bright patch of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.images.cache import ImageCache, build_cache

SIZE = 32
DISEASES = ["Edema", "Fracture"]


def read_npy(path: Path) -> np.ndarray:
    """Image reader of the fixture cache (float32 in [0, 1] stored as .npy)."""
    return np.load(path)


def cohort_rows(subjects: int) -> list[dict]:
    """Edema: every subject; Fracture: even subjects only. Cases alternate within each split;
    half the subjects train, a quarter validate, the rest test."""
    splits = ["train"] * (subjects // 2) + ["validate"] * (subjects // 4)
    splits += ["test"] * (subjects - len(splits))
    rows = []
    for k in range(subjects):
        subject, dicom_id = 10_000_000 + k, f"{k:08x}-00000000-00000000-00000000-00000000"
        base = {
            "subject_id": subject,
            "study_id": 50_000_000 + k,
            "dicom_id": dicom_id,
            "path": f"img/{dicom_id}.npy",
            "split": splits[k],
        }
        rows.append({"disease": "Edema", **base, "label": float(k % 2)})
        if k % 2 == 0:
            rows.append({"disease": "Fracture", **base, "label": float((k // 2) % 2)})
    return rows


def build(root: Path, cache_dir: Path, subjects: int = 48) -> tuple[ImageCache, pd.DataFrame]:
    """(cache, cohort) written under ``root``: Edema lights the top-left corner, Fracture the
    bottom-right one."""
    cohort = pd.DataFrame(cohort_rows(subjects))
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    wide = cohort.pivot_table(index="path", columns="disease", values="label")
    for path, labels in wide.iterrows():
        image = rng.uniform(0.2, 0.5, (SIZE, SIZE)).astype(np.float32)
        if labels["Edema"] == 1:
            image[:12, :12] += 0.5
        if labels.get("Fracture") == 1:
            image[-12:, -12:] += 0.5
        np.save(root / path, image)
    items = cohort[["dicom_id", "path"]].drop_duplicates()
    cache = build_cache(items, root, cache_dir, SIZE, workers=1, progress=False, reader=read_npy)
    return cache, cohort
