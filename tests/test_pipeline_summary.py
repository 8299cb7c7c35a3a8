"""The run summary page: a guided first page, well-formed, whose every link and image exists."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest

from cxrlib.pipeline import summary

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


def _figure(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


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
    _figure(stage / "label prevalence.png")  # a space: the link must be quoted
    _figure(stage / "examples.png")  # a key figure
    _figure(stage / "images" / "not_a_figure.png")
    (stage / ".stage.json").write_text('{"wall_s": 12.3}')
    results = run / "06_results_analysis"
    results.mkdir()
    pd.DataFrame({"generator": ["constant_normal"], "f1": [0.25], "note": ["a<b"]}).to_csv(
        results / "report_scores.csv", index=False
    )
    pd.DataFrame(
        {
            "generator": ["llama_finetuned"] * 2,
            "control": ["shuffled_images"] * 2,
            "labels": ["competition5", "chexpert14"],
            "average": ["macro", "macro"],
            "uncertain_as": ["negative", "negative"],
            "images": [40, 40],
            "f1": [0.4, 0.3],
            "f1_control": [0.1, 0.2],
            "difference": [0.3, 0.1],
            "ci_low": [0.2, 0.0],
            "ci_high": [0.4, 0.2],
        }
    ).to_csv(results / "image_dependence.csv", index=False)
    (run / "02_cnn_tuning").mkdir()
    pd.DataFrame({"disease": ["A"], "lr": [0.0003]}).to_csv(
        run / "02_cnn_tuning" / "best_params.csv", index=False
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
        "parameters": {
            "01_preprocessing": {"seed": 0, "data_root": "synthetic"},
            "04_llama_setup": {"model": "tiny"},
        },
        "versions": {"torch": "2.14.1"},
    }
    (run / "run.json").write_text(json.dumps(run_json))
    return run


def test_index_is_a_guided_first_page(run_dir: Path) -> None:
    index = summary.write_index(run_dir)
    assert index == run_dir / "index.html"
    checker = _check_page(index)
    text = index.read_text(encoding="utf-8")
    assert "<title>Run summary: tiny</title>" in text
    assert "Tiny &lt;test&gt; profile" in text and "a&lt;b" in text  # escaped
    # the banner says what the run used and what it may and may not show
    banner = text[text.index('class="banner"') : text.index("</div>")]
    assert "synthetic look-alike of MIMIC-CXR" in banner and "offline tiny model" in banner
    assert "You may conclude" in banner and "You may not conclude" in banner
    # sections in reading order
    order = [
        text.index(h)
        for h in ("The study, stage by stage", "Headline results", "Key figures", "Every output")
    ]
    assert order == sorted(order)
    # the stage table maps stages to paper sections, with status and time
    assert '<td class="text">4.1</td>' in text and "done</span> (12 s)" in text
    # headline tables: the image-dependence rows of the headline convention only
    headline = text[text.index("Headline results") : text.index("Key figures")]
    assert "Does the report model read the image?" in headline
    assert headline.count('<td class="text">llama_finetuned</td>') == 1
    assert "Report generators beside the baselines" in headline
    # key figures with captions; other figures and tables collapsed under their stage
    figures = text[text.index("Key figures") : text.index("Every output")]
    assert "01_preprocessing/examples.png" in figures and "Cases and controls" in figures
    outputs = text[text.index("Every output") :]
    assert "01_preprocessing/label%20prevalence.png" in outputs
    assert "examples.png" not in outputs  # shown once, above
    assert not any("not_a_figure" in link for link in checker.links)
    assert "cohort.csv</a> (100 rows x 1 cols)" in outputs
    assert "report_samples.csv</a> (1 rows x 2 cols)" in outputs  # long text: linked
    assert "<td>0.0003</td>" in outputs  # a learning rate is not 0.000
    stages = [outputs.index(f'id="{s}"') for s in ("01_preprocessing", "02_cnn_tuning")]
    assert stages == sorted(stages) and outputs.index('id="06_results_analysis"') > stages[-1]
    assert "notebooks/01_preprocessing.html" in checker.links
    assert "hello" in (run_dir / "notebooks" / "01_preprocessing.html").read_text()


def test_no_banner_for_real_data_and_a_real_model(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    run["parameters"] = {
        "01_preprocessing": {"data_root": "/data/mimic-cxr"},
        "04_llama_setup": {"model": "unsloth/Llama-3.2-11B-Vision-Instruct"},
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    assert 'class="banner"' not in summary.write_index(run_dir).read_text()


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0003, "0.0003"), (0.25, "0.250"), (12.0, "12"), (1e-5, "1e-05"), (0.0, "0.000")],
)
def test_numbers_are_formatted_for_their_scale(value, text):
    assert summary.format_number(value) == text


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
