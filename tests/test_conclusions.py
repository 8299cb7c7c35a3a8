"""What a run may conclude depends on its data and its report model, read from its folder."""

from __future__ import annotations

import json

from cxrlib import artifacts as a
from cxrlib.conclusions import as_markdown, run_facts, run_facts_of_folder, what_you_may_conclude


def _run_folder(tmp_path, *, synthetic: bool, model: str | None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / a.PREPROCESSING).mkdir()
    source = {"root": "somewhere", "synthetic": synthetic}
    (tmp_path / a.PREPROCESSING / a.DATA_SOURCE_FILE).write_text(json.dumps(source))
    if model is not None:
        (tmp_path / a.LLAMA_SETUP).mkdir()
        (tmp_path / a.LLAMA_SETUP / a.MODEL_FILE).write_text(json.dumps({"model": model}))
    return tmp_path


def test_the_folder_and_the_parameters_give_the_same_facts(tmp_path):
    folder = _run_folder(tmp_path, synthetic=True, model="tiny-pretrained")
    from_folder = run_facts_of_folder(folder)
    from_parameters = run_facts(
        {a.PREPROCESSING: {"data_root": "synthetic"}, a.LLAMA_SETUP: {"model": "tiny-pretrained"}}
    )
    assert from_folder == from_parameters
    assert from_folder.synthetic and from_folder.tiny_model and from_folder.pretrained_on_lookalike


def test_the_shipped_model_s_head_start_is_named_only_where_it_applies(tmp_path):
    pretrained = what_you_may_conclude(
        run_facts_of_folder(_run_folder(tmp_path / "a", synthetic=True, model="tiny-pretrained"))
    )
    random_tiny = what_you_may_conclude(
        run_facts_of_folder(_run_folder(tmp_path / "b", synthetic=True, model="tiny"))
    )
    real = what_you_may_conclude(
        run_facts_of_folder(
            _run_folder(
                tmp_path / "c", synthetic=False, model="unsloth/Llama-3.2-11B-Vision-Instruct"
            )
        )
    )
    head_start = "how much fine-tuning adds for the real model"
    assert any(head_start in s for s in pretrained["You may not conclude"])
    assert not any(head_start in s for s in random_tiny["You may not conclude"])
    assert not any(
        "synthetic look-alike" in s or "tiny stand-in" in s for s in real["You may not conclude"]
    )
    text = as_markdown(pretrained)
    assert text.startswith("**You may conclude**") and "- how well the paper's methods" in text
