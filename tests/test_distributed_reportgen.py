"""Report-model fine-tuning and generation on two processes (torchrun; the Trainer's DDP)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_classify import read_npy

from cxrlib import artifacts as a
from cxrlib.distributed.launch import Launch
from cxrlib.images.cache import build_cache
from cxrlib.reportgen import distributed, stage
from cxrlib.reportgen.backends import LoraSettings
from cxrlib.reportgen.dataset import reports
from cxrlib.reportgen.tiny_model import TinyModelSpec, build_tiny_model
from cxrlib.reportgen.train import TrainSettings

NORMAL, EFFUSION = "No acute process.", "Large right pleural effusion."
SMALL = TinyModelSpec(
    image_size=28, patch_size=14, vocab_size=300, vision_layers=2, vision_global_layers=1,
    intermediate_layers=(1,), text_layers=2, cross_attention_layers=(1,),
    max_position_embeddings=256,
)  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with stage 01's cache (dark = normal, bright = effusion) and 04's model."""
    n_train, n_val = 16, 7
    n = n_train + n_val
    frame = pd.DataFrame(
        {
            "subject_id": range(10000000, 10000000 + n),
            "study_id": range(50000000, 50000000 + n),
            "dicom_id": [f"{i:08x}-00000000-00000000-00000000-00000000" for i in range(n)],
            "path": [f"img/{i}.npy" for i in range(n)],
            "split": ["train"] * n_train + ["validate"] * n_val,
            "findings": "",
            "impression": [EFFUSION if i % 2 else NORMAL for i in range(n)],
        }
    )
    data = tmp_path_factory.mktemp("data")
    (data / "img").mkdir()
    rng = np.random.default_rng(0)
    for path, text in zip(frame["path"], frame["impression"], strict=True):
        level = 0.7 if text == EFFUSION else 0.25
        np.save(data / path, np.clip(rng.normal(level, 0.08, (28, 28)), 0, 1).astype("float32"))
    run_dir = tmp_path_factory.mktemp("run")
    cache = build_cache(
        frame, data, run_dir / "01_preprocessing" / "images", 28, workers=1, progress=False,
        reader=read_npy,
    )  # fmt: skip
    model = build_tiny_model(reports(frame), run_dir / a.LLAMA_SETUP / "model", SMALL, seed=0)
    record = {"model": "tiny", "path": str(model), "backend": "hf", "device": "cpu",
              "load_in_4bit": False}  # fmt: skip
    return run_dir, frame, cache, record


@pytest.mark.slow
def test_lora_on_two_processes_saves_one_adapter_that_reloads(run, monkeypatch):
    run_dir, frame, cache, record = run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers compute as this process below
    out = run_dir / a.LLAMA_TRAINING
    settings = TrainSettings(
        max_epochs=100, max_steps=4, batch_size=8, grad_accum=1, lr=5e-3, warmup_steps=1,
        eval_steps=2, patience=2,
    )  # fmt: skip
    loaded, result = distributed.fine_tune(
        record, LoraSettings(r=8, alpha=16), frame, cache, settings, out, launch=Launch(2),
        progress=False,
    )  # fmt: skip
    # one adapter and one log, written by rank 0; the Trainer's checkpoints are gone
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "training_log.csv"]
    # the Trainer ran DDP on both processes: 4 steps of 8 pairs, 4 from each process
    assert (result.steps, result.trainer, result.processes) == (4, "trainer", 2)
    log = pd.read_csv(out / "training_log.csv")
    assert log["step"].tolist()[0] == 0 and log["val_loss"].notna().sum() == 3  # steps 0, 2, 4
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "../../04_llama_setup/model"  # as in one process
    assert "lora_A" in " ".join(n for n, _ in loaded.model.named_parameters())

    # generation shared out over two processes: every report once, in order, as here
    validate = stage.split(frame, "validate")  # 7 images: batches of 3, 3, 1
    shared = distributed.generate_table(
        record, out / "adapter", validate, cache, launch=Launch(2), batch_size=3,
        max_new_tokens=12, progress=False,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = stage.generate_table(
            loaded, validate, cache, batch_size=3, max_new_tokens=12, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert shared["dicom_id"].tolist() == validate["dicom_id"].tolist()
    pd.testing.assert_frame_equal(shared, here)


def test_unsloth_refuses_more_than_one_process():
    distributed.check_backend("unsloth", Launch(1))  # one process: fine
    distributed.check_backend("hf", Launch(2))
    with pytest.raises(ValueError, match="backend 'unsloth' trains on one GPU .* 2 processes"):
        distributed.check_backend("unsloth", Launch(2))
