"""The labeler's work grows linearly with the length of a sentence (no quadratic blow-up).

Work is counted, not timed: the number of Python lines executed while labelling (a
``sys.settrace`` counter), which does not depend on the machine or its load.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from cxrlib.labeler import label_text

# One long sentence without a full stop: findings, negations, hedges and lists in a row.
FRAGMENT = (
    "no pleural effusion, small left apical pneumothorax, possible atelectasis or "
    "consolidation, the heart size is normal and "
)


def _lines_executed(text: str) -> int:
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        label_text(text)
    finally:
        sys.settrace(previous)
    return count


def test_work_grows_linearly_with_sentence_length() -> None:
    # 2,400 vs 9,700 characters: linear work is ~4x, quadratic ~16x (it was 15x).
    short = _lines_executed(FRAGMENT * 20)
    long = _lines_executed(FRAGMENT * 80)
    assert long / short < 6, f"4x longer sentence: {long / short:.1f}x the work"


def test_a_one_megabyte_sentence_is_labelled() -> None:
    # A guard, not a timing: before the fix this did not finish in 300 s; now it takes seconds.
    code = textwrap.dedent(
        f"""
        from cxrlib.labeler import label_report
        fragment = {FRAGMENT!r}
        text = (fragment * (1_000_000 // len(fragment) + 1))[:1_000_000]
        labels = label_report(text)
        print(labels["Pneumothorax"], labels["Pleural Effusion"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=True
    )
    assert done.stdout.split() == ["1.0", "0.0"]
