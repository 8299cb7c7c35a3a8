"""Grad-CAM maps: shape, range, each architecture's layer; example picking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cxrlib.classify import gradcam, zoo


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "vgg16"])
def test_maps_have_the_input_size_and_lie_in_0_1(name):
    torch.manual_seed(0)
    model = zoo.create_model(name, num_outputs=2)
    images = torch.randn(3, 1, 64, 64)  # 64 px: a 2 x 2 (VGG 4 x 4) map in the last block
    maps = gradcam.gradcam_maps(model, images, output_index=1)
    assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_maps_are_scaled_to_a_maximum_of_one():
    """With a positive head on post-ReLU features the class map is positive somewhere, and each
    image's map is scaled so that its hottest pixel is 1."""
    torch.manual_seed(0)
    model = zoo.create_model("resnet18")
    with torch.no_grad():
        model.head[1].weight.fill_(1.0)
    maps = gradcam.gradcam_maps(model, torch.randn(2, 1, 96, 96))
    assert maps.reshape(2, -1).max(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_bad_output_index_and_shape():
    model = zoo.create_model("resnet18")
    with pytest.raises(ValueError, match=r"output_index must be in \[0, 0\], got 1"):
        gradcam.gradcam_maps(model, torch.randn(1, 1, 32, 32), output_index=1)
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, S, S\)"):
        gradcam.gradcam_maps(model, torch.randn(1, 32, 32))


def test_overlay_is_rgb_uint8():
    image = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    cam = np.zeros((16, 16), np.float32)
    cam[4:8, 4:8] = 1.0
    out = gradcam.overlay(image, cam)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    # the hot square is redder than a cold pixel of the same brightness row
    assert out[5, 5, 0] > out[5, 12, 0]


def test_pick_examples_takes_the_most_confident_true_and_false_positives():
    frame = pd.DataFrame(
        {
            "dicom_id": ["a", "b", "c", "d", "e", "f"],
            "label": [1, 1, 0, 0, 1, 0],
            "prob": [0.9, 0.6, 0.8, 0.3, 0.4, 0.8],
        }
    )
    assert gradcam.pick_examples(frame, 0.5, "TP", n=5)["dicom_id"].tolist() == ["a", "b"]
    assert gradcam.pick_examples(frame, 0.5, "FP", n=1)["dicom_id"].tolist() == ["c"]
    with pytest.raises(ValueError, match=r"kind must be one of \['TP', 'FP'\]"):
        gradcam.pick_examples(frame, 0.5, "FN")
