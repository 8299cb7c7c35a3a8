"""The run summary page ``<run_dir>/index.html``: the first thing to open after a run.

One self-contained HTML page: what ran (profile, parameters, versions, stage status), then per
stage its headline tables (every small CSV it wrote), its figures (every PNG) and a link to the
executed notebook rendered as HTML (nbconvert's ``HTMLExporter``, written beside the
``.ipynb`` under ``<run_dir>/notebooks/``). Every link is relative, so the run folder can be
moved or zipped. The pipeline runner calls :func:`write_index` after the stages; it can also
be called on any run folder: ``python -m cxrlib.summary RUN_DIR``.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cxrlib.atomic import write_text
from cxrlib.cli import run_cli

INDEX_FILE = "index.html"
NOTEBOOKS_DIR = "notebooks"
#: A CSV is shown as a table when it is a summary: this many rows and columns at most, and
#: no long text (ids, paths, report text); any other CSV is linked with its size.
MAX_TABLE_ROWS = 40
MAX_TABLE_COLUMNS = 20
MAX_CELL_CHARS = 40
_RECORD = ".stage.json"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #ddd; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
.meta { color: #555; } .done { color: #1e7d32; } .missing { color: #b71c1c; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 560px; max-height: 460px; border: 1px solid #ddd; }
figcaption { font-size: 0.8rem; color: #555; }
details { margin: 0.5rem 0; } code { background: #f5f5f5; padding: 0 0.2rem; }
.scroll { overflow-x: auto; }
"""


def write_index(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``<run_dir>/index.html`` (and notebook HTML renderings); return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir} (run `python run_all.py` first)")
    run = _read_json(run_dir / "run.json")
    notebooks = _render_notebooks(run_dir / NOTEBOOKS_DIR)
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
        *_run_header(run_dir, run, stages, notebooks),
    ]
    for stage in stages:
        parts += _stage_section(run_dir, stage, notebooks.get(stage))
    parts += ["</body>", "</html>"]
    return write_text(run_dir / INDEX_FILE, "\n".join(parts) + "\n")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: Path, run_dir: Path) -> str:
    """A relative URL from ``index.html`` to ``path`` (each segment percent-safe)."""
    from urllib.parse import quote

    return "/".join(quote(part) for part in path.relative_to(run_dir).parts)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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


def _run_header(run_dir: Path, run: dict, stages: list[str], notebooks: dict) -> list[str]:
    lines = []
    if run.get("description"):
        lines.append(f"<p>{_e(run['description'])}</p>")
    facts = [
        ("run folder", run_dir.resolve().name),
        ("started", run.get("started_at", "")),
        ("profile file", Path(run.get("profile_file", "")).name),
        ("python", run.get("python", "")),
    ]
    lines.append(
        '<p class="meta">'
        + " &middot; ".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in facts if v)
        + "</p>"
    )
    rows = []
    for stage in stages:
        done = (run_dir / stage / _RECORD).is_file()
        status = (
            '<span class="done">done</span>'
            if done
            else ('<span class="missing">incomplete or not run</span>')
        )
        link = (
            f'<a href="{_link(notebooks[stage], run_dir)}">executed notebook</a>'
            if stage in notebooks
            else ""
        )
        rows.append(
            f'<tr><td class="text"><a href="#{_e(stage)}">{_e(stage)}</a></td>'
            f'<td class="text">{status}</td><td class="text">{link}</td></tr>'
        )
    lines += [
        "<h2>Stages</h2>",
        "<table><tr><th>stage</th><th>status</th><th>notebook</th></tr>",
        *rows,
        "</table>",
    ]
    if run.get("parameters"):
        lines += [
            "<details><summary>parameters</summary>",
            f"<pre>{_e(json.dumps(run['parameters'], indent=2, sort_keys=True))}</pre>",
            "</details>",
        ]
    if run.get("versions"):
        versions = ", ".join(f"{k} {v}" for k, v in sorted(run["versions"].items()))
        lines.append(f'<p class="meta">versions: {_e(versions)}</p>')
    return lines


def _stage_section(run_dir: Path, stage: str, notebook: Path | None) -> list[str]:
    folder = run_dir / stage
    lines = [f'<h2 id="{_e(stage)}">{_e(stage)}</h2>']
    if notebook is not None:
        lines.append(f'<p><a href="{_link(notebook, run_dir)}">executed notebook (HTML)</a></p>')
    if not folder.is_dir():
        lines.append('<p class="missing">no outputs</p>')
        return lines
    large = []
    for table in sorted(folder.glob("*.csv")):
        frame = _read_csv(table)
        link = f'<a href="{_link(table, run_dir)}">{_e(table.name)}</a>'
        if not _is_summary(frame):
            size = "unreadable" if frame is None else f"{len(frame)} rows x {frame.shape[1]} cols"
            large.append(f"<li>{link} ({size})</li>")
            continue
        lines += [f"<h3>{link}</h3>", _table_html(frame)]
    if large:
        lines += ["<p>Larger tables:</p>", "<ul>", *large, "</ul>"]
    figures = sorted(folder.glob("*.png")) + sorted(folder.glob("*/*.png"))[:12]
    for figure in figures:
        if figure.parent.name == "images":  # the preprocessing cache, not a figure
            continue
        src = _link(figure, run_dir)
        caption = _e(figure.relative_to(folder).as_posix())
        lines.append(
            f'<figure><a href="{src}"><img src="{src}" alt="{caption}"></a>'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return lines


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
            if isinstance(value, float):
                text = "" if math.isnan(value) else f"{value:.3f}"
                cells.append(f"<td>{text}</td>")
            elif isinstance(value, int | bool):
                cells.append(f"<td>{_e(value)}</td>")
            else:
                cells.append(f'<td class="text">{_e(value)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows = "".join(body)
    return f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>'


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m cxrlib.summary RUN_DIR`` writes the run's summary page."""
    parser = argparse.ArgumentParser(prog="python -m cxrlib.summary", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. runs/demo")
    path = write_index(parser.parse_args(argv).run_dir)
    print(f"summary page: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
