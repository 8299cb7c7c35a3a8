"""Controls: does a report depend on *its* image, or would any image give the same?

The reports of an adapter are generated again with every image's input taken from another
image of the same split: the unguided adapter is shown another image, the guided adapter gets
another image's classifier hint (its own image kept). The reference stays the true one, so
the control's clinical-efficacy score is what the model earns without image-specific input;
stage 06 reports the difference with a confidence interval. A model that ignores the image
scores the same in both.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..mimic.layout import DICOM_ID, SPLIT_COLUMN
from .dataset import ImageSource

#: Column of a control's table naming the image whose input was used instead.
INPUT_FROM = "input_from"


def shuffled_partners(frame: pd.DataFrame, seed: int = 0) -> dict[str, str]:
    """``dicom_id -> another dicom_id of the same split`` (a seeded derangement per split).

    Every image gets a different image's input and every image lends its input once: the
    rows of each split are put in a random cycle and each takes its successor's. A split with
    one image cannot be shuffled and is an error.
    """
    rng = np.random.default_rng(seed)
    partners: dict[str, str] = {}
    for split_name, rows in frame.groupby(SPLIT_COLUMN, sort=True):
        ids = rows[DICOM_ID].astype(str).to_numpy()
        if len(ids) < 2:
            raise ValueError(
                f"split {split_name!r} has {len(ids)} image(s): a control needs at least 2 "
                "to give each image another one's input"
            )
        cycle = ids[rng.permutation(len(ids))]
        partners.update(zip(cycle, np.roll(cycle, -1), strict=True))
    return partners


class PartnerImages:
    """An image source that answers each ``dicom_id`` with its partner's image."""

    def __init__(self, images: ImageSource, partners: Mapping[str, str]) -> None:
        self.images = images
        self.partners = partners

    def get(self, dicom_id: str) -> np.ndarray:
        return self.images.get(self.partners[str(dicom_id)])


def partner_instructions(
    instructions: Mapping[str, str], partners: Mapping[str, str]
) -> dict[str, str]:
    """Each image's instruction replaced by its partner's (the guided control)."""
    return {d: instructions[p] for d, p in partners.items()}


def with_sources(table: pd.DataFrame, partners: Mapping[str, str]) -> pd.DataFrame:
    """The generated table plus :data:`INPUT_FROM` (whose input each report was made from)."""
    return table.assign(**{INPUT_FROM: table[DICOM_ID].astype(str).map(partners)})
