"""The run summary page: well-formed HTML whose every link and image exists."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest

from cxrlib import summary

_VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr", "col", "area", "base"}


class _Checker(HTMLParser):
    """Collects links, images and ids, and checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_page(index: Path) -> _Checker:
    checker = _Checker()
    checker.feed(index.read_text(encoding="utf-8"))
    checker.close()
    assert checker.doctype, "missing <!DOCTYPE html>"
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags: {checker.stack}"
    for link in checker.links:
        if link.startswith("#"):
            assert link[1:] in checker.ids, f"anchor {link} has no target"
        else:
            assert "://" not in link and not link.startswith("/"), f"non-relative link {link}"
            assert (index.parent / unquote(link)).is_file(), f"broken link {link}"
    return checker


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "tiny"
    stage = run / "01_preprocessing"
    (stage / "images").mkdir(parents=True)
    pd.DataFrame({"disease": ["Pneumonia"], "split": ["train"], "cases": [3], "total": [9]}).to_csv(
        stage / "counts.csv", index=False
    )
    pd.DataFrame({"dicom_id": [f"d{i}" for i in range(100)]}).to_csv(
        stage / "cohort.csv", index=False
    )
    pd.DataFrame({"study_id": [1], "findings": ["No effusion. " * 5]}).to_csv(
        stage / "report_samples.csv", index=False
    )
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(stage / "label prevalence.png")  # a space: the link must be quoted
    fig.savefig(stage / "images" / "not_a_figure.png")
    plt.close(fig)
    (stage / ".stage.json").write_text("{}")
    (run / "06_results_analysis").mkdir()
    pd.DataFrame({"generator": ["constant_normal"], "f1": [0.25], "note": ["a<b"]}).to_csv(
        run / "06_results_analysis" / "ce_metrics.csv", index=False
    )
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('hello')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Preprocessing"), cell]
    (run / "notebooks").mkdir()
    nbformat.write(notebook, run / "notebooks" / "01_preprocessing.ipynb")
    run_json = {
        "profile": "tiny",
        "description": "Tiny <test> profile",
        "stages": ["01_preprocessing", "02_cnn_tuning"],
        "parameters": {"01_preprocessing": {"seed": 0}},
        "versions": {"torch": "2.14.1"},
    }
    (run / "run.json").write_text(json.dumps(run_json))
    return run


def test_index_is_well_formed_and_links_exist(run_dir: Path) -> None:
    index = summary.write_index(run_dir)
    assert index == run_dir / "index.html"
    checker = _check_page(index)
    text = index.read_text(encoding="utf-8")
    assert "<title>Run summary: tiny</title>" in text
    assert "Tiny &lt;test&gt; profile" in text and "a&lt;b" in text  # escaped
    # Small tables inline, large ones linked; figures shown, the image cache left out.
    assert '<h3><a href="01_preprocessing/counts.csv">counts.csv</a></h3>' in text
    assert "cohort.csv</a> (100 rows x 1 cols)" in text
    assert "report_samples.csv</a> (1 rows x 2 cols)" in text  # long text: linked, not shown
    assert "01_preprocessing/label%20prevalence.png" in checker.links
    assert not any("not_a_figure" in link for link in checker.links)
    assert "0.250" in text  # floats rounded
    # Stages of run.json in order, then other stage folders; a stage without outputs says so.
    order = [text.index(f'id="{s}"') for s in ("01_preprocessing", "02_cnn_tuning")]
    assert order == sorted(order) and text.index('id="06_results_analysis"') > order[-1]
    assert "notebooks/01_preprocessing.html" in checker.links
    assert "hello" in (run_dir / "notebooks" / "01_preprocessing.html").read_text()


def test_notebook_html_is_reused_when_up_to_date(run_dir: Path) -> None:
    summary.write_index(run_dir)
    rendered = run_dir / "notebooks" / "01_preprocessing.html"
    rendered.write_text("<!DOCTYPE html><html><body>cached</body></html>")
    summary.write_index(run_dir)
    assert "cached" in rendered.read_text()


def test_without_run_json_or_notebooks(tmp_path: Path) -> None:
    (tmp_path / "03_cnn_train_test").mkdir()
    index = summary.write_index(tmp_path)
    _check_page(index)
    assert "03_cnn_train_test" in index.read_text()


def test_missing_run_dir(tmp_path: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        summary.write_index(tmp_path / "nope")
    assert summary.run_cli(summary.main, [str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: run folder not found")
