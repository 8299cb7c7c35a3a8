"""The offline tiny Llama-3.2-Vision: builds, loads like the real one, trains, generates, reloads.

The toy task: dark images are normal, bright images have an effusion. A model that reads the
image writes the right report for each validation image; one that ignores it cannot.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cxrlib.artifacts import GENERATED_COLUMNS
from cxrlib.reportgen import backends, stage, train
from cxrlib.reportgen.dataset import ConversationDataset, reports
from cxrlib.reportgen.generate import (
    compare_models,
    generate_reports,
    generation_frame,
    load_finetuned,
)
from cxrlib.reportgen.tiny_model import (
    BOS,
    EOT,
    IMAGE,
    PAD,
    SPEC_FILE,
    TinyModelSpec,
    build_tiny_model,
    pretraining_pairs,
)

NORMAL, EFFUSION = "No acute process.", "Large right pleural effusion."
SMALL = TinyModelSpec(
    image_size=28,
    patch_size=14,
    vocab_size=300,
    vision_layers=2,
    vision_global_layers=1,
    intermediate_layers=(1,),
    text_layers=2,
    cross_attention_layers=(1,),
    max_position_embeddings=256,
)


class _Images:
    """Dark (normal) and bright (effusion) noise images, keyed by dicom_id."""

    def __init__(self, frame):
        rng = np.random.default_rng(0)
        self.arrays = {
            d: np.clip(rng.normal(180 if bright else 60, 20, (28, 28)), 0, 255).astype(np.uint8)
            for d, bright in zip(frame["dicom_id"], frame["impression"] == EFFUSION, strict=True)
        }

    def get(self, dicom_id):
        return self.arrays[dicom_id]


def _frame(n_train=16, n_val=8):
    n = n_train + n_val
    return pd.DataFrame(
        {
            "subject_id": range(10000000, 10000000 + n),
            "study_id": range(50000000, 50000000 + n),
            "dicom_id": [f"{i:08x}-00000000-00000000-00000000-00000000" for i in range(n)],
            "path": "x.dcm",
            "split": ["train"] * n_train + ["validate"] * n_val,
            "findings": "",
            "impression": [EFFUSION if i % 2 else NORMAL for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "model"
    return build_tiny_model(reports(_frame()), folder, SMALL, seed=0)


def test_tiny_model_folder_loads_like_the_real_one(tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", SPEC_FILE} <= names
    assert "chat_template.jinja" in names or "chat_template.json" in names
    processor = AutoProcessor.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir, local_files_only=True)
    assert type(model).__name__ == "MllamaForConditionalGeneration"
    assert type(processor).__name__ == "MllamaProcessor"
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids(IMAGE)
    # as in the real model: <|image|> is the last id, one past the LM head
    assert image_id == len(tok) - 1 == model.config.text_config.vocab_size
    assert model.config.image_token_index == image_id
    assert model.lm_head.out_features == image_id
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOT, PAD)
    assert json.loads((tiny_dir / SPEC_FILE).read_text())["spec"]["image_size"] == 28
    # the cross-attention gates are open, so the image reaches the text model
    gates = [p for n, p in model.named_parameters() if n.endswith("cross_attn_attn_gate")]
    assert gates and all(g.item() != 0.0 for g in gates)
    loaded = backends.load_model(tiny_dir, backend="auto", device="cpu")
    assert (loaded.backend, loaded.device, loaded.quantized_4bit) == ("hf", "cpu", False)


def test_build_is_deterministic_for_a_seed(tiny_dir, tmp_path):
    again = build_tiny_model(reports(_frame()), tmp_path / "again", SMALL, seed=0)
    assert (again / "model.safetensors").read_bytes() == (
        tiny_dir / "model.safetensors"
    ).read_bytes()
    assert (again / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 30}, "multiple of patch_size=16, got 30: use e.g. 32"),
        ({"text_layers": 2, "cross_attention_layers": (3,)}, r"cross_attention_layers \[3\]"),
        ({"vision_layers": 2, "intermediate_layers": (2,)}, r"intermediate_layers \[2\]"),
    ],
)
def test_tiny_spec_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TinyModelSpec(**kwargs)


@pytest.mark.parametrize(
    ("n_train", "kwargs", "expected"),
    [
        (2562, {}, 162),  # the paper's data and settings: 2 epochs x ceil(2562 / (8 x 4))
        (100, {"batch_size": 4, "grad_accum": 1, "max_epochs": 3, "max_steps": 1000}, 75),
        (100, {"batch_size": 4, "grad_accum": 1, "max_epochs": 3, "max_steps": 50}, 50),
        (3, {"batch_size": 8, "grad_accum": 4, "max_epochs": 0.1}, 1),
    ],
)
def test_planned_steps(n_train, kwargs, expected):
    assert train.planned_steps(n_train, train.TrainSettings(**kwargs)) == expected


def test_training_log_merges_train_and_eval_entries():
    history = [
        {"eval_loss": 3.0, "step": 0, "epoch": 0},
        {"loss": 2.5, "learning_rate": 1e-4, "step": 1, "epoch": 0.5},
        {"loss": 2.0, "learning_rate": 5e-5, "step": 2, "epoch": 1.0},
        {"eval_loss": 2.2, "step": 2, "epoch": 1.0},
        {"train_runtime": 1.0, "step": 2, "epoch": 1.0},
    ]
    log = train.training_log(history)
    assert list(log.columns) == list(train.LOG_COLUMNS)
    assert log["step"].tolist() == [0, 1, 2]
    assert log["train_loss"].tolist()[1:] == [2.5, 2.0]
    assert log["val_loss"].dropna().tolist() == [3.0, 2.2]


@pytest.mark.slow
def test_tiny_model_trains_generates_and_reloads(tiny_dir, tmp_path):
    frame = _frame()
    images = _Images(frame)
    train_part, val_part = frame[frame.split == "train"], frame[frame.split == "validate"]
    loaded = backends.load_model(tiny_dir, device="cpu")
    loaded = backends.add_lora(loaded, backends.LoraSettings(r=8, alpha=16))
    counts = backends.parameter_counts(loaded.model)
    assert 0 < counts["trainable"] < counts["total"] / 3
    settings = train.TrainSettings(
        max_epochs=100, max_steps=30, batch_size=8, grad_accum=1, lr=5e-3, warmup_steps=2,
        eval_steps=10, patience=10,
    )  # fmt: skip
    result = train.train_adapter(
        loaded,
        ConversationDataset(train_part, images),
        ConversationDataset(val_part, images),
        settings,
        work_dir=tmp_path / "work",
        progress=False,
    )
    assert not (tmp_path / "work").exists()  # checkpoints are cleaned up
    val = result.log["val_loss"].dropna()
    assert result.log["step"].iloc[0] == 0 and val.index[0] == 0  # evaluated before training
    assert val.iloc[0] > 1.0 and result.best_val_loss < 0.25 * val.iloc[0]  # the loss falls
    assert result.steps == 30 and result.trainer == "trainer"

    prompts = ConversationDataset(val_part, images, with_report=False)
    generated = generate_reports(loaded, prompts, batch_size=4, max_new_tokens=40, progress=False)
    # reads the image, and stops at <|eot_id|> (well before 40 new tokens)
    assert generated == reports(val_part)

    adapter = train.save_adapter(loaded, tmp_path / "adapter", {"steps": result.steps})
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer.json").is_file()
    reloaded = load_finetuned(tiny_dir, adapter, device="cpu")
    batch = [ConversationDataset(val_part, images)[i] for i in range(4)]
    assert compare_models(loaded, reloaded, batch) == 0.0  # identical logits
    again = generate_reports(reloaded, prompts, batch_size=4, max_new_tokens=40, progress=False)
    assert again == generated

    # the control shows each image another one's: the reports follow the image shown
    control = stage.control_table(
        loaded, val_part, images, seed=1, batch_size=4, max_new_tokens=40, progress=False
    )
    report_of = dict(zip(val_part["dicom_id"], generated, strict=True))
    assert (control["input_from"] != control["dicom_id"]).all()
    assert control["generated"].tolist() == [report_of[d] for d in control["input_from"]]
    assert control["reference"].tolist() == reports(val_part)
    table = generation_frame(val_part, reports(val_part), again)
    assert list(table.columns) == list(GENERATED_COLUMNS)


def test_load_finetuned_without_adapter(tiny_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no LoRA adapter in .*run stage 05_llama_training"):
        load_finetuned(tiny_dir, tmp_path)


def test_text_pretraining_changes_only_the_text_weights(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    from cxrlib.reportgen.pretrain import PretrainSettings

    texts = reports(_frame())
    folder = build_tiny_model(
        texts, tmp_path / "pre", SMALL, seed=0, progress=False,
        pretrain=PretrainSettings(steps=12, batch_size=8, lr=3e-3, warmup_steps=1),
    )  # fmt: skip
    before = load_file(tiny_dir / "model.safetensors")
    after = load_file(folder / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any("embed_tokens" in n for n in changed) and any("lm_head" in n for n in changed)
    # without pixels the vision tower, projector and cross-attention layers are never reached
    assert not any(
        "vision_model" in n or "multi_modal_projector" in n or "cross_attn" in n for n in changed
    )
    # SMALL's cross-attention layer (index 1) is skipped whole
    assert not any("language_model" in n and ".layers.1." in n for n in changed)
    record = json.loads((folder / SPEC_FILE).read_text())
    assert record["pretrain"]["steps"] == 12 and record["pretrain_final_loss"] < 5.0


def test_pretraining_pairs_use_guided_instructions_naming_each_reports_findings():
    texts = [NORMAL, EFFUSION]
    assert pretraining_pairs(texts, "Describe.") == [("Describe.", NORMAL), ("Describe.", EFFUSION)]
    assert pretraining_pairs(texts, "Describe.", ["Pleural Effusion", "Cardiomegaly"]) == [
        ("Describe. An image classifier says: pleural effusion no; cardiomegaly no.", NORMAL),
        ("Describe. An image classifier says: pleural effusion yes; cardiomegaly no.", EFFUSION),
    ]


def _report_log_likelihood(model, processor, instruction, report):
    """Summed log-probability of ``report`` after a text-only prompt with ``instruction``."""
    from cxrlib.reportgen.prompts import build_conversation

    messages = build_conversation(None, instruction, report)
    full = processor.apply_chat_template(messages, tokenize=False)
    prompt = processor.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    tok = processor.tokenizer
    ids = torch.tensor([tok(full, add_special_tokens=False)["input_ids"]])
    start = len(tok(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    targets = ids[0, 1:]
    return float(logp[start - 1 :].gather(1, targets[start - 1 :, None]).sum())


def test_guided_pretraining_teaches_the_model_to_follow_the_hint(tmp_path):
    from transformers import AutoProcessor, MllamaForConditionalGeneration

    from cxrlib.reportgen.pretrain import PretrainSettings
    from cxrlib.reportgen.prompts import INSTRUCTION, guided_instruction, report_text

    folder = build_tiny_model(
        reports(_frame()), tmp_path / "guided", SMALL, seed=0, progress=False,
        pretrain=PretrainSettings(steps=60, batch_size=8, lr=3e-3, warmup_steps=4),
        guidance_findings=["Pleural Effusion"],
    )  # fmt: skip
    model = MllamaForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    assert json.loads((folder / SPEC_FILE).read_text())["pretrain_guidance_findings"] == [
        "Pleural Effusion"
    ]
    normal, effusion = report_text("", NORMAL), report_text("", EFFUSION)
    for hint, expected, other in (([], normal, effusion), (["Pleural Effusion"], effusion, normal)):
        instruction = guided_instruction(hint, ["Pleural Effusion"], INSTRUCTION)
        right = _report_log_likelihood(model, processor, instruction, expected)
        wrong = _report_log_likelihood(model, processor, instruction, other)
        assert right > wrong + 3.0, (hint, right, wrong)  # e^3: 20x more likely


def test_adapter_names_a_base_model_in_the_run_folder_relatively(tiny_dir, tmp_path):
    """adapter_config.json once held the absolute run-folder path: a moved run folder lied."""
    import json
    import shutil

    run_dir = tmp_path / "run"
    base = run_dir / "04_llama_setup" / "model"
    shutil.copytree(tiny_dir, base)
    loaded = backends.add_lora(
        backends.load_model(base, device="cpu"), backends.LoraSettings(r=4, alpha=8)
    )
    adapter = run_dir / "05_llama_training" / "adapter"
    train.save_adapter(loaded, adapter, {"steps": 0}, run_dir=run_dir)
    config = json.loads((adapter / train.ADAPTER_CONFIG_FILE).read_text())
    assert config[train.BASE_MODEL_KEY] == "../../04_llama_setup/model"
    for path in adapter.iterdir():
        if path.suffix in (".json", ".jinja", ".txt", ".md"):
            assert str(tmp_path) not in path.read_text(), path.name

    moved = tmp_path / "elsewhere" / "run"
    shutil.move(run_dir, moved)
    reloaded = load_finetuned(
        moved / "04_llama_setup" / "model", moved / "05_llama_training" / "adapter", device="cpu"
    )
    recorded = moved / "05_llama_training" / "adapter" / config[train.BASE_MODEL_KEY]
    assert recorded.resolve() == (moved / "04_llama_setup" / "model").resolve()
    batch = [ConversationDataset(_frame(), _Images(_frame()))[i] for i in range(2)]
    assert compare_models(loaded, reloaded, batch) == 0.0
