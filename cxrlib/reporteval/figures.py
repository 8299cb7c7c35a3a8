"""Figures of the report evaluation: headline scores, per-finding CE, lengths, example gallery.

Each function draws results computed elsewhere and returns a matplotlib ``Figure`` (save it
with ``cxrlib.atomic.save_figure``). Titles state the CE convention, as the tables do.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cxrlib import plots
from cxrlib.labeler import labeling_text


def headline_scores(
    nlg_table: pd.DataFrame, ce_table: pd.DataFrame, *, uncertain_as: str = "negative"
) -> Figure:
    """BLEU-4, ROUGE-L and CE F1 (micro/macro, 14 and 5 labels) per generator."""
    ce = ce_table[ce_table["uncertain_as"] == uncertain_as]
    rows = [
        {"metric": metric, "generator": g, "value": v}
        for metric in ("bleu4", "rouge_l")
        for g, v in zip(nlg_table["generator"], nlg_table[metric], strict=True)
    ]
    rows += [
        {"metric": f"CE F1 {r.average} {r.labels}", "generator": r.generator, "value": r.f1}
        for r in ce.itertuples()
    ]
    return plots.metric_bars(
        pd.DataFrame(rows),
        value="value",
        group="metric",
        hue="generator",
        ylim=(0.0, 1.0),
        title=f"Report scores (CE: uncertain counted as {uncertain_as})",
    )


def per_finding_f1(per_finding: pd.DataFrame, *, uncertain_as: str = "negative") -> Figure:
    """F1 per CheXpert label, one bar per generator."""
    table = per_finding[per_finding["uncertain_as"] == uncertain_as]
    return plots.metric_bars(
        table,
        value="f1",
        group="label",
        hue="generator",
        ylim=(0.0, 1.0),
        title=f"Clinical efficacy per finding (uncertain counted as {uncertain_as})",
    )


def image_dependence(dependence: pd.DataFrame, *, uncertain_as: str = "negative") -> Figure:
    """CE F1 with the model's own input minus with another image's, with 95 % intervals."""
    table = dependence[dependence["uncertain_as"] == uncertain_as].assign(
        score=lambda t: "F1 " + t["average"] + " " + t["labels"],
        model=lambda t: t["generator"] + " vs " + t["control"],
    )
    low = min(0.0, float(table["ci_low"].min())) - 0.05
    high = max(0.0, float(table["ci_high"].max())) + 0.05
    fig = plots.metric_bars(
        table,
        value="difference",
        group="score",
        hue="model",
        low="ci_low",
        high="ci_high",
        ylim=(low, high),
        ylabel="F1 minus control F1",
        title=f"What the image adds: F1 minus control F1 (uncertain counted as {uncertain_as})",
    )
    fig.axes[0].axhline(0.0, color="black", linewidth=0.8)
    return fig


def length_histogram(reports: pd.DataFrame, *, bins: int = 20) -> Figure:
    """Words per report: references and each generator (findings + impression text)."""
    texts = {"reference": reports.drop_duplicates("dicom_id")["reference"]}
    for generator, rows in reports.groupby("generator", sort=False):
        texts[generator] = rows["generated"]
    lengths = {k: v.map(lambda t: len(labeling_text(t).split())) for k, v in texts.items()}
    top = max(int(s.max()) for s in lengths.values()) + 1
    edges = np.linspace(0, max(top, 2), bins + 1)
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    for name, values in lengths.items():
        ax.hist(values, bins=edges, histtype="step", linewidth=1.6, label=str(name))
    ax.set(xlabel="words per report", ylabel="reports", title="Report length")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class GalleryExample:
    """One image of the gallery: what each generator wrote for it, and what it was shown."""

    dicom_id: str
    image: np.ndarray  # grey (S, S), uint8 or float in [0, 1]
    caption: str  # a line under the image, e.g. the CNN's probabilities
    reference: str
    reports: Mapping[str, str]  # generator -> its report
    hints: Mapping[str, str] = field(default_factory=dict)  # generator -> hint in its prompt


def report_gallery(
    examples: Sequence[GalleryExample], *, chars_per_line: int = 100, max_lines: int = 6
) -> Figure:
    """A section per example, read top to bottom at 100 % zoom: the image on the left; on the
    right the reference report and each generator's, one labelled paragraph each, with the
    hint a guided generator was given (wrapped under its name)."""
    blocks = [_gallery_blocks(e, chars_per_line, max_lines) for e in examples]
    # inches per text line at 8.5 pt with 1.25 line spacing (8.5 x 1.25 x 1.2 / 72 = 0.177),
    # rounded up; an image is as tall as 14 lines
    line_h, image_lines, gap = 0.19, 14, 0.4
    heights = [
        max(image_lines, sum(len(head) + len(lines) + gap for head, lines, _ in b)) * line_h + 0.6
        for b in blocks
    ] or [1.0]
    fig = plt.figure(figsize=(11.0, sum(heights)))
    grid = fig.add_gridspec(
        len(heights), 2, height_ratios=heights, width_ratios=[1, 4.2], hspace=0.12,
        left=0.02, right=0.98, top=1 - 0.2 / sum(heights), bottom=0.2 / sum(heights),
    )  # fmt: skip
    for k, (example, block) in enumerate(zip(examples, blocks, strict=True)):
        image_ax, text_ax = fig.add_subplot(grid[k, 0]), fig.add_subplot(grid[k, 1])
        image = np.asarray(example.image)
        image_ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        image_ax.set_title(f"Example {k + 1}: {example.dicom_id[:17]}", fontsize=10,
                           loc="left", fontweight="bold")  # fmt: skip
        image_ax.set_xlabel(example.caption, fontsize=7, loc="left")
        image_ax.set_xticks([])
        image_ax.set_yticks([])
        text_ax.axis("off")
        # one line in axes units, from the axes' real height (the grid's spacing included)
        step = line_h / (text_ax.get_position().height * fig.get_figheight())
        y = 1.0
        for head, lines, colour in block:
            text_ax.text(0.0, y, "\n".join(head), va="top", fontsize=8.5, fontweight="bold",
                         color=colour, linespacing=1.25, transform=text_ax.transAxes)  # fmt: skip
            y -= step * len(head)
            text_ax.text(0.0, y, "\n".join(lines), va="top", fontsize=8.5,
                         linespacing=1.25, transform=text_ax.transAxes)  # fmt: skip
            y -= step * (len(lines) + gap)
    if not examples:
        fig.text(0.5, 0.5, "no examples", ha="center", va="center")
    return fig


def _gallery_blocks(
    example: GalleryExample, chars_per_line: int, max_lines: int
) -> list[tuple[list[str], list[str], str]]:
    """(heading lines, wrapped report lines, colour) of the reference, then of each
    generator's report; a guided generator's heading carries its hint."""

    def wrap(text: str) -> list[str]:
        lines = textwrap.wrap(labeling_text(text) or "(empty)", width=chars_per_line)
        return lines if len(lines) <= max_lines else [*lines[: max_lines - 1], "[...]"]

    blocks = [(["reference report"], wrap(example.reference), "black")]
    for k, (generator, text) in enumerate(example.reports.items()):
        label = generator
        hint = example.hints.get(generator)
        if hint:
            label += f"  (its prompt said: {hint})"
        blocks.append((textwrap.wrap(label, width=chars_per_line), wrap(text), f"C{k}"))
    return blocks
