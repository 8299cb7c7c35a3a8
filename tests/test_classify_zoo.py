"""Model zoo: shapes per architecture, weights from files and caches, clear errors offline."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from cxrlib.classify import zoo

# (architecture, feature size before the replaced layer, outputs asked for)
SHAPES = [("vgg16", 4096, 1), ("resnet18", 512, 6), ("resnet50", 2048, 1), ("densenet121", 1024, 6)]


@pytest.mark.parametrize(("name", "feature_dim", "num_outputs"), SHAPES)
def test_output_and_feature_shapes(name, feature_dim, num_outputs):
    torch.manual_seed(0)
    model = zoo.create_model(name, num_outputs=num_outputs, dropout=0.2).eval()
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert model(images).shape == (2, num_outputs)
        assert model.features(images).shape == (2, feature_dim)
    assert model.feature_dim == feature_dim
    assert isinstance(model.head[0], torch.nn.Dropout) and model.head[0].p == 0.2


def test_three_channel_input_is_available():
    model = zoo.create_model("resnet18", in_chans=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "resnet34"}, r"architecture must be one of \['densenet121', 'resnet18'"),
        ({"name": "resnet18", "dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"name": "resnet18", "num_outputs": 0}, "num_outputs must be >= 1"),
        ({"name": "resnet18", "in_chans": 2}, "in_chans must be 1"),
    ],
)
def test_bad_arguments_name_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_model(**kwargs)


def test_imagenet_weights_unavailable_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline
    )
    with pytest.raises(FileNotFoundError) as info:
        zoo.create_model("resnet18", weights="imagenet")
    message = str(info.value)
    expected_file = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected_file) in message
    assert "TORCH_HOME" in message and "weights=<path" in message and "weights='none'" in message


def test_imagenet_weights_from_the_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    cached = zoo.imagenet_cache_file("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    model = zoo.create_model("resnet18", weights="imagenet")
    # grey input: the RGB filters of the first layer are summed
    expected = reference.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.equal(model.backbone.conv1.weight, expected)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    # the same for a 3-channel model: weights copied as they are
    rgb = zoo.create_model("resnet18", weights="imagenet", in_chans=3)
    assert torch.equal(rgb.backbone.conv1.weight, reference.conv1.weight)


def test_weights_from_a_local_torchvision_file(tmp_path):
    torch.manual_seed(2)
    reference = torchvision.models.densenet121()
    path = tmp_path / "densenet.pth"
    torch.save(reference.state_dict(), path)
    model = zoo.create_model("densenet121", weights=path, num_outputs=3)
    assert torch.equal(
        model.backbone.features.denseblock4.denselayer16.conv2.weight,
        reference.features.denseblock4.denselayer16.conv2.weight,
    )
    assert model.head[1].out_features == 3


def test_weights_from_a_checkpoint_of_the_same_class(tmp_path):
    torch.manual_seed(3)
    trained = zoo.create_model("resnet18", num_outputs=2)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    same = zoo.create_model("resnet18", weights=path, num_outputs=2).eval()
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(same(images), trained.eval()(images))
    # another number of outputs: the backbone loads, the head keeps its initialisation
    other = zoo.create_model("resnet18", weights=path, num_outputs=5)
    assert torch.equal(other.backbone.conv1.weight, trained.backbone.conv1.weight)


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        ("imagenett", FileNotFoundError, "weights must be 'none', 'imagenet' or the path"),
        ("missing.safetensors", FileNotFoundError, "not a file"),
    ],
)
def test_bad_weights_values(weights, error, message):
    with pytest.raises(error, match=message):
        zoo.create_model("resnet18", weights=weights)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit architecture 'resnet18'"):
        zoo.create_model("resnet18", weights=path)


def test_a_corrupt_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read weights file .*broken.safetensors"):
        zoo.create_model("resnet18", weights=path)
