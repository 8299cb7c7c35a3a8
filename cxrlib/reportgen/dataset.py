"""Stage 01's report samples as conversations (image + instruction -> report).

One item = ``{"messages": conversation}`` (see :mod:`.prompts`), the format both our collator
and Unsloth's vision collator read. Images come from the preprocessing cache as uint8 arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..mimic.layout import DICOM_ID
from .collator import to_rgb
from .prompts import INSTRUCTION, build_conversation, check_report_samples, reports

#: Augmentation of training images (the paper names data augmentation, not which): small
#: rotations, shifts and zooms, and exposure (brightness, contrast) changes. Never a flip: a
#: mirrored film shows a left effusion on the right and the heart on the wrong side, while the
#: report still says "left" (mirroring the side words would fix the first, not the second).
AUGMENT_DEGREES, AUGMENT_TRANSLATE, AUGMENT_SCALE = 5.0, 0.03, (0.95, 1.05)
AUGMENT_BRIGHTNESS, AUGMENT_CONTRAST = 0.1, 0.1


class ImageSource(Protocol):
    """Anything with ``get(dicom_id) -> uint8 (S, S)``, e.g. ``ImageCache``."""

    def get(self, dicom_id: str) -> np.ndarray: ...


class ConversationDataset(torch.utils.data.Dataset):
    """Rows of ``frame`` as conversations; the report turn only when ``with_report``.

    ``instructions`` is one text for all rows or a ``dicom_id -> text`` mapping (guided prompts).
    ``augment`` applies :func:`report_augmentation` (seeded by torch's global generator) to
    training images; the report stays as it is.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        images: ImageSource,
        *,
        instructions: str | Mapping[str, str] = INSTRUCTION,
        with_report: bool = True,
        augment: bool = False,
    ) -> None:
        check_report_samples(frame)
        self.frame = frame.reset_index(drop=True)
        self.images = images
        self.instructions = instructions
        self.with_report = with_report
        self.reports = reports(self.frame)
        self._augment = report_augmentation() if augment else None

    def __len__(self) -> int:
        return len(self.frame)

    def image(self, index: int) -> Image.Image:
        """The RGB image of row ``index`` (augmented when asked)."""
        image = to_rgb(self.images.get(str(self.frame.at[index, DICOM_ID])))
        return self._augment(image) if self._augment is not None else image

    def instruction(self, index: int) -> str:
        """The instruction of row ``index``."""
        if isinstance(self.instructions, str):
            return self.instructions
        return self.instructions[str(self.frame.at[index, DICOM_ID])]

    def __getitem__(self, index: int) -> dict[str, Any]:
        report = self.reports[index] if self.with_report else None
        return {"messages": build_conversation(self.image(index), self.instruction(index), report)}


def report_augmentation():
    """The training-image augmentation (a torchvision transform of a PIL image, drawing from
    torch's global generator): it keeps image and report consistent, so the report is left
    as it is (see :data:`AUGMENT_DEGREES` for why there is no flip)."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomAffine(
                degrees=AUGMENT_DEGREES,
                translate=(AUGMENT_TRANSLATE, AUGMENT_TRANSLATE),
                scale=AUGMENT_SCALE,
            ),
            v2.ColorJitter(brightness=AUGMENT_BRIGHTNESS, contrast=AUGMENT_CONTRAST),
        ]
    )
