"""The run's summary page ``<run_dir>/index.html``: the first page to open after a run.

A guided page, top to bottom: what the run is and what it can and cannot show (a banner when
the data or the report model is a stand-in, :mod:`cxrlib.conclusions`); the stages with the
paper section each reproduces, their status and executed notebook; the headline tables (the
CNNs beside the paper, the report generators beside the baselines, what the image adds); the
key figures in reading order, each with a caption; then every other output of every stage,
collapsed. It only shows files the stages wrote; it computes nothing.

Every link is relative, so the run folder can be moved or zipped. The runner writes the page
after the stages; ``python -m cxrlib.pipeline.summary RUN_DIR`` writes it for any run folder.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from cxrlib import artifacts as a
from cxrlib.atomic import write_text
from cxrlib.cli import run_cli
from cxrlib.conclusions import run_facts, what_you_may_conclude
from cxrlib.pipeline.stages import STAGES

#: A CSV is shown as a table (collapsed, under its stage) when it is a summary: this many rows
#: and columns at most and no long text; any other CSV is linked with its size.
MAX_TABLE_ROWS = 40
MAX_TABLE_COLUMNS = 20
MAX_CELL_CHARS = 40


@dataclass(frozen=True)
class Headline:
    """A table of the page's headline section: some columns (renamed) and rows of one file."""

    stage: str
    file: str
    title: str
    caption: str
    columns: tuple[tuple[str, str], ...]  # (column in the file, header on the page)
    where: tuple[tuple[str, str], ...] = ()  # rows kept: column == value


@dataclass(frozen=True)
class KeyFigure:
    stage: str
    file: str
    caption: str


HEADLINES: tuple[Headline, ...] = (
    Headline(
        a.CNN_TRAIN_TEST,
        a.PAPER_COMPARISON_FILE,
        "CNN classifiers beside the paper",
        "Test split. The paper does not state the threshold behind its accuracy and F1: ours "
        "are given at 0.5 and at the threshold chosen on validation. Its four-decimal numbers "
        "imply small test sets (the smallest size consistent with its accuracy and F1).",
        (
            ("disease", "finding"),
            ("auc_paper", "AUC paper"),
            ("auc_ours", "AUC ours"),
            ("auc_ci_low", "95% CI low"),
            ("auc_ci_high", "95% CI high"),
            ("accuracy_paper", "accuracy paper"),
            ("accuracy_ours_0_5", "accuracy ours @0.5"),
            ("accuracy_ours_tuned", "accuracy ours @tuned"),
            ("f1_paper", "F1 paper"),
            ("f1_ours_0_5", "F1 ours @0.5"),
            ("f1_ours_tuned", "F1 ours @tuned"),
            ("test_images_paper_implied", "test images paper (implied)"),
            ("test_images_ours", "test images ours"),
        ),
    ),
    Headline(
        a.RESULTS_ANALYSIS,
        a.REPORT_SCORES_FILE,
        "Report generators beside the baselines",
        "Evaluation split of stage 06. CE: CheXpert labels of the generated report against "
        "those of the reference, uncertain counted as negative; 5 = the competition findings.",
        (),
    ),
    Headline(
        a.RESULTS_ANALYSIS,
        a.CONTROLS_FILE,
        "Does the report model read the image?",
        "CE F1 (macro, 5 findings, uncertain as negative) with each image's own input and with "
        "another image's; the difference with a 95% interval over patients. An interval above "
        "0: the reports follow the image.",
        (
            ("generator", "generator"),
            ("control", "control"),
            ("images", "images"),
            ("f1", "F1 own input"),
            ("f1_control", "F1 other input"),
            ("difference", "difference"),
            ("ci_low", "95% CI low"),
            ("ci_high", "95% CI high"),
        ),
        (("labels", "competition5"), ("average", "macro"), ("uncertain_as", "negative")),
    ),
)

KEY_FIGURES: tuple[KeyFigure, ...] = (
    KeyFigure(a.PREPROCESSING, a.EXAMPLES_FIGURE, "Cases and controls of each finding."),
    KeyFigure(
        a.CNN_TUNING,
        a.COMPARISON_FIGURE,
        "Validation AUC of each architecture under the same settings.",
    ),
    KeyFigure(a.CNN_TRAIN_TEST, a.ROC_FIGURE, "Test ROC curves of the chosen CNN."),
    KeyFigure(
        a.CNN_TRAIN_TEST, a.PAPER_COMPARISON_FIGURE, "Test AUC beside the paper's, with 95% CI."
    ),
    KeyFigure(
        a.CNN_TRAIN_TEST,
        a.GRADCAM_FIGURE,
        "Where the CNN looks: its most confident true and false positives.",
    ),
    KeyFigure(
        a.LLAMA_TRAINING, a.LOSS_CURVE_FILE, "LoRA fine-tuning: training and validation loss."
    ),
    KeyFigure(a.RESULTS_ANALYSIS, a.REPORT_SCORES_FIGURE, "Report scores of every generator."),
    KeyFigure(
        a.RESULTS_ANALYSIS,
        a.CONTROLS_FIGURE,
        "What the image adds: F1 with the image's own input minus with another image's.",
    ),
    KeyFigure(
        a.RESULTS_ANALYSIS,
        a.GALLERY_FIGURE,
        "Examples: the image, its reference report and each generator's report.",
    ),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1150px;
       color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #ddd; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 0.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f2f2f2; text-align: left; vertical-align: bottom; }
td.text { text-align: left; } td.nowrap { white-space: nowrap; }
.meta { color: #555; font-size: 0.85rem; } .done { color: #1e7d32; } .missing { color: #b71c1c; }
.banner { background: #fff8e1; border: 1px solid #f0c36d; border-radius: 6px;
          padding: 0.6rem 1rem; margin: 1rem 0; }
.banner ul { margin: 0.2rem 0 0.6rem; }
.caption { color: #444; font-size: 0.85rem; margin: 0 0 1.2rem; max-width: 60rem; }
figure { margin: 0.5rem 0 1.5rem; }
figure img { max-width: min(100%, 780px); border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #444; }
details { margin: 0.4rem 0; } summary { cursor: pointer; } code { background: #f5f5f5; }
.scroll { overflow-x: auto; }
"""


def write_index(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``<run_dir>/index.html`` (and notebook HTML renderings); return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir} (run `python run_all.py` first)")
    run = _read_json(run_dir / a.RUN_FILE)
    notebooks = _render_notebooks(run_dir / a.NOTEBOOKS_DIR)
    stages = _stage_names(run_dir, run)
    title = f"Run summary: {run.get('profile', run_dir.name)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        *_banner(run),
        *_stage_table(run_dir, stages, notebooks),
        *_headlines(run_dir),
        *_key_figures(run_dir),
        '<h2 id="outputs">Every output, stage by stage</h2>',
    ]
    for stage in stages:
        parts += _stage_outputs(run_dir, stage)
    parts += _run_details(run_dir, run)
    parts += ["</body>", "</html>"]
    return write_text(run_dir / a.INDEX_FILE, "\n".join(parts) + "\n")


def format_number(value: float) -> str:
    """A number as a reader wants it: 3 decimals, small magnitudes in 3 significant digits
    (a learning rate of 0.0003 is not 0.000), whole numbers without decimals."""
    if math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):d}"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}"


# --- sections --------------------------------------------------------------------------


def _banner(run: dict) -> list[str]:
    lines = []
    if run.get("description"):
        lines.append(f"<p>{_e(run['description'])}</p>")
    facts = run_facts(run.get("parameters", {}))
    if not (facts.synthetic or facts.tiny_model):
        return lines
    what = []
    if facts.synthetic:
        what.append("the project's <b>synthetic look-alike of MIMIC-CXR</b>")
    if facts.tiny_model:
        what.append("an <b>offline tiny model</b> with the Llama-3.2-Vision architecture")
    lines.append('<div class="banner">')
    lines.append(f"<p><b>This run used {' and '.join(what)}.</b></p>")
    for heading, sentences in what_you_may_conclude(facts).items():
        lines.append(f"<p><b>{_e(heading)}</b></p><ul>")
        lines += [f"<li>{_e(s)}</li>" for s in sentences]
        lines.append("</ul>")
    lines.append("</div>")
    return lines


def _stage_table(run_dir: Path, stages: list[str], notebooks: dict[str, Path]) -> list[str]:
    known = {s.name: s for s in STAGES}
    rows = []
    for name in stages:
        stage = known.get(name)
        record = _read_json(run_dir / name / a.STAGE_RECORD_FILE)
        if record:
            wall = record.get("wall_s")
            status = '<span class="done">done</span>'
            if isinstance(wall, int | float):
                status += f" ({wall:.0f} s)"
        else:
            status = '<span class="missing">incomplete or not run</span>'
        link = (
            f'<a href="{_link(notebooks[name], run_dir)}">notebook</a>' if name in notebooks else ""
        )
        rows.append(
            "<tr>"
            f'<td class="text"><a href="#{_e(name)}">{_e(name)}</a></td>'
            f'<td class="text">{_e(stage.paper_section if stage else "")}</td>'
            f'<td class="text">{_e(stage.purpose if stage else "")}</td>'
            f'<td class="text nowrap">{status}</td><td class="text">{link}</td>'
            "</tr>"
        )
    return [
        "<h2>The study, stage by stage</h2>",
        "<table><tr><th>stage</th><th>paper section</th><th>what it does</th><th>status</th>"
        "<th>executed notebook</th></tr>",
        *rows,
        "</table>",
    ]


def _headlines(run_dir: Path) -> list[str]:
    lines = ["<h2>Headline results</h2>"]
    shown = 0
    for headline in HEADLINES:
        path = run_dir / headline.stage / headline.file
        frame = _read_csv(path)
        if frame is None:
            continue
        for column, value in headline.where:
            if column in frame:
                frame = frame[frame[column].astype(str) == value]
        if headline.columns:
            present = [(c, h) for c, h in headline.columns if c in frame]
            frame = frame[[c for c, _ in present]].set_axis([h for _, h in present], axis=1)
        lines += [
            f'<h3>{_e(headline.title)} <span class="meta">(<a href="{_link(path, run_dir)}">'
            f"{_e(headline.stage)}/{_e(headline.file)}</a>)</span></h3>",
            _table_html(frame),
            f'<p class="caption">{_e(headline.caption)}</p>',
        ]
        shown += 1
    if not shown:
        lines.append('<p class="missing">no headline table yet: run the stages first</p>')
    return lines


def _key_figures(run_dir: Path) -> list[str]:
    lines = ["<h2>Key figures</h2>"]
    for figure in KEY_FIGURES:
        path = run_dir / figure.stage / figure.file
        if not path.is_file():
            continue
        src = _link(path, run_dir)
        lines.append(
            f'<figure><a href="{src}"><img src="{src}" alt="{_e(figure.caption)}" '
            f'loading="lazy"></a><figcaption>{_e(figure.caption)} '
            f'<span class="meta">({_e(figure.stage)}/{_e(figure.file)})</span></figcaption>'
            "</figure>"
        )
    return lines


def _stage_outputs(run_dir: Path, stage: str) -> list[str]:
    folder = run_dir / stage
    if not folder.is_dir():
        return [f'<h3 id="{_e(stage)}">{_e(stage)}</h3>', '<p class="missing">no outputs</p>']
    tables, links = [], []
    for table in sorted(folder.glob("*.csv")):
        frame = _read_csv(table)
        link = f'<a href="{_link(table, run_dir)}">{_e(table.name)}</a>'
        if _is_summary(frame):
            tables.append(f"<details><summary>{link}</summary>{_table_html(frame)}</details>")
        else:
            size = "unreadable" if frame is None else f"{len(frame)} rows x {frame.shape[1]} cols"
            links.append(f"<li>{link} ({size})</li>")
    key = {(f.stage, f.file) for f in KEY_FIGURES}
    figures = [
        f
        for f in sorted(folder.glob("*.png")) + sorted(folder.glob("*/*.png"))[:12]
        if f.parent.name != a.CACHE_DIR and (stage, f.name) not in key
    ]
    lines = [
        f'<details id="{_e(stage)}"><summary><b>{_e(stage)}</b>: {len(tables) + len(links)} '
        f"tables, {len(figures)} more figures</summary>",
        *tables,
    ]
    if links:
        lines += ["<p>Larger tables:</p>", "<ul>", *links, "</ul>"]
    for figure in figures:
        src = _link(figure, run_dir)
        name = _e(figure.relative_to(folder).as_posix())
        lines.append(
            f'<figure><a href="{src}"><img src="{src}" alt="{name}" loading="lazy"></a>'
            f"<figcaption>{name}</figcaption></figure>"
        )
    lines.append("</details>")
    return lines


def _run_details(run_dir: Path, run: dict) -> list[str]:
    facts = [
        ("run folder", run_dir.resolve().name),
        ("started", run.get("started_at", "")),
        ("profile file", Path(run.get("profile_file", "")).name),
        ("python", run.get("python", "")),
        ("platform", run.get("platform", "")),
    ]
    lines = [
        "<h2>About this run</h2>",
        '<p class="meta">'
        + " &middot; ".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in facts if v)
        + "</p>",
    ]
    if run.get("versions"):
        versions = ", ".join(f"{k} {v}" for k, v in sorted(run["versions"].items()))
        lines.append(f'<p class="meta">versions: {_e(versions)}</p>')
    if run.get("parameters"):
        lines += [
            "<details><summary>parameters of every stage</summary>",
            f"<pre>{_e(json.dumps(run['parameters'], indent=2, sort_keys=True))}</pre>",
            "</details>",
        ]
    return lines


# --- helpers ---------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: Path, run_dir: Path) -> str:
    """A relative URL from ``index.html`` to ``path`` (each segment percent-safe)."""
    return "/".join(quote(part) for part in path.relative_to(run_dir).parts)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _stage_names(run_dir: Path, run: dict) -> list[str]:
    """Stages in pipeline order: those of ``run.json``, then any other stage folder present."""
    names = [s for s in run.get("stages", []) if isinstance(s, str)]
    found = sorted(
        p.name for p in run_dir.iterdir() if p.is_dir() and p.name[:2].isdigit() and "_" in p.name
    )
    return list(dict.fromkeys(names + found))


def _render_notebooks(folder: Path) -> dict[str, Path]:
    """Render every executed notebook to HTML beside it (skipped when already up to date)."""
    if not folder.is_dir():
        return {}
    rendered = {}
    for notebook in sorted(folder.glob("*.ipynb")):
        target = notebook.with_suffix(".html")
        if not target.is_file() or target.stat().st_mtime_ns < notebook.stat().st_mtime_ns:
            write_text(target, _notebook_html(notebook))
        rendered[notebook.stem] = target
    return rendered


def _notebook_html(notebook: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    try:
        node = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError, nbformat.ValidationError) as exc:  # e.g. after a kill
        return f"<!DOCTYPE html><html><body><p>cannot render {_e(notebook.name)}: {_e(exc)}</p>"
    body, _ = HTMLExporter().from_notebook_node(node)
    return body


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def _is_summary(frame: pd.DataFrame | None) -> bool:
    if frame is None or len(frame) > MAX_TABLE_ROWS or frame.shape[1] > MAX_TABLE_COLUMNS:
        return False
    text = frame.select_dtypes(exclude="number")
    return not any(text[c].astype(str).str.len().max() > MAX_CELL_CHARS for c in text.columns)


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, bool | np.bool_):
                cells.append(f"<td>{_e(value)}</td>")
            elif isinstance(value, numbers.Real) and not pd.isna(value):
                cells.append(f"<td>{format_number(float(value))}</td>")
            elif pd.isna(value):
                cells.append("<td></td>")
            else:
                cells.append(f'<td class="text">{_e(value)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows = "".join(body)
    return f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>'


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m cxrlib.pipeline.summary RUN_DIR`` writes the run's summary page."""
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib.pipeline.summary",
        description="Write a run folder's summary page (index.html).",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. runs/demo")
    path = write_index(parser.parse_args(argv).run_dir)
    print(f"summary page: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
