"""The shipped pre-trained tiny model: intact, offline, small, and it reads the image.

Two phantoms identical but for one finding (same anatomy, same random draws) must get greedy
reports that the project's labeler reads differently for that finding: a model that ignores
its image writes the same report for both.
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest

from cxrlib.images.decode import resize_to_square
from cxrlib.labeler import label_reports
from cxrlib.mimic.layout import POSITIVE
from cxrlib.mimic.synth import phantom
from cxrlib.mimic.synth.labels import Lesion
from cxrlib.paths import PROJECT_ROOT
from cxrlib.reportgen import backends
from cxrlib.reportgen.generate import generate_reports
from cxrlib.reportgen.model_card import CARD_FILE, card_digests, verify_model_folder
from cxrlib.reportgen.prompts import INSTRUCTION, build_conversation
from cxrlib.reportgen.tiny_model import SPEC_FILE

SHIPPED = backends.SHIPPED_MODELS[backends.TINY_PRETRAINED]
MAX_BYTES = 25_000_000  # the ceiling for a committed checkpoint


def test_shipped_files_match_the_model_card():
    assert verify_model_folder(SHIPPED) == []
    card = (SHIPPED / CARD_FILE).read_text(encoding="utf-8")
    names = set(card_digests(card))
    assert {"config.json", "model.safetensors", "tokenizer.json", SPEC_FILE} <= names


def test_shipped_model_is_small_and_names_no_path_of_a_machine():
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_BYTES
    for path in files:
        if path.suffix in (".json", ".md", ".csv", ".jinja", ".txt"):
            text = path.read_text(encoding="utf-8")
            for folder in _machine_folders():
                assert folder not in text, f"{path.name} mentions {folder!r}"


def _machine_folders() -> set[str]:
    """Folders of the machine the model was made on, as found on this one: the project, the
    folder holding it (work folders beside it), the home and the temporary folder."""
    return {str(PROJECT_ROOT), str(PROJECT_ROOT.parent), str(Path.home()), tempfile.gettempdir()}


@pytest.fixture(scope="module")
def loaded():
    return backends.load_model(backends.TINY_PRETRAINED, backend="hf", device="cpu")


def test_loads_offline_like_any_local_model_folder(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted while loading the shipped model")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = backends.load_model(backends.TINY_PRETRAINED, backend="hf", device="cpu")
    spec = json.loads((SHIPPED / SPEC_FILE).read_text())["spec"]
    assert model.backend == "hf" and model.source == str(SHIPPED)
    assert model.model.config.vision_config.image_size == spec["image_size"]


def _phantom(found: dict[str, Lesion], size: int) -> np.ndarray:
    """A PA film as the demo's cache holds it; the same anatomy and draws with or without
    ``found`` (a finding may change the anatomy itself, so it is passed there too)."""
    anatomy = phantom.sample_anatomy(np.random.default_rng(5), "M", found, "pa_lateral")
    image = phantom.render("PA", anatomy, found, 640, 540, np.random.default_rng(9))
    return resize_to_square(image, size)


@pytest.mark.parametrize(
    ("finding", "lesion"),
    [
        ("Pneumothorax", Lesion(0.9, "right", "upper")),
        ("Consolidation", Lesion(0.9, "right", "lower")),
    ],
)
def test_greedy_reports_differ_in_the_finding_the_images_differ_in(loaded, finding, lesion):
    from PIL import Image

    size = loaded.model.config.vision_config.image_size
    images = [_phantom({}, size), _phantom({finding: lesion}, size)]
    conversations = [
        {"messages": build_conversation(Image.fromarray(a).convert("RGB"), INSTRUCTION)}
        for a in images
    ]
    normal, abnormal = generate_reports(loaded, conversations, progress=False)
    labels = label_reports([normal, abnormal])[finding].tolist()
    assert labels[0] != POSITIVE, normal
    assert labels[1] == POSITIVE, abnormal
