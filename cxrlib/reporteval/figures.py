"""Figures of the report evaluation: headline scores, per-finding CE, lengths, example gallery.

Each function draws results computed elsewhere and returns a matplotlib ``Figure`` (save it
with ``cxrlib.atomic.save_figure``). Titles state the CE convention, as the tables do.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

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
    high = max(0.0, float(table["ci_high"].max())) + 0.12  # room for the legend
    fig = plots.metric_bars(
        table,
        value="difference",
        group="score",
        hue="model",
        low="ci_low",
        high="ci_high",
        ylim=(low, high),
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


def report_gallery(
    images: Sequence[np.ndarray],
    references: Sequence[str],
    generated: Mapping[str, Sequence[str]],
    captions: Sequence[str],
    *,
    width: int = 44,
    max_lines: int = 18,
) -> Figure:
    """One row per example: the image, then reference and generated reports side by side.

    ``images``: grey (S, S) uint8 or float in [0, 1]; ``generated``: generator -> texts;
    ``captions``: lines under each image (e.g. its id and the CNN's probabilities).
    """
    columns = ["reference", *generated]
    n = len(images)
    fig, axes = plt.subplots(
        max(n, 1),
        1 + len(columns),
        figsize=(2.6 + 3.3 * len(columns), 3.2 * max(n, 1)),
        squeeze=False,
        gridspec_kw={"width_ratios": [0.8] + [1.0] * len(columns)},
    )
    for i in range(n):
        image = np.asarray(images[i])
        axes[i, 0].imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        axes[i, 0].set_xlabel(captions[i], fontsize=6, loc="left")
        texts = [references[i], *(generated[g][i] for g in generated)]
        for j, (name, text) in enumerate(zip(columns, texts, strict=True), start=1):
            lines = textwrap.wrap(labeling_text(text) or "(empty)", width=width)
            if len(lines) > max_lines:
                lines = [*lines[: max_lines - 1], "[...]"]
            axes[i, j].text(
                0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace"
            )
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no examples", ha="center", va="center")
    fig.tight_layout()
    return fig
