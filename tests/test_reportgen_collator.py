"""The training collator: labels only on the report (and its end-of-turn), nowhere else."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.reportgen.collator import IGNORE_INDEX, ReportCollator, to_rgb
from cxrlib.reportgen.prompts import build_conversation
from cxrlib.reportgen.tiny_model import BOS, EOT, IMAGE, build_processor, train_tokenizer

REPORTS = ["FINDINGS: Heart size is normal.", "IMPRESSION: Moderate right pleural effusion."]


@pytest.fixture(scope="module")
def processor():
    tokenizer = train_tokenizer(REPORTS * 10, vocab_size=320)
    return build_processor(tokenizer, 28)


def _examples():
    rng = np.random.default_rng(0)
    return [
        {"messages": build_conversation(rng.integers(0, 255, (20, 20), np.uint8), "Describe.", r)}
        for r in REPORTS
    ]


def test_labels_cover_exactly_the_report_tokens(processor):
    tok = processor.tokenizer
    batch = ReportCollator(processor)(_examples())
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert set(batch) == {
        "input_ids",
        "attention_mask",
        "labels",
        "pixel_values",
        "aspect_ratio_ids",
        "aspect_ratio_mask",
        "cross_attention_mask",
    }
    assert ids.shape == labels.shape == mask.shape
    assert batch["cross_attention_mask"].shape[:2] == ids.shape
    image_id = tok.convert_tokens_to_ids(IMAGE)
    for row, report in enumerate(REPORTS):
        kept = labels[row][labels[row] != IGNORE_INDEX].tolist()
        # the supervised tokens are the report followed by <|eot_id|>, and nothing else
        assert kept == tok(report, add_special_tokens=False)["input_ids"] + [
            tok.convert_tokens_to_ids(EOT)
        ]
        assert (labels[row][mask[row] == 0] == IGNORE_INDEX).all()  # padding
        assert (labels[row][ids[row] == image_id] == IGNORE_INDEX).all()  # image token
        assert (ids[row] == image_id).sum() == 1
        # exactly one BOS, at the start (no second one from the processor)
        assert ids[row].tolist().count(tok.convert_tokens_to_ids(BOS)) == 1
        assert ids[row, 0] == tok.convert_tokens_to_ids(BOS)
    # the shorter sample is right-padded
    assert mask[0, -1] == 0 and mask[1, -1] == 1
    assert int(labels.max()) < image_id  # nothing outside the LM head is ever a label


def test_max_length_truncates_the_report_not_the_prompt(processor):
    full = ReportCollator(processor)(_examples())
    prompt_len = int((full["labels"][1] == IGNORE_INDEX).sum())
    short = ReportCollator(processor, max_length=prompt_len + 3)(_examples())
    assert short["input_ids"].shape[1] == prompt_len + 3
    assert int((short["labels"][1] != IGNORE_INDEX).sum()) == 3
    with pytest.raises(ValueError, match="leaves no room for the report.*raise max_length"):
        ReportCollator(processor, max_length=5)(_examples())


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((4, 4), np.uint8), None),
        (np.zeros((4, 4, 3), np.uint8), None),
        (np.zeros((4, 4), np.float32), "must be uint8"),
    ],
)
def test_to_rgb(image, error):
    if error:
        with pytest.raises(ValueError, match=error):
            to_rgb(image)
    else:
        assert to_rgb(image).mode == "RGB"
