"""Instruction, conversation format, classifier guidance and the conversation dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlib.reportgen import guidance, prompts
from cxrlib.reportgen.dataset import ConversationDataset, reports
from cxrlib.reportgen.tiny_model import build_processor, train_tokenizer


@pytest.mark.parametrize(
    ("findings", "impression", "expected"),
    [
        (
            "Heart size is normal.",
            "No acute process.",
            "FINDINGS: Heart size is normal.\nIMPRESSION: No acute process.",
        ),
        ("Lungs  are\n clear. ", "", "FINDINGS: Lungs are clear."),  # whitespace collapsed
        ("", "Small left effusion.", "IMPRESSION: Small left effusion."),
        (float("nan"), "Cardiomegaly.", "IMPRESSION: Cardiomegaly."),  # pandas' empty cell
        (None, None, ""),
    ],
)
def test_report_text(findings, impression, expected):
    assert prompts.report_text(findings, impression) == expected


def test_paper_instruction():
    assert prompts.INSTRUCTION == (
        "You are an expert radiographer. Describe accurately what you see in this image."
    )


def test_conversation_format_matches_unsloth():
    image = object()
    messages = prompts.build_conversation(image, "Describe.", "Normal.")
    assert messages == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Describe."}, {"type": "image", "image": image}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Normal."}]},
    ]
    assert prompts.conversation_images(messages) == [image]
    assert prompts.assistant_text(messages) == "Normal."
    assert prompts.prompt_messages(messages) == messages[:1]
    # a prompt-only conversation (generation) has no assistant turn
    prompt_only = prompts.build_conversation(image)
    assert len(prompt_only) == 1 and prompts.assistant_text(prompt_only) == ""
    assert prompts.prompt_messages(prompt_only) == prompt_only


def test_chat_template_renders_llama3_format():
    tokenizer = train_tokenizer(["Heart size is normal.", "No effusion."] * 5, vocab_size=300)
    processor = build_processor(tokenizer, 56)
    messages = prompts.build_conversation(None, "Describe.", "Normal.")
    full = processor.apply_chat_template(messages, tokenize=False)
    prompt = processor.apply_chat_template(
        prompts.prompt_messages(messages), tokenize=False, add_generation_prompt=True
    )
    # the same string Llama-3.2-Vision-Instruct's template gives for an image conversation
    assert full == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDescribe.<|image|><|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nNormal.<|eot_id|>"
    )
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDescribe.<|image|><|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_guided_instruction_calls_every_finding_in_order():
    findings = ["Pneumonia", "Pleural Effusion", "Cardiomegaly"]
    text = prompts.guided_instruction({"Cardiomegaly", "Pleural Effusion"}, findings, "Describe.")
    assert text == (
        "Describe. An image classifier says: pneumonia no; pleural effusion yes; cardiomegaly yes."
    )
    none = prompts.guided_instruction([], findings, "Describe.")
    assert none == (
        "Describe. An image classifier says: pneumonia no; pleural effusion no; cardiomegaly no."
    )


def _write_stage03(folder, probs_rows, thresholds):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(probs_rows).to_csv(folder / guidance.PROBS_FILE, index=False)
    pd.DataFrame(
        {"disease": list(thresholds), "auc": 0.9, "threshold": list(thresholds.values())}
    ).to_csv(folder / guidance.METRICS_FILE, index=False)


def test_load_guidance_applies_thresholds_from_metrics(tmp_path):
    _write_stage03(
        tmp_path / "03",
        [
            # prob equal to the threshold counts as predicted
            {"dicom_id": "a", "Pleural Effusion": 0.30, "Cardiomegaly": 0.10},
            {"dicom_id": "b", "Pleural Effusion": 0.29, "Cardiomegaly": 0.90},
            {"dicom_id": "c", "Pleural Effusion": 0.00, "Cardiomegaly": 0.00},
        ],
        {"Pleural Effusion": 0.30, "Cardiomegaly": 0.50},
    )
    predicted, findings = guidance.load_guidance(tmp_path / "03")
    assert findings == ["Pleural Effusion", "Cardiomegaly"]
    assert predicted == {"a": ["Pleural Effusion"], "b": ["Cardiomegaly"], "c": []}
    texts = guidance.guided_instructions(["a", "c"], predicted, findings, "Describe.")
    assert texts["a"] == (
        "Describe. An image classifier says: pleural effusion yes; cardiomegaly no."
    )
    with pytest.raises(ValueError, match="no CNN probabilities .*first: zz.*re-run stage 03"):
        guidance.guided_instructions(["zz"], predicted, findings)


def test_load_guidance_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="report_image_probs.csv.*guided = False"):
        guidance.load_guidance(tmp_path)
    _write_stage03(tmp_path, [{"dicom_id": "a", "Cardiomegaly": 0.2}], {"Edema": 0.5})
    with pytest.raises(ValueError, match=r"missing \['Edema'\]"):
        guidance.load_guidance(tmp_path)


class _Images:
    def __init__(self, ids):
        self.arrays = {d: np.full((8, 8), i * 20, np.uint8) for i, d in enumerate(ids)}

    def get(self, dicom_id):
        return self.arrays[dicom_id]


def _samples():
    return pd.DataFrame(
        {
            "subject_id": [10000001, 10000002],
            "study_id": [50000001, 50000002],
            "dicom_id": ["d1", "d2"],
            "path": ["x", "y"],
            "split": ["train", "test"],
            "findings": ["Normal heart.", ""],
            "impression": ["No effusion.", "Cardiomegaly."],
        }
    )


def test_conversation_dataset_items():
    frame = _samples()
    data = ConversationDataset(frame, _Images(["d1", "d2"]), instructions={"d1": "A", "d2": "B"})
    assert len(data) == 2
    item = data[1]["messages"]
    assert item[0]["content"][0] == {"type": "text", "text": "B"}
    image = item[0]["content"][1]["image"]
    assert image.mode == "RGB" and image.size == (8, 8)
    assert np.asarray(image)[0, 0].tolist() == [20, 20, 20]
    assert prompts.assistant_text(item) == "IMPRESSION: Cardiomegaly."
    assert reports(frame) == [
        "FINDINGS: Normal heart.\nIMPRESSION: No effusion.",
        "IMPRESSION: Cardiomegaly.",
    ]
    prompt_only = ConversationDataset(frame, _Images(["d1", "d2"]), with_report=False)
    assert len(prompt_only[0]["messages"]) == 1


def test_conversation_dataset_rejects_wrong_frame():
    with pytest.raises(ValueError, match=r"lacks columns \['impression'\].*report_samples.csv"):
        ConversationDataset(_samples().drop(columns="impression"), _Images([]))


def test_stated_findings_keeps_positive_mentions_only():
    texts = [
        "FINDINGS: Moderate cardiomegaly. No pleural effusion.",
        "IMPRESSION: Possible small left pleural effusion. Heart size is normal.",
        "IMPRESSION: Large right pleural effusion and cardiomegaly.",
    ]
    found = guidance.stated_findings(texts, ["Pleural Effusion", "Cardiomegaly"])
    # uncertain ("possible") and negated mentions are not stated findings; order follows the list
    assert found == [["Cardiomegaly"], [], ["Pleural Effusion", "Cardiomegaly"]]
    with pytest.raises(ValueError, match=r"\['Heart Failure'\] are not CheXpert labels"):
        guidance.stated_findings(texts, ["Heart Failure"])


def test_hint_of_gives_what_the_guided_prompt_added():
    guided = prompts.guided_instruction({"Pneumonia"}, ["Pneumonia", "Edema"], "Describe.")
    assert prompts.hint_of(guided, "Describe.") == (
        "An image classifier says: pneumonia yes; edema no."
    )
    assert prompts.hint_of("Describe.", "Describe.") == ""
    with pytest.raises(ValueError, match="base one"):
        prompts.hint_of("Something else.", "Describe.")
