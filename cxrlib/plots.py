"""Figure helpers shared by the notebooks: they draw results computed elsewhere.

Every function returns a matplotlib ``Figure`` (save it with ``cxrlib.atomic.save_figure``)
and uses pyplot only to create it (the caller closes or displays it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

#: AUC of a classifier that guesses: the floor every AUC axis shows.
CHANCE_AUC = 0.5


def _grid(n: int, *, ncols: int = 3, size: float = 3.2) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def learning_curves(histories: Mapping[str, pd.DataFrame], *, ncols: int = 3) -> Figure:
    """Training/validation loss and validation AUC per epoch, one panel per model."""
    fig, axes = _grid(len(histories), ncols=ncols)
    handles: list = []
    for ax, (name, history) in zip(axes, histories.items(), strict=False):
        lines = ax.plot(history["epoch"], history["train_loss"], label="train loss")
        lines += ax.plot(history["epoch"], history["val_loss"], label="val loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (binary cross-entropy)")
        ax.set_title(name, fontsize=10)
        twin = ax.twinx()
        lines += twin.plot(
            history["epoch"], history["val_auc"], color="tab:green", ls="--", label="val AUC"
        )
        twin.set_ylim(0.0, 1.0)
        twin.set_ylabel("validation AUC")
        twin.axhline(CHANCE_AUC, color="tab:green", lw=0.6, ls=":")
        best = history[history["is_best"].astype(bool)]
        if not best.empty:
            twin.axvline(int(best["epoch"].iloc[-1]), color="grey", lw=0.8, ls=":")
        handles = handles or lines
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def roc_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    aucs: Mapping[str, tuple[float, float, float]] | None = None,
    *,
    title: str = "ROC curves (test split)",
) -> Figure:
    """All findings' ROC curves in one panel (the paper's CNN.png).

    ``curves``: finding -> (labels, probs); ``aucs``: finding -> (auc, ci_low, ci_high) for
    the legend.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    for name, (labels, probs) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, probs)
        label = name
        if aucs and name in aucs:
            auc, low, high = aucs[name]
            label = f"{name}: {auc:.3f} [{low:.3f}, {high:.3f}]"
        ax.plot(fpr, tpr, lw=1.5, label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8, title="AUC [95% CI]", title_fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrices(
    matrices: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float] | None = None,
    *,
    ncols: int = 3,
) -> Figure:
    """One 2x2 confusion matrix per finding ([[tn, fp], [fn, tp]])."""
    fig, axes = _grid(len(matrices), ncols=ncols, size=2.8)
    for ax, (name, matrix) in zip(axes, matrices.items(), strict=False):
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(int(value)), ha="center", va="center", color=colour)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"])
        ax.set_yticks([0, 1], ["true 0", "true 1"])
        title = name if thresholds is None else f"{name} (t={thresholds[name]:.2f})"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def reliability_diagram(table: pd.DataFrame) -> Figure:
    """Observed frequency against mean predicted probability per bin, one line per finding."""
    fig, ax = plt.subplots(figsize=(5.0, 5.0))
    for name, rows in table.groupby("disease", sort=False):
        ax.plot(rows["predicted"], rows["observed"], marker="o", ms=3, lw=1, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed frequency",
        title="Reliability (test split)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def metric_bars(
    table: pd.DataFrame,
    *,
    value: str,
    group: str,
    hue: str,
    low: str | None = None,
    high: str | None = None,
    title: str = "",
    ylim: tuple[float, float] = (0.0, 1.0),
    ylabel: str | None = None,
    reference: tuple[float, str] | None = None,
) -> Figure:
    """Grouped bar chart (``group`` on the x axis, one bar per ``hue``), optional error bars.

    The y axis is fixed (``ylim``, the whole [0, 1] by default) so that runs compare by eye
    and no bar vanishes below the axis; ``reference`` draws a labelled line such as
    ``(0.5, "chance")``. A missing value is marked "n/a" instead of leaving a silent gap. The
    legend sits outside the axes, where it cannot cover a bar or a tick.
    """
    groups = list(dict.fromkeys(table[group]))
    hues = list(dict.fromkeys(table[hue]))
    width = 0.8 / max(len(hues), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2.5), 4.0))
    for k, name in enumerate(hues):
        rows = table[table[hue] == name].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (k - (len(hues) - 1) / 2) * width
        err = None
        if low and high and rows[[low, high]].notna().any(axis=None):  # no bar for no interval
            err = np.vstack([rows[value] - rows[low], rows[high] - rows[value]])
        bars = ax.bar(x, rows[value], width, yerr=err, capsize=2, label=str(name))
        for xi, v in zip(x, rows[value], strict=True):
            if pd.isna(v):
                ax.text(xi, ylim[0], "n/a", ha="center", va="bottom", fontsize=6, rotation=90,
                        color=bars.patches[0].get_facecolor())  # fmt: skip
    if reference is not None:
        level, label = reference
        ax.axhline(level, color="grey", lw=1.0, ls="--", label=label)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20, ha="right")
    ax.set(ylabel=ylabel or value, title=title, ylim=ylim)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def grid_heatmaps(
    results: pd.DataFrame,
    *,
    row: str,
    col: str,
    value: str = "val_auc",
    panel: str = "disease",
    ncols: int = 3,
) -> Figure:
    """Per ``panel`` (finding), the best ``value`` over the other knobs for each (row, col)."""
    panels = list(dict.fromkeys(results[panel]))
    fig, axes = _grid(len(panels), ncols=ncols, size=3.0)
    for ax, name in zip(axes, panels, strict=False):
        pivot = results[results[panel] == name].pivot_table(
            index=row, columns=col, values=value, aggfunc="max", dropna=False
        )
        ax.set_title(str(name), fontsize=9)
        if pivot.isna().all().all():
            ax.text(0.5, 0.5, f"no {value}", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.imshow(pivot.to_numpy(dtype=float), cmap="viridis", vmin=0.5, vmax=1.0)
        for (i, j), v in np.ndenumerate(pivot.to_numpy(dtype=float)):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(pivot.shape[1]), [f"{c:g}" for c in pivot.columns], fontsize=7)
        ax.set_yticks(range(pivot.shape[0]), [f"{r:g}" for r in pivot.index], fontsize=7)
        ax.set(xlabel=col, ylabel=row)
    fig.tight_layout()
    return fig


def image_gallery(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ncols: int = 4,
    size: float = 2.2,
    suptitle: str = "",
) -> Figure:
    """A grid of images (grey (S, S) in [0, 1] or RGB uint8), e.g. Grad-CAM overlays."""
    fig, axes = _grid(max(len(images), 1), ncols=ncols, size=size)
    for ax, image, title in zip(axes, images, titles, strict=False):
        ax.imshow(
            image,
            cmap="gray" if np.ndim(image) == 2 else None,
            vmin=0,
            vmax=1 if np.ndim(image) == 2 else None,
        )
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    if not images:
        axes[0].text(0.5, 0.5, "no examples", ha="center", va="center")
        axes[0].axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def example_grid(
    rows: Mapping[str, Sequence[tuple[np.ndarray, str] | None]],
    columns: Sequence[str],
    *,
    size: float = 2.0,
    empty: str = "none",
    suptitle: str = "",
) -> Figure:
    """Images in a fixed grid: one row per key of ``rows`` (e.g. a finding), one column per
    entry of ``columns`` (e.g. ``TP 1``, ``FP 1``); ``None`` is an empty panel that says
    ``empty``, so that a missing example never shifts the others into the wrong column."""
    nrows, ncols = max(len(rows), 1), max(len(columns), 1)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols + 1.2, size * nrows + 0.4), squeeze=False
    )
    for ax, column in zip(axes[0], columns, strict=False):
        ax.set_title(column, fontsize=9, fontweight="bold")
    for r, (label, cells) in enumerate(rows.items()):
        axes[r, 0].set_ylabel(label, fontsize=9, fontweight="bold")
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = cells[c] if c < len(cells) else None
            if cell is None:
                ax.text(0.5, 0.5, empty, ha="center", va="center", color="grey", fontsize=8,
                        transform=ax.transAxes)  # fmt: skip
                for spine in ax.spines.values():
                    spine.set_color("#dddddd")
                continue
            image, caption = cell
            grey = np.ndim(image) == 2
            ax.imshow(image, cmap="gray" if grey else None, vmin=0, vmax=1 if grey else None)
            ax.set_xlabel(caption, fontsize=7)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no examples", ha="center", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def label_prevalence(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Stacked horizontal bars of studies per label value (one row per label)."""
    colours = {
        "positive": "#c0392b",
        "uncertain": "#f39c12",
        "negative": "#2980b9",
        "not mentioned": "#bdc3c7",
    }
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(table) + 1.2))
    left = np.zeros(len(table))
    for column, colour in colours.items():
        if column in table:
            values = table[column].to_numpy(dtype=float)
            ax.barh(table.index, values, left=left, color=colour, label=column)
            left += values
    ax.invert_yaxis()
    ax.set(xlabel="studies", title=title)
    ax.legend(
        fontsize=8,
        ncol=4,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.02 if not title else 1.08),
        frameon=False,
    )
    fig.tight_layout()
    return fig
