"""Grad-CAM (pytorch-grad-cam): where does the network look when it calls a finding?

Maps are computed on the last convolutional block (``Classifier.cam_layer``) for one output
logit and returned at input resolution, scaled to [0, 1] per image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cxrlib.classify.zoo import Classifier
from cxrlib.mimic.layout import DICOM_ID

#: Kinds of examples shown: true positives and false positives at the chosen threshold.
EXAMPLE_KINDS: tuple[str, ...] = ("TP", "FP")


def gradcam_maps(model: Classifier, images: torch.Tensor, *, output_index: int = 0) -> np.ndarray:
    """Grad-CAM maps (N, S, S) float32 in [0, 1] for logit ``output_index`` of each image.

    ``images``: normalised float tensor (N, C, S, S) as the model sees it.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, S, S), got {tuple(images.shape)}")
    if not 0 <= output_index < model.num_outputs:
        raise ValueError(
            f"output_index must be in [0, {model.num_outputs - 1}], got {output_index}"
        )
    device = next(model.parameters()).device
    was_training = model.training
    with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
        maps = cam(
            input_tensor=images.to(device),
            targets=[ClassifierOutputTarget(output_index)] * len(images),
        )
    model.train(was_training)
    return np.clip(np.nan_to_num(maps.astype(np.float32)), 0.0, 1.0)


def overlay(image: np.ndarray, cam_map: np.ndarray, *, image_weight: float = 0.6) -> np.ndarray:
    """RGB uint8 (S, S, 3): the grey image (S, S, values in [0, 1]) under a jet heat map."""
    grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    return show_cam_on_image(
        rgb, cam_map.astype(np.float32), use_rgb=True, image_weight=image_weight
    )


def pick_examples(
    predictions: pd.DataFrame, threshold: float, kind: str, *, n: int = 4
) -> pd.DataFrame:
    """The ``n`` most confident true (``TP``) or false (``FP``) positives of one disease.

    ``predictions``: rows with ``label`` and ``prob``; ties broken by ``dicom_id`` so the pick
    is deterministic.
    """
    if kind not in EXAMPLE_KINDS:
        raise ValueError(f"kind must be one of {list(EXAMPLE_KINDS)}, got {kind!r}")
    positive = predictions["prob"] >= threshold
    wanted = 1.0 if kind == "TP" else 0.0
    chosen = predictions[positive & (predictions["label"] == wanted)]
    return chosen.sort_values(["prob", DICOM_ID], ascending=[False, True]).head(n)
