"""The tiny model's pre-training set: image-report pairs of a synthetic look-alike of its own.

The release is generated with its own seed and with subject ids that no synthetic release of
the project's profiles uses (demo, tiny, the notebooks' defaults), so the pre-trained model has
never seen a patient of the data it is later fine-tuned and tested on. It then goes through the
project's own preprocessing: report samples (one PA image per study with its findings and
impression, :mod:`cxrlib.reportset`), a patient-level split, and the image cache at the demo's
size. Each sample also gets a *findings caption*, the pre-training curriculum's first task:
"pneumonia no. pleural effusion yes. ..." for :data:`CAPTION_FINDINGS`, read from its report by
the project's labeler (positive = yes; negative, uncertain and unmentioned = no, the CE
convention).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts import PREPROCESSING
from ..images.cache import META_FILE
from ..mimic import layout

#: The findings a caption states, in order: the paper's six and Edema (so that every one of
#: the five CE competition labels is among them).
CAPTION_FINDINGS: tuple[str, ...] = (*layout.PAPER_FINDINGS, "Edema")
#: The instruction of the caption task (the report task uses the paper's instruction).
CAPTION_INSTRUCTION = "List the findings in this chest X-ray."
_PREPROCESSING_NOTEBOOK = f"{PREPROCESSING}.ipynb"


@dataclass(frozen=True)
class PretrainingData:
    """The synthetic release the tiny model is pre-trained on, and how it is preprocessed."""

    subjects: int = 6000  # patients; about 0.9 PA report samples each
    seed: int = 20261130  # the look-alike's own seed (the profiles use 0)
    min_size: int = 256  # px; rendered at 256 px anyway, so larger files only cost disk
    max_size: int = 384
    prevalence: str = "enriched"  # as the demo: findings in most studies
    views: tuple[str, ...] = ("PA",)  # only the images stage 01's report samples use are made
    image_size: int = 64  # px, the cached size (the demo's stage 01 image_size)
    val_ratio: float = 0.05  # share of patients held out for the validation losses

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (recorded in the model card)."""
        return asdict(self)


@dataclass
class PretrainingSet:
    """Samples (``REPORT_SAMPLE_COLUMNS`` + ``report``, ``caption``) and their images."""

    samples: pd.DataFrame
    images: np.ndarray  # uint8 (N, S, S), row i = samples row i
    excluded_subjects: int  # subject ids kept out of the release

    def split(self, name: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Samples and images of one split."""
        keep = (self.samples[layout.SPLIT_COLUMN] == name).to_numpy()
        return self.samples[keep].reset_index(drop=True), self.images[keep]


def profile_subject_ids(
    parameters_dir: str | os.PathLike[str] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
) -> set[int]:
    """Subject ids of every synthetic release the project's profiles (and the preprocessing
    notebook's defaults) generate: what the pre-training release must never use."""
    from .. import config
    from ..mimic.synth.cohort import subject_ids
    from ..paths import NOTEBOOKS_DIR, PARAMETERS_DIR
    from ..pipeline.stages import parameter_schemas

    parameters = Path(parameters_dir or PARAMETERS_DIR)
    notebooks = Path(notebooks_dir or NOTEBOOKS_DIR)
    if not (notebooks / _PREPROCESSING_NOTEBOOK).is_file():
        raise FileNotFoundError(
            f"{notebooks / _PREPROCESSING_NOTEBOOK} not found: the pre-training set is made "
            "disjoint from the data of the profiles, which needs the project's notebooks and "
            "parameters folders"
        )
    schemas = parameter_schemas(notebooks)
    defaults = {name: p.default for name, p in schemas[PREPROCESSING].items()}
    releases = {(defaults["synthetic_subjects"], defaults["synthetic_seed"])}
    for name in config.available_profiles(parameters):
        profile = config.load_profile(name, parameters)
        # the paper profile's data is not on every machine: read its settings, unchecked
        resolved = config.resolve_parameters(profile, schemas, check_data_roots=False)
        section = resolved[PREPROCESSING]
        if section["data_root"] == config.SYNTHETIC:
            releases.add((int(section["synthetic_subjects"]), int(section["synthetic_seed"])))
    return {int(i) for n, s in sorted(releases) for i in subject_ids(n, s)}


def build_pretraining_set(
    work_dir: str | os.PathLike[str],
    data: PretrainingData,
    *,
    exclude_subject_ids: Iterable[int] = (),
    workers: int = 2,
    progress: bool = True,
) -> PretrainingSet:
    """Generate the release into ``work_dir`` (reused when complete), build its report samples,
    split and image cache, then drop the DICOM files (the cache holds the pixels)."""
    from ..cohort import random_subject_splits
    from ..images.cache import build_cache
    from ..mimic.synth import generate
    from ..reportset import build_report_samples
    from .dataset import reports

    work = Path(work_dir)
    root = work / "release"
    excluded = sorted(set(exclude_subject_ids))
    cache_dir = work / "images"
    samples_path = work / "report_samples.csv"
    if not (samples_path.is_file() and (cache_dir / META_FILE).is_file()):
        generate(
            root, data.subjects, data.seed, min_size=data.min_size, max_size=data.max_size,
            prevalence=data.prevalence, exclude_subject_ids=excluded, views=data.views,
            progress=progress, workers=workers,
        )  # fmt: skip
        meta = pd.read_csv(root / layout.METADATA.filename)
        subjects = np.unique(meta[layout.SUBJECT_ID].to_numpy())
        splits = random_subject_splits(subjects, ratios=(data.val_ratio, 0.0), seed=data.seed)
        samples = build_report_samples(root, splits, progress=progress)
        build_cache(
            samples[[layout.DICOM_ID, layout.PATH]], root, cache_dir, data.image_size,
            workers=workers, progress=progress,
        )  # fmt: skip
        samples.to_csv(samples_path, index=False)
        shutil.rmtree(root / "files", ignore_errors=True)  # gigabytes the cache no longer needs
    samples = pd.read_csv(samples_path, dtype={layout.DICOM_ID: str}, keep_default_na=False)
    from ..images.cache import ImageCache

    images = ImageCache.open(cache_dir).stack(list(samples[layout.DICOM_ID]))
    samples["report"] = reports(samples)
    samples["caption"] = captions(samples["report"])
    return PretrainingSet(samples, images, len(excluded))


def captions(report_texts: Sequence[str], findings: Sequence[str] = CAPTION_FINDINGS) -> list[str]:
    """The findings caption of each report: ``"<finding> yes|no."`` for each of ``findings``."""
    from ..labeler import label_reports

    positive = label_reports(list(report_texts))[list(findings)].to_numpy() == layout.POSITIVE
    return [caption(row, findings) for row in positive]


def caption(positive: Sequence[bool], findings: Sequence[str] = CAPTION_FINDINGS) -> str:
    """``"pneumonia no. pleural effusion yes. ..."`` (one call per finding, in order)."""
    return " ".join(
        f"{f.lower()} {'yes' if hit else 'no'}." for f, hit in zip(findings, positive, strict=True)
    )
