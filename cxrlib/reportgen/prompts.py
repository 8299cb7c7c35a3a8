"""Instruction, conversation format and classifier-guided instruction.

The conversation is Unsloth's vision format (also what transformers' chat templates read): a
user turn holding the instruction text and the image, then an assistant turn holding the report.
Training, zero-shot and generation all build their messages here, so the format lives in one
place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..reportset import REPORT_SAMPLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

#: Columns of stage 01's ``report_samples.csv``; the report is built from the last two.
REQUIRED_COLUMNS: tuple[str, ...] = REPORT_SAMPLE_COLUMNS
FINDINGS, IMPRESSION = REPORT_SAMPLE_COLUMNS[-2:]

#: The paper's (and Unsloth's radiography example's) instruction.
INSTRUCTION = "You are an expert radiographer. Describe accurately what you see in this image."

#: Section headers of the target report, as in MIMIC-CXR report text.
FINDINGS_HEADER = "FINDINGS:"
IMPRESSION_HEADER = "IMPRESSION:"

USER, ASSISTANT = "user", "assistant"


def report_text(findings: str | None, impression: str | None) -> str:
    """The target report: findings and impression under their MIMIC headers.

    An empty or missing section is left out, so a findings-only study gives only ``FINDINGS:``.
    The headers keep the text readable by a section-aware labeler.
    """
    parts = []
    for header, body in ((FINDINGS_HEADER, findings), (IMPRESSION_HEADER, impression)):
        text = _clean(body)
        if text:
            parts.append(f"{header} {text}")
    return "\n".join(parts)


def build_conversation(
    image: Any, instruction: str = INSTRUCTION, report: str | None = None
) -> list[dict[str, Any]]:
    """Messages for one sample: user = [instruction, image], assistant = [report] if given.

    ``report=None`` gives the prompt only (for generation). The image object rides inside the
    message, as Unsloth's vision collator expects.
    """
    messages: list[dict[str, Any]] = [
        {
            "role": USER,
            "content": [
                {"type": "text", "text": instruction},
                {"type": "image", "image": image},
            ],
        }
    ]
    if report is not None:
        messages.append({"role": ASSISTANT, "content": [{"type": "text", "text": report}]})
    return messages


def conversation_images(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The image objects of a conversation, in order of appearance."""
    return [
        part["image"]
        for message in messages
        for part in _parts(message)
        if part.get("type") == "image" and "image" in part
    ]


def prompt_messages(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The conversation without its final assistant turn (what the model is asked)."""
    if messages and messages[-1].get("role") == ASSISTANT:
        return list(messages[:-1])
    return list(messages)


def assistant_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the final assistant turn ('' when the conversation is a prompt only)."""
    if not messages or messages[-1].get("role") != ASSISTANT:
        return ""
    return "".join(p.get("text", "") for p in _parts(messages[-1]) if p.get("type") == "text")


def check_report_samples(frame: pd.DataFrame, source: str = "report samples") -> None:
    """Raise one clear error when ``frame`` lacks a column this module needs."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source} lacks columns {missing} (has {list(frame.columns)}): it must come from "
            "stage 01's report_samples.csv; re-run stage 01"
        )


def reports(frame: pd.DataFrame) -> list[str]:
    """The target report of every row (findings + impression, see :func:`report_text`)."""
    check_report_samples(frame)
    return [report_text(f, i) for f, i in zip(frame[FINDINGS], frame[IMPRESSION], strict=True)]


def guided_instruction(
    predicted: Iterable[str], findings: Sequence[str], instruction: str = INSTRUCTION
) -> str:
    """The instruction plus the CNN's call on every finding (classifier-guided prompting).

    ``predicted`` are the findings the CNN calls positive, ``findings`` all it was asked about.
    Each finding is named with "yes" or "no" in the classifier's order, so it keeps its place
    in every hint. On the demo the tiny model's guided reports gained over a list of the
    positive findings only: CE macro-F1 (5 competition labels) 0.34 / 0.38 / 0.35 against
    0.29 / 0.32 / 0.41 for seeds 0 / 1 / 2, of which image-specific (stage 06's control)
    0.23 / 0.23 / 0.23 against 0.16 / 0.21 / 0.26.
    """
    positive = set(predicted)
    calls = "; ".join(f"{f.lower()} {'yes' if f in positive else 'no'}" for f in findings)
    return f"{instruction} An image classifier says: {calls}."


def hint_of(instruction: str, base: str = INSTRUCTION) -> str:
    """What ``instruction`` adds to ``base`` (the classifier's hint of a guided prompt); ''
    for the plain instruction."""
    if not instruction.startswith(base):
        raise ValueError(f"the instruction does not start with the base one: {instruction!r}")
    return instruction[len(base) :].strip()


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content", [])
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _clean(text: str | None) -> str:
    """Collapse whitespace; NaN/None (pandas' empty cell) become ''."""
    if text is None or not isinstance(text, str):
        return ""
    return " ".join(text.split())
