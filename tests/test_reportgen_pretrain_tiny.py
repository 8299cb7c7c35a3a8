"""Pre-training of the tiny model: its data never meets the profiles' data, and the script runs
end to end on a small setting and writes a loadable model folder with a true model card."""

from __future__ import annotations

import re
import tempfile

import pandas as pd
import pytest

from cxrlib import artifacts as a
from cxrlib import config
from cxrlib.mimic.synth.cohort import subject_ids
from cxrlib.pipeline.stages import parameter_schemas
from cxrlib.reportgen import backends
from cxrlib.reportgen.generate import generate_reports
from cxrlib.reportgen.model_card import CARD_FILE, card_digests, verify_model_folder
from cxrlib.reportgen.pretrain_data import (
    CAPTION_FINDINGS,
    PretrainingData,
    caption,
    profile_subject_ids,
)
from cxrlib.reportgen.pretrain_tiny import LOG_FILE, Phase, Recipe, main, pretrain, weighted_draws
from cxrlib.reportgen.prompts import INSTRUCTION, build_conversation
from cxrlib.reportgen.tiny_model import TinyModelSpec

SMALL = TinyModelSpec(
    image_size=32,
    patch_size=16,
    vocab_size=400,
    vision_layers=2,
    vision_global_layers=1,
    intermediate_layers=(1,),
    text_layers=2,
    cross_attention_layers=(1,),
    max_position_embeddings=512,
)


def test_pretraining_subjects_never_occur_in_the_profiles_data():
    excluded = profile_subject_ids()
    demo = config.resolve_parameters(config.load_profile("demo"), parameter_schemas())
    demo = demo[a.PREPROCESSING]
    demo_ids = set(subject_ids(demo["synthetic_subjects"], demo["synthetic_seed"]).tolist())
    assert demo_ids <= excluded  # the demo's 1,000 patients are among the excluded ids
    data = PretrainingData()
    ids = set(subject_ids(data.subjects, data.seed, excluded).tolist())
    assert len(ids) == data.subjects and not ids & excluded


def test_caption_calls_every_finding_in_order():
    hits = [f in ("Pleural Effusion", "Edema") for f in CAPTION_FINDINGS]
    assert caption(hits) == (
        "pneumonia no. pleural effusion yes. pneumothorax no. atelectasis no. "
        "cardiomegaly no. consolidation no. edema yes."
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    data = PretrainingData(subjects=24, seed=5, min_size=64, max_size=64, image_size=32,
                           val_ratio=0.2)  # fmt: skip
    recipe = Recipe(
        spec=SMALL,
        phases=(Phase("captions", 3, 3e-3, 1.0), Phase("reports", 3, 2e-3, 0.5)),
        batch_size=4,
        eval_steps=3,
        max_length=256,
    )
    out = pretrain(
        root / "model", data=data, recipe=recipe, work_dir=root / "work", workers=1,
        progress=False,
    )  # fmt: skip
    return out, root


def test_pretraining_writes_a_model_folder_with_a_true_card(pretrained):
    out, _ = pretrained
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", CARD_FILE, LOG_FILE} <= names
    assert verify_model_folder(out) == []
    card = (out / CARD_FILE).read_text()
    assert set(card_digests(card)) == names - {CARD_FILE}
    assert re.search(r"project commit `([0-9a-f]{40}|unknown)", card)
    log = pd.read_csv(out / LOG_FILE)
    assert log["phase"].unique().tolist() == ["captions", "reports"]
    assert log["step"].max() == 6
    assert log[["val_captions_loss", "val_reports_loss"]].notna().any().all()
    for path in out.iterdir():  # nothing of this machine in the shipped files
        if path.suffix in (".json", ".md", ".csv", ".jinja"):
            text = path.read_text()
            assert str(pretrained[1]) not in text and tempfile.gettempdir() not in text, path.name


def test_a_changed_file_breaks_the_card(pretrained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(pretrained[0], copy)
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    (copy / "extra.txt").write_text("x")
    problems = verify_model_folder(copy)
    assert any(p.startswith("config.json: sha256") for p in problems)
    assert "extra.txt: not in the model card" in problems


def test_the_pretrained_folder_loads_and_generates(pretrained):
    from PIL import Image

    loaded = backends.load_model(pretrained[0], backend="hf", device="cpu")
    image = Image.new("RGB", (32, 32), (90, 90, 90))
    texts = generate_reports(
        loaded, [{"messages": build_conversation(image, INSTRUCTION)}], max_new_tokens=8,
        progress=False,
    )  # fmt: skip
    assert len(texts) == 1 and isinstance(texts[0], str)


def test_steps_must_name_every_phase(tmp_path):
    with pytest.raises(ValueError, match="--steps needs 2 numbers"):
        main(["--out", str(tmp_path / "m"), "--steps", "5"])


def test_finding_weight_draws_studies_in_proportion_to_their_findings():
    captions = ["pneumonia no. edema no.", "pneumonia yes. edema no.", "pneumonia yes. edema yes."]
    draws = weighted_draws(captions, 1.0, 60_000, seed=0)
    shares = pd.Series(draws).value_counts(normalize=True).sort_index().to_numpy()
    assert shares == pytest.approx([1 / 6, 2 / 6, 3 / 6], abs=0.01)  # weights 1, 2 and 3
    assert (
        weighted_draws(captions, 1.0, 50, seed=3) == weighted_draws(captions, 1.0, 50, seed=3)
    ).all()
    with pytest.raises(ValueError, match="finding_weight >= 0"):
        Phase("reports", steps=1, lr=1e-3, caption_share=0.5, finding_weight=-1.0)
