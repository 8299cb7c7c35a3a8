"""The report model's training augmentation keeps image and report consistent.

Two phantoms, identical but for a left pleural effusion (patient left = image right on a PA
film), go through the training dataset with augmentation under the same random draws: the
effusion must stay on the image's right, where the unchanged report ("left pleural effusion")
puts it. A horizontal flip (what an image-only augmentation might add) fails the same check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

from cxrlib.images.decode import resize_to_square
from cxrlib.mimic.synth import phantom
from cxrlib.mimic.synth.labels import Lesion
from cxrlib.reportgen.dataset import ConversationDataset
from cxrlib.reportgen.prompts import assistant_text, conversation_images

SIZE = 64
NORMAL = "No pleural effusion."
LEFT_EFFUSION = "Large left pleural effusion."


def _phantom(found: dict[str, Lesion]) -> np.ndarray:
    """A 64 px PA film; the same anatomy and random draws with or without ``found``."""
    anatomy = phantom.sample_anatomy(np.random.default_rng(5), "M", {}, "pa_lateral")
    image = phantom.render("PA", anatomy, found, 256, 224, np.random.default_rng(9))
    return resize_to_square(image, SIZE)  # as the preprocessing cache does


class _Images:
    def __init__(self) -> None:
        self.arrays = {
            "normal": _phantom({}),
            "effusion": _phantom({"Pleural Effusion": Lesion(0.9, "left", "lower")}),
        }

    def get(self, dicom_id: str) -> np.ndarray:
        return self.arrays[dicom_id]


@pytest.fixture(scope="module")
def dataset() -> ConversationDataset:
    frame = pd.DataFrame(
        {
            "subject_id": [10000001, 10000002],
            "study_id": [50000001, 50000002],
            "dicom_id": ["normal", "effusion"],
            "path": ["", ""],
            "split": ["train", "train"],
            "findings": ["", ""],
            "impression": [NORMAL, LEFT_EFFUSION],
        }
    )
    return ConversationDataset(frame, _Images(), augment=True)


def _pair(dataset: ConversationDataset, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(normal, effusion) images as float gray arrays under the same augmentation draws, and
    the reports the conversations hold."""
    images, texts = [], []
    for index in range(2):
        torch.manual_seed(seed)
        messages = dataset[index]["messages"]
        (image,) = conversation_images(messages)
        images.append(np.asarray(image.convert("L"), dtype=np.float32))
        texts.append(assistant_text(messages))
    return images[0], images[1], texts


def _right_share(normal: np.ndarray, effusion: np.ndarray) -> float:
    """Share of the effusion's added brightness in the image's right half."""
    added = np.clip(effusion - normal, 0.0, None)
    return float(added[:, SIZE // 2 :].sum() / added.sum())


def test_unaugmented_effusion_lies_on_the_image_right():
    images = _Images()
    assert _right_share(images.get("normal"), images.get("effusion")) > 0.9


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_keeps_the_side_of_the_finding_and_the_report(dataset, seed):
    normal, effusion, texts = _pair(dataset, seed)
    unaugmented = np.asarray(_Images().get("normal"), dtype=np.float32)
    assert np.abs(normal - unaugmented).mean() > 0.5  # the augmentation did change the image
    assert _right_share(normal, effusion) > 0.85  # still where "left pleural effusion" says
    assert texts == [f"IMPRESSION: {NORMAL}", f"IMPRESSION: {LEFT_EFFUSION}"]


def test_a_horizontal_flip_would_fail_the_check(dataset):
    normal, effusion, _ = _pair(dataset, 0)
    mirrored = [np.asarray(ImageOps.mirror(Image.fromarray(a)), dtype=np.float32) for a in
                (normal.astype(np.uint8), effusion.astype(np.uint8))]  # fmt: skip
    assert _right_share(*mirrored) < 0.15
