"""The report-evaluation figures render on small data with the sizes and labels a reader needs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cxrlib.reporteval import figures  # noqa: E402

DPI = 110  # what cxrlib.atomic.save_figure uses


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _ce(generators):
    rows = []
    for g in generators:
        for labels in ("chexpert14", "competition5"):
            for average in ("micro", "macro"):
                for convention in ("negative", "positive"):
                    rows.append({"generator": g, "labels": labels, "average": average,
                                 "uncertain_as": convention, "precision": 0.5, "recall": 0.5,
                                 "f1": 0.4})  # fmt: skip
    return pd.DataFrame(rows)


def test_headline_scores_on_a_fixed_axis():
    nlg = pd.DataFrame({"generator": ["a", "b"], "bleu4": [0.1, 0.2], "rouge_l": [0.3, 0.25]})
    fig = figures.headline_scores(nlg, _ce(["a", "b"]))
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    assert "uncertain counted as negative" in ax.get_title()
    assert ax.get_legend() is not None


def test_image_dependence_has_a_zero_line_and_a_legend_outside_the_axes():
    table = pd.DataFrame(
        {"generator": ["g"] * 2, "control": ["shuffled"] * 2, "labels": ["competition5"] * 2,
         "average": ["macro", "micro"], "uncertain_as": ["negative"] * 2, "images": [40, 40],
         "f1": [0.4, 0.5], "f1_control": [0.1, 0.2], "difference": [0.3, 0.3],
         "ci_low": [0.2, 0.1], "ci_high": [0.4, 0.5]}
    )  # fmt: skip
    fig = figures.image_dependence(table)
    ax = fig.axes[0]
    assert any(line.get_ydata()[0] == 0.0 for line in ax.get_lines())
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the plot: covers no bar or tick


def test_gallery_sections_are_readable_and_show_the_hint():
    image = np.full((32, 32), 128, dtype=np.uint8)
    examples = [
        figures.GalleryExample(
            dicom_id=f"{k:08x}-0000",
            image=image,
            caption="CNN: Pneumonia 0.91",
            reference="FINDINGS: Right lower lobe consolidation. IMPRESSION: Pneumonia.",
            reports={"llama_finetuned": "No acute process.", "llama_guided": "Pneumonia."},
            hints={"llama_guided": "pneumonia yes"},
        )  # fmt: skip
        for k in range(2)
    ]
    fig = figures.report_gallery(examples)
    width_px = fig.get_figwidth() * DPI
    assert width_px <= 1300  # readable at 100 % zoom, no horizontal scrolling
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles.count("Example 1: 00000000-0000") == 1 and "Example 2: 00000001-0000" in titles
    assert "reference report" in texts
    assert "llama_guided  (its prompt said: pneumonia yes)" in texts
    assert min(t.get_fontsize() for ax in fig.axes for t in ax.texts) >= 8


def test_gallery_paragraphs_never_overlap_and_stay_on_the_page():
    long = "There is a moderate right pleural effusion with adjacent atelectasis. " * 8
    hint = "An image classifier says: " + "; ".join(f"finding {k} yes" for k in range(12)) + "."
    examples = [
        figures.GalleryExample(
            dicom_id=f"{k:08x}-0000",
            image=np.zeros((32, 32), dtype=np.uint8),
            caption="CNN",
            reference=long,
            reports={"a": long, "b": "Short.", "guided": long},
            hints={"guided": hint},
        )  # fmt: skip
        for k in range(3)
    ]
    fig = figures.report_gallery(examples)
    fig.canvas.draw()
    page = fig.bbox
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in ax.texts]
        for box in boxes:
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, box
        for upper, lower in zip(boxes, boxes[1:], strict=False):
            assert lower.y1 <= upper.y0 + 1, (upper, lower)  # each paragraph below the last


def test_length_histogram_is_labelled():
    reports = pd.DataFrame(
        {"generator": ["a", "a"], "dicom_id": ["x", "y"], "reference": ["One two.", "One."],
         "generated": ["One.", "One two three."]}
    )  # fmt: skip
    ax = figures.length_histogram(reports).axes[0]
    assert ax.get_xlabel() == "words per report" and ax.get_ylabel() == "reports"
