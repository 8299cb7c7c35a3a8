"""Stage helpers of notebooks 04 and 05: upstream files, the setup record, tables."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cxrlib import artifacts as a
from cxrlib.choices import TINY_PRETRAINED
from cxrlib.reportgen import stage
from cxrlib.reportgen.backends import SHIPPED_MODELS, LoadedModel, LoraSettings


def _samples():
    return pd.DataFrame(
        {
            "subject_id": [10000001, 10000002, 10000003],
            "study_id": [50000001, 50000002, 50000003],
            "dicom_id": ["a", "b", "c"],
            "path": ["x", "y", "z"],
            "split": ["train", "test", "validate"],
            "findings": ["Normal.", "", "Effusion."],
            "impression": ["", "Cardiomegaly.", ""],
        }
    )


def test_report_samples_and_splits(tmp_path):
    with pytest.raises(FileNotFoundError, match="report_samples.csv not found: run stage 01"):
        stage.report_samples(tmp_path)
    folder = tmp_path / a.PREPROCESSING
    folder.mkdir()
    _samples().to_csv(folder / a.REPORT_SAMPLES_FILE, index=False)
    samples = stage.report_samples(tmp_path)
    assert samples["findings"].tolist() == ["Normal.", "", "Effusion."]  # empty stays ''
    assert stage.split(samples, "validate", "test")["dicom_id"].tolist() == ["b", "c"]
    assert stage.split_counts(samples).to_dict() == {"train": 1, "validate": 1, "test": 1}
    with pytest.raises(ValueError, match=r"split names must be among .*got \['val'\]"):
        stage.split(samples, "val")


def test_setup_record_round_trip(tmp_path):
    out = tmp_path / a.LLAMA_SETUP
    model_dir = out / a.MODEL_DIR
    model_dir.mkdir(parents=True)
    loaded = LoadedModel(None, None, "hf", "cpu", str(model_dir))
    lora = LoraSettings(r=8, alpha=16, finetune_vision_layers=False)
    stage.write_setup(
        out, model="tiny", model_path=model_dir, loaded=loaded, lora=lora, load_in_4bit=True
    )
    # the record holds a path relative to the stage folder: a moved run folder still works
    assert '"path": "model"' in (out / a.MODEL_FILE).read_text()
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    tmp_path.rename(moved)
    record, again = stage.read_setup(moved)
    assert record["path"] == str(moved / a.LLAMA_SETUP / "model")
    assert (record["backend"], record["device"], record["load_in_4bit"]) == ("hf", "cpu", True)
    assert again == lora


def test_setup_record_names_a_shipped_model_not_its_folder(tmp_path):
    out = tmp_path / a.LLAMA_SETUP
    out.mkdir()
    shipped = SHIPPED_MODELS[TINY_PRETRAINED]
    loaded = LoadedModel(None, None, "hf", "cpu", str(shipped))
    stage.write_setup(
        out, model=TINY_PRETRAINED, model_path=shipped, loaded=loaded,
        lora=LoraSettings(), load_in_4bit=True,
    )  # fmt: skip
    assert str(shipped) not in (out / a.MODEL_FILE).read_text()  # no path of this machine
    record, _ = stage.read_setup(tmp_path)
    assert record["path"] == TINY_PRETRAINED  # load_model resolves the name


def test_read_setup_without_stage_04(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json not found: run stage 04_llama_setup"):
        stage.read_setup(tmp_path)


def test_parameter_table_counts_parts_and_trainable():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model = torch.nn.Linear(2, 3)  # 9 parameters
            self.language_model = torch.nn.Linear(3, 4)  # 16
            self.lm_head = torch.nn.Linear(4, 5, bias=False)  # 20
            self.vision_model.weight.requires_grad_(False)  # 6 frozen

    table = stage.parameter_table(Toy())
    assert table.loc["vision_model"].tolist() == [9, 3, pytest.approx(33.33)]
    assert table.loc["total", "parameters"] == 45 and table.loc["total", "trainable"] == 39
    assert "multi_modal_projector" not in table.index  # parts without parameters are left out


@pytest.mark.parametrize(
    ("text_layers", "vision_layers", "cross", "intermediate"),
    [(6, 4, (2, 5), (1, 3)), (4, 2, (2,), (1,)), (9, 6, (2, 5, 8), (1, 3, 5))],
)
def test_tiny_spec_layer_roles(text_layers, vision_layers, cross, intermediate):
    spec = stage.tiny_spec(
        image_size=64, patch_size=16, vocab_size=512, text_hidden=64,
        text_layers=text_layers, vision_hidden=32, vision_layers=vision_layers,
    )  # fmt: skip
    assert spec.cross_attention_layers == cross and spec.intermediate_layers == intermediate


def test_tiny_spec_too_few_layers():
    with pytest.raises(ValueError, match="tiny_text_layers >= 3 and tiny_vision_layers >= 2"):
        stage.tiny_spec(
            image_size=64, patch_size=16, vocab_size=512, text_hidden=64,
            text_layers=2, vision_hidden=32, vision_layers=4,
        )  # fmt: skip
